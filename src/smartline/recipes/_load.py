"""Recipe files (``smartline-recipe: 1``) → the typed :class:`~._model.Recipe`, checked
against the line they run on.

A recipe file names its line (``line:``, or ``line_file:``); the loader reads that line
file and its ``units:`` section, so every tag, unit, device and expression is checked at
load time, and every problem is reported as ``FILE:LINE:COL: key.path: message`` in one
:class:`~smartline.core.ConfigError`, with the line/profile loaders' machinery (spans,
pydantic models per item, did-you-mean). Expression errors point inside the expression.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError

from smartline.config import LineConfig, load_line
from smartline.config._check import CheckOptions, FileKind, check_line, line_summary, plural
from smartline.config._common import Issues, model_keys
from smartline.config._messages import describe, did_you_mean, one_of
from smartline.config._schema import (
    IDENTIFIER,
    LINE_FORMAT_KEY,
    LINE_NAME,
    Limits,
    LineName,
    Scalar,
    _pattern,
    fail,
)
from smartline.config._source import (
    Document,
    KeyPath,
    Span,
    format_path,
    read_document,
    sort_issues,
)
from smartline.core import (
    ConfigError,
    ConfigIssue,
    DriverRegistry,
    RecipeError,
    WriteRefusedError,
)
from smartline.tags import TagSpec

from . import expr as _expr
from ._model import (
    Action,
    Chart,
    CommandAction,
    Equipment,
    FailureRule,
    Operation,
    Parallel,
    Parameter,
    ParamType,
    Phase,
    ProgramAction,
    Recipe,
    RestartRule,
    UnitProcedure,
    WaitAction,
    Where,
    WriteAction,
)
from ._units import Units, build_units, load_units, packtag_types, tag_expr_type, with_units
from .expr import Expr, ExprError, ExprType
from .packml import ModeDef, accepted_in_mode, command_by_name

__all__ = [
    "ELAPSED",
    "FILE_KINDS",
    "RECIPE_FORMAT_KEY",
    "RECIPE_VERSIONS",
    "build_recipe",
    "find_line_for",
    "load_recipe",
    "validate_parameters",
]

RECIPE_FORMAT_KEY = "smartline-recipe"
RECIPE_VERSIONS = (1,)
ELAPSED = "elapsed_s"
"""The builtin name of a phase's ``until`` and ``timeout_s``: seconds since the phase started."""

ELEMENT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")
_ELEMENT_RULE = "letters, digits, '_' and '-', not starting with a digit"
_RESERVED = frozenset({"true", "false", "and", "or", "not", "abs", "min", "max", "clamp",
                       "good", ELAPSED})
_ACTIONS = ("write", "command", "wait_s", "start_program")
_PROGRAM_SCHEMES = frozenset({"grbl"})  # devices a G-code job can be streamed to
_MAX_UNTYPED = 4  # untyped tags in one expression tried with every type (3**4 checks at most)
_MAX_LISTED = 12
_LINE_HEADER = re.compile(rb"^smartline:\s*1\s*(#.*)?$", re.MULTILINE)

E = TypeVar("E")


# -- schema: structure of each item; references are checked by the loader ------------------

