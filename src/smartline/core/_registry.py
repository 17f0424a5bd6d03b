"""The registry of driver families: smartline's own and every installed plug-in.

Families come from the entry point group ``smartline.drivers`` (name = family name, value
= ``"module:ATTRIBUTE"`` of a :class:`DriverFamily`). smartline registers its own families
there too, and lists them in :data:`BUILTIN_FAMILIES` so that a source checkout without
installed metadata still has them. Family modules are light (grammar, options, schemes);
the driver class, which imports the protocol library, is imported only by :meth:`load`.

A plug-in that fails to import, is not a ``DriverFamily``, or claims a family name or URL
scheme that another family owns does not stop anything: it is recorded in
:attr:`DriverRegistry.problems`, and whatever asks for its scheme gets an error naming it.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from types import MappingProxyType

from ._errors import DriverNotAvailableError
from ._family import DriverFamily, Scheme

__all__ = ["BUILTIN_FAMILIES", "ENTRY_POINT_GROUP", "DriverRegistry", "PluginProblem",
           "SchemeInfo"]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "smartline.drivers"

#: smartline's own families, as their entry points name them (pyproject.toml lists the same).
BUILTIN_FAMILIES: Mapping[str, str] = MappingProxyType({
    "memory": "smartline.drivers.families.memory:FAMILY",
    "modbus": "smartline.drivers.families.modbus:FAMILY",
    "s7": "smartline.drivers.families.s7:FAMILY",
    "opcua": "smartline.drivers.families.opcua:FAMILY",
    "serial": "smartline.drivers.families.serial:FAMILY",
    "cnc": "smartline.drivers.families.cnc:FAMILY",
})


@dataclass(frozen=True, slots=True)
class PluginProblem:
    """A plug-in that could not be used, and why."""

    plugin: str  # the entry point's name
    target: str  # its value, "module:ATTRIBUTE"
    package: str  # the distribution that declared it
    message: str
    schemes: tuple[str, ...] = ()  # the URL schemes it affects, where known

    def describe(self) -> str:
        return f"plug-in {self.plugin!r} ({self.target}, package {self.package}): {self.message}"


@dataclass(frozen=True, slots=True)
class SchemeInfo:
    """A URL scheme as the registry resolved it: the scheme and the family it belongs to."""

    scheme: Scheme
    family: DriverFamily

    @property
    def name(self) -> str:
        return self.scheme.name


class DriverRegistry:
    """Resolves families by name and URL schemes to families; imports drivers lazily.

    ``families`` replaces the built-in set (objects, or ``"module:ATTR"`` strings);
    ``use_entry_points`` adds the installed plug-ins.
    """

    def __init__(self, families: Iterable[DriverFamily | str] | None = None, *,
                 use_entry_points: bool = True) -> None:
        self._families: dict[str, DriverFamily] = {}
        self._schemes: dict[str, SchemeInfo] = {}
        self._problems: list[PluginProblem] = []
        items: list[tuple[str, DriverFamily | str, str]] = []
        if families is None:
            items += [(name, target, "smartline") for name, target in BUILTIN_FAMILIES.items()]
        else:
            for f in families:
                items.append((f.name if isinstance(f, DriverFamily) else f, f, "smartline"))
        if use_entry_points:
            items += [(ep.name, ep.value, _dist(ep)) for ep in _entry_points()]
        seen: set[tuple[str, str]] = set()
        for name, target, package in items:
            key = (name, target if isinstance(target, str) else repr(id(target)))
            if key in seen:
                continue  # a built-in that is also installed as an entry point
            seen.add(key)
            self._add(name, target, package)

    # -- building -------------------------------------------------------------------------
    def _add(self, name: str, target: DriverFamily | str, package: str) -> None:
        where = target if isinstance(target, str) else f"{target.name} family object"
        if isinstance(target, str):
            try:
                family = _import(target)
            except Exception as exc:  # any failure of third-party code: recorded, not raised
                self._problems.append(PluginProblem(
                    name, where, package, f"failed to load: {type(exc).__name__}: {exc}"))
                return
        else:
            family = target
        if not isinstance(family, DriverFamily):
            self._problems.append(PluginProblem(
                name, where, package,
                f"is a {type(family).__name__}, not a smartline.core.DriverFamily"))
            return
        if family.package == "smartline" and package != "smartline":
            family = _with_package(family, package)
        if family.name != name:
            self._problems.append(PluginProblem(
                name, where, package, f"declares family {family.name!r}: the entry point's "
                f"name must be the family name", tuple(s.name for s in family.schemes)))
            return
        owner = self._families.get(name)
        if owner is not None:
            self._problems.append(PluginProblem(
                name, where, package, f"family {name!r} is already provided by package "
                f"{owner.package}", tuple(s.name for s in family.schemes)))
            return
        taken = [s.name for s in family.schemes if s.name in self._schemes]
        if taken:
            owners = {self._schemes[s].family.name: self._schemes[s].family for s in taken}
            named = sorted(f"{o.name!r} (package {o.package})" for o in owners.values())
            self._problems.append(PluginProblem(
                name, where, package,
                f"claims URL scheme(s) {', '.join(taken)} already owned by family "
                f"{', '.join(named)}",
                tuple(taken)))
            return
        self._families[name] = family
        for s in family.schemes:
            self._schemes[s.name] = SchemeInfo(s, family)

    # -- queries --------------------------------------------------------------------------
    @property
    def families(self) -> Mapping[str, DriverFamily]:
        return MappingProxyType(self._families)

    @property
    def schemes(self) -> Mapping[str, SchemeInfo]:
        return MappingProxyType(self._schemes)

    @property
    def problems(self) -> tuple[PluginProblem, ...]:
        return tuple(self._problems)

    def family(self, name: str) -> DriverFamily:
        """The family called ``name``; ``DriverNotAvailableError`` says what is known."""
        try:
            return self._families[name]
        except KeyError:
            pass
        for p in self._problems:
            if p.plugin == name:
                raise DriverNotAvailableError(f"driver family {name!r} is unusable: "
                                              f"{p.describe()}")
        known = ", ".join(sorted(self._families))
        raise DriverNotAvailableError(
            f"no driver family {name!r} is installed (installed: {known}); a vendor's "
            f"driver package registers its family in the entry point group "
            f"{ENTRY_POINT_GROUP}: install that package")

    def info(self, scheme: str) -> SchemeInfo:
        """The family that serves URL scheme ``scheme``."""
        contested = [p for p in self._problems if scheme in p.schemes]
        found = self._schemes.get(scheme)
        if found is not None and not contested:
            return found
        if contested:
            raise DriverNotAvailableError("; ".join(p.describe() for p in contested))
        broken = [p for p in self._problems if not p.schemes]
        known = ", ".join(sorted(self._schemes))
        message = (f"unknown URL scheme {scheme!r}: no installed driver family serves it "
                   f"(known schemes: {known}); install the package that provides it — "
                   f"driver packages register in the entry point group {ENTRY_POINT_GROUP}")
        if broken:
            message += "; plug-ins that failed to load: " + "; ".join(
                p.describe() for p in broken)
        raise DriverNotAvailableError(message)

    def load(self, scheme: str) -> type:
        """Import and return the driver class for ``scheme``."""
        found = self.info(scheme)
        target = found.scheme.driver
        family = found.family
        module_name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and (exc.name == module_name
                                         or module_name.startswith(exc.name + ".")):
                raise DriverNotAvailableError(
                    f"the {scheme}:// driver is not available in this version of "
                    f"{family.package} (module {module_name} not found)") from exc
            hint = (f"pip install '{family.requires}'" if family.requires
                    else f"install the dependencies of {family.package}")
            raise DriverNotAvailableError(
                f"the {scheme}:// driver needs {exc.name!r}: install it with {hint}"
            ) from exc
        try:
            cls = getattr(module, attr)
        except AttributeError:
            raise DriverNotAvailableError(f"{target} does not exist") from None
        if not isinstance(cls, type):
            raise DriverNotAvailableError(f"{target} is not a class")
        return cls


def _entry_points() -> list[EntryPoint]:
    try:
        return list(entry_points(group=ENTRY_POINT_GROUP))
    except Exception as exc:  # broken metadata of some installed distribution
        log.warning("cannot list %s entry points: %r", ENTRY_POINT_GROUP, exc)
        return []


def _dist(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "an unknown package"
    return f"{dist.name} {dist.version}"


def _import(target: str) -> object:
    module_name, sep, attr = target.partition(":")
    if not sep:
        raise ValueError(f"expected 'module:ATTRIBUTE', found {target!r}")
    obj: object = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _with_package(family: DriverFamily, package: str) -> DriverFamily:
    from dataclasses import replace
    return replace(family, package=package)
