"""Tag traces: record a line's tag stream, write it as JSON Lines, compare two of them.

A trace is what chosen tags of a line did over time: one record per change of a tag's value
or quality, with the time (nanoseconds since the line started; virtual time when the line runs
against a scenario in lock-step). Recorded from two versions of a program or recipe against the
same scenario and seed, two traces are equal record for record; :func:`compare_traces` says
where they first diverge (time and tag) and sums up every difference::

    rec = TagTrace(["tank.level", "inlet_valve"], line="tank", scenario="tank-demo", seed=7)
    rec.sample(t_ns, image.get)          # once per cycle (the plugin does it for you)
    rec.write("golden.trace.jsonl")
    assert_traces_match("golden.trace.jsonl", rec, tolerance=1e-9)

The file format is documented in docs/reference/tag-trace.md.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "TRACE_FORMAT",
    "TRACE_FORMAT_KEY",
    "Divergence",
    "TagDiff",
    "TagTrace",
    "TraceDiff",
    "TraceFormatError",
    "TraceRecord",
    "assert_traces_match",
    "compare_traces",
    "read_trace",
]

TRACE_FORMAT_KEY = "smartline-trace"
TRACE_FORMAT = 1

Value = bool | int | float | str | tuple[Any, ...] | bytes | None


class TraceFormatError(ValueError):
    """A trace file that cannot be read: the message names the file and the line."""


@dataclass(frozen=True, slots=True)
class TraceRecord:
    """One change: at ``t_ns`` the tag took ``value`` with ``quality`` (a label: GOOD, BAD…)."""

    t_ns: int
    tag: str
    value: Value
    quality: str


def _encode(value: Any) -> Any:
    """A value as exact JSON: ints as integers (64-bit exact), floats by their shortest
    round-trip repr, non-finite floats as ``{"float": "nan"}``, text as strings, bytes as
    ``{"hex": ...}``, arrays as lists."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else {"float": repr(value)}
    if isinstance(value, bytes | bytearray):
        return {"hex": bytes(value).hex()}
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    item = getattr(value, "item", None)  # a numpy scalar
    if callable(item):
        return _encode(item())
    raise TypeError(f"cannot record a value of type {type(value).__name__}")


def _decode(raw: Any) -> Value:
    if isinstance(raw, dict):
        if "float" in raw:
            return float(raw["float"])
        if "hex" in raw:
            return bytes.fromhex(str(raw["hex"]))
        raise ValueError(f"unknown value object {raw!r}")
    if isinstance(raw, list):
        return tuple(_decode(v) for v in raw)
    if raw is None or isinstance(raw, bool | int | float | str):
        return raw
    raise ValueError(f"unknown value {raw!r}")


def _normal(value: Any) -> Value:
    """A value as it reads back from a file (numpy scalars unwrapped, lists as tuples)."""
    return _decode(_encode(value))


