"""The scenario runner: the plant against real Modbus clients on loopback, every timeline fault
seen from the wire, expectations, and virtual-time determinism byte for byte."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pymodbus.client import AsyncModbusTcpClient

from smartline.hil.blocks import DriveFault
from smartline.hil.scenario import Scenario, ScenarioRunner

ROOT = Path(__file__).resolve().parents[3]
PLANT = ROOT / "hil_sim" / "plants" / "tank-demo.yaml"

HEAD = f"""\
smartline-scenario: 1
name: t
plant: {PLANT}
seed: 7
time: {{step_ms: 10}}
devices:
  plc: {{protocol: modbus+tcp, profile: generic/tank-io}}
initial:
  plc.inlet_valve: 44
  plc.outlet_valve: 100
  tank.initial_level_m: 0.4
"""


@pytest.fixture(autouse=True)
def _quiet_pymodbus() -> None:
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


def _scenario(tmp_path: Path, body: str, name: str = "s.yaml") -> Scenario:
    path = tmp_path / name
    path.write_text(HEAD + body)
    return Scenario.load(path)


class Client:
    """A pymodbus client that reconnects for every read: what a driver sees, in words."""

    def __init__(self, port: int) -> None:
        self.port = port

    async def _call(self, what: str, address: int) -> tuple[str, object, float]:
        c = AsyncModbusTcpClient("127.0.0.1", port=self.port, timeout=0.5, retries=0)
        t0 = time.perf_counter()
        try:
            if not await c.connect():
                return "refused", None, time.perf_counter() - t0
            if what == "ir":
                rr = await c.read_input_registers(address, count=1, device_id=1)
            else:
                rr = await c.read_discrete_inputs(address, count=1, device_id=1)
            if rr.isError():
                return "exception", getattr(rr, "exception_code", None), \
                    time.perf_counter() - t0
            value = rr.registers[0] if what == "ir" else bool(rr.bits[0])
            return "ok", value, time.perf_counter() - t0
        except Exception as exc:  # what the wire did, as the client library says it
            return "error", type(exc).__name__, time.perf_counter() - t0
        finally:
            c.close()

    async def level(self) -> tuple[str, object, float]:
        return await self._call("ir", 0)

    async def pump_fault(self) -> tuple[str, object, float]:
        return await self._call("di", 0)


@pytest.fixture
async def faults(tmp_path: Path) -> AsyncIterator[tuple[ScenarioRunner, Client]]:
    s = _scenario(tmp_path, """\
timeline:
  - {at: 1s, device: plc, fault: down, for: 1s}
  - {at: 3s, device: plc, fault: latency, ms: 250, for: 1s}
  - {at: 5s, device: plc, fault: exception, code: 4, for: 1s}
  - {at: 7s, device: plc, fault: corrupt, for: 1s}
  - {at: 9s, device: plc, fault: garbage, for: 1s}
  - {at: 11s, device: plc, fault: no_answer, for: 1s}
  - {at: 13s, device: plc, fault: disconnect, for: 1s}
  - {at: 15s, fault: power_loss, for: 1s}
  - {at: 17s, signal: tank.level_m, fault: stuck, value: 1.5, for: 1s}
  - {at: 19s, signal: tank.level_m, fault: offset, value: 0.25, for: 1s}
  - {at: 21s, signal: tank.level_m, fault: noise, sigma: 0.05, for: 1s}
  - {at: 23s, block: pump, event: trip}
  - {at: 25s, set: plc.inlet_valve, value: 0}
  - {at: 27s, signal: tank.level_m, fault: drift, rate_per_s: 0.1}
  - {at: 29s, signal: tank.level_m, fault: clear}
