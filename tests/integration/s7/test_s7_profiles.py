"""Every S7 profile in drivers/: the simulator serves it, the driver reads and writes it."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from smartline.config import data_dir, load_profile
from smartline.core import Point, Quality, WriteItem
from smartline.drivers.families.s7 import S7CpuAddress
from smartline.hil.s7 import S7PlcSim
from smartline.tags import S7Address

PROFILES = sorted(p for p in data_dir("drivers").glob("**/*.yaml")
                  if load_profile(p).family == "s7")


def test_there_is_a_real_s7_profile() -> None:
    names = {load_profile(p).name for p in PROFILES}
    assert "siemens/s7-1200-filler" in names
    for p in PROFILES:
        manual = load_profile(p).manual
        assert manual.title and manual.url.startswith("https://")


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.stem)
async def test_profile_round_trip(s7_factory, path: Path) -> None:
    from s7_support import driver, value_at

    profile = load_profile(path)
    plc = S7PlcSim.from_profile(profile)
    sim = await s7_factory(plc, pdu_max=240)  # an S7-1200 negotiates 240
    pts, slot = [], 0
    for name, point in profile.points.items():
        pts.append(Point(name, slot, point.address))
        slot += point.address.elements
    options = {k: v for k, v in profile.defaults.items() if k != "timeout_ms"}
    async with driver(sim, "", **options) as d:
        r = await d.read(d.plan(pts))
        assert (r.quality == Quality.GOOD).all()
        for p in pts:
            hint = profile.points[p.tag].sim.get("value")
            if hint is None or isinstance(p.address, S7CpuAddress):
                continue
            raw = plc.to_raw(profile.points[p.tag], hint)
            got = value_at(r, p)
            if isinstance(raw, str):
                assert got == raw, p.tag
            else:
                assert math.isclose(float(got), float(raw), rel_tol=1e-6), p.tag
        writable = [p for p in pts if profile.points[p.tag].access.value == "rw"
                    and isinstance(p.address, S7Address)]
        assert writable
        items = []
        for p in writable:
            a = p.address
            assert isinstance(a, S7Address)
            if a.is_text:
                value: object = "X1"
            elif a.s7type == "BOOL":
                value = tuple([True] * a.elements) if a.count else True
            else:
                value = 2
            items.append(WriteItem(p, value))  # type: ignore[arg-type]
        await d.write(items)
        for it in items:
            got = plc.get(it.point.tag)
            want = list(it.value) if isinstance(it.value, tuple) else it.value
            assert got == want, it.point.tag