@dataclass
class TagTrace:
    """A tag stream: its header (line, scenario, seed, tags) and one record per change.

    Record with :meth:`sample` (every cycle; only changes are kept) or :meth:`add`; finish
    with :meth:`close` (sets the end time), then :meth:`write`. :func:`read_trace` reads one.
    """

    tags: list[str]
    line: str = ""
    scenario: str | None = None
    seed: int | None = None
    clock: str = "virtual"
    meta: dict[str, Any] = field(default_factory=dict)
    records: list[TraceRecord] = field(default_factory=list)
    end_ns: int | None = None
    _last: dict[str, tuple[Value, str]] = field(default_factory=dict, repr=False)

    def add(self, t_ns: int, tag: str, value: Any, quality: str) -> bool:
        """Record ``tag`` at ``t_ns`` if its value or quality changed; True if recorded."""
        if self.records and t_ns < self.records[-1].t_ns:
            raise ValueError(f"trace time goes backwards: {t_ns} < {self.records[-1].t_ns}")
        v = _normal(value)
        state = (v, quality)
        last = self._last.get(tag)
        if last is not None and _same(last[0], v) and last[1] == quality:
            return False
        self._last[tag] = state
        self.records.append(TraceRecord(t_ns, tag, v, quality))
        return True

    def sample(self, t_ns: int, read: Callable[[str], Any]) -> None:
        """Record every tag whose value or quality changed; ``read(tag)`` gives an object
        with ``value`` and ``quality`` (a :class:`~smartline.cycle.TagValue`)."""
        for tag in self.tags:
            tv = read(tag)
            q = tv.quality
            self.add(t_ns, tag, tv.value, getattr(q, "name", str(q)))

    def close(self, end_ns: int) -> None:
        """The end of the recording (the time the line stopped)."""
        self.end_ns = end_ns

    @property
    def last_ns(self) -> int:
        """The end of the recording: :attr:`end_ns`, else the last record's time."""
        if self.end_ns is not None:
            return self.end_ns
        return self.records[-1].t_ns if self.records else 0

    def header(self) -> dict[str, Any]:
        return {TRACE_FORMAT_KEY: TRACE_FORMAT, "line": self.line, "scenario": self.scenario,
                "seed": self.seed, "clock": self.clock, "tags": list(self.tags),
                **({"meta": self.meta} if self.meta else {})}

    def lines(self) -> Iterable[str]:
        """The file's lines (without newlines): header, records, end."""
        yield json.dumps(self.header(), ensure_ascii=False, allow_nan=False)
        for r in self.records:
            yield json.dumps({"t_ns": r.t_ns, "tag": r.tag, "value": _encode(r.value),
                              "quality": r.quality}, ensure_ascii=False, allow_nan=False)
        if self.end_ns is not None:
            yield json.dumps({"end_ns": self.end_ns})

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write the trace (UTF-8 JSON Lines); returns the path."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("".join(line + "\n" for line in self.lines()), encoding="utf-8")
        return p

    def values(self, tag: str) -> list[tuple[int, Value, str]]:
        """``(t_ns, value, quality)`` of every recorded change of ``tag``."""
        return [(r.t_ns, r.value, r.quality) for r in self.records if r.tag == tag]

    def at(self, tag: str, t_ns: int) -> tuple[Value, str] | None:
        """``(value, quality)`` of ``tag`` at ``t_ns`` (None before its first record)."""
        out: tuple[Value, str] | None = None
        for r in self.records:
            if r.t_ns > t_ns:
                break
            if r.tag == tag:
                out = (r.value, r.quality)
        return out


def read_trace(path: str | os.PathLike[str]) -> TagTrace:
    """Read a trace file; :class:`TraceFormatError` names the file and line of a problem."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise TraceFormatError(f"{p}: cannot read: {exc.strerror or exc}") from exc
    rows = text.splitlines()
    if not rows:
        raise TraceFormatError(f"{p}: empty file, expected a {TRACE_FORMAT_KEY} header line")

    def bad(n: int, why: str) -> TraceFormatError:
        return TraceFormatError(f"{p}:{n}: {why}")

    try:
        head = json.loads(rows[0])
    except ValueError as exc:
        raise bad(1, f"the header is not JSON: {exc}") from exc
    if not isinstance(head, dict) or TRACE_FORMAT_KEY not in head:
        raise bad(1, f"expected a header object with {TRACE_FORMAT_KEY!r}")
    if head[TRACE_FORMAT_KEY] != TRACE_FORMAT:
        raise bad(1, f"trace format {head[TRACE_FORMAT_KEY]!r} is not supported "
                     f"(this version reads {TRACE_FORMAT})")
    tags = head.get("tags")
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise bad(1, "'tags' must be a list of tag names")
    trace = TagTrace(list(tags), line=str(head.get("line", "")), scenario=head.get("scenario"),
                     seed=head.get("seed"), clock=str(head.get("clock", "virtual")),
                     meta=dict(head.get("meta") or {}))
    known = set(tags)
    last_t = 0
    for n, raw in enumerate(rows[1:], start=2):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except ValueError as exc:
            raise bad(n, f"not JSON: {exc}") from exc
        if not isinstance(obj, dict):
            raise bad(n, "expected an object")
        if "end_ns" in obj:
            trace.end_ns = int(obj["end_ns"])
            continue
        try:
            t, tag, q = int(obj["t_ns"]), str(obj["tag"]), str(obj["quality"])
            value = _decode(obj.get("value"))
        except (KeyError, TypeError, ValueError) as exc:
            raise bad(n, f"expected t_ns, tag, value and quality: {exc}") from exc
        if tag not in known:
            raise bad(n, f"tag {tag!r} is not in the header's tags")
        if t < last_t:
            raise bad(n, f"time goes backwards ({t} < {last_t})")
        last_t = t
        trace.records.append(TraceRecord(t, tag, value, q))
        trace._last[tag] = (value, q)
    return trace


# -- comparing ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Divergence:
    """Where two traces first differ: the time, the tag, and each side's value and quality."""

    t_ns: int
    tag: str
    a: tuple[Value, str] | None
    b: tuple[Value, str] | None

    def describe(self) -> str:
        return (f"at {self.t_ns / 1e9:g} s tag {self.tag}: "
                f"{_show(self.a)} (a) != {_show(self.b)} (b)")


