"""The public driver conformance suite against the OPC UA driver and its simulator (a real
asyncua Server, Basic256Sha256 SignAndEncrypt, through the simulator's fault relay)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import pytest
import pytest_asyncio

from smartline.core import Point, WriteItem, WriteValue
from smartline.drivers.opcua import OpcUaDriver
from smartline.hil.opcua import OpcUaSim
from smartline.tags import parse_opcua
from smartline.testing.conformance import PUSH_CHECKS, check_integers_are_exact, checks_for

from .conftest import VARIABLES, Pki, make_spec

pytestmark = pytest.mark.asyncio(loop_scope="module")

POINTS: dict[str, tuple[str, WriteValue]] = {
    "temp": ("ns=2;s=Line.Temp", 73.5),
    "count": ("ns=2;s=Line.Count", -123456),
    "flag": ("ns=2;s=Line.Flag", True),
    "recipe": ("ns=2;s=Line.Recipe", "lemonade 0,5 l — ü"),
    "id": ("ns=2;i=1001", 7),
}


class OpcUaHarness:
    timeout_s = 0.5

    def __init__(self, sim: OpcUaSim | None = None, pki: Pki | None = None) -> None:
        self.sim = sim
        self.pki = pki

    def make_driver(self) -> OpcUaDriver:
        assert self.sim is not None and self.pki is not None
        return OpcUaDriver(make_spec(self.sim.url(), self.pki.options(),
                                     timeout_s=self.timeout_s, username="op", password="pw"))

    def points(self) -> Sequence[Point]:
        return [Point(tag, slot, parse_opcua(text))
                for slot, (tag, (text, _)) in enumerate(POINTS.items())]

    def value_for(self, point: Point) -> WriteValue:
        """A value unlike the current one: the shared server keeps what earlier checks
        wrote, so the temperature moves on with every call."""
        value = POINTS[point.tag][1]
        if point.tag == "temp":
            OpcUaHarness._calls += 1
            return float(value) + OpcUaHarness._calls  # type: ignore[arg-type]
        return value

    _calls = 0

    async def set_latency(self, seconds: float) -> None:
        assert self.sim is not None
        self.sim.set_latency(seconds)

    async def set_garbage(self, on: bool) -> None:
        assert self.sim is not None
        self.sim.set_garbage(on)

    def refused_write(self) -> WriteItem:
        return WriteItem(Point("pair", 50, parse_opcua("ns=2;s=Line.Temp")), (1.0, 2.0))

    def failing_point(self) -> Point:
        return Point("missing", 100, parse_opcua("ns=2;s=Line.NoSuchNode"))

    def exact_points(self) -> Sequence[tuple[Point, int]]:
        return [(Point("serial", 200, parse_opcua("ns=2;s=Line.Serial")), 2 ** 64 - 1),
                (Point("total", 201, parse_opcua("ns=2;s=Line.Total")), -(2 ** 63))]

    def pushed_points(self) -> Sequence[Point]:
        return [*self.points(), Point("locked", 60, parse_opcua("ns=2;s=Line.Locked"))]

    async def change(self, point: Point, value: WriteValue) -> None:
        assert self.sim is not None
        await self.sim.set(point.address.canonical(), value)  # type: ignore[arg-type]

    async def break_link(self) -> None:
        assert self.sim is not None
        self.sim.kick()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sim(pki: Pki) -> AsyncIterator[OpcUaSim]:
    async with OpcUaSim(VARIABLES, users={"op": "pw"}) as server:
        pki.trust(server)
        yield server


async def test_every_check_applies_to_the_opcua_driver() -> None:
    checks = checks_for(OpcUaHarness())
    assert check_integers_are_exact in checks
    assert set(PUSH_CHECKS) <= set(checks)


@pytest.mark.parametrize("check", checks_for(OpcUaHarness()), ids=lambda c: c.__name__)
async def test_conformance(check, sim: OpcUaSim, pki: Pki) -> None:
    sim.set_latency(0.0)
    sim.set_garbage(False)
    await check(OpcUaHarness(sim, pki))
