"""Fixtures for the Modbus integration tests: pymodbus servers on 127.0.0.1, never mocks."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

import pytest

from smartline.hil.modbus import ModbusDeviceSim, ModbusServerSim

SimFactory = Callable[..., Awaitable[ModbusServerSim]]

# the tests import their helpers from modbus_support.py next to this file (importlib mode)
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(params=["tcp", "rtuovertcp", "rtu"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def sim_factory() -> AsyncIterator[SimFactory]:
    started: list[ModbusServerSim] = []

    async def make(devices: ModbusDeviceSim | Sequence[ModbusDeviceSim],
                   transport: str = "tcp", **kw: object) -> ModbusServerSim:
        sim = ModbusServerSim(devices, transport=transport, **kw)  # type: ignore[arg-type]
        await sim.start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        await sim.stop()
