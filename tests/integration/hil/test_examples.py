"""The three example lines against their HIL scenarios in virtual time: each scenario meets
every expected outcome (plant values, alarms, tags going bad and good again) and each line
keeps its cycle through the faults (every task runs its planned cycles, no overrun, no
fault). Every file in hil_sim/ and the example lines pass ``smartline check``."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from smartline.config import KINDS, check_file
from smartline.hil.scenario import FILE_KINDS
from smartline.run import run_line_sim

ROOT = Path(__file__).resolve().parents[3]
RECIPES = ROOT / "recipes"
SCENARIOS = ROOT / "hil_sim" / "scenarios"

# (line, scenario, plant seconds): the nominal run and the faults of each example line
EXAMPLES = [
    ("bottling-line.yaml", "bottling.yaml", 60),
    ("bottling-line.yaml", "bottling-faults.yaml", 90),
    ("heat-treatment.yaml", "heat-treatment.yaml", 30),
    ("heat-treatment.yaml", "heat-treatment-faults.yaml", 60),
    ("cnc-cell.yaml", "cnc-cell.yaml", 60),
    ("cnc-cell.yaml", "cnc-cell-faults.yaml", 75),
]

_EXPECT = re.compile(r"^expect: (PASS|FAIL) (.*)$", re.M)


@pytest.fixture(autouse=True)
def _quiet() -> Iterator[None]:
    """Quiet the libraries for these tests only: levels are restored afterwards, so later
    tests that capture smartline's log records still get them."""
    loggers = [logging.getLogger(n) for n in ("asyncua", "pymodbus", "snap7", "smartline")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    yield
    for lg, level in zip(loggers, levels, strict=True):
        lg.setLevel(level)


@pytest.mark.parametrize(("line", "scenario", "duration_s"), EXAMPLES,
                         ids=[s.removesuffix(".yaml") for _, s, _ in EXAMPLES])
def test_example_line_meets_its_scenario_in_virtual_time(
        line: str, scenario: str, duration_s: int, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    stats_path = tmp_path / "stats.json"
    code = run_line_sim(RECIPES / line, SCENARIOS / scenario, virtual=True,
                        duration_s=duration_s, stats_path=stats_path)
    err = capsys.readouterr().err
    results = _EXPECT.findall(err)
    assert results, f"no expectation was reported:\n{err}"
    failed = [text for verdict, text in results if verdict == "FAIL"]
    assert not failed, "\n".join(failed)
    assert code == 0, err
    stats = json.loads(stats_path.read_text())
    for name, task in stats["tasks"].items():
        planned = round(duration_s * 1000 / task["period_ms"])
        assert task["state"] != "faulted" and task["fault"] is None, (name, task["fault"])
        assert task["overruns"] == 0 and task["skipped"] == 0, (name, task)
        assert planned - 1 <= task["cycles"] <= planned + 1, (name, task["cycles"], planned)


def test_fault_scenarios_mark_tags_bad_and_good_again() -> None:
    """Every fault scenario expects, of the line, at least one tag going bad and coming back."""
    from smartline.hil.scenario import Scenario

    for _, name, _ in EXAMPLES:
        if "faults" not in name:
            continue
        tags = [x for x in Scenario.load(SCENARIOS / name).expect if x.subject == "tag"]
        bad = {x.name for x in tags if x.goes == "bad"}
        good = {x.name for x in tags if x.goes == "good"}
        assert bad and bad <= good, (name, bad, good)


HIL_FILES = sorted((ROOT / "hil_sim").rglob("*.yaml"))
LINES = sorted(RECIPES.glob("*.yaml"))  # line files and recipes: `smartline check` takes both


@pytest.mark.parametrize("path", HIL_FILES + LINES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_hil_file_and_example_line_passes_check(path: Path) -> None:
    """What ``smartline check FILE`` does (a ConfigError would list the problems)."""
    from smartline.recipes import FILE_KINDS as RECIPE_KINDS

    summary = check_file(path, kinds={**KINDS, **FILE_KINDS, **RECIPE_KINDS})
    assert path.name in summary


def test_bottling_program_stops_the_belt_for_good_after_a_trip() -> None:
    """The bottling line's control program on its own (BAD inputs reach it as NaN)."""
    import numpy as np

    from smartline.demo.bottling import RUN_WORD, SPEED_RPM, STOP_WORD, bottling

    state = bottling.new_state()
    inputs = np.array([0.0])
    outputs = np.full(2, np.nan)
    bottling(0, inputs, outputs, state)
    assert list(outputs) == [RUN_WORD, SPEED_RPM]
    inputs[0] = np.nan  # the drive does not answer: keep running
    bottling(100_000_000, inputs, outputs, state)
    assert outputs[0] == RUN_WORD
    inputs[0] = 1.0  # tripped
    bottling(200_000_000, inputs, outputs, state)
    assert outputs[0] == STOP_WORD
    inputs[0] = 0.0  # reset at the drive: the belt stays stopped
    bottling(300_000_000, inputs, outputs, state)
    assert outputs[0] == STOP_WORD
