"""The MTConnect agent on a virtual clock: documents say the clock's time (timestamps,
``creationTime``, ``instanceId``), the machines move to the time of each request, the port
goes away and comes back within the call that says so, and the scenario endpoint drives a
plain :class:`CncMachineModel` through the simulator's public API (composition)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import aiohttp

from smartline.core import VirtualClock
from smartline.hil.mtconnect import CncMachineModel, MtConnectAgentSim
from smartline.hil.scenario import Scenario
from smartline.hil.scenario._endpoints import MtConnectEndpoint

ROOT = Path(__file__).resolve().parents[3]


async def _get(agent: MtConnectAgentSim, path: str) -> bytes:
    async with aiohttp.ClientSession() as http, http.get(agent.http_url(path)) as resp:
        return await resp.read()


def _connects(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


async def _documents() -> list[bytes]:
    clock = VirtualClock()
    agent = MtConnectAgentSim(clock=clock, tick_s=0, tick_on_request=True, seed=7)
    async with agent:
        docs = [await _get(agent, "current")]
        clock.advance_ns(2_500_000_000)  # the machine is in its program at 2.5 s
        docs.append(await _get(agent, "current"))
        docs.append(await _get(agent, "sample?from=1&count=50"))
    return docs


async def test_the_same_requests_at_the_same_virtual_times_give_the_same_bytes() -> None:
    first, second = await _documents(), await _documents()
    assert first == second
    assert b'creationTime="2026-01-01T00:00:02.500000Z"' in first[1]
    assert b'instanceId="1767225600000"' in first[0]  # the virtual start, in seconds
    assert b">ACTIVE<" in first[1]  # moved to the request's time, no background ticker


async def test_pause_refuses_at_once_and_resume_listens_at_once() -> None:
    agent = MtConnectAgentSim(clock=VirtualClock(), tick_s=0)
    async with agent:
        port = agent.port
        assert await asyncio.to_thread(_connects, port)
        agent.pause()  # no await: the very next connect is refused
        assert not await asyncio.to_thread(_connects, port)
        agent.resume()  # no await: the kernel takes connections on the same port now
        assert agent.port == port and await asyncio.to_thread(_connects, port)
        await agent.settle()
        assert b"<MTConnectStreams" in await _get(agent, "current")


async def test_endpoint_drives_a_plain_machine_model() -> None:
    spec = Scenario.load(ROOT / "hil_sim" / "scenarios" / "cnc-cell.yaml").devices["vmc"]
    ep = MtConnectEndpoint(spec, clock=VirtualClock(), seed=5)
    assert type(ep.machine) is CncMachineModel and not ep.machine.external
    ep.set("PartCount", 3)
    ep.set("execution", 1)
    assert ep.machine.external  # the plant drives it: its own program no longer runs
    assert ep.get("PartCount") == 3 and ep.get("execution") == "ACTIVE"
    ep.fault("unavailable", {})
    ep.set("PartCount", 4)  # held while the adapter is away ...
    assert ep.agent.machine().values()["part_count"] == "4"
    ep.clear("unavailable")  # ... and published when it is back
    await ep.start()
    try:
        assert b">4</PartCount>" in await _get(ep.agent, "current")
    finally:
        await ep.stop()
