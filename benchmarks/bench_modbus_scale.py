"""Scale: 500 simulated Modbus/TCP devices × 30 tags, polled every second for 60 s.

The load of EMQ Neuron's published benchmark (Neuron, written in C, reports 124 % CPU of a
4-core server for it). One connection per device, devices polled concurrently (pymodbus
serialises requests on one connection). The simulated devices run in a separate process;
only the polling process's CPU time is counted. The same load is then driven with the raw
pymodbus client (the same requests, no decoding) for the baseline of the same run::

    pytest benchmarks/bench_modbus_scale.py -m soak -p no:cacheprovider -s

``SMARTLINE_SCALE_DEVICES``, ``SMARTLINE_SCALE_S`` (and ``SMARTLINE_SCALE_RAW_S`` for the
baseline) shrink it for a quick look. Writes its part of the Modbus section of RESULTS.md.
"""

from __future__ import annotations

import asyncio
import os
import platform
import resource
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pymodbus
import pytest
from pymodbus.client import AsyncModbusTcpClient

from _support import modbus_servers, write_section
from smartline.core import DeviceSpec, LinkPool, Point, RetryPolicy, parse_url
from smartline.drivers.modbus import ModbusReadPlan, ModbusTcpDriver
from smartline.tags import parse_modbus

DEVICES = int(os.environ.get("SMARTLINE_SCALE_DEVICES", "500"))
TAGS = 30
DURATION_S = float(os.environ.get("SMARTLINE_SCALE_S", "60"))
RAW_S = float(os.environ.get("SMARTLINE_SCALE_RAW_S", str(DURATION_S)))
PERIOD_S = 1.0
TYPES = ["uint16", "int16", "float32", "uint32", "int32", "float32:cdab"]

pytestmark = [pytest.mark.soak, pytest.mark.timeout(int(DURATION_S + RAW_S) + 300)]


def tags() -> list[Point]:
    pts, offset = [], 0
    for i in range(TAGS):
        addr = parse_modbus(f"hr:{offset}:{TYPES[i % len(TYPES)]}")
        pts.append(Point(f"t{i}", i, addr))
        offset += addr.registers
    return pts


@pytest.fixture(scope="module")
def servers() -> Iterator[list[str]]:
    with modbus_servers(DEVICES, registers=64, stop_timeout_s=30) as urls:
        yield urls


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def poll(devices: list[Callable[[], Awaitable[Any]]], duration_s: float
               ) -> dict[str, float]:
    """Poll every device once per period at absolute deadlines; count what misses its period."""
    loop = asyncio.get_running_loop()
    cycles = int(duration_s / PERIOD_S)
    missed = failed = 0
    spans: list[float] = []
    t0 = loop.time() + 0.2
    c0 = cpu_s()
    for k in range(cycles):
        deadline = t0 + k * PERIOD_S
        await asyncio.sleep(max(0.0, deadline - loop.time()))
        start = loop.time()
        tasks = [asyncio.ensure_future(d()) for d in devices]
        done, pending = await asyncio.wait(tasks, timeout=deadline + PERIOD_S - loop.time())
        spans.append(loop.time() - start)
        missed += len(pending)
        for t in pending:
            t.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        failed += sum(1 for t in done if t.exception() is not None)
    wall = loop.time() - t0
    cpu = cpu_s() - c0
    return {"cycles": cycles, "missed": missed, "failed": failed, "wall": wall, "cpu": cpu,
            "cpu_pct": 100 * cpu / wall, "tags_per_s": cycles * len(devices) * TAGS / wall,
            "span_p50": statistics.median(spans), "span_max": max(spans)}


async def run_smartline(urls: list[str]) -> dict[str, float]:
    pool = LinkPool()
    retry = RetryPolicy(demote_after=1000)
    drivers = [ModbusTcpDriver(DeviceSpec(f"d{i}", parse_url(u), timeout_s=0.9, retry=retry),
                               links=pool) for i, u in enumerate(urls)]
    plans = [d.plan(tags()) for d in drivers]
    assert all(isinstance(p.compiled, ModbusReadPlan) and p.request_count == 1 for p in plans)
    await asyncio.gather(*(d.connect() for d in drivers))
    try:
        return await poll([lambda d=d, p=p: d.read(p)  # type: ignore[misc]
                           for d, p in zip(drivers, plans, strict=True)], DURATION_S)
    finally:
        await asyncio.gather(*(d.close() for d in drivers))
        await pool.aclose()


async def run_raw(urls: list[str]) -> dict[str, float]:
    clients = [AsyncModbusTcpClient("127.0.0.1", port=parse_url(u).port or 502, timeout=0.9,
                                    retries=0) for u in urls]
    await asyncio.gather(*(c.connect() for c in clients))
    count = tags()[-1].address.end  # type: ignore[attr-defined]

    async def one(c: AsyncModbusTcpClient) -> None:
        rr = await c.read_holding_registers(0, count=count, device_id=1)
        assert not rr.isError()

    try:
        return await poll([lambda c=c: one(c) for c in clients], RAW_S)  # type: ignore[misc]
    finally:
        for c in clients:
            c.close()


def test_modbus_scale(servers: list[str]) -> None:
    import logging

    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    sl = asyncio.run(run_smartline(servers))
    raw = asyncio.run(run_raw(servers))
    ratio = sl["cpu"] / raw["cpu"] if raw["cpu"] else float("nan")
    text = (
        f"### Scale — {DEVICES} Modbus/TCP devices × {TAGS} tags every {PERIOD_S:g} s for "
        f"{DURATION_S:g} s\n\n"
        "`python -m pytest benchmarks/bench_modbus_scale.py -m soak -s -p no:cacheprovider` · "
        f"{time.strftime('%Y-%m-%d')} · "
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"pymodbus {pymodbus.__version__}, stdlib asyncio; the simulated devices run in "
        "another process on the same machine (not counted). One connection per device.\n\n"
        "| | smartline | raw pymodbus, same requests |\n|---|---|---|\n"
        f"| CPU, % of one core | **{sl['cpu_pct']:.1f} %** (target ≤ 40 %) | "
        f"{raw['cpu_pct']:.1f} % |\n"
        f"| tags per second | {sl['tags_per_s']:,.0f} | {raw['tags_per_s']:,.0f} |\n"
        f"| missed polls | **{sl['missed']:.0f}** of {sl['cycles'] * DEVICES:.0f} "
        f"(failed {sl['failed']:.0f}) | {raw['missed']:.0f} (failed {raw['failed']:.0f}) |\n"
        f"| time to poll all devices, median / max | {sl['span_p50'] * 1e3:.0f} / "
        f"{sl['span_max'] * 1e3:.0f} ms | {raw['span_p50'] * 1e3:.0f} / "
        f"{raw['span_max'] * 1e3:.0f} ms |\n"
        f"| CPU relative to raw pymodbus | {ratio:.2f}× | 1.00× |\n\n"
        "For scale: EMQ Neuron (C) reports 124 % CPU of a 4-core server for this load "
        "(a different machine; not measured here).\n")
    write_section("modbus-scale", text, after="modbus")
    print("\n" + text)
    assert sl["missed"] == 0 and sl["failed"] == 0
