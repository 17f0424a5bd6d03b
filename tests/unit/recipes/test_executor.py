"""The recipe executor over a memory-device line, in virtual time.

Each test builds a recipe from ``_model`` objects, runs the line's engine with the executor
as a service (as the CLI does), a small plant model as another service and a script of
operator commands, and checks the batch record the journal kept.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from smartline.config import load_line
from smartline.core import RecipeError, VirtualClock
from smartline.cycle import Alarm, Engine, EngineStats
from smartline.line import Line
from smartline.recipes._executor import RecipeExecutor
from smartline.recipes._journal import BatchEvent, BatchJournal
from smartline.recipes._load import load_recipe
from smartline.recipes._model import (
    CommandAction,
    Equipment,
    FailureRule,
    Operation,
    Parallel,
    Parameter,
    Phase,
    Recipe,
    RestartRule,
    UnitProcedure,
    WaitAction,
    WriteAction,
)
from smartline.recipes._units import UnitRuntime, load_units, with_units
from smartline.recipes.expr import parse
from smartline.recipes.procedural import ProcCommand, ProcState

LINE = """\
smartline: 1
line: mixer
devices:
  plc: {url: "memory://mixer"}
tags:
  temp:    {device: plc, address: "temp:float32", unit: degC}
  temp_sp: {device: plc, address: "temp_sp:float32", access: rw, limits: [0, 300], unit: degC}
  level:   {device: plc, address: "level:float32", unit: "%"}
  valve:   {device: plc, address: "valve:bool", access: rw}
  speed:   {device: plc, address: "speed:uint16", access: rw, limits: [0, 1000]}
  lot:     {device: plc, address: "lot:string<32>"}
tasks:
  control: {period_ms: 100, tags: [temp, temp_sp, level, valve, speed, lot]}
