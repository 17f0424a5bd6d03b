"""The public driver conformance suite: what every smartline driver must do, checked
against the driver's own simulator.

A driver author supplies a :class:`Harness` (how to make a driver, which points to use,
how to inject the two faults) and calls :func:`check_driver`, or runs each check as its
own test::

    @pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
    async def test_conformance(check, harness):
        await check(harness)

Checks: connect/close are idempotent; a read/write round trip returns what was written;
an unanswered request raises ``DeviceTimeoutError``; use after close raises
``ClosedError``; a cancelled read leaves the driver usable; garbage raises
``ProtocolError``; a refused write leaves the device untouched; a partial failure marks
only the failed points; timestamps are set; integers compare exactly; and, for a device
that pushes, pushed values arrive and resume after the link is broken.
:func:`checks_for` picks the checks that apply to a harness (the push checks need
:meth:`Harness.pushed_points`).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from ..core import (
    ClosedError,
    CommunicationError,
    DeviceTimeoutError,
    DriverBase,
    Point,
    ProtocolError,
    Quality,
    ReadResult,
    Reason,
    WriteItem,
    WriteRefusedError,
    WriteValue,
)

__all__ = [
    "CHECKS",
    "PUSH_CHECKS",
    "Harness",
    "RecordingSink",
    "check_cancellation_leaves_driver_usable",
    "check_connect_close_idempotent",
    "check_driver",
    "check_garbage_raises_protocol_error",
    "check_integers_are_exact",
    "check_partial_failure_marks_only_failed_points",
    "check_push_resumes_after_reconnect",
    "check_pushed_values_arrive",
    "check_read_write_round_trip",
    "check_refused_write_leaves_device_untouched",
    "check_timeout_raises",
    "check_timestamps_are_set",
    "check_use_after_close_raises",
    "checks_for",
]


class Harness(Protocol):
    """What a driver's test supplies to the conformance suite."""

    timeout_s: float  # the driver's timeout; faults must outlast it
    # A harness may also set ``read_only = True`` (a device nobody writes, MTConnect):
    # the suite then reads back values changed with :meth:`change` instead of writing.

    def make_driver(self) -> DriverBase[Any, Any]:
        """A fresh, unconnected driver talking to the simulator."""

    def points(self) -> Sequence[Point]:
        """Readable and writable points (at least one), each with a value to write."""

    def value_for(self, point: Point) -> WriteValue:
        """A raw value to write to ``point`` that differs from its current one."""

    async def set_latency(self, seconds: float) -> None:
        """Make the simulator answer after ``seconds`` (0 = normal)."""

    async def set_garbage(self, on: bool) -> None:
        """Make the simulator answer with bytes that are not a valid response."""

    def refused_write(self) -> WriteItem:
        """A write the driver must refuse before any I/O (a read-only area, a value its
        wire type cannot hold, text for a number …)."""

    def failing_point(self) -> Point:
        """A point the device answers with an error (an address it does not have), its
        slot apart from those of :meth:`points`."""

    def exact_points(self) -> Sequence[tuple[Point, int]]:
        """Integer points with a value float64 cannot hold (≥ 2**53 in magnitude) to write
        and read back exactly; empty when the device has no 64-bit integers."""

    def pushed_points(self) -> Sequence[Point]:
        """Points the device pushes (the driver's ``pushes`` is true); empty when it
        pushes nothing, and then the push checks do not apply."""

    async def change(self, point: Point, value: WriteValue) -> None:
        """Change ``point``'s value on the device side (so that a push is due)."""

    async def break_link(self) -> None:
        """Cut the connection from the device side (the device goes away and comes back)."""


async def check_connect_close_idempotent(h: Harness) -> None:
    """connect twice, close twice: no error, and the state says so."""
    d = h.make_driver()
    await d.connect()
    await d.connect()
    assert d.connected, "driver not connected after connect()"
    await d.close()
    await d.close()
    assert d.closed and not d.connected, "driver not closed after close()"
    # closing a driver that never connected is fine too
    await h.make_driver().close()


async def check_read_write_round_trip(h: Harness) -> None:
    """Values written are the values read back, with GOOD quality."""
    async with h.make_driver() as d:
        pts = list(h.points())
        items = [WriteItem(p, h.value_for(p)) for p in pts]
        await d.write(items)
        result = await d.read(d.plan(pts))
        assert (result.quality == Quality.GOOD).all(), f"bad quality: {result.quality}"
        for it in items:
            i = _index_of(result.slots.tolist(), it.point.slot)
            want = it.value
            if isinstance(want, str):
                got: object = result.texts.get(it.point.slot)
                assert got == want, f"{it.point.tag}: wrote {want!r}, read {got!r}"
            elif isinstance(want, tuple):
                got = tuple(result.raw[i:i + len(want)].tolist())
                assert all(math.isclose(a, float(b), rel_tol=1e-6) for a, b in zip(
                    got, want, strict=True)), f"{it.point.tag}: wrote {want!r}, read {got!r}"
            else:
                got = float(result.raw[i])
                assert math.isclose(got, float(want), rel_tol=1e-6), (
                    f"{it.point.tag}: wrote {want!r}, read {got!r}")


