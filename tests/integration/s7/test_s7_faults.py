"""Faults of an S7 CPU: item errors, a small PDU, the CPU gone and back, no answer, garbage."""

from __future__ import annotations

import asyncio
import socket

import numpy as np
import pytest
from s7_support import driver, points, value_at

from smartline.core import (
    ConnectError,
    DeviceError,
    DeviceTimeoutError,
    LinkBrokenError,
    ProtocolError,
    Quality,
    Reason,
    WriteItem,
)
from smartline.hil.s7 import S7PlcSim


def filler_plc() -> S7PlcSim:
    plc = S7PlcSim({"a": "DB1.DBD0:REAL", "b": "DB1.DBW4:INT", "c": "DB2.DBD0:DINT",
                    "s": "DB2.DBB4:STRING[10]"}, dbs={1: 8, 2: 16})
    plc.set("a", 2.5)
    plc.set("b", -4)
    plc.set("c", 123456)
    plc.set("s", "ok")
    return plc


async def test_item_errors_mark_only_those_tags(s7_factory) -> None:
    plc = filler_plc()
    sim = await s7_factory(plc)
    # DB1.DBW100: past the end of DB1 (0x05); DB9: no such DB (0x0A)
    pts = points("DB1.DBD0:REAL", "DB1.DBW100", "DB2.DBD0:DINT", "DB9.DBW0",
                 "DB2.DBB4:STRING[10]")
    async with driver(sim) as d:
        r = await d.read(d.plan(pts))
        assert r.requests == 1  # one job with all five items
        assert r.quality.tolist() == [Quality.GOOD, Quality.BAD, Quality.GOOD, Quality.BAD,
                                      Quality.GOOD]
        assert r.reason[1] == Reason.DEVICE_ERROR and r.reason[3] == Reason.DEVICE_ERROR
        assert np.isnan(r.raw[1]) and np.isnan(r.raw[3])
        assert value_at(r, pts[0]) == 2.5 and value_at(r, pts[2]) == 123456
        assert r.texts == {pts[4].slot: "ok"}
        assert d.connected and d.health.failures == 0
        assert d.stats()["item_errors"] == {0x05: 1, 0x0A: 1}


async def test_access_denied_and_a_refused_write_name_their_meaning(s7_factory) -> None:
    plc = filler_plc()
    sim = await s7_factory(plc)
    plc.faults.protected = {2}
    pts = points("DB1.DBD0:REAL", "DB2.DBD0:DINT", "DB1.DBW100")
    async with driver(sim) as d:
        r = await d.read(d.plan(pts[:2]))
        assert r.quality.tolist() == [Quality.GOOD, Quality.BAD]
        with pytest.raises(DeviceError) as caught:
            await d.write([WriteItem(pts[0], 1.0), WriteItem(pts[1], 5)])
        assert caught.value.code == 0x03
        assert "t1: access to the object not allowed" in caught.value.message
        assert plc.get("a") == 1.0  # the items the CPU accepted are written
        with pytest.raises(DeviceError, match="address out of range"):
            await d.write([WriteItem(pts[2], 1)])
        assert d.connected


async def test_a_small_pdu_takes_more_requests_and_reads_the_same(s7_factory) -> None:
    plc = S7PlcSim({f"v{k}": f"DB1.DBD{40 * k}:DINT" for k in range(25)}
                   | {"big": "DB3.DBW0:INT[300]"}, dbs={1: 1024})
    for k in range(25):
        plc.set(f"v{k}", k * 1000 - 7)
    plc.set("big", list(range(-150, 150)))
    texts = [f"DB1.DBD{40 * k}:DINT" for k in range(25)] + ["DB3.DBW0:INT[300]"]
    results = {}
    for pdu in (480, 240):
        sim = await s7_factory(plc, pdu_max=pdu)
        async with driver(sim, pdu_size=480) as d:
            plan = d.plan(points(*texts))
            r = await d.read(plan)
            assert (r.quality == Quality.GOOD).all()
            results[pdu] = (r.requests, r.raw.copy())
            # every job and its answer fit the PDU the CPU negotiated (it answers 0x8500
            # otherwise, which would have made points BAD)
            assert d.pdu == pdu and plan.compiled.limits.pdu == pdu
    assert results[240][0] > results[480][0]
    assert np.array_equal(results[240][1], results[480][1])
    # 25 scattered DINTs (8 answer bytes each) + 600 bytes of INT[300]:
    # PDU 480: the array in pieces of 462 + 138; 27 items need 2 jobs by the item limit (20),
    #   the full 462-byte piece takes one alone → 3 jobs;
    # PDU 240: pieces 222 + 222 + 156 (cut between INTs); 812 answer bytes / 226 → 4 jobs
    assert results[480][0] == 3 and results[240][0] == 4


