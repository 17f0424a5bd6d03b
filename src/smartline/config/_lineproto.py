"""The ``protocol:`` section of a serial instrument's profile: a line protocol as data.

A profile says what to send (``commands``, each a text *template*), how replies look
(``replies``: regular expressions whose named groups become points), which whole-line
replies are errors, whether lines carry a checksum and whether the instrument answers
queries (``mode: polled``) or prints on its own (``mode: streaming``, matched against
``stream``). Reply rules may carry a ``format``: the same reply written as a template, used
by the simulator (and checked here: it must render to a line its own ``match`` accepts).

Templates are substituted by :class:`Template` only: literal text and ``{name}`` /
``{name:SPEC}`` fields, the spec a validated format-spec (never ``str.format`` on the
template, never ``eval``). The reference is docs/reference/serial.md.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator

from smartline.tags.identity import SCAN_FIELDS, is_scan_field

from ._schema import DOTTED, _Model, fail

__all__ = [
    "CHECKSUMS",
    "DECODES",
    "ChecksumSpec",
    "CommandSpec",
    "ConfirmSpec",
    "ErrorReply",
    "FieldSpec",
    "IdentifySpec",
    "LineProtocol",
    "ReplyRule",
    "Template",
    "TemplateError",
    "check_protocol",
    "checksum",
]

# -- templates -----------------------------------------------------------------------------

_SPEC = re.compile(r"(?:(?P<fill>.)?(?P<align>[<>=^]))?(?P<sign>[-+ ])?(?P<zero>0)?"
                   r"(?P<width>\d{1,3})?(?P<group>[,_])?(?:\.(?P<precision>\d{1,2}))?"
                   r"(?P<type>[bdeEfFgGxXos%])?")
_FIELD = re.compile(r"\{([^{}:]*)(?::([^{}]*))?\}")


class TemplateError(ValueError):
    """A template is malformed, or a value does not fit its field."""


@dataclass(frozen=True, slots=True)
class Template:
    """``"TA {value:.2f} g"``: literal text and fields, substituted safely.

    ``{{`` and ``}}`` are literal braces. A field names a value of the context (a dotted
    name) and optionally a format spec of Python's mini-language (``>10.2f``, ``03d``),
    validated when the template is parsed.
    """

    text: str
    parts: tuple[str | tuple[str, str], ...]

    @classmethod
    def parse(cls, text: str) -> Template:
        parts: list[str | tuple[str, str]] = []
        i, literal = 0, []
        while i < len(text):
            c = text[i]
            if text.startswith("{{", i) or text.startswith("}}", i):
                literal.append(c)
                i += 2
                continue
            if c == "}":
                raise TemplateError(f"single '}}' at column {i + 1}: write '}}}}' for a brace")
            if c == "{":
                m = _FIELD.match(text, i)
                if m is None:
                    raise TemplateError(f"unclosed or nested '{{' at column {i + 1}: fields "
                                        "are {name} or {name:SPEC}; write '{{' for a brace")
                name, spec = m.group(1), m.group(2) or ""
                if not DOTTED.fullmatch(name):
                    raise TemplateError(f"field {{{name}}} at column {i + 1}: expected a name "
                                        "(letters, digits, '_', dotted)")
                if not _SPEC.fullmatch(spec):
                    raise TemplateError(f"field {{{name}:{spec}}}: {spec!r} is not a format "
                                        "spec (e.g. '.2f', '>10.3f', '03d', 'X')")
                if literal:
                    parts.append("".join(literal))
                    literal = []
                parts.append((name, spec))
                i = m.end()
                continue
            literal.append(c)
            i += 1
        if literal:
            parts.append("".join(literal))
        return cls(text, tuple(parts))

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(p[0] for p in self.parts if isinstance(p, tuple))

    def render(self, values: Mapping[str, object]) -> str:
        """The text with every field replaced; ``TemplateError`` when a value is missing
        or does not fit its spec (text for ``.2f``)."""
        out: list[str] = []
        for p in self.parts:
            if isinstance(p, str):
                out.append(p)
                continue
            name, spec = p
            if name not in values:
                raise TemplateError(f"no value for {{{name}}}")
            out.append(format_value(values[name], spec, name))
        return "".join(out)


def format_value(value: object, spec: str, name: str = "value") -> str:
    """``value`` (bool, int, float or str only) formatted with a validated ``spec``."""
    if isinstance(value, bool):
        value = int(value)
    if not isinstance(value, int | float | str):
        raise TemplateError(f"{{{name}}}: {type(value).__name__} values cannot be sent")
    m = _SPEC.fullmatch(spec)
    if m is None:
        raise TemplateError(f"{{{name}:{spec}}}: bad format spec")
    kind = m.group("type")
    if isinstance(value, float) and kind in ("d", "x", "X", "o", "b"):
        if not value.is_integer():
            raise TemplateError(f"{{{name}:{spec}}} takes a whole number, not {value!r}")
        value = int(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise TemplateError(f"{{{name}}}: {value!r} cannot be sent")
    try:
        return format(value, spec)
    except (ValueError, TypeError) as exc:
        raise TemplateError(f"{{{name}:{spec}}} cannot format {value!r}: {exc}") from None


# -- checksums -----------------------------------------------------------------------------

def _sum8(data: bytes) -> int:
    return sum(data) % 256


def _xor8(data: bytes) -> int:
    x = 0
    for b in data:
        x ^= b
    return x


CHECKSUMS = {"sum8": _sum8, "xor8": _xor8}
"""Checksum algorithms by name: ``sum8`` (sum of the bytes modulo 256: Pfeiffer Vacuum
protocol), ``xor8`` (XOR of the bytes: NMEA-style)."""


def checksum(algorithm: str, data: bytes) -> int:
    """The checksum of ``data`` by ``algorithm`` (a name of :data:`CHECKSUMS`)."""
    return CHECKSUMS[algorithm](data)


# -- decodes -------------------------------------------------------------------------------

DECODES = ("scan",)
"""Named decodes of a reply field: ``scan`` splits a scanned code into its fields
(``smartline.tags.identity.scan_fields``) and ``take`` names the one a point gets."""


# -- the model -----------------------------------------------------------------------------

def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        fail(f"bad regular expression {value!r}: {exc}")
    return value


def _template(value: str) -> str:
    try:
        Template.parse(value)
    except TemplateError as exc:
        fail(f"bad template {value!r}: {exc}")
    return value


def _spec(value: str) -> str:
    if not _SPEC.fullmatch(value) or not value or value[-1] not in "dxX":
        fail(f"{value!r} is not an integer format spec such as '03d' or '02X'")
    return value


Regex = Annotated[str, Field(min_length=1), AfterValidator(_regex)]
TemplateText = Annotated[str, AfterValidator(_template)]
PointName = Annotated[str, Field(min_length=1)]
GroupName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
ValueType = Literal["float", "int", "bool", "string"]
FailReason = Literal["device_error", "protocol_error", "timeout"]


class FieldSpec(_Model):
    """How one named group of a reply becomes a point's value."""

    group: GroupName
    type: ValueType = "float"
    unit: str | None = None
    """The unit the point is in (as the instrument writes it: ``g``)."""
    unit_group: GroupName | None = None
    """A group holding the unit the instrument reports: a unit other than ``unit`` makes
    the point BAD (a scale switched to kg)."""
    scale: float = 1.0
    exponent_group: GroupName | None = None
    """value = number × scale × 10^(exponent − exponent_bias) (Pfeiffer ``u_expo_new``)."""
    exponent_bias: int = 0
    true_text: list[str] = Field(default_factory=lambda: ["1", "ON", "TRUE", "YES"])
    false_text: list[str] = Field(default_factory=lambda: ["0", "OFF", "FALSE", "NO"])
    """For bool points: the texts (case ignored) that mean true and false."""
    map: dict[str, bool | int | float | str] = Field(default_factory=dict)
    """Text of the group → value (status letters to numbers, codes to words)."""
    strip: bool = True
    decode: Literal["scan"] | None = None
    take: str | None = None

    @model_validator(mode="after")
    def _decoded(self) -> FieldSpec:
        if self.decode is None and self.take is not None:
            fail("'take' needs 'decode: scan'")
        if self.decode == "scan":
            if self.take is None:
                fail("'decode: scan' needs 'take': the field of the scan the point gets "
                     f"(one of {', '.join(SCAN_FIELDS)} or ai.NN)")
            if not is_scan_field(self.take):
                fail(f"'take: {self.take}' is not a field of a scan; expected one of "
                     f"{', '.join(SCAN_FIELDS)} or ai.NN")
        return self


