"""PackML units over legacy machines: the line file's ``units:`` section (issue #12).

A *unit* maps a machine that has no PackML of its own onto the ISA-TR88.00.02 state model:
its state is derived from tag conditions (the first rule that holds, in file order), its
commands become tag writes (a level, or a pulse released after ``pulse_ms``), and its
PackTags (state, mode, command, counters, speed, stop reason) live in the process image on
an in-memory device ``packml`` (``memory://<line>-packml?push=1``) that :func:`with_units`
adds to the line.

:func:`load_units` reads and checks the section (every problem located as
``FILE:LINE:COL: units.filler.state.EXECUTE: message``); :class:`UnitRuntime` runs the
units inside the cycle: :meth:`UnitRuntime.step` never waits on a device (writes and the
reads of condition tags no task acquires are started as asyncio tasks whose results land
in the image for a later step).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import math
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Annotated, Any, TypeVar

from pydantic import Field

from smartline.config import DeviceConfig, LineConfig
from smartline.config._common import Issues
from smartline.config._messages import describe, did_you_mean
from smartline.config._schema import IDENTIFIER, _Model
from smartline.config._source import Document, KeyPath, read_document, sort_issues
from smartline.core import (
    Clock,
    ConfigError,
    ConfigIssue,
    Quality,
    RecipeError,
    SmartlineError,
    VirtualClock,
    WriteRefusedError,
    parse_url,
)
from smartline.cycle import ReadGroup
from smartline.drivers.memory import MemoryBus, MemoryDriver
from smartline.line import Line
from smartline.tags import Access, DataType, MemoryAddress, TagSpec, default_registry

from .expr import Expr, ExprError, ExprType, parse
from .packml import (
    DEFAULT_MODES,
    MODE_CHANGE_STATES,
    Command,
    ModeDef,
    State,
    command_by_name,
    mode_problems,
    next_state_in_mode,
    state_by_name,
)

__all__ = [
    "PACKTAG_SOURCES",
    "UNITS_DEVICE",
    "UNIT_TAG_TYPES",
    "UnitCommand",
    "UnitConfig",
    "UnitRuntime",
    "Units",
    "build_units",
    "load_units",
    "packtag_types",
    "tag_expr_type",
    "with_units",
]

log = logging.getLogger(__name__)
_E = TypeVar("_E")

UNITS_DEVICE = "packml"
"""The name of the in-memory device that holds every unit's PackTags."""

INITIAL_STATE = State.STOPPED
"""The state a unit has before its first rule holds (PackML: a machine powers up Stopped)."""

PACKTAG_SOURCES: Mapping[str, str] = MappingProxyType({
    "speed": "Status.CurMachSpeed",
    "speed_setpoint": "Command.MachSpeed",
    "produced": "Admin.ProdProcessedCount",
    "defective": "Admin.ProdDefectiveCount",
    "stop_reason": "Admin.StopReason.ID",
})
"""The optional ``packtags:`` keys of a unit and the PackTags each stands for."""

_MIRRORED = ("produced", "defective", "speed", "stop_reason")  # copied into <unit>.<key>

UNIT_TAG_TYPES: Mapping[str, ExprType] = MappingProxyType({
    "state": ExprType.STATE,
    "mode": ExprType.NUMBER,
    "command": ExprType.NUMBER,
    "produced": ExprType.NUMBER,
    "defective": ExprType.NUMBER,
    "speed": ExprType.NUMBER,
    "stop_reason": ExprType.NUMBER,
})
"""What each PackTags tag ``<unit>.<key>`` is in expressions (``filler.state == EXECUTE``)."""

_COMMAND_LIMITS = (0.0, 10.0)  # CntrlCmd numbers: 0 none, 1..10 the PackML commands
_MAX_UNTYPED = 6  # untyped tags in one condition tried with every type (3**6 checks at most)
_CANDIDATES = (ExprType.NUMBER, ExprType.STRING, ExprType.BOOL)
_UNIT_RULE = "letters, digits and '_', not starting with a digit"

EventSink = Callable[[str, str, Mapping[str, object]], None]


# -- the typed section ---------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class UnitCommand:
    """What a PackML command does to the machine: guarded writes, as a level (they stay)
    or a pulse (after ``pulse_ms`` the reset values are written: ``not v`` for a boolean,
    0 for a number)."""

    writes: tuple[tuple[str, object], ...]
    pulse_ms: int | None = None

    def resets(self) -> tuple[tuple[str, object], ...]:
        """The values a pulse writes when it ends."""
        return tuple((tag, _reset_value(value)) for tag, value in self.writes)


