"""The public driver conformance suite against the serial instrument driver: the MT-SICS
scale on a pty (polled), and the scanner on ``socket://`` for the push checks."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator, Sequence

import pytest

from smartline.config import load_profile
from smartline.core import Point, WriteItem, WriteValue
from smartline.drivers.serial import SerialInstrumentDriver
from smartline.hil.serial import SerialInstrumentSim
from smartline.testing.conformance import PUSH_CHECKS, check_integers_are_exact, checks_for

from .conftest import SCALE, SCANNER, make_driver, points

SCALE_PROFILE = load_profile(SCALE)
SCANNER_PROFILE = load_profile(SCANNER)
_count = itertools.count(1)


class ScaleHarness:
    """Points: the tare (preset with ``TA v g``, read with ``TA``); the failing point is
    the weight now, which this scale answers with ``S +`` (overload)."""

    timeout_s = 0.3

    def __init__(self, sim: SerialInstrumentSim | None = None) -> None:
        self.sim = sim

    def make_driver(self) -> SerialInstrumentDriver:
        assert self.sim is not None
        return make_driver(self.sim.pty_path, SCALE_PROFILE, timeout_s=self.timeout_s)

    def points(self) -> Sequence[Point]:
        return points("tare_weight")

    def value_for(self, point: Point) -> WriteValue:
        return 1.25 * next(_count)

    async def set_latency(self, seconds: float) -> None:
        assert self.sim is not None
        self.sim.instrument.latency_s = seconds

    async def set_garbage(self, on: bool) -> None:
        assert self.sim is not None
        self.sim.instrument.garbage = on

    def refused_write(self) -> WriteItem:
        return WriteItem(points("tare_weight", start=50)[0], "heavy")

    def failing_point(self) -> Point:
        return points("weight_now", start=100)[0]

    def exact_points(self) -> Sequence[tuple[Point, int]]:
        return []

    def pushed_points(self) -> Sequence[Point]:
        return []

    async def change(self, point: Point, value: WriteValue) -> None:
        raise NotImplementedError

    async def break_link(self) -> None:
        raise NotImplementedError


class ScannerHarness(ScaleHarness):
    """The scanner pushes what it reads; ``change`` scans a code once the driver listens
    (a code scanned while the link is down, or while the port is being opened, is lost,
    so the operator scans it again)."""

    driver: SerialInstrumentDriver | None = None

    def make_driver(self) -> SerialInstrumentDriver:
        assert self.sim is not None
        self.driver = make_driver(self.sim.socket_url(), SCANNER_PROFILE,
                                  timeout_s=self.timeout_s)
        return self.driver

    def points(self) -> Sequence[Point]:
        return points("code", "gtin")

    def pushed_points(self) -> Sequence[Point]:
        return points("code", "gtin", "batch")

    def value_for(self, point: Point) -> WriteValue:
        return f"]C10109501101530003\x1d10LOT{next(_count)}"

    async def change(self, point: Point, value: WriteValue) -> None:
        sim, d = self.sim, self.driver
        assert sim is not None and d is not None

        def listening() -> bool:
            return d.connected and d.health.subscriptions > 0 and sim.connections() > 0

        async def scan_when_listening() -> None:
            for _ in range(500):
                if listening():
                    sim.scan(str(value))
                    return
                await asyncio.sleep(0.01)

        if listening():
            sim.scan(str(value))
        else:
            self._task = asyncio.ensure_future(scan_when_listening())

    async def break_link(self) -> None:
        assert self.sim is not None
        self.sim.kick()


@pytest.fixture
def sim() -> Iterator[SerialInstrumentSim]:
    with SerialInstrumentSim(SCALE_PROFILE) as s:
        s.instrument.fault("error", command="weight_now", text="S +", count=None)
        yield s


def test_which_checks_apply() -> None:
    checks = checks_for(ScaleHarness())
    assert check_integers_are_exact not in checks
    assert not set(PUSH_CHECKS) & set(checks)
    assert set(PUSH_CHECKS) <= set(checks_for(ScannerHarness()))


@pytest.mark.parametrize("check", checks_for(ScaleHarness()), ids=lambda c: c.__name__)
async def test_conformance(check, sim: SerialInstrumentSim) -> None:  # type: ignore[no-untyped-def]
    await check(ScaleHarness(sim))


@pytest.mark.parametrize("check", PUSH_CHECKS, ids=lambda c: c.__name__)
async def test_push_conformance(check) -> None:  # type: ignore[no-untyped-def]
    with SerialInstrumentSim(SCANNER_PROFILE) as s:
        await check(ScannerHarness(s))
