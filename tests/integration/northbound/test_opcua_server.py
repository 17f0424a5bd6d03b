"""The line's OPC UA server against a real asyncua Client on 127.0.0.1: the namespace and
node ids, values with their StatusCode and SourceTimestamp following the image, engineering
units, guarded and audited writes by role, security and the trust list, PackML unit methods."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
import pytest_asyncio
from asyncua import Client, ua
from asyncua.crypto import security_policies
from asyncua.ua import uaerrors

from smartline.config import load_line
from smartline.core import VirtualClock
from smartline.cycle import JsonlAudit
from smartline.drivers.memory import MemoryBus, MemoryDriver
from smartline.drivers.opcua.certs import create_certificate
from smartline.line import Line
from smartline.northbound import _config as nb
from smartline.northbound.opcua import LineServer, unit_id
from smartline.recipes._units import UnitRuntime, load_units, with_units
from smartline.recipes.packml import State

pytestmark = pytest.mark.asyncio(loop_scope="module")

NS = "urn:smartline:ua-line"
OP_PW, VIEW_PW = "op-secret", "view-secret"

LINE = """\
smartline: 1
line: ua-line
devices:
  m: {{url: "memory://ua-line-m"}}
tags:
  temp: {{device: m, address: "temp:float32", unit: degC, limits: [0, 300]}}
  speed_sp: {{device: m, address: "speed_sp:uint16", access: rw, unit: rpm, limits: [0, 1500]}}
  running: {{device: m, address: "running:bool"}}
  ready: {{device: m, address: "ready:bool"}}
  start: {{device: m, address: "start:bool", access: rw}}
  label: {{device: m, address: "label:string<16>", access: rw}}
  profile: {{device: m, address: "profile:float64[4]", access: rw}}
  torque: {{device: m, address: "torque:int16", scale: {{gain: 0.1}}, unit: N.m}}
  count: {{device: m, address: "count:uint32", unit: bottles}}
units:
  filler:
    description: the filler
    state:
      EXECUTE: "running"
      IDLE: "ready and not running"
    commands:
      START: {{write: {{start: true}}}}
    packtags:
      produced: count
northbound:
  opcua:
    endpoint: "opc.tcp://127.0.0.1:0/smartline/"
    security: {security}
    {certs}
    users:
      operator: {{password_env: UA_OP_PW, role: operator}}
      viewer: {{password_env: UA_VIEW_PW, role: viewer}}
    anonymous: true
