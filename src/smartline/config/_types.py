"""The frozen, typed result of loading a line file or a device profile.

Everything here is validated already; consumers (the line runtime, the CLI, the simulator)
never see raw YAML. Mappings are read-only views and keep the order of the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from smartline.core import ConnectionUrl, DeviceSpec, RetryPolicy, SchemeInfo
from smartline.tags import Access, Scale, TagAddress, TagSpec

__all__ = [
    "DeviceConfig",
    "LineConfig",
    "OptionValue",
    "Overrun",
    "Profile",
    "ProfileManual",
    "ProfilePoint",
    "ScalarValue",
    "TaskConfig",
    "WatchdogConfig",
]

OptionValue = int | float | str | bool
ScalarValue = bool | int | float | str
Overrun = Literal["skip", "catch_up", "fault"]


def _empty() -> Mapping[str, OptionValue]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ProfileManual:
    """The public document a profile's register map comes from."""

    title: str
    document: str = ""  # document or order number
    revision: str = ""
    url: str = ""


@dataclass(frozen=True, slots=True)
class ProfilePoint:
    """One named point of a device: where it lives and how to read it.

    ``enum`` maps raw values to state names, ``bits`` bit numbers to flag names (both for
    display and alarms); ``sim`` holds plain hints for the HIL simulator (``{value: 50.0}``).
    """

    name: str
    address: TagAddress
    access: Access = Access.R
    scale: Scale | None = None
    limits: tuple[float, float] | None = None
    unit: str | None = None
    description: str = ""
    safe: ScalarValue | None = None
    deadband: float | None = None
    enum: Mapping[int, str] = field(default_factory=lambda: MappingProxyType({}))
    bits: Mapping[int, str] = field(default_factory=lambda: MappingProxyType({}))
    sim: Mapping[str, ScalarValue] = field(default_factory=lambda: MappingProxyType({}))

    def tag(self, name: str, device: str) -> TagSpec:
        """The tag this point makes on ``device``."""
        return TagSpec(name=name, device=device, address=self.address, access=self.access,
                       scale=self.scale, limits=self.limits, safe=self.safe, unit=self.unit,
                       description=self.description, deadband=self.deadband)


@dataclass(frozen=True, slots=True)
class Profile:
    """A device profile (``drivers/vendor/model.yaml``): a model's points and option defaults."""

    name: str  # "vendor/model"
    vendor: str
    model: str
    family: str  # the driver family whose grammar the points use: modbus, s7, serial …
    manual: ProfileManual
    source: Path
    description: str = ""
    defaults: Mapping[str, OptionValue] = field(default_factory=_empty)
    points: Mapping[str, ProfilePoint] = field(default_factory=lambda: MappingProxyType({}))
    protocol: object = None  # the family's ``profile_protocol`` model of the protocol section


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    """One device of a line: its connection, protocol options, retry policy and profile."""

    name: str
    url: ConnectionUrl
    scheme: SchemeInfo
    timeout_s: float = 1.0
    profile: Profile | None = None
    options: object = None  # the family's typed options (``DriverFamily.options``)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    security: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    description: str = ""

    @property
    def family(self) -> str:
        """The name of the device's driver family (``modbus``, ``s7`` ...)."""
        return self.scheme.family.name

    def spec(self) -> DeviceSpec:
        """What the driver gets."""
        return DeviceSpec(name=self.name, url=self.url, timeout_s=self.timeout_s,
                          retry=self.retry, options=self.options, security=self.security,
                          username=self.username, password=self.password,
                          protocol=self.profile.protocol if self.profile is not None else None)


@dataclass(frozen=True, slots=True)
class WatchdogConfig:
    """A task watchdog: trips after ``sensitivity`` cycles in a row longer than ``time_ms``."""

    time_ms: float
    sensitivity: int = 1


@dataclass(frozen=True, slots=True)
class TaskConfig:
    """A cyclic task: its period, program, the tags it acquires, reads and writes.

    ``io_deadline_ms`` left as ``None`` becomes half the period: the share of the cycle
    device I/O may take before slow devices' tags are marked stale.
    """

    name: str
    period_ms: float
    program: str | None = None  # "package.module:function" or "/abs/path/file.py:function"
    tags: tuple[str, ...] = ()  # acquired every cycle
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    overrun: Overrun = "skip"
    watchdog: WatchdogConfig | None = None
    io_deadline_ms: float | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if self.io_deadline_ms is None:
            object.__setattr__(self, "io_deadline_ms", self.period_ms / 2)

    @property
    def all_tags(self) -> tuple[str, ...]:
        """Every tag the task touches: ``tags``, then ``inputs``, then ``outputs``, no repeats."""
        return tuple(dict.fromkeys((*self.tags, *self.inputs, *self.outputs)))


@dataclass(frozen=True, slots=True)
class LineConfig:
    """A validated line file: devices, tags and tasks in file order."""

    name: str
    source: Path
    description: str = ""
    devices: Mapping[str, DeviceConfig] = field(default_factory=lambda: MappingProxyType({}))
    tags: Mapping[str, TagSpec] = field(default_factory=lambda: MappingProxyType({}))
    tasks: Mapping[str, TaskConfig] = field(default_factory=lambda: MappingProxyType({}))
