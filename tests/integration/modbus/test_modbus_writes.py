"""Writes: coalescing into FC15/FC16, single FC5/FC6, bits in registers, refusals."""

from __future__ import annotations

import pytest
from modbus_support import make_driver, points

from smartline.core import WriteItem, WriteRefusedError
from smartline.hil.modbus import ModbusDeviceSim

MAP = {"a": "hr:10", "b": "hr:11:float32", "c": "hr:13:int16", "far": "hr:40",
       "c0": "co:0", "c1": "co:1", "c2": "co:2", "lone": "co:9", "word": "hr:20",
       "ro": "ir:0"}


async def test_adjacent_writes_are_coalesced(sim_factory) -> None:
    dev = ModbusDeviceSim(1, MAP)
    sim = await sim_factory(dev)
    pts = {p.tag: p for p in points(*MAP.values(), names=list(MAP))}
    async with make_driver(sim) as d:
        await d.write([WriteItem(pts["a"], 1), WriteItem(pts["b"], 2.5), WriteItem(pts["c"], -4),
                       WriteItem(pts["far"], 9), WriteItem(pts["c0"], True),
                       WriteItem(pts["c1"], False), WriteItem(pts["c2"], True),
                       WriteItem(pts["lone"], True)])
        fcs = sorted((w.function_code, w.address, len(w.values)) for w in dev.writes)
        assert fcs == [(5, 9, 1), (6, 40, 1), (15, 0, 3), (16, 10, 4)]
        assert d.stats()["requests"] == 4
    assert dev.get("b") == 2.5 and dev.get("c") == -4 and dev.get("c2") is True


async def test_write_multiple_only_uses_fc16_and_fc15(sim_factory) -> None:
    dev = ModbusDeviceSim(1, MAP)
    sim = await sim_factory(dev)
    pts = {p.tag: p for p in points(*MAP.values(), names=list(MAP))}
    async with make_driver(sim, write_multiple_only=True) as d:
        await d.write([WriteItem(pts["far"], 3), WriteItem(pts["lone"], True)])
    assert sorted(w.function_code for w in dev.writes) == [15, 16]


async def test_bits_in_a_register_are_read_modified_written(sim_factory) -> None:
    dev = ModbusDeviceSim(1, MAP)
    dev.set_registers("hr", 20, [0b1000_0000_0000_0001])
    sim = await sim_factory(dev)
    async with make_driver(sim) as d:
        await d.write([WriteItem(points("hr:20.0")[0], False),
                       WriteItem(points("hr:20.4")[0], True),
                       WriteItem(points("hr:20.5")[0], 1)])
    assert dev.get_registers("hr", 20, 1) == [0b1000_0000_0011_0000]
    assert [w.function_code for w in dev.writes] == [6]


async def test_refusals_send_nothing(sim_factory) -> None:
    dev = ModbusDeviceSim(1, MAP)
    sim = await sim_factory(dev)
    async with make_driver(sim) as d:
        with pytest.raises(WriteRefusedError, match="read-only"):
            await d.write([WriteItem(points("ir:0")[0], 1)])
        with pytest.raises(WriteRefusedError, match="cannot encode"):
            await d.write([WriteItem(points("hr:10:int16")[0], 70000)])
        with pytest.raises(WriteRefusedError, match="bool"):
            await d.write([WriteItem(points("hr:20.1")[0], 2)])
    assert dev.writes == []


async def test_a_value_longer_than_one_write_request_is_refused(sim_factory) -> None:
    dev = ModbusDeviceSim(1, {"arr": "hr:40:int16[4]"})
    sim = await sim_factory(dev)
    async with make_driver(sim, max_write_registers=3) as d:
        with pytest.raises(WriteRefusedError, match="longer than one write request") as info:
            await d.write([WriteItem(points("hr:40:float64")[0], 1.5)])
        assert info.value.device == "dev" and d.health.failures == 0
        await d.write([WriteItem(points("hr:40:int16[4]")[0], (1, 2, 3, 4))])  # cut at 3
    assert [(w.address, len(w.values)) for w in dev.writes] == [(40, 3), (43, 1)]
