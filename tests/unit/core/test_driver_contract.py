"""DriverBase as the one template: hooks only, plans remade after renegotiation, blocking
calls in a worker thread with timeouts, subscriptions kept across reconnects."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from typing import Any, ClassVar

import pytest

from smartline.core import (
    DeviceSpec,
    DeviceTimeoutError,
    DriverBase,
    LinkPool,
    Point,
    ReadPlan,
    ReadResult,
    ResultBuilder,
    RetryPolicy,
    SharedLink,
    WriteItem,
    parse_url,
)
from smartline.tags import parse_address
from smartline.testing.conformance import RecordingSink


class _Plan:
    def __init__(self, points: Sequence[Point], batch: int) -> None:
        self.batches = [points[i:i + batch] for i in range(0, len(points), batch)]

    @property
    def request_count(self) -> int:
        return len(self.batches)


class Negotiating(DriverBase[_Plan, None]):
    """A device that negotiates how many values one request may carry."""

    family: ClassVar[str] = "memory"

    def __init__(self, spec: DeviceSpec, **kw: Any) -> None:
        super().__init__(spec, **kw)
        self.batch = 2  # before connect: a safe default
        self.offered = [4]  # what the device offers at each connect
        self.connects = 0
        self.blocking_call = lambda: None

    async def _connect(self) -> None:
        offered = self.offered[min(self.connects, len(self.offered) - 1)]
        self.connects += 1
        if offered != self.batch:
            self.batch = offered
            self.renegotiated()
        await self.run_blocking(self.blocking_call)

    async def _close(self) -> None:
        return None

    def _plan(self, points: Sequence[Point]) -> _Plan:
        return _Plan(points, self.batch)

    async def _read(self, plan: ReadPlan[_Plan]) -> ReadResult:
        b = ResultBuilder(plan.points, self.clock.wall_ns())
        for p in plan.points:
            b.set(p, 1.0)
        return b.build(requests=plan.compiled.request_count)

    async def _write(self, items: Sequence[WriteItem], prepared: Any) -> None:
        await self.run_blocking(time.sleep, float(items[0].value))


def _spec(timeout_s: float = 0.2) -> DeviceSpec:
    return DeviceSpec("dev", parse_url("memory://dev"), timeout_s=timeout_s,
                      retry=RetryPolicy(backoff_initial_s=0.01, backoff_max_s=0.05))


def _points(n: int) -> list[Point]:
    return [Point(f"p{i}", i, parse_address("memory", f"p{i}")) for i in range(n)]


async def test_plans_made_before_connect_are_compiled_again_after_negotiation():
    d = Negotiating(_spec())
    d.offered = [4, 4, 8]
    plan = d.plan(_points(8))
    assert plan.request_count == 4  # batches of 2: the default before the device said more
    r = await d.read(plan)
    assert plan.request_count == 2 and r.requests == 2  # the device offered 4 per request
    same = plan.compiled
    await d.read(plan)
    assert plan.compiled is same  # nothing renegotiated: not compiled again
    await d.close()
    d2 = Negotiating(_spec())
    d2.offered = [4, 8]
    plan = d2.plan(_points(8))
    await d2.read(plan)
    d2.connection_lost(ConnectionResetError("device restarted"))
    await asyncio.sleep(0.05)
    assert not d2.connected
    await asyncio.sleep(0.06)  # the backoff
    r = await d2.read(plan)  # reconnects; the device now offers 8
    assert plan.request_count == 1 and r.requests == 1
    assert d2.health.plans >= 3
    await d2.close()


async def test_drivers_may_not_override_the_public_methods():
    with pytest.raises(TypeError, match="overrides read of DriverBase"):
        class Bad(Negotiating):
            async def read(self, plan: ReadPlan[_Plan]) -> ReadResult:
                raise AssertionError


async def test_a_blocking_call_runs_off_the_loop_and_is_abandoned_at_the_timeout():
    d = Negotiating(_spec(timeout_s=0.2))
    await d.connect()
    point = _points(1)[0]
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    t = asyncio.ensure_future(ticker())
    t0 = time.monotonic()
    with pytest.raises(DeviceTimeoutError):
        await d.write([WriteItem(point, 1.5)])  # the library blocks for 1.5 s
    elapsed = time.monotonic() - t0
    t.cancel()
    assert elapsed < 0.6, f"the timeout took {elapsed:.2f} s"
    assert ticks >= 8, "the event loop was blocked while the library call ran"
    assert d.health.blocking_abandoned == 1
    # the next call gets a fresh worker thread at once, not after the stuck one
    await asyncio.sleep(0.06)
    t0 = time.monotonic()
    await d.write([WriteItem(point, 0.0)])
    assert time.monotonic() - t0 < 0.5
    await d.close()


async def test_blocking_calls_of_one_driver_run_in_order_in_one_thread():
    d = Negotiating(_spec(timeout_s=2.0))
    seen: list[tuple[int, str]] = []

    def work(i: int) -> None:
        seen.append((i, threading.current_thread().name))
        time.sleep(0.01)

    await asyncio.gather(*(d.run_blocking(work, i) for i in range(5)))
    assert [i for i, _ in seen] == [0, 1, 2, 3, 4]
    assert len({name for _, name in seen}) == 1 and seen[0][1].startswith("smartline-dev")
    await d.close()


class Hub(SharedLink):
    def __init__(self) -> None:
        super().__init__(("hub", "x"))
        self.active: set[str] = set()
        self.overlaps = 0


class OnHub(Negotiating):
    def __init__(self, spec: DeviceSpec, **kw: Any) -> None:
        super().__init__(spec, **kw)
        self.link = self.hub = self.links.get(("hub", "x"), Hub, Hub)

    async def _read(self, plan: ReadPlan[_Plan]) -> ReadResult:
        if self.hub.active:
            self.hub.overlaps += 1
        self.hub.active.add(self.spec.name)
        await asyncio.sleep(0.01)
        self.hub.active.discard(self.spec.name)
        return await super()._read(plan)


async def test_devices_on_one_link_take_turns():
    links = LinkPool()
    drivers = [OnHub(DeviceSpec(f"d{i}", parse_url("memory://x"), timeout_s=1.0), links=links)
               for i in range(3)]
    plans = [d.plan(_points(2)) for d in drivers]
    await asyncio.gather(*(d.read(p) for d, p in zip(drivers, plans, strict=True)
                           for _ in range(3)))
    hub = links.links()[("hub", "x")]
    assert isinstance(hub, Hub) and hub.overlaps == 0
    with pytest.raises(TypeError, match="two driver families"):
        links.get(("hub", "x"), _Other, _Other)
    for d in drivers:
        await d.close()
    await links.aclose()


class _Other(SharedLink):
    pass


async def test_subscribe_to_a_device_that_is_down_waits_for_it():
    class Pushing(Negotiating):
        down = True

        async def _connect(self) -> None:
            if self.down:
                raise ConnectionRefusedError("down")

        def _pushes(self, point: Point) -> bool:
            return True

        async def _subscribe(self, subscription: Any) -> None:
            b = subscription.builder()
            for p in subscription.points:
                b.set(p, 7.0, source_ns=123)
            subscription.deliver(b.build(only_set=True))

    d = Pushing(_spec())
    sink = RecordingSink()
    pts = _points(2)
    await d.subscribe(pts, sink)  # never raises for a device that is down
    assert sorted(sink.lost_slots) == [0, 1]  # STALE until it answers
    assert not sink.results
    d.down = False
    await sink.wait_for(lambda: sink.covers(pts), 2.0, "the subscription once it answers")
    r = sink.results[-1]
    assert r.sources().tolist() == [123, 123] and r.received_ns > 123
    assert d.health.subscriptions == 1
    await d.close()
    assert d.health.subscriptions == 0


def test_result_builder_notes_follow_the_last_verdict_of_each_point() -> None:
    from smartline.core import Point, Quality, Reason, ResultBuilder
    from smartline.tags import parse_address

    a = Point("a", 0, parse_address("memory", "a"))
    b = Point("b", 1, parse_address("memory", "b"))
    rb = ResultBuilder([a, b], received_ns=5)
    rb.fail(a, Reason.TIMEOUT, note="no reply within 1000 ms (partial 'S S  1')")
    rb.fail(b, Reason.DEVICE_ERROR, note="busy")
    rb.set(b, 2.5)
    full = rb.build()
    assert dict(full.notes) == {0: "no reply within 1000 ms (partial 'S S  1')"}
    assert full.quality.tolist() == [Quality.BAD, Quality.GOOD]
    rb.fail(a, Reason.TIMEOUT)  # a new verdict without words forgets the old words
    assert dict(rb.build(only_set=True).notes) == {}


def test_result_builder_marks_truth_values() -> None:
    from smartline.core import Point, Reason, ResultBuilder
    from smartline.tags import parse_address

    a = Point("a", 0, parse_address("memory", "a"))
    b = Point("b", 1, parse_address("memory", "b"))
    rb = ResultBuilder([a, b], received_ns=5)
    rb.set(a, True)
    rb.set(b, 3)
    assert rb.build().bools == frozenset({0}) and rb.build().raw.tolist() == [1.0, 3.0]
    rb.set(a, 2.5)  # the same point, now a number: no longer a truth value
    assert rb.build().bools == frozenset()
    rb.set(a, False)
    rb.fail(a, Reason.TIMEOUT)
    assert rb.build().bools == frozenset()


def test_result_builder_doubt_keeps_the_value_uncertain_with_a_note() -> None:
    from smartline.core import Point, Quality, Reason, ResultBuilder
    from smartline.tags import parse_address

    a = Point("a", 0, parse_address("memory", "a"))
    rb = ResultBuilder([a], received_ns=5)
    rb.set(a, 4.5)
    rb.doubt(a, Reason.NOT_READ, "last report before ALARM:1")
    r = rb.build()
    assert r.raw.tolist() == [4.5] and r.quality.tolist() == [Quality.UNCERTAIN]
    assert r.reason.tolist() == [Reason.NOT_READ] and r.notes[0] == "last report before ALARM:1"
