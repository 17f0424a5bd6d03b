"""Fixtures of the GRBL tests: the simulated controller on a pty, drivers made by hand."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from smartline.core import VirtualClock
from smartline.hil.grbl import GrblController, GrblSim

# the tests import their helpers from grbl_support.py next to this file (importlib mode)
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def quiet_grbl() -> Iterator[None]:
    """Provoked resets and alarms log warnings: keep the output readable."""
    logger = logging.getLogger("smartline.drivers.cnc.grbl")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


@pytest.fixture
def sim() -> Iterator[GrblSim]:
    """A controller on virtual time that jumps to the end of each move: jobs run fast."""
    with GrblSim(GrblController(VirtualClock()), fast_forward=True) as s:
        yield s


@pytest.fixture
def frozen_sim() -> Iterator[GrblSim]:
    """A controller on virtual time that moves only when the test calls ``advance``."""
    with GrblSim(GrblController(VirtualClock())) as s:
        yield s
