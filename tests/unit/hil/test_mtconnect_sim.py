"""The simulated MTConnect agent on its own: the machine model, the ring and its sequences,
the HTTP API (probe, current, sample, streaming, errors) and the faults — read with a bare
aiohttp client and the standard library's ElementTree, never with the driver."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator

import aiohttp
import pytest

from smartline.core import VirtualClock
from smartline.hil.mtconnect import CncMachineModel, MtConnectAgentSim, camel_case

SECOND = 1_000_000_000


def local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def header(root: ET.Element) -> dict[str, str]:
    return dict(next(e for e in root if local(e.tag) == "Header").attrib)


def observations(root: ET.Element) -> list[ET.Element]:
    return [e for e in root.iter() if "dataItemId" in e.attrib]


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
async def agent(clock: VirtualClock) -> AsyncIterator[MtConnectAgentSim]:
    async with MtConnectAgentSim(clock=clock, tick_s=0, buffer_size=32) as sim:
        yield sim


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def get(http: aiohttp.ClientSession, sim: MtConnectAgentSim,
              path: str) -> tuple[int, ET.Element]:
    async with http.get(sim.http_url(path)) as resp:
        return resp.status, ET.fromstring(await resp.read())


def test_the_machine_runs_its_program_cycle() -> None:
    m = CncMachineModel(cycle_s=2.0, ready_s=1.0, completed_s=0.5)
    seen = []
    for k in range(0, 80):
        m.step(k * 0.1)
        seen.append((m.phase, m.part_count))
    phases = [p for p, _ in seen]
    assert phases[0] == "READY" and phases[15] == "ACTIVE" and phases[32] == "PROGRAM_COMPLETED"
    assert seen[-1][1] == 2  # 3.5 s per cycle, 7.9 s
    m.raise_alarm("E1", "servo", level="Fault")
    m.step(8.0)
    before = m.values()
    m.step(20.0)
    assert m.values() == before, "a fault holds the machine"
    m.clear_alarm()
    m.step(21.0)
    assert m.values() != before
    with pytest.raises(ValueError, match="Warning or Fault"):
        m.raise_alarm("X", "x", level="Normal")


def test_element_names_are_the_camel_case_of_the_type() -> None:
    assert camel_case("ROTARY_VELOCITY") == "RotaryVelocity"
    assert camel_case("PART_COUNT") == "PartCount"


async def test_probe_lists_devices_components_and_data_items(agent, http) -> None:
    status, root = await get(http, agent, "probe")
    assert status == 200 and local(root.tag) == "MTConnectDevices"
    assert root.tag.startswith("{urn:mtconnect.org:MTConnectDevices:2.3}")
    h = header(root)
    assert h["instanceId"] == str(agent.instance_id) and "deviceModelChangeTime" in h
    items = {e.get("id"): e.attrib for e in root.iter() if local(e.tag) == "DataItem"}
    assert items["d1_xpos"] == {"id": "d1_xpos", "name": "Xact", "type": "POSITION",
                                "category": "SAMPLE", "subType": "ACTUAL",
                                "units": "MILLIMETER"}
    assert items["d1_system"]["category"] == "CONDITION"
    assert {local(e.tag) for e in root.iter()} >= {"Device", "Axes", "Linear", "Rotary",
                                                   "Controller", "Path"}


async def test_current_and_sample_with_sequences(agent, clock, http) -> None:
    _, root = await get(http, agent, "VMC-3Axis/current")
    h = header(root)
    assert int(h["nextSequence"]) == agent.next_sequence and h["firstSequence"] == "1"
    obs = {e.get("dataItemId"): e for e in observations(root)}
    assert obs["d1_execution"].text == "READY" and local(obs["d1_system"].tag) == "Normal"
    assert local(obs["d1_sspeed"].tag) == "RotaryVelocity"
    _, root = await get(http, agent, "sample?from=1&count=5")
    seqs = [int(e.get("sequence", "0")) for e in observations(root)]
    assert sorted(seqs) == [1, 2, 3, 4, 5] and header(root)["nextSequence"] == "6"
    _, root = await get(http, agent, "sample?count=-3")  # the last three
    seqs = sorted(int(e.get("sequence", "0")) for e in observations(root))
    assert seqs == list(range(agent.next_sequence - 3, agent.next_sequence))
    nxt = agent.next_sequence
    clock.advance_ns(2 * SECOND)
    assert agent.tick() > 0
    _, root = await get(http, agent, f"sample?from={nxt}")
    values = {e.get("dataItemId"): e.text for e in observations(root)}
    assert values["d1_execution"] == "ACTIVE" and values["d1_sspeed"] == "12000.0"


async def test_errors_are_error_documents(agent, http) -> None:
    agent.flood(100)  # the ring keeps 32
    status, root = await get(http, agent, "sample?from=1")
    assert status == 400 and local(root.tag) == "MTConnectError"
    err = next(e for e in root.iter() if local(e.tag) == "Error")
    assert err.get("errorCode") == "OUT_OF_RANGE"
    assert err.text == f"'from' must be greater than {agent.first_sequence - 1}"
    agent.faults.error_schema = "2.6"
    status, root = await get(http, agent, "sample?from=1")
    oor = next(e for e in root.iter() if local(e.tag) == "OutOfRange")
    assert {local(e.tag) for e in oor.iter()} >= {"ErrorMessage", "QueryParameter", "Minimum"}
    agent.faults.error_schema = "1.x"
    status, root = await get(http, agent, "sample?count=0")
    assert status == 400
    status, root = await get(http, agent, "Nowhere/probe")
    assert status == 404 and "NO_DEVICE" in ET.tostring(root, encoding="unicode")
    status, root = await get(http, agent, "sample?from=abc")
    assert "INVALID_PARAMETER_VALUE" in ET.tostring(root, encoding="unicode")


async def test_restart_disconnect_and_model_change(agent, clock, http) -> None:
    old = agent.instance_id
    agent.restart()
    assert agent.instance_id != old and agent.first_sequence == 1
    agent.disconnect_adapter()
    _, root = await get(http, agent, "current")
    for e in observations(root):
        if local(e.tag) in ("Normal", "Warning", "Fault", "Unavailable"):
            assert local(e.tag) == "Unavailable"
        else:
            assert e.text == "UNAVAILABLE"
    agent.reconnect_adapter()
    _, root = await get(http, agent, "current")
    assert not any(e.text == "UNAVAILABLE" for e in observations(root))
    before = header(root)["deviceModelChangeTime"]
    clock.advance_ns(SECOND)
    agent.touch_model()
    _, root = await get(http, agent, "probe")
    assert header(root)["deviceModelChangeTime"] != before


async def test_conditions_in_current_list_every_active_one(agent, http) -> None:
    agent.raise_alarm("W1", "lube", level="Warning")
    agent.raise_alarm("F2", "servo", level="Fault", qualifier="HIGH")
    _, root = await get(http, agent, "current")
    active = [(local(e.tag), e.get("nativeCode"), e.text) for e in observations(root)
              if e.get("dataItemId") == "d1_system"]
    assert active == [("Warning", "W1", "lube"), ("Fault", "F2", "servo")]
    agent.clear_alarm("W1")
    _, root = await get(http, agent, "current")
    active = [local(e.tag) for e in observations(root) if e.get("dataItemId") == "d1_system"]
    assert active == ["Fault"]
    agent.clear_alarm()
    _, root = await get(http, agent, "current")
    active = [local(e.tag) for e in observations(root) if e.get("dataItemId") == "d1_system"]
    assert active == ["Normal"]


async def test_streaming_parts_are_framed_and_heartbeats_flow(agent, http) -> None:
    url = agent.http_url(f"sample?from={agent.next_sequence}&interval=0&heartbeat=50")
    async with http.get(url) as resp:
        ctype = resp.headers["Content-Type"]
        assert ctype == f"multipart/mixed;boundary={agent.boundary}"
        agent.set("program", "O9")
        buf = b""
        while buf.count(b"--" + agent.boundary.encode()) < 3:
            buf += await asyncio.wait_for(resp.content.readany(), 2)
    parts = buf.split(b"--" + agent.boundary.encode())[1:3]
    docs = []
    for part in parts:
        head, _, body = part.partition(b"\r\n\r\n")
        length = int(head.decode().split("Content-length: ")[1].split("\r\n")[0])
        docs.append(ET.fromstring(body[:length]))
    assert [e.text for e in observations(docs[0])] == ["O9"]
    assert observations(docs[1]) == []  # a heartbeat: the header alone
    assert header(docs[1])["nextSequence"] == str(agent.next_sequence)


async def test_a_stream_that_falls_out_of_the_ring_gets_an_error_part(agent, http) -> None:
    url = agent.http_url(f"sample?from={agent.next_sequence}&interval=0&heartbeat=1000")
    async with http.get(url) as resp:
        agent.flood(100)
        body = await asyncio.wait_for(resp.read(), 2)  # the agent ends the stream
    assert b"OUT_OF_RANGE" in body


@pytest.mark.parametrize(("fault", "expect"), [
    ("entity_bomb", b"<!ENTITY lol9"), ("external_entity", b'SYSTEM "file:///etc/passwd"'),
])
async def test_hostile_documents_are_what_they_claim(agent, http, fault, expect) -> None:
    agent.faults.document = fault
    async with http.get(agent.http_url("current")) as resp:
        body = await resp.read()
    assert expect in body and b"<!DOCTYPE" in body


async def test_oversize_is_sent_without_a_length_and_truncated_is_cut(agent, http) -> None:
    agent.faults.document = "oversize"
    agent.faults.oversize_bytes = 500_000
    async with http.get(agent.http_url("current")) as resp:
        assert resp.content_length is None
        assert len(await resp.read()) >= 500_000
    agent.faults.document = "truncated"
    async with http.get(agent.http_url("current")) as resp:
        with pytest.raises(ET.ParseError):
            ET.fromstring(await resp.read())


async def test_kick_ends_streams_and_latency_delays(agent, http) -> None:
    url = agent.http_url("sample?interval=0&heartbeat=1000")
    async with http.get(url) as resp:
        await asyncio.sleep(0.05)
        agent.kick()
        with pytest.raises(aiohttp.ClientPayloadError):
            await asyncio.wait_for(resp.read(), 2)
    agent.faults.latency_s = 0.2
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await get(http, agent, "probe")
    assert loop.time() - t0 >= 0.2


def test_ids_must_be_unique_across_machines() -> None:
    with pytest.raises(ValueError, match="id_prefix"):
        MtConnectAgentSim([CncMachineModel(), CncMachineModel(name="other")])
