"""The CPU itself: its run/stop state as a tag, browse (SZL identity, blocks), TSAPs."""

from __future__ import annotations

import pytest
from s7_support import driver, points, value_at

from smartline.core import ConfigError, ConnectError, DeviceSpec, Quality, parse_url
from smartline.drivers.s7 import S7Driver
from smartline.hil.s7 import S7Identity, S7PlcSim


async def test_cpu_state_is_a_tag(s7_factory) -> None:
    plc = S7PlcSim({"x": "DB1.DBW0"})
    sim = await s7_factory(plc)
    pts = points("CPU.STATE", "CPU.RUN", "DB1.DBW0")
    async with driver(sim) as d:
        plan = d.plan(pts)
        assert plan.request_count == 2  # one Read Var job and one SZL request
        r = await d.read(plan)
        assert (value_at(r, pts[0]), value_at(r, pts[1])) == (8.0, 1.0)
        plc.stop()
        r = await d.read(plan)
        assert (value_at(r, pts[0]), value_at(r, pts[1])) == (4.0, 0.0)
        assert (r.quality == Quality.GOOD).all()
        assert d.stats()["cpu_state"] == "STOP"


async def test_browse_gives_identity_and_data_blocks(s7_factory) -> None:
    plc = S7PlcSim({"a": "DB10.DBD0:DINT", "b": "DB11.DBB0:STRING[40]"},
                   identity=S7Identity(order_number="6ES7 215-1AG40-0XB0", firmware=(4, 6, 1),
                                       module_type="CPU 1215C DC/DC/DC"))
    sim = await s7_factory(plc, pdu_max=240)
    async with driver(sim) as d:
        found = await d.browse()
    ident = found.identity
    assert ident["order_number"] == "6ES7 215-1AG40-0XB0"
    assert ident["firmware"] == "V4.6.1"
    assert ident["module_type"] == "CPU 1215C DC/DC/DC"
    assert ident["state"] == "RUN" and ident["pdu_size"] == 240
    by_name = {p.name: p for p in found.points}
    assert by_name["db10"].address == "DB10.DBB0:BYTE[16]"
    assert by_name["db11"].address == "DB11.DBB0:BYTE[42]"
    assert by_name["cpu.state"].address == "CPU.STATE"
    assert found.notes == ()


async def test_connection_by_tsap(s7_factory) -> None:
    plc = S7PlcSim({"a": "DB1.DBW0"})
    plc.set("a", 4711)
    sim = await s7_factory(plc, rack=0, slot=2)  # an S7-300 CPU: remote TSAP 0x0102
    pts = points("DB1.DBW0")
    async with driver(sim, "local_tsap=0x1000&remote_tsap=0x0102") as d:
        assert value_at(await d.read(d.plan(pts)), pts[0]) == 4711
    assert sim.connections[-1] == (0x1000, 0x0102)
    async with driver(sim, "remote_tsap=258") as d:  # decimal; local defaults to 0x0100
        await d.connect()
    assert sim.connections[-1] == (0x0100, 0x0102)
    # the wrong rack/slot: the CPU refuses the connection
    d = driver(sim, "rack=0&slot=1")
    with pytest.raises(ConnectError):
        await d.connect()
    await d.close()


@pytest.mark.parametrize(("query", "message"), [
    ("rack=0&remote_tsap=0x0101", "either by rack/slot or by local_tsap/remote_tsap"),
    ("local_tsap=0x0100", "local_tsap without remote_tsap"),
    ("remote_tsap=0x1FFFF", "expected a TSAP as hex"),
])
def test_tsap_options_are_checked(query: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        S7Driver(DeviceSpec("plc", parse_url(f"s7://127.0.0.1:1102?{query}")))
