"""Budgets for users' CI: the checks, the marker and fixture of the pytest plugin."""

from __future__ import annotations

from pathlib import Path

import pytest

from smartline.cycle import EngineStats, IoCounters, SeriesStats, TaskStats
from smartline.testing.budget import (
    Budget,
    BudgetExceededError,
    allocations,
    assert_budget,
    assert_requests_per_cycle,
    check_budget,
)

pytest_plugins = ["pytester"]

US = 1000


def stats(p99_cycle_us: float = 100, p99_late_us: float = 20, overruns: int = 0,
          requests: int = 2, state: str = "stopped", cycles: int = 100) -> EngineStats:
    def series(p99_us: float) -> SeriesStats:
        return SeriesStats(100, 1, 1.0, 1, round(p99_us * US), round(p99_us * US),
                           round(p99_us * US))

    t = TaskStats(name="fast", period_ns=10_000_000, overrun_policy="skip", state=state,
                  cycles=cycles, overruns=overruns, skipped=0, max_overruns_in_row=overruns,
                  timing={"cycle": series(p99_cycle_us), "lateness": series(p99_late_us),
                          "inputs": series(1), "logic": series(1), "outputs": series(1)},
                  io=IoCounters(), read_requests_planned=requests,
                  fault="watchdog: x" if state == "faulted" else None)
    return EngineStats(line="l", clock="monotonic", started_ns=0, elapsed_s=1.0,
                       tasks={"fast": t})


def test_check_budget_lists_every_violation() -> None:
    s = stats(p99_cycle_us=900, p99_late_us=400, overruns=3, requests=7)
    problems = check_budget(s, Budget(p99_cycle_us=500, p99_lateness_us=300, max_overruns=0,
                                      max_requests_per_cycle=4))
    assert len(problems) == 4
    assert "task fast: p99 cycle time 900 µs > budget 500 µs" in problems
    assert check_budget(s, Budget(max_overruns=None)) == []
    assert check_budget(s, Budget(task="nope")) == ["no task 'nope'; tasks: fast"]
    with pytest.raises(BudgetExceededError, match="overruns 3 > budget 0"):
        assert_budget(s)
    with pytest.raises(BudgetExceededError, match="requests per cycle 7 > budget 4"):
        assert_requests_per_cycle(s, 4)
    with pytest.raises(BudgetExceededError, match="faulted"):
        assert_budget(stats(state="faulted"), max_overruns=None)
    with pytest.raises(TypeError, match="unknown budget limit"):
        assert_budget(s, p99_cycle=1)


def test_a_task_that_never_ran_breaks_every_budget() -> None:
    assert check_budget(stats(cycles=0), Budget(max_overruns=None)) == [
        "task fast: task never ran (0 cycles)"]
    with pytest.raises(BudgetExceededError, match="never ran"):
        assert_budget(stats(cycles=0))


def test_run_line_for_raises_what_stopped_the_line_before_it_ran(tmp_path: Path) -> None:
    from smartline.cycle import ProgramError
    from smartline.testing.budget import run_line_for

    (tmp_path / "logic.py").write_text(
        "from smartline.cycle import program\n\n\n"
        "@program(inputs=['level'], outputs=['valve'])\n"
        "def broken(now_ns, inputs, outputs, state):\n"
        "    outputs[0] = inputs.nope\n", encoding="utf-8")
    line = tmp_path / "line.yaml"
    line.write_text(
        "smartline: 1\nline: b\ndevices:\n  plc: {url: \"memory://b\"}\ntags:\n"
        "  level: {device: plc, address: level}\n"
        "  valve: {device: plc, address: \"valve:bool\", access: rw, safe: false}\n"
        "tasks:\n  fast: {period_ms: 10, program: \"logic.py:broken\"}\n",
        encoding="utf-8")
    with pytest.raises(ProgramError):
        run_line_for(line, cycles=5)


def test_allocations_are_counted_in_the_kernel_only() -> None:
    import numpy as np
    from numba import njit

    @njit
    def allocates(a):  # type: ignore[no-untyped-def]
        return (a * 2.0).sum()

    @njit
    def in_place(a):  # type: ignore[no-untyped-def]
        for i in range(a.shape[0]):
            a[i] *= 2.0

    a = np.ones(4)
    assert allocations(allocates, a) >= 1
    assert allocations(in_place, a) == 0


PLUGIN_TEST = '''
import pytest

LINE = {line!r}


@pytest.mark.cycle_budget(p99_cycle_us=50_000, p99_lateness_us=50_000, max_overruns=20)
def test_within(cycle_budget):
    stats = cycle_budget.run(LINE, cycles=20)
    assert stats["fast"].cycles == 20
    assert cycle_budget.budget().p99_cycle_us == 50_000 * {scale}


@pytest.mark.cycle_budget(max_requests_per_cycle=0)
def test_over(cycle_budget):
    cycle_budget.run(LINE, cycles=3)


def test_unknown_limit(cycle_budget):
    with pytest.raises(TypeError):
        cycle_budget.run(LINE, cycles=3, p99=1)
'''

LINE = """\
smartline: 1
line: budget
devices:
  plc: {url: "memory://budget"}
tags:
  a: {device: plc, address: a}
tasks:
  fast: {period_ms: 10, tags: [a]}
"""


def test_plugin_marker_and_fixture(pytester: pytest.Pytester, tmp_path: Path) -> None:
    line = tmp_path / "line.yaml"
    line.write_text(LINE, encoding="utf-8")
    pytester.makepyfile(PLUGIN_TEST.format(line=str(line), scale=2.0))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--cycle-budget-scale",
                                           "2", "-q")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*requests per cycle 1 > budget 0*"])