@dataclass(frozen=True, slots=True)
class UnitConfig:
    """One unit of the line: its modes, state rules, commands and PackTags sources."""

    name: str
    description: str
    mode: ModeDef  # the mode it starts in
    modes: Mapping[str, ModeDef]  # every mode it may be put in (defaults and its own), by name
    state_rules: tuple[tuple[State, Expr], ...]  # the first that holds gives the state
    commands: Mapping[Command, UnitCommand]
    packtags: Mapping[str, str]  # PACKTAG_SOURCES key -> tag of the line

    def tags(self) -> dict[str, tuple[DataType, Access, tuple[float, float] | None, str]]:
        """The PackTags tags this unit adds: name -> (type, access, limits, description)."""
        u = self.name
        out = {
            f"{u}.state": (DataType.UINT8, Access.R, None,
                           f"unit {u}: PackTags Status.StateCurrent (PackML state number)"),
            f"{u}.mode": (DataType.UINT8, Access.R, None,
                          f"unit {u}: PackTags Status.UnitModeCurrent"),
            f"{u}.command": (DataType.UINT8, Access.RW, _COMMAND_LIMITS,
                             f"unit {u}: PackTags Command.CntrlCmd - write a command number "
                             "(1 Reset, 2 Start, 3 Stop, 4 Hold, 5 Unhold, 6 Suspend, "
                             "7 Unsuspend, 8 Abort, 9 Clear, 10 Complete); reads 0 once taken"),
        }
        for key in _MIRRORED:
            if key in self.packtags:
                out[f"{u}.{key}"] = (DataType.FLOAT64, Access.R, None,
                                     f"unit {u}: PackTags {PACKTAG_SOURCES[key]} (from "
                                     f"{self.packtags[key]})")
        return out


@dataclass(frozen=True, slots=True)
class Units:
    """The units of a line, in file order (empty when the line has no ``units:``)."""

    units: Mapping[str, UnitConfig] = dataclasses.field(
        default_factory=lambda: MappingProxyType({}))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.units)

    def __getitem__(self, name: str) -> UnitConfig:
        return self.units[name]


def packtag_types(units: Units) -> dict[str, ExprType]:
    """Every PackTags tag the units add, with its type in expressions (for recipe checks)."""
    return {name: UNIT_TAG_TYPES[name.rpartition(".")[2]]
            for unit in units.units.values() for name in unit.tags()}


def tag_expr_type(spec: TagSpec) -> ExprType | None:
    """A line tag's type in expressions; None where the device decides (OPC UA nodes,
    profile points of instruments and CNCs): such a tag may be used as any type."""
    if spec.is_array:
        return None
    if spec.is_text:
        return ExprType.STRING
    dtype = spec.dtype
    if dtype is None:
        return None
    if dtype is DataType.BOOL:
        return ExprType.BOOL
    return ExprType.NUMBER


# -- loading -------------------------------------------------------------------------------

class _ModeModel(_Model):
    number: Annotated[int, Field(ge=4, le=255)]
    states: Annotated[list[str], Field(min_length=1)]
    description: str = ""


class _CommandModel(_Model):
    write: Annotated[dict[str, Any], Field(min_length=1)]
    pulse_ms: Annotated[int, Field(gt=0, le=60_000)] | None = None
    description: str = ""


class _PackTagsModel(_Model):
    speed: str | None = None
    speed_setpoint: str | None = None
    produced: str | None = None
    defective: str | None = None
    stop_reason: str | None = None


class _UnitModel(_Model):
    description: str = ""
    mode: str | int = "production"
    modes: dict[str, Any] = Field(default_factory=dict)
    state: Annotated[dict[Any, Any], Field(min_length=1)]
    commands: dict[Any, Any] = Field(default_factory=dict)
    packtags: _PackTagsModel = _PackTagsModel()


def load_units(config: LineConfig) -> Units:
    """The ``units:`` section of ``config``'s line file, checked against the line.

    Raises :class:`ConfigError` listing every problem, each located in the file.
    """
    doc = read_document(config.source, what="line file")
    return build_units(doc, config)


def build_units(doc: Document, config: LineConfig) -> Units:
    """Check the ``units:`` section of a parsed line file (see :func:`load_units`)."""
    loader = _UnitsLoader(doc, config)
    units = loader.load()
    if loader.issues.items:
        raise ConfigError(sort_issues(loader.issues.items, doc.file))
    return units