class ReplyRule(_Model):
    """One shape of reply: a regex, and what it means (points, success, or failure)."""

    match: Regex
    points: dict[PointName, FieldSpec] = Field(default_factory=dict)
    ok: bool = False
    fail: str | None = None
    """The failure in words (a template over the match's groups: ``"error {code}"``)."""
    reason: FailReason = "device_error"
    format: TemplateText | None = None
    """The reply as a template over point values (``S S {weight:>10.2f} {weight.unit}``):
    what the simulator sends; checked against ``match`` when the profile loads."""

    @model_validator(mode="after")
    def _one_meaning(self) -> ReplyRule:
        kinds = [k for k, on in (("points", bool(self.points)), ("ok", self.ok),
                                 ("fail", self.fail is not None)) if on]
        if len(kinds) != 1:
            fail("a reply rule needs exactly one of 'points' (values), 'ok: true' (done) "
                 f"or 'fail' (an error in words); found {', '.join(kinds) or 'none'}")
        if self.fail is not None:
            _template(self.fail)
        return self


class ErrorReply(_Model):
    """A whole-line error reply to any command (``ES``: syntax error)."""

    match: Regex
    fail: Annotated[str, Field(min_length=1)]
    reason: FailReason = "device_error"
    format: TemplateText | None = None


