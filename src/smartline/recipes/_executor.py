"""The recipe executor: runs a :class:`~._model.Recipe` over a line and its PackML units,
one batch at a time, and journals every event of it (docs/reference/executor.md, ADR 0024).

:meth:`RecipeExecutor.step` is a service of the cycle engine (``Engine.add_service``): it
runs on the I/O loop beside the tasks and never waits on a device. Writes, unit commands
and G-code programs are *started* in a step (writes and programs as asyncio tasks) and
their outcomes are taken up by a later step, so a slow device delays a phase, never the
loop. The procedure follows the ISA-88 procedural states of
:mod:`smartline.recipes.procedural`; the chart of unit procedures, operations and phases
(sequences and parallel blocks) is walked afresh at every step.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
from collections import deque
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray

from ..core import Clock, Quality, Reason, RecipeError, VirtualClock, WriteRefusedError
from ..tags.identity import scan_fields
from ._model import (
    CommandAction,
    Parallel,
    Phase,
    ProgramAction,
    Recipe,
    RestartRule,
    UnitProcedure,
    WaitAction,
    WriteAction,
)
from .packml import Command, accepted, command_by_name
from .procedural import (
    PROC_FINAL_STATES,
    ProcCommand,
    ProcEvent,
    ProcState,
    next_proc_state,
    proc_accepted,
)

if TYPE_CHECKING:
    from ..cycle import Alarm
    from ..line import Line
    from ._journal import BatchEvent, BatchJournal, BatchSummary
    from ._units import UnitRuntime
    from .expr import Expr

__all__ = ["Progress", "RecipeExecutor"]

log = logging.getLogger(__name__)

_CLOSE_TIMEOUT_S = 10.0  # aclose: bound on writes and programs still in flight
_FLUSH_TIMEOUT_S = 10.0  # aclose: bound on the journal's commit of what is queued

_PhaseStatus = Literal["pending", "running", "done", "skipped", "failed", "retry"]
_Lookup = Callable[[str], tuple[object, bool]]


@dataclass(frozen=True, slots=True)
class Progress:
    """What the executor is doing, for a live view (``smartline recipe run``)."""

    batch: str | None
    recipe: str | None
    state: ProcState
    active: tuple[str, ...]  # paths ("up/op/phase") of the phases running
    elapsed_s: float  # plant time since the batch started
    phases_done: int
    phases_total: int
    queued: tuple[str, ...]  # recipe names waiting for a changeover
    message: str


# --- the running chart ------------------------------------------------------------------

@dataclass(eq=False, slots=True)
class _WriteRun:
    """One write action in flight: its values and the task that writes them."""

    values: dict[str, object]
    task: asyncio.Task[None]
    recorded: bool = False


@dataclass(eq=False, slots=True)
class _ProgramRun:
    """One program action: the task that streams the file, and its job once made."""

    device: str
    file: Path
    task: asyncio.Task[tuple[bool, str]] | None = None
    job: Any = None  # smartline.drivers.cnc.grbl.GcodeJob (imported only when used)
    recorded: bool = False

    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    def cancel(self) -> None:
        """Stop the job safely (feed hold, reset) if it is streaming."""
        if self.job is not None and self.running():
            self.job.cancel()


@dataclass(eq=False, slots=True)
class _PhaseRun:
    phase: Phase
    path: str
    unit: str
    status: _PhaseStatus = "pending"
    retries: int = 0  # retries used since the last start by the chart or a Restart
    started_ns: int = 0
    held_ns: int = 0  # time spent frozen (Holding/Held/Restarting) since started_ns
    held_since: int | None = None
    wait_ns: int = 0
    timeout_ns: int | None = None
    retry_at_ns: int = 0
    writes: list[_WriteRun] = field(default_factory=list)
    programs: list[_ProgramRun] = field(default_factory=list)

    def elapsed_ns(self, now_ns: int) -> int:
        frozen = self.held_ns + (now_ns - self.held_since if self.held_since is not None else 0)
        return now_ns - self.started_ns - frozen

    def in_flight(self) -> bool:
        return any(not w.task.done() for w in self.writes) or \
            any(p.running() for p in self.programs)


@dataclass(eq=False, slots=True)
class _SeqRun:
    items: list[_PhaseRun | _ParRun | _GroupRun]
    index: int = 0


@dataclass(eq=False, slots=True)
class _ParRun:
    branches: list[_SeqRun]


@dataclass(eq=False, slots=True)
class _GroupRun:
    """A unit procedure or an operation: its chart, and whether it has begun or ended."""

    path: str
    unit: str
    body: _SeqRun
    status: Literal["pending", "active", "done"] = "pending"
    is_unit_procedure: bool = False


@dataclass(frozen=True, slots=True)
class _Resume:
    """A batch found unfinished at start that runs again (``on_restart: resume``)."""

    batch: str
    done_paths: frozenset[str]
    from_state: str


@dataclass(frozen=True, slots=True)
class _Queued:
    recipe: Recipe
    parameters: dict[str, object]
    source: str
    resume: _Resume | None = None


@dataclass(eq=False, slots=True)
class _Batch:
    id: str
    recipe: Recipe
    parameters: dict[str, object]
    root: _SeqRun
    phases: list[_PhaseRun]
    groups: list[_GroupRun]
    started_ns: int
    units: frozenset[str]
    watch_tags: tuple[str, ...]
    watch_slots: NDArray[np.intp]  # the slots of the watched tags, tag after tag
    watch_starts: NDArray[np.intp]  # where each watched tag's slots begin in watch_slots
    done_paths: frozenset[str] = frozenset()
    alarms_seen: int = 0
    identity: dict[str, object] = field(default_factory=dict)
    bad: set[str] = field(default_factory=set)
    ended_ns: int | None = None


_UNSET = object()


def _build(recipe: Recipe) -> tuple[_SeqRun, list[_PhaseRun], list[_GroupRun]]:
    """The running form of the recipe's procedure chart (every phase ``pending``)."""
    phases: list[_PhaseRun] = []
    groups: list[_GroupRun] = []

    def chart(items: Sequence[Any], make: Callable[[Any], _PhaseRun | _GroupRun]) -> _SeqRun:
        out: list[_PhaseRun | _ParRun | _GroupRun] = []
        for item in items:
            if isinstance(item, Parallel):
                out.append(_ParRun([chart(branch, make) for branch in item.branches]))
            else:
                out.append(make(item))
        return _SeqRun(out)

    def unit_procedure(up: UnitProcedure) -> _GroupRun:
        def operation(op: Any) -> _GroupRun:
            def phase(ph: Phase) -> _PhaseRun:
                run = _PhaseRun(ph, f"{up.name}/{op.name}/{ph.name}", up.unit)
                phases.append(run)
                return run
            group = _GroupRun(f"{up.name}/{op.name}", up.unit, chart(op.phases, phase))
            groups.append(group)
            return group
        group = _GroupRun(up.name, up.unit, chart(up.operations, operation),
                          is_unit_procedure=True)
        groups.append(group)
        return group

    return chart(recipe.procedure, unit_procedure), phases, groups


