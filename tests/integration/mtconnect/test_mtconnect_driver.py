"""The MTConnect driver against the simulated agent over real HTTP on 127.0.0.1: addressing
by id and name, value mapping, conditions, UNAVAILABLE, sequence gaps, agent restarts, device
model changes, streaming push and heartbeats, hostile and oversized documents, namespaces."""

from __future__ import annotations

import asyncio

import pytest
from mtc_support import driver, note, points, values

from smartline.core import (
    ConnectError,
    DeviceError,
    ProtocolError,
    Quality,
    Reason,
    VirtualClock,
)
from smartline.hil.mtconnect import CncMachineModel, MtConnectAgentSim
from smartline.testing.conformance import RecordingSink

SECOND = 1_000_000_000


def step(sim: MtConnectAgentSim, clock: VirtualClock, seconds: float) -> None:
    """Move the agent's clock on in small steps, ticking the machine each time."""
    for _ in range(int(seconds / 0.1)):
        clock.advance_ns(SECOND // 10)
        sim.tick()


async def test_ids_and_names_address_the_same_data_item(vsim, clock) -> None:
    step(vsim, clock, 1.5)  # READY 1 s, then the program runs
    pts = points("Xact", "d1_xpos", "Sspeed", "execution", "program", "PartCount", "Frt")
    async with driver(vsim.url()) as d:
        got = values(await d.read(d.plan(pts)), pts)
    assert got["Xact"] == got["d1_xpos"] and isinstance(got["Xact"], float)
    assert got["Sspeed"] == 12000.0
    assert got["execution"] == "ACTIVE" and got["program"] == "O1001"
    assert got["PartCount"] == 0.0 and got["Frt"] == 80.0


async def test_the_program_cycle_counts_parts_and_moves_the_axes(vsim, clock) -> None:
    pts = points("execution", "PartCount", "Xact", "Yact", "Sspeed", "Sload")
    async with driver(vsim.url()) as d:
        plan = d.plan(pts)
        seen = []
        for _ in range(12):  # 12 x 0.5 s: READY 1 s, ACTIVE 4 s, COMPLETED 0.5 s, READY …
            step(vsim, clock, 0.5)
            seen.append(values(await d.read(plan), pts))
    execs = [s["execution"] for s in seen]
    assert "ACTIVE" in execs and "PROGRAM_COMPLETED" in execs and execs[-1] in (
        "READY", "ACTIVE")
    assert seen[-1]["PartCount"] == 1.0
    xs = {s["Xact"] for s in seen if s["execution"] == "ACTIVE"}
    assert len(xs) >= 4, "the X axis does not move while the program runs"
    assert all(s["Sspeed"] == (12000.0 if s["execution"] == "ACTIVE" else 0.0) for s in seen)
    assert all(s["Sload"] > 0 for s in seen if s["execution"] == "ACTIVE")


async def test_source_timestamps_are_the_observations(vsim, clock) -> None:
    step(vsim, clock, 0.3)
    vsim.set("program", "O7777")
    when = clock.wall_ns()
    pts = points("program")
    async with driver(vsim.url()) as d:
        result = await d.read(d.plan(pts))
    # the agent writes microseconds
    assert int(result.sources()[0]) == when // 1000 * 1000


async def test_unknown_and_ambiguous_addresses_are_clear(sim) -> None:
    async with driver(sim.url()) as d:
        pts = points("Xac", "Xact.active", "Xact")
        plan = d.plan(pts)
        assert "Xac" in plan.compiled.unknown
        result = await d.read(plan)
        assert result.quality[0] == Quality.BAD and result.reason[0] == Reason.DEVICE_ERROR
        assert "no data item 'Xac'" in note(result, pts[0])
        assert "near matches: Xact" in note(result, pts[0])
        assert "is a SAMPLE" in note(result, pts[1])
        assert result.quality[2] == Quality.GOOD and d.connected


async def test_a_name_two_devices_share_must_be_addressed_by_id() -> None:
    machines = [CncMachineModel(), CncMachineModel(name="VMC-2", uuid="vmc-2", id_prefix="d2_")]
    async with MtConnectAgentSim(machines, tick_s=0) as agent:
        pts = points("Xact", "d2_xpos")
        async with driver(agent.url("")) as d:  # the whole agent: both devices
            result = await d.read(d.plan(pts))
            assert result.quality[0] == Quality.BAD
            text = note(result, pts[0])
            assert "ambiguous" in text and "d1_xpos" in text and "d2_xpos" in text
            assert result.quality[1] == Quality.GOOD
        async with driver(agent.url("VMC-2")) as d:  # one device: the name is unique
            result = await d.read(d.plan(points("Xact")))
            assert result.quality[0] == Quality.GOOD


async def test_conditions_are_states_with_their_active_entries(vsim, clock) -> None:
    pts = points("system", "system.active", "Stemp", "execution")
    async with driver(vsim.url()) as d:
        plan = d.plan(pts)
        step(vsim, clock, 1.5)
        assert values(await d.read(plan), pts) == {
            "system": "normal", "system.active": "", "Stemp": "normal",
            "execution": "ACTIVE"}
        vsim.raise_alarm("W22", "Low lube oil", level="Warning")
        got = values(await d.read(plan), pts)
        assert got["system"] == "warning" and got["system.active"] == "warning W22: Low lube oil"
        vsim.raise_alarm("1001", "Spindle overtemperature", key="stemp", qualifier="HIGH")
        vsim.raise_alarm("E7", "Servo alarm", level="Fault")
        got = values(await d.read(plan), pts)
        assert got["system"] == "fault" and got["Stemp"] == "fault"
        assert got["system.active"] == "warning W22: Low lube oil; fault E7: Servo alarm"
        assert got["execution"] == "STOPPED"  # a fault holds the program
        vsim.clear_alarm("E7")
        got = values(await d.read(plan), pts)
        assert got["system"] == "warning" and got["execution"] == "ACTIVE"
        vsim.clear_alarm()
        vsim.clear_alarm(key="stemp")
        got = values(await d.read(plan), pts)
        assert got["system"] == "normal" and got["Stemp"] == "normal"
        # a fresh connection sees the active conditions in /current
        vsim.raise_alarm("E9", "Door open", level="Fault")
    async with driver(vsim.url()) as d2:
        got = values(await d2.read(d2.plan(pts)), pts)
        assert got["system"] == "fault" and got["system.active"] == "fault E9: Door open"


async def test_unavailable_is_bad_with_a_note_never_a_number(vsim, clock) -> None:
    pts = points("Xact", "PartCount", "execution", "avail", "system")
    async with driver(vsim.url()) as d:
        plan = d.plan(pts)
        vsim.disconnect_adapter()
        result = await d.read(plan)
        for p in pts[:4]:
            i = p.slot
            assert result.quality[i] == Quality.BAD and result.reason[i] == Reason.DEVICE_ERROR
            assert note(result, p) == "unavailable (adapter disconnected or no data)"
        assert values(result, pts)["system"] == "unavailable"
        assert d.connected
        vsim.reconnect_adapter()
        result = await d.read(plan)
        assert (result.quality == Quality.GOOD).all()
        assert values(result, pts)["avail"] == "AVAILABLE"


async def test_a_gap_is_logged_with_the_lost_count_and_recovered(vsim, clock, caplog) -> None:
    pts = points("Xact", "program")
    async with driver(vsim.url()) as d:
        plan = d.plan(pts)
        await d.read(plan)
        asked = vsim.next_sequence
        vsim.flood(200)  # the ring keeps 64
        vsim.set("program", "O4242")
        result = await d.read(plan)
        lost = vsim.first_sequence - asked
        assert lost > 100
        stats = d.stats()
        assert stats["gaps"] == 1 and stats["observations_lost"] == lost
        assert values(result, pts)["program"] == "O4242"
        assert f"{lost} observation(s) lost" in caplog.text
        assert d.health.failures == 0 and d.connected
        vsim.set("program", "O4243")  # and polling goes on from the new nextSequence
        assert values(await d.read(plan), pts)["program"] == "O4243"
        assert d.stats()["gaps"] == 1


@pytest.mark.parametrize("schema", ["1.x", "2.6"])
async def test_out_of_range_in_both_error_schemas(vsim, schema) -> None:
    vsim.faults.error_schema = schema
    async with driver(vsim.url()) as d:
        plan = d.plan(points("program"))
        await d.read(plan)
        vsim.flood(100)
        await d.read(plan)
        assert d.stats()["gaps"] == 1


async def test_an_agent_restart_means_probe_and_current_again(vsim, clock) -> None:
    pts = points("program", "PartCount")
    async with driver(vsim.url()) as d:
        plan = d.plan(pts)
        await d.read(plan)
        old = vsim.instance_id
        vsim.set("program", "O5000")
        vsim.restart()  # sequences start at 1 again; keep-alive connections stay
        assert vsim.instance_id != old
        got = values(await d.read(plan), pts)
        stats = d.stats()
        assert stats["restarts"] == 1 and stats["probes"] == 2 and stats["gaps"] == 0
        assert got["program"] == "O5000"
        assert stats["instance_id"] == str(vsim.instance_id)
        vsim.set("program", "O5001")
        assert values(await d.read(plan), pts)["program"] == "O5001"


async def test_a_device_model_change_means_probe_again(vsim, clock) -> None:
    async with driver(vsim.url()) as d:
        plan = d.plan(points("program"))
        await d.read(plan)
        clock.advance_ns(SECOND)
        vsim.touch_model()
        await d.read(plan)
        assert d.stats()["model_changes"] == 1 and d.stats()["probes"] == 2


@pytest.mark.parametrize(("fault", "message"), [
    ("entity_bomb", "declares a DTD"),
    ("external_entity", "declares a DTD"),
    ("truncated", "not well-formed XML"),
    ("oversize", "grew past max_document_bytes"),
])
async def test_hostile_broken_and_huge_documents_are_refused(vsim, fault, message) -> None:
    vsim.faults.oversize_bytes = 300_000
    async with driver(vsim.url(), max_document_bytes=100_000) as d:
        plan = d.plan(points("program"))
        await d.read(plan)
        vsim.faults.document = fault
        with pytest.raises(ProtocolError, match=message):
            await d.read(plan)
        assert d.stats()["refused_documents"] == 1
        vsim.faults.document = None
        for _ in range(100):  # back after the backoff
            try:
                result = await d.read(plan)
                break
            except ConnectError:
                await asyncio.sleep(0.02)
        assert result.quality[0] == Quality.GOOD


async def test_a_document_announced_too_large_is_refused_unread() -> None:
    machines = [CncMachineModel(), CncMachineModel(name="VMC-2", uuid="vmc-2", id_prefix="d2_")]
    async with MtConnectAgentSim(machines, tick_s=0) as agent:
        d = driver(agent.url(""), max_document_bytes=4096)  # the probe of two is larger
        with pytest.raises(ConnectError, match="refused unread"):
            await d.connect()
        await d.close()


@pytest.mark.parametrize("version", ["1.1", "1.3", "2.3"])
async def test_every_namespace_generation(version) -> None:
    async with MtConnectAgentSim(tick_s=0, version=version) as agent, driver(agent.url()) as d:
        pts = points("Xact", "execution", "system")
        result = await d.read(d.plan(pts))
        assert (result.quality == Quality.GOOD).all()


async def test_streaming_pushes_changes_and_heartbeats(sim) -> None:
    sim.raise_alarm("E1", "hold", level="Fault")  # a held machine: only heartbeats flow
    pts = points("program", "PartCount", "system.active")
    async with driver(sim.url(), interval_ms=0, heartbeat_ms=100) as d:
        sink = RecordingSink()
        await d.subscribe(pts, sink)
        await sink.wait_for(lambda: sink.covers(pts), 2, "initial values")
        await sink.wait_for(lambda: d.stats()["heartbeats"] >= 2, 2, "heartbeats")
        sim.set("program", "O3131")
        await sink.wait_for(lambda: sink.latest_equals(pts[0], "O3131"), 2, "the program")
        sim.clear_alarm()
        await sink.wait_for(lambda: sink.latest_equals(pts[2], ""), 2, "the cleared alarm")
        assert d.health.reads == 0 and d.stats()["streaming"] is True
        # a read while streaming is served from what the stream brought: no request
        requests = d.health.requests
        assert values(await d.read(d.plan(pts)), pts)["program"] == "O3131"
        assert d.health.requests == requests


async def test_a_stream_that_falls_out_of_the_ring_recovers(clock) -> None:
    async with MtConnectAgentSim(clock=clock, tick_s=0, buffer_size=64) as agent:
        pts = points("program")
        async with driver(agent.url(), interval_ms=0, heartbeat_ms=200) as d:
            sink = RecordingSink()
            await d.subscribe(pts, sink)
            await sink.wait_for(lambda: sink.covers(pts), 2, "initial values")
            asked = agent.next_sequence
            agent.flood(300)
            agent.set("program", "O6060")
            await sink.wait_for(lambda: sink.latest_equals(pts[0], "O6060"), 3, "recovery")
            stats = d.stats()
            assert stats["gaps"] == 1
            assert stats["observations_lost"] == agent.first_sequence - asked
            assert d.health.failures == 0


async def test_a_restart_while_streaming_resubscribes(sim) -> None:
    pts = points("program")
    async with driver(sim.url(), interval_ms=0, heartbeat_ms=200) as d:
        sink = RecordingSink()
        await d.subscribe(pts, sink)
        await sink.wait_for(lambda: sink.covers(pts), 2, "initial values")
        sim.set("program", "O8080")
        sim.restart()
        await sink.wait_for(lambda: d.stats()["restarts"] == 1, 3, "the restart")
        sim.set("program", "O8081")
        await sink.wait_for(lambda: sink.latest_equals(pts[0], "O8081"), 3, "pushes")


async def test_a_silent_stream_is_a_timeout_and_comes_back(sim) -> None:
    pts = points("program")
    async with driver(sim.url(), timeout_s=0.3, interval_ms=0, heartbeat_ms=100) as d:
        sink = RecordingSink()
        await d.subscribe(pts, sink)
        await sink.wait_for(lambda: sink.covers(pts), 2, "initial values")
        sim.faults.latency_s = 1.5  # no part, no heartbeat
        await sink.wait_for(lambda: bool(sink.lost_slots), 3, "the stream to be given up")
        assert d.health.timeouts >= 1
        sim.faults.latency_s = 0.0
        sim.set("program", "O1212")
        await sink.wait_for(lambda: sink.latest_equals(pts[0], "O1212"), 5, "pushes again")


async def test_a_device_the_agent_does_not_have_is_a_device_error(sim) -> None:
    d = driver(sim.url("Nope"))
    with pytest.raises(DeviceError, match="NO_DEVICE: Could not find the device 'Nope'"):
        await d.connect()
    await d.close()
