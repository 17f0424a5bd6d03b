"""Faults: timeout, refused, exception responses, garbage, truncation, CRC, disconnect,
backoff, demotion — against the simulator's injected faults."""

from __future__ import annotations

import asyncio
import time

import pytest
from modbus_support import FAST_RETRY, make_driver, points

from smartline.core import (
    ConnectError,
    DeviceDemotedError,
    DeviceError,
    DeviceTimeoutError,
    LinkBrokenError,
    ProtocolError,
    Quality,
    Reason,
    RetryPolicy,
    WriteItem,
    reason_for,
)
from smartline.drivers.modbus import ModbusGatewayError
from smartline.hil.modbus import ModbusDeviceSim, ModbusServerSim

MAP = {"a": "hr:0", "b": "hr:1:float32", "c": "hr:200:int16", "coil": "co:0"}


def device(unit: int = 1) -> ModbusDeviceSim:
    return ModbusDeviceSim(unit, MAP, initial={"a": 11, "b": 2.5, "c": -3, "coil": True})


PTS = points(*MAP.values(), names=list(MAP))


async def test_timeout_marks_device_failed_within_its_timeout(sim_factory, transport) -> None:
    dev = device()
    sim = await sim_factory(dev, transport)
    async with make_driver(sim, timeout_s=0.2) as d:
        plan = d.plan(PTS)
        await d.read(plan)
        dev.faults.latency_s = 0.6
        t0 = time.perf_counter()
        with pytest.raises(DeviceTimeoutError) as info:
            await d.read(plan)
        assert time.perf_counter() - t0 < 0.2 + 0.25  # its timeout, not pymodbus's (3 s)
        assert reason_for(info.value) is Reason.TIMEOUT
        assert d.health.timeouts == 1 and d.health.failures_in_row == 1
        dev.faults.clear()
        await asyncio.sleep(0.7)  # the late answer drains; backoff passes
        result = await d.read(plan)
        assert (result.quality == Quality.GOOD).all()
        assert d.health.failures_in_row == 0


async def test_no_answer_is_a_timeout(sim_factory, transport) -> None:
    dev = device()
    sim = await sim_factory(dev, transport)
    async with make_driver(sim, timeout_s=0.15) as d:
        plan = d.plan(PTS)
        dev.faults.no_answer = True
        with pytest.raises(DeviceTimeoutError):
            await d.read(plan)


async def test_connection_refused_then_reconnect_with_backoff(sim_factory) -> None:
    sim = ModbusServerSim(device())
    await sim.start()
    await sim.stop()  # the port is known but nobody listens: refused
    retry = RetryPolicy(backoff_initial_s=0.05, backoff_max_s=1.0, jitter=0.2, demote_after=10)
    d = make_driver(sim, retry=retry)
    plan = d.plan(PTS)
    with pytest.raises(ConnectError) as first:
        await d.read(plan)
    assert reason_for(first.value) is Reason.NOT_CONNECTED
    t0 = time.perf_counter()
    with pytest.raises(ConnectError, match="next attempt"):
        await d.read(plan)  # within the backoff: no connection attempt at all
    assert time.perf_counter() - t0 < 0.1
    delays = []
    for _ in range(3):
        await asyncio.sleep((d.health.next_attempt_ns - d.clock.now_ns()) / 1e9 + 0.001)
        before = d.clock.now_ns()
        with pytest.raises(ConnectError):
            await d.read(plan)
        delays.append((d.health.next_attempt_ns - before) / 1e9)
    assert delays[0] < delays[1] < delays[2]  # exponential, within ±20 % jitter
    await sim.start()
    await asyncio.sleep((d.health.next_attempt_ns - d.clock.now_ns()) / 1e9 + 0.001)
    result = await d.read(plan)
    assert (result.quality == Quality.GOOD).all()
    assert d.health.connects == 1
    await d.close()
    await sim.stop()


@pytest.mark.parametrize("code", [1, 2, 3, 4, 6])
async def test_exception_response_marks_only_that_request(sim_factory, code) -> None:
    dev = device()
    sim = await sim_factory(dev)
    async with make_driver(sim, max_gap=0) as d:
        plan = d.plan(PTS)
        assert plan.request_count == 3  # co:0, hr:0..2, hr:200
        dev.faults.exception = code
        dev.faults.remaining = 1  # the first request (the coil) fails
        result = await d.read(plan)
        assert result.quality.tolist() == [Quality.GOOD, Quality.GOOD, Quality.GOOD, Quality.BAD]
        assert result.reason[3] == Reason.DEVICE_ERROR
        assert d.health.failures_in_row == 0  # the device answered: it is alive
        assert d.stats()["exceptions"] == {code: 1}
        assert str(code) in d.health.last_error


async def test_exception_on_write_raises_device_error_with_code(sim_factory) -> None:
    dev = device()
    sim = await sim_factory(dev)
    async with make_driver(sim) as d:
        dev.faults.exception = 3
        with pytest.raises(DeviceError) as info:
            await d.write([WriteItem(PTS[0], 5)])
        assert info.value.code == 3 and "illegal data value" in str(info.value)
        dev.faults.clear()
        with pytest.raises(DeviceError) as info:  # a read-only register of the map
            await d.write([WriteItem(points("hr:300")[0], 1)])
        assert info.value.code == 2