def _expressions(recipe: Recipe) -> Iterator[Expr]:
    """Every expression of the recipe's phases."""
    def walk(items: Sequence[Any]) -> Iterator[Phase]:
        for item in items:
            if isinstance(item, Parallel):
                for branch in item.branches:
                    yield from walk(branch)
            elif isinstance(item, Phase):
                yield item
            elif isinstance(item, UnitProcedure):
                yield from walk(item.operations)
            else:  # an operation
                yield from walk(item.phases)

    for ph in walk(recipe.procedure):
        for action in ph.actions:
            if isinstance(action, WriteAction):
                yield from (e for _, e in action.values)
            elif isinstance(action, WaitAction):
                yield action.seconds
        if ph.until is not None:
            yield ph.until
        if ph.timeout_s is not None:
            yield ph.timeout_s


def _phase_actions(recipe: Recipe) -> Iterator[tuple[Phase, Any]]:
    """(phase, action) for every action of the recipe."""
    _, phases, _ = _build(recipe)
    for run in phases:
        for action in run.phase.actions:
            yield run.phase, action


def _seconds(value: object) -> float | None:
    """A finite, non-negative number of seconds, or None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    v = float(value)
    return v if math.isfinite(v) and v >= 0 else None


class RecipeExecutor:
    """Runs recipes over ``line`` one batch at a time, as a service of the cycle engine.

    ``submit`` checks and queues a recipe; ``await step(now_ns)`` (the engine's service)
    advances the running batch and starts the next one queued once a batch ended COMPLETE
    (changeover without stopping the cycle); ``command`` applies an ISA-88 procedural
    command; ``recover`` applies each unfinished batch's restart rule. ``alarms`` is the
    engine's alarm list (``engine.alarms``): alarms raised while a batch runs go into its
    record. Unit state changes and commands reach the record through :meth:`unit_event`
    (the ``on_event`` of the :class:`UnitRuntime`).
    """

    def __init__(self, line: Line, *, units: UnitRuntime | None, journal: BatchJournal,
                 clock: Clock, source: str = "recipe",
                 alarms: Sequence[Alarm] | None = None) -> None:
        self.line = line
        self.units = units
        self.journal = journal
        self.clock = clock
        self.source = source
        self.alarms: Sequence[Alarm] = alarms if alarms is not None else ()
        self._queue: deque[_Queued] = deque()
        self._batch: _Batch | None = None
        self._ended: list[str] = []  # ids of the batches ended here, in order
        self._state = ProcState.IDLE
        self._message = "idle"
        self._closing = False
        self._background: set[asyncio.Task[None]] = set()
        self._started: list[asyncio.Task[None]] = []  # writes started in this step
        if units is not None and units.on_event is None:
            units.on_event = self.unit_event

    # --- public ---------------------------------------------------------------------------
    @property
    def state(self) -> ProcState:
        """The procedural state of the procedure (of the running or last batch)."""
        return self._state

    @property
    def batch(self) -> str | None:
        """The id of the open batch (running, or final and waiting for Reset), or None."""
        return self._batch.id if self._batch is not None else None

    @property
    def idle(self) -> bool:
        """No batch running (the procedure is Idle or in a final state) and nothing queued."""
        return not self._queue and (self._batch is None or self._state in PROC_FINAL_STATES)

    def submit(self, recipe: Recipe, parameters: Mapping[str, object] | None = None) -> None:
        """Check ``recipe`` against the line (equipment, parameters, version) and queue it.

        RecipeError naming every problem; nothing is queued then. The first recipe queued
        starts at the next step; a later one when the batch before it ended COMPLETE.
        """
        problems = self._equipment_problems(recipe)
        if problems:
            raise RecipeError(f"recipe {recipe.name} version {recipe.version} cannot run on "
                              f"line {self.line.config.name}: " + "; ".join(problems))
        from ._load import validate_parameters

        given: dict[str, str | float | int | bool] = {}
        for name, value in (parameters or {}).items():
            if not isinstance(value, str | float | int | bool):
                raise RecipeError(f"parameter {name}: {value!r} is not a number, a truth "
                                  "value or a text")
            given[name] = value
        values = validate_parameters(recipe, given)
        self.journal.check_version(recipe.name, recipe.version, recipe.digest)
        self._queue.append(_Queued(recipe, values, "submit"))
        self._message = f"{recipe.name} version {recipe.version} queued"
        log.info("recipe %s version %s queued (%d waiting)", recipe.name, recipe.version,
                 len(self._queue))

    def command(self, command: ProcCommand, *, source: str = "user") -> None:
        """Apply a procedural command now (its effects on units included); RecipeError with
        the reason if the procedure's state refuses it (recorded as refused)."""
        b = self._batch
        if b is None:
            if command is ProcCommand.START and self._queue:
                return  # the queued batch starts at the next step anyway
            if command is ProcCommand.RESET and self._state in PROC_FINAL_STATES:
                self._state = ProcState.IDLE
                self._message = "idle"
                return
            waiting = "" if not self._queue else \
                f" ({len(self._queue)} queued: it starts at the next step)"
            raise RecipeError(f"command {command.name} refused: no batch is running{waiting}")
        try:
            target = next_proc_state(self._state, command)
        except RecipeError as exc:
            self._record(b, "command", "procedure",
                         {"command": command.name, "source": source, "accepted": False,
                          "reason": exc.message})
            raise
        self._record(b, "command", "procedure",
                     {"command": command.name, "source": source, "accepted": True,
                      "reason": ""})
        self._apply(b, command, target, source)

    async def step(self, now_ns: int) -> None:
        """Advance the batch: take up finished writes and programs, watch identities and
        alarms, then run the procedural state (start phases, check conditions, timeouts,
        failure rules). Starts the next queued batch when none is open.

        In real time a step never waits on a device: the writes it starts land in a later
        step. In virtual time it waits for them (and for the units' writes it commanded),
        so the line runs in lock-step and a run repeats exactly.
        """
        try:
            self._step(now_ns)
        finally:
            started, self._started = self._started, []
            if isinstance(self.clock, VirtualClock):
                pending = [t for t in started if not t.done()]
                if self.units is not None:
                    pending += self.units.pending()
                if pending:
                    await asyncio.wait(pending)

    def _step(self, now_ns: int) -> None:
        b = self._batch
        if b is None:
            if not self._queue:
                return
            b = self._begin(self._queue.popleft(), now_ns)
            if b is None:
                return
        self._collect(b, now_ns)
        self._watch(b)
        state = self._state
        if state in (ProcState.RUNNING, ProcState.PAUSING):
            finished = self._advance_seq(b, b.root, now_ns)
            if self._state is ProcState.RUNNING and finished:
                self._event(b, ProcEvent.DONE)  # -> COMPLETE
                self._end(b, now_ns)
            elif self._state is ProcState.PAUSING and not any(
                    p.status == "running" for p in b.phases):
                self._event(b, ProcEvent.DONE)  # -> PAUSED
        elif state is ProcState.HOLDING:
            self._freeze(b, now_ns)
            if not any(p.in_flight() for p in b.phases):
                self._event(b, ProcEvent.DONE)  # -> HELD
        elif state is ProcState.RESTARTING:
            self._thaw(b, now_ns)
            self._event(b, ProcEvent.DONE)  # -> RUNNING
        elif state in (ProcState.STOPPING, ProcState.ABORTING):
            self._interrupt(b, now_ns)
            if not any(p.in_flight() for p in b.phases):
                self._event(b, ProcEvent.DONE)  # -> STOPPED / ABORTED

    def recover(self, recipes: Iterable[Recipe] = ()) -> list[str]:
        """Apply the restart rule of every unfinished batch of this line; what was done, in
        words (never silent). ``resume`` re-runs a batch from the phase(s) it was running,
        parameters as recorded, with the recipe found among ``recipes`` (same name, version
        and digest) or loaded again from its file; a batch that cannot resume is aborted,
        saying why."""
        known = {(r.name, r.version, r.digest): r for r in recipes}
        said: list[str] = []
        resumed: list[_Queued] = []
        for s in self.journal.unfinished(self.line.config.name):
            events = self.journal.events(s.id)
            last = next((str(e.data.get("to")) for e in reversed(events)
                         if e.kind == "state" and "to" in e.data), "RUNNING")
            what = f"batch {s.id} ({s.recipe} version {s.version})"
            if last in {st.name for st in PROC_FINAL_STATES}:
                self.journal.end(s.id, last)
                self._ended.append(s.id)
                said.append(f"{what} had reached {last} before smartline stopped; its record "
                            "is now closed")
                continue
            why = ""
            if s.on_restart == RestartRule.RESUME.value:
                recipe, why = self._recipe_for(s, events, known)
                if recipe is not None:
                    done, running = _phases_seen(events)
                    self._record_id(s.id, "batch", "resumed",
                                    {"from_state": last, "phases": running,
                                     "completed": sorted(done)})
                    resumed.append(_Queued(recipe, dict(s.parameters), "restart",
                                           _Resume(s.id, frozenset(done), last)))
                    where = ", ".join(running) if running else "its next phase"
                    said.append(f"{what} was unfinished (state {last}): resumed from {where}, "
                                "parameters as recorded (on_restart: resume)")
                    continue
            self._record_id(s.id, "batch", "aborted-at-restart",
                            {"from_state": last, "reason": why or "on_restart: abort"})
            self._record_id(s.id, "state", "procedure",
                            {"from": last, "to": ProcState.ABORTED.name})
            self.journal.end(s.id, ProcState.ABORTED.name)
            self._ended.append(s.id)
            rule = f"it could not resume: {why}" if why else "on_restart: abort"
            said.append(f"{what} was unfinished (state {last}): aborted at restart ({rule})")
        self._queue.extendleft(reversed(resumed))
        for line in said:
            log.warning("%s", line)
        return said

    def progress(self) -> Progress:
        """A snapshot for a live view: the open batch (``batch`` None when none is open)."""
        b = self._batch
        queued = tuple(q.recipe.name for q in self._queue)
        if b is None:
            return Progress(None, None, self._state, (), 0.0, 0, 0, queued, self._message)
        return Progress(
            b.id, b.recipe.name, self._state,
            tuple(p.path for p in b.phases if p.status == "running"),
            max(0, self.clock.now_ns() - b.started_ns) / 1e9,
            sum(p.status in ("done", "skipped") for p in b.phases), len(b.phases), queued,
            self._message)

    def finished(self) -> list[BatchSummary]:
        """The batches this executor has ended (COMPLETE, or STOPPED/ABORTED at Reset, or
        closed by :meth:`recover`), in the order they ended, as the journal has them."""
        return [self.journal.batch(bid) for bid in self._ended]

    def unit_event(self, kind: str, subject: str, data: Mapping[str, object]) -> None:
        """The ``on_event`` of the :class:`UnitRuntime` (set by the constructor when the
        runtime has none): state changes and commands (accepted or refused, whoever gave
        them) of the recipe's units go into the open batch's record."""
        b = self._batch
        if b is None or subject not in b.units or kind not in ("unit", "command"):
            return
        self._record(b, kind, subject, dict(data))

    async def aclose(self) -> None:
        """Wait for writes and programs in flight (programs are stopped safely), record
        their outcomes and commit the journal. An open batch stays unfinished: the next
        start's :meth:`recover` applies its restart rule."""
        self._closing = True
        b = self._batch
        if b is None:
            return
        for p in b.phases:
            for prog in p.programs:
                prog.cancel()
        tasks = [t for p in b.phases for t in
                 [*(w.task for w in p.writes), *(g.task for g in p.programs if g.task)]
                 if not t.done()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=_CLOSE_TIMEOUT_S)
            for t in pending:
                t.cancel()
            with contextlib.suppress(Exception):
                await asyncio.gather(*pending, return_exceptions=True)
        self._collect(b, self.clock.now_ns())
        if self._state not in PROC_FINAL_STATES:
            log.warning("batch %s left unfinished in state %s: the next start applies its "
                        "restart rule (%s)", b.id, self._state.name, b.recipe.on_restart.value)
        await asyncio.to_thread(self.journal.flush, _FLUSH_TIMEOUT_S)

    # --- checks ---------------------------------------------------------------------------
    def _equipment_problems(self, recipe: Recipe) -> list[str]:
        cfg = self.line.config
        problems: list[str] = []
        if recipe.line and recipe.line != cfg.name:
            problems.append(f"the recipe is for line {recipe.line}")
        units = {*recipe.equipment.units,
                 *(g.unit for g in _build(recipe)[2] if g.unit)}
        for _, action in _phase_actions(recipe):
            if isinstance(action, CommandAction):
                units.add(action.unit)
        for unit in sorted(units):
            if self.units is None:
                problems.append(f"unit {unit} is needed but the line has no units")
                break
            try:
                self.units.state(unit)
            except (KeyError, RecipeError):
                problems.append(f"unit {unit} is not a unit of the line")
        devices = set(recipe.equipment.devices)
        tags = set(recipe.equipment.tags) | set(recipe.identity)
        for _, action in _phase_actions(recipe):
            if isinstance(action, ProgramAction):
                devices.add(action.device)
            elif isinstance(action, WriteAction):
                tags.update(t for t, _ in action.values)
        problems += [f"device {d} is not a device of the line" for d in sorted(devices)
                     if d not in cfg.devices]
        problems += [f"tag {t} is not a tag of the line" for t in sorted(tags)
                     if t not in cfg.tags]
        return problems

    def _watch_tags(self, recipe: Recipe) -> tuple[str, ...]:
        """The tags whose quality the batch follows: the equipment's tags, the tags of its
        devices and every tag the recipe writes or reads."""
        cfg = self.line.config
        names = set(recipe.equipment.tags)
        names.update(n for n, t in cfg.tags.items() if t.device in recipe.equipment.devices)
        for e in _expressions(recipe):
            names.update(e.names)
        for _, action in _phase_actions(recipe):
            if isinstance(action, WriteAction):
                names.update(t for t, _ in action.values)
        return tuple(sorted(n for n in names if n in cfg.tags))

    # --- batches --------------------------------------------------------------------------
    def _begin(self, q: _Queued, now_ns: int) -> _Batch | None:
        """Open the queued batch (a new record, or the resumed one) and start it running."""
        recipe = q.recipe
        if self._state in PROC_FINAL_STATES:  # changeover: the ended batch's Reset
            self._state = ProcState.IDLE
        if q.resume is None:
            try:
                bid = self.journal.begin(
                    line=self.line.config.name, recipe=recipe.name, version=recipe.version,
                    digest=recipe.digest, product=recipe.product, source=str(recipe.source),
                    parameters=q.parameters, on_restart=recipe.on_restart.value)
            except RecipeError as exc:
                self._message = f"{recipe.name} version {recipe.version} not started: {exc}"
                log.error("%s", self._message)
                return None
        else:
            bid = q.resume.batch
        root, phases, groups = _build(recipe)
        units = {*recipe.equipment.units, *(g.unit for g in groups if g.unit),
                 *(a.unit for _, a in _phase_actions(recipe) if isinstance(a, CommandAction))}
        watch = self._watch_tags(recipe)
        slots = [self.line.image.slots([t]) for t in watch]
        starts = np.cumsum([0, *(len(x) for x in slots[:-1])]).astype(np.intp)
        b = _Batch(bid, recipe, dict(q.parameters), root, phases, groups, now_ns,
                   frozenset(units), watch,
                   np.concatenate(slots).astype(np.intp) if slots else np.zeros(0, np.intp),
                   starts if slots else np.zeros(0, np.intp),
                   done_paths=q.resume.done_paths if q.resume is not None else frozenset(),
                   alarms_seen=len(self.alarms))
        self._batch = b
        if q.resume is None:
            for p in recipe.parameters:
                if p.name in b.parameters:
                    self._record(b, "parameter", p.name,
                                 {"value": b.parameters[p.name], "unit": p.unit})
            self._record(b, "command", "procedure",
                         {"command": ProcCommand.START.name, "source": q.source,
                          "accepted": True, "reason": ""})
            self._set_state(b, next_proc_state(ProcState.IDLE, ProcCommand.START))
        else:
            self._record(b, "state", "procedure",
                         {"from": q.resume.from_state, "to": ProcState.RUNNING.name,
                          "reason": "resumed at restart"})
            self._state = ProcState.RUNNING
        self._message = f"batch {bid}: {recipe.name} version {recipe.version} running"
        log.info("%s", self._message)
        return b

    def _end(self, b: _Batch, now_ns: int) -> None:
        """Close the batch's record in its final state (COMPLETE, or STOPPED/ABORTED at
        Reset); the next queued batch starts at the next step."""
        final = self._state if self._state in PROC_FINAL_STATES else ProcState.ABORTED
        b.ended_ns = now_ns
        self.journal.end(b.id, final.name)
        self._ended.append(b.id)
        self._batch = None
        self._message = f"batch {b.id} ended {final.name}"
        log.info("%s", self._message)

    def _apply(self, b: _Batch, command: ProcCommand, target: ProcState, source: str) -> None:
        """Enter ``target`` and do what ``command`` does to the units and phases."""
        before = self._state
        self._set_state(b, target)
        now = self.clock.now_ns()
        if command is ProcCommand.HOLD:
            self._freeze(b, now)
            self._command_units(b, Command.HOLD)
        elif command is ProcCommand.RESTART:
            for p in b.phases:
                if p.status in ("failed", "retry"):
                    p.status = "pending"
                    p.retries = 0
            self._command_units(b, Command.UNHOLD)
        elif command is ProcCommand.STOP:
            self._command_units(b, Command.STOP)
        elif command is ProcCommand.ABORT:
            self._command_units(b, Command.ABORT)
        elif command is ProcCommand.RESET:
            self._state = before  # the record closes in the state it reached
            self._end(b, now)
            self._state = target

    def _set_state(self, b: _Batch, target: ProcState) -> None:
        before, self._state = self._state, target
        if before is not target:
            self._record(b, "state", "procedure", {"from": before.name, "to": target.name})
            log.info("batch %s: %s -> %s", b.id, before.name, target.name)

    def _event(self, b: _Batch, event: ProcEvent) -> None:
        self._set_state(b, next_proc_state(self._state, event))

    def _internal(self, b: _Batch, command: ProcCommand, why: str) -> None:
        """A command the executor gives itself (a failure rule), if the state accepts it."""
        if command in proc_accepted(self._state):
            self._record(b, "command", "procedure",
                         {"command": command.name, "source": why, "accepted": True,
                          "reason": ""})
            self._apply(b, command, next_proc_state(self._state, command), why)

    def _command_units(self, b: _Batch, command: Command) -> None:
        """Send ``command`` to the units of the unit procedures running, where their state
        accepts it (a refusal by the unit's mode is recorded, not raised)."""
        if self.units is None:
            return
        units = sorted({g.unit for g in b.groups
                        if g.is_unit_procedure and g.unit and g.status == "active"})
        for unit in units:
            if command in accepted(self.units.state(unit)):
                self._unit_command(b, unit, command)

    def _unit_command(self, b: _Batch, unit: str, command: Command) -> str:
        """Command a unit; the refusal's reason ('' when accepted). The unit runtime reports
        the command (accepted or refused) through :meth:`unit_event`: it is recorded once."""
        assert self.units is not None
        try:
            self.units.command(unit, command, source=self._origin(b))
        except RecipeError as exc:
            return exc.message
        return ""

    def _origin(self, b: _Batch) -> str:
        return f"{self.source}:{b.id}"

    # --- the chart ------------------------------------------------------------------------
    def _may_start(self) -> bool:
        return self._state is ProcState.RUNNING

    def _advance_seq(self, b: _Batch, seq: _SeqRun, now_ns: int) -> bool:
        while seq.index < len(seq.items):
            if not self._advance(b, seq.items[seq.index], now_ns):
                return False
            seq.index += 1
        return True

    def _advance(self, b: _Batch, item: _PhaseRun | _ParRun | _GroupRun, now_ns: int) -> bool:
        if isinstance(item, _PhaseRun):
            return self._advance_phase(b, item, now_ns)
        if isinstance(item, _ParRun):
            done = [self._advance_seq(b, branch, now_ns) for branch in item.branches]
            return all(done)
        if item.status == "done":
            return True
        if item.status == "pending":
            if not self._may_start():
                return False
            item.status = "active"
        if self._advance_seq(b, item.body, now_ns):
            item.status = "done"
            return True
        return False

    def _advance_phase(self, b: _Batch, ph: _PhaseRun, now_ns: int) -> bool:
        if ph.status in ("done", "skipped"):
            return True
        if ph.status == "pending" and ph.path in b.done_paths:
            ph.status = "skipped"  # completed before a restart
            return True
        if ph.status in ("pending", "retry"):
            if not self._may_start() or (ph.status == "retry" and now_ns < ph.retry_at_ns):
                return False
            self._start_phase(b, ph, now_ns)
        if ph.status == "running" and self._state in (ProcState.RUNNING, ProcState.PAUSING):
            self._check_phase(b, ph, now_ns)  # (another phase's failure may have held it)
        return ph.status == "done"

    def _lookup(self, b: _Batch, ph: _PhaseRun | None, now_ns: int) -> _Lookup:
        image = self.line.image

        def look(name: str) -> tuple[object, bool]:
            if name in b.parameters:
                return b.parameters[name], True
            if name == "elapsed_s" and ph is not None:
                return ph.elapsed_ns(now_ns) / 1e9, True
            try:
                v = image.get(name)
            except KeyError:
                return None, False
            return v.value, v.quality is Quality.GOOD
        return look

    def _start_phase(self, b: _Batch, ph: _PhaseRun, now_ns: int) -> None:
        """Start the phase's actions in file order (writes and programs as tasks)."""
        ph.status = "running"
        ph.started_ns, ph.held_ns, ph.held_since = now_ns, 0, None
        ph.wait_ns, ph.timeout_ns = 0, None
        ph.writes, ph.programs = [], []
        self._record(b, "phase", ph.path, {"event": "start", "reason": ""})
        self._message = f"phase {ph.path} started"
        look = self._lookup(b, ph, now_ns)
        if ph.phase.timeout_s is not None:
            timeout = _seconds(ph.phase.timeout_s.evaluate(look))
            if timeout is None:
                self._fail_phase(b, ph, f"timeout_s {ph.phase.timeout_s.text!r} is not a "
                                 "known, non-negative number of seconds", now_ns)
                return
            ph.timeout_ns = round(timeout * 1e9)
        for action in ph.phase.actions:
            problem = self._start_action(b, ph, action, look)
            if problem:
                self._fail_phase(b, ph, problem, now_ns)
                return

    def _start_action(self, b: _Batch, ph: _PhaseRun, action: Any, look: _Lookup) -> str:
        """Start one action; why it could not start ('' if it did)."""
        if isinstance(action, WriteAction):
            values: dict[str, object] = {}
            for tag, e in action.values:
                value = e.evaluate(look)
                if value is None:
                    detail = f"the value {e.text!r} is unknown (a tag it reads is not GOOD)"
                    self._record(b, "write", tag, {"value": None, "outcome": "refused",
                                                   "detail": detail})
                    return f"write {tag}: {detail}"
                values[tag] = value
            task = asyncio.ensure_future(
                self.line.io.write(values, source=self._origin(b)))
            ph.writes.append(_WriteRun(values, task))
            self._started.append(task)
        elif isinstance(action, CommandAction):
            if self.units is None:
                return f"command {action.command} to unit {action.unit}: the line has no units"
            try:
                cmd = command_by_name(action.command)
            except RecipeError as exc:
                return f"command to unit {action.unit}: {exc.message}"
            reason = self._unit_command(b, action.unit, cmd)
            if reason:
                return f"unit {action.unit}: {reason}"
        elif isinstance(action, WaitAction):
            seconds = _seconds(action.seconds.evaluate(look))
            if seconds is None:
                return f"wait_s {action.seconds.text!r} is not a known, non-negative number"
            ph.wait_ns = max(ph.wait_ns, round(seconds * 1e9))
        elif isinstance(action, ProgramAction):
            prog = _ProgramRun(action.device, action.file)
            prog.task = asyncio.ensure_future(self._run_program(prog))
            ph.programs.append(prog)
            self._message = f"phase {ph.path}: program {action.file.name} on {action.device}"
        return ""

    async def _run_program(self, prog: _ProgramRun) -> tuple[bool, str]:
        """Stream a G-code file through the device's GRBL driver; (ok, how it ended)."""
        try:
            from ..drivers.cnc.grbl import GcodeJob, GcodeProgram, GrblDriver
        except ImportError as exc:
            return False, f"GRBL support is not installed ({exc}): pip install 'smartline[cnc]'"
        drv = self.line.io.driver(prog.device)
        if not isinstance(drv, GrblDriver):
            return False, f"device {prog.device} is not a GRBL controller"
        program = await asyncio.to_thread(GcodeProgram.load, prog.file)
        await drv.connect()
        prog.job = GcodeJob(drv, program)
        outcome = await prog.job.run()
        return outcome.ok, outcome.message

    def _check_phase(self, b: _Batch, ph: _PhaseRun, now_ns: int) -> None:
        """Complete the phase if its actions ended and ``until`` holds; fail it on timeout."""
        elapsed = ph.elapsed_ns(now_ns)
        until = ph.phase.until
        holds: object = True
        if not ph.in_flight() and elapsed >= ph.wait_ns:
            if until is not None:
                holds = until.evaluate(self._lookup(b, ph, now_ns))
            if holds is True:
                ph.status = "done"
                self._record(b, "phase", ph.path, {"event": "complete", "reason": ""})
                self._message = f"phase {ph.path} complete"
                return
        if ph.timeout_ns is not None and elapsed >= ph.timeout_ns:
            what = (f"until {until.text!r} is {'unknown' if holds is None else holds}"
                    if until is not None and not ph.in_flight() and elapsed >= ph.wait_ns
                    else "its actions had not ended")
            self._fail_phase(b, ph, f"timeout after {ph.timeout_ns / 1e9:g} s: {what}",
                             now_ns)

    def _fail_phase(self, b: _Batch, ph: _PhaseRun, reason: str, now_ns: int) -> None:
        """Record the failure and apply the phase's rule (retry, hold or abort)."""
        if ph.status not in ("running",):
            return
        for prog in ph.programs:
            prog.cancel()
        self._record(b, "phase", ph.path, {"event": "failed", "reason": reason})
        self._message = f"phase {ph.path} failed: {reason}"
        log.warning("batch %s: %s", b.id, self._message)
        if self._closing:
            ph.status = "failed"
            return
        rule = ph.phase.on_failure
        if rule.action == "retry" and ph.retries < rule.times:
            ph.retries += 1
            ph.status = "retry"
            ph.retry_at_ns = now_ns + round(rule.delay_s * 1e9)
            self._record(b, "phase", ph.path,
                         {"event": "retry", "reason": f"retry {ph.retries} of {rule.times} "
                                                      f"in {rule.delay_s:g} s"})
            return
        ph.status = "failed"
        then = rule.then if rule.action == "retry" else rule.action
        command = ProcCommand.ABORT if then == "abort" else ProcCommand.HOLD
        self._internal(b, command, f"on_failure:{ph.path}")

    def _freeze(self, b: _Batch, now_ns: int) -> None:
        """Holding: running phases stop counting time; programs get a feed hold."""
        for p in b.phases:
            if p.status == "running" and p.held_since is None:
                p.held_since = now_ns
                for prog in p.programs:
                    if prog.job is not None and prog.running():
                        self._spawn(prog.job.pause())

    def _thaw(self, b: _Batch, now_ns: int) -> None:
        """Restarting: held phases count time again; programs resume."""
        for p in b.phases:
            if p.held_since is not None:
                p.held_ns += now_ns - p.held_since
                p.held_since = None
                for prog in p.programs:
                    if prog.job is not None and prog.running():
                        self._spawn(prog.job.resume())

    def _interrupt(self, b: _Batch, now_ns: int) -> None:
        """Stopping/Aborting: phases running or waiting to retry end here (programs stop
        safely); writes in flight land and are recorded."""
        for p in b.phases:
            if p.status in ("running", "retry"):
                p.status = "failed"
                p.held_since = None
                for prog in p.programs:
                    prog.cancel()
                self._record(b, "phase", p.path,
                             {"event": "failed", "reason": f"interrupted: {self._state.name}"})

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a small coroutine (a feed hold, a resume) without waiting for it."""
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("program control failed: %s", task.exception())

    # --- outcomes and watching -----------------------------------------------------------
    def _collect(self, b: _Batch, now_ns: int) -> None:
        """Record the outcome of every write and program that ended since the last step; a
        refused or failed one fails its phase."""
        for p in b.phases:
            problems: list[str] = []
            for w in p.writes:
                if w.recorded or not w.task.done():
                    continue
                w.recorded = True
                exc = None if w.task.cancelled() else w.task.exception()
                if w.task.cancelled():
                    outcome, detail = "failed", "cancelled"
                elif exc is None:
                    outcome, detail = "ok", ""
                else:
                    outcome = "refused" if isinstance(exc, WriteRefusedError) else "failed"
                    detail = str(exc)
                for tag, value in w.values.items():
                    self._record(b, "write", tag,
                                 {"value": value, "outcome": outcome, "detail": detail})
                if outcome != "ok":
                    problems.append(f"write {', '.join(w.values)} {outcome}: {detail}")
            for prog in p.programs:
                if prog.recorded or prog.task is None or not prog.task.done():
                    continue
                prog.recorded = True
                if prog.task.cancelled():
                    ok, how = False, "cancelled"
                elif (exc := prog.task.exception()) is not None:
                    ok, how = False, f"{type(exc).__name__}: {exc}"
                else:
                    ok, how = prog.task.result()
                if not ok:
                    problems.append(f"program {prog.file.name} on {prog.device}: {how}")
            if problems and p.status == "running":
                self._fail_phase(b, p, "; ".join(problems), now_ns)

    def _watch(self, b: _Batch) -> None:
        """Identity values that changed, tags that went BAD (or recovered), engine alarms."""
        image = self.line.image
        for tag in b.recipe.identity:
            v = image.get(tag)
            if v.quality is not Quality.GOOD or v.value is None or v.value == "":
                continue  # nothing scanned yet
            if b.identity.get(tag, _UNSET) != v.value:
                b.identity[tag] = v.value
                data: dict[str, object] = {"value": v.value}
                if isinstance(v.value, str) and v.value:
                    fields = self._scan(v.value)
                    if fields:
                        data["fields"] = fields
                self._record(b, "identity", tag, data)
        if b.watch_tags:  # one look at the quality arrays; a tag's value only on a change
            quality = np.maximum.reduceat(image.quality[b.watch_slots], b.watch_starts)
            reason = np.maximum.reduceat(image.reason[b.watch_slots], b.watch_starts)
            bad = (quality == Quality.BAD) & (reason != Reason.NOT_READ)
            for i, tag in enumerate(b.watch_tags):
                if bool(bad[i]) == (tag in b.bad):
                    continue
                v = image.get(tag)
                if bad[i]:
                    b.bad.add(tag)
                    message = f"{tag} is BAD: {v.note or v.reason.label}"
                else:
                    b.bad.discard(tag)
                    message = f"{tag} is no longer BAD ({v.quality.label})"
                self._record(b, "alarm", tag, {"message": message})
        alarms = self.alarms
        while b.alarms_seen < len(alarms):
            a = alarms[b.alarms_seen]
            b.alarms_seen += 1
            self._record(b, "alarm", a.task or a.kind, {"message": a.message, "kind": a.kind})

    def _scan(self, text: str) -> dict[str, str]:
        """The fields of a scanned code (empty when it is plain data)."""
        today = dt.datetime.fromtimestamp(self.clock.wall_ns() / 1e9, dt.UTC).date()
        try:
            fields = scan_fields(text, today=today)
        except ValueError:
            return {}
        return fields if set(fields) - {"data"} else {}

    # --- journal ------------------------------------------------------------------------
    def _record(self, b: _Batch, kind: str, subject: str, data: Mapping[str, object]) -> None:
        self._record_id(b.id, kind, subject, data)

    def _record_id(self, batch: str, kind: str, subject: str,
                   data: Mapping[str, object]) -> None:
        try:
            self.journal.record(batch, kind, subject, data, plant_ns=self.clock.now_ns())
        except RecipeError:  # the journal cannot write: the batch goes on, loudly
            log.exception("batch %s: %s %s not recorded", batch, kind, subject)

    def _recipe_for(self, s: BatchSummary, events: list[BatchEvent],
                    known: Mapping[tuple[str, str, str], Recipe]) -> tuple[Recipe | None, str]:
        """The recipe an unfinished batch ran, or why it is not available."""
        recipe = known.get((s.recipe, s.version, s.digest))
        if recipe is None:
            start = next((e for e in events if e.kind == "batch" and e.subject == "start"), None)
            source = str(start.data.get("source", "")) if start is not None else ""
            if not source:
                return None, "its recipe file is not recorded"
            try:
                from ._load import load_recipe

                recipe = load_recipe(source, line=self.line.config,
                                     units=getattr(self.units, "units", None))
            except (OSError, RecipeError, ValueError) as exc:
                return None, f"its recipe {source} cannot be loaded: {exc}"
            if recipe.digest != s.digest:
                return None, (f"its recipe file {source} changed since the batch began "
                              f"(digest {recipe.digest[:12]}, recorded {s.digest[:12]})")
        problems = self._equipment_problems(recipe)
        if problems:
            return None, "; ".join(problems)
        return recipe, ""


def _phases_seen(events: Sequence[BatchEvent]) -> tuple[set[str], list[str]]:
    """(phases completed, phases started and not completed) from a batch's events."""
    done: set[str] = set()
    running: dict[str, None] = {}
    for e in events:
        if e.kind != "phase":
            continue
        event = e.data.get("event")
        if event == "start":
            running[e.subject] = None
        elif event == "complete":
            done.add(e.subject)
            running.pop(e.subject, None)
    return done, [p for p in running if p not in done]

