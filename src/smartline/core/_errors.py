"""The one exception tree of smartline.

::

    SmartlineError
    ├── ConfigError(ValueError)            bad line/recipe/profile file: file, key path, line
    ├── DriverNotAvailableError(ImportError)  unknown scheme or missing extra
    ├── CommunicationError(ConnectionError)
    │   ├── ConnectError                    could not (re)connect to the device
    │   ├── DeviceTimeoutError(TimeoutError)  no answer within the deadline
    │   ├── LinkBrokenError                 the peer failed or hung up mid-session
    │   └── ProtocolError                   garbage, truncated frame, bad CRC
    ├── ClosedError                         used after *you* closed it
    ├── DeviceError                         the device answered with an exception code
    ├── WriteRefusedError                   access or limits forbid the write
    ├── CycleOverrunError                   a task missed its deadline under the ``fault`` policy
    └── RecipeError                         a recipe failed to load or run

Lower errors are wrapped ``from`` their cause with ``device`` and ``tag`` attached.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ClosedError",
    "CommunicationError",
    "ConfigError",
    "ConfigIssue",
    "ConnectError",
    "CycleOverrunError",
    "DeviceError",
    "DeviceTimeoutError",
    "DriverNotAvailableError",
    "LinkBrokenError",
    "ProtocolError",
    "RecipeError",
    "SmartlineError",
    "WriteRefusedError",
]


class SmartlineError(Exception):
    """Root of every error smartline raises on purpose."""

    def __init__(self, message: str, *, device: str | None = None, tag: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.device = device
        self.tag = tag

    def __str__(self) -> str:
        where = []
        if self.device is not None:
            where.append(f"device {self.device!r}")
        if self.tag is not None:
            where.append(f"tag {self.tag!r}")
        return f"{', '.join(where)}: {self.message}" if where else self.message


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem in one file, located as precisely as the file allows."""

    file: str
    path: str
    message: str
    line: int | None = None  # 1-based
    column: int | None = None  # 1-based

    def format(self) -> str:
        """``FILE:LINE:COL: key.path: message`` — the format editors and CI logs understand."""
        loc = self.file
        if self.line is not None:
            loc += f":{self.line}:{self.column or 1}"
        path = self.path or "<root>"
        return f"{loc}: {path}: {self.message}"


class ConfigError(SmartlineError, ValueError):
    """A file did not validate; carries every issue found, not only the first."""

    def __init__(self, issues: list[ConfigIssue] | ConfigIssue) -> None:
        self.issues = [issues] if isinstance(issues, ConfigIssue) else list(issues)
        super().__init__("\n".join(i.format() for i in self.issues) or "invalid configuration")


class DriverNotAvailableError(SmartlineError, ImportError):
    """No driver for a URL scheme, or its optional dependencies are not installed."""


class CommunicationError(SmartlineError, ConnectionError):
    """Talking to a device failed."""


class ConnectError(CommunicationError):
    """Could not connect (refused, unreachable, port busy)."""


class DeviceTimeoutError(CommunicationError, TimeoutError):
    """The device did not answer within its timeout."""


class LinkBrokenError(CommunicationError):
    """The peer failed or hung up; the driver may reconnect."""


class ProtocolError(CommunicationError):
    """The device sent something that is not a valid answer (garbage, truncation, bad CRC)."""


class ClosedError(SmartlineError):
    """The object was closed by its owner and cannot be used any more."""


class DeviceError(SmartlineError):
    """The device answered with an exception (e.g. Modbus exception code)."""

    def __init__(
        self, message: str, *, code: int | None = None, device: str | None = None,
        tag: str | None = None,
    ) -> None:
        super().__init__(message, device=device, tag=tag)
        self.code = code


class WriteRefusedError(SmartlineError):
    """A write was refused before anything was sent (read-only tag, outside limits, bad type)."""


class CycleOverrunError(SmartlineError):
    """A task overran its period under the ``fault`` overrun policy or its watchdog tripped."""


class RecipeError(SmartlineError):
    """A recipe could not be loaded or executed."""
