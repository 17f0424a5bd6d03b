"""Every GRBL profile in drivers/grbl/: each point is planned, read and (where writable)
written against the simulated controller."""

from __future__ import annotations

from pathlib import Path

import pytest
from grbl_support import driver, until

from smartline.config import data_dir, load_profile
from smartline.core import Point, Quality, WriteItem, WriteValue
from smartline.drivers.cnc.grbl import GRBL_POINTS, point_kind
from smartline.hil.grbl import GrblSim

PROFILES = sorted((data_dir("drivers") / "grbl").glob("*.yaml"))
_MDI = "G0 X1 Y2"


def test_there_is_a_grbl_profile() -> None:
    names = {load_profile(p).name for p in PROFILES}
    assert "grbl/grbl-1.1" in names
    for p in PROFILES:
        profile = load_profile(p)
        assert profile.family == "cnc"
        assert profile.manual.url.startswith("https://github.com/gnea/grbl")


def _write_value(name: str, current: float | None) -> WriteValue:
    kind = point_kind(name)
    if isinstance(kind, int):
        assert current is not None
        return int(current) if kind in (10, 13, 20, 22) else current + 1
    return {"ov.feed": 120, "ov.rapid": 50, "ov.spindle": 80, "mdi": _MDI}.get(kind, True)


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.stem)
async def test_profile_points_read_and_write(sim: GrblSim, path: Path) -> None:
    profile = load_profile(path)
    with sim.lock:
        sim.controller.settings[10] = 3  # Bf: in the reports, for buffer.*
    pts = [Point(name, i, p.address) for i, (name, p) in enumerate(profile.points.items())]
    for p in pts:
        assert point_kind(p.tag) is not None
        if p.tag in GRBL_POINTS:  # the profile says what the driver says
            assert profile.points[p.tag].access.value == GRBL_POINTS[p.tag][1], p.tag
    readable = [p for p in pts if profile.points[p.tag].access.value != "w"]
    async with driver(sim) as d:
        plan = d.plan(readable)
        await d.read(plan)
        r = await d.read(plan)
        bad = [p.tag for p in readable if r.quality[r.slots.tolist().index(p.slot)]
               != Quality.GOOD]
        assert bad == []
        current = {p.tag: float(r.raw[r.slots.tolist().index(p.slot)]) for p in readable}
        writable = [p for p in pts if profile.points[p.tag].access.value != "r"]
        # a reset clears the overrides (GRBL zeroes its system state): first; homing last
        order = sorted(writable, key=lambda p: {"reset": 0, "hold": 2, "home": 3}.get(p.tag, 1))
        for p in order:
            if p.tag == "home":
                await d.write([WriteItem(_point(pts, "setting.s22"), 1)])
            if p.tag == "reset":
                resets = sim.controller.resets
            value = _write_value(p.tag, current.get(p.tag))
            await d.write([WriteItem(p, value)])
            if p.tag == "reset":
                await until(lambda r=resets: sim.controller.resets == r + 1, what="the reset")
                await d.write([WriteItem(_point(pts, "unlock"), True)])
            if p.tag == "mdi":  # '$' writes need the machine Idle (else error:8)
                await until(lambda: sim.controller.state == "Idle", what="the move to end")
            if p.tag == "hold":
                await until(lambda: sim.controller.state == "Hold", what="the hold")
                await d.write([WriteItem(p, False)])
            kind = point_kind(p.tag)
            if isinstance(kind, int):
                assert sim.controller.settings[kind] == float(value), p.tag  # type: ignore[arg-type]
        assert _MDI.replace(" ", "") in sim.controller.lines_executed
        assert sim.controller.ov_feed == 120 and sim.controller.ov_rapid == 50
        await until(lambda: sim.controller.state == "Idle", what="homing to end")
        assert sim.controller.mpos == [0.0, 0.0, 0.0]  # homed last


def _point(pts: list[Point], name: str) -> Point:
    return next(p for p in pts if p.tag == name)
