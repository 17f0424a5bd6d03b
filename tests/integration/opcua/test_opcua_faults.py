"""Faults of a live OPC UA server on 127.0.0.1 (no mocks): the server refuses the client's
certificate, and the server stays connected but stops answering (polled reads time out,
subscriptions go STALE) and then answers again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from smartline.core import (
    ConnectError,
    DeviceDemotedError,
    DeviceTimeoutError,
    Point,
    Quality,
    Reason,
    ResultBuilder,
    reason_for,
)
from smartline.drivers.opcua import OpcUaDriver
from smartline.hil.opcua import OpcUaSim
from smartline.tags import parse_opcua
from smartline.testing.conformance import RecordingSink

from .conftest import VARIABLES, Pki, make_spec

pytestmark = pytest.mark.asyncio(loop_scope="module")

TEMP = Point("Line.Temp", 0, parse_opcua("ns=2;s=Line.Temp"))
TIMEOUT_S = 1.0


@pytest_asyncio.fixture(loop_scope="module")
async def relayed(pki: Pki) -> AsyncIterator[OpcUaSim]:
    """Basic256Sha256 behind the fault relay; anonymous logins allowed."""
    async with OpcUaSim(VARIABLES, proxy=True) as server:
        pki.trust(server)
        yield server


async def _read_until_good(d: OpcUaDriver, within_s: float) -> float:
    """Seconds until a read of TEMP is GOOD again (errors in between are expected)."""
    start = time.monotonic()
    plan = d.plan([TEMP])
    while True:
        try:
            r = await d.read(plan)
            if r.quality[0] == Quality.GOOD:
                return time.monotonic() - start
        except (ConnectError, DeviceDemotedError, DeviceTimeoutError):
            pass
        if time.monotonic() - start > within_s:
            raise AssertionError(f"no good read within {within_s} s "
                                 f"(last error: {d.health.last_error})")
        await asyncio.sleep(0.05)


# -- the server refuses our certificate ------------------------------------------------------

async def test_an_untrusted_client_certificate_is_refused_clearly_and_retried(
        pki: Pki) -> None:
    async with OpcUaSim(VARIABLES[:2], proxy=False, trusted_clients=[]) as server:
        pki.trust(server)  # we trust the server; it does not trust us
        d = OpcUaDriver(make_spec(server.url(), pki.options(), timeout_s=TIMEOUT_S))
        try:
            with pytest.raises(ConnectError) as info:
                await d.connect()
            message = str(info.value)
            assert "BadCertificateUntrusted" in message
            assert "certificate" in message and str(pki.certificate) in message
            assert "Traceback" not in message
            assert server.rejected_clients == 1
            assert d.health.failures_in_row == 1 and not d.connected
            # retried with backoff, each time the same clear error (never a raw asyncua one)
            plan = d.plan([Point("Line.Flag", 0, parse_opcua("ns=2;s=Line.Flag"))])
            deadline = time.monotonic() + 3
            while server.rejected_clients < 3:
                assert time.monotonic() < deadline, "not retried"
                with pytest.raises(ConnectError) as again:
                    await d.read(plan)
                assert reason_for(again.value) == Reason.NOT_CONNECTED
                assert "BadCertificateUntrusted" in (str(again.value) + d.health.last_error)
                await asyncio.sleep(0.02)
            assert d.health.failures_in_row >= 3
            assert d.health.next_attempt_ns > 0  # waits out a backoff between attempts
            server.trust_client(pki.certificate)  # trusted on the server: it connects
            deadline = time.monotonic() + 3
            while True:
                try:
                    r = await d.read(plan)
                    break
                except (ConnectError, DeviceDemotedError):  # demoted: tried every 0.3 s
                    assert time.monotonic() < deadline, d.health.last_error
                    await asyncio.sleep(0.05)
            assert r.quality[0] == Quality.GOOD and d.channel.policy == "Basic256Sha256"
        finally:
            await d.close()


async def test_a_trusted_client_certificate_is_accepted(pki: Pki) -> None:
    async with OpcUaSim(VARIABLES[:2], proxy=False,
                        trusted_clients=[pki.certificate]) as server:
        pki.trust(server)
        async with OpcUaDriver(make_spec(server.url(), pki.options())) as d:
            r = await d.read(d.plan([Point("Line.Flag", 0, parse_opcua("ns=2;s=Line.Flag"))]))
        assert r.quality[0] == Quality.GOOD and server.rejected_clients == 0


# -- the server is connected but silent ------------------------------------------------------

async def test_a_silent_server_times_out_marks_the_tags_and_recovers(
        relayed: OpcUaSim, pki: Pki) -> None:
    d = OpcUaDriver(make_spec(relayed.url(), pki.options(subscribe=False),
                              timeout_s=TIMEOUT_S))
    async with d:
        plan = d.plan([TEMP])
        assert (await d.read(plan)).quality[0] == Quality.GOOD
        relayed.set_silent(True)
        start = time.monotonic()
        with pytest.raises(DeviceTimeoutError) as info:
            await d.read(plan)
        elapsed = time.monotonic() - start
        assert 0.8 * TIMEOUT_S <= elapsed <= 2.5 * TIMEOUT_S, elapsed
        assert reason_for(info.value) == Reason.TIMEOUT
        assert d.health.timeouts >= 1 and not d.connected
        # what a scan makes of it: the tag BAD with reason timeout
        marked = ResultBuilder([TEMP], 0)
        marked.fail(TEMP, reason_for(info.value))
        result = marked.build()
        assert result.quality[0] == Quality.BAD and result.reason[0] == Reason.TIMEOUT
        with pytest.raises((DeviceTimeoutError, ConnectError)):  # still silent
            await d.read(plan)
        relayed.set_silent(False)
        await relayed.set("Line.Temp", 33.5)
        await _read_until_good(d, 5.0)
        r = await d.read(plan)
        assert r.raw[0] == 33.5


async def test_a_silent_server_makes_subscriptions_stale_then_pushes_resume(
        relayed: OpcUaSim, pki: Pki) -> None:
    d = OpcUaDriver(make_spec(relayed.url(), pki.options(), timeout_s=TIMEOUT_S))
    async with d:
        sink = RecordingSink()
        lost: list[Reason] = []
        original = sink.lost

        def record(slots, reason):  # type: ignore[no-untyped-def]
            lost.append(reason)
            original(slots, reason)

        sink.lost = record  # type: ignore[method-assign]
        await relayed.set("Line.Temp", 1.0)
        await d.subscribe([TEMP], sink)
        await sink.wait_for(lambda: sink.latest_equals(TEMP, 1.0), 3, "initial value")
        relayed.set_silent(True)
        start = time.monotonic()
        await sink.wait_for(lambda: bool(sink.lost_slots), 6 * TIMEOUT_S, "the loss")
        assert time.monotonic() - start <= 5 * TIMEOUT_S
        assert sink.lost_slots[0] == TEMP.slot and lost[0] == Reason.SUBSCRIPTION_LOST
        await relayed.set("Line.Temp", 2.0)  # not delivered while silent
        await asyncio.sleep(0.3)
        assert not sink.latest_equals(TEMP, 2.0)
        relayed.set_silent(False)
        await relayed.set("Line.Temp", 3.0)
        await sink.wait_for(lambda: sink.latest_equals(TEMP, 3.0), 10,
                            "pushes after the server answers again")
        assert d.health.resubscribes >= 1
