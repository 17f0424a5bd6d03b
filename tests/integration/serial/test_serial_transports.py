"""One instrument (the MT-SICS scale) over every kind of port pyserial opens: a pty, a
``socket://`` serial server and an ``rfc2217://`` server, with reads, writes and browse."""

from __future__ import annotations

import pytest

from smartline.config import load_profile
from smartline.core import DeviceError, Quality, WriteItem
from smartline.hil.serial import SerialInstrumentSim

from .conftest import SCALE, make_driver, points, value

TRANSPORTS = ("pty", "socket", "rfc2217")


def port_of(sim: SerialInstrumentSim, transport: str) -> str:
    if transport == "pty":
        return sim.pty_path
    if transport == "socket":
        return sim.socket_url()
    return sim.rfc2217_url()


@pytest.mark.filterwarnings("ignore:set(Daemon|Name)\\(\\) is deprecated:DeprecationWarning")
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_scale_reads_and_writes(scale_sim: SerialInstrumentSim, transport: str) -> None:
    profile = load_profile(SCALE)
    timeout = 2.0 if transport == "rfc2217" else 0.5  # RFC 2217 negotiates on open
    async with make_driver(port_of(scale_sim, transport), profile, timeout_s=timeout) as d:
        assert d.identity == {"serial_number": "B207696838"}
        pts = points("weight", "weight_now", "stable", "serial_number", "tare_weight")
        plan = d.plan(pts)
        r = await d.read(plan)
        assert (r.quality == Quality.GOOD).all(), dict(r.notes)
        assert [value(r, p) for p in pts] == [100.0, 100.0, 1.0, "B207696838", 0.0]
        scale_sim.set("weight", 250.5)
        await d.write([WriteItem(pts[4], 20.25)])  # TA 20.25 g: preset tare
        r = await d.read(plan)
        assert value(r, pts[0]) == 250.5 - 20.25
        assert value(r, pts[4]) == 20.25
        zero, tare = points("zero", "tare", start=10)
        await d.write([WriteItem(tare, True)])  # T: everything on the pan is tare now
        r = await d.read(plan)
        assert value(r, pts[0]) == 0.0 and value(r, pts[4]) == 250.5
        scale_sim.set("stable", False)
        with pytest.raises(DeviceError, match="Z I: not executed: busy"):
            await d.write([WriteItem(zero, True)])
        assert d.connected  # a refusal by the device is an answer: the link is fine
        scale_sim.set("stable", True)
        await d.write([WriteItem(zero, False)])  # false: a momentary command is not sent
        assert "zero" not in scale_sim.instrument.writes
        await d.write([WriteItem(zero, True)])
        assert scale_sim.instrument.writes["zero"] is True


async def test_browse_lists_what_the_profile_can_query(scale_sim: SerialInstrumentSim) -> None:
    profile = load_profile(SCALE)
    async with make_driver(scale_sim.pty_path, profile) as d:
        result = await d.browse()
    assert result.identity["serial_number"] == "B207696838"
    by_name = {p.name: p for p in result.points}
    assert by_name["weight"].access == "r" and by_name["weight"].unit == "g"
    assert "'S'" in by_name["weight"].description
    assert by_name["tare_weight"].access == "rw"
    assert by_name["zero"].access == "w"
    assert by_name["serial_number"].type == "string"
    assert by_name["stable"].type == "bool"
