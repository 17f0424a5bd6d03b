"""Driver families: the one plug-in a protocol (or an equipment vendor) registers.

A :class:`DriverFamily` brings everything smartline needs to know about a protocol without
importing its library: the URL schemes and their query parameters, the address grammar,
the typed device options, the value types its addresses carry, the folders of device
profiles it ships, and — by ``"module:Class"`` string, imported on first use — the driver
class. Families are found through the entry point group ``smartline.drivers`` (the entry
point's name is the family name, its value the ``DriverFamily`` object); smartline's own
families are registered the same way (see :mod:`smartline.core._registry`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

from ._params import ParamParser

__all__ = ["AddressGrammar", "DriverFamily", "OptionsModel", "Scheme"]


@runtime_checkable
class OptionsModel(Protocol):
    """A family's typed device options: in practice a pydantic model (strict, frozen, no
    extra keys), usually a subclass of ``smartline.config.DeviceOptions``.

    The line loader validates a device's own keys, its URL parameters and its profile's
    defaults with it once, with located errors, and hands the driver the instance.
    """

    model_fields: Mapping[str, Any]

    @classmethod
    def model_validate(cls, obj: Any, *, strict: bool | None = None) -> Any: ...


AddressGrammar = Callable[[str], Any]
"""Parses an address text into the family's address object; raises
``smartline.tags.AddressError`` (with ``column``) saying what was expected."""


@dataclass(frozen=True, slots=True, eq=False)
class Scheme:
    """One URL scheme of a family (``modbus+tcp``) and the driver class that serves it."""

    name: str
    driver: str  # "package.module:Class", imported on first use
    default_port: int | None = None
    serial: bool = False  # the URL names a serial port or a pyserial URL, not host:port
    params: Mapping[str, ParamParser] = field(default_factory=lambda: MappingProxyType({}))
    """Query parameters the scheme takes, each an option of the family (same name)."""
    description: str = ""


@dataclass(frozen=True, slots=True, eq=False)
class DriverFamily:
    """A protocol family as one plug-in (DESIGN §6).

    ``name`` is what device profiles give as ``family:`` and what addresses report as
    ``address.family``. ``parse_address`` must raise ``smartline.tags.AddressError`` for
    bad input (anything else is reported as a fault of the plug-in). ``options`` validates
    every device key beyond the common ones (url, timeout_ms, profile, points, retry,
    description) and every URL parameter; None means the family has none. ``value_types``
    names the value types its addresses carry (``bool``, ``int64``, ``float64``,
    ``string`` …, the names of ``smartline.tags.DataType``). ``requires`` is the pip
    requirement that brings the protocol library the driver imports, for error messages
    (``smartline[modbus]``); ``package`` the distribution that provides the family.
    ``profile_dirs`` are folders of device profiles (``vendor/model.yaml``) it ships.
    ``check`` adds checks of the validated options that depend on the URL scheme.
    """

    name: str
    schemes: tuple[Scheme, ...]
    parse_address: AddressGrammar
    options: type[Any] | None = None
    check: Callable[[str, Any], Sequence[tuple[str, str]]] | None = None
    """Checks of validated options that need the scheme: ``check(scheme, options)``
    returns ``(key, message)`` pairs, empty when all is well."""
    value_types: tuple[str, ...] = ()
    requires: str | None = None
    imports: tuple[str, ...] = ()
    """Top-level modules the driver imports (``pymodbus``): ``smartline check`` says when
    one is missing, naming ``requires``."""
    package: str = "smartline"
    profile_dirs: tuple[Path, ...] = ()
    profile_protocol: type[Any] | None = None
    """The model of the ``protocol:`` section of the family's device profiles, for
    families whose devices are described by a profile rather than by addresses (line
    protocols of serial instruments): a pydantic model, validated with located errors. A
    device of the family then needs a profile, and its driver gets the validated section
    as ``DeviceSpec.protocol``. None: profiles of the family have no such section."""
    profile_check: Callable[[Any, Mapping[str, Any]], Sequence[tuple[tuple[str | int, ...], str]]] \
        | None = None
    """Checks between a validated ``protocol`` section and the profile's points
    (``profile_check(protocol, points)``, points by name): ``(key path, message)`` pairs,
    the key path from the profile's top (``("protocol", "commands", "weight")``)."""
    named_points: bool = False
    """Addresses are the point names of the device's profile (instruments, CNC): a tag
    may only name a point of the profile, and a point's name is its address."""
    description: str = ""

    def scheme(self, name: str) -> Scheme:
        for s in self.schemes:
            if s.name == name:
                return s
        raise KeyError(name)

    def missing_imports(self) -> list[str]:
        """The modules of :attr:`imports` that cannot be imported here (not importing them)."""
        import importlib.util

        missing = []
        for name in self.imports:
            try:
                found = importlib.util.find_spec(name) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                missing.append(name)
        return missing

    @property
    def option_names(self) -> tuple[str, ...]:
        """The device keys (and URL parameters) its options model takes."""
        if self.options is None:
            return ()
        return tuple(getattr(self.options, "model_fields", {}))
