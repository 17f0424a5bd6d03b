"""Shared fixtures of the integration tests (real protocol servers on 127.0.0.1)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def quiet_pymodbus() -> Iterator[None]:
    """pymodbus logs every provoked fault at ERROR with frame dumps: keep test output readable."""
    logger = logging.getLogger("pymodbus")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)
