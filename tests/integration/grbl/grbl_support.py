"""Helpers of the GRBL tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from smartline.core import DeviceSpec, Point, RetryPolicy, parse_url
from smartline.drivers.cnc.grbl import GrblDriver
from smartline.hil.grbl import GrblSim
from smartline.tags import parse_profile


def driver(sim: GrblSim, timeout_s: float = 1.0, **options: object) -> GrblDriver:
    """A driver for ``sim`` made by hand, as a script would."""
    retry = RetryPolicy(backoff_initial_s=0.05, backoff_max_s=0.2)
    return GrblDriver(DeviceSpec("mill", parse_url(sim.url), timeout_s=timeout_s, retry=retry,
                                 options=options or None))


def points(*names: str, first_slot: int = 0) -> list[Point]:
    return [Point(n, first_slot + i, parse_profile(n, "cnc")) for i, n in enumerate(names)]


async def until(condition: Callable[[], bool], timeout_s: float = 5.0, what: str = "") -> None:
    """Poll ``condition`` (the simulator runs in its own thread) until true or fail."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await asyncio.sleep(0.005)


def program_text(moves: int, *, feed: float = 1000.0) -> str:
    """A job of ``moves`` short moves with comments and blank lines to strip."""
    lines = ["(a test job)", "G21 G90 ; millimetres, absolute", f"G1 F{feed:g}", ""]
    lines += [f"G1 X{(i % 10) + 1} Y{(i % 7) + 1}  (move {i})" for i in range(moves)]
    lines += ["M5", "M2"]
    return "\n".join(lines) + "\n"