class _UnitsLoader:
    """One check of one ``units:`` section; collects issues as it goes."""

    def __init__(self, doc: Document, config: LineConfig) -> None:
        self.doc = doc
        self.config = config
        self.issues = Issues(doc)
        self.issues.items.clear()  # the document's own problems are the line loader's
        self.outputs = {tag: name for name, task in config.tasks.items() for tag in task.outputs}
        self._broken_modes: set[str] = set()  # user modes of the unit being read that failed
        self.env: dict[str, ExprType | None] = {
            name: tag_expr_type(spec) for name, spec in config.tags.items()}

    def load(self) -> Units:
        data = self.doc.data
        raw = data.get("units") if isinstance(data, dict) else None
        if raw is None:
            return Units()
        if not isinstance(raw, dict):
            self.issues.add(("units",), f"expected a mapping of unit names to their settings, "
                                        f"found {describe(raw)}")
            return Units()
        if raw and UNITS_DEVICE in self.config.devices:
            self.issues.add(("devices", UNITS_DEVICE), f"the device name {UNITS_DEVICE!r} is "
                            "taken by the units' PackTags device: rename this device",
                            at_key=True)
        units: dict[str, UnitConfig] = {}
        for name, settings in raw.items():
            unit = self._unit(name, settings, ("units", name))
            if unit is not None:
                units[unit.name] = unit
        return Units(MappingProxyType(units))

    # -- one unit ----------------------------------------------------------------------------
    def _unit(self, name: object, raw: object, path: KeyPath) -> UnitConfig | None:
        before = len(self.issues)
        if not isinstance(name, str) or not IDENTIFIER.fullmatch(name):
            self.issues.add(path, f"{describe(name)} is not a valid unit name: expected "
                                  f"{_UNIT_RULE} (its PackTags are <unit>.state ...)",
                            at_key=True)
            return None
        if not isinstance(raw, dict):
            self.issues.add(path, "expected the unit's settings (state: ..., commands: ...), "
                                  f"found {describe(raw)}")
            return None
        model = self.issues.validate(_UnitModel, raw, path)
        self._collisions(name, raw, path)
        modes = self._modes(raw.get("modes"), (*path, "modes"))
        mode = self._initial_mode(raw.get("mode", "production"), modes, (*path, "mode"))
        rules = self._rules(raw.get("state"), (*path, "state"))
        commands = self._commands(raw.get("commands"), (*path, "commands"))
        packtags = self._packtags(raw.get("packtags"), (*path, "packtags"))
        if model is None or mode is None or len(self.issues) > before:
            return None
        return UnitConfig(name=name, description=model.description, mode=mode,
                          modes=MappingProxyType(modes), state_rules=tuple(rules),
                          commands=MappingProxyType(commands),
                          packtags=MappingProxyType(packtags))

    def _collisions(self, name: str, raw: Mapping[Any, Any], path: KeyPath) -> None:
        """PackTags tags that the line already has (a device named like the unit with a
        point ``state``, or a tag written by hand)."""
        probe = UnitConfig(name, "", DEFAULT_MODES["production"], {}, (), {},
                           _given_packtags(raw.get("packtags")))
        for tag in probe.tags():
            spec = self.config.tags.get(tag)
            if spec is not None:
                self.issues.add(path, f"unit {name!r} would add PackTags tag {tag!r}, but the "
                                      f"line already has it (on device {spec.device!r}): "
                                      "rename the unit", at_key=True)

    def _modes(self, raw: object, path: KeyPath) -> dict[str, ModeDef]:
        modes = dict(DEFAULT_MODES)
        self._broken_modes = set()
        if not isinstance(raw, dict):
            return modes  # absent, or reported by the unit's model
        self._broken_modes = {str(n).lower() for n in raw}  # until each is found good
        numbers = {m.number: n for n, m in modes.items()}
        for name, settings in raw.items():
            item = (*path, name)
            if not isinstance(name, str) or not IDENTIFIER.fullmatch(name):
                self.issues.add(item, f"{describe(name)} is not a valid mode name: expected "
                                      f"{_UNIT_RULE}", at_key=True)
                continue
            if name.lower() in modes:
                self.issues.add(item, f"mode {name!r} is already a mode "
                                      f"({', '.join(DEFAULT_MODES)} are PackML's): choose "
                                      "another name", at_key=True)
                continue
            model = self.issues.validate(_ModeModel, settings, item)
            if model is None:
                continue
            if model.number in numbers:
                self.issues.add((*item, "number"), f"mode number {model.number} is taken by "
                                                   f"mode {numbers[model.number]!r}")
                continue
            states: set[State] = set()
            bad = False
            for i, text in enumerate(model.states):
                try:
                    states.add(state_by_name(text))
                except RecipeError as exc:
                    self.issues.add((*item, "states", i), exc.message)
                    bad = True
            if bad:
                continue
            mode = ModeDef(name.lower(), model.number, frozenset(states))
            problems = mode_problems(mode)
            if problems:
                for problem in problems:
                    self.issues.add((*item, "states"), problem.removeprefix(f"mode {mode.name}: ")
                                    + " (so that a unit in this mode can always be stopped "
                                    "and aborted)")
                continue
            numbers[model.number] = name
            modes[mode.name] = mode
        self._broken_modes -= set(modes)
        return modes

    def _initial_mode(self, raw: object, modes: Mapping[str, ModeDef],
                      path: KeyPath) -> ModeDef | None:
        if isinstance(raw, bool) or not isinstance(raw, str | int):
            return None  # reported by the unit's model
        if isinstance(raw, int):
            found = next((m for m in modes.values() if m.number == raw), None)
            if found is None:
                self.issues.add(path, f"no mode number {raw}; modes: "
                                      + ", ".join(f"{m.name} ({m.number})"
                                                  for m in modes.values()))
            return found
        mode = modes.get(raw.lower())
        if mode is None and raw.lower() in self._broken_modes:
            return None  # its own problems are reported already
        if mode is None:
            self.issues.add(path, f"unknown mode {raw!r}{did_you_mean(raw.lower(), modes)}; "
                                  f"modes: {', '.join(modes)}")
            return None
        if INITIAL_STATE not in mode.states:
            self.issues.add(path, f"mode {mode.name!r} leaves out {INITIAL_STATE.name}, the "
                                  "state a unit starts in")
            return None
        return mode

    def _rules(self, raw: object, path: KeyPath) -> list[tuple[State, Expr]]:
        rules: list[tuple[State, Expr]] = []
        if not isinstance(raw, dict):
            return rules  # missing or not a mapping: reported by the unit's model
        seen: dict[State, Hashable] = {}
        for key, value in raw.items():
            item = (*path, key)
            state = self._keyed(key, item, "state rule", "state", state_by_name)
            if state is None:
                continue
            if state in seen:
                self.issues.add(item, f"state {state.name} has a rule already ({seen[state]!r}):"
                                      " give one condition per state (use 'or')", at_key=True)
                continue
            seen[state] = key
            expr = self._condition(value, item)
            if expr is not None:
                rules.append((state, expr))
        return rules

    def _keyed(self, key: object, item: KeyPath, what: str, kind: str,
               by_name: Callable[[str], _E]) -> _E | None:
        """The PackML ``kind`` a key names (``by_name``), or None with the error reported."""
        if not isinstance(key, str):
            self.issues.add(item, f"a {what} is keyed by a PackML {kind} name, found "
                                  f"{describe(key)}", at_key=True)
            return None
        try:
            return by_name(key)
        except RecipeError as exc:
            self.issues.add(item, exc.message, at_key=True)
            return None

    def _condition(self, value: object, path: KeyPath) -> Expr | None:
        """A boolean condition over the line's tags, located inside the value on error."""
        if isinstance(value, bool):
            value = "true" if value else "false"
        if not isinstance(value, str):
            self.issues.add(path, f"expected a condition (text such as 'filler.running'), "
                                  f"found {describe(value)}")
            return None
        try:
            expr = parse(value)
            _check_condition(expr, self.env)
        except ExprError as exc:
            self.issues.add(path, exc.message, offset=exc.offset)
            return None
        return expr

    def _commands(self, raw: object, path: KeyPath) -> dict[Command, UnitCommand]:
        out: dict[Command, UnitCommand] = {}
        if not isinstance(raw, dict):
            return out
        for key, settings in raw.items():
            item = (*path, key)
            command = self._keyed(key, item, "command", "command", command_by_name)
            if command is None:
                continue
            if command in out:
                self.issues.add(item, f"command {command.name} is mapped twice", at_key=True)
                continue
            model = self.issues.validate(_CommandModel, settings, item)
            if model is None:
                continue
            writes = self._writes(model, (*item, "write"))
            if writes is not None:
                out[command] = UnitCommand(writes=writes, pulse_ms=model.pulse_ms)
        return out

    def _writes(self, model: _CommandModel, path: KeyPath) -> tuple[tuple[str, object], ...] | None:
        writes: list[tuple[str, object]] = []
        ok = True
        for tag, value in model.write.items():
            item = (*path, tag)
            spec = self.config.tags.get(tag)
            if spec is None:
                known = sorted(self.config.tags)
                self.issues.add(item, f"unknown tag {tag!r}{did_you_mean(tag, known)}",
                                at_key=True)
                ok = False
                continue
            if not spec.writable:
                self.issues.add(item, f"tag {tag!r} is read-only (access {spec.access.value}): "
                                      "a command writes tags with access rw or w", at_key=True)
                ok = False
                continue
            owner = self.outputs.get(tag)
            if owner is not None:
                self.issues.add(item, f"tag {tag!r} is an output of task {owner!r}: its program "
                                      "sets it every cycle and would undo the command",
                                at_key=True)
                ok = False
                continue
            if isinstance(value, list | dict) or value is None:
                self.issues.add(item, f"expected a value to write, found {describe(value)}")
                ok = False
                continue
            try:
                spec.check_write(value)
                if model.pulse_ms is not None:
                    try:
                        spec.check_write(_reset_value(value))
                    except WriteRefusedError as exc:
                        self.issues.add(item, f"the pulse ends by writing "
                                              f"{_reset_value(value)!r}, which is refused: "
                                              f"{exc.message}; use a level command (no "
                                              "pulse_ms)")
                        ok = False
                        continue
            except WriteRefusedError as exc:
                self.issues.add(item, f"cannot write {value!r} to {tag!r}: {exc.message}")
                ok = False
                continue
            writes.append((tag, value))
        return tuple(writes) if ok else None

    def _packtags(self, raw: object, path: KeyPath) -> dict[str, str]:
        out: dict[str, str] = {}
        if not isinstance(raw, dict):
            return out
        for key, tag in raw.items():
            if key not in PACKTAG_SOURCES or not isinstance(tag, str):
                continue  # reported by the unit's model
            item = (*path, key)
            spec = self.config.tags.get(tag)
            if spec is None:
                known = sorted(self.config.tags)
                self.issues.add(item, f"unknown tag {tag!r}{did_you_mean(tag, known)}")
                continue
            if key == "speed_setpoint":
                if not spec.writable:
                    self.issues.add(item, f"tag {tag!r} is read-only (access "
                                          f"{spec.access.value}): the speed setpoint "
                                          "(Command.MachSpeed) is written")
                    continue
            elif spec.access is Access.W:
                self.issues.add(item, f"tag {tag!r} is write-only (access w): "
                                      f"{PACKTAG_SOURCES[key]} is read from it")
                continue
            elif tag_expr_type(spec) not in (ExprType.NUMBER, None):
                self.issues.add(item, f"tag {tag!r} is not a number: "
                                      f"{PACKTAG_SOURCES[key]} is a number")
                continue
            out[key] = tag
        return out


