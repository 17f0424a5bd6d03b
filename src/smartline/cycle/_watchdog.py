"""Task watchdogs, with CODESYS semantics (research/peers.md).

A watchdog has a ``time`` and a ``sensitivity`` (N). It trips when

* N cycles in a row each run longer than ``time`` (with ``time`` equal to the period: N
  overruns in a row), or
* a single cycle runs longer than ``time × N`` — which also catches a cycle that never ends
  (an endless loop in a program, an I/O wait that hangs): :class:`WatchdogMonitor` watches
  running cycles from its own thread and trips the task while the cycle is still running.

Cycle time here is execution time, from the cycle's start to its end, not its lateness.
A tripped task stops and its outputs go to their ``safe`` values (see ``_engine``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

__all__ = ["Watchdog", "WatchdogMonitor"]

log = logging.getLogger(__name__)


class Watchdog:
    """Counts cycles longer than ``time_ns``; :meth:`check` says why it tripped, if it did."""

    def __init__(self, time_ns: int, sensitivity: int = 1) -> None:
        if time_ns <= 0:
            raise ValueError(f"watchdog time must be > 0, got {time_ns} ns")
        self.time_ns = int(time_ns)
        self.sensitivity = max(1, int(sensitivity))
        self.in_row = 0
        self.tripped = False

    @property
    def hang_ns(self) -> int:
        """A single cycle longer than this trips at once (``time × sensitivity``)."""
        return self.time_ns * self.sensitivity

    def reset(self) -> None:
        self.in_row = 0
        self.tripped = False

    def check(self, cycle_ns: int) -> str | None:
        """Account one finished cycle; the reason when this cycle trips the watchdog."""
        if cycle_ns > self.time_ns:
            self.in_row += 1
        else:
            self.in_row = 0
        if self.tripped:
            return None
        if cycle_ns > self.hang_ns:
            self.tripped = True
            return (f"cycle took {cycle_ns / 1e6:.3f} ms, longer than watchdog time × "
                    f"sensitivity ({self.hang_ns / 1e6:g} ms)")
        if self.in_row >= self.sensitivity:
            self.tripped = True
            return (f"{self.in_row} cycle(s) in a row longer than the watchdog time "
                    f"({self.time_ns / 1e6:g} ms); last took {cycle_ns / 1e6:.3f} ms")
        return None


class Watched(Protocol):
    """What the monitor needs from a task."""

    name: str
    watchdog: Watchdog | None

    @property
    def cycle_start_ns(self) -> int:
        """Start of the running cycle, 0 between cycles."""

    def trip(self, kind: str, reason: str) -> None:
        """Stop the task: outputs safe, alarm raised."""


class WatchdogMonitor:
    """A thread that trips tasks whose running cycle exceeds ``time × sensitivity``.

    It polls every ``poll_ns`` (a quarter of the shortest hang limit, clamped to
    1–50 ms), so a hang is caught within its limit plus one poll.
    """

    def __init__(self, tasks: list[Watched], now_ns: Callable[[], int]) -> None:
        self._tasks = [t for t in tasks if t.watchdog is not None]
        self._now = now_ns
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        limits = [t.watchdog.hang_ns for t in self._tasks if t.watchdog is not None]
        self.poll_ns = max(1_000_000, min(50_000_000, min(limits, default=0) // 4))

    def start(self) -> None:
        if not self._tasks or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="smartline-watchdog",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def poll(self) -> None:
        """Check every task once (the thread calls this every ``poll_ns``)."""
        now = self._now()
        for t in self._tasks:
            wd = t.watchdog
            start = t.cycle_start_ns
            if wd is None or wd.tripped or start == 0:
                continue
            running = now - start
            if running > wd.hang_ns:
                wd.tripped = True
                t.trip("watchdog", f"cycle still running after {running / 1e6:.1f} ms, longer "
                                   f"than watchdog time × sensitivity ({wd.hang_ns / 1e6:g} ms)")

    def _run(self) -> None:
        while not self._stop.wait(self.poll_ns / 1e9):
            try:
                self.poll()
            except Exception:  # the monitor must outlive any one bad task
                log.exception("watchdog monitor failed")
