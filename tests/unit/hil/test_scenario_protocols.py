"""Scenario devices of every protocol the runner serves: an S7 CPU (python-snap7 client) and a
serial scale (pyserial over socket://) wired to the plant, with their device faults."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
from pathlib import Path

import pytest
import serial
import snap7

from smartline.hil.scenario import Scenario, ScenarioRunner

PLANT = """\
smartline-plant: 1
name: mixed
blocks:
  tank: {type: tank, params: {area_m2: 0.05, initial_level_m: 0.4}}
  pump: {type: motor}
wiring:
  cpu.status.cur_mach_speed: {signal: pump.speed_hz, gain: 8}
  cpu.command.mach_speed: pump.ref_hz
  scale.weight: {signal: tank.volume_m3, gain: 1000}
"""

SCENARIO = """\
smartline-scenario: 1
name: mixed
plant: mixed.yaml
devices:
  cpu: {protocol: s7, profile: siemens/s7-1200-filler}
  scale: {protocol: serial, profile: mettler-toledo/mt-sics}
initial:
  cpu.command.mach_speed: 25
  pump.run: true
timeline:
  - {at: 3s, device: cpu, fault: down, for: 1s}
  - {at: 5s, device: scale, fault: down, for: 1s}
  - {at: 7s, device: scale, fault: latency, ms: 300, for: 1s}
  - {at: 9s, device: cpu, fault: latency, ms: 300, for: 1s}
"""


@pytest.fixture(autouse=True)
def _quiet() -> None:
    logging.getLogger("snap7").setLevel(logging.CRITICAL)


def _read_speed(port: int) -> float | str:
    """status.cur_mach_speed (DB11.DBD12, REAL) as a python-snap7 client reads it."""
    c = snap7.client.Client()
    try:
        c.connect("127.0.0.1", 0, 1, port)
        return float(struct.unpack(">f", bytes(c.db_read(11, 12, 4)))[0])
    except Exception as exc:  # refused, timed out: what the client library says
        return type(exc).__name__
    finally:
        c.disconnect()


def _ask_weight(url: str) -> tuple[bytes, float]:
    t0 = time.perf_counter()
    with serial.serial_for_url(url.removeprefix("serial://"), timeout=0.6) as port:
        port.write(b"SI\r\n")
        reply = port.read_until(b"\r\n")
    return reply, time.perf_counter() - t0


async def _at(runner: ScenarioRunner, t_s: float) -> None:
    runner.advance_to(round(t_s * 1e9))
    await runner.settle()


async def test_s7_and_serial_devices_in_a_scenario(tmp_path: Path) -> None:
    (tmp_path / "mixed.yaml").write_text(PLANT)
    (tmp_path / "s.yaml").write_text(SCENARIO)
    s = Scenario.load(tmp_path / "s.yaml")
    async with ScenarioRunner(s, virtual=True) as runner:
        urls = runner.urls()
        assert urls["cpu"].startswith("s7://127.0.0.1:") and urls["cpu"].endswith("rack=0&slot=1")
        assert urls["scale"].startswith("serial://socket://127.0.0.1:")
        port = runner.endpoints["cpu"].server.port  # type: ignore[attr-defined]
        runner.advance_to(0)
        await _at(runner, 2.5)
        speed = await asyncio.to_thread(_read_speed, port)
        assert isinstance(speed, float) and 8 * 20 < speed <= 8 * 25.01  # ramping to 25 Hz
        reply, _ = await asyncio.to_thread(_ask_weight, urls["scale"])
        volume_l = runner.plant.output("tank", "volume_m3") * 1000
        assert reply == f"S S {volume_l:10.2f} g\r\n".encode()
        await _at(runner, 3.5)
        assert isinstance(await asyncio.to_thread(_read_speed, port), str)  # CPU down
        with socket.socket() as probe:  # nothing listens on its port
            assert probe.connect_ex(("127.0.0.1", port)) != 0
        await _at(runner, 4.5)
        assert isinstance(await asyncio.to_thread(_read_speed, port), float)  # back
        await _at(runner, 5.5)
        assert (await asyncio.to_thread(_ask_weight, urls["scale"]))[0] == b""  # silent
        await _at(runner, 7.5)
        reply, elapsed = await asyncio.to_thread(_ask_weight, urls["scale"])
        assert reply.startswith(b"S S") and elapsed >= 0.29  # late
        await _at(runner, 9.5)
        t0 = time.perf_counter()
        assert isinstance(await asyncio.to_thread(_read_speed, port), float)
        assert time.perf_counter() - t0 >= 0.29
