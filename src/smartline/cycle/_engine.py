"""The cycle engine: fixed-period tasks over the process image (DESIGN §7).

A task's cycle ``k`` is due at the absolute deadline ``t_k = t0 + k·period``:

0. **read-ahead** — at ``t_k − io_deadline`` the tick thread starts a read of each of the
   task's devices that has none in flight (the I/O loop runs them concurrently, one per
   device). The tick never waits for a device.
1. **inputs** (from ``t_k``) — a device whose read has not landed by ``t_k`` has its tags
   marked STALE (its read keeps running; its values land whenever it answers, and no second
   read of it starts meanwhile); then the task's input slots are copied out of the image in
   one locked copy and BAD inputs become NaN. So a 1 ms task never blocks on a 2 ms Modbus
   round trip: it runs on the latest consistent values and their quality says how fresh.
2. **logic** — one call of the task's compiled program on whole arrays.
3. **outputs** — changed outputs (deadband) are checked against their tags' rules and handed
   to the I/O loop; the batch is confirmed (committed, stored in the image) at the start of
   a later cycle. At most one batch is in flight per task.

I/O runs on the asyncio loop that awaits :meth:`Engine.run`; tick threads never run
asyncio themselves. Under a :class:`~smartline.core.VirtualClock` every task runs in one
thread as a discrete-event simulation and every read and write is waited for at the
cycle's start (I/O takes no virtual time), so runs are deterministic and faster than real
time.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import heapq
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from ..core import (
    Clock,
    CycleOverrunError,
    MonotonicClock,
    Point,
    Quality,
    Reason,
    SmartlineError,
    VirtualClock,
    WriteItem,
    WriteRefusedError,
)
from ..tags import TagSpec
from . import _kernels
from ._image import OutputTracker, ProcessImage, Snapshot
from ._program import Program, ProgramError, load_program
from ._scheduler import (
    OverrunPolicy,
    RealtimeOptions,
    RealtimeStatus,
    apply_realtime,
    next_deadline,
    wait_until,
)
from ._stats import (
    CYCLE,
    INPUTS,
    LATENESS,
    LOGIC,
    OUTPUTS,
    SERIES,
    Alarm,
    EngineStats,
    IoCounters,
    TaskStats,
    TimingRecorder,
)
from ._watchdog import Watchdog, WatchdogMonitor

if TYPE_CHECKING:
    from ..config import LineConfig, TaskConfig
    from ._io import LineIO, ReadGroup

__all__ = ["Engine", "Task", "TaskSpec"]

log = logging.getLogger(__name__)

_START_DELAY_NS = 5_000_000  # first deadline after start, so every thread is up in time
_SAFE_TIMEOUT_S = 5.0  # bound on driving outputs safe at stop
_LOG_EVERY_NS = 10_000_000_000  # rate limit of repeated I/O warnings per task
_YIELD_EVERY = 16  # virtual time: cycles between turns of the event loop
_THREAD_PREFIX = "smartline-task-"
_JOIN_MIN_S = 1.0  # at stop, a tick thread gets max(this, _JOIN_PERIODS periods) to end
_JOIN_PERIODS = 10


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """What a task is: period, program, tags, overrun policy, watchdog, I/O deadline.

    ``tags`` are acquired every cycle along with ``inputs``; ``inputs``/``outputs`` may be
    left empty when the program declares them. ``io_deadline_ms`` is how long before each
    deadline the task's reads start (default: half the period); a device that has not
    answered by the deadline has its tags marked STALE for that cycle.
    """

    name: str
    period_ms: float
    program: Program | None = None
    tags: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    overrun: OverrunPolicy | str = OverrunPolicy.SKIP
    watchdog_time_ms: float | None = None
    watchdog_sensitivity: int = 1
    io_deadline_ms: float | None = None

    def __post_init__(self) -> None:
        if not self.period_ms > 0:
            raise ValueError(f"task {self.name!r}: period_ms must be > 0, got {self.period_ms}")
        object.__setattr__(self, "overrun", OverrunPolicy(self.overrun))
        for f in ("tags", "inputs", "outputs"):
            object.__setattr__(self, f, tuple(getattr(self, f)))

    @property
    def period_ns(self) -> int:
        return round(self.period_ms * 1e6)

    @classmethod
    def from_config(cls, cfg: TaskConfig) -> TaskSpec:
        """A spec from a line file's task; loads (imports) its program."""
        try:
            prog = load_program(cfg.program) if cfg.program else None
        except ProgramError as exc:
            if exc.task is None:
                exc.task = cfg.name
            raise
        wd = cfg.watchdog
        return cls(name=cfg.name, period_ms=cfg.period_ms, program=prog, tags=cfg.tags,
                   inputs=cfg.inputs, outputs=cfg.outputs, overrun=cfg.overrun,
                   watchdog_time_ms=wd.time_ms if wd else None,
                   watchdog_sensitivity=wd.sensitivity if wd else 1,
                   io_deadline_ms=cfg.io_deadline_ms)


