"""The public driver conformance suite (smartline.testing.conformance) against the simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import pytest
from modbus_support import make_driver, points

from smartline.core import DriverBase, Point, WriteValue
from smartline.hil.modbus import ModbusDeviceSim, ModbusServerSim
from smartline.testing.conformance import CHECKS, Harness

MAP = {"speed": "hr:0:float32", "count": "hr:2:uint32:cdab", "flag": "co:0",
       "name": "hr:10:string<8>", "arr": "hr:20:int16[3]", "bit": "hr:30.4"}
VALUES: dict[str, WriteValue] = {"speed": 12.5, "count": 4_000_000_000, "flag": True,
                                 "name": "PUMP-7", "arr": (1, -2, 3), "bit": True}


@dataclass
class ModbusHarness:
    sim: ModbusServerSim
    dev: ModbusDeviceSim
    timeout_s: float = 0.3

    def make_driver(self) -> DriverBase:
        return make_driver(self.sim, 1, timeout_s=self.timeout_s)

    def points(self) -> Sequence[Point]:
        return points(*MAP.values(), names=list(MAP))

    def value_for(self, point: Point) -> WriteValue:
        return VALUES[point.tag]

    async def set_latency(self, seconds: float) -> None:
        self.dev.faults.latency_s = seconds

    async def set_garbage(self, on: bool) -> None:
        self.dev.faults.garbage = on


@pytest.fixture
async def harness(transport: str) -> AsyncIterator[Harness]:
    dev = ModbusDeviceSim(1, MAP)
    async with ModbusServerSim(dev, transport=transport) as sim:  # type: ignore[arg-type]
        yield ModbusHarness(sim, dev)


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
async def test_conformance(check, harness: Harness) -> None:
    await check(harness)