class ConfirmSpec(_Model):
    """A query sent after a write that has no reply of its own (SCPI ``SYST:ERR?``): its
    replies say whether the write was taken (``ok``) or not (``fail``)."""

    send: TemplateText
    replies: Annotated[list[ReplyRule], Field(min_length=1)]


class CommandSpec(_Model):
    """A query (its replies give points) or, with ``point``, the write of one point."""

    send: TemplateText
    point: PointName | None = None
    """The point a write of which sends this command; ``{value}`` in ``send`` is the
    value written (a bool point without ``{value}``: writing true sends it)."""
    replies: list[ReplyRule] = Field(default_factory=list)
    """Tried in order. A write without replies expects none (fire and forget, or
    ``confirm``)."""
    confirm: ConfirmSpec | None = None
    description: str = ""


class IdentifySpec(_Model):
    """The command that names the instrument (``I4``, ``*IDN?``): sent on connect, its
    groups are the identity ``smartline browse`` shows."""

    send: TemplateText
    match: Regex
    format: TemplateText | None = None
    on_connect: bool = True


class ChecksumSpec(_Model):
    """A checksum after the message text, before the terminator, on both directions."""

    algorithm: Literal["sum8", "xor8"]
    format: Annotated[str, AfterValidator(_spec)] = "03d"


class LineProtocol(_Model):
    """The ``protocol:`` section of a serial instrument's profile (see the module doc)."""

    encoding: Literal["ascii", "latin-1", "utf-8"] = "ascii"
    terminator: Annotated[str, Field(min_length=1, max_length=4)] = "\r\n"
    reply_terminator: Annotated[str, Field(min_length=1, max_length=4)] | None = None
    mode: Literal["polled", "streaming"] = "polled"
    max_line: Annotated[int, Field(ge=8, le=65536)] = 1024
    checksum: ChecksumSpec | None = None
    errors: list[ErrorReply] = Field(default_factory=list)
    identify: IdentifySpec | None = None
    commands: dict[GroupName, CommandSpec] = Field(default_factory=dict)
    stream: list[ReplyRule] = Field(default_factory=list)

    @property
    def reply_end(self) -> str:
        return self.reply_terminator if self.reply_terminator is not None else self.terminator


# -- checks between the protocol and the points ---------------------------------------------

Issue = tuple[tuple[str | int, ...], str]
_TEMPLATE_VARS = ("value", "station")


def _sample(point: Any) -> object:
    hint = getattr(point, "sim", {}).get("value") if point is not None else None
    return hint if hint is not None else 0


