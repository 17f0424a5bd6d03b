"""The OPC UA driver against real asyncua servers on 127.0.0.1: every basic type, batching to
the server's operation limits, subscriptions with server timestamps and deadband, security
(strongest endpoint, trust list, trust on first use, ``security: none``), users, access
denied and item errors."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from asyncua import ua

from smartline.core import (
    ConnectError,
    DeviceError,
    Point,
    Quality,
    Reason,
    WriteItem,
    WriteRefusedError,
)
from smartline.drivers.opcua import OpcUaDriver
from smartline.hil.opcua import OpcUaSim
from smartline.tags import parse_opcua
from smartline.testing.conformance import RecordingSink

from .conftest import VARIABLES, Pki, make_spec

pytestmark = pytest.mark.asyncio(loop_scope="module")


def point(name: str, slot: int) -> Point:
    var = next(v for v in VARIABLES if v.name == name)
    return Point(name, slot, parse_opcua(var.address))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sim(pki: Pki) -> AsyncIterator[OpcUaSim]:
    """Basic256Sha256 (Sign, SignAndEncrypt), users on, no relay."""
    async with OpcUaSim(VARIABLES, users={"op": "pw"}, proxy=False) as server:
        pki.trust(server)
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def multi(pki: Pki) -> AsyncIterator[OpcUaSim]:
    """All three policies and an endpoint without security; anonymous logins allowed;
    at most 3 nodes per Read and 2 per Write."""
    async with OpcUaSim(VARIABLES, policies=("Basic256Sha256", "Aes128_Sha256_RsaOaep",
                                             "Aes256_Sha256_RsaPss"), allow_none=True,
                        max_nodes_per_read=3, max_nodes_per_write=2, proxy=False) as server:
        pki.trust(server)
        yield server


def driver(sim: OpcUaSim, pki: Pki, **options: object) -> OpcUaDriver:
    return OpcUaDriver(make_spec(sim.url(), pki.options(**options), username="op",
                                 password="pw"))


# -- values ------------------------------------------------------------------------------------

async def test_every_basic_type_reads_and_writes_exactly(sim: OpcUaSim, pki: Pki) -> None:
    writes = {"Line.Flag": True, "Line.Small": -32768, "Line.Count": 2 ** 31 - 1,
              "Line.Total": -(2 ** 63), "Line.Serial": 2 ** 64 - 1, "Line.Ratio": 0.25,
              "Line.Temp": -1e300, "Line.Recipe": "Apfelschorle 0,5 l — ü ✓"}
    points = [point(n, i) for i, n in enumerate(writes)]
    async with driver(sim, pki) as d:
        assert (d.channel.policy, d.channel.mode) == ("Basic256Sha256", "SignAndEncrypt")
        before = await d.read(d.plan(points))
        assert (before.quality == Quality.GOOD).all()
        assert before.exact[4] == 2 ** 64 - 2 and before.exact[3] == -(2 ** 62)
        assert before.texts[7] == "cola"
        await d.write([WriteItem(p, writes[p.tag]) for p in points])
        after = await d.read(d.plan(points))
    assert (after.quality == Quality.GOOD).all()
    assert after.raw[0] == 1.0 and after.raw[1] == -32768 and after.raw[2] == 2 ** 31 - 1
    assert after.exact == {3: -(2 ** 63), 4: 2 ** 64 - 1}
    assert after.raw[5] == 0.25 and after.raw[6] == -1e300
    assert after.texts == {7: "Apfelschorle 0,5 l — ü ✓"}
    for name, value in writes.items():
        assert await sim.get(name) == value
    assert await sim.get("Line.Small") == -32768  # written as Int16, the node's type


async def test_values_carry_the_servers_source_timestamp(sim: OpcUaSim, pki: Pki) -> None:
    when = dt.datetime(2021, 6, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)
    await sim.set("Line.Id", 9, when=when)
    async with driver(sim, pki) as d:
        result = await d.read(d.plan([point("Line.Id", 0)]))
    assert result.raw[0] == 9
    assert int(result.sources()[0]) == int(when.timestamp()) * 10 ** 9 + 123_456_000


async def test_a_value_out_of_the_nodes_range_is_refused_before_any_io(sim: OpcUaSim,
                                                                      pki: Pki) -> None:
    small = point("Line.Small", 0)
    async with driver(sim, pki) as d:
        await d.read(d.plan([small]))  # learns the node is Int16
        requests = d.health.requests
        with pytest.raises(WriteRefusedError, match="Int16"):
            await d.write([WriteItem(small, 40000)])
        with pytest.raises(WriteRefusedError, match="text"):
            await d.write([WriteItem(small, "seven")])
        assert d.health.requests == requests


# -- item errors and access ------------------------------------------------------------------

async def test_unknown_node_and_bad_status_mark_only_those_points(sim: OpcUaSim,
                                                                 pki: Pki) -> None:
    good = point("Line.Temp", 0)
    missing = Point("missing", 1, parse_opcua("ns=2;s=Line.Nope"))
    other_ns = Point("other", 2, parse_opcua("nsu=urn:not-there;s=X"))
    failing = point("Line.Ratio", 3)
    await sim.set_status("Line.Ratio", ua.StatusCodes.BadDeviceFailure)
    try:
        async with driver(sim, pki) as d:
            r = await d.read(d.plan([good, missing, other_ns, failing]))
            assert d.connected
    finally:
        await sim.set("Line.Ratio", 0.5)
    assert r.quality.tolist() == [Quality.GOOD, Quality.BAD, Quality.BAD, Quality.BAD]
    assert r.reason.tolist()[1:] == [Reason.DEVICE_ERROR] * 3


async def test_write_to_a_node_that_is_not_writable_is_denied(sim: OpcUaSim, pki: Pki) -> None:
    async with driver(sim, pki) as d:
        with pytest.raises(DeviceError, match=r"BadUserAccessDenied|BadNotWritable") as info:
            await d.write([WriteItem(point("Line.Locked", 0), 1.0)])
        assert info.value.code in (ua.StatusCodes.BadUserAccessDenied,
                                   ua.StatusCodes.BadNotWritable)
        assert d.connected
    assert await sim.get("Line.Locked") == 5.0


# -- operation limits ------------------------------------------------------------------------

async def test_reads_and_writes_are_batched_to_the_servers_operation_limits(
        multi: OpcUaSim, pki: Pki) -> None:
    points = [point(v.name, i) for i, v in enumerate(VARIABLES)]  # 10 nodes
    async with driver(multi, pki) as d:
        plan = d.plan(points)
        multi.reads, multi.read_sizes = 0, []
        result = await d.read(plan)
        assert (result.quality == Quality.GOOD).all()
        assert plan.request_count == 4 and multi.reads == 4
        assert max(multi.read_sizes) == 3
        assert d.stats()["max_nodes_per_read"] == 3
        writes = multi.writes
        await d.write([WriteItem(point("Line.Temp", 0), 1.5), WriteItem(point("Line.Id", 1), 3),
                       WriteItem(point("Line.Count", 2), 4), WriteItem(point("Line.Flag", 3),
                                                                       True)])
        assert multi.writes - writes == 2
    assert await multi.get("Line.Id") == 3


async def test_an_unbatched_read_is_refused_by_the_limited_server(multi: OpcUaSim,
                                                                  pki: Pki) -> None:
    """The server really enforces MaxNodesPerRead: the batching above is what makes it work."""
    from asyncua import Client

    async with Client(multi.server_url) as client:  # its None endpoint
        nodes = [client.get_node(ua.NodeId(f"Line.{n}", 2)) for n in ("Temp", "Id", "Count",
                                                                         "Flag")]
        with pytest.raises(ua.UaStatusCodeError):
            await client.read_values(nodes)


# -- security --------------------------------------------------------------------------------

async def test_the_strongest_policy_and_mode_are_chosen(multi: OpcUaSim, pki: Pki) -> None:
    async with driver(multi, pki) as d:
        await d.read(d.plan([point("Line.Temp", 0)]))
        assert (d.channel.policy, d.channel.mode) == ("Aes256_Sha256_RsaPss", "SignAndEncrypt")


async def test_a_policy_and_mode_can_be_asked_for(multi: OpcUaSim, pki: Pki) -> None:
    d = driver(multi, pki, security={"policy": "Aes128_Sha256_RsaOaep", "mode": "Sign"})
    async with d:
        r = await d.read(d.plan([point("Line.Temp", 0)]))
        assert r.quality[0] == Quality.GOOD
        assert (d.channel.policy, d.channel.mode) == ("Aes128_Sha256_RsaOaep", "Sign")


async def test_security_none_uses_the_unsecured_endpoint(multi: OpcUaSim, pki: Pki) -> None:
    d = OpcUaDriver(make_spec(multi.url(), {"security": "none"}))
    async with d:
        r = await d.read(d.plan([point("Line.Temp", 0)]))
        assert r.quality[0] == Quality.GOOD and d.channel.policy is None


async def test_an_untrusted_server_certificate_is_refused(sim: OpcUaSim, pki: Pki,
                                                          tmp_path: Path) -> None:
    empty = tmp_path / "empty-trust"
    d = driver(sim, pki, trust=str(empty))
    with pytest.raises(ConnectError, match="not trusted") as info:
        await d.connect()
    await d.close()
    message = str(info.value)
    assert "smartline certs trust" in message
    rejected = Path(message.split("smartline certs trust ")[1].split("'", maxsplit=1)[0])
    assert rejected.read_bytes() == sim.certificate.read_bytes()
    assert not empty.exists() or not any(empty.iterdir())


async def test_trust_on_first_use_only_when_asked(sim: OpcUaSim, pki: Pki,
                                                  tmp_path: Path) -> None:
    trust = tmp_path / "tofu"
    async with driver(sim, pki, trust=str(trust), trust_on_first_use=True) as d:
        r = await d.read(d.plan([point("Line.Temp", 0)]))
        assert r.quality[0] == Quality.GOOD
    (stored,) = trust.iterdir()
    assert stored.read_bytes() == sim.certificate.read_bytes()
    async with driver(sim, pki, trust=str(trust)) as d:  # trusted from now on
        await d.read(d.plan([point("Line.Temp", 0)]))


async def test_a_server_without_security_needs_security_none(pki: Pki) -> None:
    async with OpcUaSim(VARIABLES[:2], policies=(), allow_none=True, proxy=False) as plain:
        d = OpcUaDriver(make_spec(plain.url(), pki.options()))
        with pytest.raises(ConnectError, match="security: none"):
            await d.connect()
        await d.close()
        async with OpcUaDriver(make_spec(plain.url(), {"security": "none"})) as d:
            r = await d.read(d.plan([point("Line.Flag", 0)]))
            assert r.quality[0] == Quality.GOOD


async def test_a_wrong_password_is_refused(sim: OpcUaSim, pki: Pki) -> None:
    d = OpcUaDriver(make_spec(sim.url(), pki.options(), username="op", password="wrong"))
    with pytest.raises(ConnectError, match="refused user 'op'"):
        await d.connect()
    await d.close()
    anonymous = OpcUaDriver(make_spec(sim.url(), pki.options()))
    with pytest.raises(ConnectError, match="anonymous"):
        await anonymous.connect()
    await anonymous.close()


# -- subscriptions ---------------------------------------------------------------------------

async def test_pushed_values_carry_server_timestamps_and_honour_the_deadband(
        sim: OpcUaSim, pki: Pki) -> None:
    temp = point("Line.Temp", 0)
    await sim.set("Line.Temp", 10.0)
    async with driver(sim, pki, deadband=1.0, sampling_interval_ms=0) as d:
        sink = RecordingSink()
        sub = await d.subscribe([temp], sink)
        await sink.wait_for(lambda: sink.latest_equals(temp, 10.0), 3, "initial value")
        pushes = len(sink.results)
        await sim.set("Line.Temp", 10.5)  # inside the deadband: no push
        await asyncio.sleep(0.3)
        assert len(sink.results) == pushes
        when = dt.datetime(2024, 2, 29, 8, 30, tzinfo=dt.UTC)
        await sim.set("Line.Temp", 12.0, when=when)
        await sink.wait_for(lambda: sink.latest_equals(temp, 12.0), 3, "the change")
        last = sink.last_for(temp)
        assert last is not None
        assert int(last.sources()[0]) == int(when.timestamp()) * 10 ** 9
        assert d.health.reads == 0
        await d.unsubscribe(sub)


async def test_subscriptions_resume_after_the_server_restarts(pki: Pki) -> None:
    temp = point("Line.Temp", 0)
    async with OpcUaSim(VARIABLES, users={"op": "pw"}, proxy=False) as server:
        pki.trust(server)
        port = server.port
        async with driver(server, pki) as d:
            sink = RecordingSink()
            await d.subscribe([temp], sink)
            await sink.wait_for(lambda: sink.covers([temp]), 3, "initial value")
            await server.stop()
            await sink.wait_for(lambda: bool(sink.lost_slots), 5, "the loss")
            assert sink.lost_slots == [0]  # STALE until it resumes
            await server.restart()
            assert server.port == port
            await server.set("Line.Temp", 99.5)
            await sink.wait_for(lambda: sink.latest_equals(temp, 99.5), 10,
                                "pushes after the restart")
            assert d.health.resubscribes >= 1
