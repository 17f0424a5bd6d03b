"""Fixtures of the S7 integration tests: a simulated CPU (snap7's server) on 127.0.0.1."""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from smartline.hil.s7 import S7PlcSim, S7ServerSim

SimFactory = Callable[..., Awaitable[S7ServerSim]]

# the tests import their helpers from s7_support.py next to this file (importlib mode)
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def quiet_snap7() -> Iterator[None]:
    """snap7 logs every provoked fault (refused TSAPs, dropped links): keep output readable."""
    loggers = [logging.getLogger(n) for n in ("snap7", "s7", "smartline.hil.s7")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    yield
    for lg, level in zip(loggers, levels, strict=True):
        lg.setLevel(level)


@pytest.fixture
async def s7_factory() -> AsyncIterator[SimFactory]:
    started: list[S7ServerSim] = []

    async def make(plc: S7PlcSim, **kw: Any) -> S7ServerSim:
        sim = S7ServerSim(plc, **kw)
        await sim.start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        await sim.stop()
