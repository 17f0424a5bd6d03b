"""Long jobs in real time over a link with USB-like latency (soak: pytest -m soak)."""

from __future__ import annotations

import pytest
from grbl_support import driver

from smartline.core import MonotonicClock
from smartline.drivers.cnc.grbl import GcodeJob, GcodeProgram
from smartline.hil.grbl import GrblController, GrblSim


@pytest.mark.soak
async def test_a_long_job_in_real_time_never_overflows() -> None:
    # 5000 moves of about 0.5 mm at 1000 mm/s: ~0.5 ms of motion each, so the link and the
    # planner, not the motion, set the pace
    text = "G21\nG90\nG1F60000\n" + "".join(
        f"G1X{(i % 3) * 0.5:.3f}Y{(i % 2) * 0.25:.3f}\n" for i in range(5_000))
    with GrblSim(GrblController(MonotonicClock()), link_latency_s=0.001) as sim:
        async with driver(sim, timeout_s=2.0) as d:
            outcome = await GcodeJob(d, GcodeProgram.from_text(text)).run()
            assert outcome.ok, outcome.message
            assert outcome.acked == 5_003
        assert sim.controller.overflow_bytes == 0
        assert sim.controller.rx_high_water <= 127
