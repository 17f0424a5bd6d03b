"""Holes: a merged read refused with "illegal data address" is split, remembered and logged;
no tag is lost, and tags truly inside a hole go BAD with DEVICE_ERROR."""

from __future__ import annotations

import logging
import random

import pytest
from modbus_support import make_driver, points

from smartline.core import Quality, Reason
from smartline.hil.modbus import ModbusDeviceSim


async def test_split_around_a_hole_in_a_gap(sim_factory, caplog) -> None:
    dev = ModbusDeviceSim(1, {"a": "hr:0", "b": "hr:2:float32", "c": "hr:10", "d": "hr:12:int32"},
                          initial={"a": 1, "b": 2.5, "c": 3, "d": -4})
    sim = await sim_factory(dev)
    pts = points("hr:0", "hr:2:float32", "hr:10", "hr:12:int32")
    caplog.set_level(logging.WARNING, logger="smartline.drivers.modbus")
    async with make_driver(sim, max_gap=16) as d:
        plan = d.plan(pts)
        assert plan.request_count == 1  # hr:0..13 in one request
        first = await d.read(plan)
        assert (first.quality == Quality.GOOD).all()
        assert first.raw.tolist() == [1, 2.5, 3, -4]
        assert first.requests > 1
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert warnings and all("hole" in r.getMessage() for r in warnings)
        assert d.stats()["holes"] >= 1
        caplog.clear()
        second = await d.read(plan)  # re-planned around the holes, silently
        assert (second.quality == Quality.GOOD).all()
        assert second.requests == plan.request_count < first.requests
        assert not caplog.records
        for req in plan.compiled.requests:  # no request touches a hole any more
            for s, e in d.holes.ranges("hr"):
                assert req.end <= s or e <= req.start


async def test_tag_inside_a_hole_is_bad_and_the_others_stay_good(sim_factory, transport) -> None:
    dev = ModbusDeviceSim(1, {"a": "hr:0", "c": "hr:5:uint32"}, initial={"a": 7, "c": 99})
    sim = await sim_factory(dev, transport)
    pts = points("hr:0", "hr:3", "hr:5:uint32")  # hr:3 does not exist on the device
    async with make_driver(sim, max_gap=8) as d:
        plan = d.plan(pts)
        for _ in range(2):
            r = await d.read(plan)
            assert r.quality.tolist() == [Quality.GOOD, Quality.BAD, Quality.GOOD]
            assert r.reason[1] == Reason.DEVICE_ERROR
            assert r.raw[0] == 7 and r.raw[2] == 99
        assert d.holes.ranges("hr") == ((1, 5),)  # hr:3 and the gap registers around it
        assert r.requests == 2


async def test_array_element_in_a_hole_loses_only_that_element(sim_factory) -> None:
    dev = ModbusDeviceSim(1, {"x0": "hr:0:uint16[2]", "x3": "hr:3:uint16[2]"})
    dev.set_registers("hr", 0, [10, 11, 0, 13, 14])
    sim = await sim_factory(dev)
    async with make_driver(sim) as d:
        r = await d.read(d.plan(points("hr:0:uint16[5]")))
    assert r.quality.tolist() == [0, 0, 3, 0, 0]
    assert r.raw[[0, 1, 3, 4]].tolist() == [10, 11, 13, 14]


async def test_forget_holes_probes_again(sim_factory) -> None:
    dev = ModbusDeviceSim(1, {"a": "hr:0", "b": "hr:4"}, initial={"a": 1, "b": 2})
    sim = await sim_factory(dev)
    async with make_driver(sim) as d:
        plan = d.plan(points("hr:0", "hr:4"))
        await d.read(plan)
        assert d.stats()["holes"] == 1 and plan.request_count == 2
        d.forget_holes()
        r = await d.read(plan)  # merged again, split again
        assert r.requests == 3 and (r.quality == 0).all()


@pytest.mark.parametrize("seed", range(6))
async def test_random_maps_with_holes_lose_no_tag(sim_factory, seed) -> None:
    rng = random.Random(seed)
    defined: dict[str, str] = {}
    wanted: list[str] = []
    offset = 0
    for i in range(12):
        offset += rng.choice([0, 0, 1, 2, 5])
        dtype = rng.choice(["uint16", "int16", "float32", "uint32"])
        text = f"hr:{offset}:{dtype}"
        if rng.random() < 0.8:
            defined[f"p{i}"] = text
        wanted.append(text)
        offset += 2 if dtype in ("float32", "uint32") else 1
    dev = ModbusDeviceSim(1, defined)
    for name in defined:
        dev.set(name, rng.randint(1, 1000))
    sim = await sim_factory(dev)
    pts = points(*wanted)
    async with make_driver(sim, max_gap=rng.choice([0, 3, 10]), max_registers=rng.choice([8, 125])
                           ) as d:
        plan = d.plan(pts)
        for _ in range(2):
            r = await d.read(plan)
            for i, p in enumerate(pts):
                present = p.address.canonical() in {
                    dev.points[n].address.canonical() for n in defined}
                assert (r.quality[i] == Quality.GOOD) == present, (p, d.holes.as_mapping())
                if present:
                    name = next(n for n in defined
                                if dev.points[n].address.canonical() == p.address.canonical())
                    assert r.raw[i] == dev.get(name)