async def test_a_renegotiated_pdu_recompiles_the_plan(s7_factory) -> None:
    plc = S7PlcSim({"big": "DB1.DBB0:BYTE[400]"})
    sim = await s7_factory(plc, pdu_max=480)
    pts = points("DB1.DBB0:BYTE[400]")
    async with driver(sim) as d:
        plan = d.plan(pts)
        assert (await d.read(plan)).requests == 1
        port = sim.port
        await sim.stop()
        sim.pdu_max = 240
        await sim.start()
        assert sim.port == port
        loop = asyncio.get_running_loop()
        end = loop.time() + 5
        while True:
            try:
                r = await d.read(plan)
                break
            except (ConnectError, DeviceError, ProtocolError, OSError, Exception):
                if loop.time() > end:
                    raise
                await asyncio.sleep(0.05)
        assert d.pdu == 240 and r.requests == 2 and (r.quality == Quality.GOOD).all()
        assert plan.epoch == d.plan_epoch


async def test_the_cpu_gone_and_back(s7_factory) -> None:
    plc = filler_plc()
    sim = await s7_factory(plc)
    pts = points("DB1.DBD0:REAL")
    async with driver(sim) as d:
        plan = d.plan(pts)
        await d.read(plan)
        await sim.stop()
        with pytest.raises((LinkBrokenError, ConnectError, DeviceTimeoutError)):
            await d.read(plan)
        assert not d.connected
        with pytest.raises(ConnectError):  # refused, then backing off
            await asyncio.sleep(0.05)
            await d.read(plan)
        await sim.start()
        loop = asyncio.get_running_loop()
        end = loop.time() + 5
        while True:
            try:
                r = await d.read(plan)
                break
            except ConnectError:
                if loop.time() > end:
                    raise
                await asyncio.sleep(0.02)
        assert value_at(r, pts[0]) == 2.5
        assert d.health.connects == 2 and d.health.failures >= 2


async def test_no_answer_times_out_and_a_new_client_recovers(s7_factory) -> None:
    plc = filler_plc()
    sim = await s7_factory(plc)
    pts = points("DB1.DBD0:REAL")
    async with driver(sim, timeout_s=0.3) as d:
        plan = d.plan(pts)
        await d.read(plan)
        plc.faults.no_answer = True
        with pytest.raises(DeviceTimeoutError):
            await d.read(plan)
        plc.faults.no_answer = False
        await asyncio.sleep(0.3)
        r = await d.read(plan)
        assert (r.quality == Quality.GOOD).all()
        assert d.health.blocking_abandoned >= 1 or d.health.timeouts >= 1


async def test_garbage_is_a_protocol_error(s7_factory) -> None:
    plc = filler_plc()
    sim = await s7_factory(plc)
    async with driver(sim) as d:
        plan = d.plan(points("DB1.DBD0:REAL"))
        plc.faults.garbage = True
        with pytest.raises(ProtocolError, match="not an S7 answer"):
            await d.read(plan)
        plc.faults.garbage = False


async def test_a_job_refused_as_a_whole_marks_its_points(s7_factory) -> None:
    plc = filler_plc()
    sim = await s7_factory(plc)
    async with driver(sim) as d:
        plan = d.plan(points("DB1.DBD0:REAL", "DB2.DBD0:DINT"))
        plc.faults.header_error = 0x8104
        r = await d.read(plan)
        assert (r.quality == Quality.BAD).all() and (r.reason == Reason.DEVICE_ERROR).all()
        with pytest.raises(DeviceError, match="0x8104"):
            await d.write([WriteItem(plan.points[0], 1.0)])
        plc.faults.header_error = None
        assert (await d.read(plan)).quality.tolist() == [Quality.GOOD, Quality.GOOD]


async def test_connect_timeout_when_the_cpu_never_confirms() -> None:
    # a listener that accepts TCP but never answers the COTP connection request
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]

        class Silent:
            host, rack, slot = "127.0.0.1", 0, 1

        Silent.port = port  # type: ignore[attr-defined]
        d = driver(Silent(), timeout_s=0.3)  # type: ignore[arg-type]
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(DeviceTimeoutError):
            await d.connect()
        assert loop.time() - t0 < 1.0
        await d.close()


async def test_connection_refused_is_a_connect_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    class Nobody:
        host, rack, slot = "127.0.0.1", 0, 1

    Nobody.port = port  # type: ignore[attr-defined]
    d = driver(Nobody())  # type: ignore[arg-type]
    with pytest.raises(ConnectError):
        await d.connect()
    await d.close()
