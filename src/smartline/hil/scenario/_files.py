"""Plant files and scenario files: their shape (pydantic) and their meaning (checked objects).

A plant file (``smartline-plant: 1``) names block instances, links between their signals and
the wiring of device points to block signals. A scenario file (``smartline-scenario: 1``)
names a plant, the simulated devices (protocol, profile, port), the initial state, a timeline
of faults and events and the expected outcomes. Both are data: times are text with a unit
(``500ms``, ``30s``, ``2min``, ``1h``), never code. Every problem is reported with its
location, ``FILE:LINE:COL: key.path: message``, in one :class:`~smartline.core.ConfigError`.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import Field, PlainValidator

from smartline.config import Profile, find_profile, load_profile
from smartline.config._common import Issues, data_dir
from smartline.config._schema import _Model, fail
from smartline.config._source import Document, KeyPath, read_document, sort_issues
from smartline.core import ConfigError

from ..blocks import BLOCK_TYPES, FAULT_EVENTS, BlockType

__all__ = [
    "DEVICE_FAULTS",
    "PLANT_FORMAT_KEY",
    "PROTOCOLS",
    "SCENARIO_FORMAT_KEY",
    "BlockSpec",
    "DeviceSpec",
    "Expectation",
    "LinkSpec",
    "PlantSpec",
    "Scenario",
    "TimelineEvent",
    "WireSpec",
    "check_plant_document",
    "check_scenario_document",
    "load_plant",
    "parse_duration_ns",
]

PLANT_FORMAT_KEY = "smartline-plant"
SCENARIO_FORMAT_KEY = "smartline-scenario"
VERSIONS = (1,)

PROTOCOLS: Mapping[str, str] = MappingProxyType({
    "modbus+tcp": "modbus", "modbus+rtuovertcp": "modbus", "s7": "s7", "serial": "serial",
    "opc.tcp": "opcua", "mtconnect+http": "cnc", "grbl": "cnc"})
"""Scenario device protocols (the URL schemes of the line's devices) → the profile family
they serve."""

DEVICE_FAULTS: Mapping[str, frozenset[str]] = MappingProxyType({
    "modbus": frozenset({"down", "latency", "exception", "corrupt", "garbage", "no_answer",
                         "disconnect"}),
    "s7": frozenset({"down", "latency", "exception", "corrupt", "no_answer", "disconnect"}),
    "serial": frozenset({"down", "latency", "corrupt", "no_answer"}),
    "opcua": frozenset({"down", "latency", "corrupt", "no_answer", "disconnect"}),
    # the cnc family has two simulators: keyed by protocol
    "mtconnect+http": frozenset({"down", "latency", "corrupt", "restart", "unavailable"}),
    "grbl": frozenset({"down", "latency", "corrupt", "no_answer", "disconnect", "alarm"}),
})
"""The device faults each simulator can play, by profile family (or by protocol where a
family has several simulators; see docs/reference/scenarios.md)."""

SIGNAL_FAULTS = frozenset({"stuck", "noise", "offset", "drift", "clear"})
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")
_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|min|h)\s*$")
_UNIT_NS = {"ms": 1_000_000, "s": 1_000_000_000, "min": 60_000_000_000, "h": 3_600_000_000_000}
MAX_DURATION_NS = 366 * 24 * 3_600_000_000_000


def parse_duration_ns(text: object) -> int:
    """``"500ms"``, ``"30s"``, ``"2min"``, ``"1.5h"`` → nanoseconds (``ValueError`` otherwise)."""
    if not isinstance(text, str):
        raise ValueError(f"expected a time with a unit like '30s', '500ms', '2min' or '1h', "
                         f"found {text!r}")
    m = _DURATION.fullmatch(text)
    if m is None:
        raise ValueError(f"expected a time with a unit like '30s', '500ms', '2min' or '1h', "
                         f"found {text!r}")
    ns = round(float(m.group(1)) * _UNIT_NS[m.group(2)])
    if ns > MAX_DURATION_NS:
        raise ValueError(f"time {text!r} is longer than a year")
    return ns


def _duration(value: object) -> int:
    try:
        return parse_duration_ns(value)
    except ValueError as exc:
        fail(str(exc))


def _name(value: object) -> str:
    if not isinstance(value, str) or not NAME.fullmatch(value):
        fail(f"expected a name (letters, digits, '_', '-'), found {value!r}")
    return value


_POINT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


def _ref(value: object) -> str:
    """``NAME.SIGNAL``: a block or device name, a dot, a signal or point (which may hold
    dots itself, as profile points do: ``plc.status.state_current``)."""
    name, dot, rest = value.partition(".") if isinstance(value, str) else ("", "", "")
    if not dot or not NAME.fullmatch(name) or not _POINT.fullmatch(rest):
        fail(f"expected 'NAME.SIGNAL' (a block or device, a dot, a signal or point), "
             f"found {value!r}")
    return name + dot + rest


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        fail(f"expected a finite number, found {value!r}")
    return float(value)


Duration = Annotated[int, PlainValidator(_duration)]
Name = Annotated[str, PlainValidator(_name)]
Ref = Annotated[str, PlainValidator(_ref)]
Number = Annotated[float, PlainValidator(_number)]
Value = bool | int | float


# -- shapes ------------------------------------------------------------------------------------

class BlockModel(_Model):
    """One block instance: its type and parameters."""

    type: str
    params: dict[str, Number] = Field(default_factory=dict)
    description: str = ""


class LinkModel(_Model):
    """Block output → block input, ``to = from · gain + offset``."""

    from_: Ref = Field(alias="from")
    to: Ref
    gain: Number = 1.0
    offset: Number = 0.0


class WireModel(_Model):
    """A device point wired to a block signal, with an optional linear map."""

    signal: Ref
    gain: Number = 1.0
    offset: Number = 0.0


class PlantFileModel(_Model):
    """Top level of a plant file."""

    smartline_plant: int = Field(alias="smartline-plant")
    name: Name
    description: str = ""
    blocks: dict[str, BlockModel]
    links: list[LinkModel] = Field(default_factory=list)
    wiring: dict[str, Ref | WireModel] = Field(default_factory=dict)


class TimeModel(_Model):
    step_ms: Number = 10.0


class DeviceModel(_Model):
    """A simulated endpoint of a scenario."""

    protocol: str
    profile: str
    unit: int = 1
    port: int = 0
    transport: Literal["socket", "pty", "rfc2217"] = "socket"
    rack: int = 0
    slot: int = 1


class EventModel(_Model):
    """One timeline entry; the loader checks which keys go together."""

    at: Duration
    for_: Duration | None = Field(None, alias="for")
    device: Name | None = None
    fault: str | None = None
    signal: Ref | None = None
    block: Name | None = None
    event: str | None = None
    set: Ref | None = None
    value: Value | None = None
    ms: Number | None = None
    code: int | None = None
    sigma: Number | None = None
    rate_per_s: Number | None = None
    args: dict[str, Value | str] = Field(default_factory=dict)


class RangeModel(_Model):
    min: Number = -math.inf
    max: Number = math.inf


class ExpectModel(_Model):
    """One expected outcome; the loader checks which keys go together."""

    point: Ref | None = None
    signal: Ref | None = None
    tag: str | None = None
    alarm: Ref | None = None
    reaches: RangeModel | None = None
    stays: RangeModel | None = None
    goes: Literal["bad", "good"] | None = None
    within: Duration | None = None
    between: list[Duration] | None = None


class ScenarioFileModel(_Model):
    """Top level of a scenario file."""

    smartline_scenario: int = Field(alias="smartline-scenario")
    name: Name
    description: str = ""
    plant: str
    seed: int = 0
    time: TimeModel = TimeModel()
    devices: dict[str, DeviceModel]
    initial: dict[str, Value] = Field(default_factory=dict)
    timeline: list[EventModel] = Field(default_factory=list)
    expect: list[ExpectModel] = Field(default_factory=list)


# -- meaning -----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class BlockSpec:
    """A block instance of a plant: its type and the parameters given (others: defaults)."""

    name: str
    type: BlockType
    params: Mapping[str, float]


@dataclass(frozen=True, slots=True)
class LinkSpec:
    """``dst_block.dst_input = src_block.src_output · gain + offset`` before every step."""

    src_block: str
    src_output: str
    dst_block: str
    dst_input: str
    gain: float = 1.0
    offset: float = 0.0


@dataclass(frozen=True, slots=True)
class WireSpec:
    """Device point ↔ block signal. ``to_device``: an output the controller reads; else a
    point the controller writes, fed to a block input before every step."""

    device: str
    point: str
    block: str
    signal: str
    to_device: bool
    gain: float = 1.0
    offset: float = 0.0


@dataclass(frozen=True, slots=True)
class PlantSpec:
    """A checked plant file (device names in its wiring are checked by the scenario)."""

    name: str
    path: Path
    description: str
    blocks: Mapping[str, BlockSpec]
    links: tuple[LinkSpec, ...]
    wiring: tuple[WireSpec, ...]


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """A simulated endpoint: protocol, the profile it serves, where it listens."""

    name: str
    protocol: str
    profile: Profile
    unit: int = 1
    port: int = 0
    transport: str = "socket"
    rack: int = 0
    slot: int = 1

    @property
    def family(self) -> str:
        return PROTOCOLS[self.protocol]


EventKind = Literal["device", "signal", "block", "power_loss", "set"]


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    """One timeline entry: at ``at_ns`` do ``what`` to ``target``, undone after ``for_ns``.

    ``kind`` "device" (a device fault: down, latency…), "signal" (a sensor fault on a block
    output), "block" (a block event with ``args``), "power_loss" (every device down, the
    wired actuators de-energised, motors lose mains) or "set" (a value written to a device
    point or block input/parameter/state, as an operator would).
    """

    index: int
    at_ns: int
    kind: EventKind
    target: str = ""
    what: str = ""
    args: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    for_ns: int | None = None

    def describe(self) -> str:
        extra = "".join(f" {k}={v}" for k, v in self.args.items())
        lasting = f" for {self.for_ns / 1e9:g}s" if self.for_ns is not None else ""
        return f"{self.kind} {self.target} {self.what}{extra}{lasting}".replace("  ", " ")


@dataclass(frozen=True, slots=True)
class Expectation:
    """An expected outcome. ``subject`` is "point" (device.point), "signal" (block.output),
    "alarm" (a bool block output or device point going true) or "tag" (a line tag, seen only
    with a line); ``check`` is "reaches", "stays" or "goes" (bad/good)."""

    index: int
    subject: Literal["point", "signal", "alarm", "tag"]
    name: str
    check: Literal["reaches", "stays", "goes"]
    low: float = -math.inf
    high: float = math.inf
    goes: str = ""
    start_ns: int = 0
    end_ns: int | None = None

    def describe(self) -> str:
        if self.subject == "alarm":
            what = f"alarm {self.name}"
        elif self.check == "goes":
            what = f"{self.subject} {self.name} goes {self.goes}"
        else:
            what = f"{self.subject} {self.name} {self.check} [{self.low:g}, {self.high:g}]"
        end = "the end" if self.end_ns is None else f"{self.end_ns / 1e9:g}s"
        return f"{what} between {self.start_ns / 1e9:g}s and {end}"


@dataclass(frozen=True, slots=True)
class Scenario:
    """A checked scenario file with its plant (see :meth:`load`)."""

    name: str
    path: Path
    description: str
    plant: PlantSpec
    seed: int
    step_ns: int
    devices: Mapping[str, DeviceSpec]
    initial: Mapping[str, Value]
    timeline: tuple[TimelineEvent, ...]
    expect: tuple[Expectation, ...]

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Scenario:
        """Read and check a scenario file and its plant; ``ConfigError`` lists every problem."""
        doc = read_document(path, what="scenario file")
        scenario, issues = check_scenario_document(doc)
        if scenario is None or issues:
            raise ConfigError(sort_issues(issues, doc.file))
        return scenario


# -- checking a plant ------------------------------------------------------------------------

def load_plant(path: str | os.PathLike[str]) -> PlantSpec:
    """Read and check a plant file on its own (device names are not checked)."""
    doc = read_document(path, what="plant file")
    plant, issues = check_plant_document(doc)
    if plant is None or issues.items:
        raise ConfigError(sort_issues(issues.items, doc.file))
    return plant


def _split(ref: str) -> tuple[str, str]:
    a, _, b = ref.partition(".")
    return a, b


def _signal_kind(block: BlockType, signal: str) -> str | None:
    if signal in block.outputs:
        return "output"
    if signal in block.inputs:
        return "input"
    return None


def check_plant_document(doc: Document) -> tuple[PlantSpec | None, Issues]:
    """Check a parsed plant file; the plant is None when anything is wrong."""
    issues = Issues(doc)
    if not issues.version(PLANT_FORMAT_KEY, VERSIONS, "plant file"):
        return None, issues
    top = issues.validate(PlantFileModel, doc.data, ())
    if top is None:
        return None, issues
    blocks: dict[str, BlockSpec] = {}
    for name, b in top.blocks.items():
        path: KeyPath = ("blocks", name)
        if not NAME.fullmatch(name) or "-" in name:
            issues.add(path, f"block name {name!r}: expected letters, digits and '_'",
                       at_key=True)
            continue
        btype = BLOCK_TYPES.get(b.type)
        if btype is None:
            issues.add((*path, "type"), f"unknown block type {b.type!r}; expected one of "
                                        f"{', '.join(BLOCK_TYPES)}")
            continue
        ok = True
        for pname, value in b.params.items():
            spec = btype.params.get(pname) or btype.sizes.get(pname)
            if spec is None:
                issues.add((*path, "params", pname),
                           f"{b.type} has no parameter {pname!r}; expected one of "
                           f"{', '.join([*btype.params, *btype.sizes])}", at_key=True)
                ok = False
            elif not spec.min <= value <= spec.max or ((
                    spec.kind == "int" or pname in btype.sizes) and not value.is_integer()):
                issues.add((*path, "params", pname),
                           f"{b.type} parameter {pname!r} must be "
                           f"{'a whole number ' if pname in btype.sizes else ''}within "
                           f"[{spec.min:g}, {spec.max:g}] {spec.unit}".rstrip()
                           + f", found {value:g}")
                ok = False
        if ok:
            blocks[name] = BlockSpec(name, btype, MappingProxyType(dict(b.params)))
    links: list[LinkSpec] = []
    for k, link in enumerate(top.links):
        src = _block_signal(issues, blocks, top, link.from_, path=("links", k, "from"),
                            want="output")
        dst = _block_signal(issues, blocks, top, link.to, path=("links", k, "to"), want="input")
        if src is not None and dst is not None:
            links.append(LinkSpec(*src, *dst, link.gain, link.offset))
    wiring: list[WireSpec] = []
    fed: dict[tuple[str, str], str] = {}
    for ln in links:
        fed[(ln.dst_block, ln.dst_input)] = f"link {ln.src_block}.{ln.src_output}"
    for point, w in top.wiring.items():
        wpath: KeyPath = ("wiring", point)
        try:
            _ref(point)
        except Exception:
            issues.add(wpath, f"expected 'DEVICE.POINT' as the key, found {point!r}",
                       at_key=True)
            continue
        wire = w if isinstance(w, WireModel) else WireModel(signal=w)
        sig_path = (*wpath, "signal") if isinstance(w, WireModel) else wpath
        bname, sname = _split(wire.signal)
        block = blocks.get(bname)
        if block is None:
            if bname not in top.blocks:
                issues.add(sig_path, f"no block {bname!r} in this plant; expected one of "
                                     f"{', '.join(top.blocks) or '(none)'}")
            continue
        kind = _signal_kind(block.type, sname)
        if kind is None:
            issues.add(sig_path, f"block {bname} ({block.type.name}) has no input or output "
                                 f"{sname!r}; outputs: {', '.join(block.type.outputs)}; "
                                 f"inputs: {', '.join(block.type.inputs)}")
            continue
        dev, pname = _split(point)
        if kind == "input":
            other = fed.get((bname, sname))
            if other is not None:
                issues.add(sig_path, f"input {bname}.{sname} is already fed by {other}")
                continue
            fed[(bname, sname)] = f"device point {point}"
        wiring.append(WireSpec(dev, pname, bname, sname, kind == "output", wire.gain,
                               wire.offset))
    if issues.items:
        return None, issues
    return PlantSpec(top.name, doc.path, top.description, MappingProxyType(blocks),
                     tuple(links), tuple(wiring)), issues


def _block_signal(issues: Issues, blocks: Mapping[str, BlockSpec], top: PlantFileModel,
                  ref: str, *, path: KeyPath, want: str) -> tuple[str, str] | None:
    bname, sname = _split(ref)
    block = blocks.get(bname)
    if block is None:
        if bname not in top.blocks:
            issues.add(path, f"no block {bname!r} in this plant; expected one of "
                             f"{', '.join(top.blocks) or '(none)'}")
        return None
    table = block.type.outputs if want == "output" else block.type.inputs
    if sname not in table:
        issues.add(path, f"block {bname} ({block.type.name}) has no {want} {sname!r}; "
                         f"expected one of {', '.join(table)}")
        return None
    return bname, sname


# -- checking a scenario -----------------------------------------------------------------------

def _find_plant(ref: str, folder: Path) -> Path | None:
    if ref.endswith((".yaml", ".yml")) or "/" in ref:
        p = Path(ref)
        p = p if p.is_absolute() else folder / p
        return p if p.is_file() else None
    for candidate in (folder.parent / "plants" / f"{ref}.yaml", folder / f"{ref}.yaml",
                      data_dir("hil_sim") / "plants" / f"{ref}.yaml"):
        if candidate.is_file():
            return candidate
    return None


def check_scenario_document(doc: Document) -> tuple[Scenario | None, list[Any]]:
    """Check a parsed scenario file and the plant it names; the issues of both files."""
    issues = Issues(doc)
    if not issues.version(SCENARIO_FORMAT_KEY, VERSIONS, "scenario file"):
        return None, issues.items
    top = issues.validate(ScenarioFileModel, doc.data, ())
    if top is None:
        return None, issues.items
    plant: PlantSpec | None = None
    plant_path = _find_plant(top.plant, doc.folder)
    if plant_path is None:
        issues.add(("plant",), f"plant {top.plant!r} not found: looked for "
                               f"{doc.folder.parent / 'plants' / (top.plant + '.yaml')} and in "
                               "the shipped hil_sim/plants (or give a relative path)")
        return None, issues.items
    try:
        plant_doc = read_document(plant_path, what="plant file")
    except ConfigError as exc:
        return None, [*issues.items, *exc.issues]
    plant, plant_issues = check_plant_document(plant_doc)
    if plant is None:
        return None, [*issues.items, *plant_issues.items]
    if not 0.01 <= top.time.step_ms <= 10_000:
        issues.add(("time", "step_ms"), f"expected 0.01..10000 ms, found {top.time.step_ms:g}")
    step_ns = max(1, round(top.time.step_ms * 1e6))
    devices = _devices(issues, top, doc.folder)
    # wiring against the devices' profiles (errors located in the plant file)
    for w in plant.wiring:
        wpath: KeyPath = ("wiring", f"{w.device}.{w.point}")
        dev = devices.get(w.device)
        if dev is None:
            if w.device not in top.devices:
                plant_issues.add(wpath, f"no device {w.device!r} in scenario {top.name} "
                                        f"({doc.file}); expected one of "
                                        f"{', '.join(top.devices) or '(none)'}", at_key=True)
            continue
        if w.point not in dev.profile.points:
            plant_issues.add(wpath, f"device {w.device} (profile {dev.profile.name}) has no "
                                    f"point {w.point!r}; expected one of "
                                    f"{', '.join(dev.profile.points)}", at_key=True)
    initial = _initial(issues, top, plant, devices)
    timeline = _timeline(issues, top, plant, devices)
    expect = _expect(issues, top, plant, devices)
    all_issues = [*issues.items, *plant_issues.items]
    if all_issues:
        return None, all_issues
    return Scenario(top.name, doc.path, top.description, plant, top.seed, step_ns,
                    MappingProxyType(devices), MappingProxyType(initial), tuple(timeline),
                    tuple(expect)), []


def _devices(issues: Issues, top: ScenarioFileModel, folder: Path) -> dict[str, DeviceSpec]:
    out: dict[str, DeviceSpec] = {}
    for name, d in top.devices.items():
        path: KeyPath = ("devices", name)
        if not NAME.fullmatch(name):
            issues.add(path, f"device name {name!r}: expected letters, digits, '_', '-'",
                       at_key=True)
            continue
        family = PROTOCOLS.get(d.protocol)
        if family is None:
            issues.add((*path, "protocol"), f"unknown protocol {d.protocol!r}; the simulator "
                                            f"serves {', '.join(PROTOCOLS)}")
            continue
        try:
            if d.profile.endswith((".yaml", ".yml")):
                p = Path(d.profile)
                profile = load_profile(p if p.is_absolute() else folder / p)
            else:
                profile = load_profile(find_profile(d.profile, [folder]))
        except (ValueError, FileNotFoundError) as exc:
            issues.add((*path, "profile"), str(exc))
            continue
        except ConfigError as exc:
            issues.add((*path, "profile"), f"profile {d.profile!r} is not valid: "
                                           f"{exc.issues[0] if exc.issues else exc}")
            continue
        if profile.family != family:
            issues.add((*path, "profile"), f"profile {profile.name} is a {profile.family} "
                                           f"profile; protocol {d.protocol} serves {family} "
                                           "profiles")
            continue
        if not 0 <= d.port <= 65535:
            issues.add((*path, "port"), f"expected a TCP port 0..65535 (0: a free one), "
                                        f"found {d.port}")
            continue
        if not 0 <= d.unit <= 247:
            issues.add((*path, "unit"), f"expected a Modbus unit id 0..247, found {d.unit}")
            continue
        out[name] = DeviceSpec(name, d.protocol, profile, d.unit, d.port, d.transport,
                               d.rack, d.slot)
    return out


def _target(plant: PlantSpec, devices: Mapping[str, DeviceSpec], ref: str,
            roles: tuple[str, ...]) -> str | None:
    """None if ``ref`` names a device point or a block signal of one of ``roles``, else why not."""
    a, b = _split(ref)
    if a in devices:
        if b not in devices[a].profile.points:
            return (f"device {a} (profile {devices[a].profile.name}) has no point {b!r}; "
                    f"expected one of {', '.join(devices[a].profile.points)}")
        return None
    block = plant.blocks.get(a)
    if block is None:
        return (f"{a!r} is neither a device of this scenario ({', '.join(devices) or 'none'}) "
                f"nor a block of plant {plant.name} ({', '.join(plant.blocks)})")
    tables = {"param": block.type.params, "input": block.type.inputs,
              "state": block.type.states, "output": block.type.outputs}
    for role in roles:
        if b in tables[role]:
            return None
    names = [n for role in roles for n in tables[role]]
    return (f"block {a} ({block.type.name}) has no {' or '.join(roles)} {b!r}; expected one "
            f"of {', '.join(names)}")


def _initial(issues: Issues, top: ScenarioFileModel, plant: PlantSpec,
             devices: Mapping[str, DeviceSpec]) -> dict[str, Value]:
    out: dict[str, Value] = {}
    for ref, value in top.initial.items():
        path: KeyPath = ("initial", ref)
        try:
            _ref(ref)
        except Exception:
            issues.add(path, f"expected 'DEVICE.POINT' or 'BLOCK.SIGNAL', found {ref!r}",
                       at_key=True)
            continue
        why = _target(plant, devices, ref, ("param", "input", "state"))
        if why is not None:
            issues.add(path, why, at_key=True)
            continue
        a, b = _split(ref)
        block = plant.blocks.get(a)
        if block is not None and b in block.type.params:
            spec = block.type.params[b]
            if isinstance(value, bool) or not spec.min <= float(value) <= spec.max:
                issues.add(path, f"{block.type.name} parameter {b!r} must be within "
                                 f"[{spec.min:g}, {spec.max:g}] {spec.unit}".rstrip()
                                 + f", found {value!r}")
                continue
        out[ref] = value
    return out


_DEVICE_ARGS = {"latency": ("ms",), "exception": ("code",), "down": (), "corrupt": (),
                "garbage": (), "no_answer": (), "disconnect": (), "restart": (),
                "unavailable": (), "alarm": ("code",)}
_SIGNAL_ARGS = {"stuck": ("value",), "noise": ("sigma",), "offset": ("value",),
                "drift": ("rate_per_s",), "clear": ()}
_ALL_ARGS = ("ms", "code", "value", "sigma", "rate_per_s")


def _timeline(issues: Issues, top: ScenarioFileModel, plant: PlantSpec,
              devices: Mapping[str, DeviceSpec]) -> list[TimelineEvent]:
    out: list[TimelineEvent] = []
    for k, e in enumerate(top.timeline):
        path: KeyPath = ("timeline", k)
        given = {a: getattr(e, a) for a in _ALL_ARGS if getattr(e, a) is not None}
        targets = [t for t in ("device", "signal", "block", "set") if getattr(e, t) is not None]
        if e.fault == "power_loss" and not targets:
            extra = sorted(given) + (["args"] if e.args else []) + (
                ["event"] if e.event else [])
            if extra:
                issues.add((*path, extra[0]), "power_loss takes only 'at' and 'for'",
                           at_key=True)
                continue
            out.append(TimelineEvent(k, e.at, "power_loss", "", "power_loss", for_ns=e.for_))
            continue
        if len(targets) != 1:
            issues.add(path, "a timeline entry names one of 'device' (with a fault), 'signal' "
                             "(with a fault), 'block' (with an event), 'set' (with a value) "
                             "or is {fault: power_loss}" + (
                                 f"; found {', '.join(targets)}" if targets else ""))
            continue
        kind = targets[0]
        if kind == "device":
            ev = _device_event(issues, path, k, e, devices=devices, given=given)
        elif kind == "signal":
            ev = _signal_event(issues, path, k, e, plant=plant, given=given)
        elif kind == "block":
            ev = _block_event(issues, path, k, e, plant=plant, given=given)
        else:
            ev = _set_event(issues, path, k, e, plant=plant, devices=devices,
                            given=given)
        if ev is not None:
            out.append(ev)
    return sorted(out, key=lambda ev: (ev.at_ns, ev.index))


def _unwanted(issues: Issues, path: KeyPath, given: Mapping[str, Any], allowed: tuple[str, ...],
              what: str) -> bool:
    bad = [a for a in given if a not in allowed]
    if bad:
        issues.add((*path, bad[0]), f"{what} takes no {bad[0]!r}"
                                    + (f" (it takes {', '.join(allowed)})" if allowed else ""),
                   at_key=True)
    return bool(bad)


def _device_event(issues: Issues, path: KeyPath, k: int, e: EventModel, *,
                  devices: Mapping[str, DeviceSpec], given: Mapping[str, Any]
                  ) -> TimelineEvent | None:
    assert e.device is not None
    dev = devices.get(e.device)
    if dev is None:
        issues.add((*path, "device"), f"no device {e.device!r} in this scenario; expected one "
                                      f"of {', '.join(devices) or '(none)'}")
        return None
    if e.fault is None or e.event is not None or e.args:
        issues.add(path, "a device entry needs 'fault' (and no 'event' or 'args')")
        return None
    sim = dev.protocol if dev.protocol in DEVICE_FAULTS else dev.family  # cnc: by protocol
    supported = DEVICE_FAULTS[sim]
    if e.fault not in supported:
        issues.add((*path, "fault"), f"the {sim} simulator of device {dev.name} cannot "
                                     f"play fault {e.fault!r}; it plays "
                                     f"{', '.join(sorted(supported))}")
        return None
    wanted = _DEVICE_ARGS[e.fault]
    if _unwanted(issues, path, given, wanted, f"device fault {e.fault}"):
        return None
    args: dict[str, Any] = {}
    if e.fault == "latency":
        if e.ms is None or not 0 < e.ms <= 60_000:
            issues.add((*path, "ms") if e.ms is not None else path,
                       "fault latency needs 'ms': the delay of every answer, 0..60000 ms")
            return None
        args["ms"] = e.ms
    if e.fault == "exception":
        code = 4 if e.code is None else e.code
        if not 1 <= code <= 255:
            issues.add((*path, "code"), f"expected an exception code 1..255, found {code}")
            return None
        args["code"] = code
    if e.fault == "alarm":  # GRBL 1.1 alarm codes (doc/csv/alarm_codes_en_US.csv)
        code = 1 if e.code is None else e.code
        if not 1 <= code <= 9:
            issues.add((*path, "code"), f"expected a GRBL alarm code 1..9, found {code}")
            return None
        args["code"] = code
    return TimelineEvent(k, e.at, "device", e.device, e.fault, MappingProxyType(args), e.for_)


def _signal_event(issues: Issues, path: KeyPath, k: int, e: EventModel, *, plant: PlantSpec,
                  given: Mapping[str, Any]) -> TimelineEvent | None:
    assert e.signal is not None
    bname, out = _split(e.signal)
    block = plant.blocks.get(bname)
    if block is None or out not in block.type.outputs:
        issues.add((*path, "signal"), (
            f"no block {bname!r} in plant {plant.name}" if block is None else
            f"block {bname} ({block.type.name}) has no output {out!r}; expected one of "
            f"{', '.join(block.type.outputs)}"))
        return None
    if e.fault not in _SIGNAL_ARGS:
        issues.add((*path, "fault") if e.fault else path,
                   f"a signal entry needs 'fault': one of {', '.join(_SIGNAL_ARGS)}"
                   + (f", found {e.fault!r}" if e.fault else ""))
        return None
    wanted = _SIGNAL_ARGS[e.fault]
    if _unwanted(issues, path, given, wanted, f"sensor fault {e.fault}"):
        return None
    kind = block.type.outputs[out].kind
    if (kind != "float" and e.fault in ("noise", "drift")) or (kind == "bool" and (
            e.fault == "offset")):
        issues.add((*path, "fault"), f"output {e.signal} is {kind}: sensor fault {e.fault} "
                                     "applies to float outputs only")
        return None
    args: dict[str, Any] = {}
    for a in wanted:
        v = given.get(a)
        if v is None:
            issues.add(path, f"sensor fault {e.fault} needs {a!r}")
            return None
        if a == "sigma" and v < 0:
            issues.add((*path, a), f"expected sigma >= 0, found {v:g}")
            return None
        args[a] = v
    return TimelineEvent(k, e.at, "signal", e.signal, e.fault, MappingProxyType(args), e.for_)


def _block_event(issues: Issues, path: KeyPath, k: int, e: EventModel, *, plant: PlantSpec,
                 given: Mapping[str, Any]) -> TimelineEvent | None:
    assert e.block is not None
    block = plant.blocks.get(e.block)
    if block is None:
        issues.add((*path, "block"), f"no block {e.block!r} in plant {plant.name}; expected "
                                     f"one of {', '.join(plant.blocks)}")
        return None
    if _unwanted(issues, path, given, (), "a block event (arguments go in 'args')"):
        return None
    spec = block.type.events.get(e.event or "") or FAULT_EVENTS.get(e.event or "")
    if spec is None or e.fault is not None:
        issues.add((*path, "event") if e.event else path,
                   f"block {e.block} ({block.type.name}) needs 'event': one of "
                   f"{', '.join([*block.type.events, *FAULT_EVENTS])}"
                   + (f", found {e.event!r}" if e.event else ""))
        return None
    for a, v in e.args.items():
        arg = spec.args.get(a)
        if arg is None:
            issues.add((*path, "args", a), f"event {e.event} has no argument {a!r}; expected "
                                           f"{', '.join(spec.args) or 'none'}", at_key=True)
            return None
        if arg.kind == "name":
            if not isinstance(v, str):
                issues.add((*path, "args", a), f"expected a name, found {v!r}")
                return None
        elif isinstance(v, str) or not arg.min <= float(v) <= arg.max or (
                arg.kind == "int" and not float(v).is_integer()):
            issues.add((*path, "args", a), f"expected a number within [{arg.min:g}, "
                                           f"{arg.max:g}] {arg.unit}".rstrip()
                                           + f", found {v!r}")
            return None
    if e.for_ is not None:
        issues.add((*path, "for"), "a block event happens once: 'for' does not apply (add the "
                                   "event that undoes it later in the timeline)", at_key=True)
        return None
    assert e.event is not None
    return TimelineEvent(k, e.at, "block", e.block, e.event, MappingProxyType(dict(e.args)))


def _set_event(issues: Issues, path: KeyPath, k: int, e: EventModel, *, plant: PlantSpec,
               devices: Mapping[str, DeviceSpec], given: Mapping[str, Any]
               ) -> TimelineEvent | None:
    assert e.set is not None
    why = _target(plant, devices, e.set, ("param", "input", "state"))
    if why is not None:
        issues.add((*path, "set"), why)
        return None
    if _unwanted(issues, path, given, ("value",), "a set entry"):
        return None
    if e.value is None or e.fault is not None or e.event is not None or e.for_ is not None:
        issues.add(path, "a set entry takes 'at', 'set' and 'value' only")
        return None
    return TimelineEvent(k, e.at, "set", e.set, "set", MappingProxyType({"value": e.value}))


def _expect(issues: Issues, top: ScenarioFileModel, plant: PlantSpec,
            devices: Mapping[str, DeviceSpec]) -> list[Expectation]:
    out: list[Expectation] = []
    for k, x in enumerate(top.expect):
        path: KeyPath = ("expect", k)
        subjects = [s for s in ("point", "signal", "tag", "alarm") if getattr(x, s) is not None]
        checks = [c for c in ("reaches", "stays", "goes") if getattr(x, c) is not None]
        if len(subjects) != 1:
            issues.add(path, "an expectation names one of 'point' (DEVICE.POINT), 'signal' "
                             "(BLOCK.OUTPUT), 'alarm' or 'tag' (a line tag)")
            continue
        subject = subjects[0]
        name = str(getattr(x, subject))
        if subject in ("point", "signal", "alarm"):
            a, _ = _split(name)
            why = _target(plant, devices, name, ("output",))
            if subject == "signal" and a in devices:
                why = f"{a} is a device: use 'point: {name}'"
            elif subject == "point" and a not in devices:
                why = (f"no device {a!r} in this scenario (expected one of "
                       f"{', '.join(devices) or 'none'}); a block output is a 'signal:'")
            if why is not None:
                issues.add((*path, subject), why)
                continue
        if subject == "alarm":
            if checks:
                issues.add((*path, checks[0]), "an alarm expectation takes only 'within' or "
                                               "'between'", at_key=True)
                continue
            check = "reaches"
            low, high = 0.5, math.inf
        else:
            if len(checks) != 1:
                issues.add(path, f"a {subject} expectation needs one of 'reaches', 'stays'"
                                 + (" or 'goes'" if subject == "tag" else ""))
                continue
            check = checks[0]
            if check == "goes" and subject != "tag":
                issues.add((*path, "goes"), "'goes: bad/good' is about a line tag's quality: "
                                            "use 'tag:'", at_key=True)
                continue
            rng = x.reaches or x.stays
            low, high = (rng.min, rng.max) if rng is not None else (-math.inf, math.inf)
            if low > high:
                issues.add((*path, check), f"min {low:g} is above max {high:g}")
                continue
        if x.within is not None and x.between is not None:
            issues.add((*path, "between"), "give 'within' or 'between', not both", at_key=True)
            continue
        if x.between is not None and len(x.between) != 2:
            issues.add((*path, "between"), "expected two times [from, to], found "
                                           f"{len(x.between)}")
            continue
        start, end = ((x.between[0], x.between[1]) if x.between is not None
                      else (0, x.within))
        if end is not None and end < start:
            issues.add((*path, "between"), "the window ends before it starts")
            continue
        out.append(Expectation(k, subject, name, check, low, high,  # type: ignore[arg-type]
                               x.goes or "", start, end))
    return out