@dataclass(frozen=True, slots=True)
class TagDiff:
    """Every difference of one tag: when it first and last differed, for how long, and the
    largest numeric difference."""

    tag: str
    first_ns: int
    last_ns: int
    intervals: int
    duration_ns: int
    max_abs_diff: float | None

    def describe(self) -> str:
        most = "" if self.max_abs_diff is None else f", max |a-b| {self.max_abs_diff:g}"
        return (f"{self.tag}: differs {self.intervals} time(s) from {self.first_ns / 1e9:g} s "
                f"to {self.last_ns / 1e9:g} s, {self.duration_ns / 1e9:g} s in all{most}")


@dataclass(frozen=True, slots=True)
class TraceDiff:
    """What :func:`compare_traces` found; ``bool(diff)`` is True when the traces diverge."""

    equal: bool
    first: Divergence | None
    tags: tuple[TagDiff, ...]
    notes: tuple[str, ...]
    compared_ns: int

    def __bool__(self) -> bool:
        return not self.equal

    def report(self) -> str:
        """The divergence in words: first time and tag, then a line per differing tag."""
        if self.equal:
            return f"traces match over {self.compared_ns / 1e9:g} s"
        out = []
        if self.first is not None:
            out.append(f"traces diverge first {self.first.describe()}")
        out += [f"  {d.describe()}" for d in self.tags]
        out += [f"  note: {n}" for n in self.notes]
        return "\n".join(out)

    __str__ = report


def _show(state: tuple[Value, str] | None) -> str:
    if state is None:
        return "(nothing recorded)"
    v, q = state
    return f"{v!r}" + ("" if q == "GOOD" else f" [{q}]")


def _same(a: Value, b: Value) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return (type(a) is type(b) and a == b) or (
        isinstance(a, int | float) and isinstance(b, int | float) and
        not isinstance(a, bool) and not isinstance(b, bool) and a == b)


def _numeric(v: Value) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v)


def _close(a: tuple[Value, str] | None, b: tuple[Value, str] | None,
           tol: float) -> tuple[bool, float | None]:
    """Whether two states match within ``tol`` (numbers only), and |a-b| when numeric."""
    if a is None or b is None:
        return a is None and b is None, None
    if a[1] != b[1]:
        return False, None
    va, vb = a[0], b[0]
    if _same(va, vb):
        fa = _numeric(va)
        return True, 0.0 if fa is not None and math.isfinite(fa) else None
    fa, fb = _numeric(va), _numeric(vb)
    if fa is None or fb is None:
        return False, None
    if isinstance(va, tuple) or isinstance(vb, tuple):
        return False, None
    diff = abs(fa - fb)
    if math.isnan(diff):
        return False, None
    return diff <= tol, diff


def _load(t: TagTrace | str | os.PathLike[str]) -> TagTrace:
    return t if isinstance(t, TagTrace) else read_trace(t)


