"""Acquisition: a task's reads, scheduled by the I/O loop itself (DESIGN §7, issue #8).

The tick never asks for a read. From the task's period and I/O deadline the I/O loop
knows when every cycle is due: at ``t_k − io_deadline`` it starts a read of each of the
task's devices that has none in flight (concurrently, one per device), and at ``t_k`` it
marks STALE the tags of a device whose read has not landed (the read keeps running; its
values land whenever it answers, and no second read of that device starts meanwhile).
Tags their devices push are not read at all (see ``LineIO.group(push=True)``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..core import Quality, Reason
from ._stats import IoCounters

if TYPE_CHECKING:
    from ._io import LineIO, ReadGroup

__all__ = ["Acquisition", "DeviceRead"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class DeviceRead:
    """One device's share of a task's acquisition, with its read in flight (if any)."""

    device: str
    group: ReadGroup
    timeout_s: float  # bound for a read: connect + request, each within the device timeout
    task: asyncio.Task[None] | None = None
    landed: bool = True

    @property
    def in_flight(self) -> bool:
        return not self.landed


class Acquisition:
    """The reads of one task: started by :meth:`run` on the I/O loop (real time) or awaited
    whole by :meth:`read_all` (virtual time, priming)."""

    def __init__(self, task: str, reads: list[DeviceRead], io: LineIO, *,
                 counters: IoCounters, period_ns: int, io_deadline_ns: int,
                 log_io: Callable[..., None]) -> None:
        self.task = task
        self.reads = reads
        self.io = io
        self.counters = counters
        self.period_ns = period_ns
        self.lead_ns = min(io_deadline_ns, period_ns)
        self._log_io = log_io

    @property
    def request_count(self) -> int:
        """Wire requests one acquisition sends (from the read plans)."""
        return sum(r.group.request_count for r in self.reads)

    async def read_all(self, *, count: bool = True) -> None:
        """Read every device now and wait for all of them (virtual time; priming, whose
        reads are not counted in the task's statistics: ``count=False``)."""
        reads = self.reads
        if not reads:
            return
        if count:
            self.counters.reads += len(reads)
        if len(reads) == 1:  # one device: no task to schedule, one loop turn less per read
            await self._read(reads[0], count=count)
        else:
            await asyncio.gather(*(self._read(r, count=count) for r in reads))

    def start_reads(self) -> list[DeviceRead]:
        """Start a read of every device that has none in flight; the ones started."""
        started = []
        for r in self.reads:
            if r.in_flight:
                continue
            r.landed = False
            r.task = asyncio.ensure_future(self._read(r))
            self.counters.reads += 1
            started.append(r)
        return started

    def deadline_passed(self, started: list[DeviceRead]) -> None:
        """At the cycle's deadline: devices still reading have their tags marked STALE."""
        for r in started:
            if r.in_flight:
                self.counters.reads_late += 1
                self.counters.stale_reads += 1
                self.io.image.mark(r.group.slots, Quality.STALE, Reason.DEADLINE)

    async def run(self, t0_ns: int, now_ns: Callable[[], int], stopped: asyncio.Event) -> None:
        """Read ahead of every deadline ``t0 + k·period`` until ``stopped`` (real time; the
        engine also cancels this task when the line stops)."""
        period, lead = self.period_ns, self.lead_ns
        k = 0
        while not stopped.is_set():
            deadline = t0_ns + k * period
            now = now_ns()
            if now >= deadline:  # behind (a busy loop): the next deadline still ahead
                k = (now - t0_ns) // period + 1
                continue
            start_at = deadline - lead
            if start_at > now:
                await asyncio.sleep((start_at - now) / 1e9)
            if stopped.is_set():
                return
            started = self.start_reads()
            now = now_ns()
            if deadline > now:
                await asyncio.sleep((deadline - now) / 1e9)
            self.deadline_passed(started)
            k += 1

    async def wait_landed(self, timeout_s: float) -> None:
        """Let reads still in flight end (they are bounded by the drivers' timeouts)."""
        pending = [r.task for r in self.reads if r.task is not None and not r.task.done()]
        if pending:
            await asyncio.wait(pending, timeout=timeout_s)

    async def _read(self, r: DeviceRead, *, count: bool = True) -> None:
        r.landed = False
        try:
            for st in await self.io.read(r.group, r.timeout_s):
                if count:
                    self.counters.requests += st.requests
                if not st.ok:
                    self.counters.failed_reads += 1
                    self._log_io(f"read of {st.device} failed: {st.error}")
        except Exception as exc:  # a driver bug must not kill the task: tags go BAD
            self.counters.failed_reads += 1
            self.io.image.mark(r.group.slots, Quality.BAD, Reason.LINK_BROKEN)
            self._log_io(f"reading {r.device} failed: {exc!r}", exc_info=exc)
        finally:
            r.landed = True