async def check_device_values_are_read(h: Harness) -> None:
    """For a read-only device (``h.read_only``): values changed on the device side are
    the values read back, GOOD, and every write of them is refused before any I/O."""
    async with h.make_driver() as d:
        pts = list(h.points())
        items = [WriteItem(p, h.value_for(p)) for p in pts]
        for it in items:
            await h.change(it.point, it.value)
        plan = d.plan(pts)
        sink = RecordingSink()
        await _read_until(d, plan, sink, items)
        try:
            await d.write(items[:1])
        except WriteRefusedError:
            pass
        else:
            raise AssertionError("a read-only driver accepted a write")


async def _read_until(d: DriverBase[Any, Any], plan: Any, sink: RecordingSink,
                      items: Sequence[WriteItem], timeout_s: float = 5.0) -> None:
    """Read ``plan`` until every item's value is read back GOOD (a device may publish a
    change a moment later), or fail naming the first that is not."""
    deadline = time.monotonic() + timeout_s
    while True:
        sink.push(await d.read(plan))
        missing = [it for it in items if not sink.latest_equals(it.point, it.value)]
        if not missing:
            return
        if time.monotonic() > deadline:
            it = missing[0]
            raise AssertionError(f"{it.point.tag}: the device has {it.value!r}, the read "
                                 "does not show it")
        await asyncio.sleep(0.02)


async def check_timeout_raises(h: Harness) -> None:
    """An answer later than the timeout raises DeviceTimeoutError, within about the timeout."""
    async with h.make_driver() as d:
        plan = d.plan(list(h.points()))
        await d.read(plan)
        await h.set_latency(h.timeout_s * 3 + 0.2)
        try:
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            try:
                await d.read(plan)
            except DeviceTimeoutError:
                elapsed = loop.time() - t0
                assert elapsed < h.timeout_s * 2 + 0.5, f"timeout took {elapsed:.3f} s"
            else:
                raise AssertionError("read did not time out")
        finally:
            await h.set_latency(0.0)


async def check_use_after_close_raises(h: Harness) -> None:
    """Every operation on a closed driver raises ClosedError."""
    d = h.make_driver()
    await d.connect()
    plan = d.plan(list(h.points()))
    await d.close()
    for op in (d.connect(), d.read(plan),
               d.write([WriteItem(p, h.value_for(p)) for p in h.points()])):
        try:
            await op
        except ClosedError:
            continue
        raise AssertionError(f"{op!r} on a closed driver did not raise ClosedError")


async def check_cancellation_leaves_driver_usable(h: Harness) -> None:
    """Cancelling a read in flight leaves the driver able to read again."""
    async with h.make_driver() as d:
        plan = d.plan(list(h.points()))
        await h.set_latency(min(0.3, h.timeout_s * 0.8))
        task = asyncio.ensure_future(d.read(plan))
        await asyncio.sleep(0.05)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        else:
            raise AssertionError("read finished although it was cancelled")
        await h.set_latency(0.0)
        await asyncio.sleep(0.35)  # let the simulator's late answer drain
        result = await d.read(plan)
        assert (result.quality == Quality.GOOD).all(), "read after cancellation is not good"


async def check_garbage_raises_protocol_error(h: Harness) -> None:
    """A reply that is not a valid response raises ProtocolError; then the driver recovers."""
    async with h.make_driver() as d:
        plan = d.plan(list(h.points()))
        await h.set_garbage(True)
        try:
            try:
                await d.read(plan)
            except ProtocolError:
                pass
            else:
                raise AssertionError("garbage did not raise ProtocolError")
        finally:
            await h.set_garbage(False)
        # the driver reconnects by itself once its backoff has passed
        loop = asyncio.get_running_loop()
        give_up = loop.time() + d.spec.retry.backoff_max_s + 2.0
        while True:
            try:
                result = await d.read(plan)
                break
            except CommunicationError:
                if loop.time() > give_up:
                    raise AssertionError("the driver did not recover after garbage") from None
                await asyncio.sleep(0.02)
        assert (result.quality == Quality.GOOD).all(), "read after garbage is not good"