"""

STEP_NS = 100_000_000


# --- recipes as data ------------------------------------------------------------------------

def write(**values: str) -> WriteAction:
    return WriteAction(tuple((tag, parse(text)) for tag, text in values.items()))


def wait(seconds: str) -> WaitAction:
    return WaitAction(parse(seconds))


def phase(name: str, *actions: Any, until: str | None = None, timeout: str | None = None,
          on_failure: FailureRule | None = None) -> Phase:
    return Phase(name, tuple(actions), parse(until) if until else None,
                 parse(timeout) if timeout else None, on_failure or FailureRule())


PARAMS = (
    Parameter("soak_temp", unit="degC", default=120.0, limits=(20.0, 250.0)),
    Parameter("soak_s", unit="s", default=3.0, limits=(0.0, 60.0)),
)


def recipe(*phases: Phase | Parallel[Phase], name: str = "mix", version: str = "1",
           identity: tuple[str, ...] = (), on_restart: RestartRule = RestartRule.ABORT,
           line: str = "mixer", tags: tuple[str, ...] = ("temp", "temp_sp"),
           unit: str = "") -> Recipe:
    body = repr((name, version, phases, identity, on_restart)).encode()
    return Recipe(name=name, version=version, product="paint base", line=line,
                  parameters=PARAMS, equipment=Equipment(devices=("plc",), tags=tags),
                  procedure=(UnitProcedure("mix", (Operation("batch", tuple(phases)),),
                                           unit=unit),),
                  source=Path(f"/recipes/{name}.yaml"),
                  digest=hashlib.sha256(body).hexdigest(), identity=identity,
                  on_restart=on_restart)


HEAT = (
    phase("set", write(temp_sp="soak_temp", valve="true")),
    phase("reach", until="abs(temp - soak_temp) <= 2", timeout="60"),
    phase("soak", wait("soak_s")),
    Parallel((
        (phase("cool", write(temp_sp="20"), wait("1")),),
        (phase("drain", write(valve="false", speed="soak_temp * 2")),),
    )),
)


# --- the rig: line, engine, plant, executor, script -------------------------------------------

@dataclass
class Rig:
    """A memory line run in virtual time with the executor as a service of its engine."""

    path: Path
    journal_path: Path
    clock: VirtualClock = field(default_factory=VirtualClock)
    script: list[tuple[float, Callable[[], None]]] = field(default_factory=list)
    stop_when: Callable[[RecipeExecutor], bool] | None = None
    heat_rate: float = 0.25  # fraction of the distance to the set point per 100 ms
    with_units: bool = False

    def __post_init__(self) -> None:
        self.config = load_line(self.path)
        units = None
        if self.with_units:
            found = load_units(self.config)
            self.config = with_units(self.config, found)
        self.line = Line(self.config, clock=self.clock)
        self.engine = Engine.from_config(self.config, self.line.image, self.line.io,
                                         clock=self.clock)
        self.journal = BatchJournal(self.journal_path, clock=self.clock)
        if self.with_units:
            units = UnitRuntime(found, self.line, clock=self.clock)
        self.units = units
        self.executor = RecipeExecutor(self.line, units=units, journal=self.journal,
                                       clock=self.clock, alarms=self.engine.alarms)
        self.engine.add_service("plant", STEP_NS, self._plant)
        if units is not None:
            self.engine.add_service("units", STEP_NS, units.step)
        self.engine.add_service("recipe", STEP_NS, self.executor.step)
        self.engine.add_service("script", STEP_NS, self._script)
        self.t0: int | None = None
        self.states: list[ProcState] = []

    @property
    def bus(self) -> Any:
        return self.line.io.driver("plc").bus  # type: ignore[attr-defined]

    async def _plant(self, now_ns: int) -> None:
        values = self.bus.values
        if self.with_units:  # the agitator runs while told to, unless it has faulted
            self.bus.set("running", bool(values.get("run", 0)) and not values.get("fault", 0))
            return
        temp = float(values.get("temp", 20.0))
        sp = float(values.get("temp_sp", 20.0)) or 20.0
        self.bus.set("temp", temp + (sp - temp) * self.heat_rate)

    async def _script(self, now_ns: int) -> None:
        if self.t0 is None:
            self.t0 = now_ns
        t = (now_ns - self.t0) / 1e9
        while self.script and self.script[0][0] <= t + 1e-9:
            self.script.pop(0)[1]()
        if not self.states or self.states[-1] is not self.executor.state:
            self.states.append(self.executor.state)
        if self.stop_when is not None and self.stop_when(self.executor):
            self.engine.stop()

    async def run(self, seconds: float) -> EngineStats:
        self.bus.set("temp", 20.0)
        try:
            return await self.engine.run(duration_s=seconds)
        finally:
            await self.executor.aclose()
            if self.units is not None:
                await self.units.aclose()
            await self.line.close()

    def events(self, batch: str | None = None, kind: str | None = None) -> list[BatchEvent]:
        bid = batch or self.only_batch()
        return [e for e in self.journal.events(bid) if kind is None or e.kind == kind]

    def only_batch(self) -> str:
        batches = self.journal.batches()
        assert len(batches) == 1, batches
        return batches[0].id


UNIT_LINE = """\
smartline: 1
line: stirrer
devices:
  plc: {url: "memory://stirrer"}
tags:
  agitator.run:     {device: plc, address: "run:bool", access: rw, safe: false}
  agitator.running: {device: plc, address: "running:bool"}
  agitator.ready:   {device: plc, address: "ready:bool"}
  agitator.fault:   {device: plc, address: "fault:bool"}
units:
  agitator:
    description: a legacy agitator, run by one output
    state:
      ABORTED: "agitator.fault"
      EXECUTE: "agitator.running"
      IDLE: "agitator.ready"
      STOPPED: "true"
    commands:
      START: {write: {agitator.run: true}}
      HOLD: {write: {agitator.run: false}}
      STOP: {write: {agitator.run: false}}
      ABORT: {write: {agitator.run: false}}
tasks:
  control: {period_ms: 100, tags: [agitator.running, agitator.ready, agitator.fault]}
