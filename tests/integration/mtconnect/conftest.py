"""Fixtures of the MTConnect integration tests: a simulated agent (aiohttp.web) on 127.0.0.1."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from smartline.core import VirtualClock
from smartline.hil.mtconnect import MtConnectAgentSim

# the tests import their helpers from mtc_support.py next to this file (importlib mode)
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
async def sim() -> AsyncIterator[MtConnectAgentSim]:
    """An agent on a real clock, ticking every 20 ms (for streaming and the conformance suite)."""
    async with MtConnectAgentSim(tick_s=0.02) as agent:
        yield agent


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
async def vsim(clock: VirtualClock) -> AsyncIterator[MtConnectAgentSim]:
    """An agent on a virtual clock that only moves when the test steps it (no ticker)."""
    async with MtConnectAgentSim(clock=clock, tick_s=0, buffer_size=64) as agent:
        yield agent