def compare_traces(a: TagTrace | str | os.PathLike[str], b: TagTrace | str | os.PathLike[str],
                   *, tolerance: float | Mapping[str, float] = 0.0,
                   tags: Sequence[str] | None = None,
                   until_s: float | None = None) -> TraceDiff:
    """Where traces ``a`` and ``b`` (objects or files) diverge.

    Both are replayed change by change over their common time span (up to ``until_s``);
    at every time either records a change, each tag's value and quality are compared.
    Numbers match within ``tolerance`` (absolute; one figure, or per tag with ``"*"`` as
    the default); text, booleans, arrays and qualities match exactly. ``tags``: compare
    these only (default: the tags both record). Header differences (line, scenario, seed,
    tags only in one) are notes, not divergences.
    """
    ta, tb = _load(a), _load(b)
    notes: list[str] = []
    for key in ("line", "scenario", "seed"):
        va, vb = getattr(ta, key), getattr(tb, key)
        if va != vb:
            notes.append(f"{key} differs: {va!r} (a) vs {vb!r} (b)")
    if tags is None:
        names = [t for t in ta.tags if t in tb.tags]
        only = sorted(set(ta.tags) ^ set(tb.tags))
        if only:
            notes.append(f"not compared (recorded by one trace only): {', '.join(only)}")
    else:
        names = list(tags)
        missing = [t for t in names if t not in ta.tags or t not in tb.tags]
        if missing:
            raise ValueError(f"tag(s) {', '.join(missing)} not recorded by both traces")
    end = min(ta.last_ns, tb.last_ns)
    if ta.last_ns != tb.last_ns:
        notes.append(f"lengths differ: {ta.last_ns / 1e9:g} s (a) vs {tb.last_ns / 1e9:g} s "
                     f"(b); compared up to {end / 1e9:g} s")
    if until_s is not None:
        end = min(end, round(until_s * 1e9))
    if isinstance(tolerance, Mapping):
        tol_of = {n: float(tolerance.get(n, tolerance.get("*", 0.0))) for n in names}
    else:
        tol_of = dict.fromkeys(names, float(tolerance))
    wanted = set(names)
    ra = [r for r in ta.records if r.tag in wanted and r.t_ns <= end]
    rb = [r for r in tb.records if r.tag in wanted and r.t_ns <= end]
    times = sorted({r.t_ns for r in ra} | {r.t_ns for r in rb})
    state_a: dict[str, tuple[Value, str]] = {}
    state_b: dict[str, tuple[Value, str]] = {}
    ia = ib = 0
    first: Divergence | None = None
    open_since: dict[str, int] = {}
    acc: dict[str, list[Any]] = {}  # tag -> [first, last, intervals, duration, max_diff]
    for i, t in enumerate(times):
        while ia < len(ra) and ra[ia].t_ns == t:
            state_a[ra[ia].tag] = (ra[ia].value, ra[ia].quality)
            ia += 1
        while ib < len(rb) and rb[ib].t_ns == t:
            state_b[rb[ib].tag] = (rb[ib].value, rb[ib].quality)
            ib += 1
        nxt = times[i + 1] if i + 1 < len(times) else max(end, t)
        for tag in names:
            sa, sb = state_a.get(tag), state_b.get(tag)
            ok, diff = _close(sa, sb, tol_of[tag])
            if ok:
                open_since.pop(tag, None)
                continue
            if first is None:
                first = Divergence(t, tag, sa, sb)
            s = acc.get(tag)
            if s is None:
                s = acc[tag] = [t, t, 0, 0, None]
            if tag not in open_since:
                open_since[tag] = t
                s[2] += 1
            s[1] = t
            s[3] += nxt - t
            if diff is not None:
                s[4] = diff if s[4] is None else max(s[4], diff)
    per_tag = tuple(TagDiff(tag, s[0], s[1], s[2], s[3], s[4])
                    for tag in names if (s := acc.get(tag)) is not None)
    return TraceDiff(equal=first is None, first=first, tags=per_tag, notes=tuple(notes),
                     compared_ns=end)


def assert_traces_match(a: TagTrace | str | os.PathLike[str],
                        b: TagTrace | str | os.PathLike[str], *,
                        tolerance: float | Mapping[str, float] = 0.0,
                        tags: Sequence[str] | None = None,
                        until_s: float | None = None) -> TraceDiff:
    """Fail (AssertionError with :meth:`TraceDiff.report`) if the traces diverge."""
    __tracebackhide__ = True
    diff = compare_traces(a, b, tolerance=tolerance, tags=tags, until_s=until_s)
    if not diff.equal:
        raise AssertionError(diff.report())
    return diff
