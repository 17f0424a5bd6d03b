"""pytest plugin of smartline: registered as the ``pytest11`` entry point ``smartline``.

Fixtures (see docs/reference/testing.md):

* ``smartline_scenario(path, virtual=True)`` starts a scenario's simulated devices and yields
  its :class:`~smartline.hil.scenario.ScenarioRunner`; stopped (ports free) at teardown;
* ``smartline_line(line, scenario)`` runs a line against a scenario in virtual time,
  lock-step: a :class:`~smartline.testing.sim.SimLine` with ``run_for(seconds)``, ``tags``,
  ``stats()``, ``line``, ``engine``, ``runner``; after the test, every scenario expectation
  whose window closed must have passed (the failure lists them all);
* ``tag_trace(sim, tags)`` records tags' value, quality and time every cycle
  (:class:`~smartline.testing.traces.TagTrace`; compare with ``assert_traces_match``);
* ``cycle_budget`` runs a line in real time and checks its budget (``cycle_budget.run``).

The ``cycle_budget`` marker is checked after the test against every line the test ran with
``smartline_line``::

    @pytest.mark.cycle_budget(task="control", overruns=0, cycles=600)
    def test_tank(smartline_line):
        smartline_line("line.yaml", "hil_sim/scenarios/tank-demo.yaml").run_for(60)

In virtual time cycle times are 0 (the virtual clock does not move during a cycle): there,
budget the deterministic counts (overruns, skipped, cycles, requests per cycle). Time limits
(``p99_ms``, ``max_ms``) are for real-time runs (``cycle_budget.run``) and need margins that
cannot flake on a shared runner: ``--cycle-budget-scale F`` (or ``SMARTLINE_BUDGET_SCALE``)
multiplies every time limit; counts are never scaled.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # imported when used: the plugin loads in every pytest run
    from ..cycle import EngineStats
    from ..hil.scenario import ScenarioRunner
    from .budget import Budget
    from .sim import LoopThread, SimLine
    from .traces import TagTrace

__all__ = ["CycleBudget", "MarkerBudget", "marker_budget"]

_TIME_LIMITS = ("p99_cycle_us", "p99_lateness_us", "p99_9_cycle_us")
#: the marker's short names -> (Budget field, factor to its unit)
_ALIASES: dict[str, tuple[str, float]] = {
    "p99_ms": ("p99_cycle_us", 1000.0),
    "p99_9_ms": ("p99_9_cycle_us", 1000.0),
    "lateness_p99_ms": ("p99_lateness_us", 1000.0),
    "overruns": ("max_overruns", 1.0),
    "skipped": ("max_skipped", 1.0),
    "cycles": ("min_cycles", 1.0),
    "requests_per_cycle": ("max_requests_per_cycle", 1.0),
}
_SIMS = pytest.StashKey[list["SimLine"]]()
_MARKER_HELP = (
    "cycle_budget(task=None, p99_ms=, p99_9_ms=, max_ms=, lateness_p99_ms=, overruns=0, "
    "skipped=, cycles=, requests_per_cycle=; or the Budget names p99_cycle_us, ...): "
    "checked after the test against the statistics of every line run by smartline_line, "
    "and the defaults of the cycle_budget fixture. Counts are deterministic; time limits "
    "are 0 in virtual time and need margins in real time")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("smartline")
    group.addoption("--cycle-budget-scale", type=float, default=None,
                    help="multiply every cycle-time budget by this factor (slow CI runners); "
                         "default $SMARTLINE_BUDGET_SCALE or 1")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", _MARKER_HELP)


# -- budgets ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class MarkerBudget:
    """A :class:`~smartline.testing.budget.Budget` plus the limit it has no field for
    (the largest cycle time, ``max_ms``)."""

    budget: Budget
    max_cycle_us: float | None = None

    def problems(self, stats: EngineStats) -> list[str]:
        """Every limit ``stats`` exceed, naming the task and the figure."""
        from .budget import check_budget

        out = check_budget(stats, self.budget)
        if self.max_cycle_us is not None:
            names = [self.budget.task] if self.budget.task is not None else list(stats.tasks)
            for name in names:
                t = stats.tasks.get(name)
                if t is None:
                    continue
                value = t.timing["cycle"].max_ns / 1e3
                if value > self.max_cycle_us:
                    out.append(f"task {name}: max cycle time {value:g} µs > budget "
                               f"{self.max_cycle_us:g} µs")
        return out


def marker_budget(limits: Mapping[str, Any], scale: float = 1.0) -> MarkerBudget:
    """The budget of a marker's keywords (short names or Budget names), time limits times
    ``scale``; unknown names raise TypeError naming the known ones."""
    from .budget import Budget

    kwargs: dict[str, Any] = {}
    max_us: float | None = None
    for key, value in limits.items():
        if key == "max_ms":
            max_us = None if value is None else float(value) * 1000.0
        elif key in _ALIASES:
            field, factor = _ALIASES[key]
            kwargs[field] = value if value is None or factor == 1.0 else value * factor
        else:
            kwargs[key] = value
    try:
        b = Budget.from_kwargs(kwargs)
    except TypeError as exc:
        raise TypeError(f"{exc}; or the short names {', '.join(['max_ms', *_ALIASES])}"
                        ) from None
    if scale != 1.0:
        b = replace(b, **{k: getattr(b, k) * scale for k in _TIME_LIMITS
                          if getattr(b, k) is not None})
        max_us = None if max_us is None else max_us * scale
    return MarkerBudget(b, max_us)


def _scale(config: pytest.Config) -> float:
    opt = config.getoption("--cycle-budget-scale")
    return float(opt if opt is not None else os.environ.get("SMARTLINE_BUDGET_SCALE", "1"))


def _marker_limits(node: pytest.Item | pytest.FixtureRequest) -> dict[str, Any] | None:
    item = node.node if isinstance(node, pytest.FixtureRequest) else node
    marker = item.get_closest_marker("cycle_budget")
    if marker is None:
        return None
    if marker.args:
        raise pytest.UsageError("cycle_budget takes keyword limits only, e.g. "
                                "@pytest.mark.cycle_budget(task='control', p99_ms=2)")
    return dict(marker.kwargs)


class CycleBudget:
    """Runs lines and checks their statistics against a budget (the marker's, then keywords)."""

    def __init__(self, defaults: Mapping[str, Any], scale: float) -> None:
        self.defaults = dict(defaults)
        self.scale = scale
        self.last: EngineStats | None = None

    def budget(self, **limits: Any) -> Budget:
        """The effective budget: marker limits, overridden by ``limits``, times the scale."""
        return marker_budget({**self.defaults, **limits}, self.scale).budget

    def check(self, stats: EngineStats, **limits: Any) -> EngineStats:
        """Fail (``BudgetExceededError``, an AssertionError) if ``stats`` break the budget."""
        from .budget import BudgetExceededError

        self.last = stats
        problems = marker_budget({**self.defaults, **limits}, self.scale).problems(stats)
        if problems:
            raise BudgetExceededError("cycle budget exceeded:\n  " + "\n  ".join(problems))
        return stats

    def run(self, line: str | os.PathLike[str], *, cycles: int | None = None,
            duration_s: float | None = None, urls: Mapping[str, str] | None = None,
            profile_paths: tuple[Path, ...] = (), **limits: Any) -> EngineStats:
        """Run ``line`` in real time for ``cycles`` (fastest task) or ``duration_s``, then check."""
        from .budget import run_line_for

        self.budget(**limits)  # reject unknown limits before spending time running
        stats = run_line_for(line, cycles=cycles, duration_s=duration_s, urls=urls,
                             profile_paths=profile_paths)
        return self.check(stats, **limits)


@pytest.fixture
def cycle_budget(request: pytest.FixtureRequest) -> CycleBudget:
    """Run a line in real time and fail the test when it breaks its cycle-time budget."""
    return CycleBudget(_marker_limits(request) or {}, _scale(request.config))


# -- scenarios and lines ----------------------------------------------------------------------

def _resolve(request: pytest.FixtureRequest, path: str | os.PathLike[str]) -> Path:
    """``path`` as given if it exists (or is absolute), else under the rootdir, else next to
    the test file."""
    p = Path(path)
    if p.is_absolute() or p.exists():
        return p
    for base in (request.config.rootpath, request.path.parent):
        if (base / p).exists():
            return base / p
    return p


@pytest.fixture
def smartline_scenario(request: pytest.FixtureRequest
                       ) -> Iterator[Callable[..., ScenarioRunner]]:
    """Factory: ``smartline_scenario(path, virtual=True, trace=True)`` starts the scenario's
    devices on 127.0.0.1 and returns its running ScenarioRunner (``urls()``; in virtual time
    move the plant with ``run_for(ns)``). Every scenario started is stopped at teardown."""
    from .sim import start_scenario, stop_scenario

    started: list[tuple[ScenarioRunner, LoopThread]] = []

    def start(path: str | os.PathLike[str], *, virtual: bool = True,
              trace: bool = True) -> ScenarioRunner:
        runner, lt = start_scenario(_resolve(request, path), virtual=virtual, trace=trace)
        started.append((runner, lt))
        return runner

    yield start
    for runner, lt in reversed(started):
        stop_scenario(runner, lt)


@pytest.fixture
def smartline_line(request: pytest.FixtureRequest) -> Iterator[Callable[..., SimLine]]:
    """Factory: ``smartline_line(line, scenario, check_expectations=True)`` runs the line
    against the scenario in virtual time, paused at plant time 0; drive it with
    ``run_for(seconds)``. After the test the ``cycle_budget`` marker and (unless
    ``check_expectations=False``) the scenario's expectations are checked; at teardown
    line, devices and ports are freed."""
    from .sim import SimLine

    sims = request.node.stash.setdefault(_SIMS, [])
    mine: list[SimLine] = []

    def start(line: str | os.PathLike[str], scenario: str | os.PathLike[str], *,
              check_expectations: bool = True, profile_paths: Sequence[Path] = (),
              urls: Mapping[str, str] | None = None, trace: bool = False) -> SimLine:
        sim = SimLine(_resolve(request, line), _resolve(request, scenario),
                      profile_paths=profile_paths, urls=urls, trace=trace)
        sim.check_expectations = check_expectations
        sim.start()
        sims.append(sim)
        mine.append(sim)
        return sim

    yield start
    for sim in reversed(mine):
        sim.stop()


@pytest.fixture
def tag_trace(request: pytest.FixtureRequest) -> Iterator[Callable[..., TagTrace]]:
    """Factory: ``tag_trace(sim, tags=None, path=None)`` records ``tags`` (default all) of a
    running ``smartline_line`` every cycle: value, quality and time, one record per change.
    With ``path`` the trace is written there at teardown (and kept for a failed test)."""
    made: list[tuple[TagTrace, SimLine, Path | None]] = []

    def record(sim: SimLine | None = None, tags: Sequence[str] | None = None, *,
               path: str | os.PathLike[str] | None = None) -> TagTrace:
        if sim is None:
            sims = request.node.stash.get(_SIMS, [])
            if not sims:
                raise RuntimeError("tag_trace: start a line with smartline_line first, or "
                                   "pass it: tag_trace(sim, tags)")
            sim = sims[-1]
        rec = sim.record(tags)
        made.append((rec, sim, Path(path) if path is not None else None))
        return rec

    yield record
    for rec, sim, path in made:
        if path is not None:
            if rec.end_ns is None:
                rec.close(sim.time_ns)
            rec.write(path)


# -- after the test ---------------------------------------------------------------------------

@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    """Check the marker's budget and the scenario expectations once the test body passed."""
    __tracebackhide__ = True  # the failure is the test's, not the plugin's
    result = yield
    _check_after(item)
    return result


def _check_after(item: pytest.Item) -> None:
    __tracebackhide__ = True
    from .budget import BudgetExceededError
    from .sim import ExpectationsFailedError

    sims = [s for s in item.stash.get(_SIMS, []) if hasattr(s, "engine")]
    limits = _marker_limits(item)
    problems: list[str] = []
    if limits is not None:
        mb = marker_budget(limits, _scale(item.config))
        if not sims and "cycle_budget" not in getattr(item, "fixturenames", ()):
            raise BudgetExceededError("cycle_budget marker, but the test ran no line with "
                                      "smartline_line (nor used the cycle_budget fixture)")
        for sim in sims:
            problems += [f"line {sim.config.name}: {p}" for p in mb.problems(sim.stats())]
    if problems:
        raise BudgetExceededError("cycle budget exceeded:\n  " + "\n  ".join(problems))
    for sim in sims:
        if sim.check_expectations:
            text, failed = sim.expectations_report()
            if failed:
                raise ExpectationsFailedError(
                    f"scenario {sim.scenario.name} (line {sim.config.name}): an expectation "
                    f"failed; at {sim.time_s:g} s of plant time:\n{text}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item,
                              call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed test that ran lines against scenarios shows every expectation's state."""
    report: pytest.TestReport = yield
    if call.when == "call" and report.failed:
        for sim in item.stash.get(_SIMS, []):
            if not hasattr(sim, "engine"):
                continue
            try:
                text, _ = sim.expectations_report()
            except Exception as exc:  # the report must not hide the test's own failure
                text = f"(expectations unavailable: {exc!r})"
            report.sections.append(
                (f"smartline scenario {sim.scenario.name} expectations at "
                 f"{sim.time_s:g} s", text))
    return report
