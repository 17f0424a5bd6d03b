"""LineIO.read with one device awaits its read in the caller's task (no task, no wait):
the deadline still holds — a device busy past it has its tags marked STALE and its read
cancelled — and failures still mark the tags BAD, as with several devices."""

from __future__ import annotations

import asyncio
from pathlib import Path

from smartline.core import MonotonicClock, Quality, Reason
from smartline.line import Line


def _line(line_file: Path) -> Line:
    return Line.load(line_file, clock=MonotonicClock())


def test_one_device_past_its_deadline_goes_stale_and_its_read_is_cancelled(
        line_file: Path) -> None:
    line = _line(line_file)
    io = line.io

    async def go() -> None:
        await io.connect()
        group = io.group(["far"])
        assert list(group.plans) == ["slow"]
        await io.read(group, 1.0)  # a first value, GOOD
        assert line.image.get("far").quality is Quality.GOOD
        bus = io.driver("slow").bus  # type: ignore[attr-defined]
        bus.latency_s = 5.0
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        (st,) = await io.read(group, 0.05)
        assert loop.time() - t0 < 1.0  # cancelled at the deadline, not after the latency
        assert not st.ok and st.error == "deadline"
        v = line.image.get("far")
        assert v.quality is Quality.STALE and v.reason is Reason.DEADLINE
        # nothing of the cancelled read is left running on the loop
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert not [t for t in others if "_read" in repr(t.get_coro())]
        bus.latency_s = 0.0
        (st,) = await io.read(group, 1.0)
        assert st.ok and line.image.get("far").quality is Quality.GOOD
        await io.close()

    asyncio.run(go())


def test_one_device_read_that_fails_marks_bad_not_stale(line_file: Path) -> None:
    line = _line(line_file)
    io = line.io

    async def go() -> None:
        await io.connect()
        group = io.group(["a", "b"])
        assert list(group.plans) == ["plc"]
        io.driver("plc").bus.garbage = True  # type: ignore[attr-defined]
        (st,) = await io.read(group, 5.0)
        assert not st.ok and st.error != "deadline"
        assert line.image.get("a").quality is Quality.BAD
        await io.close()

    asyncio.run(go())


def test_no_deadline_waits_for_the_read(line_file: Path) -> None:
    line = _line(line_file)
    io = line.io

    async def go() -> None:
        await io.connect()
        group = io.group(["far"])
        io.driver("slow").bus.latency_s = 0.05  # type: ignore[attr-defined]
        (st,) = await io.read(group, None)
        assert st.ok and st.requests >= 1
        assert line.image.get("far").quality is Quality.GOOD
        await io.close()

    asyncio.run(go())
