"""The CNC cell in virtual time is reproducible byte for byte (issue #11 item 4): the line of
recipes/cnc-cell.yaml against hil_sim/scenarios/cnc-cell.yaml and cnc-cell-faults.yaml, run
twice with the same seed for 20 s of plant time, records the same tag trace and the same
plant trace, and its agent then serves the same ``/current`` document. The cell's MTConnect
agent and GRBL controller run on the scenario's virtual clock (timestamps, instanceId,
motion) and speak only when the line asks (GRBL lock-step, the agent ticking per request),
and the agent's port goes down and up within the step that says so.

Each run is assembled as ``smartline run --sim --virtual --record`` does it (a
:class:`ScenarioRunner` on a :class:`VirtualClock`, the engine's ``on_advance`` stepping the
plant and sampling a :class:`TagTrace`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from types import MappingProxyType

import aiohttp
import pytest

from smartline.config import LineConfig, load_line
from smartline.core import VirtualClock
from smartline.hil.scenario import Scenario, ScenarioRunner
from smartline.hil.scenario._endpoints import GrblEndpoint, MtConnectEndpoint

ROOT = Path(__file__).resolve().parents[3]
LINE = ROOT / "recipes" / "cnc-cell.yaml"
SCENARIOS = ROOT / "hil_sim" / "scenarios"
PLANT_S = 20.0
Recorder = Callable[..., Awaitable[tuple[bytes, bytes]]]  # the record_lockstep fixture


@pytest.fixture(autouse=True)
def _quiet() -> Iterator[None]:
    """The simulated servers share the process: keep their logs out of the report."""
    names = ("pymodbus", "aiohttp", "smartline")
    saved = {n: logging.getLogger(n).level for n in names}
    for n in names:
        logging.getLogger(n).setLevel(logging.CRITICAL)
    yield
    for n, level in saved.items():
        logging.getLogger(n).setLevel(level)


def _wall_clock_proof(config: LineConfig) -> LineConfig:
    """The line with 5 s timeouts: they are wall-clock time, and on a busy machine a 100 ms
    one fires while the event loop waits for the CPU and the read goes BAD. Nothing in
    these 20 s needs a timeout: a device that is down refuses at once. (Reconnect jitter
    is seeded per device under a virtual clock.)"""
    devices = {n: dataclasses.replace(d, timeout_s=5.0) for n, d in config.devices.items()}
    return dataclasses.replace(config, devices=MappingProxyType(devices))


async def _virtual_run(record_lockstep: Recorder, config: LineConfig, scenario: Scenario,
                       plant_s: float) -> bytes:
    """One lock-step run: the tag trace file's bytes, then the plant trace's, then the
    agent's ``/current`` (it says the time too: creationTime, timestamps, instanceId)."""
    clock = VirtualClock()
    runner = ScenarioRunner(scenario, clock=clock, trace=True)

    async def current() -> bytes:
        vmc = runner.endpoints["vmc"]
        assert isinstance(vmc, MtConnectEndpoint)
        async with aiohttp.ClientSession() as http, http.get(
                vmc.agent.http_url("current")) as resp:
            return await resp.read()

    tags, plant = await record_lockstep(config, runner, clock, plant_s, after=current)
    return tags + plant


def _has_randomness(scenario: Scenario) -> bool:
    """Whether the seed feeds anything: the plant's only random source is sensor noise."""
    return any(ev.what == "noise" for ev in scenario.timeline)


@pytest.mark.parametrize("name", ["cnc-cell.yaml", "cnc-cell-faults.yaml"])
def test_same_seed_same_trace_byte_for_byte(name: str, record_lockstep: Recorder) -> None:
    config = _wall_clock_proof(load_line(LINE))
    scenario = Scenario.load(SCENARIOS / name)
    first = asyncio.run(_virtual_run(record_lockstep, config, scenario, PLANT_S))
    second = asyncio.run(_virtual_run(record_lockstep, config, scenario, PLANT_S))
    assert b"vmc.PartCount" in first and b"router.state" in first
    if name == "cnc-cell-faults.yaml":  # the agent went down at 10 s and came back at 14 s
        assert b'"tag": "vmc.PartCount", "value": null, "quality": "BAD"' in first
    assert first == second, _first_difference(first, second)
    other = asyncio.run(_virtual_run(
        record_lockstep,
        config, dataclasses.replace(scenario, seed=scenario.seed + 1), PLANT_S))
    if _has_randomness(scenario):
        assert other != first
    else:  # a seed that feeds nothing changes nothing (but the header's seed)
        assert other.replace(b'"seed": 6', b'"seed": 5') == first, _first_difference(
            first, other)


def test_cnc_endpoints_run_on_the_given_clock() -> None:
    scenario = Scenario.load(SCENARIOS / "cnc-cell.yaml")
    clock = VirtualClock(start_ns=5_000_000_000)
    vmc = MtConnectEndpoint(scenario.devices["vmc"], clock=clock, seed=5)
    router = GrblEndpoint(scenario.devices["router"], clock=clock)
    assert vmc.agent.clock is clock and router.sim.clock is clock and router.sim.lockstep
    assert vmc.agent.tick_s == 0 and vmc.agent.tick_on_request
    # the instanceId is the agent's start time in (virtual) seconds, as cppagent's
    assert vmc.agent.instance_id == clock.wall_ns() // 1_000_000_000 * 1000
    again = MtConnectEndpoint(scenario.devices["vmc"], clock=VirtualClock(), seed=5)
    assert again.agent.boundary == vmc.agent.boundary
    assert MtConnectEndpoint(scenario.devices["vmc"], seed=6).agent.boundary != \
        vmc.agent.boundary


def _first_difference(a: bytes, b: bytes) -> str:
    la, lb = a.decode().splitlines(), b.decode().splitlines()
    for i, (x, y) in enumerate(zip(la, lb, strict=False)):
        if x != y:
            return f"line {i + 1} differs:\n  {x}\n  {y}"
    return f"one trace is longer: {len(la)} vs {len(lb)} lines"