def _version(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        fail(f"expected a version as a string or an integer (\"3\", 3, \"1.2\"), found "
             f"{describe(value)}: quote a version like 1.2")
    text = str(value).strip()
    if not text:
        fail("must not be empty")
    return text


Version = Annotated[str, PlainValidator(_version)]
RecipeName = Annotated[str, _pattern(LINE_NAME, "recipe name (letters, digits, '_', '-', '.')")]
ElementName = Annotated[str, _pattern(ELEMENT_NAME, f"name: expected {_ELEMENT_RULE}")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class RecipeFileModel(_Model):
    """Top level of a recipe file; sections are validated item by item by the loader."""

    smartline_recipe: int = Field(alias="smartline-recipe")
    recipe: RecipeName
    version: Version
    product: str = ""
    line: LineName
    line_file: str | None = None
    description: str = ""
    parameters: dict[str, Any] = {}
    equipment: dict[str, Any] = {}
    identity: list[Any] = []
    on_restart: Literal["abort", "resume"] = "abort"
    procedure: list[Any]
    extra: dict[str, str] = {}


class ParameterModel(_Model):
    type: Literal["number", "int", "bool", "string"] = "number"
    unit: str = ""
    default: Scalar | None = None
    limits: Limits | None = None
    choices: list[str] | None = None
    description: str = ""


class EquipmentModel(_Model):
    units: list[str] = []
    devices: list[str] = []
    tags: list[str] = []


class UnitProcedureModel(_Model):
    unit_procedure: ElementName
    unit: str = ""
    description: str = ""
    operations: list[Any]


class OperationModel(_Model):
    operation: ElementName
    description: str = ""
    phases: list[Any]


class PhaseModel(_Model):
    phase: ElementName
    description: str = ""
    actions: list[Any] = []
    until: str | bool | None = None
    timeout_s: Any = None  # a number or an expression: checked as an expression
    on_failure: Any = "hold"


class ParallelModel(_Model):
    parallel: list[list[Any]]


class CommandModel(_Model):
    unit: str
    command: str


class ProgramModel(_Model):
    device: str
    file: Annotated[str, Field(min_length=1)]


class RetryModel(_Model):
    times: Annotated[int, Field(ge=1, le=1000)]
    delay_s: Annotated[float, Field(ge=0, le=86_400)] = 0.0
    then: Literal["hold", "abort"] = "hold"


class _RetryWrapper(_Model):
    retry: RetryModel


# -- public API -------------------------------------------------------------------------------

def load_recipe(path: str | os.PathLike[str], *, line: LineConfig | None = None,
                units: Units | None = None, profile_paths: Sequence[Path] = (),
                env: Mapping[str, str] | None = None) -> Recipe:
    """Load a recipe file and check it against its line; ``ConfigError`` lists every problem.

    Without ``line`` the line file the recipe names is found (:func:`find_line_for`) and
    loaded with its ``units:`` section; with ``line`` and no ``units`` the units are read
    from ``line.source``. ``profile_paths`` and ``env`` mean what they mean for
    :func:`~smartline.config.load_line`.
    """
    doc = read_document(path, what="recipe file")
    return build_recipe(doc, line=line, units=units, profile_paths=profile_paths, env=env)


def build_recipe(doc: Document, *, line: LineConfig | None = None, units: Units | None = None,
                 profile_paths: Sequence[Path] = (), env: Mapping[str, str] | None = None,
                 registry: DriverRegistry | None = None) -> Recipe:
    """Validate a parsed recipe file (see :func:`load_recipe`)."""
    return _RecipeLoader(doc, line=line, units=units, profile_paths=profile_paths, env=env,
                         registry=registry).load()


def find_line_for(recipe_path: str | os.PathLike[str]) -> Path:
    """The line file a recipe runs on: its ``line_file:`` (relative to the recipe), else the
    line file in the recipe's folder whose ``line:`` is the recipe's ``line:``.

    Raises ``ConfigError`` located at the recipe's ``line`` (or ``line_file``) key.
    """
    doc = read_document(recipe_path, what="recipe file")
    found = _find_line(doc)
    if isinstance(found, Path):
        return found
    raise ConfigError(sort_issues([*doc.issues, found], doc.file))


def validate_parameters(recipe: Recipe,
                        given: Mapping[str, str | float | int | bool]) -> dict[str, object]:
    """Every parameter's value for one batch: ``given`` (CLI text or typed) over defaults.

    Raises ``RecipeError`` naming every bad one: unknown, missing without a default, of the
    wrong type, outside its limits, not one of its choices. Text is converted to the
    parameter's type (``"12.5"``, ``"true"``), as ``smartline recipe run ... name=value``
    gives it.
    """
    names = [p.name for p in recipe.parameters]
    problems: list[str] = []
    for name in given:
        if name not in names:
            known = f"; parameters: {', '.join(names)}" if names else "; it has no parameters"
            problems.append(f"{name}: unknown parameter{did_you_mean(name, names)}{known}")
    values: dict[str, object] = {}
    for param in recipe.parameters:
        if param.name in given:
            raw: object = given[param.name]
        elif param.default is not None:
            raw = param.default
        else:
            problems.append(f"{param.name}: missing (it has no default)")
            continue
        try:
            values[param.name] = _parameter_value(param, raw)
        except ValueError as exc:
            problems.append(f"{param.name}: {exc}")
    if problems:
        raise RecipeError(f"recipe {recipe.name!r} version {recipe.version}: bad parameters: "
                          + "; ".join(problems))
    return values


# -- parameter values -------------------------------------------------------------------------

_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


def _parameter_value(param: Parameter, raw: object) -> bool | int | float | str:
    """``raw`` as the parameter's type, checked against its limits and choices (ValueError)."""
    kind = param.type
    value: bool | int | float | str
    if kind is ParamType.STRING:
        if not isinstance(raw, str):
            raise ValueError(f"expected a string, found {describe(raw)}")
        value = raw
        if param.choices and value not in param.choices:
            raise ValueError(f"{value!r} is not one of the choices "
                             f"{', '.join(repr(c) for c in param.choices)}")
        return value
    if kind is ParamType.BOOL:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
            return raw.strip().lower() in _TRUE
        raise ValueError(f"expected true or false, found {describe(raw)}")
    number: float
    if isinstance(raw, str):
        try:
            number = float(raw.strip())
        except ValueError:
            raise ValueError(f"expected {'an integer' if kind is ParamType.INT else 'a number'}"
                             f", found {describe(raw)}") from None
    elif isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise ValueError(f"expected {'an integer' if kind is ParamType.INT else 'a number'}, "
                         f"found {describe(raw)}")
    else:
        number = float(raw)
    if not math.isfinite(number):
        raise ValueError(f"expected a finite number, found {describe(raw)}")
    if kind is ParamType.INT:
        if not number.is_integer():
            raise ValueError(f"expected an integer, found {describe(raw)}")
        value = int(raw) if isinstance(raw, int) else int(number)
    else:
        value = number
    if param.limits is not None:
        low, high = param.limits
        if not low <= number <= high:
            unit = f" {param.unit}" if param.unit else ""
            raise ValueError(f"{number:g}{unit} is outside the limits [{low:g}, {high:g}]{unit}")
    return value


# -- finding the line -------------------------------------------------------------------------

def _find_line(doc: Document) -> Path | ConfigIssue:
    """The recipe's line file, or the issue saying why it was not found."""
    data = doc.data
    assert isinstance(data, dict)
    line_file = data.get("line_file")
    if isinstance(line_file, str):
        path = doc.folder / line_file
        if path.is_file():
            return path
        return doc.issue(("line_file",), f"line file {line_file!r} not found (looked for "
                                         f"{path})")
    name = data.get("line")
    if not isinstance(name, str):
        return doc.issue(("line",) if "line" in data else (),
                         "missing required key 'line': the name of the line the recipe runs "
                         "on (its line file's 'line:')", at_key="line" in data)
    candidates = sorted(doc.folder.glob("*.yaml"), key=lambda p: (p.stem != name, p.name))
    for path in candidates:
        if path.resolve() == doc.path.resolve():
            continue
        try:
            head = path.read_bytes()
        except OSError:
            continue
        if not _LINE_HEADER.search(head) or not re.search(
                rb"^line:\s*['\"]?" + re.escape(name.encode()) + rb"['\"]?\s*(#.*)?$", head,
                re.MULTILINE):
            continue
        try:
            other = read_document(path, what="line file")
        except ConfigError:
            continue
        if isinstance(other.data, dict) and other.data.get("line") == name \
                and LINE_FORMAT_KEY in other.data:
            return path
    return doc.issue(("line",), f"no line file for line {name!r} in {doc.folder}: expected a "
                                f"file there with 'smartline: 1' and 'line: {name}' (or give "
                                "'line_file: PATH' relative to the recipe)")


# -- the loader -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Scope:
    """Names of the elements of one chart (branches included), to catch duplicates."""

    what: str
    owner: str
    names: dict[str, int]


@dataclass(frozen=True, slots=True)
class _Level(Generic[E]):
    """One level of the procedure: its key (``phase``), its word and its element builder."""

    key: str
    what: str
    build: Callable[[dict[Any, Any], KeyPath, _Scope], E | None]


class _RecipeLoader:
    """One load of one recipe file; collects issues as it goes."""

    def __init__(self, doc: Document, *, line: LineConfig | None, units: Units | None,
                 profile_paths: Sequence[Path], env: Mapping[str, str] | None,
                 registry: DriverRegistry | None) -> None:
        self.doc = doc
        self.issues = Issues(doc)
        self.line = line
        self.units = units
        self.profile_paths = profile_paths
        self.env = env
        self.registry = registry
        self.tags: Mapping[str, TagSpec] = {}
        self.names: dict[str, ExprType] = {}  # expression names: tags and parameters
        self.untyped: frozenset[str] = frozenset()  # tags whose type the device decides
        self.arrays: frozenset[str] = frozenset()
        self.checked = False  # the line is known: names and types are checked
        self._equipment_units: tuple[str, ...] = ()
        self._lines: list[str] | None = None  # the file's text, read for block scalars

    def error(self) -> ConfigError:
        return ConfigError(sort_issues(self.issues.items, self.doc.file))

    def load(self) -> Recipe:
        if not self.issues.version(RECIPE_FORMAT_KEY, RECIPE_VERSIONS, "recipe file"):
            raise self.error()
        data = self.doc.data
        assert isinstance(data, dict)
        top = self.issues.validate(RecipeFileModel, data, ())
        name = data.get("line")
        if isinstance(name, str) and LINE_NAME.fullmatch(name):
            self._line(name)
        parameters = self._parameters(data.get("parameters"))
        self._environment(parameters)
        equipment = self._equipment(data.get("equipment"))
        identity = self._identity(data.get("identity"))
        procedure = self._procedure(data.get("procedure"), equipment)
        if self.issues.items or top is None or procedure is None:
            raise self.error()
        raw = self.doc.path.read_bytes()
        return Recipe(name=top.recipe, version=top.version, product=top.product,
                      line=top.line, parameters=tuple(parameters), equipment=equipment,
                      procedure=procedure, source=self.doc.path.absolute(),
                      digest=hashlib.sha256(raw).hexdigest(), description=top.description,
                      identity=identity, on_restart=RestartRule(top.on_restart),
                      extra=dict(top.extra))

    # -- the line ----------------------------------------------------------------------------
    def _line(self, name: str) -> None:
        line, units = self.line, self.units
        where: KeyPath = ("line",)
        if line is None:
            found = _find_line(self.doc)
            if isinstance(found, ConfigIssue):
                self.issues.extend([found])
                return
            data = self.doc.data
            if isinstance(data, dict) and "line_file" in data:
                where = ("line_file",)
            try:
                line = load_line(found, profile_paths=self.profile_paths, env=self.env,
                                 registry=self.registry)
            except ConfigError as exc:
                self.issues.extend(exc.issues)
                self.issues.add(where, f"line file {found} has errors (listed under its name)")
                return
        if line.name != name:
            self.issues.add(("line",), f"the recipe is for line {name!r}, but "
                                       f"{_relative(line.source, self.doc.folder)} is line "
                                       f"{line.name!r}")
            return
        if units is None:
            try:
                units = load_units(line)
            except ConfigError as exc:
                self.issues.extend(exc.issues)
                self.issues.add(where, f"the units of line {name!r} have errors (listed under "
                                       f"{line.source})")
                return
        if any(f"{unit}.state" not in line.tags for unit in units.units):
            try:
                line = with_units(line, units)
            except ConfigError as exc:
                self.issues.extend(exc.issues)
                return
        self.line, self.units = line, units
        self.tags = line.tags
        self.checked = True

    def _environment(self, parameters: Sequence[Parameter]) -> None:
        """Expression names: the line's tags (PackTags typed by unit), then parameters."""
        names: dict[str, ExprType] = {}
        untyped: set[str] = set()
        arrays: set[str] = set()
        for tag, spec in self.tags.items():
            if spec.is_array:
                arrays.add(tag)
                continue
            kind = tag_expr_type(spec)
            if kind is None:
                untyped.add(tag)
                kind = ExprType.NUMBER
            names[tag] = kind
        if self.units is not None:
            for tag, kind in packtag_types(self.units).items():
                names[tag] = kind
                untyped.discard(tag)
        for param in parameters:
            names[param.name] = _PARAM_TYPES[param.type]
        self.names, self.untyped, self.arrays = names, frozenset(untyped), frozenset(arrays)

    # -- parameters --------------------------------------------------------------------------
    def _parameters(self, raw: object) -> list[Parameter]:
        if not isinstance(raw, dict):
            return []  # absent, or the wrong type: reported by the top-level model
        out: list[Parameter] = []
        for name, item in raw.items():
            path: KeyPath = ("parameters", name)
            if not isinstance(name, str):
                continue  # reported by the top-level model
            ok = True
            if not IDENTIFIER.fullmatch(name):
                self.issues.add(path, f"{name!r} is not a valid parameter name: expected "
                                      "letters, digits and '_', not starting with a digit "
                                      "(expressions use it as a name)", at_key=True)
                ok = False
            elif name in _RESERVED or name in _expr.STATES:
                self.issues.add(path, f"{name!r} is a reserved word of the expression language; "
                                      "choose another parameter name", at_key=True)
                ok = False
            elif name in self.tags:
                self.issues.add(path, f"parameter {name!r} has the name of a tag of line "
                                      f"{self._line_name()}: expressions could not tell them "
                                      "apart; rename the parameter", at_key=True)
                ok = False
            if not isinstance(item, dict):
                self.issues.add(path, "expected the parameter's settings ({unit: ..., default: "
                                      f"..., limits: [low, high]}}), found {describe(item)}")
                continue
            model = self.issues.validate(ParameterModel, item, path)
            if model is None:
                continue
            param = self._parameter(name, model, path)
            if param is not None and ok:
                out.append(param)
        return out

    def _parameter(self, name: str, model: ParameterModel, path: KeyPath) -> Parameter | None:
        kind = ParamType(model.type)
        before = len(self.issues)
        if model.limits is not None and kind not in (ParamType.NUMBER, ParamType.INT):
            self.issues.add((*path, "limits"), f"limits apply to number and int parameters, not "
                                               f"to a {kind.value} parameter")
        if model.choices is not None and kind is not ParamType.STRING:
            self.issues.add((*path, "choices"), f"choices apply to string parameters, not to a "
                                                f"{kind.value} parameter (use limits)")
        if model.choices is not None and not model.choices:
            self.issues.add((*path, "choices"), "an empty list of choices allows no value")
        if len(self.issues) > before:
            return None
        param = Parameter(name=name, type=kind, unit=model.unit, limits=model.limits,
                          choices=tuple(model.choices or ()), description=model.description)
        default = model.default
        if default is not None:
            try:
                if isinstance(default, str) and kind is not ParamType.STRING:
                    raise ValueError(_EXPECTED[kind] + f", found {describe(default)}")
                default = _parameter_value(param, default)
            except ValueError as exc:
                text = str(exc)
                self.issues.add((*path, "default"), text if text.startswith("expected")
                                else f"the default {text}")
                return None
        return Parameter(name=name, type=kind, unit=model.unit, default=default,
                         limits=model.limits, choices=tuple(model.choices or ()),
                         description=model.description)

    # -- equipment and identity --------------------------------------------------------------
    def _equipment(self, raw: object) -> Equipment:
        if not isinstance(raw, dict):
            return Equipment()
        model = self.issues.validate(EquipmentModel, raw, ("equipment",))
        if model is None:
            return Equipment()
        if self.checked:
            assert self.line is not None
            units = list(self.units.units) if self.units is not None else []
            for i, unit in enumerate(model.units):
                self._known(unit, units, ("equipment", "units", i), "unit")
            for i, device in enumerate(model.devices):
                self._known(device, list(self.line.devices), ("equipment", "devices", i),
                            "device")
            for i, tag in enumerate(model.tags):
                self._known(tag, list(self.tags), ("equipment", "tags", i), "tag")
        for key in ("units", "devices", "tags"):
            self._unique(getattr(model, key), ("equipment", key))
        return Equipment(units=tuple(model.units), devices=tuple(model.devices),
                         tags=tuple(model.tags))

    def _identity(self, raw: object) -> tuple[str, ...]:
        if not isinstance(raw, list):
            return ()
        out: list[str] = []
        for i, tag in enumerate(raw):
            path: KeyPath = ("identity", i)
            if not isinstance(tag, str):
                self.issues.add(path, f"expected a tag name, found {describe(tag)}")
                continue
            if self.checked:
                self._known(tag, list(self.tags), path, "tag")
            out.append(tag)
        self._unique(raw, ("identity",))
        return tuple(dict.fromkeys(out))

    def _unique(self, names: Sequence[object], path: KeyPath) -> None:
        seen: set[str] = set()
        for i, name in enumerate(names):
            if not isinstance(name, str):
                continue
            if name in seen:
                self.issues.add((*path, i), f"{name!r} is listed twice")
            seen.add(name)

    def _known(self, name: str, known: Sequence[str], path: KeyPath, what: str, *,
               at_key: bool = False) -> bool:
        """Whether ``name`` is one of the line's ``what``s; reports it otherwise."""
        if name in known:
            return True
        listed = ", ".join(list(known)[:_MAX_LISTED]) + (
            f" and {len(known) - _MAX_LISTED} more" if len(known) > _MAX_LISTED else "")
        if not known:
            extra = (f"; line {self._line_name()} has no units (a line file's 'units:' "
                     "section maps machines onto PackML units)" if what == "unit"
                     else f"; line {self._line_name()} has no {what}s")
        else:
            extra = f"; {what}s of line {self._line_name()}: {listed}"
        self.issues.add(path, f"unknown {what} {name!r}{did_you_mean(name, known)}{extra}",
                        at_key=at_key)
        return False

    def _line_name(self) -> str:
        return repr(self.line.name) if self.line is not None else "(unknown)"

    # -- charts ------------------------------------------------------------------------------
    def _chart(self, raw: object, path: KeyPath, level: _Level[E],
               scope: _Scope) -> Chart[E] | None:
        """A sequence of elements (mappings with ``key:``) and ``parallel:`` blocks."""
        key, what = level.key, level.what
        if not isinstance(raw, list):
            return None  # reported by the model of the element holding it
        if not raw:
            self.issues.add(path, f"empty: expected at least one {what} ('- {key}: name')")
            return None
        items: list[E | Parallel[E]] = []
        ok = True
        for i, item in enumerate(raw):
            here: KeyPath = (*path, i)
            if isinstance(item, dict) and "parallel" in item:
                block = self._parallel(item, here, level, scope)
                if block is None:
                    ok = False
                else:
                    items.append(block)
            elif isinstance(item, dict) and key in item:
                element = level.build(item, here, scope)
                if element is None:
                    ok = False
                else:
                    items.append(element)
            else:
                ok = False
                found = describe(item)
                if isinstance(item, dict):
                    others = [k for k in ("unit_procedure", "operation", "phase") if k in item]
                    found = (f"a {others[0].replace('_', ' ')}" if others
                             else "a mapping without '" + key + "'")
                article = "an" if what[0] in "aeiou" else "a"
                self.issues.add(here, f"expected {article} {what} ('{key}: name') or a parallel "
                                      "block "
                                      f"('parallel: [branches]') here, found {found}")
        return tuple(items) if ok else None

    def _parallel(self, item: dict[Any, Any], path: KeyPath, level: _Level[E],
                  scope: _Scope) -> Parallel[E] | None:
        what = level.what
        model = self.issues.validate(ParallelModel, item, path)
        if model is None:
            return None
        if len(model.parallel) < 2:
            self.issues.add((*path, "parallel"), f"a parallel block needs at least two branches "
                                                 f"(each a list of {what}s), found "
                                                 f"{len(model.parallel)}")
            return None
        branches: list[Chart[E]] = []
        ok = True
        for b, branch in enumerate(model.parallel):
            chart = self._chart(branch, (*path, "parallel", b), level, scope)
            if chart is None:
                ok = False
            else:
                branches.append(chart)
        if not ok:
            return None
        return Parallel(branches=tuple(branches), where=self._where(path))

    def _named(self, name: str, path: KeyPath, scope: _Scope) -> bool:
        """Record an element's name in its scope; False (reported) if it is taken."""
        span = self.doc.span(path)
        line = span.line if span is not None else 0
        first = scope.names.get(name)
        if first is not None:
            self.issues.add(path, f"duplicate {scope.what} name {name!r} in {scope.owner} "
                                  f"(first on line {first}): names must be unique, as the "
                                  "batch record names each element by its path")
            return False
        scope.names[name] = line
        return True

    def _where(self, path: KeyPath) -> Where:
        span = self.doc.span(path)
        return Where(span.line, span.column) if span is not None else Where()

    # -- procedure, unit procedures, operations ---------------------------------------------
    def _procedure(self, raw: object, equipment: Equipment) -> Chart[UnitProcedure] | None:
        if raw is None:
            return None  # missing: reported by the top-level model
        self._equipment_units = equipment.units
        scope = _Scope("unit procedure", "the procedure", {})
        chart = self._chart(raw, ("procedure",),
                            _Level("unit_procedure", "unit procedure", self._unit_procedure),
                            scope)
        if chart is not None:
            self._parallel_units(chart, ("procedure",))
        return chart

    def _unit_procedure(self, item: dict[Any, Any], path: KeyPath,
                        scope: _Scope) -> UnitProcedure | None:
        model = self.issues.validate(UnitProcedureModel, item, path)
        ok = model is not None
        name = model.unit_procedure if model is not None else str(item.get("unit_procedure"))
        if model is not None:
            ok = self._named(model.unit_procedure, (*path, "unit_procedure"), scope)
            if model.unit:
                if model.unit not in self._equipment_units:
                    self.issues.add((*path, "unit"), f"unit {model.unit!r} is not in the "
                                                     "recipe's equipment: add it to "
                                                     "'equipment: {units: [...]}'")
                    ok = False
                elif self.checked and not self._known(
                        model.unit, list(self.units.units) if self.units else [],
                        (*path, "unit"), "unit"):
                    ok = False
        inner = _Scope("operation", f"unit procedure {name!r}", {})
        operations = self._chart(item.get("operations"), (*path, "operations"),
                                 _Level("operation", "operation", self._operation), inner) \
            if "operations" in item else None
        if model is None or operations is None or not ok:
            return None
        return UnitProcedure(name=model.unit_procedure, operations=operations, unit=model.unit,
                             description=model.description, where=self._where(path))

    def _operation(self, item: dict[Any, Any], path: KeyPath,
                   scope: _Scope) -> Operation | None:
        model = self.issues.validate(OperationModel, item, path)
        ok = model is not None and self._named(model.operation, (*path, "operation"), scope)
        name = model.operation if model is not None else str(item.get("operation"))
        inner = _Scope("phase", f"operation {name!r}", {})
        phases = self._chart(item.get("phases"), (*path, "phases"),
                             _Level("phase", "phase", self._phase), inner) \
            if "phases" in item else None
        if model is None or phases is None or not ok:
            return None
        return Operation(name=model.operation, phases=phases, description=model.description,
                         where=self._where(path))

    def _parallel_units(self, chart: Chart[UnitProcedure], path: KeyPath) -> None:
        """Parallel branches must run on different units: a unit runs one procedure at a time."""
        for i, item in enumerate(chart):
            if not isinstance(item, Parallel):
                continue
            here: KeyPath = (*path, i, "parallel")
            seen: dict[str, int] = {}
            for b, branch in enumerate(item.branches):
                for unit in sorted(_units_of(branch)):
                    if unit in seen:
                        self.issues.add((*here, b), f"branches {seen[unit] + 1} and {b + 1} of "
                                                    f"this parallel block both run unit "
                                                    f"procedures on unit {unit!r}: a unit runs "
                                                    "one unit procedure at a time")
                    else:
                        seen[unit] = b
                self._parallel_units(branch, (*here, b))

    # -- phases ------------------------------------------------------------------------------
    def _phase(self, item: dict[Any, Any], path: KeyPath, scope: _Scope) -> Phase | None:
        model = self.issues.validate(PhaseModel, item, path)
        valid = model is not None
        if model is None:  # an unknown key: still check what the phase's known keys say
            try:
                model = PhaseModel.model_validate(
                    {k: v for k, v in item.items() if k in model_keys(PhaseModel)})
            except ValidationError:
                return None
        ok = self._named(model.phase, (*path, "phase"), scope) and valid
        actions: list[Action] = []
        for i, raw in enumerate(model.actions):
            action = self._action(raw, (*path, "actions", i))
            if action is None:
                ok = False
            else:
                actions.append(action)
        with_elapsed = {**self.names, ELAPSED: ExprType.NUMBER}
        until = timeout = None
        if model.until is not None:
            until = self._expression(model.until, (*path, "until"), want=ExprType.BOOL,
                                     names=with_elapsed)
            ok = ok and until is not None
        if model.timeout_s is not None:
            timeout = self._expression(model.timeout_s, (*path, "timeout_s"),
                                       want=ExprType.NUMBER, names=with_elapsed,
                                       positive="a timeout must be more than 0 s")
            ok = ok and timeout is not None
        rule = self._failure(model.on_failure, (*path, "on_failure"))
        if rule is None or not ok:
            return None
        return Phase(name=model.phase, actions=tuple(actions), until=until, timeout_s=timeout,
                     on_failure=rule, description=model.description, where=self._where(path))

    def _failure(self, raw: object, path: KeyPath) -> FailureRule | None:
        if raw in ("hold", "abort"):
            return FailureRule(action="hold" if raw == "hold" else "abort")
        expected = ("expected hold, abort or {retry: {times: N, delay_s: S, then: hold|abort}}, "
                    f"found {describe(raw)}")
        if raw == "retry":
            self.issues.add(path, "retry needs a count: {retry: {times: 2, delay_s: 5, then: "
                                  "abort}}")
            return None
        if not isinstance(raw, dict) or "retry" not in raw:
            self.issues.add(path, expected)
            return None
        model = self.issues.validate(_RetryWrapper, raw, path)
        if model is None:
            return None
        retry = model.retry
        return FailureRule(action="retry", times=retry.times, delay_s=retry.delay_s,
                           then=retry.then)

    # -- actions -----------------------------------------------------------------------------
    def _action(self, raw: object, path: KeyPath) -> Action | None:
        expected = f"expected an action: a mapping with one key of {one_of(_ACTIONS)}"
        if not isinstance(raw, dict) or not raw:
            self.issues.add(path, f"{expected}, found {describe(raw)}")
            return None
        keys = list(raw)
        unknown = [k for k in keys if k not in _ACTIONS]
        if unknown:
            key = unknown[0]
            self.issues.add((*path, key), f"unknown action {str(key)!r}"
                                          f"{did_you_mean(str(key), _ACTIONS)}; expected one "
                                          f"of: {', '.join(_ACTIONS)}", at_key=True)
            return None
        if len(keys) > 1:
            found = " and ".join(str(k) for k in keys)
            self.issues.add((*path, keys[1]), f"one action per list item, found {found}: "
                                              "write each as its own '- ' item (they start in "
                                              "list order)", at_key=True)
            return None
        key = keys[0]
        value = raw[key]
        here: KeyPath = (*path, key)
        where = self._where(path)
        if key == "write":
            return self._write(value, here, where)
        if key == "command":
            return self._command(value, here, where)
        if key == "wait_s":
            seconds = self._expression(value, here, want=ExprType.NUMBER, names=self.names,
                                       positive=None, non_negative=True)
            return WaitAction(seconds=seconds, where=where) if seconds is not None else None
        return self._program(value, here, where)

    def _write(self, raw: object, path: KeyPath, where: Where) -> WriteAction | None:
        if not isinstance(raw, dict) or not raw:
            found = "nothing to write" if raw == {} else describe(raw)
            self.issues.add(path, "expected the tags to write and their values "
                                  f"({{TAG: EXPRESSION, ...}}), found {found}")
            return None
        values: list[tuple[str, Expr]] = []
        ok = True
        for tag, text in raw.items():
            here: KeyPath = (*path, tag)
            if not isinstance(tag, str):
                self.issues.add(here, f"expected a tag name, found {describe(tag)}", at_key=True)
                ok = False
                continue
            spec = self.tags.get(tag)
            want: ExprType | None = None
            if self.checked:
                if spec is None:
                    self._known(tag, list(self.tags), here, "tag", at_key=True)
                    ok = False
                elif not spec.writable:
                    self.issues.add(here, f"tag {tag!r} is read-only (access "
                                          f"{spec.access.value}) in line {self._line_name()}: a "
                                          "recipe writes only tags with access rw or w",
                                    at_key=True)
                    ok = False
                elif spec.is_array:
                    self.issues.add(here, f"tag {tag!r} is an array of {spec.elements} values; "
                                          "a recipe writes single values", at_key=True)
                    ok = False
                else:
                    want = self.names.get(tag) if tag not in self.untyped else None
            value = self._expression(text, here, want=want, names=self.names,
                                     context=f"tag {tag!r}")
            if value is None:
                ok = False
                continue
            if spec is not None and ok and spec.writable:
                ok = self._constant_fits(spec, value, here) and ok
            values.append((tag, value))
        return WriteAction(values=tuple(values), where=where) if ok else None

    def _constant_fits(self, spec: TagSpec, value: Expr, path: KeyPath) -> bool:
        """A constant value must pass the tag's write guard (limits, type range, scale)."""
        constant = value.constant()
        if constant is None:
            return True
        try:
            spec.check_write(constant)
        except WriteRefusedError as exc:
            self.issues.add(path, f"tag {spec.name!r} would refuse {_show(constant)}: "
                                  f"{exc.message}")
            return False
        return True

    def _command(self, raw: object, path: KeyPath, where: Where) -> CommandAction | None:
        if not isinstance(raw, dict):
            self.issues.add(path, f"expected {{unit: UNIT, command: START}}, found "
                                  f"{describe(raw)}")
            return None
        model = self.issues.validate(CommandModel, raw, path)
        if model is None:
            return None
        try:
            command = command_by_name(model.command)
        except RecipeError as exc:
            self.issues.add((*path, "command"), exc.message)
            return None
        if self.checked:
            units = self.units.units if self.units is not None else {}
            if not self._known(model.unit, list(units), (*path, "unit"), "unit"):
                return None
            config = units[model.unit]
            if command not in config.commands:
                mapped = ", ".join(c.name for c in config.commands) or "none"
                self.issues.add((*path, "command"), f"unit {model.unit!r} has no writes for "
                                                    f"{command.name} in its line file "
                                                    f"(units.{model.unit}.commands), so it "
                                                    f"cannot act on it; it maps: {mapped}")
                return None
            modes = _modes_of(config.mode, config.modes)
            if not any(command in accepted_in_mode(state, mode)
                       for mode in modes for state in mode.states):
                self.issues.add((*path, "command"), f"unit {model.unit!r} accepts {command.name}"
                                                    " in no state of its modes ("
                                                    f"{', '.join(m.name for m in modes)})")
                return None
        return CommandAction(unit=model.unit, command=command.name, where=where)

    def _program(self, raw: object, path: KeyPath, where: Where) -> ProgramAction | None:
        if not isinstance(raw, dict):
            self.issues.add(path, f"expected {{device: DEVICE, file: PROGRAM.nc}}, found "
                                  f"{describe(raw)}")
            return None
        model = self.issues.validate(ProgramModel, raw, path)
        if model is None:
            return None
        ok = True
        if self.checked:
            assert self.line is not None
            devices = self.line.devices
            if not self._known(model.device, list(devices), (*path, "device"), "device"):
                ok = False
            elif devices[model.device].scheme.name not in _PROGRAM_SCHEMES:
                device = devices[model.device]
                self.issues.add((*path, "device"), f"device {model.device!r} is a "
                                                   f"{device.scheme.name}:// device; programs "
                                                   "are streamed to "
                                                   f"{one_of(sorted(_PROGRAM_SCHEMES))}:// "
                                                   "controllers")
                ok = False
        file = (self.doc.folder / model.file).absolute()
        if not file.is_file():
            self.issues.add((*path, "file"), f"program file {model.file!r} not found (looked for "
                                             f"{file})")
            ok = False
        elif not self._gcode(file, (*path, "file")):
            ok = False
        return ProgramAction(device=model.device, file=file, where=where) if ok else None

    def _gcode(self, file: Path, path: KeyPath) -> bool:
        """The program's lines, checked as the GRBL driver will send them (when installed)."""
        try:
            from smartline.drivers.cnc.grbl import GcodeProgram
        except ImportError:  # the cnc extra is missing: the file is checked when it runs
            return True
        try:
            program = GcodeProgram.load(file)
        except ConfigError as exc:
            self.issues.extend(exc.issues)
            self.issues.add(path, f"program {file.name} has errors (listed under its name)")
            return False
        except OSError as exc:
            self.issues.add(path, f"cannot read program {file}: {exc.strerror or exc}")
            return False
        if not program.lines:
            self.issues.add(path, f"program {file.name} has no G-code lines")
            return False
        return True

    # -- expressions -------------------------------------------------------------------------
    def _expression(self, raw: object, path: KeyPath, *, want: ExprType | None,
                    names: Mapping[str, ExprType], positive: str | None = None,
                    non_negative: bool = False, context: str | None = None) -> Expr | None:
        """Parse and check one expression; errors point inside it (value column + offset)."""
        if isinstance(raw, bool):
            text = "true" if raw else "false"
        elif isinstance(raw, (int, float)) and math.isfinite(raw):
            text = repr(raw)
        elif isinstance(raw, str):
            text = raw
        else:
            self.issues.add(path, f"expected an expression or a number, found {describe(raw)}")
            return None
        try:
            parsed = _expr.parse(text)
        except ExprError as exc:
            self._expr_issue(path, exc.message, text, exc.offset)
            return None
        if not self.checked:
            return parsed  # without the line, names and types cannot be checked
        array = sorted(parsed.names & self.arrays)
        if array:
            self._expr_issue(path, f"tag {array[0]!r} is an array; expressions take single "
                                   "values", text, max(text.find(array[0]), 0))
            return None
        try:
            self._check(parsed, names, want)
        except ExprError as exc:
            message = exc.message
            if context is not None and want is not None and self._valid(parsed, names):
                message = f"{context} takes {_A[want]} value: {message}"
            self._expr_issue(path, message, text, exc.offset)
            return None
        constant = parsed.constant()
        if isinstance(constant, (int, float)) and not isinstance(constant, bool):
            if positive is not None and not constant > 0:
                self.issues.add(path, f"{positive}, found {constant:g}")
                return None
            if non_negative and not constant >= 0:
                self.issues.add(path, f"a wait must not be negative, found {constant:g}")
                return None
        return parsed

    def _expr_issue(self, path: KeyPath, message: str, text: str, offset: int) -> None:
        """An expression error at ``offset``: inside the value, also in a block scalar."""
        span = self.doc.span(path)
        if span is not None and span.text_offset is None:
            where = self._block_position(span, text, offset)
            if where is not None:
                self.issues.extend([ConfigIssue(file=self.doc.file,
                                                path=format_path(self.doc.data, path),
                                                message=message, line=where[0],
                                                column=where[1])])
                return
        self.issues.add(path, message, offset=offset)

    def _block_position(self, span: Span, text: str, offset: int) -> tuple[int, int] | None:
        """Line and column of ``offset`` in a ``>`` or ``|`` block scalar written plainly
        (one indentation, no blank lines); None when the value is not one."""
        if self._lines is None:
            try:
                self._lines = self.doc.path.read_text(encoding="utf-8-sig").splitlines()
            except (OSError, UnicodeDecodeError):
                self._lines = []
        lines = self._lines
        if not 0 < span.line <= len(lines):
            return None
        head = lines[span.line - 1][span.column - 1:]
        if head[:1] not in (">", "|"):
            return None
        body: list[tuple[int, int, str]] = []  # (line, column, text) of each content line
        indent: int | None = None
        for number in range(span.line + 1, len(lines) + 1):
            raw = lines[number - 1]
            depth = len(raw) - len(raw.lstrip(" "))
            if not raw.strip() or (indent is not None and depth < indent):
                break
            if indent is None:
                indent = depth
            if depth > indent:
                return None  # more-indented lines fold differently
            body.append((number, depth + 1, raw[depth:]))
        joined = (" " if head[0] == ">" else "\n").join(t for _, _, t in body)
        if not body or joined.rstrip("\n") != text.rstrip("\n"):
            return None
        start = 0
        for number, column, part in body:
            if offset <= start + len(part):
                return number, column + offset - start
            start += len(part) + 1
        return None

    def _valid(self, parsed: Expr, names: Mapping[str, ExprType]) -> bool:
        """Whether ``parsed`` checks with no type wanted (its error is then the type)."""
        try:
            self._check(parsed, names, None)
        except ExprError:
            return False
        return True

    def _check(self, parsed: Expr, names: Mapping[str, ExprType],
               want: ExprType | None) -> ExprType:
        """Type-check; tags whose type the device decides (OPC UA, CNC points) may take any
        type that makes the expression valid."""
        free = sorted(parsed.names & self.untyped)[:_MAX_UNTYPED]
        if not free:
            return parsed.check(names, want=want)
        first: ExprError | None = None
        for combo in itertools.product(_ANY_TYPES, repeat=len(free)):
            try:
                return parsed.check({**names, **dict(zip(free, combo, strict=True))},
                                    want=want)
            except ExprError as exc:
                first = first or exc
        assert first is not None
        raise first


_PARAM_TYPES: Mapping[ParamType, ExprType] = MappingProxyType({
    ParamType.NUMBER: ExprType.NUMBER, ParamType.INT: ExprType.NUMBER,
    ParamType.BOOL: ExprType.BOOL, ParamType.STRING: ExprType.STRING,
})
_A: Mapping[ExprType, str] = MappingProxyType({
    ExprType.NUMBER: "a number", ExprType.BOOL: "a true/false", ExprType.STRING: "a text",
    ExprType.STATE: "a PackML state",
})


def _relative(path: Path, folder: Path) -> str:
    """``path`` as seen from ``folder`` (the recipe's) when that is shorter."""
    try:
        rel = os.path.relpath(path, folder)
    except ValueError:  # another drive (Windows)
        return str(path)
    return rel if len(rel) < len(str(path)) else str(path)


def _show(value: object) -> str:
    if isinstance(value, float) and not isinstance(value, bool):
        return f"{value:g}"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


_ANY_TYPES = (ExprType.NUMBER, ExprType.STRING, ExprType.BOOL)


_EXPECTED: Mapping[ParamType, str] = MappingProxyType({
    ParamType.NUMBER: "expected a number", ParamType.INT: "expected an integer",
    ParamType.BOOL: "expected true or false", ParamType.STRING: "expected a string",
})


def _modes_of(mode: ModeDef, modes: Mapping[str, ModeDef]) -> list[ModeDef]:
    return list({m.name: m for m in (mode, *modes.values())}.values())


def _units_of(chart: Chart[UnitProcedure]) -> set[str]:
    out: set[str] = set()
    for item in chart:
        if isinstance(item, Parallel):
            for branch in item.branches:
                out |= _units_of(branch)
        elif item.unit:
            out.add(item.unit)
    return out


def _count_phases(chart: Chart[Any]) -> int:
    """Phases in a chart of unit procedures, operations or phases (branches included)."""
    total = 0
    for item in chart:
        if isinstance(item, Parallel):
            total += sum(_count_phases(branch) for branch in item.branches)
        elif isinstance(item, UnitProcedure):
            total += _count_phases(item.operations)
        elif isinstance(item, Operation):
            total += _count_phases(item.phases)
        else:
            total += 1
    return total


# -- smartline check --------------------------------------------------------------------------

def _check_recipe(doc: Document, options: CheckOptions) -> str:
    recipe = build_recipe(doc, profile_paths=options.profile_paths, env=options.env,
                          registry=options.registry)
    ups = sum(1 for _ in _walk_ups(recipe.procedure))
    return (f"{doc.file}: recipe {recipe.name!r} version {recipe.version} for line "
            f"{recipe.line!r}: {plural(len(recipe.parameters), 'parameter')}, "
            f"{plural(ups, 'unit procedure')}, {plural(_count_phases(recipe.procedure), 'phase')}")


def _walk_ups(chart: Chart[UnitProcedure]) -> list[UnitProcedure]:
    out: list[UnitProcedure] = []
    for item in chart:
        if isinstance(item, Parallel):
            for branch in item.branches:
                out += _walk_ups(branch)
        else:
            out.append(item)
    return out


def units_summary(doc: Document, line: LineConfig) -> str:
    """``, N units`` for ``smartline check`` (ConfigError if the ``units:`` section is bad)."""
    units = build_units(doc, line)
    return f", {plural(len(units.units), 'unit')}" if units.units else ""


def _check_line(doc: Document, options: CheckOptions) -> str:
    """The config layer's line check, plus the line's ``units:`` section (one build)."""
    line = check_line(doc, options)
    return line_summary(doc, line, units_summary(doc, line))


FILE_KINDS: Mapping[str, FileKind] = MappingProxyType({
    RECIPE_FORMAT_KEY: FileKind("recipe file", ("recipe", "procedure", "parameters",
                                                "equipment", "on_restart"), _check_recipe),
    LINE_FORMAT_KEY: FileKind("line file", ("line", "devices", "tags", "tasks", "units"),
                              _check_line),
})
"""Recipe files, and line files checked with their units: ``smartline check`` passes
``kinds={**KINDS, **FILE_KINDS}`` to :func:`~smartline.config.check_file`."""

