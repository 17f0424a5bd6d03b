"""The ``opc.tcp`` scenario device: an OPC UA server from a profile, wired to the plant both
ways, and its faults as an asyncua client sees them (down and back, latency, silence,
garbage, a dropped connection)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from pathlib import Path

import pytest
from asyncua import Client, Node, ua

from smartline.hil.scenario import Scenario, ScenarioRunner

PLANT = """\
smartline-plant: 1
name: vision
blocks:
  belt: {type: motor, params: {accel_s: 1.0}}
wiring:
  cam.Inspection.CapTorque: {signal: belt.speed_hz, gain: 0.1}
  cam.Inspection.Count: belt.fault_code
  cam.Station.Enabled: belt.run
"""

SCENARIO = """\
smartline-scenario: 1
name: vision
plant: vision.yaml
devices:
  cam: {protocol: opc.tcp, profile: generic/vision-opcua}
initial:
  belt.ref_hz: 50
timeline:
  - {at: 2s, device: cam, fault: down, for: 1s}
  - {at: 4s, device: cam, fault: latency, ms: 100, for: 1s}
  - {at: 6s, device: cam, fault: no_answer, for: 1s}
  - {at: 8s, device: cam, fault: corrupt, for: 1s}
  - {at: 10s, device: cam, fault: disconnect}
"""

NS = "urn:smartline:vision-station"


@pytest.fixture(autouse=True)
def _quiet() -> None:
    logging.getLogger("asyncua").setLevel(logging.CRITICAL)


async def _at(runner: ScenarioRunner, t_s: float) -> None:
    runner.advance_to(round(t_s * 1e9))
    await runner.settle()
    await asyncio.sleep(0.05)  # queued plant writes reach the server


async def _node(client: Client, name: str) -> Node:
    idx = await client.get_namespace_index(NS)
    return client.get_node(f"ns={idx};s=Vision.{name}")


async def _read(url: str, name: str, timeout_s: float = 1.0) -> object:
    """One value read over a fresh session, or the name of what the client raised."""
    client = Client(url, timeout=timeout_s)
    try:
        await asyncio.wait_for(client.connect(), 2 * timeout_s)
    except Exception as exc:
        return type(exc).__name__
    try:
        return await asyncio.wait_for((await _node(client, name)).read_value(), 2 * timeout_s)
    except Exception as exc:
        return type(exc).__name__
    finally:
        with_timeout = asyncio.wait_for(client.disconnect(), 1.0)
        with contextlib.suppress(Exception):
            await with_timeout


async def test_opcua_device_wired_both_ways_and_its_faults(tmp_path: Path) -> None:
    (tmp_path / "vision.yaml").write_text(PLANT)
    (tmp_path / "s.yaml").write_text(SCENARIO)
    s = Scenario.load(tmp_path / "s.yaml")
    async with ScenarioRunner(s, virtual=True) as runner:
        url = runner.urls()["cam"]
        assert url.startswith("opc.tcp://127.0.0.1:") and url.endswith("/smartline/")
        runner.advance_to(0)
        await _at(runner, 0.5)
        assert runner.plant.output("belt", "running")  # Station.Enabled (true) drives run
        client = Client(url, timeout=2)
        await client.connect()
        try:
            await (await _node(client, "Station.Enabled")).write_value(
                ua.DataValue(ua.Variant(False, ua.VariantType.Boolean)))
        finally:
            await client.disconnect()
        await _at(runner, 1.5)
        assert not runner.plant.output("belt", "running")  # the client's write reached it
        torque = await _read(url, "Inspection.CapTorque")
        assert isinstance(torque, float) and torque == pytest.approx(
            runner.plant.output("belt", "speed_hz") * 0.1, abs=1e-9)
        await _at(runner, 2.5)  # down: the port refuses connections
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0
        assert isinstance(await _read(url, "Inspection.CapTorque"), str)
        await _at(runner, 3.5)  # back on the same port with its values
        assert isinstance(await _read(url, "Inspection.CapTorque"), float)
        await _at(runner, 4.5)
        t0 = time.perf_counter()
        assert isinstance(await _read(url, "Inspection.Count"), int)
        assert time.perf_counter() - t0 >= 0.1  # latency on every answer
        await _at(runner, 6.5)
        assert isinstance(await _read(url, "Inspection.Count", 0.5), str)  # silent
        await _at(runner, 8.5)
        assert isinstance(await _read(url, "Inspection.Count", 0.5), str)  # garbage
        await _at(runner, 9.5)
        client = Client(url, timeout=2)
        await client.connect()
        try:
            count = await _node(client, "Inspection.Count")
            assert isinstance(await count.read_value(), int)
            await _at(runner, 10.5)  # the device hangs up once
            with pytest.raises(Exception):  # noqa: B017 - whatever asyncua raises on a cut link
                await asyncio.wait_for(count.read_value(), 2)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.disconnect(), 1)
        assert isinstance(await _read(url, "Inspection.Count"), int)  # new sessions work