async def check_refused_write_leaves_device_untouched(h: Harness) -> None:
    """A batch with one refused item raises WriteRefusedError before any I/O: nothing of
    it reaches the device, the link stays up and no failure is counted."""
    async with h.make_driver() as d:
        pts = list(h.points())
        plan = d.plan(pts)
        before = await d.read(plan)
        requests = d.health.requests
        refused = h.refused_write()
        items = [WriteItem(p, h.value_for(p)) for p in pts] + [refused]
        try:
            await d.write(items)
        except WriteRefusedError as exc:
            assert exc.device == d.spec.name, f"refusal names device {exc.device!r}"
        else:
            raise AssertionError(f"write of {refused.value!r} to {refused.point.tag} was "
                                 "not refused")
        assert d.connected, "a refused write dropped the connection"
        assert d.health.failures == 0, "a refused write counted as a failure"
        assert d.health.requests == requests, "a refused write sent requests"
        after = await d.read(plan)
        _assert_same(before, after, "a refused write changed the device")


async def check_partial_failure_marks_only_failed_points(h: Harness) -> None:
    """A point the device rejects is BAD with a reason; the other points stay GOOD."""
    async with h.make_driver() as d:
        pts = list(h.points())
        bad = h.failing_point()
        result = await d.read(d.plan([*pts, bad]))
        slots = result.slots.tolist()
        for s in bad.slots:
            i = _index_of(slots, s)
            assert result.quality[i] == Quality.BAD, f"{bad.tag} is not BAD"
            assert result.reason[i] != Reason.NONE, f"{bad.tag} is BAD without a reason"
            assert np.isnan(result.raw[i]), f"{bad.tag} is BAD but has a value"
        for p in pts:
            for s in p.slots:
                i = _index_of(slots, s)
                assert result.quality[i] == Quality.GOOD, (
                    f"{p.tag} went {Quality(int(result.quality[i])).label} with {bad.tag}")
        assert d.connected, "one rejected point dropped the connection"


async def check_timestamps_are_set(h: Harness) -> None:
    """Every value carries a receive time from this read and a source time not after it."""
    async with h.make_driver() as d:
        plan = d.plan(list(h.points()))
        t0 = d.clock.wall_ns()
        result = await d.read(plan)
        t1 = d.clock.wall_ns()
        assert t0 <= result.received_ns <= t1, (
            f"received_ns {result.received_ns} outside the read [{t0}, {t1}]")
        sources = result.sources()
        assert len(sources) == len(result.slots), "source times do not match the slots"
        assert (sources > 0).all(), "a value without a source time"
        assert (sources <= result.received_ns + 5_000_000_000).all(), (
            "a source time far after the value arrived")


async def check_integers_are_exact(h: Harness) -> None:
    """64-bit integers beyond float64's 2**53 are written and read back digit for digit."""
    pairs = list(h.exact_points())
    assert pairs, "exact_points() is empty: give 64-bit points, or do not run this check"
    async with h.make_driver() as d:
        await d.write([WriteItem(p, v) for p, v in pairs])
        result = await d.read(d.plan([p for p, _ in pairs]))
        for p, v in pairs:
            got = result.exact.get(p.slot)
            assert got == v and isinstance(got, int), f"{p.tag}: wrote {v}, read {got!r}"


async def check_pushed_values_arrive(h: Harness) -> None:
    """A subscription delivers the current values, then each change, GOOD and time-stamped."""
    pts = list(h.pushed_points())
    async with h.make_driver() as d:
        sink = RecordingSink()
        sub = await d.subscribe(pts, sink)
        await sink.wait_for(lambda: sink.covers(pts), h.timeout_s * 5 + 1, "initial values")
        target = pts[0]
        value = h.value_for(target)
        t0 = d.clock.wall_ns()
        await h.change(target, value)
        await sink.wait_for(lambda: sink.latest_equals(target, value), h.timeout_s * 5 + 1,
                            f"the change of {target.tag} to {value!r}")
        r = sink.last_for(target)
        assert r is not None
        i = _index_of(r.slots.tolist(), target.slot)
        assert r.quality[i] == Quality.GOOD, "pushed value is not GOOD"
        assert r.received_ns >= t0, "pushed value received before it changed"
        assert int(r.sources()[i]) > 0, "pushed value without a source time"
        assert d.health.reads == 0, "the driver polled while subscribed"
        await d.unsubscribe(sub)