def _given_packtags(raw: object) -> dict[str, str]:
    if not isinstance(raw, dict):
        return {}
    return {k: v for k, v in raw.items() if k in PACKTAG_SOURCES and isinstance(v, str)}


def _reset_value(value: object) -> object:
    """What ends a pulse of ``value``: its negation for a boolean, else 0."""
    if isinstance(value, bool):
        return not value
    return 0


def _check_condition(expr: Expr, env: Mapping[str, ExprType | None]) -> None:
    """Check ``expr`` as a condition. A tag whose type the device decides (None) may be any
    type: the condition is accepted if some choice of types makes it a valid condition;
    otherwise the error with every such tag taken as a number is raised."""
    untyped = sorted(n for n in expr.names if n in env and env[n] is None)
    base = {n: t for n, t in env.items() if t is not None}
    first: ExprError | None = None
    choices = (itertools.product(_CANDIDATES, repeat=len(untyped))
               if len(untyped) <= _MAX_UNTYPED else [(ExprType.NUMBER,) * len(untyped)])
    for types in choices:
        try:
            expr.check({**base, **dict(zip(untyped, types, strict=True))}, want=ExprType.BOOL)
            return
        except ExprError as exc:
            if first is None:
                first = exc
    assert first is not None
    raise first


# -- the line with the units' PackTags -------------------------------------------------------

