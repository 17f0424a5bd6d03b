"""smartline: retrofit a production line with digital control, tested in CI before it runs.

The public API is flat: ``import smartline`` and use the names below. ``Line``,
``load_line``, ``program``, ``Engine`` and ``TaskSpec`` load on first use, so that
``import smartline`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .core import (
    ClosedError,
    CommunicationError,
    ConfigError,
    ConnectError,
    CycleOverrunError,
    DeviceError,
    DeviceTimeoutError,
    DriverNotAvailableError,
    LinkBrokenError,
    MonotonicClock,
    ProtocolError,
    Quality,
    Reason,
    RecipeError,
    SmartlineError,
    VirtualClock,
    WriteRefusedError,
)

if TYPE_CHECKING:
    from .config import load_line
    from .cycle import Engine, ProgramError, TaskSpec, program
    from .line import Line

_LAZY = {
    "Line": "smartline.line",
    "load_line": "smartline.config",
    "Engine": "smartline.cycle",
    "TaskSpec": "smartline.cycle",
    "ProgramError": "smartline.cycle",
    "program": "smartline.cycle",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'smartline' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "ClosedError",
    "CommunicationError",
    "ConfigError",
    "ConnectError",
    "CycleOverrunError",
    "DeviceError",
    "DeviceTimeoutError",
    "DriverNotAvailableError",
    "Engine",
    "Line",
    "LinkBrokenError",
    "MonotonicClock",
    "ProgramError",
    "ProtocolError",
    "Quality",
    "Reason",
    "RecipeError",
    "SmartlineError",
    "TaskSpec",
    "VirtualClock",
    "WriteRefusedError",
    "__version__",
    "load_line",
    "program",
]