async def check_push_resumes_after_reconnect(h: Harness) -> None:
    """When the link breaks the points go STALE; the driver reconnects by itself and the
    subscription delivers again, including a change made while it was down."""
    pts = list(h.pushed_points())
    async with h.make_driver() as d:
        sink = RecordingSink()
        await d.subscribe(pts, sink)
        await sink.wait_for(lambda: sink.covers(pts), h.timeout_s * 5 + 1, "initial values")
        await h.break_link()
        await sink.wait_for(lambda: bool(sink.lost_slots), h.timeout_s * 5 + 2,
                            "the subscription to be reported lost")
        assert set(sink.lost_slots) >= {s for p in pts for s in p.slots}, (
            "not every subscribed point went STALE")
        target = pts[0]
        value = h.value_for(target)
        await h.change(target, value)
        limit = d.spec.retry.backoff_max_s + h.timeout_s * 5 + 3
        await sink.wait_for(lambda: sink.latest_equals(target, value), limit,
                            "pushes to resume after the reconnect")
        assert d.health.resubscribes >= 1, "health does not count the re-subscription"


class RecordingSink:
    """A push sink that records what a subscription delivers (for tests)."""

    def __init__(self) -> None:
        self.results: list[ReadResult] = []
        self.lost_slots: list[int] = []
        self._event = asyncio.Event()

    def push(self, result: ReadResult) -> None:
        self.results.append(result)
        self._event.set()

    def lost(self, slots: NDArray[np.intp], reason: Reason) -> None:
        self.lost_slots.extend(int(s) for s in slots)
        self._event.set()

    def last_for(self, point: Point) -> ReadResult | None:
        for r in reversed(self.results):
            if point.slot in r.slots.tolist():
                return r
        return None

    def covers(self, points: Sequence[Point]) -> bool:
        seen = {int(s) for r in self.results for s in r.slots}
        return all(s in seen for p in points for s in p.slots)

    def latest_equals(self, point: Point, value: WriteValue) -> bool:
        r = self.last_for(point)
        if r is None:
            return False
        i = r.slots.tolist().index(point.slot)
        if r.quality[i] != Quality.GOOD:
            return False
        if isinstance(value, str):
            return r.texts.get(point.slot) == value
        if isinstance(value, tuple):
            got = r.raw[i:i + len(value)].tolist()
            return all(math.isclose(a, float(b), rel_tol=1e-6) for a, b in zip(
                got, value, strict=True))
        if isinstance(value, int) and not isinstance(value, bool) and point.slot in r.exact:
            return r.exact[point.slot] == value
        return math.isclose(float(r.raw[i]), float(value), rel_tol=1e-6)

    async def wait_for(self, condition: Callable[[], bool], timeout_s: float,
                       what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
            self._event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), min(left, 0.05))


def _assert_same(a: ReadResult, b: ReadResult, message: str) -> None:
    same = (np.array_equal(a.raw, b.raw, equal_nan=True) and dict(a.texts) == dict(b.texts)
            and dict(a.exact) == dict(b.exact))
    assert same, f"{message}: {a.raw.tolist()} {dict(a.texts)} -> {b.raw.tolist()} " \
                 f"{dict(b.texts)}"


CHECKS: tuple[Callable[[Harness], Awaitable[None]], ...] = (  # the write round trip's
    # read-only counterpart, check_device_values_are_read, replaces it where it applies
    check_connect_close_idempotent,
    check_read_write_round_trip,
    check_timeout_raises,
    check_use_after_close_raises,
    check_cancellation_leaves_driver_usable,
    check_garbage_raises_protocol_error,
    check_refused_write_leaves_device_untouched,
    check_partial_failure_marks_only_failed_points,
    check_timestamps_are_set,
    check_integers_are_exact,
)
"""The checks every driver passes."""

PUSH_CHECKS: tuple[Callable[[Harness], Awaitable[None]], ...] = (
    check_pushed_values_arrive,
    check_push_resumes_after_reconnect,
)
"""The checks of a driver whose device pushes values."""


def checks_for(h: Harness) -> tuple[Callable[[Harness], Awaitable[None]], ...]:
    """The checks that apply to ``h``: :data:`CHECKS`, without the exact-integer check for a
    device with no 64-bit integers, with :func:`check_device_values_are_read` instead of the
    write round trip for a read-only device (a harness whose ``read_only`` is true), plus
    :data:`PUSH_CHECKS` for a device that pushes."""
    checks = [c for c in CHECKS if c is not check_integers_are_exact or h.exact_points()]
    if getattr(h, "read_only", False):
        checks = [check_device_values_are_read if c is check_read_write_round_trip else c
                  for c in checks]
    if h.pushed_points():
        checks += PUSH_CHECKS
    return tuple(checks)


async def check_driver(h: Harness) -> None:
    """Run every check that applies in turn; the first failure raises AssertionError naming it."""
    for check in checks_for(h):
        try:
            await check(h)
        except AssertionError as exc:
            raise AssertionError(f"{check.__name__}: {exc}") from exc


def _index_of(slots: list[int], slot: int) -> int:
    try:
        return slots.index(slot)
    except ValueError:
        raise AssertionError(f"slot {slot} missing from the read result") from None
