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
``ProtocolError``.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from ..core import (
    ClosedError,
    CommunicationError,
    DeviceTimeoutError,
    DriverBase,
    Point,
    ProtocolError,
    Quality,
    WriteItem,
    WriteValue,
)

__all__ = [
    "CHECKS",
    "Harness",
    "check_cancellation_leaves_driver_usable",
    "check_connect_close_idempotent",
    "check_driver",
    "check_garbage_raises_protocol_error",
    "check_read_write_round_trip",
    "check_timeout_raises",
    "check_use_after_close_raises",
]


class Harness(Protocol):
    """What a driver's test supplies to the conformance suite."""

    timeout_s: float  # the driver's timeout; faults must outlast it

    def make_driver(self) -> DriverBase:
        """A fresh, unconnected driver talking to the simulator."""

    def points(self) -> Sequence[Point]:
        """Readable and writable points (at least one), each with a value to write."""

    def value_for(self, point: Point) -> WriteValue:
        """A raw value to write to ``point`` that differs from its current one."""

    async def set_latency(self, seconds: float) -> None:
        """Make the simulator answer after ``seconds`` (0 = normal)."""

    async def set_garbage(self, on: bool) -> None:
        """Make the simulator answer with bytes that are not a valid response."""


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


CHECKS: tuple[Callable[[Harness], Awaitable[None]], ...] = (
    check_connect_close_idempotent,
    check_read_write_round_trip,
    check_timeout_raises,
    check_use_after_close_raises,
    check_cancellation_leaves_driver_usable,
    check_garbage_raises_protocol_error,
)


async def check_driver(h: Harness) -> None:
    """Run every check in turn; the first failure raises AssertionError naming it."""
    for check in CHECKS:
        try:
            await check(h)
        except AssertionError as exc:
            raise AssertionError(f"{check.__name__}: {exc}") from exc


def _index_of(slots: list[int], slot: int) -> int:
    try:
        return slots.index(slot)
    except ValueError:
        raise AssertionError(f"slot {slot} missing from the read result") from None
