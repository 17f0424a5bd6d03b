"""pytest plugin of smartline (cycle-time budgets): registered as the pytest11 entry point.

A fixture that runs a line and fails the test when it breaks its budget, with defaults from
a marker::

    @pytest.mark.cycle_budget(p99_cycle_us=800, p99_lateness_us=500, max_overruns=0)
    def test_line_keeps_time(cycle_budget):
        stats = cycle_budget.run("recipes/line.yaml", cycles=2000)
        assert stats["fast"].cycles == 2000

``cycle_budget.check(stats, **limits)`` checks statistics of an engine the test ran itself.
``--cycle-budget-scale F`` (or ``SMARTLINE_BUDGET_SCALE``) multiplies every time limit, for
slow CI runners; counts (overruns, requests per cycle) are never scaled.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # imported when used: the plugin loads in every pytest run
    from ..cycle import EngineStats
    from .budget import Budget

__all__ = ["CycleBudget"]

_TIME_LIMITS = ("p99_cycle_us", "p99_lateness_us", "p99_9_cycle_us")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("smartline")
    group.addoption("--cycle-budget-scale", type=float, default=None,
                    help="multiply every cycle-time budget by this factor (slow CI runners); "
                         "default $SMARTLINE_BUDGET_SCALE or 1")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "cycle_budget(**limits): default limits for the cycle_budget fixture "
                   "(p99_cycle_us, p99_lateness_us, p99_9_cycle_us, max_overruns, max_skipped, "
                   "max_requests_per_cycle, min_cycles, task)")


class CycleBudget:
    """Runs lines and checks their statistics against a budget (the marker's, then keywords)."""

    def __init__(self, defaults: Mapping[str, Any], scale: float) -> None:
        self.defaults = dict(defaults)
        self.scale = scale
        self.last: EngineStats | None = None

    def budget(self, **limits: Any) -> Budget:
        """The effective budget: marker limits, overridden by ``limits``, times the scale."""
        from .budget import Budget

        b = Budget.from_kwargs({**self.defaults, **limits})
        if self.scale != 1.0:
            b = replace(b, **{k: getattr(b, k) * self.scale for k in _TIME_LIMITS
                              if getattr(b, k) is not None})
        return b

    def check(self, stats: EngineStats, **limits: Any) -> EngineStats:
        """Fail (``BudgetExceededError``, an AssertionError) if ``stats`` break the budget."""
        from .budget import assert_budget

        self.last = stats
        assert_budget(stats, self.budget(**limits))
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
    """Run a line and fail the test when it breaks its cycle-time budget."""
    marker = request.node.get_closest_marker("cycle_budget")
    defaults: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    if marker is not None and marker.args:
        raise pytest.UsageError("cycle_budget takes keyword limits only, e.g. "
                                "@pytest.mark.cycle_budget(p99_cycle_us=500)")
    opt = request.config.getoption("--cycle-budget-scale")
    scale = float(opt if opt is not None else os.environ.get("SMARTLINE_BUDGET_SCALE", "1"))
    return CycleBudget(defaults, scale)