""")
    async with ScenarioRunner(s, virtual=True) as runner:
        runner.advance_to(0)
        port = runner.endpoints["plc"].server.port  # type: ignore[attr-defined]
        yield runner, Client(port)


async def _at(runner: ScenarioRunner, t_s: float) -> None:
    runner.advance_to(round(t_s * 1e9))
    await runner.settle()


async def test_device_faults_seen_from_the_wire(
        faults: tuple[ScenarioRunner, Client]) -> None:
    runner, client = faults
    await _at(runner, 0.5)
    status, level, _ = await client.level()
    assert status == "ok" and isinstance(level, int) and 380 <= level <= 420
    await _at(runner, 1.5)
    assert (await client.level())[0] == "refused"  # down: nothing listens
    await _at(runner, 2.5)
    assert (await client.level())[0] == "ok"  # back on the same port
    await _at(runner, 3.5)
    status, _, elapsed = await client.level()
    assert status == "ok" and elapsed >= 0.24  # late
    await _at(runner, 4.5)
    assert (await client.level())[2] < 0.2
    await _at(runner, 5.5)
    assert (await client.level())[:2] == ("exception", 4)
    await _at(runner, 7.5)
    assert (await client.level())[0] == "error"  # a garbled frame
    await _at(runner, 9.5)
    assert (await client.level())[0] == "error"  # bytes that are not a frame
    await _at(runner, 11.5)
    status, _, elapsed = await client.level()
    assert status == "error" and elapsed >= 0.45  # silence until the client's timeout
    await _at(runner, 13.5)
    assert (await client.level())[0] in ("error", "refused")  # dropped on every request
    await _at(runner, 14.5)
    assert (await client.level())[0] == "ok"
    await _at(runner, 15.5)
    assert (await client.level())[0] == "refused"  # power loss: every device down
    await _at(runner, 16.5)
    assert (await client.level())[0] == "ok"
    log = "\n".join(runner.log)
    assert "1s start device plc down for 1s" in log and "2s end device plc down for 1s" in log


async def test_sensor_faults_events_and_sets(faults: tuple[ScenarioRunner, Client]) -> None:
    runner, client = faults
    await _at(runner, 17.5)
    assert (await client.level())[1] == 1500  # stuck at 1.5 m whatever the tank does
    await _at(runner, 18.5)
    bank, i = runner.plant.where["tank"]
    _, level, _ = await client.level()
    assert level == round(float(bank.true_output("level_m")[i]) * 1000)  # cleared
    await _at(runner, 19.5)
    _, level, _ = await client.level()
    assert level == round((float(bank.true_output("level_m")[i]) + 0.25) * 1000)  # offset
    seen = set()
    for k in range(5):
        await _at(runner, 21.1 + 0.1 * k)
        seen.add((await client.level())[1])
    assert len(seen) >= 4  # noise: every read differs
    assert (await client.pump_fault())[1] is True  # the power loss at 15 s tripped it
    assert runner.plant.output("pump", "fault_code") == 3220
    await _at(runner, 23.5)
    assert (await client.pump_fault())[1] is True
    assert runner.plant.output("pump", "fault_code") == int(DriveFault.EXTERNAL)  # the trip
    assert runner.endpoints["plc"].get("inlet_valve") == pytest.approx(44.0)
    await _at(runner, 25.5)
    assert runner.endpoints["plc"].get("inlet_valve") == 0.0
    assert runner.plant.where["tank"][0].input("inflow_valve_pct")[0] == 0.0
    await _at(runner, 28.5)
    _, level, _ = await client.level()
    drift = level / 1000 - float(bank.true_output("level_m")[i])  # type: ignore[operator]
    assert drift == pytest.approx(0.15, abs=0.002)  # 0.1 m/s for 1.5 s
    await _at(runner, 29.5)
    assert (await client.level())[1] == round(float(bank.true_output("level_m")[i]) * 1000)


async def test_power_loss_deenergises_the_actuators(tmp_path: Path) -> None:
    s = _scenario(tmp_path, """\
  plc.pump_run: true
  plc.pump_speed_ref: 50
timeline:
  - {at: 5s, fault: power_loss, for: 2s}
