"""The example recipes against the example lines and their HIL plants, in virtual time.

The line talks to the scenario's simulated devices over loopback (Modbus/TCP, MTConnect,
GRBL on a pty); the recipe executor and the line's PackML units run as services of the
cycle engine, as ``smartline recipe run`` runs them. Each test checks the batch record.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from smartline.config import load_line
from smartline.core import MonotonicClock, VirtualClock
from smartline.cycle import Engine, EngineStats
from smartline.hil.grbl import GrblController, GrblSim
from smartline.hil.scenario import Scenario, ScenarioRunner
from smartline.line import Line
from smartline.recipes._executor import RecipeExecutor
from smartline.recipes._journal import BatchEvent, BatchJournal
from smartline.recipes._load import load_recipe
from smartline.recipes._model import (
    Equipment,
    FailureRule,
    Operation,
    Phase,
    ProgramAction,
    Recipe,
    UnitProcedure,
)
from smartline.recipes._units import UnitRuntime
from smartline.recipes.expr import parse
from smartline.recipes.procedural import ProcCommand, ProcState
from smartline.run import build_engine, line_units, sim_device_urls, with_device_urls

ROOT = Path(__file__).resolve().parents[3]
RECIPES = ROOT / "recipes"
SCENARIOS = ROOT / "hil_sim" / "scenarios"
STEP_NS = 100_000_000


@dataclass
class Run:
    """What a run left: the journal (open), the executor, the engine's statistics."""

    journal: BatchJournal
    executor: RecipeExecutor
    stats: EngineStats
    plant_s: float
    said: list[str] = field(default_factory=list)

    def events(self, batch: str, kind: str | None = None) -> list[BatchEvent]:
        return [e for e in self.journal.events(batch) if kind is None or e.kind == kind]


async def run_recipes(line_file: str, scenario_file: str, recipes: Sequence[str],
                      journal_path: Path, *, params: Mapping[str, object] | None = None,
                      max_s: float = 600.0,
                      script: Sequence[tuple[Callable[[RecipeExecutor], bool],
                                             Callable[[RecipeExecutor], None]]] = (),
                      stop_when: Callable[[RecipeExecutor], bool] | None = None) -> Run:
    """Run ``recipes`` one after the other on the line against the scenario (virtual time).

    ``script``: (condition, action) pairs, each action done once, in order, at the first
    step its condition holds. The run ends when ``stop_when`` holds (default: every batch
    ended), or after ``max_s`` of plant time.
    """
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    config, units = line_units(load_line(RECIPES / line_file))
    loaded = [load_recipe(RECIPES / r, line=config, units=units) for r in recipes]
    clock = VirtualClock()
    journal = BatchJournal(journal_path, clock=clock)
    scenario = Scenario.load(SCENARIOS / scenario_file)
    pending = list(script)
    async with ScenarioRunner(scenario, clock=clock, trace=False) as runner:
        cfg = with_device_urls(config, sim_device_urls(config, runner.urls()))
        line: Line
        engine: Engine
        line, engine = build_engine(cfg, clock=clock, on_advance=[runner.advance_to])
        runtime = None
        if units is not None:
            runtime = UnitRuntime(units, line, clock=clock)
            engine.add_service("units", STEP_NS, runtime.step)
        executor = RecipeExecutor(line, units=runtime, journal=journal, clock=clock,
                                  alarms=engine.alarms)
        said = executor.recover()
        for r in loaded:
            executor.submit(r, params)
        done = stop_when or (lambda ex: ex.idle)

        async def step(now_ns: int) -> None:
            await executor.step(now_ns)
            while pending and pending[0][0](executor):
                pending.pop(0)[1](executor)
            if done(executor):
                engine.stop()

        engine.add_service("recipe", STEP_NS, step)
        try:
            stats = await engine.run(duration_s=max_s)
        finally:
            await executor.aclose()
            if runtime is not None:
                await runtime.aclose()
            await line.close()
        plant_s = runner.time_ns / 1e9
    return Run(journal, executor, stats, plant_s, said)


def phases(events: Sequence[BatchEvent]) -> list[tuple[str, str]]:
    return [(e.subject, str(e.data["event"])) for e in events if e.kind == "phase"]


def states(events: Sequence[BatchEvent]) -> list[str]:
    return [str(e.data["to"]) for e in events if e.kind == "state"]


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    return tmp_path / "batches.db"


# --- heat treatment -----------------------------------------------------------------------------

HEAT_PHASES = ["temper/heat/set_points", "temper/heat/reach", "temper/soak/soak",
               "temper/cool/lower_set_points", "temper/cool/wait_cool"]


