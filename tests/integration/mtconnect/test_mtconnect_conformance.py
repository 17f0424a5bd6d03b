"""The public driver conformance suite against the MTConnect driver and the simulated agent.

MTConnect is read-only, so the write round trip is replaced by a read round trip: a value
changed on the agent's side is read back (polled and pushed). Every write is refused
before any I/O, which is what ``check_refused_write_leaves_device_untouched`` checks.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Sequence

import pytest
import pytest_asyncio
from mtc_support import driver, points, values

from smartline.core import Point, Quality, WriteItem, WriteRefusedError, WriteValue
from smartline.drivers.cnc.mtconnect import MtConnectDriver
from smartline.hil.mtconnect import CncMachineModel, MtConnectAgentSim
from smartline.tags import parse_profile
from smartline.testing.conformance import (
    PUSH_CHECKS,
    check_device_values_are_read,
    check_integers_are_exact,
    check_read_write_round_trip,
    checks_for,
)

_COUNTER = itertools.count(1)


class MtConnectHarness:
    read_only = True  # MTConnect is read-only: the suite reads back device-side changes

    timeout_s = 0.5

    def __init__(self, sim: MtConnectAgentSim | None = None) -> None:
        self.sim = sim

    def make_driver(self) -> MtConnectDriver:
        assert self.sim is not None
        return driver(self.sim.url(), timeout_s=self.timeout_s, interval_ms=10,
                      heartbeat_ms=500)

    def points(self) -> Sequence[Point]:
        return points("program", "PartCount", "d1_sspeed")

    def value_for(self, point: Point) -> WriteValue:
        n = next(_COUNTER)
        if point.tag == "program":
            return f"O{2000 + n}"
        if point.tag == "PartCount":
            return 1000 + n
        return 100.0 * n

    async def set_latency(self, seconds: float) -> None:
        assert self.sim is not None
        self.sim.faults.latency_s = seconds

    async def set_garbage(self, on: bool) -> None:
        assert self.sim is not None
        self.sim.faults.garbage = on

    def refused_write(self) -> WriteItem:
        return WriteItem(points("Xact", first_slot=40)[0], 1.0)

    def failing_point(self) -> Point:
        return Point("missing", 100, parse_profile("NoSuchItem", "cnc"))

    def exact_points(self) -> Sequence[tuple[Point, int]]:
        return []  # MTConnect has no 64-bit integer values beyond float64 in practice

    def pushed_points(self) -> Sequence[Point]:
        return self.points()

    async def change(self, point: Point, value: WriteValue) -> None:
        assert self.sim is not None
        self.sim.set(point.address.canonical(), value)

    async def break_link(self) -> None:
        assert self.sim is not None
        self.sim.kick()


CHECKS = list(checks_for(MtConnectHarness()))


@pytest_asyncio.fixture
async def agent() -> AsyncIterator[MtConnectAgentSim]:
    # a slow cycle: the part count changes only when a check changes it
    async with MtConnectAgentSim([CncMachineModel(cycle_s=600.0)], tick_s=0.02) as sim:
        yield sim


def test_the_push_checks_apply_and_exact_integers_do_not() -> None:
    checks = checks_for(MtConnectHarness())
    assert set(PUSH_CHECKS) <= set(checks)
    assert check_integers_are_exact not in checks
    assert check_read_write_round_trip not in checks
    assert check_device_values_are_read in checks


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
async def test_conformance(check, agent: MtConnectAgentSim) -> None:
    await check(MtConnectHarness(agent))


async def test_read_round_trip_instead_of_a_write(agent: MtConnectAgentSim) -> None:
    """What the agent publishes is what a read returns; every write is refused."""
    h = MtConnectHarness(agent)
    async with h.make_driver() as d:
        pts = list(h.points())
        wanted = {p.tag: h.value_for(p) for p in pts}
        for p in pts:
            await h.change(p, wanted[p.tag])
        result = await d.read(d.plan(pts))
        assert (result.quality == Quality.GOOD).all()
        got = values(result, pts)
        assert got == {k: float(v) if not isinstance(v, str) else v for k, v in wanted.items()}
        with pytest.raises(WriteRefusedError, match="read-only"):
            await d.write([WriteItem(pts[0], "O1")])
        assert d.health.failures == 0 and d.connected
