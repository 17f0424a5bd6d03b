"""The public driver conformance suite (smartline.testing.conformance) against the simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from modbus_support import make_driver, points

from smartline.core import DriverBase, Point, WriteItem, WriteValue
from smartline.hil.modbus import ModbusDeviceSim, ModbusServerSim
from smartline.tags import parse_modbus
from smartline.testing.conformance import CHECKS, Harness, checks_for

MAP = {"speed": "hr:0:float32", "count": "hr:2:uint32:cdab", "flag": "co:0",
       "name": "hr:10:string<8>", "arr": "hr:20:int16[3]", "bit": "hr:30.4"}
VALUES: dict[str, WriteValue] = {"speed": 12.5, "count": 4_000_000_000, "flag": True,
                                 "name": "PUMP-7", "arr": (1, -2, 3), "bit": True}
#: 64-bit integers float64 cannot hold, served by the device but not among points()
EXACT = {"big": ("hr:40:uint64", 2**64 - 1), "neg": ("hr:44:int64:cdab", -(2**63) + 1),
         "odd": ("hr:48:int64:dcba", 2**53 + 1)}


@dataclass
class ModbusHarness:
    sim: ModbusServerSim
    dev: ModbusDeviceSim
    timeout_s: float = 0.3

    def make_driver(self) -> DriverBase[Any, Any]:
        return make_driver(self.sim, 1, timeout_s=self.timeout_s)

    def points(self) -> Sequence[Point]:
        return points(*MAP.values(), names=list(MAP))

    def value_for(self, point: Point) -> WriteValue:
        return VALUES[point.tag]

    async def set_latency(self, seconds: float) -> None:
        self.dev.faults.latency_s = seconds

    async def set_garbage(self, on: bool) -> None:
        self.dev.faults.garbage = on

    def refused_write(self) -> WriteItem:
        return WriteItem(Point("input", 90, parse_modbus("ir:0")), 1)  # read-only area

    def failing_point(self) -> Point:
        return Point("missing", 100, parse_modbus("hr:100"))  # not in the device's map

    def exact_points(self) -> Sequence[tuple[Point, int]]:
        return [(Point(name, 200 + i, parse_modbus(text)), value)
                for i, (name, (text, value)) in enumerate(EXACT.items())]

    def pushed_points(self) -> Sequence[Point]:
        return []  # Modbus devices are polled

    async def change(self, point: Point, value: WriteValue) -> None:
        self.dev.set_raw(point.tag, value)

    async def break_link(self) -> None:
        self.dev.faults.disconnect = True
        self.dev.faults.remaining = 1


@pytest.fixture
async def harness(transport: str) -> AsyncIterator[Harness]:
    dev = ModbusDeviceSim(1, {**MAP, **{name: text for name, (text, _) in EXACT.items()}})
    async with ModbusServerSim(dev, transport=transport) as sim:  # type: ignore[arg-type]
        yield ModbusHarness(sim, dev)


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
async def test_conformance(check: Callable[[Harness], Awaitable[None]],
                           harness: Harness) -> None:
    assert check in checks_for(harness)  # every check applies to Modbus (no push checks)
    await check(harness)