async def test_heat_treat_42crmo4_completes_with_its_batch_record(journal_path: Path) -> None:
    run = await run_recipes("heat-treatment.yaml", "heat-treatment.yaml",
                            ["heat-treat-42crmo4.yaml"], journal_path)
    try:
        (summary,) = run.journal.batches()
        assert (summary.recipe, summary.version, summary.state) == (
            "heat-treat-42crmo4", "3", "COMPLETE")
        assert summary.on_restart == "resume" and len(summary.digest) == 64
        events = run.events(summary.id)
        assert states(events) == ["RUNNING", "COMPLETE"]
        assert phases(events) == [(p, e) for p in HEAT_PHASES for e in ("start", "complete")]
        params = {e.subject: e.data for e in events if e.kind == "parameter"}
        assert params["temper_c"] == {"value": 200.0, "unit": "degC"}
        assert params["soak_s"] == {"value": 20.0, "unit": "s"}
        assert len(params) == 8
        writes = [(e.subject, e.data["value"], e.data["outcome"]) for e in events
                  if e.kind == "write"]
        assert sorted(writes[:3]) == [("zone1.sp", 190.0, "ok"), ("zone2.sp", 200.0, "ok"),
                                      ("zone3.sp", 200.0, "ok")]
        assert sorted(writes[3:]) == [(f"zone{i}.sp", 40.0, "ok") for i in (1, 2, 3)]
        at = {(e.subject, e.data["event"]): e.plant_ns / 1e9 for e in events
              if e.kind == "phase"}
        soak = at[("temper/soak/soak", "complete")] - at[("temper/soak/soak", "start")]
        assert 20.0 <= soak <= 20.0 + 0.2
        heat = at[("temper/heat/reach", "complete")] - at[("temper/heat/reach", "start")]
        assert 1.0 < heat < 120.0  # the furnace really heated (PID loops against the plant)
        assert run.executor.idle and [b.id for b in run.executor.finished()] == [summary.id]
        task = run.stats.tasks["control"]
        assert task.overruns == 0 and task.cycles >= 10 * (run.plant_s - 1)
    finally:
        run.journal.close()


async def test_a_reach_timeout_holds_then_abort_and_reset_end_the_batch(
        journal_path: Path) -> None:
    # 400 degC cannot be reached in 10 s: the reach phase times out and holds the procedure;
    # the operator aborts, then resets (Abort/Clear)
    script = [
        (lambda ex: ex.state is ProcState.HELD,
         lambda ex: ex.command(ProcCommand.ABORT, source="operator")),
        (lambda ex: ex.state is ProcState.ABORTED,
         lambda ex: ex.command(ProcCommand.RESET, source="operator")),
    ]
    run = await run_recipes("heat-treatment.yaml", "heat-treatment.yaml",
                            ["heat-treat-42crmo4.yaml"], journal_path,
                            params={"temper_c": 400, "heat_timeout_s": 10}, script=script,
                            stop_when=lambda ex: ex.batch is None and ex.state is ProcState.IDLE,
                            max_s=60)
    try:
        (summary,) = run.journal.batches()
        assert summary.state == "ABORTED" and summary.ended_ns is not None
        events = run.events(summary.id)
        assert states(events) == ["RUNNING", "HOLDING", "HELD", "ABORTING", "ABORTED", "IDLE"]
        failed = [e for e in events if e.kind == "phase" and e.data["event"] == "failed"]
        assert failed[0].subject == "temper/heat/reach"
        assert str(failed[0].data["reason"]).startswith("timeout after 10 s: until")
        start = next(e for e in events if e.subject == "temper/heat/reach")
        assert 10.0 <= (failed[0].plant_ns - start.plant_ns) / 1e9 <= 10.2
        commands = [(e.data["command"], e.data["source"]) for e in events
                    if e.kind == "command"]
        assert commands == [("START", "submit"), ("HOLD", "on_failure:temper/heat/reach"),
                            ("ABORT", "operator"), ("RESET", "operator")]
    finally:
        run.journal.close()



async def test_an_operator_hold_during_the_soak_and_restart(journal_path: Path) -> None:
    held_at: list[int] = []

    def soaking(ex: RecipeExecutor) -> bool:
        return "temper/soak/soak" in ex.progress().active and ex.progress().elapsed_s > 0

    def held_5s(ex: RecipeExecutor) -> bool:
        if ex.state is ProcState.HELD and not held_at:
            held_at.append(ex.clock.now_ns())
        return bool(held_at) and ex.clock.now_ns() - held_at[0] >= 5e9

    script = [(soaking, lambda ex: ex.command(ProcCommand.HOLD, source="operator")),
              (held_5s, lambda ex: ex.command(ProcCommand.RESTART, source="operator"))]
    run = await run_recipes("heat-treatment.yaml", "heat-treatment.yaml",
                            ["heat-treat-42crmo4.yaml"], journal_path, script=script)
    try:
        (summary,) = run.journal.batches()
        assert summary.state == "COMPLETE"
        events = run.events(summary.id)
        assert states(events) == ["RUNNING", "HOLDING", "HELD", "RESTARTING", "RUNNING",
                                  "COMPLETE"]
        assert phases(events) == [(p, e) for p in HEAT_PHASES for e in ("start", "complete")]
        at = {(e.subject, e.data["event"]): e.plant_ns / 1e9 for e in events
              if e.kind == "phase"}
        soak = at[("temper/soak/soak", "complete")] - at[("temper/soak/soak", "start")]
        assert 25.0 <= soak <= 25.5  # 20 s of soak, the hold (5 s and the steps around it)
    finally:
        run.journal.close()