"""


@pytest.fixture
def unit_rig(tmp_path: Path) -> Rig:
    p = tmp_path / "stirrer.yaml"
    p.write_text(UNIT_LINE, encoding="utf-8")
    r = Rig(p, tmp_path / "batches.db", with_units=True)
    r.bus.set("ready", 1)
    yield r  # type: ignore[misc]
    r.journal.close()


@pytest.fixture
def line_path(tmp_path: Path) -> Path:
    p = tmp_path / "mixer.yaml"
    p.write_text(LINE, encoding="utf-8")
    return p


@pytest.fixture
def rig(line_path: Path, tmp_path: Path) -> Rig:
    r = Rig(line_path, tmp_path / "batches.db")
    yield r  # type: ignore[misc]
    r.journal.close()


def phase_log(events: Sequence[BatchEvent]) -> list[tuple[str, str]]:
    return [(e.subject, str(e.data["event"])) for e in events if e.kind == "phase"]


def state_log(events: Sequence[BatchEvent]) -> list[str]:
    return [str(e.data["to"]) for e in events if e.kind == "state"]


def finished(ex: RecipeExecutor) -> bool:
    return ex.idle


# --- a batch from start to end --------------------------------------------------------------

async def test_batch_runs_its_phases_in_order_and_completes(rig: Rig) -> None:
    ex = rig.executor
    ex.submit(recipe(*HEAT), {"soak_temp": 150})
    seen: list[Any] = []
    rig.script = [(1.0, lambda: seen.append(ex.progress()))]
    rig.stop_when = finished
    await rig.run(60)
    assert rig.executor.state is ProcState.COMPLETE
    summary = rig.journal.batches()[0]
    assert summary.state == "COMPLETE" and summary.ended_ns is not None
    assert summary.parameters == {"soak_temp": 150.0, "soak_s": 3.0}
    events = rig.events()
    assert [(e.kind, e.subject) for e in events[:3]] == [
        ("batch", "start"), ("parameter", "soak_temp"), ("parameter", "soak_s")]
    assert events[1].data == {"value": 150.0, "unit": "degC"}
    assert (events[-1].kind, events[-1].subject) == ("batch", "end")
    assert state_log(events) == ["RUNNING", "COMPLETE"]
    steps = phase_log(events)
    assert steps[:6] == [("mix/batch/set", "start"), ("mix/batch/set", "complete"),
                         ("mix/batch/reach", "start"), ("mix/batch/reach", "complete"),
                         ("mix/batch/soak", "start"), ("mix/batch/soak", "complete")]
    assert sorted(steps[6:]) == [("mix/batch/cool", "complete"), ("mix/batch/cool", "start"),
                                 ("mix/batch/drain", "complete"), ("mix/batch/drain", "start")]
    writes = {(e.subject, e.data["value"], e.data["outcome"]) for e in events
              if e.kind == "write"}
    assert writes == {("temp_sp", 150.0, "ok"), ("valve", True, "ok"), ("temp_sp", 20.0, "ok"),
                      ("valve", False, "ok"), ("speed", 300.0, "ok")}
    at = {(e.subject, e.data["event"]): e.plant_ns for e in events if e.kind == "phase"}
    # the soak lasted soak_s; the parallel branches started together, the block ended last
    soak = at[("mix/batch/soak", "complete")] - at[("mix/batch/soak", "start")]
    assert 3.0e9 <= soak <= 3.0e9 + STEP_NS
    assert at[("mix/batch/cool", "start")] == at[("mix/batch/drain", "start")]
    assert at[("mix/batch/cool", "complete")] - at[("mix/batch/cool", "start")] >= 1e9
    # the reach phase ended when the plant was within 2 degC of the set point
    assert abs(rig.bus.values["speed"] - 300) < 1e-6
    assert rig.line.image.get("temp").value == pytest.approx(20, abs=30)
    p = seen[0]
    assert (p.batch, p.recipe, p.state, p.phases_done, p.phases_total, p.active) == (
        summary.id, "mix", ProcState.RUNNING, 1, 5, ("mix/batch/reach",))
    assert [b.id for b in ex.finished()] == [summary.id]
    assert ex.progress().batch is None and ex.idle


async def test_until_is_checked_on_the_image_and_elapsed_s(rig: Rig) -> None:
    rig.executor.submit(recipe(phase("settle", until="elapsed_s >= 2.5 and temp < 30")))
    rig.stop_when = finished
    await rig.run(30)
    ev = rig.events(kind="phase")
    assert 2.5e9 <= ev[1].plant_ns - ev[0].plant_ns <= 2.5e9 + STEP_NS


# --- failures and their rules ---------------------------------------------------------------

async def test_a_phase_that_times_out_holds_and_restart_reruns_it(rig: Rig) -> None:
    ex = rig.executor
    ex.submit(recipe(phase("fill", until="level >= 50", timeout="2"), phase("after")))
    rig.script = [(6.0, lambda: rig.bus.set("level", 60.0)),
                  (7.0, lambda: ex.command(ProcCommand.RESTART, source="operator"))]
    rig.stop_when = finished
    await rig.run(30)
    events = rig.events()
    assert state_log(events) == ["RUNNING", "HOLDING", "HELD", "RESTARTING", "RUNNING",
                                 "COMPLETE"]
    steps = phase_log(events)
    assert steps == [("mix/batch/fill", "start"), ("mix/batch/fill", "failed"),
                     ("mix/batch/fill", "start"), ("mix/batch/fill", "complete"),
                     ("mix/batch/after", "start"), ("mix/batch/after", "complete")]
    failed = next(e for e in events if e.kind == "phase" and e.data["event"] == "failed")
    assert "timeout after 2 s" in str(failed.data["reason"])
    assert "level >= 50" in str(failed.data["reason"])
    start = next(e for e in events if e.kind == "phase")
    assert 2e9 <= failed.plant_ns - start.plant_ns <= 2e9 + STEP_NS
    commands = [(e.data["command"], e.data["source"]) for e in events if e.kind == "command"]
    assert commands == [("START", "submit"), ("HOLD", "on_failure:mix/batch/fill"),
                        ("RESTART", "operator")]


async def test_a_refused_write_retries_then_aborts(rig: Rig) -> None:
    rule = FailureRule("retry", times=2, delay_s=1.0, then="abort")
    rig.executor.submit(recipe(phase("set", write(temp_sp="soak_temp * 3"), on_failure=rule)))
    rig.stop_when = lambda ex: ex.state is ProcState.ABORTED
    await rig.run(30)
    events = rig.events()
    assert phase_log(events) == [("mix/batch/set", e) for e in (
        "start", "failed", "retry", "start", "failed", "retry", "start", "failed")]
    writes = [e.data for e in events if e.kind == "write"]
    assert [w["outcome"] for w in writes] == ["refused"] * 3
    assert writes[0]["value"] == 360.0 and "limits" in str(writes[0]["detail"])
    assert state_log(events) == ["RUNNING", "ABORTING", "ABORTED"]
    retries = [e.plant_ns for e in events if e.kind == "phase" and e.data["event"] == "start"]
    assert all(b - a >= 1e9 for a, b in itertools.pairwise(retries))
    assert rig.bus.values.get("temp_sp", 0) == 0  # nothing refused was written
    # the batch stays open (ABORTED) until Reset closes its record
    assert rig.journal.batches()[0].ended_ns is None


async def test_unknown_values_are_not_written_and_fail_the_phase(rig: Rig) -> None:
    # the level is never read (a fault on the device): the write's value is unknown
    rig.executor.submit(recipe(phase("set", write(temp_sp="level + 10"),
                                     on_failure=FailureRule("abort"))))
    rig.bus.garbage = True
    rig.stop_when = lambda ex: ex.state is ProcState.ABORTED
    await rig.run(10)
    failed = [e for e in rig.events(kind="phase") if e.data["event"] == "failed"]
    assert "unknown" in str(failed[0].data["reason"])
    alarms = rig.events(kind="alarm")
    assert {e.subject for e in alarms} >= {"level", "temp"}  # equipment tags went BAD
    assert all("BAD" in str(e.data["message"]) for e in alarms)
    assert len([e for e in alarms if e.subject == "temp"]) == 1  # once per transition


# --- operator commands --------------------------------------------------------------------------

async def test_abort_then_reset_ends_the_batch_aborted(rig: Rig) -> None:
    ex = rig.executor
    ex.submit(recipe(phase("long", wait("20")), phase("never")))
    rig.script = [(2.0, lambda: ex.command(ProcCommand.ABORT)),
                  (3.0, lambda: ex.command(ProcCommand.RESET, source="operator"))]
    rig.stop_when = lambda e: e.batch is None and e.state is ProcState.IDLE
    await rig.run(30)
    events = rig.events()
    assert state_log(events) == ["RUNNING", "ABORTING", "ABORTED", "IDLE"]
    assert phase_log(events) == [("mix/batch/long", "start"), ("mix/batch/long", "failed")]
    failed = [e.data for e in events if e.kind == "phase" and e.data["event"] == "failed"]
    assert failed == [{"event": "failed", "reason": "interrupted: ABORTING"}]
    assert [e.data["command"] for e in events if e.kind == "command"] == [
        "START", "ABORT", "RESET"]
    summary = rig.journal.batches()[0]
    assert summary.state == "ABORTED" and summary.ended_ns is not None
    assert ex.state is ProcState.IDLE and ex.batch is None and ex.idle


async def test_stop_ends_without_further_phases(rig: Rig) -> None:
    ex = rig.executor
    ex.submit(recipe(phase("one", wait("5")), phase("two")))
    rig.script = [(1.0, lambda: ex.command(ProcCommand.STOP))]
    rig.stop_when = lambda e: e.state is ProcState.STOPPED
    await rig.run(20)
    assert state_log(rig.events()) == ["RUNNING", "STOPPING", "STOPPED"]
    assert ("mix/batch/two", "start") not in phase_log(rig.events())


async def test_hold_freezes_the_phase_clock_and_restart_continues(rig: Rig) -> None:
    ex = rig.executor
    ex.submit(recipe(phase("soak", wait("4"))))
    rig.script = [(1.0, lambda: ex.command(ProcCommand.HOLD)),
                  (6.0, lambda: ex.command(ProcCommand.RESTART))]
    rig.stop_when = finished
    await rig.run(30)
    events = rig.events()
    assert state_log(events) == ["RUNNING", "HOLDING", "HELD", "RESTARTING", "RUNNING",
                                 "COMPLETE"]
    ph = [e for e in events if e.kind == "phase"]
    assert [e.data["event"] for e in ph] == ["start", "complete"]  # held, not re-run
    # 4 s of soak plus the 5 s held
    assert 9e9 <= ph[1].plant_ns - ph[0].plant_ns <= 9e9 + 2 * STEP_NS


async def test_pause_waits_for_the_phase_boundary(rig: Rig) -> None:
    ex = rig.executor
    ex.submit(recipe(phase("one", wait("2")), phase("two", wait("1"))))
    seen: list[tuple[ProcState, tuple[str, ...]]] = []
    rig.script = [(0.5, lambda: ex.command(ProcCommand.PAUSE)),
                  (1.0, lambda: seen.append((ex.state, ex.progress().active))),
                  (4.0, lambda: seen.append((ex.state, ex.progress().active))),
                  (5.0, lambda: ex.command(ProcCommand.RESUME))]
    rig.stop_when = finished
    await rig.run(30)
    assert seen == [(ProcState.PAUSING, ("mix/batch/one",)), (ProcState.PAUSED, ())]
    events = rig.events()
    assert state_log(events) == ["RUNNING", "PAUSING", "PAUSED", "RUNNING", "COMPLETE"]
    two = next(e for e in events if e.kind == "phase" and e.subject == "mix/batch/two")
    assert two.plant_ns - events[0].plant_ns >= 5e9  # started only after Resume


async def test_a_refused_command_is_recorded_and_raised(rig: Rig) -> None:
    ex = rig.executor
    ex.submit(recipe(phase("one", wait("2"))))
    errors: list[str] = []

    def restart() -> None:
        try:
            ex.command(ProcCommand.RESTART, source="operator")
        except RecipeError as exc:
            errors.append(exc.message)

    rig.script = [(0.5, restart)]
    rig.stop_when = finished
    await rig.run(10)
    assert errors and "RUNNING accepts" in errors[0]
    refused = [e.data for e in rig.events(kind="command") if e.data["command"] == "RESTART"]
    assert refused == [{"command": "RESTART", "source": "operator", "accepted": False,
                        "reason": errors[0]}]
    with pytest.raises(RecipeError, match="no batch is running"):
        ex.command(ProcCommand.HOLD)


# --- changeover ---------------------------------------------------------------------------------

async def test_changeover_starts_the_next_recipe_without_stopping_the_cycle(rig: Rig) -> None:
    ex = rig.executor
    first = recipe(phase("a", write(temp_sp="60"), wait("2")), name="first")
    second = recipe(phase("b", write(temp_sp="soak_temp"), wait("1")), name="second")
    ex.submit(first)
    ex.submit(second, {"soak_temp": 80})
    assert ex.progress().queued == ("first", "second")
    stats = await rig.run(10)
    batches = {b.recipe: b for b in rig.journal.batches()}
    assert batches["first"].state == batches["second"].state == "COMPLETE"
    end_first = rig.events(batches["first"].id)[-1]
    start_second = rig.events(batches["second"].id)[0]
    assert 0 < start_second.plant_ns - end_first.plant_ns <= STEP_NS
    task = stats.tasks["control"]
    assert task.cycles >= 99 and task.overruns == 0  # the cycle never stopped
    assert rig.bus.values["temp_sp"] == pytest.approx(80)
    assert ex.idle and ex.progress().queued == ()


# --- identity, alarms ---------------------------------------------------------------------------

async def test_identity_changes_and_engine_alarms_are_recorded(rig: Rig) -> None:
    ex = rig.executor
    ex.submit(recipe(phase("run", wait("4")), identity=("lot",)))
    rig.script = [
        (0.0, lambda: rig.bus.set("lot", "LOT-1")),
        (1.0, lambda: rig.bus.set("lot", "(01)09501101530003(10)AB12")),
        (1.5, lambda: rig.engine.alarms.append(Alarm(0, "control", "overrun", "late"))),
        (2.0, lambda: rig.bus.set("lot", "(01)09501101530003(10)AB12")),
    ]
    rig.stop_when = finished
    await rig.run(10)
    ids = rig.events(kind="identity")
    assert [e.data["value"] for e in ids] == ["LOT-1", "(01)09501101530003(10)AB12"]
    assert "fields" not in ids[0].data
    fields = ids[1].data["fields"]
    assert isinstance(fields, dict)
    assert fields["gtin"] == "09501101530003" and fields["batch"] == "AB12"
    alarms = rig.events(kind="alarm")
    assert [(e.subject, e.data["message"]) for e in alarms] == [("control", "late")]


# --- submit checks ------------------------------------------------------------------------------

async def test_submit_refuses_what_cannot_run(rig: Rig) -> None:
    ex = rig.executor
    with pytest.raises(RecipeError) as err:
        ex.submit(recipe(phase("x", write(nozzle="1")), line="other", tags=("ghost",)))
    text = err.value.message
    assert "for line other" in text and "tag ghost" in text and "tag nozzle" in text
    with pytest.raises(RecipeError, match="soak_temp"):
        ex.submit(recipe(phase("x")), {"soak_temp": 999})
    assert ex.progress().queued == ()


async def test_a_used_recipe_version_is_immutable(rig: Rig) -> None:
    rig.executor.submit(recipe(phase("x")))
    rig.stop_when = finished
    await rig.run(5)
    changed = recipe(phase("x"), phase("y"))  # same name and version, another digest
    with pytest.raises(RecipeError, match="immutable"):
        rig.executor.submit(changed)


# --- restart of smartline mid-batch -------------------------------------------------------------

async def test_recover_aborts_an_unfinished_batch_by_its_rule(line_path: Path,
                                                              tmp_path: Path) -> None:
    first = Rig(line_path, tmp_path / "b.db")
    first.executor.submit(recipe(phase("long", wait("30"))))
    await first.run(2)  # the process "dies" mid-batch
    first.journal.close()
    again = Rig(line_path, tmp_path / "b.db")
    said = again.executor.recover()
    assert len(said) == 1 and "aborted at restart" in said[0] and "on_restart: abort" in said[0]
    summary = again.journal.batches()[0]
    assert summary.state == "ABORTED" and summary.ended_ns is not None
    tail = [(e.kind, e.subject) for e in again.events()[-3:]]
    assert tail == [("batch", "aborted-at-restart"), ("state", "procedure"), ("batch", "end")]
    assert again.executor.recover() == []
    again.journal.close()


async def test_recover_resumes_from_the_phase_that_was_running(line_path: Path,
                                                               tmp_path: Path) -> None:
    r = recipe(phase("set", write(temp_sp="soak_temp")), phase("soak", wait("4")),
               phase("after"), on_restart=RestartRule.RESUME)
    first = Rig(line_path, tmp_path / "b.db")
    first.executor.submit(r, {"soak_temp": 90})
    await first.run(2)
    first.journal.close()
    again = Rig(line_path, tmp_path / "b.db")
    said = again.executor.recover([r])
    assert len(said) == 1 and "resumed from mix/batch/soak" in said[0]
    again.stop_when = finished
    await again.run(20)
    summary = again.journal.batches()[0]
    assert summary.state == "COMPLETE"
    steps = phase_log(again.events())
    assert steps == [("mix/batch/set", "start"), ("mix/batch/set", "complete"),
                     ("mix/batch/soak", "start"),  # the run that was cut short
                     ("mix/batch/soak", "start"), ("mix/batch/soak", "complete"),
                     ("mix/batch/after", "start"), ("mix/batch/after", "complete")]
    resumed = next(e for e in again.events() if e.subject == "resumed")
    assert resumed.data["phases"] == ["mix/batch/soak"]
    assert again.bus.values.get("temp_sp", 0) == 0  # "set" was not run again
    again.journal.close()


async def test_recover_aborts_a_resume_batch_whose_recipe_is_gone(line_path: Path,
                                                                  tmp_path: Path) -> None:
    r = recipe(phase("soak", wait("10")), on_restart=RestartRule.RESUME)
    first = Rig(line_path, tmp_path / "b.db")
    first.executor.submit(r)
    await first.run(1)
    first.journal.close()
    again = Rig(line_path, tmp_path / "b.db")
    said = again.executor.recover()  # no recipes given, and /recipes/mix.yaml does not exist
    assert "could not resume" in said[0] and "mix.yaml" in said[0]
    assert again.journal.batches()[0].state == "ABORTED"
    again.journal.close()


# --- PackML units -----------------------------------------------------------------------------

def stir(*phases: Phase) -> Recipe:
    return recipe(*phases, line="stirrer", tags=("agitator.run",), unit="agitator")


async def test_units_are_commanded_and_their_events_recorded(unit_rig: Rig) -> None:
    ex = unit_rig.executor
    ex.submit(stir(phase("start", CommandAction("agitator", "START"),
                         until="agitator.state == EXECUTE", timeout="5"),
                   phase("stir", wait("10"))))
    unit_rig.script = [(3.0, lambda: ex.command(ProcCommand.HOLD)),
                       (5.0, lambda: ex.command(ProcCommand.ABORT))]
    unit_rig.stop_when = lambda e: e.state is ProcState.ABORTED
    await unit_rig.run(20)
    bid = unit_rig.only_batch()
    events = unit_rig.events()
    unit_cmds = [(e.data["command"], e.data["accepted"], e.data["source"]) for e in events
                 if e.kind == "command" and e.subject == "agitator"]
    assert unit_cmds == [("START", True, f"recipe:{bid}"), ("HOLD", True, f"recipe:{bid}"),
                         ("ABORT", True, f"recipe:{bid}")]
    moves = [(e.data["from"], e.data["to"]) for e in events if e.kind == "unit"]
    assert moves[:2] == [("IDLE", "EXECUTE"), ("EXECUTE", "IDLE")]  # started, then held
    assert unit_rig.bus.values["run"] == 0  # the hold stopped it
    assert phase_log(events)[:2] == [("mix/batch/start", "start"),
                                     ("mix/batch/start", "complete")]


async def test_a_command_the_unit_refuses_fails_the_phase(unit_rig: Rig) -> None:
    ex = unit_rig.executor
    ex.submit(stir(phase("start", CommandAction("agitator", "UNHOLD"),
                         on_failure=FailureRule("abort"))))
    unit_rig.stop_when = lambda e: e.state is ProcState.ABORTED
    await unit_rig.run(10)
    events = unit_rig.events()
    refused = [e.data for e in events if e.kind == "command" and e.subject == "agitator"]
    assert refused[0]["command"] == "UNHOLD" and refused[0]["accepted"] is False
    failed = [e.data["reason"] for e in events
              if e.kind == "phase" and e.data["event"] == "failed"]
    assert "unit agitator" in str(failed[0]) and "UNHOLD refused" in str(failed[0])
    assert unit_rig.bus.values.get("run", 0) == 0


async def test_submit_needs_the_units_of_the_recipe(rig: Rig) -> None:
    with pytest.raises(RecipeError, match="unit agitator is needed but the line has no units"):
        rig.executor.submit(recipe(phase("x"), unit="agitator"))


async def test_recover_closes_a_batch_that_had_reached_a_final_state(line_path: Path,
                                                                     tmp_path: Path) -> None:
    first = Rig(line_path, tmp_path / "b.db")
    first.executor.submit(recipe(phase("x", write(temp_sp="999"),
                                       on_failure=FailureRule("abort"))))
    first.stop_when = lambda e: e.state is ProcState.ABORTED
    await first.run(10)  # aborted, and smartline stops before anyone resets it
    first.journal.close()
    again = Rig(line_path, tmp_path / "b.db")
    said = again.executor.recover()
    assert len(said) == 1 and "had reached ABORTED" in said[0]
    summary = again.journal.batches()[0]
    assert summary.state == "ABORTED" and summary.ended_ns is not None
    assert [b.id for b in again.executor.finished()] == [summary.id]
    assert [e.subject for e in again.events() if e.kind == "batch"] == ["start", "end"]
    again.journal.close()


async def test_an_equipment_tag_going_bad_is_one_alarm_each_way(rig: Rig) -> None:
    rig.executor.submit(recipe(phase("run", wait("10"))))
    rig.script = [(1.0, lambda: setattr(rig.bus, "garbage", True)),
                  (2.0, lambda: setattr(rig.bus, "garbage", False))]
    rig.stop_when = finished  # the device is demoted (polled every 5 s) until it answers
    await rig.run(20)
    temp = [str(e.data["message"]) for e in rig.events(kind="alarm") if e.subject == "temp"]
    assert len(temp) == 2
    assert temp[0].startswith("temp is BAD: ") and "garbage" in temp[0]
    assert temp[1] == "temp is no longer BAD (good)"
    assert rig.journal.batches()[0].state == "COMPLETE"


# --- recipes from files (the loader) --------------------------------------------------------------

RECIPE_FILE = """\
smartline-recipe: 1
recipe: mix-file
version: "1"
product: paint base
line: mixer
parameters:
  soak_temp: {unit: degC, default: 120, limits: [20, 250]}
  hold_s: {unit: s, default: 4, limits: [0, 60]}
