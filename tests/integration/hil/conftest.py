"""Fixtures of the HIL tests. ``record_lockstep``: a line against its scenario in virtual
lock-step, recorded as ``smartline run --sim --virtual --record`` records it (a
:class:`ScenarioRunner` on the engine's virtual clock, ``on_advance`` stepping the plant
and sampling a :class:`TagTrace`), for the tests that compare runs byte for byte."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from smartline.config import LineConfig
from smartline.core import VirtualClock
from smartline.hil.scenario import ScenarioRunner
from smartline.line import Line
from smartline.run import build_engine, with_device_urls
from smartline.testing.traces import TagTrace


async def _record_lockstep(config: LineConfig, runner: ScenarioRunner, clock: VirtualClock,
                          plant_s: float, *,
                          after: Callable[[], Awaitable[bytes]] | None = None
                          ) -> tuple[bytes, bytes]:
    """Run ``config`` for ``plant_s`` of plant time against ``runner`` (not yet started,
    on ``clock``, with ``trace=True``): the tag trace's bytes and the plant trace's, and
    what ``after`` returns while the devices still serve (appended to the second)."""
    rec = TagTrace(sorted(config.tags), line=config.name, scenario=runner.scenario.name,
                   seed=runner.scenario.seed)
    extra = b""
    async with runner:
        urls = runner.urls()
        cfg = with_device_urls(config, {n: urls[n] for n in config.devices})
        holder: list[Line] = []
        origin: list[int] = []

        def advance(now_ns: int) -> None:
            runner.advance_to(now_ns)
            if holder:
                if not origin:
                    origin.append(now_ns)
                rec.sample(now_ns - origin[0], holder[0].image.get)

        line, engine = build_engine(cfg, clock=clock, on_advance=[advance])
        holder.append(line)
        try:
            await engine.run(duration_s=plant_s)
        finally:
            await line.close()
        rec.close(clock.now_ns() - origin[0])
        if after is not None:
            extra = await after()
    return "".join(f"{x}\n" for x in rec.lines()).encode(), runner.trace_bytes() + extra


Recorder = Callable[..., Awaitable[tuple[bytes, bytes]]]


@pytest.fixture
def record_lockstep() -> Recorder:
    """``await record_lockstep(config, runner, clock, plant_s, after=None)``: see
    :func:`_record_lockstep`."""
    return _record_lockstep