@dataclass(slots=True)
class _DeviceRead:
    """One device's share of a task's acquisition, with its read in flight (if any)."""

    device: str
    group: ReadGroup
    timeout_s: float  # bound for a read: connect + request, each within the device timeout
    future: concurrent.futures.Future[None] | None = None
    landed: bool = True  # False while a read is in flight; set on the loop thread
    token: int = 0


@dataclass(frozen=True, slots=True)
class _OutputTag:
    name: str
    spec: TagSpec
    start: int  # position in the outputs array
    stop: int


@dataclass(slots=True)
class _WriteBatch:
    future: concurrent.futures.Future[dict[str, str]] | None
    values: NDArray[np.float64]  # the program's outputs (what change detection compares)
    mask: NDArray[np.bool_]
    devices: dict[str, list[int]] = field(default_factory=dict)  # device -> output positions
    written: NDArray[np.float64] | None = None  # engineering values of the raw values sent


class Task:
    """A running task: its spec, arrays, program state, counters and timing histograms."""

    def __init__(self, spec: TaskSpec, engine: Engine) -> None:
        self.spec = spec
        self.name = spec.name
        self.period_ns = spec.period_ns
        self.policy = OverrunPolicy(spec.overrun)
        self._engine = engine
        self.program: Program | None = spec.program
        self.watchdog: Watchdog | None = (
            Watchdog(round(spec.watchdog_time_ms * 1e6), spec.watchdog_sensitivity)
            if spec.watchdog_time_ms is not None else None)
        io_deadline = spec.io_deadline_ms if spec.io_deadline_ms is not None \
            else spec.period_ms / 2
        self.io_deadline_ns = round(io_deadline * 1e6)
        self.recorder = TimingRecorder(SERIES)
        self.io_counters = IoCounters()
        self.state = "idle"
        self.fault: str | None = None
        self.cycles = 0
        self.overruns = 0
        self.skipped = 0
        self.overruns_in_row = 0
        self.max_overruns_in_row = 0
        self.realtime = RealtimeStatus()
        self.program_state: object = ()
        self.inputs: NDArray[np.float64] = np.zeros(0)
        self.outputs: NDArray[np.float64] = np.zeros(0)
        self.input_names: tuple[str, ...] = ()
        self.output_names: tuple[str, ...] = ()
        self._snapshot: Snapshot | None = None
        self._tracker: OutputTracker | None = None
        self._mask: NDArray[np.bool_] = np.zeros(0, np.bool_)
        self._out_tags: list[_OutputTag] = []
        self._out_slots: NDArray[np.intp] = np.zeros(0, np.intp)
        self._safe: dict[str, object] = {}
        self._written: NDArray[np.float64] = np.zeros(0)
        self._refused: set[str] = set()  # outputs refused at least once (alarmed)
        self._source = f"task {spec.name}"
        self._reads: list[_DeviceRead] = []
        self.pushed_tags = 0  # tags of this task its devices push (never read by it)
        self._started: list[_DeviceRead] = []
        self._prefetched = False
        self._batch: _WriteBatch | None = None
        self._out_lock = threading.Lock()
        self._latched = False  # outputs are safe: the program may not write any more
        self._cycle_start = 0
        self._last_start = 0
        self._next_log_ns = 0
        # hot-path bindings (see _bind_hot_path)
        self._gather_args: tuple[Any, ...] = ()
        self._image_lock: threading.Lock = threading.Lock()
        self._now: Callable[[], int] = engine.now_ns
        self._rec = self.recorder.values
        self._record: Callable[[], None] = self.recorder.record
        self._kernel: Callable[..., None] | None = None
        self._has_outputs = False

    # -- binding -------------------------------------------------------------------------
    def prepare(self, image: ProcessImage, io: LineIO | None,
                acquired_elsewhere: frozenset[str] = frozenset()) -> None:
        """Resolve names to slots, plan reads, compile the program; before the first cycle.

        The task acquires its ``tags`` and those of its inputs that no other task lists in
        its ``tags`` (``acquired_elsewhere``): those it takes from the image as they are.
        """
        spec = self.spec
        prog = self.program
        inputs, outputs = spec.inputs, spec.outputs
        if prog is not None:
            if prog.inputs or prog.outputs:
                inputs = self._match(prog, "inputs", prog.inputs, spec.inputs)
                outputs = self._match(prog, "outputs", prog.outputs, spec.outputs)
            else:
                prog = prog.bind(spec.inputs, spec.outputs)
            self.program = prog
        elif spec.outputs:
            raise ProgramError(f"task {self.name!r} has outputs but no program")
        unknown = [n for n in (*spec.tags, *inputs, *outputs) if n not in image.tags]
        if unknown:
            raise ProgramError(f"unknown tag(s) {', '.join(sorted(set(unknown)))}",
                               task=self.name, file=prog.file if prog else None,
                               line=prog.line if prog else None)
        bad = [n for n in outputs if not image.tags[n].writable]
        if bad:
            raise ProgramError(f"output tag(s) {', '.join(bad)} are read-only (access r); "
                               "give them access rw or w", task=self.name)
        text = [n for n in (*inputs, *outputs) if image.tags[n].is_text]
        if text:
            raise ProgramError(f"text tag(s) {', '.join(text)} cannot be program inputs or "
                               "outputs", task=self.name)
        self.input_names, self.output_names = tuple(inputs), tuple(outputs)
        self._snapshot = Snapshot(image.slots(inputs))
        self.inputs = self._snapshot.value
        self._out_slots = image.slots(outputs)
        self.outputs = np.full(len(self._out_slots), np.nan)
        self._written = np.full(len(self._out_slots), np.nan)
        deadband = np.zeros(len(self._out_slots))
        pos = 0
        self._out_tags = []
        for n in outputs:
            t = image.tags[n]
            k = t.elements
            self._out_tags.append(_OutputTag(n, t, pos, pos + k))
            deadband[pos:pos + k] = t.deadband or 0.0
            pos += k
        self._tracker = OutputTracker(self._out_slots, deadband)
        self._mask = np.zeros(len(self._out_slots), np.bool_)
        self._safe = {n: _safe_value(image.tags[n]) for n in outputs
                      if image.tags[n].safe is not None}
        no_safe = [n for n in outputs if image.tags[n].safe is None]
        if no_safe:
            shown = ", ".join(no_safe[:8]) + (f" and {len(no_safe) - 8} more"
                                              if len(no_safe) > 8 else "")
            log.warning("task %s: output(s) %s have no safe value; they keep their last value "
                        "when the task stops", self.name, shown)
        read = list(dict.fromkeys(
            (*spec.tags, *(n for n in inputs if n not in acquired_elsewhere))))
        self._reads = []
        if read:
            if io is None:
                raise ProgramError(f"task {self.name!r} reads tags but the engine has no I/O")
            by_device: dict[str, list[str]] = {}
            for n in read:
                by_device.setdefault(image.tags[n].device, []).append(n)
            self._reads = []
            for d, names in by_device.items():
                group = io.group(names, push=True)  # pushed tags are never read
                if group.plans:
                    self._reads.append(
                        _DeviceRead(d, group, 2 * io.config.devices[d].timeout_s + 1.0))
                self.pushed_tags += sum(len(t) for t in group.pushed.values())
        self.recorder.warm_up()
        self._bind_hot_path(image)
        if prog is not None:
            self.program_state = prog.new_state()
            try:
                hit = prog.compile(len(self.inputs), len(self.outputs), self.program_state)
            except ProgramError as exc:
                exc.task = self.name
                raise
            log.debug("task %s: program %s %s", self.name, prog.name,
                      "loaded from cache" if hit else "compiled")

    def _bind_hot_path(self, image: ProcessImage) -> None:
        """Everything a cycle touches, looked up once (the tick runs this ~1000 times a s)."""
        snap = self._snapshot
        self._gather_args = (
            (image.value, image.quality, snap.slots, snap.value, snap.quality)
            if snap is not None and len(snap.slots) else ())
        self._image_lock = image.lock
        self._now = self._engine.now_ns
        self._rec = self.recorder.values
        self._record = self.recorder.record
        self._kernel = self.program.kernel if self.program is not None else None
        self._has_outputs = len(self.outputs) > 0

    def _match(self, prog: Program, what: str, declared: Sequence[str],
               configured: Sequence[str]) -> tuple[str, ...]:
        if configured and set(configured) != set(declared):
            missing = [n for n in declared if n not in configured]
            extra = [n for n in configured if n not in declared]
            parts = []
            if missing:
                parts.append(f"the program declares {', '.join(missing)} but the task does not")
            if extra:
                parts.append(f"the task names {', '.join(extra)} but the program does not")
            raise ProgramError(f"{what} of the task and of program {prog.name} differ: "
                               + "; ".join(parts), file=prog.file, line=prog.line,
                               task=self.name)
        return tuple(declared)

    @property
    def read_requests(self) -> int:
        """Wire requests one acquisition of this task sends (from the read plans)."""
        return sum(r.group.request_count for r in self._reads)

    @property
    def cycle_start_ns(self) -> int:
        return self._cycle_start

    # -- one cycle: shared phases --------------------------------------------------------
    def _begin(self, deadline_ns: int) -> int:
        start = self._now()
        self._cycle_start = start
        self._last_start = start
        self._rec[LATENESS] = start - deadline_ns if start > deadline_ns else 0
        return start

    def _compute(self, deadline_ns: int, start: int) -> int:
        """Copy the inputs out of the image and run the program; returns the logic's end."""
        now = self._now
        rec = self._rec
        if self._gather_args:
            with self._image_lock:  # one consistent copy: no torn multi-slot values
                _kernels.gather_inputs(*self._gather_args)
        t_in = now()
        rec[INPUTS] = t_in - start
        kernel = self._kernel
        if kernel is not None:
            try:
                kernel(deadline_ns, self.inputs, self.outputs, self.program_state)
            except Exception as exc:
                self._cycle_start = 0
                prog = self.program
                assert prog is not None
                raise ProgramError(f"program {prog.name} raised {exc!r}", task=self.name,
                                   file=prog.file, line=prog.line) from exc
        t_logic = now()
        rec[LOGIC] = t_logic - t_in
        return t_logic

    def _end(self, start: int, t_logic: int) -> int:
        end = self._now()
        rec = self._rec
        rec[OUTPUTS] = end - t_logic
        rec[CYCLE] = end - start
        self._record()
        self._cycle_start = 0
        return end

    def _changed(self) -> int:
        tracker = self._tracker
        assert tracker is not None
        return int(_kernels.changed_outputs(self.outputs, tracker.last, tracker.deadband,
                                            self._mask))

    def _collect_outputs(self) -> tuple[dict[str, list[WriteItem]], dict[str, list[int]],
                                        dict[str, object]]:
        """Changed outputs (per :attr:`_mask`) as checked write items by device, their output
        positions by device, and their engineering values by tag (for the audit).

        Fills :attr:`_written` with the engineering values of the raw values sent (rounded
        to the wire type), which is what a confirmed batch stores in the image.
        """
        mask = self._mask
        values = self.outputs
        written = self._written
        items: dict[str, list[WriteItem]] = {}
        positions: dict[str, list[int]] = {}
        eng: dict[str, object] = {}
        points = self._engine.points
        for ot in self._out_tags:
            if not mask[ot.start:ot.stop].any():
                continue
            spec = ot.spec
            value = spec.typed_values(values[ot.start:ot.stop])
            try:
                raw = spec.check_write(value)
            except WriteRefusedError as exc:
                mask[ot.start:ot.stop] = False
                self.io_counters.writes_refused += 1
                self._output_refused(ot.name, value, exc)
                continue
            written[ot.start:ot.stop] = raw  # type: ignore[assignment]
            if spec.scale is not None:
                written[ot.start:ot.stop] = spec.scale.to_eng(written[ot.start:ot.stop])
            items.setdefault(spec.device, []).append(WriteItem(points[ot.name], raw))
            positions.setdefault(spec.device, []).extend(range(ot.start, ot.stop))
            eng[ot.name] = value
        if items:
            self.io_counters.writes += 1
            self.io_counters.written_tags += sum(len(v) for v in items.values())
        return items, positions, eng

    def _output_refused(self, name: str, value: object, exc: WriteRefusedError) -> None:
        """A program output its tag's rules refuse: audited when it starts being refused;
        the first refusal of each output raises an ``io`` alarm."""
        self._log_io(f"output refused: {exc}")
        io = self._engine.io
        if io is not None:
            io.audit_write(name, value, "refused", exc.message, source=self._source,
                           changes_only=True)
        if name not in self._refused:
            self._refused.add(name)
            self._engine.alarm(self, "io", f"output {name} refused: {exc.message}")

    # -- one cycle in a tick thread (real time) ------------------------------------------
    def run_cycle(self, deadline_ns: int) -> int:
        """Run one cycle scheduled at ``deadline_ns`` in the calling thread; its end time."""
        start = self._begin(deadline_ns)
        if self._reads:
            self._inputs_phase()
        t_logic = self._compute(deadline_ns, start)
        if self._has_outputs:
            self._outputs_phase()
        return self._end(start, t_logic)

    def prefetch(self) -> None:
        """Start a read of every device of the task that has none in flight."""
        eng = self._engine
        started = self._started
        for r in self._reads:
            if not r.landed:
                continue  # still in flight since an earlier cycle: no second read
            r.token += 1
            r.landed = False
            r.future = eng.submit(self._read(r))
            self.io_counters.reads += 1
            started.append(r)
        self._prefetched = True

    def _inputs_phase(self) -> None:
        eng = self._engine
        if not self._prefetched:
            self.prefetch()
        self._prefetched = False
        for r in self._started:
            if not r.landed:
                self.io_counters.reads_late += 1
                eng.call_soon(self._mark_late, r, r.token)
        self._started.clear()

    def _mark_late(self, r: _DeviceRead, token: int) -> None:
        """On the loop thread: the read missed the cycle's deadline and still runs."""
        if r.token == token and not r.landed:
            self.io_counters.stale_reads += 1
            self._engine.image.mark(r.group.slots, Quality.STALE, Reason.DEADLINE)

    def _outputs_phase(self) -> None:
        batch = self._batch
        if batch is not None and batch.future is not None:
            if not batch.future.done():
                if self._changed():
                    self.io_counters.writes_deferred += 1
                return
            self._batch = None
            self._confirm(batch, _batch_result(batch))
        if not self._changed():
            return
        items, positions, values = self._collect_outputs()
        if not items:
            return
        with self._out_lock:  # a trip sees either no batch and no write, or both
            if self._latched:
                return
            fut = self._engine.submit(self._write(items, values))
            self._batch = _WriteBatch(fut, self.outputs.copy(), self._mask.copy(), positions,
                                      self._written.copy())

    # -- one cycle on the event loop (virtual time) --------------------------------------
    async def run_cycle_async(self, deadline_ns: int) -> int:
        """Run one cycle on the I/O loop, waiting for every read and write (virtual time)."""
        start = self._begin(deadline_ns)
        if self._reads:
            self.io_counters.reads += len(self._reads)
            await asyncio.gather(*(self._read(r) for r in self._reads))
        t_logic = self._compute(deadline_ns, start)
        if self._has_outputs and self._changed():
            items, positions, eng = self._collect_outputs()
            if items and not self._latched:
                batch = _WriteBatch(None, self.outputs.copy(), self._mask.copy(), positions,
                                    self._written.copy())
                failed = await self._write(items, eng)
                self._confirm(batch, failed)
        return self._end(start, t_logic)

    # -- I/O coroutines (on the loop) ----------------------------------------------------
    async def _read(self, r: _DeviceRead) -> None:
        io = self._engine.io
        assert io is not None
        r.landed = False
        try:
            for st in await io.read(r.group, r.timeout_s):
                self.io_counters.requests += st.requests
                if not st.ok:
                    self.io_counters.failed_reads += 1
                    self._log_io(f"read of {st.device} failed: {st.error}")
        except Exception as exc:  # a driver bug must not kill the task: tags go BAD
            self.io_counters.failed_reads += 1
            self._engine.image.mark(r.group.slots, Quality.BAD, Reason.LINK_BROKEN)
            self._log_io(f"reading {r.device} failed: {exc!r}", exc_info=exc)
        finally:
            r.landed = True

    async def _write(self, items: Mapping[str, list[WriteItem]],
                     values: Mapping[str, object]) -> dict[str, str]:
        io = self._engine.io
        assert io is not None
        failed = await io.write_items(items, values, source=self._source, changes_only=True)
        return {d: repr(e) for d, e in failed.items()}

    def _confirm(self, batch: _WriteBatch, failed: Mapping[str, str]) -> None:
        """Commit a finished batch: successful devices' values become the outputs' last values."""
        for dev, err in failed.items():
            self.io_counters.write_errors += 1
            self._log_io(f"writing outputs to {dev} failed: {err}")
            batch.mask[batch.devices[dev]] = False
        if not batch.mask.any():
            return
        assert self._tracker is not None
        self._tracker.commit(batch.values, batch.mask)
        stored = batch.written if batch.written is not None else batch.values
        self._engine.image.store(self._out_slots[batch.mask], stored[batch.mask],
                                 self._engine.clock.wall_ns())

    def _log_io(self, message: str, exc_info: BaseException | None = None) -> None:
        """Log an I/O problem, at most once per ``_LOG_EVERY_NS`` per task."""
        now = time.monotonic_ns()
        if now >= self._next_log_ns:
            self._next_log_ns = now + _LOG_EVERY_NS
            log.warning("task %s: %s", self.name, message, exc_info=exc_info)

    # -- faults and safe state -----------------------------------------------------------
    def trip(self, kind: str, reason: str) -> None:
        """Fault the task (any thread): outputs latched safe, alarm raised, line stopping."""
        with self._out_lock:
            if self.state == "faulted":
                return
            self.state = "faulted"
            self.fault = f"{kind}: {reason}"
            self._latched = True
        if self.watchdog is not None and kind == "watchdog":
            self.watchdog.tripped = True
        self._engine.alarm(self, kind, reason)
        self._engine.request_safe(self)
        self._engine.request_stop()

    def latch_safe(self) -> dict[str, object]:
        """Forbid further program writes; the safe values to write."""
        with self._out_lock:
            self._latched = True
        return dict(self._safe)

    def pending_write(self) -> concurrent.futures.Future[dict[str, str]] | None:
        return self._batch.future if self._batch is not None else None

    async def step_async(self, deadline_ns: int) -> int | None:
        """:meth:`step` on the event loop (virtual time)."""
        try:
            end = await self.run_cycle_async(deadline_ns)
        except ProgramError as exc:
            self.trip("program", exc.message)
            return None
        return self.after_cycle(deadline_ns, end)

    # -- scheduling ----------------------------------------------------------------------
    def after_cycle(self, deadline_ns: int, end_ns: int) -> int | None:
        """Account a finished cycle; the next deadline, or None when the task must stop."""
        self.cycles += 1
        wd = self.watchdog
        if wd is not None:
            cycle_ns = end_ns - self._last_start
            reason = wd.check(cycle_ns)
            if reason is not None:
                self.trip("watchdog", reason)
                return None
        nxt, skipped, overrun = next_deadline(self.policy, deadline_ns, self.period_ns, end_ns)
        if overrun:
            self.overruns += 1
            self.overruns_in_row += 1
            self.max_overruns_in_row = max(self.max_overruns_in_row, self.overruns_in_row)
            self.skipped += skipped
            if self.policy is OverrunPolicy.FAULT:
                late = (end_ns - deadline_ns - self.period_ns) / 1e6
                self.trip("overrun", f"cycle {self.cycles} ended {late:.3f} ms after the next "
                                     f"deadline (period {self.period_ns / 1e6:g} ms)")
                return None
        else:
            self.overruns_in_row = 0
        if self.state != "running":
            return None
        return nxt

    def step(self, deadline_ns: int) -> int | None:
        """Run the cycle at ``deadline_ns`` and return the next deadline (None: stop)."""
        try:
            end = self.run_cycle(deadline_ns)
        except ProgramError as exc:
            self.trip("program", exc.message)
            return None
        return self.after_cycle(deadline_ns, end)

    def stats(self, *, hdr: bool = False) -> TaskStats:
        """A snapshot of the counters and timing (``hdr``: include encoded histograms)."""
        rec = self.recorder
        wd = self.watchdog
        return TaskStats(
            name=self.name, period_ns=self.period_ns, overrun_policy=self.policy.value,
            state=self.state, cycles=self.cycles, overruns=self.overruns,
            skipped=self.skipped, max_overruns_in_row=self.max_overruns_in_row,
            timing={s: rec.series(s) for s in rec.names},
            io=IoCounters(**self.io_counters.as_dict()),
            watchdog_time_ns=wd.time_ns if wd else None,
            watchdog_sensitivity=wd.sensitivity if wd else None,
            watchdog_tripped=wd.tripped if wd else False, fault=self.fault,
            realtime=self.realtime.as_dict(), read_requests_planned=self.read_requests,
            pushed_tags=self.pushed_tags, hdr={s: rec.encoded(s) for s in rec.names} if hdr else {})