# --- programs: a G-code file streamed to a GRBL controller ---------------------------------------

def program_recipe(on_failure: FailureRule) -> Recipe:
    ph = Phase("engrave", (ProgramAction("router", RECIPES / "programs" / "bracket.nc"),),
               timeout_s=parse("60"), on_failure=on_failure)
    return Recipe(name="engrave", version="1", product="bracket", line="router-cell",
                  parameters=(), equipment=Equipment(devices=("router",)),
                  procedure=(UnitProcedure("cut", (Operation("engrave", (ph,)),)),),
                  source=RECIPES / "cnc-bracket.yaml", digest="0" * 64)


async def run_program(tmp_path: Path, sim: GrblSim, on_failure: FailureRule) -> Run:
    """Run the one-phase program recipe in real time over a GRBL simulator on a pty."""
    line_file = tmp_path / "router.yaml"
    line_file.write_text(
        "smartline: 1\nline: router-cell\ndevices:\n"
        f"  router: {{url: \"{sim.url}\", profile: grbl/grbl-1.1, points: [state, alarm]}}\n",
        encoding="utf-8")
    clock = MonotonicClock()
    line = Line(load_line(line_file), clock=clock)
    journal = BatchJournal(tmp_path / "batches.db", clock=clock)
    executor = RecipeExecutor(line, units=None, journal=journal, clock=clock)
    executor.submit(program_recipe(on_failure))
    try:
        async with asyncio.timeout(60):
            while not executor.idle:
                await executor.step(clock.now_ns())
                await asyncio.sleep(0.02)
    finally:
        await executor.aclose()
        await line.close()
    return Run(journal, executor, None, 0.0)  # type: ignore[arg-type]


async def test_a_program_phase_ends_when_the_job_has_streamed(tmp_path: Path) -> None:
    with GrblSim(GrblController(VirtualClock()), fast_forward=True) as sim:
        run = await run_program(tmp_path, sim, FailureRule("abort"))
        lines = sim.controller.lines_received
    try:
        (summary,) = run.journal.batches()
        assert summary.state == "COMPLETE"
        assert phases(run.events(summary.id)) == [("cut/engrave/engrave", "start"),
                                                  ("cut/engrave/engrave", "complete")]
        assert lines >= 22  # every line of bracket.nc reached the controller
    finally:
        run.journal.close()


async def test_a_job_alarm_fails_the_program_phase(tmp_path: Path) -> None:
    with GrblSim(GrblController(VirtualClock()), fast_forward=True) as sim:
        sim.faults.alarm_on, sim.faults.alarm_code = "G1Y30.000", 1  # a hard limit
        run = await run_program(tmp_path, sim, FailureRule("abort"))
    try:
        (summary,) = run.journal.batches()
        events = run.events(summary.id)
        failed = [e for e in events if e.kind == "phase" and e.data["event"] == "failed"]
        reason = str(failed[0].data["reason"])
        assert "program bracket.nc on router" in reason and "ALARM:1" in reason
        assert "bracket.nc:12" in reason  # the file line that tripped it
        assert states(events) == ["RUNNING", "ABORTING", "ABORTED"]
    finally:
        run.journal.close()


# --- the machining cell: a GRBL program in lock-step with virtual time ---------------------------

CNC_PHASES = ["engrave/engrave/ready", "engrave/engrave/program", "engrave/engrave/done"]


async def test_cnc_bracket_on_the_cnc_cell_completes_in_virtual_time(
        journal_path: Path) -> None:
    # the router's GRBL answers only when the line sends bytes (lock-step): the ok of M30,
    # due when the last move ends, must still reach the job, and the program phase end
    run = await run_recipes("cnc-cell.yaml", "cnc-cell.yaml", ["cnc-bracket.yaml"],
                            journal_path, max_s=300)
    try:
        (summary,) = run.journal.batches()
        assert (summary.recipe, summary.state) == ("cnc-bracket", "COMPLETE")
        events = run.events(summary.id)
        assert states(events) == ["RUNNING", "COMPLETE"]
        done = phases(events)
        for p in CNC_PHASES:
            assert done.count((p, "start")) == 1 and done.count((p, "complete")) == 1, done
        assert not [e for e in done if e[1] == "failed"]
        at = {(e.subject, e.data["event"]): e.plant_ns / 1e9 for e in events
              if e.kind == "phase"}
        program_s = (at[("engrave/engrave/program", "complete")]
                     - at[("engrave/engrave/program", "start")])
        # bracket.nc takes about 26 s of motion at its feeds: it really ran, and in virtual
        # time the phase ends with the first status request after the last move
        assert 20.0 < program_s < 40.0
        assert run.plant_s < 120.0
    finally:
        run.journal.close()