def with_units(config: LineConfig, units: Units) -> LineConfig:
    """``config`` plus the ``packml`` memory device and every unit's PackTags tags.

    ``ConfigError`` when the line has a device ``packml`` already or a PackTags tag name is
    taken. A line without units comes back unchanged.
    """
    if not units.units:
        return config
    file = str(config.source)
    problems: list[ConfigIssue] = []
    if UNITS_DEVICE in config.devices:
        problems.append(ConfigIssue(file=file, path=f"devices.{UNITS_DEVICE}",
                                    message=f"the device name {UNITS_DEVICE!r} is taken by "
                                            "the units' PackTags device: rename this device"))
    tags = dict(config.tags)
    for unit in units.units.values():
        for name, (dtype, access, limits, description) in unit.tags().items():
            if name in tags:
                problems.append(ConfigIssue(
                    file=file, path=f"units.{unit.name}",
                    message=f"unit {unit.name!r} would add PackTags tag {name!r}, but the "
                            "line already has it: rename the unit"))
                continue
            tags[name] = TagSpec(name=name, device=UNITS_DEVICE,
                                 address=MemoryAddress(name, dtype), access=access,
                                 limits=limits, description=description)
    if problems:
        raise ConfigError(problems)
    devices = dict(config.devices)
    devices[UNITS_DEVICE] = _packml_device(config.name)
    return dataclasses.replace(config, devices=MappingProxyType(devices),
                               tags=MappingProxyType(tags))


