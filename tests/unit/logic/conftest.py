"""Fixtures for the function-block tests: every kernel runs compiled and as plain Python."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


@pytest.fixture(params=["compiled", "py_func"])
def jit(request: pytest.FixtureRequest) -> Callable[[Any], Any]:
    """Pick a kernel's compiled dispatcher or its pure-Python ``py_func``."""
    if request.param == "compiled":
        return lambda kernel: kernel
    return lambda kernel: kernel.py_func