"""
CERTS = """certificate: pki/server.der
    private_key: pki/server.pem
    trust: [pki/trusted]"""


@dataclass
class Rig:
    folder: Path
    line: Line
    units: UnitRuntime
    server: LineServer
    bus: MemoryBus
    clock: VirtualClock
    audit: Path

    async def settle(self) -> None:
        """The devices are read, the units derive their states, the server publishes."""
        with contextlib.suppress(Exception):
            await self.line.read()
        for _ in range(2):
            self.clock.advance_ns(100_000_000)
            await self.units.step(self.clock.now_ns())
            await self.units.drain()
        await self.server.step(self.clock.now_ns())

    def audited(self) -> list[dict[str, Any]]:
        return [json.loads(x) for x in self.audit.read_text().splitlines() if x.strip()]


def _pki(folder: Path) -> None:
    pki = folder / "pki"
    create_certificate(pki / "server.der", pki / "server.pem",
                       application_uri="urn:smartline:test-server", common_name="server",
                       hostnames=["127.0.0.1", "localhost"])
    create_certificate(pki / "client.der", pki / "client.pem",
                       application_uri="urn:smartline:test-client", common_name="client")
    create_certificate(pki / "stranger.der", pki / "stranger.pem",
                       application_uri="urn:smartline:test-client", common_name="stranger")
    (pki / "trusted").mkdir()
    (pki / "trusted" / "client.der").write_bytes((pki / "client.der").read_bytes())


async def _rig(folder: Path, security: str) -> Rig:
    folder.mkdir(parents=True, exist_ok=True)
    if security != "none":
        _pki(folder)
    path = folder / "line.yaml"
    path.write_text(LINE.format(security=security, certs=CERTS if security != "none" else ""))
    config = load_line(path)
    units = load_units(config)
    clock = VirtualClock()
    audit = folder / "audit.jsonl"
    line = Line(with_units(config, units), clock=clock, audit=JsonlAudit(audit))
    runtime = UnitRuntime(units, line, clock=clock)
    ua_config = nb.load_northbound(config).opcua
    assert ua_config is not None
    server = LineServer(ua_config, line, units=runtime, clock=clock,
                        env={"UA_OP_PW": OP_PW, "UA_VIEW_PW": VIEW_PW})
    await server.start()
    driver = line.io.driver("m")
    assert isinstance(driver, MemoryDriver)
    return Rig(folder, line, runtime, server, driver.bus, clock, audit)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def rig(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Rig]:
    r = await _rig(tmp_path_factory.mktemp("ua-secure"), "sign-and-encrypt")
    yield r
    await r.server.aclose()
    await r.units.aclose()
    await r.line.close()


@contextlib.asynccontextmanager
async def connect(rig: Rig, user: str | None = None, password: str | None = None, *,
                  cert: str | None = "client", mode: ua.MessageSecurityMode =
                  ua.MessageSecurityMode.SignAndEncrypt) -> AsyncIterator[Client]:
    client = Client(rig.server.url, timeout=5)
    if cert is not None:
        pki = rig.folder / "pki"
        client.application_uri = "urn:smartline:test-client"
        await client.set_security(security_policies.SecurityPolicyBasic256Sha256,
                                  str(pki / f"{cert}.der"), str(pki / f"{cert}.pem"),
                                  server_certificate=str(pki / "server.der"), mode=mode)
    if user is not None:
        client.set_user(user)
        client.set_password(password or "")
    await client.connect()
    try:
        yield client
    finally:
        await client.disconnect()


def _utc(ns: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC)


def _port(client: Client) -> int:
    transport = cast(Any, client.uaclient.protocol).transport
    return int(transport.get_extra_info("sockname")[1])


# -- the address space ---------------------------------------------------------------------

async def test_every_tag_is_a_variable_named_by_the_tag_under_its_device(rig: Rig) -> None:
    async with connect(rig, "viewer", VIEW_PW) as client:
        idx = await client.get_namespace_index(NS)
        assert idx == rig.server.namespace_index
        objects = client.nodes.objects
        temp = await objects.get_child([f"{idx}:ua-line", f"{idx}:m", f"{idx}:temp"])
        assert temp.nodeid == ua.NodeId("temp", idx)
        names = {(await c.read_browse_name()).Name
                 for c in await (await objects.get_child([f"{idx}:ua-line", f"{idx}:m"]))
                 .get_children()}
        assert {"temp", "speed_sp", "label", "profile", "torque", "count"} <= names
        kinds = {}
        for tag in ("temp", "speed_sp", "running", "label", "profile", "torque", "count"):
            node = client.get_node(ua.NodeId(tag, idx))
            kinds[tag] = (await node.read_data_type()).Identifier
        assert kinds == {"temp": ua.ObjectIds.Float, "speed_sp": ua.ObjectIds.UInt16,
                         "running": ua.ObjectIds.Boolean, "label": ua.ObjectIds.String,
                         "profile": ua.ObjectIds.Double, "torque": ua.ObjectIds.Double,
                         "count": ua.ObjectIds.UInt32}
        profile = client.get_node(ua.NodeId("profile", idx))
        assert await profile.read_value_rank() == ua.ValueRank.OneDimension
        assert await profile.read_array_dimensions() == [4]
        speed = client.get_node(ua.NodeId("speed_sp", idx))
        assert ua.AccessLevel.CurrentWrite in await speed.get_access_level()
        assert ua.AccessLevel.CurrentWrite not in await temp.get_access_level()
        # a viewer is told it may not write it; an operator that it may
        assert ua.AccessLevel.CurrentWrite not in await speed.get_user_access_level()
    async with connect(rig, "operator", OP_PW) as client:
        speed = client.get_node(ua.NodeId("speed_sp", idx))
        assert ua.AccessLevel.CurrentWrite in await speed.get_user_access_level()
        temp = client.get_node(ua.NodeId("temp", idx))
        assert ua.AccessLevel.CurrentWrite not in await temp.get_user_access_level()
        state = client.get_node(ua.NodeId("filler.state", idx))
        # the units' PackTags are tags too (device packml)
        assert (await state.read_browse_name()).Name == "filler.state"


async def test_engineering_units_and_range(rig: Rig) -> None:
    async with connect(rig, "viewer", VIEW_PW) as client:
        idx = await client.get_namespace_index(NS)
        temp = client.get_node(ua.NodeId("temp", idx))
        assert (await temp.read_type_definition()) == ua.NodeId(ua.ObjectIds.AnalogItemType)
        eu = await (await temp.get_child("0:EngineeringUnits")).read_value()
        assert eu.UnitId == unit_id("CEL") == 4408652
        assert eu.NamespaceUri == "http://www.opcfoundation.org/UA/units/un/cefact"
        assert eu.DisplayName.Text == "°C"
        rng = await (await temp.get_child("0:EURange")).read_value()
        assert (rng.Low, rng.High) == (0.0, 300.0)
        torque = await (await client.get_node(ua.NodeId("torque", idx))
                        .get_child("0:EngineeringUnits")).read_value()
        assert torque.UnitId == unit_id("NU")
        count = await (await client.get_node(ua.NodeId("count", idx))
                       .get_child("0:EngineeringUnits")).read_value()
        assert (count.UnitId, count.DisplayName.Text) == (-1, "bottles")


async def test_values_follow_the_image_with_status_and_source_time(rig: Rig) -> None:
    async with connect(rig, "viewer", VIEW_PW) as client:
        idx = await client.get_namespace_index(NS)
        node = client.get_node(ua.NodeId("temp", idx))
        rig.bus.set("temp", 21.5)
        rig.bus.set("profile", [1.0, 2.0, 3.0, 4.0])
        rig.bus.set("label", "batch-7")
        await rig.settle()
        dv = await node.read_data_value()
        image = rig.line.image.get("temp")
        assert dv.StatusCode.value == ua.StatusCodes.Good
        assert dv.Value.Value == pytest.approx(21.5)
        assert image.source_ns and dv.SourceTimestamp == _utc(image.source_ns)
        profile = await client.get_node(ua.NodeId("profile", idx)).read_value()
        assert profile == [1.0, 2.0, 3.0, 4.0]
        assert await client.get_node(ua.NodeId("label", idx)).read_value() == "batch-7"
        rig.bus.set("temp", 80.25)
        await rig.settle()
        assert await node.read_value() == pytest.approx(80.25)
        # the device fails: the value goes Bad with the reason's code, and comes back
        rig.bus.garbage = True
        try:
            await rig.settle()
            dv = await node.read_data_value(raise_on_bad_status=False)
            assert dv.StatusCode.value == ua.StatusCodes.BadCommunicationError
            assert dv.Value.Value is None
        finally:
            rig.bus.garbage = False
        for _ in range(50):  # the driver reconnects after its backoff
            await rig.settle()
            dv = await node.read_data_value(raise_on_bad_status=False)
            if dv.StatusCode.value == ua.StatusCodes.Good:
                break
            await asyncio.sleep(0.05)
        assert (dv.StatusCode.value, dv.Value.Value) == (ua.StatusCodes.Good,
                                                         pytest.approx(80.25))


async def test_subscribers_hear_of_changes(rig: Rig) -> None:
    async with connect(rig, "viewer", VIEW_PW) as client:
        idx = await client.get_namespace_index(NS)
        sub = await client.create_subscription(20, None)
        async with sub:
            await sub.subscribe_data_change([client.get_node(ua.NodeId("temp", idx))])
            seen: list[float] = []
            rig.bus.set("temp", 42.0)
            await rig.settle()
            async with asyncio.timeout(5):
                async for event in sub:
                    seen.append(event.value)
                    if event.value == 42.0:
                        break
        assert seen[-1] == 42.0


# -- writes --------------------------------------------------------------------------------

async def test_an_operator_writes_through_the_guard_and_the_audit(rig: Rig) -> None:
    async with connect(rig, "operator", OP_PW) as client:
        idx = await client.get_namespace_index(NS)
        node = client.get_node(ua.NodeId("speed_sp", idx))
        await node.write_value(ua.DataValue(ua.Variant(1200, ua.VariantType.UInt16)))
        assert rig.bus.values["speed_sp"] == 1200
        entry = rig.audited()[-1]
        assert (entry["tag"], entry["value"], entry["outcome"]) == ("speed_sp", 1200, "ok")
        assert entry["source"] == f"opcua:operator@127.0.0.1:{_port(client)}"
        # the value reaches the address space at the next read and step
        await rig.settle()
        assert await node.read_value() == 1200


async def test_over_the_limits_is_bad_out_of_range_and_audited(rig: Rig) -> None:
    async with connect(rig, "operator", OP_PW) as client:
        idx = await client.get_namespace_index(NS)
        node = client.get_node(ua.NodeId("speed_sp", idx))
        before = rig.bus.values.get("speed_sp")
        with pytest.raises(uaerrors.BadOutOfRange):
            await node.write_value(ua.DataValue(ua.Variant(2000, ua.VariantType.UInt16)))
        assert rig.bus.values.get("speed_sp") == before
        entry = rig.audited()[-1]
        assert (entry["tag"], entry["outcome"]) == ("speed_sp", "refused")
        assert "outside limits" in entry["detail"]
        assert re.fullmatch(r"opcua:operator@127\.0\.0\.1:\d+", entry["source"])
        with pytest.raises(uaerrors.BadNotWritable):
            await client.get_node(ua.NodeId("temp", idx)).write_value(
                ua.DataValue(ua.Variant(5.0, ua.VariantType.Float)))
        assert "read-only" in rig.audited()[-1]["detail"]
        with pytest.raises(uaerrors.BadTypeMismatch):
            await node.write_value(ua.DataValue(ua.Variant("fast", ua.VariantType.String)))


@pytest.mark.parametrize("login", [("viewer", VIEW_PW), (None, None)], ids=["viewer", "anonymous"])
async def test_a_viewer_or_anonymous_never_writes(rig: Rig, login: tuple[str | None, str | None]
                                                  ) -> None:
    async with connect(rig, *login) as client:
        idx = await client.get_namespace_index(NS)
        assert await client.get_node(ua.NodeId("temp", idx)).read_value() is not None
        before = rig.bus.values.get("speed_sp")
        with pytest.raises(uaerrors.BadUserAccessDenied):
            await client.get_node(ua.NodeId("speed_sp", idx)).write_value(
                ua.DataValue(ua.Variant(100, ua.VariantType.UInt16)))
        assert rig.bus.values.get("speed_sp") == before
        entry = rig.audited()[-1]
        who = login[0] or "anonymous"
        assert (entry["tag"], entry["outcome"]) == ("speed_sp", "refused")
        assert entry["source"] == f"opcua:{who}@127.0.0.1:{_port(client)}"


async def test_a_wrong_password_is_refused(rig: Rig) -> None:
    with pytest.raises(uaerrors.BadUserAccessDenied):
        async with connect(rig, "operator", "guess"):
            pass


# -- security ------------------------------------------------------------------------------

async def test_an_untrusted_client_certificate_is_rejected(rig: Rig) -> None:
    with pytest.raises(uaerrors.BadCertificateUntrusted):
        async with connect(rig, "operator", OP_PW, cert="stranger"):
            pass


async def test_no_security_and_sign_only_are_not_offered_by_default(rig: Rig) -> None:
    with pytest.raises((uaerrors.UaError, OSError, TimeoutError)):
        async with connect(rig, "operator", OP_PW, cert=None):
            pass
    with pytest.raises((uaerrors.UaError, OSError, TimeoutError)):
        async with connect(rig, "operator", OP_PW, mode=ua.MessageSecurityMode.Sign):
            pass
    endpoints = await Client(rig.server.url, timeout=5).connect_and_get_server_endpoints()
    assert {(e.SecurityPolicyUri.rsplit("#", 1)[1], e.SecurityMode) for e in endpoints} == {
        ("Basic256Sha256", ua.MessageSecurityMode.SignAndEncrypt),
        ("Aes256_Sha256_RsaPss", ua.MessageSecurityMode.SignAndEncrypt)}


async def test_security_none_works_when_configured(tmp_path: Path) -> None:
    r = await _rig(tmp_path / "ua-none", "none")
    try:
        async with connect(r, "operator", OP_PW, cert=None) as client:
            idx = await client.get_namespace_index(NS)
            assert idx == r.server.namespace_index
            node = client.get_node(ua.NodeId("temp", idx))
            dv = await node.read_data_value(raise_on_bad_status=False)  # never read yet
            assert dv.StatusCode.value == ua.StatusCodes.BadWaitingForInitialData
            assert dv.SourceTimestamp is None
            r.bus.set("temp", 7.0)
            await r.settle()
            assert await node.read_value() == 7.0
            # SetUnitMode: the unit is STOPPED, where its mode may change
            unit = client.get_node(ua.NodeId("PackML/filler/", idx))
            mode = client.get_node(ua.NodeId("PackML/filler/Status/UnitModeCurrent", idx))
            await unit.call_method(ua.NodeId("PackML/filler/SetUnitMode", idx),
                                   ua.Variant(2, ua.VariantType.Int32))
            assert r.units.mode("filler").name == "maintenance"
            assert await mode.read_value() == 2
            with pytest.raises(uaerrors.BadInvalidArgument):
                await unit.call_method(ua.NodeId("PackML/filler/SetUnitMode", idx),
                                       ua.Variant(99, ua.VariantType.Int32))
    finally:
        await r.server.aclose()
        await r.units.aclose()
        await r.line.close()


async def test_security_sign_offers_sign_only(tmp_path: Path) -> None:
    r = await _rig(tmp_path / "ua-sign", "sign")
    try:
        endpoints = await Client(r.server.url, timeout=5).connect_and_get_server_endpoints()
        assert {e.SecurityMode for e in endpoints} == {ua.MessageSecurityMode.Sign}
        async with connect(r, "viewer", VIEW_PW, mode=ua.MessageSecurityMode.Sign) as client:
            idx = await client.get_namespace_index(NS)
            assert await client.get_node(ua.NodeId("temp", idx)).read_browse_name()
        with pytest.raises(uaerrors.BadCertificateUntrusted):
            async with connect(r, "viewer", VIEW_PW, cert="stranger",
                               mode=ua.MessageSecurityMode.Sign):
                pass
    finally:
        await r.server.aclose()
        await r.units.aclose()
        await r.line.close()


# -- PackML units --------------------------------------------------------------------------

async def _call(client: Client, idx: int, name: str, *args: ua.Variant) -> None:
    machine = client.get_node(ua.NodeId("PackML/filler/BaseStateMachine", idx))
    await machine.call_method(ua.NodeId(f"PackML/filler/BaseStateMachine/{name}", idx), *args)


async def test_unit_start_refused_in_the_wrong_state_then_accepted(rig: Rig) -> None:
    async with connect(rig, "operator", OP_PW) as client:
        idx = await client.get_namespace_index(NS)
        state = client.get_node(ua.NodeId("PackML/filler/BaseStateMachine/CurrentState", idx))
        number = client.get_node(ua.NodeId(
            "PackML/filler/BaseStateMachine/CurrentState/Number", idx))
        rig.bus.set("ready", 0)
        rig.bus.set("running", 0)
        rig.bus.set("start", 0)
        await rig.settle()
        assert rig.units.state("filler") is State.STOPPED
        with pytest.raises(uaerrors.BadInvalidState):
            await _call(client, idx, "Start")
        assert rig.bus.values.get("start", 0) == 0
        refused = rig.audited()[-1]
        assert (refused["tag"], refused["outcome"]) == ("filler.command", "refused")
        rig.bus.set("ready", 1)
        await rig.settle()
        assert (await state.read_value()).Text == "Idle"
        assert await number.read_value() == int(State.IDLE)
        await _call(client, idx, "Start")
        await rig.units.drain()
        assert rig.bus.values["start"] == 1
        written = [e for e in rig.audited() if e["tag"] == "start"][-1]
        assert written["source"] == f"unit:filler/opcua:operator@127.0.0.1:{_port(client)}"
        rig.bus.set("running", 1)
        await rig.settle()
        assert await number.read_value() == int(State.EXECUTE)
        mode = client.get_node(ua.NodeId("PackML/filler/Status/UnitModeCurrent", idx))
        assert await mode.read_value() == 1


async def test_a_viewer_may_not_command_a_unit(rig: Rig) -> None:
    async with connect(rig, "viewer", VIEW_PW) as client:
        idx = await client.get_namespace_index(NS)
        with pytest.raises(uaerrors.BadUserAccessDenied):
            await _call(client, idx, "Stop")
        unit = client.get_node(ua.NodeId("PackML/filler/", idx))
        with pytest.raises(uaerrors.BadUserAccessDenied):
            await unit.call_method(ua.NodeId("PackML/filler/SetUnitMode", idx),
                                   ua.Variant(2, ua.VariantType.Int32))
