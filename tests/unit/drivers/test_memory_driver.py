"""The in-memory driver: the conformance suite, and DriverBase's backoff and demotion."""

import random

import numpy as np
import pytest

from smartline.core import (
    ConnectError,
    DeviceDemotedError,
    DeviceSpec,
    LinkBrokenError,
    LinkPool,
    Point,
    ProtocolError,
    Quality,
    RetryPolicy,
    VirtualClock,
    WriteItem,
    parse_url,
)
from smartline.drivers.memory import MemoryBus, MemoryDriver
from smartline.tags import parse_address
from smartline.testing.conformance import CHECKS, PUSH_CHECKS, checks_for

_POINTS = {"level": "level", "speeds": "speeds:float64[3]", "recipe": "recipe:string<16>",
           "count": "count:int64"}


class MemoryHarness:
    timeout_s = 0.2

    def __init__(self, push: bool = True) -> None:
        self.links = LinkPool()
        self.bus = MemoryBus.shared(self.links, "mem")
        self.push = push

    def make_driver(self) -> MemoryDriver:
        url = "memory://mem?push=1" if self.push else "memory://mem"
        spec = DeviceSpec(name="mem", url=parse_url(url), timeout_s=self.timeout_s,
                          retry=RetryPolicy(backoff_initial_s=0.05, backoff_max_s=0.2))
        return MemoryDriver(spec, links=self.links)

    def points(self):
        slot, out = 0, []
        for tag, text in _POINTS.items():
            addr = parse_address("memory", text)
            out.append(Point(tag, slot, addr))
            slot += addr.elements
        return out

    def value_for(self, point):
        return {"level": 12.5, "speeds": (1.0, 2.0, 3.0), "recipe": "cola-0.5l",
                "count": 41}[point.tag]

    async def set_latency(self, seconds):
        self.bus.latency_s = seconds

    async def set_garbage(self, on):
        self.bus.garbage = on

    def refused_write(self):
        return WriteItem(Point("level", 0, parse_address("memory", "level")), "text")

    def failing_point(self):
        self.bus.values["broken"] = {"not": "a number"}  # a cell the device cannot decode
        return Point("broken", 100, parse_address("memory", "broken"))

    def exact_points(self):
        return [(Point("big", 200, parse_address("memory", "big:uint64")), 2 ** 64 - 1),
                (Point("neg", 201, parse_address("memory", "neg:int64")), -(2 ** 63) + 1),
                (Point("odd", 202, parse_address("memory", "odd:int64")), 2 ** 53 + 1)]

    def pushed_points(self):
        return self.points() if self.push else []

    async def change(self, point, value):
        stored = list(value) if isinstance(value, tuple) else value
        self.bus.set(point.address.name, stored)

    async def break_link(self):
        self.bus.kick()


@pytest.mark.parametrize("check", checks_for(MemoryHarness()), ids=lambda c: c.__name__)
async def test_memory_driver_conformance(check):
    await check(MemoryHarness())


def test_push_checks_apply_only_to_a_pushing_device():
    assert set(PUSH_CHECKS) <= set(checks_for(MemoryHarness(push=True)))
    assert set(checks_for(MemoryHarness(push=False))) == set(CHECKS)


def _driver(clock, bus, **retry):
    spec = DeviceSpec(name="mem", url=parse_url("memory://mem"), timeout_s=0.1,
                      retry=RetryPolicy(**retry))
    links = LinkPool()
    links.get(("memory", "mem"), MemoryBus, lambda: bus)
    d = MemoryDriver(spec, clock=clock, links=links)
    d._rng = random.Random(1)
    return d


async def test_unwritten_memory_reads_zero_with_good_quality():
    h = MemoryHarness()
    async with h.make_driver() as d:
        r = await d.read(d.plan(h.points()[:2]))
    assert r.raw.tolist() == [0.0, 0.0, 0.0, 0.0]
    assert (r.quality == Quality.GOOD).all()
    assert r.requests == 1 and d.plan(h.points()).request_count == 1