""")
    async with ScenarioRunner(s, virtual=True) as runner:
        runner.advance_to(0)
        await _at(runner, 4.9)
        assert runner.plant.output("pump", "running") is True
        await _at(runner, 5.5)
        bank, i = runner.plant.where["tank"]
        assert bank.input("inflow_valve_pct")[i] == 0.0  # valve de-energised
        motor, m = runner.plant.where["pump"]
        assert not motor.state("powered")[m]  # mains lost: the drive coasts
        assert runner.plant.output("pump", "fault_code") == 3220
        await _at(runner, 7.5)
        assert bank.input("inflow_valve_pct")[i] == pytest.approx(44.0)
        assert motor.state("powered")[m]


async def _trace(s: Scenario, seconds: float) -> tuple[bytes, bytes]:
    async with ScenarioRunner(s, virtual=True) as runner:
        runner.advance_to(0)
        for k in range(1, int(seconds) + 1):
            await _at(runner, k)
        return runner.trace_bytes(), runner.plant.snapshot_bytes()


async def test_virtual_time_is_deterministic_byte_for_byte(tmp_path: Path) -> None:
    body = """\
  plc.pump_run: true
  plc.pump_speed_ref: 40
timeline:
  - {at: 2s, device: plc, fault: down, for: 1s}
  - {at: 4s, signal: tank.level_m, fault: noise, sigma: 0.01}
  - {at: 6s, block: pump, event: trip}
"""
    s = _scenario(tmp_path, body)
    first = await _trace(s, 10)
    second = await _trace(Scenario.load(s.path), 10)
    assert first[0] == second[0] and first[1] == second[1]
    assert first[0].count(b"\n") > 100
    assert b"4000000000 timeline start signal tank.level_m noise" in first[0]
    reseeded = _scenario(tmp_path, body, "reseeded.yaml")
    reseeded.path.write_text(reseeded.path.read_text().replace("seed: 7", "seed: 8"))
    third = await _trace(Scenario.load(reseeded.path), 10)
    assert third[0] != first[0]  # the noise depends on the seed
    upto_noise = first[0].split(b"4000000000 timeline")[0]
    assert third[0].startswith(upto_noise)  # the plant before the noise does not


async def test_expectations_pass_and_fail(tmp_path: Path) -> None:
    s = _scenario(tmp_path, """\
timeline:
  - {at: 3s, block: pump, event: trip}
expect:
  - {point: plc.level, reaches: {min: 0.6, max: 2}, within: 30s}
  - {signal: tank.level_m, reaches: {min: 1.9}, within: 30s}
  - {signal: tank.level_m, stays: {min: 0.3, max: 0.5}}
  - {alarm: plc.pump_fault, within: 4s}
  - {alarm: pump.fault, between: [0s, 2s]}
  - {tag: plc.level, goes: bad}
""")
    async with ScenarioRunner(s, virtual=True) as runner:
        runner.advance_to(0)
        await _at(runner, 31)
        results = runner.results()
    by = {r.expectation.index: r for r in results}
    assert by[0].ok is True and by[0].at_s is not None and 0 < by[0].at_s < 30
    assert by[1].ok is False and by[1].detail == "never"
    assert by[2].ok is False and by[2].at_s is not None  # left [0.3, 0.5] while filling
    assert by[2].detail.startswith(f"left the range at {by[2].at_s:g}s")
    assert by[3].ok is True and by[3].at_s == pytest.approx(3.01)
    assert by[4].ok is False  # the trip came after the window
    assert 5 not in by  # tags are the line's: the caller follows them
    assert [x.index for x in runner.tag_expectations()] == [5]


async def test_real_time_steps_with_the_clock(tmp_path: Path) -> None:
    s = _scenario(tmp_path, "")
    async with ScenarioRunner(s) as runner:
        assert not runner.virtual
        await asyncio.sleep(0.5)
        steps = runner.steps
        level = runner.endpoints["plc"].get("level")
    assert 25 <= steps <= 55  # 10 ms steps for 0.5 s
    assert level > 0.4  # filling
    assert runner.urls()["plc"].startswith("modbus+tcp://127.0.0.1:")
