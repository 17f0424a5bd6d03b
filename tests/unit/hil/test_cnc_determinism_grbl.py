"""The ``grbl`` scenario device on a virtual clock: motion, dwells, alarms and power-up follow
the scenario's clock, and the controller speaks only when the line sends bytes (lock-step),
so the same requests at the same virtual times get the same bytes on every run."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import serial

from smartline.core import MonotonicClock, VirtualClock
from smartline.hil.grbl import BANNER, GrblSim
from smartline.hil.scenario import Scenario
from smartline.hil.scenario._endpoints import GrblEndpoint

PLANT = """\
smartline-plant: 1
name: router
blocks:
  spare: {type: motor}
"""

SCENARIO = """\
smartline-scenario: 1
name: router
plant: router.yaml
devices:
  router: {protocol: grbl, profile: grbl/grbl-1.1, transport: pty}
"""


def _exchange(link: serial.Serial, data: bytes, until: bytes) -> bytes:
    """Send ``data``; everything read until ``until`` ends it (what came, if it never did)."""
    link.write(data)
    got = b""
    while not got.endswith(until):
        more = link.read_until(until)
        if not more:
            break
        got += more
    return got


def _quiet(link: serial.Serial) -> bytes:
    """What the controller says unasked within 0.2 s."""
    link.timeout = 0.2
    try:
        return link.read(4096)
    finally:
        link.timeout = 1.0


async def _session(tmp_path: Path) -> list[bytes]:
    """One scripted session at fixed virtual times; every chunk the controller said."""
    tmp_path.mkdir()
    (tmp_path / "router.yaml").write_text(PLANT)
    (tmp_path / "s.yaml").write_text(SCENARIO)
    spec = Scenario.load(tmp_path / "s.yaml").devices["router"]
    clock = VirtualClock()
    ep = GrblEndpoint(spec, clock=clock)
    await ep.start()
    said: list[bytes] = []
    try:
        link = await asyncio.to_thread(serial.serial_for_url, ep.sim.port, baudrate=115200,
                                       timeout=1.0)
        try:
            def ask(data: bytes, until: bytes = b">\r\n") -> bytes:
                said.append(_exchange(link, data, until))
                return said[-1]

            async def at(t_s: float) -> bytes:
                clock.set_ns(round(t_s * 1e9))
                said.append(await asyncio.to_thread(_quiet, link))
                return said[-1]

            first = await asyncio.to_thread(ask, b"?")
            assert first.startswith(BANNER) and b"<Idle|MPos:0.000,0.000,0.000" in first
            assert await asyncio.to_thread(ask, b"G1X10F600\n", b"ok\r\n") == b"ok\r\n"
            assert await at(0.5) == b""  # moving: nothing said unasked
            assert (await asyncio.to_thread(ask, b"?")).startswith(
                b"<Run|MPos:5.000,0.000,0.000|")  # 10 mm/s for 0.5 s of virtual time
            assert await at(1.1) == b""
            assert (await asyncio.to_thread(ask, b"?")).startswith(b"<Idle|MPos:10.000,")
            assert ep.get("mpos.x") == 10.0
            await asyncio.to_thread(link.write, b"G4P0.5\n")  # a dwell: ok when it ends
            assert await at(1.3) == b""
            assert (await asyncio.to_thread(ask, b"?")).startswith(b"<Idle|")
            assert await at(2.0) == b""  # the dwell ended at 1.6 s; the ok waits for a request
            done = await asyncio.to_thread(ask, b"?")
            assert done.startswith(b"ok\r\n<Idle|")
            ep.fault("alarm", {"code": 1})  # a hard limit: ALARM:1 with the next request
            assert await at(2.5) == b""
            assert await asyncio.to_thread(ask, b"?", b"continue]\r\n") == (
                b"ALARM:1\r\n[MSG:Reset to continue]\r\n")  # and no report: it is halted
            assert ep.get("state") == "Alarm"
            ep.fault("down", {})
            assert await at(3.0) == b""
            ep.clear("down")  # powered up: the banner, with the next answer
            await ep.settle()
            back = await asyncio.to_thread(ask, b"?")
            assert back.startswith(BANNER) and b"<Alarm|" in back
        finally:
            await asyncio.to_thread(link.close)
    finally:
        await ep.stop()
    return said


async def test_same_requests_at_the_same_virtual_times_same_bytes(tmp_path: Path) -> None:
    first = await _session(tmp_path / "a")
    second = await _session(tmp_path / "b")
    assert first == second


def test_lockstep_needs_a_virtual_clock_it_does_not_move() -> None:
    with pytest.raises(ValueError, match="VirtualClock"):
        GrblSim(clock=MonotonicClock(), lockstep=True)
    with pytest.raises(ValueError, match="lockstep"):
        GrblSim(clock=VirtualClock(), lockstep=True, fast_forward=True)


async def test_real_time_endpoint_keeps_speaking_unasked(tmp_path: Path) -> None:
    (tmp_path / "router.yaml").write_text(PLANT)
    (tmp_path / "s.yaml").write_text(SCENARIO)
    spec = Scenario.load(tmp_path / "s.yaml").devices["router"]
    ep = GrblEndpoint(spec)  # the monotonic clock: alarms are pushed as on the machine
    assert isinstance(ep.sim.clock, MonotonicClock) and not ep.sim.lockstep
    await ep.start()
    try:
        link = await asyncio.to_thread(serial.serial_for_url, ep.sim.port, baudrate=115200,
                                       timeout=1.0)
        try:
            await asyncio.to_thread(link.reset_input_buffer)
            ep.fault("alarm", {"code": 1})
            heard = await asyncio.to_thread(link.read_until, b"ALARM:1\r\n")
            assert heard.endswith(b"ALARM:1\r\n")  # pushed: nothing was asked
        finally:
            await asyncio.to_thread(link.close)
    finally:
        await ep.stop()


def test_a_virtual_runner_puts_its_grbl_on_its_own_clock(tmp_path: Path) -> None:
    # issue #12: a GRBL endpoint left on the monotonic clock under a virtual scenario moves
    # in real time while the line races through virtual time: a program never ends within
    # its phase's timeout (cnc-bracket on cnc-cell held at 120 s, M30 unanswered)
    from smartline.hil.scenario import ScenarioRunner

    (tmp_path / "router.yaml").write_text(PLANT)
    (tmp_path / "s.yaml").write_text(SCENARIO)
    clock = VirtualClock()
    runner = ScenarioRunner(Scenario.load(tmp_path / "s.yaml"), clock=clock, trace=False)
    ep = runner.endpoints["router"]
    assert isinstance(ep, GrblEndpoint)
    assert ep.sim.clock is clock and ep.sim.lockstep and not ep.sim.fast_forward
    real = ScenarioRunner(Scenario.load(tmp_path / "s.yaml"), trace=False)
    sim = real.endpoints["router"].sim  # type: ignore[attr-defined]
    assert isinstance(sim.clock, MonotonicClock) and not sim.lockstep
