"""The public driver conformance suite (smartline.testing.conformance) against the simulated
S7 CPU. S7 is polled: the push checks do not apply (``checks_for`` leaves them out)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from s7_support import driver

from smartline.core import DriverBase, Point, WriteItem, WriteValue
from smartline.drivers.families.s7 import parse_s7_point
from smartline.hil.s7 import S7PlcSim, S7ServerSim
from smartline.testing.conformance import CHECKS, PUSH_CHECKS, Harness, checks_for

MAP = {"speed": "DB1.DBD0:REAL", "count": "DB1.DBD4:UDINT", "flag": "DB1.DBX8.3",
       "name": "DB1.DBB10:STRING[12]", "arr": "DB1.DBW24:INT[3]", "marker": "MW4:INT",
       "lamp": "Q0.5"}
VALUES: dict[str, WriteValue] = {"speed": 12.5, "count": 4_000_000_000, "flag": True,
                                 "name": "FILLER-7", "arr": (1, -2, 3), "marker": -99,
                                 "lamp": True}
EXACT = {"big": ("DB2.DBB0:ULINT", 2**64 - 1), "neg": ("DB2.DBB8:LINT", -(2**63) + 1),
         "odd": ("DB2.DBB16:LWORD", 2**53 + 1)}


@dataclass
class S7Harness:
    sim: S7ServerSim
    plc: S7PlcSim
    timeout_s: float = 0.3

    def make_driver(self) -> DriverBase[Any, Any]:
        return driver(self.sim, timeout_s=self.timeout_s)

    def points(self) -> Sequence[Point]:
        out, slot = [], 0
        for name, text in MAP.items():
            addr = parse_s7_point(text)
            out.append(Point(name, slot, addr))
            slot += addr.elements
        return out

    def value_for(self, point: Point) -> WriteValue:
        return VALUES[point.tag]

    async def set_latency(self, seconds: float) -> None:
        self.plc.faults.latency_s = seconds

    async def set_garbage(self, on: bool) -> None:
        self.plc.faults.garbage = on

    def refused_write(self) -> WriteItem:
        return WriteItem(Point("input", 90, parse_s7_point("IW0")), 1)  # the input image

    def failing_point(self) -> Point:
        return Point("missing", 100, parse_s7_point("DB1.DBW500"))  # past the end of DB1

    def exact_points(self) -> Sequence[tuple[Point, int]]:
        return [(Point(name, 200 + i, parse_s7_point(text)), value)
                for i, (name, (text, value)) in enumerate(EXACT.items())]

    def pushed_points(self) -> Sequence[Point]:
        return []  # S7 CPUs are polled

    async def change(self, point: Point, value: WriteValue) -> None:
        self.plc.set(MAP[point.tag], value)

    async def break_link(self) -> None:
        self.sim.drop_connections()


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    plc = S7PlcSim({**MAP, **{n: t for n, (t, _) in EXACT.items()}}, dbs={1: 64})
    async with S7ServerSim(plc) as sim:
        yield S7Harness(sim, plc)


def test_push_checks_do_not_apply() -> None:
    plc = S7PlcSim(MAP)
    h = S7Harness(S7ServerSim(plc), plc)
    assert not set(PUSH_CHECKS) & set(checks_for(h))


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
async def test_conformance(check: Callable[[Harness], Awaitable[None]],
                           harness: Harness) -> None:
    assert check in checks_for(harness)
    await check(harness)
