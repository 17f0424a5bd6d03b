"""The ``grbl`` scenario device: a GRBL 1.1 controller on a pty, its state read by the plant
side, and its faults as a pyserial client sees them (powered off and on, latency, garbage,
silence, an alarm, the line cut)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import serial

from smartline.hil.grbl import BANNER
from smartline.hil.scenario import Scenario, ScenarioRunner

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
timeline:
  - {at: 2s, device: router, fault: down, for: 1s}
  - {at: 4s, device: router, fault: latency, ms: 300, for: 1s}
  - {at: 6s, device: router, fault: corrupt, for: 1s}
  - {at: 8s, device: router, fault: no_answer, for: 1s}
  - {at: 10s, device: router, fault: alarm, code: 1}
  - {at: 12s, device: router, fault: disconnect}
"""


def _ask(port: str, data: bytes = b"?", timeout_s: float = 0.5) -> tuple[bytes, float]:
    """Send ``data`` and read one line back (empty when nothing came), and how long it took."""
    t0 = time.perf_counter()
    with serial.serial_for_url(port, baudrate=115200, timeout=timeout_s) as s:
        s.reset_input_buffer()
        s.write(data)
        reply = s.read_until(b"\r\n")
    return reply, time.perf_counter() - t0


async def _at(runner: ScenarioRunner, t_s: float) -> None:
    runner.advance_to(round(t_s * 1e9))
    await runner.settle()
    await asyncio.sleep(0.05)


async def test_grbl_device_on_a_pty_and_its_faults(tmp_path: Path) -> None:
    (tmp_path / "router.yaml").write_text(PLANT)
    (tmp_path / "s.yaml").write_text(SCENARIO)
    s = Scenario.load(tmp_path / "s.yaml")
    async with ScenarioRunner(s, virtual=True) as runner:
        url = runner.urls()["router"]
        assert url.startswith("grbl:///")
        port = url.removeprefix("grbl://")
        ep = runner.endpoints["router"]
        runner.advance_to(0)
        await _at(runner, 0.5)
        reply, _ = await asyncio.to_thread(_ask, port)
        assert reply.startswith(b"<Idle|MPos:0.000,0.000,0.000")
        assert ep.get("state") == "Idle" and ep.get("mpos.x") == 0.0 and ep.get("alarm") == 0
        await _at(runner, 2.5)  # powered off: nothing answers
        assert (await asyncio.to_thread(_ask, port))[0] == b""
        with serial.serial_for_url(port, baudrate=115200, timeout=0.5) as link:
            link.reset_input_buffer()
            await _at(runner, 3.5)  # powered on: the banner, then answers again
            assert link.read_until(BANNER.rstrip(b"\r\n")).endswith(BANNER.strip())
        assert (await asyncio.to_thread(_ask, port))[0].startswith(b"<Idle|")
        await _at(runner, 4.5)
        reply, elapsed = await asyncio.to_thread(_ask, port, b"?", 1.0)
        assert reply.startswith(b"<Idle|") and elapsed >= 0.29  # late
        await _at(runner, 6.5)
        reply, _ = await asyncio.to_thread(_ask, port)
        assert reply and not reply.startswith(b"<")  # not GRBL's words
        await _at(runner, 8.5)
        assert (await asyncio.to_thread(_ask, port))[0] == b""  # silent
        await _at(runner, 9.5)
        with serial.serial_for_url(port, baudrate=115200, timeout=0.5) as link:
            link.reset_input_buffer()
            await _at(runner, 10.5)  # ALARM:1 (hard limit) comes unasked
            assert link.read_until(b"\r\n") == b"ALARM:1\r\n"
        assert ep.get("state") == "Alarm" and ep.get("alarm") == 1
        await _at(runner, 11.5)
        link = serial.serial_for_url(port, baudrate=115200, timeout=0.5)
        try:
            await _at(runner, 12.5)  # the line is cut: the old port fails or goes quiet
            try:
                link.write(b"?")
                gone = link.read_until(b"\r\n") == b""
            except (serial.SerialException, OSError):
                gone = True
            assert gone
        finally:
            link.close()
        await asyncio.to_thread(_ask, port, b"\x18")  # a new port works: reset after ALARM:1
        reply, _ = await asyncio.to_thread(_ask, port)
        assert reply.startswith(b"<Alarm|")  # locked until $X, as on the machine
