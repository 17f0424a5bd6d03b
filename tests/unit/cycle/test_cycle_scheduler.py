"""Deadline arithmetic of the overrun policies, the wait, real-time settings, watchdogs."""

from __future__ import annotations

import threading

import pytest

from smartline.cycle import OverrunPolicy, RealtimeOptions, Watchdog
from smartline.cycle._scheduler import apply_realtime, next_deadline
from smartline.cycle._watchdog import WatchdogMonitor

P = 10


def test_the_compiled_loop_follows_next_deadline() -> None:
    """The compiled loop's after_cycle applies the policies exactly as next_deadline says."""
    import numpy as np

    from smartline.cycle import _loop

    codes = {OverrunPolicy.SKIP: _loop.POLICY_SKIP, OverrunPolicy.CATCH_UP: _loop.POLICY_CATCH_UP}
    for policy, code in codes.items():
        for end in (0, P - 1, P, P + 1, 2 * P, 2 * P + 1, 5 * P + 3):
            ctl = np.zeros(_loop.CTL_LEN, np.int64)
            nxt = _loop.after_cycle(ctl, 0, P, 0, end, code, 0, 1)
            expected, skipped, overrun = next_deadline(policy, 0, P, end)
            assert (nxt, int(ctl[_loop.C_SKIPPED]), bool(ctl[_loop.C_OVERRUNS])) == (
                expected, skipped, overrun)


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
