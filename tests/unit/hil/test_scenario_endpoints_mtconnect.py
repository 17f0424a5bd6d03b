"""The ``mtconnect+http`` scenario device: an MTConnect agent whose machine the plant's CNC
block drives by wiring (or that runs its own program), and its faults as an HTTP client sees
them (down and back, agent restart, adapter gone, latency, garbage)."""

from __future__ import annotations

import asyncio
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import aiohttp
import pytest

from smartline.hil.scenario import Scenario, ScenarioRunner
from smartline.hil.scenario._endpoints import MtConnectEndpoint

PLANT = """\
smartline-plant: 1
name: cell
blocks:
  mill:
    type: cnc
    params: {width_mm: 10, height_mm: 10, depth_mm: 1, step_down_mm: 1, feed_mm_min: 6000,
             handling_s: 1, spindle_accel_rpm_s: 0}
wiring:
  vmc.execution: mill.execution
  vmc.PartCount: mill.part_count
  vmc.Sspeed: mill.spindle_speed_rpm
  vmc.Xact: mill.x_mm
  vmc.system: mill.alarm
"""

SCENARIO = """\
smartline-scenario: 1
name: cell
plant: cell.yaml
devices:
  vmc: {protocol: mtconnect+http, profile: generic/mtconnect-vmc}
initial:
  mill.auto_cycle: true
  mill.cycle_start: true
timeline:
  - {at: 20s, device: vmc, fault: down, for: 1s}
  - {at: 22s, device: vmc, fault: restart}
  - {at: 23s, device: vmc, fault: unavailable, for: 1s}
  - {at: 25s, device: vmc, fault: latency, ms: 300, for: 1s}
  - {at: 27s, device: vmc, fault: corrupt, for: 1s}
  - {at: 29s, block: mill, event: tool_break}
"""


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


async def _current(url: str) -> tuple[dict[str, str], dict[str, str]] | str:
    """(header, {dataItemId: value or condition level}) of /current, or what went wrong."""
    try:
        async with aiohttp.ClientSession() as http, http.get(
                url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
            body = await resp.read()
    except Exception as exc:
        return type(exc).__name__
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return "ParseError"
    head = dict(next(e for e in root.iter() if _local(e.tag) == "Header").attrib)
    levels = ("Normal", "Warning", "Fault", "Unavailable")
    values = {e.attrib["dataItemId"]: (_local(e.tag) if _local(e.tag) in levels else e.text or "")
              for e in root.iter() if "dataItemId" in e.attrib}
    return head, values


async def _at(runner: ScenarioRunner, t_s: float) -> None:
    runner.advance_to(round(t_s * 1e9))
    await runner.settle()


async def test_mtconnect_device_driven_by_the_cnc_block_and_its_faults(tmp_path: Path) -> None:
    (tmp_path / "cell.yaml").write_text(PLANT)
    (tmp_path / "s.yaml").write_text(SCENARIO)
    s = Scenario.load(tmp_path / "s.yaml")
    async with ScenarioRunner(s, virtual=True) as runner:
        url = runner.urls()["vmc"]
        assert url.startswith("mtconnect+http://127.0.0.1:") and url.endswith("/VMC-3Axis")
        current = "http" + url.removeprefix("mtconnect+http") + "/current"
        runner.advance_to(0)
        await _at(runner, 0.5)
        got = await _current(current)
        assert not isinstance(got, str)
        head, values = got
        assert values["d1_execution"] == "ACTIVE"  # the block runs its program
        assert float(values["d1_sspeed"]) == pytest.approx(8000.0)
        await _at(runner, 19.5)
        parts = runner.plant.output("mill", "part_count")
        assert parts >= 2
        got = await _current(current)
        assert not isinstance(got, str)
        head, values = got
        assert int(values["d1_part_count"]) == parts
        assert float(values["d1_xpos"]) == pytest.approx(runner.plant.output("mill", "x_mm"),
                                                         abs=1e-3)
        instance = head["instanceId"]
        await _at(runner, 20.5)  # down: refused
        assert await _current(current) == "ClientConnectorError"
        await _at(runner, 21.5)  # back on the same port
        got = await _current(current)
        assert not isinstance(got, str) and got[0]["instanceId"] == instance
        await _at(runner, 22.5)  # the agent restarted: a new instance, the plant's values
        got = await _current(current)
        assert not isinstance(got, str) and got[0]["instanceId"] != instance
        assert int(got[1]["d1_part_count"]) == runner.plant.output("mill", "part_count")
        await _at(runner, 23.5)  # the adapter is gone
        got = await _current(current)
        assert not isinstance(got, str)
        assert got[1]["d1_execution"] == "UNAVAILABLE" and got[1]["d1_system"] == "Unavailable"
        await _at(runner, 24.5)  # back: the plant's values again
        got = await _current(current)
        assert not isinstance(got, str) and got[1]["d1_execution"] in (
            "ACTIVE", "READY", "PROGRAM_COMPLETED")
        await _at(runner, 25.5)
        t0 = time.perf_counter()
        assert not isinstance(await _current(current), str)
        assert time.perf_counter() - t0 >= 0.3
        await _at(runner, 27.5)
        assert await _current(current) == "ParseError"  # bytes that are not XML
        await _at(runner, 29.5)  # the tool breaks: the block's alarm is the agent's Fault
        got = await _current(current)
        assert not isinstance(got, str)
        assert got[1]["d1_system"] == "Fault" and got[1]["d1_execution"] == "STOPPED"
        assert runner.endpoints["vmc"].get("system") == "fault"


async def test_an_unwired_machine_runs_its_own_program(tmp_path: Path) -> None:
    (tmp_path / "cell.yaml").write_text(PLANT.split("wiring:", maxsplit=1)[0])
    (tmp_path / "s.yaml").write_text(SCENARIO.split("initial:", maxsplit=1)[0])
    s = Scenario.load(tmp_path / "s.yaml")
    async with ScenarioRunner(s, virtual=True) as runner:
        ep = runner.endpoints["vmc"]
        assert isinstance(ep, MtConnectEndpoint)
        ep.machine.ready_s, ep.machine.cycle_s = 0.05, 0.1
        await asyncio.sleep(0.6)  # the agent ticks its model in real time
        assert isinstance(ep.get("PartCount"), int) and ep.get("PartCount") >= 1
