"""Core types: errors, clocks, quality codes, URLs, the driver contract and registry.

This layer imports nothing else from smartline.
"""

from ._clock import Clock, MonotonicClock, VirtualClock
from ._driver import (
    Address,
    DeviceDemotedError,
    DeviceHealth,
    DeviceSpec,
    Driver,
    DriverBase,
    Point,
    ReadPlan,
    ReadResult,
    RetryPolicy,
    WriteItem,
    WriteValue,
    reason_for,
)
from ._errors import (
    ClosedError,
    CommunicationError,
    ConfigError,
    ConfigIssue,
    ConnectError,
    CycleOverrunError,
    DeviceError,
    DeviceTimeoutError,
    DriverNotAvailableError,
    LinkBrokenError,
    ProtocolError,
    RecipeError,
    SmartlineError,
    WriteRefusedError,
)
from ._quality import Quality, Reason
from ._registry import BUILTIN_SCHEMES, DriverRegistry, SchemeInfo
from ._url import ConnectionUrl, parse_url

__all__ = [
    "BUILTIN_SCHEMES",
    "Address",
    "Clock",
    "ClosedError",
    "CommunicationError",
    "ConfigError",
    "ConfigIssue",
    "ConnectError",
    "ConnectionUrl",
    "CycleOverrunError",
    "DeviceDemotedError",
    "DeviceError",
    "DeviceHealth",
    "DeviceSpec",
    "DeviceTimeoutError",
    "Driver",
    "DriverBase",
    "DriverNotAvailableError",
    "DriverRegistry",
    "LinkBrokenError",
    "MonotonicClock",
    "Point",
    "ProtocolError",
    "Quality",
    "ReadPlan",
    "ReadResult",
    "Reason",
    "RecipeError",
    "RetryPolicy",
    "SchemeInfo",
    "SmartlineError",
    "VirtualClock",
    "WriteItem",
    "WriteRefusedError",
    "WriteValue",
    "parse_url",
    "reason_for",
]
