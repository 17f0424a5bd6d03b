"""The public driver conformance suite (smartline.testing.conformance) against the simulated
GRBL controller on a pty. GRBL is polled (``?``): the push checks do not apply."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from grbl_support import driver, points

from smartline.core import DriverBase, Point, VirtualClock, WriteItem, WriteValue
from smartline.hil.grbl import GrblController, GrblSim
from smartline.testing.conformance import (
    CHECKS,
    PUSH_CHECKS,
    Harness,
    check_integers_are_exact,
    checks_for,
)

VALUES: dict[str, WriteValue] = {"ov.feed": 130, "ov.spindle": 70, "setting.s110": 777,
                                 "setting.s24": 31.5}


@dataclass
class GrblHarness:
    sim: GrblSim
    timeout_s: float = 0.3

    def make_driver(self) -> DriverBase[Any, Any]:
        return driver(self.sim, timeout_s=self.timeout_s)

    def points(self) -> Sequence[Point]:
        return points(*VALUES)

    def value_for(self, point: Point) -> WriteValue:
        return VALUES[point.tag]

    async def set_latency(self, seconds: float) -> None:
        self.sim.faults.latency_s = seconds

    async def set_garbage(self, on: bool) -> None:
        self.sim.faults.garbage = on

    def refused_write(self) -> WriteItem:
        return WriteItem(points("state", first_slot=90)[0], "Idle")  # read-only

    def failing_point(self) -> Point:
        return points("setting.s999", first_slot=100)[0]  # GRBL has no $999

    def exact_points(self) -> Sequence[tuple[Point, int]]:
        return []  # GRBL has no 64-bit integers

    def pushed_points(self) -> Sequence[Point]:
        return []  # status reports are asked for

    async def change(self, point: Point, value: WriteValue) -> None:
        raise NotImplementedError

    async def break_link(self) -> None:
        self.sim.drop_link()


@pytest.fixture
def harness() -> Iterator[Harness]:
    with GrblSim(GrblController(VirtualClock()), fast_forward=True) as sim:
        yield GrblHarness(sim)


def test_push_and_exact_integer_checks_do_not_apply(harness: Harness) -> None:
    checks = set(checks_for(harness))
    assert not set(PUSH_CHECKS) & checks
    assert check_integers_are_exact not in checks  # GRBL has no 64-bit integers
    assert set(CHECKS) - {check_integers_are_exact} <= checks


# the checks that apply to a GRBL harness (no 64-bit integers, no pushes), listed once
APPLICABLE = [c for c in CHECKS if c is not check_integers_are_exact]


@pytest.mark.parametrize("check", APPLICABLE, ids=lambda c: c.__name__)
async def test_conformance(check: Callable[[Harness], Awaitable[None]],
                           harness: Harness) -> None:
    await check(harness)