def _batch_result(batch: _WriteBatch) -> Mapping[str, str]:
    """Devices whose write failed, with the error (a lost batch failed everywhere)."""
    assert batch.future is not None
    try:
        return batch.future.result()
    except BaseException as exc:  # cancelled at shutdown, or a bug in _write
        return {d: repr(exc) for d in batch.devices}


def _safe_value(tag: TagSpec) -> object:
    """The tag's safe value; a scalar safe value applies to every element of an array tag."""
    safe = tag.safe
    if tag.is_array and not isinstance(safe, tuple | list):
        return (safe,) * tag.elements
    return safe


class Engine:
    """Runs a line's tasks over its process image.

    ``await engine.run(cycles=N)`` (or ``duration_s``) runs until then, or until
    :meth:`stop`, or until a task faults (overrun under the ``fault`` policy, watchdog, a
    program error): then every task stops, every output goes to its ``safe`` value, and
    ``run`` raises :class:`~smartline.core.CycleOverrunError` (or ``ProgramError``).
    ``cycles`` counts cycles of the fastest task.
    """

    def __init__(self, image: ProcessImage, tasks: Iterable[TaskSpec], *,
                 io: LineIO | None = None, clock: Clock | None = None,
                 realtime: RealtimeOptions | None = None, line: str = "",
                 on_alarm: Callable[[Alarm], None] | None = None,
                 on_advance: Sequence[Callable[[int], None]] = ()) -> None:
        self.image = image
        self.io = io
        self.clock: Clock = clock if clock is not None else (
            io.clock if io is not None else MonotonicClock())
        self.virtual = isinstance(self.clock, VirtualClock)
        self.now_ns: Callable[[], int] = self.clock.now_ns
        self.realtime = realtime if realtime is not None else RealtimeOptions()
        self.line = line or (io.config.name if io is not None else "")
        self.on_alarm = on_alarm
        self.on_advance = tuple(on_advance)
        specs = list(tasks)
        names = [s.name for s in specs]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"duplicate task name(s): {', '.join(dup)}")
        self.tasks: dict[str, Task] = {s.name: Task(s, self) for s in specs}
        self.alarms: list[Alarm] = []
        self.points: dict[str, Point] = {}  # output tag -> Point, filled by prepare()
        self._prepared = False
        self._ran = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._stopped_async: asyncio.Event | None = None
        self._safe_done: dict[str, asyncio.Future[None]] = {}
        self._loop_thread: threading.Thread | None = None
        self._started_ns = 0
        self._started_wall = 0
        self._elapsed_ns = 0
        self._cycle_budget: int | None = None
        self._reference: Task | None = None
        self._error: BaseException | None = None

    @classmethod
    def from_config(cls, config: LineConfig, image: ProcessImage, io: LineIO | None = None,
                    *, clock: Clock | None = None, realtime: RealtimeOptions | None = None,
                    on_alarm: Callable[[Alarm], None] | None = None,
                    on_advance: Sequence[Callable[[int], None]] = ()) -> Engine:
        """An engine for the tasks of a loaded line file (programs are imported here)."""
        specs = [TaskSpec.from_config(t) for t in config.tasks.values()]
        return cls(image, specs, io=io, clock=clock, realtime=realtime, line=config.name,
                   on_alarm=on_alarm, on_advance=on_advance)

    # -- set-up --------------------------------------------------------------------------
    def prepare(self) -> None:
        """Bind and compile every task (idempotent); ``run`` calls it if you did not."""
        if self._prepared:
            return
        _kernels.warm_up()
        for t in self.tasks.values():
            others = frozenset(n for o in self.tasks.values() if o is not t for n in o.spec.tags)
            t.prepare(self.image, self.io, others)
        outs = [n for t in self.tasks.values() for n in t.output_names]
        self.points = {p.tag: p for p in self.image.points(dict.fromkeys(outs))}
        owners: dict[str, str] = {}
        for t in self.tasks.values():
            for n in t.output_names:
                if n in owners:
                    raise ProgramError(f"output {n!r} is written by tasks {owners[n]!r} and "
                                       f"{t.name!r}; an output belongs to one task")
                owners[n] = t.name
        self._prepared = True

    # -- I/O hand-off (tick threads → loop) ----------------------------------------------
    def submit(self, coro: Any) -> concurrent.futures.Future[Any]:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def call_soon(self, fn: Callable[..., object], *args: object) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(fn, *args)

    # -- faults --------------------------------------------------------------------------
    def alarm(self, task: Task, kind: str, message: str) -> None:
        a = Alarm(self.clock.wall_ns(), task.name, kind, message)
        self.alarms.append(a)
        log.error("task %s: %s alarm: %s", task.name, kind, message)
        if self.on_alarm is not None:
            try:
                self.on_alarm(a)
            except Exception:
                log.exception("alarm callback failed")

    def request_safe(self, task: Task) -> None:
        """Drive ``task``'s outputs safe now, from any thread (the watchdog's reaction)."""
        loop = self._loop
        if loop is None or self.io is None:
            return
        if threading.current_thread() is self._loop_thread:
            loop.create_task(self._drive_safe(task))
            return
        asyncio.run_coroutine_threadsafe(self._drive_safe(task), loop)

    def request_stop(self) -> None:
        """Stop every task at its next wake-up (thread-safe, idempotent)."""
        self._stop.set()
        loop, ev = self._loop, self._stopped_async
        if loop is not None and ev is not None and not loop.is_closed():
            loop.call_soon_threadsafe(ev.set)

    def stop(self) -> None:
        """Ask :meth:`run` to end: tasks stop, outputs go safe. Thread-safe."""
        self.request_stop()

    async def _drive_safe(self, task: Task) -> None:
        """On the loop: latch the task's outputs and write their safe values (once; a second
        call waits for the first)."""
        fut = self._safe_done.get(task.name)
        if fut is None:
            fut = asyncio.ensure_future(self._write_safe(task))
            self._safe_done[task.name] = fut
        await asyncio.shield(fut)

    async def _write_safe(self, task: Task) -> None:
        values = task.latch_safe()
        if not values or self.io is None:
            return
        pending = task.pending_write()
        if pending is not None:
            # the batch may fail or hang: the safe write goes anyway
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.wrap_future(pending), _SAFE_TIMEOUT_S)
        try:
            await asyncio.wait_for(self.io.write(values, source=f"safe (task {task.name})"),
                                   _SAFE_TIMEOUT_S)
        except (SmartlineError, TimeoutError) as exc:
            self.alarm(task, "io", f"could not drive outputs safe: {exc}")
        else:
            log.info("task %s: outputs driven safe: %s", task.name, values)
            tracker = task._tracker
            if tracker is not None:
                tracker.forget()

    # -- running -------------------------------------------------------------------------
    async def run(self, *, cycles: int | None = None,
                  duration_s: float | None = None) -> EngineStats:
        """Run the tasks; returns their statistics (see the class docstring for faults)."""
        if cycles is not None and cycles < 1:
            raise ValueError("cycles must be >= 1")
        if self._ran:
            raise RuntimeError("an engine runs once; build a new one to run again")
        self._ran = True
        await asyncio.to_thread(self.prepare)
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.current_thread()
        self._stopped_async = asyncio.Event()
        if self._stop.is_set():  # stop() came while preparing
            self._stopped_async.set()
        tasks = list(self.tasks.values())
        self._reference = min(tasks, key=lambda t: t.period_ns) if tasks else None
        self._cycle_budget = cycles
        if self.io is not None:
            await self._prime()
        old_switch = sys.getswitchinterval()
        if not self.virtual and self.realtime.switch_interval_s is not None:
            sys.setswitchinterval(self.realtime.switch_interval_s)
        monitor = WatchdogMonitor(list(tasks), self.now_ns) if not self.virtual else None
        self._started_wall = self.clock.wall_ns()
        start = self.now_ns()
        self._started_ns = start
        for t in tasks:
            t.state = "running"
        threads: list[threading.Thread] = []
        try:
            if self.virtual:
                end_ns = start + round(duration_s * 1e9) if duration_s is not None else None
                await self._run_virtual(start, end_ns)
            else:
                t0 = start + _START_DELAY_NS
                threads += [threading.Thread(target=self._run_thread, args=(t, t0),
                                             daemon=True, name=_THREAD_PREFIX + t.name)
                            for t in tasks]
            for th in threads:
                th.start()
            if monitor is not None:
                monitor.start()
            if threads:
                try:
                    if duration_s is not None and not self.virtual:
                        await asyncio.wait_for(self._stopped_async.wait(), duration_s)
                    else:
                        await self._stopped_async.wait()
                except TimeoutError:
                    pass
        finally:
            self.request_stop()
            if monitor is not None:
                monitor.stop()
            await asyncio.shield(self._shutdown(threads, tasks))
            sys.setswitchinterval(old_switch)
        if self._error is not None:
            raise self._error
        faulted = [t for t in tasks if t.state == "faulted"]
        if faulted:
            t = faulted[0]
            if t.fault is not None and t.fault.startswith("program"):
                raise ProgramError(t.fault, task=t.name)
            raise CycleOverrunError(f"task {t.name!r} faulted: {t.fault}")
        return self.stats()

    async def _prime(self) -> None:
        """Connect, subscribe the pushed tags, and read every task's polled tags once so
        the first cycle sees values."""
        assert self.io is not None
        await self.io.connect()
        await self.io.start_push()
        reads = [r for t in self.tasks.values() for r in t._reads]
        if reads:
            await asyncio.gather(*(self.io.read(r.group, r.timeout_s) for r in reads))

    async def _shutdown(self, threads: list[threading.Thread], tasks: list[Task]) -> None:
        for th in threads:
            task = self.tasks[th.name.removeprefix(_THREAD_PREFIX)]
            timeout = max(_JOIN_MIN_S, _JOIN_PERIODS * task.period_ns / 1e9)
            await asyncio.to_thread(th.join, timeout)
            if th.is_alive():  # a program looping for ever: the daemon thread is left behind
                self.alarm(task, "watchdog", f"tick thread did not stop within {timeout:g} s "
                           "(the program may be looping); left running")
        self._elapsed_ns = self.now_ns() - self._started_ns
        for t in tasks:
            if t.state == "running":
                t.state = "stopped"
        # finish in-flight batches, then the safe values of every task not already safe
        for t in tasks:
            if t.state != "idle":
                await self._drive_safe(t)
        # reads still in flight: let them end (they are bounded by the drivers' timeouts)
        pending = [asyncio.wrap_future(r.future) for t in tasks for r in t._reads
                   if r.future is not None and not r.future.done()]
        if pending:
            await asyncio.wait(pending, timeout=_SAFE_TIMEOUT_S)

    def _count(self, task: Task) -> bool:
        """True when the cycle budget is used up (counted on the fastest task)."""
        return (self._cycle_budget is not None and task is self._reference
                and task.cycles >= self._cycle_budget)

    def _run_thread(self, task: Task, t0: int) -> None:
        task.realtime = apply_realtime(self.realtime)
        now = self.now_ns
        stop = self._stop
        spin = self.realtime.spin_ns
        lead = min(task.io_deadline_ns, task.period_ns) if task._reads else 0
        deadline = t0
        try:
            while True:
                if lead:
                    if not wait_until(now, deadline - lead, stop, 0):
                        break
                    task.prefetch()
                if not wait_until(now, deadline, stop, spin):
                    break
                nxt = task.step(deadline)
                if nxt is None or self._count(task):
                    break
                deadline = nxt
        except BaseException as exc:  # a bug in the engine: stop the line, report it
            log.exception("task %s: tick thread failed", task.name)
            self._error = exc
            task.state = "faulted"
            task.fault = f"internal: {exc!r}"
        finally:
            task._cycle_start = 0
            if self._count(task) or self._error is not None:
                self.request_stop()

    async def _run_virtual(self, start: int, end_ns: int | None) -> None:
        """Discrete-event simulation on the event loop: the earliest deadline runs next.

        I/O is awaited inline (no thread hand-off); the loop gets a turn at least every
        ``_YIELD_EVERY`` cycles so signals, simulators and live views keep running.
        """
        heap: list[tuple[int, int, Task]] = [
            (start, i, t) for i, t in enumerate(self.tasks.values())]
        heapq.heapify(heap)
        n = 0
        try:
            while heap and not self._stop.is_set():
                deadline, i, task = heapq.heappop(heap)
                if end_ns is not None and deadline >= end_ns:
                    break
                self.clock.sleep_until_ns(deadline)
                for fn in self.on_advance:
                    fn(self.now_ns())
                nxt = await task.step_async(deadline)
                if nxt is None or self._count(task):
                    break
                heapq.heappush(heap, (nxt, i, task))
                n += 1
                if n % _YIELD_EVERY == 0:
                    await asyncio.sleep(0)
        finally:
            self.request_stop()

    def stats(self, *, hdr: bool = False) -> EngineStats:
        """Statistics of every task so far (safe to call while running, from any thread)."""
        elapsed = self._elapsed_ns or (self.now_ns() - self._started_ns if self._started_ns
                                       else 0)
        clock = ("virtual" if self.virtual else "monotonic"
                 if isinstance(self.clock, MonotonicClock) else type(self.clock).__name__)
        return EngineStats(
            line=self.line, clock=clock, started_ns=self._started_wall,
            elapsed_s=elapsed / 1e9,
            tasks={n: t.stats(hdr=hdr) for n, t in self.tasks.items()},
            alarms=tuple(self.alarms),
            devices=self.io.health() if self.io is not None else {})

    def run_blocking(self, *, cycles: int | None = None,
                     duration_s: float | None = None) -> EngineStats:
        """``asyncio.run(self.run(...))`` for scripts without an event loop."""
        return asyncio.run(self.run(cycles=cycles, duration_s=duration_s))