def _packml_device(line: str) -> DeviceConfig:
    info = default_registry().info("memory")
    url = parse_url(f"memory://{line}-packml?push=1")
    options_model = info.family.options
    assert options_model is not None
    return DeviceConfig(name=UNITS_DEVICE, url=url, scheme=info, timeout_s=1.0,
                        options=options_model.model_validate({"push": True}),
                        description="PackTags of the line's PackML units (in memory)")


# -- running the units ------------------------------------------------------------------------

@dataclass(slots=True)
class _Pulse:
    """A pulse command whose reset values are written at ``due_ns`` (once its set is sent)."""

    due_ns: int
    unit: str
    resets: dict[str, object]
    source: str
    started: asyncio.Task[None]


class UnitRuntime:
    """Runs a line's units: derives their states, takes their commands, keeps their PackTags.

    ``line`` must be built from :func:`with_units` (its ``packml`` device and PackTags tags).
    ``on_event(kind, unit, data)`` hears ``unit`` state changes (``{"from", "to"}``, state
    names) and ``command`` records (``{"command", "source", "accepted", "reason", "state",
    "mode"}``) for the batch journal. Every write goes through ``line.io.write`` (guarded and
    audited) with source ``unit:<unit>/<source>``.
    """

    def __init__(self, units: Units, line: Line, *, clock: Clock,
                 on_event: EventSink | None = None) -> None:
        missing = [f"{u}.state" for u in units.names if f"{u}.state" not in line.image.tags]
        if missing or (units.units and UNITS_DEVICE not in line.config.devices):
            raise RecipeError(f"line {line.config.name!r} has no PackTags for units "
                              f"{', '.join(units.names)}: build its config with "
                              "with_units(config, units)")
        self.units = units
        self.line = line
        self.clock = clock
        self.on_event = on_event
        self._states: dict[str, State] = dict.fromkeys(units.names, INITIAL_STATE)
        self._modes: dict[str, ModeDef] = {u: c.mode for u, c in units.units.items()}
        self._bus: MemoryBus | None = None
        self._poll: ReadGroup | None = None
        self._poll_task: asyncio.Task[None] | None = None
        self._writes: set[asyncio.Task[None]] = set()
        self._pulses: list[_Pulse] = []
        self._closed = False

    # -- queries ---------------------------------------------------------------------------
    def state(self, unit: str) -> State:
        """The unit's state as last derived (STOPPED before the first rule holds)."""
        self._config(unit)
        return self._states[unit]

    def mode(self, unit: str) -> ModeDef:
        self._config(unit)
        return self._modes[unit]

    def _config(self, unit: str) -> UnitConfig:
        config = self.units.units.get(unit)
        if config is None:
            raise RecipeError(f"unknown unit {unit!r}{did_you_mean(unit, self.units.names)}; "
                              f"units: {', '.join(self.units.names) or 'none'}")
        return config

    # -- the cycle -------------------------------------------------------------------------
    async def step(self, now_ns: int) -> None:
        """One pass: derive every unit's state from the image, take commands written to
        ``<unit>.command``, end pulses that are due, publish the PackTags. Waits on no
        device (the first step subscribes the in-memory PackTags, which answers at once)."""
        if self._closed:
            return
        if self._bus is None:
            await self._start()
        self._start_poll()
        for unit in self.units.names:
            self._derive(unit)
        for unit in self.units.names:
            self._take_command(unit)
        self._release(now_ns)
        self._publish()
        if isinstance(self.clock, VirtualClock):
            await self.settle()

    def pending(self) -> list[asyncio.Task[None]]:
        """The writes (and the condition read) this runtime has started and not seen end."""
        tasks = [t for t in self._writes if not t.done()]
        if self._poll_task is not None and not self._poll_task.done():
            tasks.append(self._poll_task)
        return tasks

    async def settle(self) -> None:
        """Wait for what :meth:`pending` lists. In virtual time the steps do it, so the line
        runs in lock-step and repeats exactly (a write lands within the step that started
        it); in real time a step never waits on a device."""
        tasks = self.pending()
        if tasks:
            await asyncio.wait(tasks)

    async def _start(self) -> None:
        io = self.line.io
        driver = io.driver(UNITS_DEVICE)
        if not isinstance(driver, MemoryDriver):
            raise RecipeError(f"device {UNITS_DEVICE!r} is not a memory device")
        self._bus = driver.bus
        self._publish()
        await driver.connect()
        names = [n for n, t in io.config.tags.items() if t.device == UNITS_DEVICE]
        io.group(names, push=True)  # notes them for start_push: they come by push only
        await io.start_push()
        # condition and PackTags source tags that no task acquires: the units read them
        acquired = {n for task in io.config.tasks.values() for n in task.all_tags}
        wanted: dict[str, None] = {}
        for unit in self.units.units.values():
            for _, expr in unit.state_rules:
                wanted.update(dict.fromkeys(sorted(n for n in expr.names
                                                   if n in io.config.tags)))
            wanted.update(dict.fromkeys(v for k, v in unit.packtags.items() if k in _MIRRORED))
        own = [n for n in wanted if n not in acquired and io.config.tags[n].device != UNITS_DEVICE
               and io.config.tags[n].access is not Access.W]
        if own:
            self._poll = io.group(own)

    def _start_poll(self) -> None:
        if self._poll is None or (self._poll_task is not None and not self._poll_task.done()):
            return
        self._poll_task = asyncio.ensure_future(self._read(self._poll))

    async def _read(self, group: ReadGroup) -> None:
        try:
            await self.line.io.read(group)
        except SmartlineError as exc:  # io.read marks failed devices' tags itself
            log.debug("units: reading condition tags failed: %s", exc)

    def _lookup(self, name: str) -> tuple[object, bool]:
        value = self.line.image.get(name)
        return value.value, value.quality is Quality.GOOD

    def _derive(self, unit: str) -> None:
        config = self.units.units[unit]
        state = next((s for s, expr in config.state_rules if expr.holds(self._lookup)), None)
        if state is None:
            return  # no rule holds (e.g. its tags are not GOOD): the state stays
        old = self._states[unit]
        if state is not old:
            self._states[unit] = state
            log.info("unit %s: %s -> %s", unit, old.name, state.name)
            self._emit("unit", unit, {"from": old.name, "to": state.name})

    def _take_command(self, unit: str) -> None:
        """A CntrlCmd number written to ``<unit>.command`` (by anyone, guarded and audited):
        executed, then the tag goes back to 0 as a PackML unit acknowledges CntrlCmd."""
        tag = f"{unit}.command"
        value = self.line.image.get(tag)
        if value.quality is not Quality.GOOD or not isinstance(value.value, int | float) \
                or isinstance(value.value, bool) or not value.value:
            return
        assert self._bus is not None
        number = value.value
        self._bus.set(tag, 0)
        if not (isinstance(number, int) or (math.isfinite(number) and number.is_integer())):
            log.warning("unit %s: command number %r is not a whole number; ignored", unit,
                        number)
            return
        try:
            command = Command(int(number))
        except ValueError:
            log.warning("unit %s: %r is not a PackML command number; ignored", unit, number)
            return
        try:
            self.command(unit, command, source=f"tag:{tag}")
        except RecipeError as exc:
            log.warning("unit %s: command %s written to %s refused: %s", unit, command.name,
                        tag, exc)

    def _release(self, now_ns: int) -> None:
        due = [p for p in self._pulses if now_ns >= p.due_ns and p.started.done()]
        for pulse in due:
            self._pulses.remove(pulse)
            self._write(pulse.resets, pulse.source)

    def _publish(self) -> None:
        bus = self._bus
        if bus is None:
            return
        for unit, config in self.units.units.items():
            bus.set(f"{unit}.state", int(self._states[unit]))
            bus.set(f"{unit}.mode", self._modes[unit].number)
            for key in _MIRRORED:
                source = config.packtags.get(key)
                if source is None:
                    continue
                value = self.line.image.get(source)
                v = value.value
                if value.quality is Quality.GOOD and isinstance(v, int | float):
                    bus.set(f"{unit}.{key}", float(v))

    # -- commands --------------------------------------------------------------------------
    def command(self, unit: str, command: Command, *, source: str) -> None:
        """Command ``unit``: ``RecipeError`` (and a refused ``command`` event) if its state or
        mode refuses the command or the unit has no writes for it; else its writes start."""
        config = self._config(unit)
        if self._closed:
            raise RecipeError(f"unit {unit!r}: the unit runtime is closed")
        state, mode = self._states[unit], self._modes[unit]
        data: dict[str, object] = {"command": command.name, "source": source,
                                   "state": state.name, "mode": mode.name}
        try:
            next_state_in_mode(state, command, mode)
            mapped = config.commands.get(command)
            if mapped is None:
                maps = ", ".join(c.name for c in config.commands) or "none"
                raise RecipeError(f"unit {unit!r} has no writes for {command.name} (its "
                                  f"commands: {maps})")
        except RecipeError as exc:
            self._emit("command", unit, {**data, "accepted": False, "reason": exc.message})
            raise
        self._emit("command", unit, {**data, "accepted": True, "reason": ""})
        log.info("unit %s: %s accepted in %s (%s)", unit, command.name, state.name, source)
        full = f"unit:{unit}/{source}"
        task = self._write(dict(mapped.writes), full)
        if mapped.pulse_ms is not None:
            self._pulses.append(_Pulse(self.clock.now_ns() + mapped.pulse_ms * 1_000_000,
                                       unit, dict(mapped.resets()), full, task))

    def set_mode(self, unit: str, mode: str, *, source: str) -> None:
        """Put ``unit`` in ``mode`` (a name of its modes): accepted only in STOPPED, IDLE or
        ABORTED (``MODE_CHANGE_STATES``) and when the mode allows the state it is in."""
        config = self._config(unit)
        state, old = self._states[unit], self._modes[unit]
        data: dict[str, object] = {"command": "MODE", "mode": mode, "source": source,
                                   "state": state.name}
        try:
            new = config.modes.get(mode.lower())
            if new is None:
                raise RecipeError(f"unit {unit!r} has no mode {mode!r}"
                                  f"{did_you_mean(mode.lower(), config.modes)}; modes: "
                                  f"{', '.join(config.modes)}")
            if state not in MODE_CHANGE_STATES:
                allowed = ", ".join(sorted(s.name for s in MODE_CHANGE_STATES))
                raise RecipeError(f"unit {unit!r} is {state.name}: its mode changes only in "
                                  f"{allowed}")
            if state not in new.states:
                raise RecipeError(f"mode {new.name!r} does not allow {state.name}, the state "
                                  f"unit {unit!r} is in")
        except RecipeError as exc:
            self._emit("command", unit, {**data, "accepted": False, "reason": exc.message})
            raise
        self._modes[unit] = new
        self._emit("command", unit, {**data, "accepted": True, "reason": "",
                                     "from": old.name})
        self._publish()

    def _write(self, values: dict[str, object], source: str) -> asyncio.Task[None]:
        task = asyncio.ensure_future(self._send(values, source))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)
        return task

    async def _send(self, values: dict[str, object], source: str) -> None:
        try:
            await self.line.io.write(values, source=source)
        except SmartlineError as exc:  # refused or failed: audited by the line already
            log.warning("%s: write %s failed: %s", source, values, exc)

    def _emit(self, kind: str, unit: str, data: Mapping[str, object]) -> None:
        if self.on_event is not None:
            self.on_event(kind, unit, data)

    async def drain(self) -> None:
        """Wait until the reads and writes started so far have ended (tests, shutdown)."""
        if self._poll_task is not None:
            await asyncio.gather(self._poll_task, return_exceptions=True)
        while self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)

    async def aclose(self) -> None:
        """End pending pulses now (their reset values are written), then wait for every
        write in flight; later steps do nothing."""
        self._closed = True
        for pulse in list(self._pulses):
            self._pulses.remove(pulse)
            await asyncio.gather(pulse.started, return_exceptions=True)
            self._write(pulse.resets, pulse.source)
        await self.drain()
