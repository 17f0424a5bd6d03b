"""The cycle: process image, scheduler, timing statistics, watchdog.

The engine's names (``Engine``, ``program`` …) load on first use, so that commands which
only read or write tags do not pay for importing numba.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._image import ProcessImage, Snapshot, TagValue
from ._io import AuditSink, DeviceReadStats, JsonlAudit, LineIO, ReadGroup

if TYPE_CHECKING:
    from ._engine import Engine, Task, TaskSpec
    from ._program import Program, ProgramError, load_program, program
    from ._scheduler import OverrunPolicy, RealtimeOptions, RealtimeStatus
    from ._stats import (
        STATS_SCHEMA,
        Alarm,
        EngineStats,
        IoCounters,
        SeriesStats,
        TaskStats,
        TimingRecorder,
    )
    from ._watchdog import Watchdog

__all__ = [
    "STATS_SCHEMA",
    "Alarm",
    "AuditSink",
    "DeviceReadStats",
    "Engine",
    "EngineStats",
    "IoCounters",
    "JsonlAudit",
    "LineIO",
    "OverrunPolicy",
    "ProcessImage",
    "Program",
    "ProgramError",
    "ReadGroup",
    "RealtimeOptions",
    "RealtimeStatus",
    "SeriesStats",
    "Snapshot",
    "TagValue",
    "Task",
    "TaskSpec",
    "TaskStats",
    "TimingRecorder",
    "Watchdog",
    "load_program",
    "program",
]

_LAZY = {
    "Engine": "_engine", "Task": "_engine", "TaskSpec": "_engine",
    "Program": "_program", "ProgramError": "_program", "load_program": "_program",
    "program": "_program",
    "OverrunPolicy": "_scheduler", "RealtimeOptions": "_scheduler",
    "RealtimeStatus": "_scheduler",
    "STATS_SCHEMA": "_stats", "Alarm": "_stats", "EngineStats": "_stats",
    "IoCounters": "_stats", "SeriesStats": "_stats", "TaskStats": "_stats",
    "TimingRecorder": "_stats",
    "Watchdog": "_watchdog",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
