"""Scheme → driver registry: built-ins by ``"module:Class"`` string, third parties by entry point.

Nothing is imported until a driver is asked for, so ``smartline check`` works without any
protocol extra installed.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from types import MappingProxyType

from ._errors import DriverNotAvailableError

__all__ = ["BUILTIN_SCHEMES", "DriverRegistry", "SchemeInfo"]

ENTRY_POINT_GROUP = "smartline.drivers"


@dataclass(frozen=True, slots=True)
class SchemeInfo:
    """What a URL scheme maps to: the driver class, its address family and its pip extra."""

    scheme: str
    target: str  # "package.module:Class"
    family: str  # address grammar: modbus, s7, opcua, profile, memory
    extra: str | None = None  # pip extra that brings its dependencies
    default_port: int | None = None
    serial: bool = False  # the URL names a serial port, not host:port


BUILTIN_SCHEMES: Mapping[str, SchemeInfo] = MappingProxyType({
    s.scheme: s
    for s in (
        SchemeInfo("memory", "smartline.drivers.memory:MemoryDriver", "memory"),
        SchemeInfo("modbus+tcp", "smartline.drivers.modbus:ModbusTcpDriver", "modbus", "modbus",
                   502),
        SchemeInfo("modbus+rtu", "smartline.drivers.modbus:ModbusRtuDriver", "modbus", "modbus",
                   serial=True),
        SchemeInfo("modbus+rtuovertcp", "smartline.drivers.modbus:ModbusRtuOverTcpDriver",
                   "modbus", "modbus", 502),
        SchemeInfo("s7", "smartline.drivers.s7:S7Driver", "s7", "s7", 102),
        SchemeInfo("opc.tcp", "smartline.drivers.opcua:OpcUaDriver", "opcua", "opcua", 4840),
        SchemeInfo("serial", "smartline.drivers.serial:SerialInstrumentDriver", "profile",
                   "serial", serial=True),
        SchemeInfo("grbl", "smartline.drivers.cnc:GrblDriver", "profile", "serial", serial=True),
        SchemeInfo("mtconnect+http", "smartline.drivers.cnc:MtConnectDriver", "profile", None,
                   5000),
    )
})


class DriverRegistry:
    """Resolves URL schemes to driver classes, lazily."""

    def __init__(self, schemes: Iterable[SchemeInfo] | None = None, *,
                 use_entry_points: bool = True) -> None:
        table = dict(BUILTIN_SCHEMES if schemes is None else {s.scheme: s for s in schemes})
        if use_entry_points:
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                # entry point value "pkg.mod:Class"; the family is declared by the class itself
                table.setdefault(ep.name, SchemeInfo(ep.name, ep.value, "profile"))
        self._schemes: Mapping[str, SchemeInfo] = MappingProxyType(table)

    @property
    def schemes(self) -> Mapping[str, SchemeInfo]:
        return self._schemes

    def info(self, scheme: str) -> SchemeInfo:
        try:
            return self._schemes[scheme]
        except KeyError:
            known = ", ".join(sorted(self._schemes))
            raise DriverNotAvailableError(
                f"unknown URL scheme {scheme!r}; known schemes: {known}"
            ) from None

    def load(self, scheme: str) -> type:
        """Import and return the driver class for ``scheme``."""
        info = self.info(scheme)
        module_name, _, attr = info.target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and (exc.name == module_name
                                         or module_name.startswith(exc.name + ".")):
                raise DriverNotAvailableError(
                    f"the {scheme}:// driver is not available in this version of smartline "
                    f"(module {module_name} not found)"
                ) from exc
            hint = f"pip install 'smartline[{info.extra}]'" if info.extra else "its dependencies"
            raise DriverNotAvailableError(
                f"the {scheme}:// driver needs {exc.name!r}: install it with {hint}"
            ) from exc
        try:
            cls = getattr(module, attr)
        except AttributeError:
            raise DriverNotAvailableError(f"{info.target} does not exist") from None
        if not isinstance(cls, type):
            raise DriverNotAvailableError(f"{info.target} is not a class")
        return cls
