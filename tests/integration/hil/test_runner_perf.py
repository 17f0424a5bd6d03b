"""The scenario runner's input cache changes nothing (issue #11): in lock-step it reads the
points the controller writes only when they may have changed (each ``advance_to``, timeline
entries, power loss, outputs fed back), and a whole line against a fault scenario records the
same plant trace and the same tag trace byte for byte as with the old read-every-step.

The line is the heat-treatment furnace against ``heat-treatment-faults``: its PID writes
the heater powers (the plant's wired inputs) every cycle, a controller goes down and comes
back, and its runs are reproducible byte for byte. The bottling line's are not — its
drivers' wall-clock timeouts during no-answer and latency faults move reads by a cycle from
run to run — so bottling-faults is compared plant-side, with writes between the advances, in
``tests/unit/hil/test_runner_input_cache.py``.

Each run is assembled as ``smartline run --sim --virtual --record`` does it (a
:class:`ScenarioRunner` on a :class:`VirtualClock`, the engine's ``on_advance`` stepping the
plant and sampling a :class:`TagTrace`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from smartline.config import LineConfig, load_line
from smartline.core import VirtualClock
from smartline.hil.scenario import Scenario, ScenarioRunner

ROOT = Path(__file__).resolve().parents[3]
LINE = ROOT / "recipes" / "heat-treatment.yaml"
SCENARIO = ROOT / "hil_sim" / "scenarios" / "heat-treatment-faults.yaml"
Recorder = Callable[..., Awaitable[tuple[bytes, bytes]]]  # the record_lockstep fixture
PLANT_S = 47.0  # a controller down, the door opened and closed, a heater failing (to 45 s)


@pytest.fixture(autouse=True)
def _quiet() -> Iterator[None]:
    """The simulated servers share the process: keep their logs out of the report."""
    names = ("pymodbus", "smartline")
    saved = {n: logging.getLogger(n).level for n in names}
    for n in names:
        logging.getLogger(n).setLevel(logging.CRITICAL)
    yield
    for n, level in saved.items():
        logging.getLogger(n).setLevel(level)


async def _run(record_lockstep: Recorder, config: LineConfig, scenario: Scenario, *,
               every_step: bool) -> tuple[bytes, int, int]:
    """One lock-step run: the tag trace's bytes then the plant trace's, the input reads
    and the plant steps."""
    clock = VirtualClock()
    runner = ScenarioRunner(scenario, clock=clock, trace=True)
    runner._refresh_every_step = every_step  # the old behaviour, for the comparison
    reads = [0]
    read_inputs = runner._read_inputs

    def counted() -> None:
        reads[0] += 1
        read_inputs()

    runner._read_inputs = counted  # type: ignore[method-assign]
    tags, plant = await record_lockstep(config, runner, clock, PLANT_S)
    return tags + plant, reads[0], runner.steps


def _first_difference(a: bytes, b: bytes) -> str:
    for k, (x, y) in enumerate(zip(a.splitlines(), b.splitlines(), strict=False)):
        if x != y:
            return f"line {k + 1}: {x!r} != {y!r}"
    return f"lengths {len(a)} != {len(b)}"


def test_cached_inputs_give_the_same_traces_byte_for_byte(record_lockstep: Recorder) -> None:
    config = load_line(LINE)
    scenario = Scenario.load(SCENARIO)
    cached, cached_reads, steps = asyncio.run(_run(record_lockstep, config, scenario,
                                                        every_step=False))
    every, every_reads, _ = asyncio.run(_run(record_lockstep, config, scenario, every_step=True))
    assert steps > 4000
    assert every_reads == steps  # the old way: every step reads every input
    assert cached_reads < steps // 5  # 100 ms control task, 10 ms steps: ~1 read per cycle
    assert b"timeline start device zone2 down" in cached
    assert b"timeline start block oven3 heater_fail" in cached
    assert cached.count(b" heaters.ch1 ") > 50  # a point the line writes, often
    assert cached == every, _first_difference(cached, every)
