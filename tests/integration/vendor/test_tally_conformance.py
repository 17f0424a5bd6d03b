"""The public driver conformance suite (smartline.testing.conformance) against the ACME
Tally driver and its vendor's simulator: the same checks every smartline driver passes.

In the vendor's own repository this is the package's tests/test_conformance.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import pytest
from acme_tally.address import STATUS, parse_tally
from acme_tally.driver import TallyDriver
from acme_tally.family import TallyOptions
from acme_tally.sim import TallySim

from smartline.core import DeviceSpec, Point, RetryPolicy, WriteItem, WriteValue, parse_url
from smartline.testing.conformance import PUSH_CHECKS, check_integers_are_exact, checks_for

# name → (address, value to write); the simulator's Tally-4 channels start at 0 / "" / False
POINTS: dict[str, tuple[str, WriteValue]] = {
    "rate": ("CH5", 12.5),
    "target": ("CH6:u64", 4_000_000_000),
    "running": ("CH7:bool", True),
    "recipe": ("CH8:text", "cola 0,5l — ü %41@=+"),  # spaces, escapes and non-ASCII
    "rejects": ("CH9:i64", -42),
}


class TallyHarness:
    """What the conformance suite needs: drivers, points, and the simulator's faults."""

    timeout_s = 0.5

    def __init__(self, sim: TallySim | None = None, *, max_batch: int = 2) -> None:
        self.sim = sim
        self.max_batch = max_batch  # 2: a read of the five points takes three requests

    def make_driver(self) -> TallyDriver:
        assert self.sim is not None
        spec = DeviceSpec(name="tally", url=parse_url(self.sim.url()), timeout_s=self.timeout_s,
                          retry=RetryPolicy(backoff_initial_s=0.05, backoff_max_s=0.2),
                          options=TallyOptions(station=1, max_batch=self.max_batch))
        return TallyDriver(spec)

    def points(self) -> Sequence[Point]:
        return [Point(tag, slot, parse_tally(text))
                for slot, (tag, (text, _)) in enumerate(POINTS.items())]

    def value_for(self, point: Point) -> WriteValue:
        return POINTS[point.tag][1]

    async def set_latency(self, seconds: float) -> None:
        assert self.sim is not None
        self.sim.faults.latency_s = seconds

    async def set_garbage(self, on: bool) -> None:
        assert self.sim is not None
        self.sim.faults.garbage = on

    def refused_write(self) -> WriteItem:
        return WriteItem(Point("status", 50, STATUS), 3)

    def failing_point(self) -> Point:
        return Point("missing", 100, parse_tally("CH99"))  # the Tally-4 has channels 1..9

    def exact_points(self) -> Sequence[tuple[Point, int]]:
        return [(Point("lane1", 200, parse_tally("CH1:u64")), 2**64 - 1),
                (Point("lane2", 201, parse_tally("CH2:u64")), 2**53 + 1),
                (Point("balance", 202, parse_tally("CH9:i64")), -(2**63))]

    def pushed_points(self) -> Sequence[Point]:
        return [*self.points(), Point("status", 60, STATUS)]

    async def change(self, point: Point, value: WriteValue) -> None:
        assert self.sim is not None and point.address.channel is not None  # type: ignore[attr-defined]
        self.sim.set(point.address.channel, value)  # type: ignore[attr-defined, arg-type]

    async def break_link(self) -> None:
        assert self.sim is not None
        self.sim.kick()


@pytest.fixture
async def harness() -> AsyncIterator[TallyHarness]:
    async with TallySim() as sim:
        yield TallyHarness(sim)


def test_every_check_applies_to_the_tally_driver() -> None:
    checks = checks_for(TallyHarness())
    assert check_integers_are_exact in checks
    assert set(PUSH_CHECKS) <= set(checks)


@pytest.mark.parametrize("check", checks_for(TallyHarness()), ids=lambda c: c.__name__)
async def test_conformance(check, harness: TallyHarness) -> None:
    await check(harness)
