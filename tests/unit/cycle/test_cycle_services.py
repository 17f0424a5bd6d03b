"""Services: Python work the I/O loop runs at a period beside the tasks (the recipe engine and
PackML units use them). In virtual time they are events of the engine's schedule."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from smartline.core import MonotonicClock, VirtualClock
from smartline.cycle import Engine, TaskSpec
from smartline.line import Line

MS = 1_000_000


def test_virtual_service_runs_at_its_deadlines_in_order_with_the_tasks(
        make_engine: Callable[..., tuple[Line, Engine]], run: Callable[..., object]) -> None:
    clock = VirtualClock()
    line, eng = make_engine(TaskSpec("acquire", period_ms=10, tags=("a",)), clock=clock)
    seen: list[int] = []
    cycles_seen: list[int] = []

    async def step(now_ns: int) -> None:
        seen.append(now_ns)
        cycles_seen.append(eng.tasks["acquire"].cycles)

    eng.add_service("probe", 25 * MS, step)
    run(eng, duration_s=0.1)
    start = seen[0]
    assert [t - start for t in seen] == [0, 25 * MS, 50 * MS, 75 * MS]
    # at equal deadlines the task's cycle runs first: 1 cycle at t=0, 3 by 25 ms ...
    assert cycles_seen == [1, 3, 6, 8]
    asyncio.run(line.close())


def test_virtual_service_failure_is_an_alarm_and_the_line_keeps_running(
        make_engine: Callable[..., tuple[Line, Engine]], run: Callable[..., object]) -> None:
    line, eng = make_engine(TaskSpec("acquire", period_ms=10, tags=("a",)))
    calls = 0

    async def step(now_ns: int) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("boom")

    eng.add_service("flaky", 10 * MS, step)
    stats = run(eng, duration_s=0.1)
    assert calls == 10
    assert eng.tasks["acquire"].cycles == 10
    assert [a.kind for a in eng.alarms] == ["service"]
    assert "flaky" in eng.alarms[0].message and "boom" in eng.alarms[0].message
    assert stats is not None
    asyncio.run(line.close())


def test_real_time_service_runs_on_the_loop_at_its_period(
        make_engine: Callable[..., tuple[Line, Engine]], run: Callable[..., object]) -> None:
    line, eng = make_engine(TaskSpec("acquire", period_ms=10, tags=("a",)),
                            clock=MonotonicClock())
    stamps: list[float] = []

    async def step(now_ns: int) -> None:
        stamps.append(time.monotonic())

    eng.add_service("probe", 50 * MS, step)
    run(eng, duration_s=0.5)
    # about 10 steps in 0.5 s; generous bounds (a loaded machine is late, never early)
    assert 5 <= len(stamps) <= 11
    # absolute deadlines: never faster than the period on average
    assert (stamps[-1] - stamps[0]) / (len(stamps) - 1) >= 0.045
    asyncio.run(line.close())


def test_services_are_added_before_the_run(
        make_engine: Callable[..., tuple[Line, Engine]]) -> None:
    _, eng = make_engine(TaskSpec("acquire", period_ms=10, tags=("a",)))

    async def step(now_ns: int) -> None:
        return None

    with pytest.raises(ValueError, match="positive period"):
        eng.add_service("x", 0, step)