equipment: {devices: [plc], tags: [temp, temp_sp]}
on_restart: resume
procedure:
  - unit_procedure: mix
    operations:
      - operation: heat
        phases:
          - phase: set
            actions: [{write: {temp_sp: soak_temp, valve: true}}]
          - phase: reach
            until: "abs(temp - soak_temp) <= 2"
            timeout_s: 30
          - phase: hold
            actions: [{wait_s: hold_s}]
      - operation: finish
        phases:
          - parallel:
              - - phase: close
                  actions: [{write: {valve: false}}]
              - - phase: slow
                  actions: [{write: {speed: "soak_temp * 2"}}]
"""


@pytest.fixture
def recipe_file(tmp_path: Path) -> Path:
    p = tmp_path / "mix-file.yaml"
    p.write_text(RECIPE_FILE, encoding="utf-8")
    return p


async def test_a_recipe_file_runs_as_loaded(rig: Rig, recipe_file: Path) -> None:
    loaded = load_recipe(recipe_file, line=rig.config)
    rig.executor.submit(loaded, {"soak_temp": "140"})  # CLI text, converted by the loader
    rig.stop_when = finished
    await rig.run(30)
    (summary,) = rig.journal.batches()
    assert summary.state == "COMPLETE" and summary.parameters["soak_temp"] == 140.0
    start = rig.events(kind="batch")[0]
    assert start.data["source"] == str(recipe_file) and start.data["digest"] == loaded.digest
    assert [p for p, e in phase_log(rig.events()) if e == "complete"][:3] == [
        "mix/heat/set", "mix/heat/reach", "mix/heat/hold"]
    assert rig.bus.values["speed"] == pytest.approx(280)


async def test_recover_resumes_with_the_recipe_file_it_recorded(line_path: Path,
                                                                tmp_path: Path,
                                                                recipe_file: Path) -> None:
    first = Rig(line_path, tmp_path / "b.db")
    first.executor.submit(load_recipe(recipe_file, line=first.config))
    first.stop_when = lambda e: "mix/heat/hold" in e.progress().active
    await first.run(30)  # killed while holding
    first.journal.close()
    again = Rig(line_path, tmp_path / "b.db")
    said = again.executor.recover()  # no recipe given: loaded from the recorded file
    assert "resumed from mix/heat/hold" in said[0]
    again.stop_when = finished
    await again.run(30)
    assert again.journal.batches()[0].state == "COMPLETE"
    steps = phase_log(again.events())
    assert steps.count(("mix/heat/set", "start")) == 1
    assert steps.count(("mix/heat/hold", "start")) == 2
    again.journal.close()


async def test_recover_aborts_when_the_recorded_file_changed(line_path: Path, tmp_path: Path,
                                                             recipe_file: Path) -> None:
    first = Rig(line_path, tmp_path / "b.db")
    first.executor.submit(load_recipe(recipe_file, line=first.config))
    await first.run(1)
    first.journal.close()
    recipe_file.write_text(RECIPE_FILE.replace("default: 4", "default: 5"), encoding="utf-8")
    again = Rig(line_path, tmp_path / "b.db")
    said = again.executor.recover()
    assert "could not resume" in said[0] and "changed since the batch began" in said[0]
    assert again.journal.batches()[0].state == "ABORTED"
    again.journal.close()
