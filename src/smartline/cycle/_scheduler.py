"""Absolute-deadline scheduling: overrun policies and real-time thread settings.

Deadlines are ``t0 + k·period`` (no drift). After a cycle ends, :func:`next_deadline`
decides where the next one starts according to the task's overrun policy (the compiled
loop's ``after_cycle`` applies the same rule; a test keeps the two equal). The tick thread
waits in its compiled loop (``clock_nanosleep`` to ``spin_ns`` before the deadline, then a
spin), after lowering its timer slack and, when the OS permits, switching itself to
``SCHED_FIFO`` (:func:`apply_realtime`). Measured on the project's 2-vCPU VMs
(research/dependencies.md §6): p99 lateness of a 1 ms loop drops from 1–3 ms
(``asyncio.sleep``) to tens of µs.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import enum
import functools
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "OverrunPolicy",
    "RealtimeOptions",
    "RealtimeStatus",
    "apply_realtime",
    "next_deadline",
]

log = logging.getLogger(__name__)

_PR_SET_TIMERSLACK = 29
_PR_GET_TIMERSLACK = 30


class OverrunPolicy(enum.StrEnum):
    """What a task does about deadlines that passed while a cycle ran."""

    SKIP = "skip"  # drop the missed deadlines (counted as skipped) and start on the next one
    CATCH_UP = "catch_up"  # run one cycle for every missed deadline, back to back
    FAULT = "fault"  # stop the task, outputs safe, raise CycleOverrunError


def next_deadline(policy: OverrunPolicy, deadline_ns: int, period_ns: int,
                  end_ns: int) -> tuple[int, int, bool]:
    """Where the cycle after the one scheduled at ``deadline_ns`` (ending at ``end_ns``) starts.

    Returns ``(next_deadline_ns, skipped, overrun)``. A cycle overruns when it ends after
    the following deadline. Under ``skip`` the next cycle starts on the first deadline not
    already passed (a deadline equal to ``end_ns`` is not passed) and every deadline jumped
    over counts as skipped; under ``catch_up`` and ``fault`` it is simply the next deadline.
    """
    nxt = deadline_ns + period_ns
    if end_ns <= nxt:
        return nxt, 0, False
    if policy is OverrunPolicy.SKIP:
        missed = -(-(end_ns - nxt) // period_ns)  # ceil
        return nxt + missed * period_ns, missed, True
    return nxt, 0, True


@dataclass(frozen=True, slots=True)
class RealtimeOptions:
    """How a tick thread waits and which OS real-time features it asks for.

    ``priority`` is the ``SCHED_FIFO`` priority (1–99; ``None`` leaves the scheduling
    class alone); ``timer_slack_ns`` is set with ``prctl(PR_SET_TIMERSLACK)`` (``None``
    leaves it); ``spin_ns`` is how long before a deadline the thread stops sleeping and
    spins; ``switch_interval_s`` is the interpreter's GIL switch interval while the engine
    runs (default 5 ms in CPython; the compiled tick does not need the GIL, but the I/O
    loop's reads and writes start sooner with a short one; ``None`` leaves it).
    ``stop_slice_ns`` bounds how long a task with a long period takes to notice a stop;
    ``seq_retries`` how often a tick retries an input block a writer holds before it
    takes those inputs as BAD for the cycle.
    """

    priority: int | None = 50
    timer_slack_ns: int | None = 1
    spin_ns: int = 200_000
    switch_interval_s: float | None = 0.0002
    stop_slice_ns: int = 20_000_000
    seq_retries: int = 10_000


@dataclass(frozen=True, slots=True)
class RealtimeStatus:
    """What a tick thread actually got (shown in the stats)."""

    sched: str = "other"  # "fifo" | "other"
    priority: int = 0
    timer_slack_ns: int | None = None

    def as_dict(self) -> dict[str, object]:
        return {"sched": self.sched, "priority": self.priority,
                "timer_slack_ns": self.timer_slack_ns}


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """The C library (loaded once), or None where it cannot be loaded."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    libc = _libc()
    if libc is None:
        return None
    fn: Callable[..., int] = libc.prctl
    return fn


def apply_realtime(opts: RealtimeOptions) -> RealtimeStatus:
    """Lower the calling thread's timer slack and make it SCHED_FIFO where permitted.

    Falls back quietly (DEBUG log) when the OS or the container does not allow it.
    """
    slack: int | None = None
    prctl = _prctl()
    if prctl is not None and opts.timer_slack_ns is not None:
        if prctl(_PR_SET_TIMERSLACK, ctypes.c_ulong(opts.timer_slack_ns), 0, 0, 0) == 0:
            slack = int(prctl(_PR_GET_TIMERSLACK, 0, 0, 0, 0))
        else:
            log.debug("PR_SET_TIMERSLACK refused: %s", os.strerror(ctypes.get_errno()))
    sched, prio = "other", 0
    if opts.priority is not None and hasattr(os, "sched_setscheduler"):
        try:
            lo = os.sched_get_priority_min(os.SCHED_FIFO)
            hi = os.sched_get_priority_max(os.SCHED_FIFO)
            p = max(lo, min(hi, opts.priority))
            # pid 0 = the calling thread on Linux (scheduling is per thread)
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(p))
            sched, prio = "fifo", p
        except (OSError, AttributeError) as exc:
            log.debug("SCHED_FIFO not permitted (%s); using the default scheduler", exc)
    return RealtimeStatus(sched, prio, slack)


def monotonic_ns() -> int:
    """The real clock every real-time measurement uses."""
    return time.monotonic_ns()
