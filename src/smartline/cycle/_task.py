"""A task: its spec, its binding to the image (compiled cycle, acquisition, outputs), its
faults and its statistics."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from ..tags import TagSpec
from . import _loop
from ._acquire import Acquisition, DeviceRead
from ._bind import CompiledCycle, InputArrays, output_rules
from ._outputs import OutputSide, OutputTag
from ._program import Program, ProgramError, load_program
from ._scheduler import OverrunPolicy, RealtimeStatus
from ._stats import SERIES, IoCounters, TaskStats, TimingRecorder
from ._watchdog import Watchdog

if TYPE_CHECKING:
    from ..config import TaskConfig
    from ._engine import Engine
    from ._image import ProcessImage
    from ._io import LineIO

__all__ = ["Task", "TaskSpec"]

log = logging.getLogger(__name__)

_LOG_EVERY_NS = 10_000_000_000  # rate limit of repeated I/O warnings per task
_POLICY = {OverrunPolicy.SKIP: _loop.POLICY_SKIP, OverrunPolicy.CATCH_UP: _loop.POLICY_CATCH_UP,
           OverrunPolicy.FAULT: _loop.POLICY_FAULT}


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


class Task:
    """A task of an engine: bound to the image by :meth:`prepare`, run by the engine."""

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
        self.realtime = RealtimeStatus()
        self.program_state: object = ()
        self.inputs: NDArray[np.float64] = np.zeros(0)
        self.outputs: NDArray[np.float64] = np.zeros(0)
        self.input_names: tuple[str, ...] = ()
        self.output_names: tuple[str, ...] = ()
        self.out_tags: list[OutputTag] = []
        self.pushed_tags = 0  # tags of this task its devices push (never read by it)
        self.cycle: CompiledCycle | None = None
        self.acquisition: Acquisition | None = None
        self.output_side: OutputSide | None = None
        self.safe: dict[str, object] = {}
        self.mode = "idle"  # "compiled" | "python" once prepared
        self._out_lock = threading.Lock()
        self._latched = False
        self._next_log_ns = 0
        self._k = 0  # cycles stepped (virtual time)

    # -- binding -------------------------------------------------------------------------
    def prepare(self, image: ProcessImage, io: LineIO | None,
                acquired_elsewhere: frozenset[str] = frozenset()) -> None:
        """Resolve names to slots, plan reads, build the output rules, compile the loop.

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
        gather = image.input_groups(image.slots(inputs), self._engine.realtime.seq_retries)
        n_in = len(gather.slots)
        self.inputs = np.full(n_in, np.nan)
        in_quality = np.full(n_in, 3, np.uint8)
        out_specs: list[TagSpec] = [image.tags[n] for n in outputs]
        points = {p.tag: p for p in image.points(outputs)}
        pos = 0
        self.out_tags = []
        for n, t in zip(outputs, out_specs, strict=True):
            self.out_tags.append(OutputTag(n, t, points[n], pos, pos + t.elements))
            pos += t.elements
        self.outputs = np.full(pos, np.nan)
        deadband = np.zeros(pos)
        for ot in self.out_tags:
            deadband[ot.start:ot.stop] = ot.spec.deadband or 0.0
        self.safe = {n: _safe_value(image.tags[n]) for n in outputs
                     if image.tags[n].safe is not None}
        no_safe = [n for n in outputs if image.tags[n].safe is None]
        if no_safe:
            shown = ", ".join(no_safe[:8]) + (f" and {len(no_safe) - 8} more"
                                              if len(no_safe) > 8 else "")
            log.warning("task %s: output(s) %s have no safe value; they keep their last value "
                        "when the task stops", self.name, shown)
        self.program_state = prog.new_state() if prog is not None else ()
        eng = self._engine
        self.cycle = CompiledCycle(
            name=self.name, program=prog, state=self.program_state,
            inputs=InputArrays(gather.seq, gather.src_values, gather.src_quality,
                               gather.group_block, gather.group_start, gather.slots,
                               self.inputs, in_quality, gather.max_retries),
            outputs=self.outputs, deadband=deadband, rules=output_rules(out_specs),
            recorder=self.recorder, efd=eng.efd)
        self._bind_io(image, io, inputs, acquired_elsewhere)
        self.recorder.warm_up()
        t0 = time.perf_counter()
        if prog is None or prog.jitted:
            log.info("task %s: compiling its cycle loop (or loading it from the cache)",
                     self.name)
        try:
            hit = self.cycle.compile()
        except ProgramError as exc:
            exc.task = self.name
            raise
        self.mode = "compiled" if self.cycle.jitted else "python"
        log.info("task %s: cycle loop %s in %.2f s (%s)", self.name,
                 "loaded from cache" if hit else "compiled", time.perf_counter() - t0,
                 self.mode)

    def _bind_io(self, image: ProcessImage, io: LineIO | None, inputs: Sequence[str],
                 acquired_elsewhere: frozenset[str]) -> None:
        spec = self.spec
        read = list(dict.fromkeys(
            (*spec.tags, *(n for n in inputs if n not in acquired_elsewhere))))
        reads: list[DeviceRead] = []
        if read:
            if io is None:
                raise ProgramError(f"task {self.name!r} reads tags but the engine has no I/O")
            by_device: dict[str, list[str]] = {}
            for n in read:
                by_device.setdefault(image.tags[n].device, []).append(n)
            for d, names in by_device.items():
                group = io.group(names, push=True)  # pushed tags are never read
                if group.plans:
                    reads.append(DeviceRead(d, group, 2 * io.config.devices[d].timeout_s + 1.0))
                self.pushed_tags += sum(len(t) for t in group.pushed.values())
        if io is not None:
            self.acquisition = Acquisition(
                self.name, reads, io, counters=self.io_counters, period_ns=self.period_ns,
                io_deadline_ns=self.io_deadline_ns, log_io=self._log_io)
        if self.out_tags:
            if io is None:
                raise ProgramError(f"task {self.name!r} writes outputs but the engine has no "
                                   "I/O")
            assert self.cycle is not None
            eng = self._engine
            self.output_side = OutputSide(
                self.name, self.cycle, self.out_tags, io, image, self.io_counters,
                wall_ns=eng.clock.wall_ns, alarm=lambda kind, msg: eng.alarm(self, kind, msg),
                log_io=self._log_io)

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

    # -- running -------------------------------------------------------------------------
    def run_thread(self, t0: int, budget: int) -> int:
        """The task's whole life in its thread (real time); why its loop ended."""
        assert self.cycle is not None
        rt = self._engine.realtime
        wd = self.watchdog
        return self.cycle.run(
            t0=t0, period=self.period_ns, spin=rt.spin_ns, slice_ns=rt.stop_slice_ns,
            policy=_POLICY[self.policy], wd_time=wd.time_ns if wd else 0,
            wd_sens=wd.sensitivity if wd else 1, budget=budget)

    def step_virtual(self, deadline_ns: int, vclock: NDArray[np.int64]) -> int | None:
        """One cycle at ``deadline_ns`` under virtual time (reads and writes are awaited by
        the engine around it); the next deadline, or None when the task stops."""
        cycle = self.cycle
        assert cycle is not None
        try:
            end = cycle.step(deadline_ns, self._k, vclock)
        except Exception as exc:
            cycle.ctl[_loop.C_CYCLE_START] = 0
            self.trip_program(exc)
            return None
        self._k += 1
        wd = self.watchdog
        nxt = int(_loop.after_cycle(cycle.ctl, deadline_ns, self.period_ns,
                                    int(cycle.ctl[_loop.C_LAST_START]), end,
                                    _POLICY[self.policy], wd.time_ns if wd else 0,
                                    wd.sensitivity if wd else 1))
        if nxt < 0:
            self.trip_exit(int(cycle.ctl[_loop.C_EXIT]))
            return None
        if self.state != "running":
            return None
        return nxt

    def trip_exit(self, code: int) -> None:
        """Fault the task for the reason its loop stopped (overrun, watchdog)."""
        assert self.cycle is not None
        ctl = self.cycle.ctl
        a, b = int(ctl[_loop.C_FAULT_A]), int(ctl[_loop.C_FAULT_B])
        wd = self.watchdog
        if code == _loop.EXIT_OVERRUN:
            self.trip("overrun", f"cycle {b} ended {a / 1e6:.3f} ms after the next deadline "
                                 f"(period {self.period_ns / 1e6:g} ms)")
        elif code == _loop.EXIT_WATCHDOG_HANG and wd is not None:
            self.trip("watchdog", f"cycle took {a / 1e6:.3f} ms, longer than watchdog time × "
                                  f"sensitivity ({wd.hang_ns / 1e6:g} ms)")
        elif code == _loop.EXIT_WATCHDOG_ROW and wd is not None:
            self.trip("watchdog", f"{b} cycle(s) in a row longer than the watchdog time "
                                  f"({wd.time_ns / 1e6:g} ms); last took {a / 1e6:.3f} ms")

    def trip_program(self, exc: BaseException) -> None:
        prog = self.program
        name = prog.name if prog is not None else "(none)"
        self.trip("program", f"program {name} raised {exc!r}")

    def trip(self, kind: str, reason: str) -> None:
        """Fault the task (any thread): outputs latched safe, alarm raised, line stopping."""
        with self._out_lock:
            if self.state == "faulted":
                return
            self.state = "faulted"
            self.fault = f"{kind}: {reason}"
            self._latched = True
        if self.cycle is not None:
            self.cycle.latch()
            self.cycle.request_stop()
        if self.watchdog is not None and kind == "watchdog":
            self.watchdog.tripped = True
        self._engine.alarm(self, kind, reason)
        self._engine.request_safe(self)
        self._engine.request_stop()

    def latch_safe(self) -> dict[str, object]:
        """Forbid further program writes; the safe values to write."""
        with self._out_lock:
            self._latched = True
        if self.cycle is not None:
            self.cycle.latch()
        if self.output_side is not None:
            self.output_side.latch()
        return dict(self.safe)

    def forget_outputs(self) -> None:
        """Every output counts as changed again (after the safe values were written)."""
        if self.cycle is not None:
            self.cycle.last[:] = np.nan

    def _log_io(self, message: str, exc_info: BaseException | None = None) -> None:
        """Log an I/O problem, at most once per ``_LOG_EVERY_NS`` per task."""
        now = time.monotonic_ns()
        if now >= self._next_log_ns:
            self._next_log_ns = now + _LOG_EVERY_NS
            log.warning("task %s: %s", self.name, message, exc_info=exc_info)

    # -- views ---------------------------------------------------------------------------
    def _ctl(self, index: int) -> int:
        return self.cycle.counter(index) if self.cycle is not None else 0

    @property
    def cycles(self) -> int:
        return self._ctl(_loop.C_CYCLES)

    @property
    def overruns(self) -> int:
        return self._ctl(_loop.C_OVERRUNS)

    @property
    def skipped(self) -> int:
        return self._ctl(_loop.C_SKIPPED)

    @property
    def max_overruns_in_row(self) -> int:
        return self._ctl(_loop.C_MAX_IN_ROW)

    @property
    def cycle_start_ns(self) -> int:
        """Start of the running cycle, 0 between cycles (the watchdog monitor reads it)."""
        return self._ctl(_loop.C_CYCLE_START)

    @property
    def input_quality(self) -> NDArray[np.uint8]:
        """The quality of each input element as the last cycle saw it."""
        if self.cycle is None:
            return np.zeros(0, np.uint8)
        return self.cycle.inputs.in_quality

    @property
    def read_requests(self) -> int:
        """Wire requests one acquisition of this task sends (from the read plans)."""
        return self.acquisition.request_count if self.acquisition is not None else 0

    @property
    def reads(self) -> list[DeviceRead]:
        return self.acquisition.reads if self.acquisition is not None else []

    def stats(self, *, hdr: bool = False) -> TaskStats:
        """A snapshot of the counters and timing (``hdr``: include encoded histograms)."""
        rec = self.recorder
        wd = self.watchdog
        loop: dict[str, object] = {"mode": self.mode}
        if self.cycle is not None:
            loop.update(compile_s=round(self.cycle.compile_s, 3),
                        cache_hit=self.cycle.cache_hit,
                        torn_inputs=self._ctl(_loop.C_TORN),
                        ring_full=self._ctl(_loop.C_RING_FULL),
                        ring_drops=self.cycle.ring.drops)
        return TaskStats(
            name=self.name, period_ns=self.period_ns, overrun_policy=self.policy.value,
            state=self.state, cycles=self.cycles, overruns=self.overruns,
            skipped=self.skipped, max_overruns_in_row=self.max_overruns_in_row,
            timing={s: rec.series(s) for s in rec.names},
            io=IoCounters(**self.io_counters.as_dict()),
            watchdog_time_ns=wd.time_ns if wd else None,
            watchdog_sensitivity=wd.sensitivity if wd else None,
            watchdog_tripped=wd.tripped if wd else False, fault=self.fault,
            realtime={**self.realtime.as_dict(), "loop": loop},
            read_requests_planned=self.read_requests, pushed_tags=self.pushed_tags,
            hdr={s: rec.encoded(s) for s in rec.names} if hdr else {})


def _safe_value(tag: TagSpec) -> object:
    """The tag's safe value; a scalar safe value applies to every element of an array tag."""
    safe = tag.safe
    if tag.is_array and not isinstance(safe, tuple | list):
        return (safe,) * tag.elements
    return safe
