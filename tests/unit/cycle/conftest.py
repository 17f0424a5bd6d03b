"""Helpers for the cycle engine's tests: a memory-device line and engines over it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from smartline.core import Clock, VirtualClock
from smartline.cycle import Engine, RealtimeOptions, TaskSpec
from smartline.line import Line

LINE = """\
smartline: 1
line: cycle-test
devices:
  plc: {url: "memory://plc"}
  slow: {url: "memory://slow"}
tags:
  a: {device: plc, address: "a"}
  b: {device: plc, address: "b"}
  arr: {device: plc, address: "arr:float64[4]"}
  far: {device: slow, address: "far"}
  out1: {device: plc, address: "out1", access: rw, safe: 0}
  out2: {device: plc, address: "out2", access: rw, safe: 5, limits: [0, 10], deadband: 0.5}
  flag: {device: plc, address: "flag:bool", access: rw, safe: false}
  count: {device: plc, address: "count:int32", access: rw, safe: 0}
  outarr: {device: plc, address: "outarr:float64[4]", access: rw}
  nosafe: {device: plc, address: "nosafe", access: rw}
  ro: {device: plc, address: "ro"}
tasks:
  acquire: {period_ms: 10, tags: [a]}
"""

NO_RT = RealtimeOptions(priority=None, timer_slack_ns=None, switch_interval_s=None)


@pytest.fixture
def line_file(tmp_path: Path) -> Path:
    p = tmp_path / "line.yaml"
    p.write_text(LINE, encoding="utf-8")
    return p


@pytest.fixture
def make_engine(line_file: Path) -> Callable[..., tuple[Line, Engine]]:
    """``make_engine(*specs, clock=VirtualClock())`` → (line, engine) over the memory line."""

    def make(*specs: TaskSpec, clock: Clock | None = None,
             realtime: RealtimeOptions | None = None, **kw: object) -> tuple[Line, Engine]:
        clock = clock if clock is not None else VirtualClock()
        line = Line.load(line_file, clock=clock)
        eng = Engine(line.image, specs, io=line.io, clock=clock,
                     realtime=realtime or NO_RT, **kw)  # type: ignore[arg-type]
        return line, eng

    return make


@pytest.fixture
def bus() -> Callable[..., dict[str, object]]:
    """``bus(line, device="plc")``: the memory behind a device (driver created on first use)."""

    def get(line: Line, device: str = "plc") -> dict[str, object]:
        return line.io.driver(device).bus.values  # type: ignore[attr-defined, no-any-return]

    return get


def run_engine(eng: Engine, **kw: object) -> object:
    """``asyncio.run(eng.run(**kw))``."""
    return asyncio.run(eng.run(**kw))  # type: ignore[arg-type]


@pytest.fixture
def run() -> Callable[..., object]:
    return run_engine
