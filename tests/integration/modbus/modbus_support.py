"""Helpers shared by the Modbus integration tests and benchmarks."""

from __future__ import annotations

import random
from collections.abc import Sequence

from smartline.core import DeviceSpec, LinkPool, Point, RetryPolicy, parse_url
from smartline.drivers.modbus import (
    ModbusDriver,
    ModbusRtuDriver,
    ModbusRtuOverTcpDriver,
    ModbusTcpDriver,
)
from smartline.hil.modbus import ModbusServerSim
from smartline.tags import parse_modbus

DRIVERS: dict[str, type[ModbusDriver]] = {
    "tcp": ModbusTcpDriver, "rtuovertcp": ModbusRtuOverTcpDriver, "rtu": ModbusRtuDriver}

FAST_RETRY = RetryPolicy(backoff_initial_s=0.01, backoff_max_s=0.05, jitter=0.0,
                         demote_after=3, demote_period_s=0.5)


def points(*texts: str, names: Sequence[str] | None = None) -> list[Point]:
    out = []
    slot = 0
    for i, text in enumerate(texts):
        addr = parse_modbus(text)
        out.append(Point(names[i] if names else f"t{i}", slot, addr))
        slot += addr.elements
    return out


def make_driver(sim: ModbusServerSim, unit: int | None = None, *, timeout_s: float = 0.5,
                retry: RetryPolicy = FAST_RETRY, links: LinkPool | None = None,
                name: str = "dev", **options: int | float | str | bool) -> ModbusDriver:
    spec = DeviceSpec(name, parse_url(sim.url(unit)), timeout_s=timeout_s, retry=retry,
                      options=options)
    return DRIVERS[sim.transport](spec, links=links, rng=random.Random(1))