@pytest.mark.parametrize("code", [10, 11])
async def test_gateway_exceptions_count_as_device_failures(sim_factory, code) -> None:
    dev = device()
    sim = await sim_factory(dev)
    async with make_driver(sim) as d:
        dev.faults.exception = code
        with pytest.raises(ModbusGatewayError) as info:
            await d.read(d.plan(PTS))
        assert info.value.code == code
        assert reason_for(info.value) is Reason.TIMEOUT
        assert d.health.failures_in_row == 1


async def test_unknown_unit_behind_gateway_answers_exception_11(sim_factory) -> None:
    sim = await sim_factory(device(1))
    async with make_driver(sim) as ok:
        await ok.read(ok.plan(PTS))
    d = make_driver(sim, 9)
    with pytest.raises(ModbusGatewayError, match="gateway target"):
        await d.read(d.plan(PTS))
    await d.close()


async def test_garbage_is_a_protocol_error_and_the_link_recovers(sim_factory, transport) -> None:
    dev = device()
    sim = await sim_factory(dev, transport)
    async with make_driver(sim, timeout_s=0.2) as d:
        plan = d.plan(PTS)
        dev.faults.garbage = True
        dev.faults.remaining = 1
        with pytest.raises(ProtocolError) as info:
            await d.read(plan)
        assert reason_for(info.value) is Reason.PROTOCOL_ERROR
        await asyncio.sleep(0.1)
        result = await d.read(plan)
        assert (result.quality == Quality.GOOD).all()


async def test_truncated_frame_is_a_protocol_error(sim_factory, transport) -> None:
    dev = device()
    sim = await sim_factory(dev, transport)
    async with make_driver(sim, timeout_s=0.2) as d:
        dev.faults.truncate = 4
        with pytest.raises(ProtocolError, match="truncated"):
            await d.read(d.plan(PTS))


@pytest.mark.parametrize("transport_", ["rtu", "rtuovertcp"])
async def test_crc_error_is_a_protocol_error_at_once(sim_factory, transport_) -> None:
    dev = device()
    sim = await sim_factory(dev, transport_)
    async with make_driver(sim, timeout_s=1.0) as d:
        plan = d.plan(PTS)
        dev.faults.corrupt_crc = True
        dev.faults.remaining = 1
        t0 = time.perf_counter()
        with pytest.raises(ProtocolError, match="CRC"):
            await d.read(plan)
        assert time.perf_counter() - t0 < 0.5  # seen, not waited out
        await asyncio.sleep(0.05)
        assert (await d.read(plan)).quality.max() == Quality.GOOD
        assert d.stats()["bad_frames"] == 1


async def test_disconnect_breaks_the_link_and_the_driver_reconnects(sim_factory) -> None:
    dev = device()
    sim = await sim_factory(dev)
    async with make_driver(sim) as d:
        plan = d.plan(PTS)
        await d.read(plan)
        dev.faults.disconnect = True
        dev.faults.remaining = 1
        with pytest.raises(LinkBrokenError):
            await d.read(plan)
        await asyncio.sleep(0.05)
        assert (await d.read(plan)).quality.max() == Quality.GOOD
        assert d.health.connects == 2


async def test_demotion_after_failures_in_a_row_and_recovery(sim_factory) -> None:
    dev = device()
    sim = await sim_factory(dev)
    async with make_driver(sim, timeout_s=0.05, retry=FAST_RETRY) as d:
        plan = d.plan(PTS)
        dev.faults.no_answer = True
        for _ in range(3):
            with pytest.raises(DeviceTimeoutError):
                await d.read(plan)
            await asyncio.sleep(0.06)
        assert d.health.demoted and d.stats()["demotions"] == 1
        t0 = time.perf_counter()
        with pytest.raises(DeviceDemotedError):
            await d.read(plan)  # skipped: costs nothing
        assert time.perf_counter() - t0 < 0.05
        dev.faults.clear()
        await asyncio.sleep(0.55)  # demote_period_s
        result = await d.read(plan)
        assert (result.quality == Quality.GOOD).all() and not d.health.demoted


async def test_a_failing_device_does_not_delay_the_others(sim_factory) -> None:
    devs = [device(unit) for unit in (1, 2, 3)]
    sims = [await sim_factory(dv) for dv in devs]
    drivers = [make_driver(s, timeout_s=0.6, name=f"d{i}") for i, s in enumerate(sims)]
    plans = [d.plan(PTS) for d in drivers]
    for d, p in zip(drivers, plans, strict=True):
        await d.read(p)
    devs[1].faults.no_answer = True
    done: dict[int, float] = {}

    async def one(i: int) -> None:
        t0 = time.perf_counter()
        try:
            await drivers[i].read(plans[i])
        finally:
            done[i] = time.perf_counter() - t0

    results = await asyncio.gather(*(one(i) for i in range(3)), return_exceptions=True)
    assert isinstance(results[1], DeviceTimeoutError)
    assert done[0] < 0.25 and done[2] < 0.25 and 0.5 < done[1] < 0.85
    for d in drivers:
        await d.close()
