"""Every Modbus profile in drivers/: the simulator serves it, the driver reads and writes it,
and both sides agree in engineering units."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from modbus_support import make_driver

from smartline.config import data_dir, load_profile
from smartline.core import Point, Quality, WriteItem
from smartline.hil.modbus import ModbusDeviceSim
from smartline.tags import DataType

PROFILES = sorted(p for p in Path(data_dir("drivers")).rglob("*.yaml")
                  if load_profile(p).family == "modbus")


def test_there_are_at_least_three_real_modbus_profiles() -> None:
    names = {load_profile(p).name for p in PROFILES}
    assert {"abb/acs580", "omron/e5cc", "eastron/sdm630"} <= names


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
async def test_profile_round_trip(sim_factory, path: Path) -> None:
    profile = load_profile(path)
    dev = ModbusDeviceSim.from_profile(profile, unit=3)
    sim = await sim_factory(dev, "rtu")
    options = {k: v for k, v in profile.defaults.items() if k != "timeout_ms"}
    pts, slot = [], 0
    for name, point in profile.points.items():
        pts.append(Point(name, slot, point.address))
        slot += point.address.elements
    async with make_driver(sim, 3, **options) as d:
        plan = d.plan(pts)
        result = await d.read(plan)  # may split around registers the manual does not list
        assert (result.quality == Quality.GOOD).all(), result.reason
        result = await d.read(plan)
        assert (result.quality == Quality.GOOD).all(), result.reason
        assert result.requests == plan.request_count  # holes learnt: no more splitting
        for _i, p in enumerate(pts):
            point = profile.points[p.tag]
            raw = float(result.raw[result.slots.tolist().index(p.slot)])
            eng = point.scale.to_eng(raw) if point.scale else raw
            assert math.isclose(eng, float(dev.get(p.tag)), rel_tol=1e-6, abs_tol=1e-9), p.tag
            hint = point.sim.get("value")
            if hint is not None:
                assert math.isclose(eng, float(hint), rel_tol=1e-6), (p.tag, eng, hint)
        writable = [p for p in pts if profile.points[p.tag].access.value == "rw"]
        items = []
        for p in writable:
            point = profile.points[p.tag]
            if point.address.dtype is DataType.BOOL:  # a coil or a register bit: flip it
                items.append(WriteItem(p, not bool(dev.get_raw(p.tag))))
                continue
            lo, hi = point.limits if point.limits else (0.0, 100.0)
            want = (lo + hi) / 2
            raw = point.scale.to_raw(want) if point.scale else want
            if point.address.dtype.is_integer:
                raw = round(raw)
            items.append(WriteItem(p, raw))
        await d.write(items)
        for it in items:
            point = profile.points[it.point.tag]
            got = float(dev.get_raw(it.point.tag))
            assert math.isclose(got, float(it.value), rel_tol=1e-6), it.point.tag
