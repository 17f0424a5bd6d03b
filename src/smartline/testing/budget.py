"""Cycle-time budgets for users' CI, and deterministic checks that cannot flake.

Timing budgets run a line in real time and compare its statistics with limits::

    stats = run_line_for(path, cycles=2000)
    assert_budget(stats, Budget(p99_cycle_us=500, p99_lateness_us=300, max_overruns=0))

Timing on shared CI machines is noisy: give budgets margins, assert on percentiles and
counts, never on the maximum. Two checks do not depend on timing at all:
:func:`assert_requests_per_cycle` (from the read plans) and :func:`assert_no_allocation`
(numba's allocation counters around one call of a compiled kernel).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..cycle import EngineStats, TaskStats

__all__ = [
    "Budget",
    "BudgetExceededError",
    "allocations",
    "assert_budget",
    "assert_no_allocation",
    "assert_requests_per_cycle",
    "check_budget",
    "run_line_for",
]


class BudgetExceededError(AssertionError):
    """A run broke its budget; the message lists every limit that was exceeded."""


@dataclass(frozen=True, slots=True)
class Budget:
    """Limits for one task (``task``) or every task (``None``); ``None`` limits are not checked.

    ``max_requests_per_cycle`` is deterministic: the wire requests one acquisition of the
    task sends, from its read plans.
    """

    p99_cycle_us: float | None = None
    p99_lateness_us: float | None = None
    p99_9_cycle_us: float | None = None
    max_overruns: int | None = 0
    max_skipped: int | None = None
    max_requests_per_cycle: int | None = None
    min_cycles: int | None = None
    task: str | None = None

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, Any]) -> Budget:
        """A budget from keyword arguments (a pytest marker's), rejecting unknown names."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - names)
        if unknown:
            raise TypeError(f"unknown budget limit(s) {', '.join(unknown)}; known: "
                            f"{', '.join(sorted(names))}")
        return cls(**kwargs)


def _task_violations(name: str, t: TaskStats, b: Budget) -> list[str]:
    out: list[str] = []

    def over(what: str, value: float, limit: float | None, unit: str = " µs") -> None:
        if limit is not None and value > limit:
            out.append(f"task {name}: {what} {value:g}{unit} > budget {limit:g}{unit}")

    over("p99 cycle time", t.timing["cycle"].p99_ns / 1e3, b.p99_cycle_us)
    over("p99.9 cycle time", t.timing["cycle"].p99_9_ns / 1e3, b.p99_9_cycle_us)
    over("p99 lateness", t.timing["lateness"].p99_ns / 1e3, b.p99_lateness_us)
    over("overruns", t.overruns, b.max_overruns, "")
    over("skipped cycles", t.skipped, b.max_skipped, "")
    over("requests per cycle", t.read_requests_planned, b.max_requests_per_cycle, "")
    if t.cycles == 0:
        out.append(f"task {name}: task never ran (0 cycles)")
    elif b.min_cycles is not None and t.cycles < b.min_cycles:
        out.append(f"task {name}: ran {t.cycles} cycles < {b.min_cycles}")
    if t.state == "faulted":
        out.append(f"task {name}: faulted: {t.fault}")
    return out


def check_budget(stats: EngineStats, budget: Budget) -> list[str]:
    """Every limit of ``budget`` that ``stats`` exceeds, as messages (empty: within budget)."""
    if budget.task is not None:
        if budget.task not in stats.tasks:
            return [f"no task {budget.task!r}; tasks: {', '.join(stats.tasks)}"]
        tasks = {budget.task: stats.tasks[budget.task]}
    else:
        tasks = dict(stats.tasks)
    out: list[str] = []
    for name, t in tasks.items():
        out += _task_violations(name, t, budget)
    return out


def assert_budget(stats: EngineStats, budget: Budget | None = None, **limits: Any) -> None:
    """Raise :class:`BudgetExceededError` listing every exceeded limit (``budget`` or keywords)."""
    b = budget if budget is not None else Budget.from_kwargs(limits)
    problems = check_budget(stats, b)
    if problems:
        raise BudgetExceededError("cycle budget exceeded:\n  " + "\n  ".join(problems))


def assert_requests_per_cycle(stats: EngineStats, max_requests: int,
                              task: str | None = None) -> None:
    """Deterministic: one acquisition of the task(s) sends at most ``max_requests``."""
    assert_budget(stats, Budget(max_requests_per_cycle=max_requests, max_overruns=None,
                                task=task))


def run_line_for(path: str | os.PathLike[str], *, cycles: int | None = None,
                 duration_s: float | None = None, urls: Mapping[str, str] | None = None,
                 profile_paths: Sequence[Path] = ()) -> EngineStats:
    """Load a line, run its tasks in real time for ``cycles`` (or ``duration_s``), return stats.

    ``urls`` points devices elsewhere (a simulator started by the test). Task faults
    after the line ran do not raise here: they show in the stats, and
    :func:`assert_budget` reports them. An error before any task ran a cycle (a program
    that does not load or compile, a bad tag) is raised: there is nothing to check.
    """
    from smartline.config import load_line
    from smartline.core import CycleOverrunError, SmartlineError
    from smartline.run import build_engine, with_device_urls

    if cycles is None and duration_s is None:
        raise ValueError("give cycles or duration_s")
    config = load_line(path, profile_paths=profile_paths)
    if urls:
        config = with_device_urls(config, urls)

    async def go() -> EngineStats:
        line, engine = build_engine(config)
        try:
            try:
                await engine.run(cycles=cycles, duration_s=duration_s)
            except (CycleOverrunError, SmartlineError):
                if not any(t.cycles for t in engine.tasks.values()):
                    raise  # nothing ran: a budget check would have nothing to say
            return engine.stats()
        finally:
            await line.close()

    return asyncio.run(go())


def allocations(kernel: Callable[..., Any], *args: Any) -> int:
    """Heap allocations numba's runtime makes inside one call of ``kernel(*args)``.

    The kernel is called twice (the first call compiles); the count excludes what passing
    the arguments from Python costs, measured with a no-op kernel of the same arguments.
    """
    import importlib

    from numba import njit

    nrt: Any = importlib.import_module("numba.core.runtime._nrt_python")
    rtsys: Any = importlib.import_module("numba.core.runtime").rtsys

    @njit  # type: ignore[misc]
    def _noop(*a: Any) -> None:  # pragma: no cover - compiled
        pass

    kernel(*args)
    _noop(*args)
    was_enabled = nrt.memsys_stats_enabled()
    nrt.memsys_enable_stats()
    try:
        s0 = rtsys.get_allocation_stats()
        kernel(*args)
        s1 = rtsys.get_allocation_stats()
        _noop(*args)
        s2 = rtsys.get_allocation_stats()
    finally:
        if not was_enabled:
            nrt.memsys_disable_stats()
    return int((s1.alloc - s0.alloc) - (s2.alloc - s1.alloc))


def assert_no_allocation(kernel: Callable[..., Any], *args: Any) -> None:
    """Fail if one call of the compiled ``kernel(*args)`` allocates (deterministic)."""
    n = allocations(kernel, *args)
    if n:
        name = getattr(getattr(kernel, "py_func", kernel), "__qualname__", repr(kernel))
        raise BudgetExceededError(f"{name} allocated {n} time(s) in one call; a cycle kernel "
                             "must work on preallocated arrays")
