"""A profile's line protocol compiled for the driver: templates parsed, regexes compiled,
and the reading of one reply line into point values or a failure in words."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...config._lineproto import (
    CommandSpec,
    FieldSpec,
    LineProtocol,
    ReplyRule,
    Template,
    TemplateError,
    checksum,
)
from ...core import ConfigError, ConfigIssue, Reason
from ...tags.identity import scan_fields

__all__ = ["Compiled", "Outcome", "Rule", "Value", "compile_protocol"]

Value = bool | int | float | str

_REASONS = {"device_error": Reason.DEVICE_ERROR, "protocol_error": Reason.PROTOCOL_ERROR,
            "timeout": Reason.TIMEOUT}


@dataclass(frozen=True, slots=True)
class Rule:
    """One reply rule, compiled."""

    rx: re.Pattern[str]
    points: Mapping[str, FieldSpec]
    ok: bool
    fail: Template | None
    reason: Reason


@dataclass(slots=True)
class Outcome:
    """What one reply line meant: values (or per-point failures) by point, or a failure
    of the whole command (``reason`` and ``note``)."""

    values: dict[str, Value] = field(default_factory=dict)
    failed: dict[str, tuple[Reason, str]] = field(default_factory=dict)
    ok: bool = False
    reason: Reason = Reason.NONE
    note: str = ""
    understood: bool = True  # the reply matched a rule (an error reply is an answer too)


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    send: Template
    point: str | None
    rules: tuple[Rule, ...]
    confirm: tuple[Template, tuple[Rule, ...]] | None
    gives: tuple[str, ...]  # points its replies give


@dataclass(frozen=True, slots=True)
class Compiled:
    """The protocol ready to use: encoded terminators, commands, rules and who gives what."""

    spec: LineProtocol
    encoding: str
    terminator: bytes
    reply_end: bytes
    commands: Mapping[str, Command]
    errors: tuple[Rule, ...]
    stream: tuple[Rule, ...]
    producer: Mapping[str, str]  # point → query command name ("" for the stream)
    writer: Mapping[str, str]  # point → write command name
    identify: tuple[Template, re.Pattern[str]] | None
    fields: Mapping[str, FieldSpec]  # point → the first field spec that gives it
    context: Mapping[str, Value]  # template values from the device's options (station)

    # -- sending ---------------------------------------------------------------------------
    def frame(self, text: str) -> bytes:
        """The bytes to send for ``text``: encoded, checksum appended, terminated."""
        body = text.encode(self.encoding)
        ck = self.spec.checksum
        if ck is not None:
            body += format(checksum(ck.algorithm, body), ck.format).encode("ascii")
        return body + self.terminator

    def render(self, template: Template, value: Value | None = None) -> str:
        values: dict[str, object] = dict(self.context)
        if value is not None:
            values["value"] = value
        return template.render(values)

    # -- receiving -------------------------------------------------------------------------
    def text_of(self, line: bytes) -> tuple[str | None, str]:
        """The text of a reply line (terminator already removed) after its checksum is
        checked, or None and why not."""
        ck = self.spec.checksum
        if ck is not None:
            width = len(format(0, ck.format))
            if len(line) < width:
                return None, f"reply {_show(line)} is shorter than its checksum"
            body, given = line[:-width], line[-width:]
            base = 16 if ck.format[-1] in "xX" else 10
            want = checksum(ck.algorithm, body)
            try:
                got = int(given.decode("ascii"), base)
            except (UnicodeDecodeError, ValueError):
                got = -1
            if got != want:
                return None, (f"bad checksum in reply {_show(line)}: it ends in "
                              f"{_show(given)}, the {ck.algorithm} of the rest is "
                              f"{format(want, ck.format)}")
            line = body
        try:
            return line.decode(self.encoding), ""
        except UnicodeDecodeError:
            return None, f"unexpected bytes in reply {_show(line)} (not {self.encoding})"

    def interpret(self, rules: tuple[Rule, ...], text: str, wanted: tuple[str, ...],
                  sent: str) -> Outcome:
        """The meaning of reply ``text`` to ``sent`` under ``rules``, then the protocol's
        error replies; unmatched text is a protocol error."""
        for rule in rules:
            m = rule.rx.search(text)
            if m is None:
                continue
            out = Outcome()
            if rule.fail is not None:
                out.reason = rule.reason
                out.note = f"{text.strip()}: {_fail_note(rule.fail, m)}"
                return out
            out.ok = True
            for name in wanted:
                spec = rule.points.get(name)
                if spec is None:
                    out.failed[name] = (Reason.PROTOCOL_ERROR,
                                        f"reply {text!r} to {sent!r} does not give {name}")
                    continue
                got = convert(spec, m)
                if isinstance(got, tuple):
                    out.failed[name] = got
                else:
                    out.values[name] = got
            return out
        for rule in self.errors:
            m = rule.rx.search(text)
            if m is not None:
                assert rule.fail is not None
                return Outcome(reason=rule.reason,
                               note=f"{text.strip()}: {_fail_note(rule.fail, m)}")
        return Outcome(reason=Reason.PROTOCOL_ERROR,
                       note=f"unexpected reply {text!r} to {sent!r}", understood=False)

    def stream_line(self, text: str) -> Outcome:
        """The meaning of one line a streaming instrument printed (all stream points)."""
        for rule in self.stream:
            m = rule.rx.search(text)
            if m is None:
                continue
            out = Outcome(ok=True)
            for name, spec in rule.points.items():
                got = convert(spec, m)
                if isinstance(got, tuple):
                    out.failed[name] = got
                else:
                    out.values[name] = got
            return out
        return Outcome(reason=Reason.PROTOCOL_ERROR, note=f"unexpected line {text!r}",
                       understood=False)


def _fail_note(template: Template, m: re.Match[str]) -> str:
    try:
        return template.render({k: v or "" for k, v in m.groupdict().items()})
    except TemplateError:
        return template.text


def _show(data: bytes) -> str:
    return repr(data.decode("latin-1"))


def convert(spec: FieldSpec, m: re.Match[str]) -> Value | tuple[Reason, str]:
    """The value of one field of a matched reply, or (reason, note) when it has none."""
    raw = m.group(spec.group)
    if raw is None:
        return Reason.DECODE_ERROR, f"the reply has no {spec.group!r} field"
    text = raw.strip() if spec.strip else raw
    if spec.unit_group is not None:
        unit = (m.group(spec.unit_group) or "").strip()
        if unit != spec.unit:
            return Reason.DEVICE_ERROR, (f"reply {m.string.strip()!r} is in {unit!r}, the "
                                         f"profile expects {spec.unit!r} (was the "
                                         "instrument's unit changed?)")
    if spec.map:
        if text not in spec.map:
            return Reason.DECODE_ERROR, (f"{text!r} is none of "
                                         f"{', '.join(repr(k) for k in spec.map)}")
        return spec.map[text]
    if spec.decode == "scan":
        return _scan(text, spec.take or "data")
    try:
        if spec.type == "string":
            return text
        if spec.type == "bool":
            up = text.upper()
            if up in (t.upper() for t in spec.true_text):
                return True
            if up in (t.upper() for t in spec.false_text):
                return False
            return Reason.DECODE_ERROR, (f"{text!r} is neither true "
                                         f"({'/'.join(spec.true_text)}) nor false "
                                         f"({'/'.join(spec.false_text)})")
        if spec.type == "int" and spec.scale == 1.0 and spec.exponent_group is None:
            return int(text, 10)
        number = float(text) * spec.scale
        if spec.exponent_group is not None:
            number *= 10.0 ** (int(m.group(spec.exponent_group) or "", 10)
                               - spec.exponent_bias)
        return round(number) if spec.type == "int" else number
    except ValueError:
        return Reason.DECODE_ERROR, f"{text!r} is not a {spec.type}"


def _scan(text: str, take: str) -> Value | tuple[Reason, str]:
    try:
        fields = scan_fields(text)
    except ValueError as exc:
        return Reason.DECODE_ERROR, str(exc)
    if take not in fields:
        return Reason.DECODE_ERROR, f"the scan {text!r} has no {take}"
    return str(fields[take])


def _rules(replies: list[ReplyRule], where: str) -> tuple[Rule, ...]:
    out = []
    for r in replies:
        out.append(Rule(re.compile(r.match), dict(r.points), r.ok,
                        Template.parse(r.fail) if r.fail is not None else None,
                        _REASONS[r.reason]))
    return tuple(out)


def compile_protocol(spec: LineProtocol, options: Any, where: str = "protocol") -> Compiled:
    """Compile a validated protocol for a device with ``options`` (its ``station``)."""
    commands: dict[str, Command] = {}
    producer: dict[str, str] = {}
    writer: dict[str, str] = {}
    fields: dict[str, FieldSpec] = {}
    for name, c in spec.commands.items():
        cmd = _command(name, c)
        commands[name] = cmd
        if c.point is not None:
            writer.setdefault(c.point, name)
        else:
            for p in cmd.gives:
                producer.setdefault(p, name)
        for r in c.replies:
            for p, f in r.points.items():
                fields.setdefault(p, f)
    for r in spec.stream:
        for p, f in r.points.items():
            producer.setdefault(p, "")
            fields.setdefault(p, f)
    context: dict[str, Value] = {}
    station = getattr(options, "station", None)
    if station is not None:
        context["station"] = int(station)
    needs = [n for n, c in commands.items() if "station" in c.send.fields]
    if spec.identify is not None and "station" in Template.parse(spec.identify.send).fields:
        needs.append("identify")
    if needs and station is None:
        raise ConfigError(ConfigIssue(where, "station", f"commands {', '.join(needs)} use "
                                      "{station}: give the device a station option "
                                      "(or the profile a default)"))
    identify = None
    if spec.identify is not None:
        identify = (Template.parse(spec.identify.send), re.compile(spec.identify.match))
    errors = tuple(Rule(re.compile(e.match), {}, False, Template.parse(e.fail),
                        _REASONS[e.reason]) for e in spec.errors)
    return Compiled(spec, spec.encoding, spec.terminator.encode(spec.encoding),
                    spec.reply_end.encode(spec.encoding), commands, errors,
                    _rules(spec.stream, "stream"), producer, writer, identify, fields, context)


def _command(name: str, c: CommandSpec) -> Command:
    gives: list[str] = []
    for r in c.replies:
        for p in r.points:
            if p not in gives:
                gives.append(p)
    confirm = None
    if c.confirm is not None:
        confirm = (Template.parse(c.confirm.send), _rules(c.confirm.replies, name))
    return Command(name, Template.parse(c.send), c.point, _rules(c.replies, name), confirm,
                   tuple(gives))