def check_protocol(protocol: LineProtocol, points: Mapping[str, Any]) -> Sequence[Issue]:
    """Cross-checks of a validated protocol and the profile's points (``ProfilePoint``s by
    name): every readable point has a reply field, every writable one a write command,
    groups exist in their regex, templates name known values, formats match."""
    issues: list[Issue] = []
    top = ("protocol",)
    produced: set[str] = set()
    written: set[str] = set()

    def rules(where: tuple[str | int, ...], replies: Sequence[ReplyRule], query: bool) -> None:
        for i, rule in enumerate(replies):
            at = (*where, i)
            rx = re.compile(rule.match)
            groups = set(rx.groupindex)
            for name, spec in rule.points.items():
                if name not in points:
                    issues.append(((*at, "points", name), f"unknown point {name!r}; the "
                                   f"profile's points are {', '.join(sorted(points))}"))
                    continue
                if query:
                    produced.add(name)
                for key in ("group", "unit_group", "exponent_group"):
                    g = getattr(spec, key)
                    if g is not None and g not in groups:
                        issues.append(((*at, "points", name, key), _no_group(g, rule.match)))
                if spec.unit_group is not None and spec.unit is None:
                    issues.append(((*at, "points", name, "unit_group"),
                                   "unit_group needs 'unit': the unit the point is in"))
                declared = points[name].unit
                if spec.unit is not None and declared is not None and spec.unit != declared:
                    issues.append(((*at, "points", name, "unit"),
                                   f"unit {spec.unit!r} differs from point {name!r}'s unit "
                                   f"{declared!r}"))
            if rule.fail is not None:
                for g in Template.parse(rule.fail).fields:
                    if g not in groups:
                        issues.append(((*at, "fail"), _no_group(g, rule.match)))
            if rule.format is not None:
                issues.extend(_check_format((*at, "format"), rule.format, rx, points))

    for name, cmd in protocol.commands.items():
        where = (*top, "commands", name)
        fields = Template.parse(cmd.send).fields
        for f in fields:
            if f not in _TEMPLATE_VARS:
                issues.append(((*where, "send"), f"unknown field {{{f}}}: a command may use "
                               "{value} (the value written) and {station} (the device's "
                               "station option)"))
        if cmd.point is not None:
            if cmd.point not in points:
                issues.append(((*where, "point"), f"unknown point {cmd.point!r}"))
            else:
                written.add(cmd.point)
                p = points[cmd.point]
                if p.access.value == "r":
                    issues.append(((*where, "point"), f"point {cmd.point!r} is read-only "
                                   "(access: r); give it access: rw or w to write it"))
        elif "value" in fields:
            issues.append(((*where, "send"), "{value} is the value written: this command "
                           "writes no point (add 'point:')"))
        if protocol.mode == "streaming" and cmd.point is None:
            issues.append((where, "a streaming instrument prints on its own: its commands "
                           "can only be writes ('point:'), queries belong to polled mode"))
        if cmd.point is None and not cmd.replies:
            issues.append(((*where, "replies"), "a query needs replies that give points"))
        if protocol.mode == "streaming" and (cmd.replies or cmd.confirm is not None):
            issues.append(((*where, "replies"), "in streaming mode every line is a stream "
                           "line: commands cannot wait for replies"))
        if cmd.confirm is not None:
            if cmd.replies:
                issues.append(((*where, "confirm"), "'confirm' is for writes without "
                               "replies of their own"))
            rules((*where, "confirm", "replies"), cmd.confirm.replies, query=False)
        rules((*where, "replies"), cmd.replies, query=cmd.point is None)
    for i, err in enumerate(protocol.errors):
        if err.format is not None:
            issues.extend(_check_format((*top, "errors", i, "format"), err.format,
                                        re.compile(err.match), points))
    if protocol.mode == "polled" and protocol.stream:
        issues.append(((*top, "stream"), "'stream' is for mode: streaming"))
    if protocol.mode == "streaming" and not protocol.stream:
        issues.append(((*top, "stream"), "a streaming instrument needs 'stream' rules for "
                       "the lines it prints"))
    rules((*top, "stream"), protocol.stream, query=True)
    if protocol.identify is not None:
        ident = protocol.identify
        for f in Template.parse(ident.send).fields:
            if f != "station":
                issues.append(((*top, "identify", "send"), f"unknown field {{{f}}}"))
        if ident.format is not None:
            issues.extend(_check_format((*top, "identify", "format"), ident.format,
                                        re.compile(ident.match), points))
    for name, point in points.items():
        access = point.access.value
        if access in ("r", "rw") and name not in produced:
            issues.append((("points", name), f"no reply gives point {name!r}: add it to a "
                           "query's reply 'points' (or the stream's), or make it access: w"))
        if access in ("rw", "w") and name not in written:
            issues.append((("points", name), f"point {name!r} is writable but no command "
                           f"writes it: add a command with 'point: {name}'"))
    return issues


def _no_group(group: str, regex: str) -> str:
    return (f"unknown group {group!r}: the regex {regex!r} has "
            + (", ".join(repr(g) for g in re.compile(regex).groupindex) or "no named groups")
            + " (name a group with (?P<name>...))")


def _check_format(at: tuple[str | int, ...], text: str, rx: re.Pattern[str],
                  points: Mapping[str, Any]) -> list[Issue]:
    values: dict[str, object] = {"station": 1}
    for name, p in points.items():
        values[name] = _sample(p)
        values[f"{name}.unit"] = p.unit or ""
    try:
        line = Template.parse(text).render(values)
    except TemplateError as exc:
        return [(at, f"format: {exc} (fields are point names, POINT.unit and station)")]
    if rx.search(line) is None:
        return [(at, f"format renders {line!r}, which the rule's match {rx.pattern!r} does "
                 "not accept")]
    return []
