"""Deadline arithmetic of the overrun policies, the wait, real-time settings, watchdogs."""

from __future__ import annotations

import threading
import time

import pytest

from smartline.cycle import OverrunPolicy, RealtimeOptions, Watchdog
from smartline.cycle._scheduler import apply_realtime, next_deadline, wait_until
from smartline.cycle._watchdog import WatchdogMonitor

P = 10


@pytest.mark.parametrize(("policy", "end", "expected"), [
    (OverrunPolicy.SKIP, 5, (10, 0, False)),
    (OverrunPolicy.SKIP, 10, (10, 0, False)),      # ending on the deadline is in time
    (OverrunPolicy.SKIP, 11, (20, 1, True)),
    (OverrunPolicy.SKIP, 20, (20, 1, True)),       # deadline 20 equals the end: not skipped
    (OverrunPolicy.SKIP, 35, (40, 3, True)),
    (OverrunPolicy.CATCH_UP, 35, (10, 0, True)),
    (OverrunPolicy.FAULT, 11, (10, 0, True)),
])
def test_next_deadline(policy: OverrunPolicy, end: int,
                       expected: tuple[int, int, bool]) -> None:
    assert next_deadline(policy, 0, P, end) == expected


def test_wait_until_returns_false_when_stopped_and_true_on_time() -> None:
    stop = threading.Event()
    now = time.monotonic_ns
    t0 = now()
    assert wait_until(now, t0 + 5_000_000, stop, 200_000)
    assert now() >= t0 + 5_000_000
    threading.Timer(0.01, stop.set).start()
    t1 = now()
    assert not wait_until(now, t1 + 5_000_000_000, stop, 200_000)
    assert now() - t1 < 2_000_000_000
    assert not wait_until(now, now() - 1, stop, 200_000)  # stopped wins over "already due"


def test_apply_realtime_falls_back_quietly() -> None:
    got: list[object] = []
    th = threading.Thread(target=lambda: got.append(apply_realtime(RealtimeOptions())))
    th.start()
    th.join()
    st = got[0]
    assert st.sched in ("fifo", "other")  # type: ignore[attr-defined]
    none = apply_realtime(RealtimeOptions(priority=None, timer_slack_ns=None))
    assert none.sched == "other" and none.timer_slack_ns is None


def test_watchdog_counts_in_a_row_and_resets() -> None:
    wd = Watchdog(10, sensitivity=3)
    assert [wd.check(c) for c in (11, 11, 5, 11, 11)] == [None] * 5
    assert wd.in_row == 2
    assert wd.check(11) is not None and wd.tripped
    assert wd.check(11) is None  # trips once
    wd.reset()
    assert not wd.tripped and wd.in_row == 0
    assert Watchdog(10, 3).check(31) is not None  # single cycle > time x sensitivity
    assert Watchdog(10, 0).sensitivity == 1
    with pytest.raises(ValueError):
        Watchdog(0)


class FakeTask:
    def __init__(self, name: str, wd: Watchdog | None) -> None:
        self.name = name
        self.watchdog = wd
        self.start = 0
        self.tripped: list[str] = []

    @property
    def cycle_start_ns(self) -> int:
        return self.start

    def trip(self, kind: str, reason: str) -> None:
        self.tripped.append(f"{kind}: {reason}")


def test_monitor_trips_a_cycle_that_hangs() -> None:
    clock = {"now": 0}
    hung = FakeTask("hung", Watchdog(10_000_000, 2))
    idle = FakeTask("idle", Watchdog(10_000_000, 2))
    free = FakeTask("free", None)
    mon = WatchdogMonitor([hung, idle, free], lambda: clock["now"])
    assert mon.poll_ns == 5_000_000
    hung.start = 1
    clock["now"] = 15_000_000
    mon.poll()
    assert hung.tripped == []
    clock["now"] = 20_000_002
    mon.poll()
    mon.poll()
    assert len(hung.tripped) == 1 and "still running" in hung.tripped[0]
    assert idle.tripped == [] and free.tripped == []
