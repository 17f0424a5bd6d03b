"""smartline: retrofit a production line with digital control, tested in CI before it runs.

The public API is flat: ``import smartline`` and use the names below.
"""

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

__all__ = [
    "ClosedError",
    "CommunicationError",
    "ConfigError",
    "ConnectError",
    "CycleOverrunError",
    "DeviceError",
    "DeviceTimeoutError",
    "DriverNotAvailableError",
    "LinkBrokenError",
    "MonotonicClock",
    "ProtocolError",
    "Quality",
    "Reason",
    "RecipeError",
    "SmartlineError",
    "VirtualClock",
    "WriteRefusedError",
    "__version__",
]