async def test_failed_connect_backs_off_exponentially_then_recovers():
    clock, bus = VirtualClock(), MemoryBus()
    bus.refuse = True
    d = _driver(clock, bus, backoff_initial_s=1.0, backoff_max_s=8.0, jitter=0.0,
                demote_after=100)
    plan = d.plan([Point("x", 0, parse_address("memory", "x"))])
    delays = []
    for _ in range(5):
        with pytest.raises(ConnectError, match="refuses"):
            await d.read(plan)
        delays.append((d.health.next_attempt_ns - clock.now_ns()) / 1e9)
        # before the backoff runs out, no attempt is made: the error says when the next is
        with pytest.raises(ConnectError, match="next attempt in"):
            await d.read(plan)
        clock.advance_ns(d.health.next_attempt_ns - clock.now_ns())
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0]
    assert bus.requests == 0
    bus.refuse = False
    r = await d.read(plan)
    assert r.quality.tolist() == [Quality.GOOD]
    assert d.health.failures_in_row == 0 and d.health.connected and d.health.failures == 5


async def test_jitter_spreads_retries_within_bounds():
    policy = RetryPolicy(backoff_initial_s=1.0, jitter=0.2)
    rng = random.Random(7)
    delays = [policy.delay_s(1, rng) for _ in range(200)]
    assert min(delays) >= 0.8 and max(delays) <= 1.2
    assert np.std(delays) > 0.05  # not all the same


async def test_device_demoted_after_failures_in_row_and_restored_when_it_answers():
    clock, bus = VirtualClock(), MemoryBus()
    d = _driver(clock, bus, backoff_initial_s=0.01, backoff_max_s=0.01, jitter=0.0,
                demote_after=3, demote_period_s=5.0)
    plan = d.plan([Point("x", 0, parse_address("memory", "x"))])
    await d.read(plan)
    bus.garbage = True
    for _ in range(3):
        with pytest.raises(ProtocolError):
            await d.read(plan)
        clock.advance_ns(20_000_000)
    assert d.health.demoted
    requests = bus.requests
    # polled slowly: for the demotion period, reads are skipped without touching the wire
    with pytest.raises(DeviceDemotedError):
        await d.read(plan)
    assert bus.requests == requests
    clock.advance_ns(5_000_000_000)
    bus.garbage = False
    await d.read(plan)
    assert not d.health.demoted and d.health.failures_in_row == 0


async def test_os_errors_are_wrapped_not_leaked():
    class Broken(MemoryDriver):
        async def _read(self, plan):
            raise BrokenPipeError("pipe")

    spec = DeviceSpec(name="b", url=parse_url("memory://b"), timeout_s=0.1)
    d = Broken(spec)
    with pytest.raises(LinkBrokenError, match="pipe") as ei:
        await d.read(d.plan([Point("x", 0, parse_address("memory", "x"))]))
    assert ei.value.device == "b"
    assert not d.connected  # dropped; will reconnect


async def test_wrong_family_is_refused_at_plan_time():
    h = MemoryHarness()
    d = h.make_driver()
    with pytest.raises(Exception, match="modbus address"):
        d.plan([Point("x", 0, parse_address("modbus", "hr:1"))])


async def test_persisted_memory_survives_a_new_driver(tmp_path, monkeypatch):
    monkeypatch.setenv("SMARTLINE_STATE_DIR", str(tmp_path))
    spec = DeviceSpec(name="m", url=parse_url("memory://plant?persist=1"), timeout_s=0.1)
    p = Point("sp", 0, parse_address("memory", "sp"))
    async with MemoryDriver(spec) as d:
        await d.write([WriteItem(p, 42.0)])
    async with MemoryDriver(spec) as d:
        r = await d.read(d.plan([p]))
    assert r.raw.tolist() == [42.0]
    assert (tmp_path / "memory" / "plant.json").exists()


async def test_a_running_driver_sees_values_another_process_saved(tmp_path, monkeypatch):
    monkeypatch.setenv("SMARTLINE_STATE_DIR", str(tmp_path))
    spec = DeviceSpec(name="m", url=parse_url("memory://shared?persist=1"), timeout_s=0.5)
    sp, other = (Point("sp", 0, parse_address("memory", "sp")),
                 Point("other", 1, parse_address("memory", "other")))
    async with MemoryDriver(spec) as running:
        await running.write([WriteItem(other, 1.0)])
        async with MemoryDriver(spec) as cli:  # e.g. `smartline write` while the line runs
            await cli.write([WriteItem(sp, 7.0)])
        r = await running.read(running.plan([sp, other]))
        assert r.raw.tolist() == [7.0, 1.0]
        await running.write([WriteItem(other, 2.0)])  # must not wipe the other's write
    async with MemoryDriver(spec) as fresh:
        r = await fresh.read(fresh.plan([sp, other]))
    assert r.raw.tolist() == [7.0, 2.0]
