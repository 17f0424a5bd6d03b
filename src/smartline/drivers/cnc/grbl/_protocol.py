"""Client-side parsing of what a GRBL 1.1 controller sends (``doc/markdown/interface.md``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

__all__ = ["GrblStatus", "Kind", "classify", "parse_status"]

_BANNER = re.compile(r"^Grbl (\S+) \['\$' for help\]$")
_SETTING = re.compile(r"^\$(\d+)=(-?\d+(?:\.\d*)?)$")
_ANSWER_ERROR = re.compile(r"^error:(\d+)$")
_ALARM = re.compile(r"^ALARM:(\d+)$")


class Kind(Enum):
    """What one line from the controller is."""

    OK = "ok"
    ERROR = "error"
    STATUS = "status"
    ALARM = "alarm"
    BANNER = "banner"
    SETTING = "setting"
    MESSAGE = "message"  # [MSG:...]
    FEEDBACK = "feedback"  # [GC:...] [VER:...] [OPT:...] [G54:...] [HLP:...] ...
    STARTUP = "startup"  # >G54G20:ok (a startup line ran)
    EMPTY = "empty"
    GARBAGE = "garbage"


def classify(line: str) -> tuple[Kind, int | str | tuple[int, float] | None]:
    """The kind of ``line`` (CR LF stripped) and its payload: the code of an error or
    alarm, the version of a banner, ``(n, value)`` of a setting, the text of a message."""
    if line == "ok":
        return Kind.OK, None
    if not line:
        return Kind.EMPTY, None
    head = line[0]
    if head == "<":
        return (Kind.STATUS, line) if line.endswith(">") else (Kind.GARBAGE, line)
    if head == "e" and (m := _ANSWER_ERROR.match(line)):
        return Kind.ERROR, int(m.group(1))
    if head == "A" and (m := _ALARM.match(line)):
        return Kind.ALARM, int(m.group(1))
    if head == "[" and line.endswith("]"):
        if line.startswith("[MSG:"):
            return Kind.MESSAGE, line[5:-1]
        return Kind.FEEDBACK, line
    if head == "$" and (m := _SETTING.match(line)):
        return Kind.SETTING, (int(m.group(1)), float(m.group(2)))
    if head == "$" and line[1:2] == "N":
        return Kind.FEEDBACK, line  # $N0=... startup lines
    if head == "G" and (m := _BANNER.match(line)):
        return Kind.BANNER, m.group(1)
    if head == ">" and line.endswith(":ok"):
        return Kind.STARTUP, line
    return Kind.GARBAGE, line


@dataclass(frozen=True, slots=True)
class GrblStatus:
    """One status report, fields as sent (positions in the report's unit, ``None`` when the
    report does not carry the field)."""

    state: str  # Idle Run Hold Jog Alarm Door Check Home Sleep
    substate: int  # Hold:0/1, Door:0..3; 0 otherwise
    mpos: tuple[float, ...] | None
    wpos: tuple[float, ...] | None
    wco: tuple[float, ...] | None
    feed: float | None
    spindle: float | None
    planner_free: int | None
    rx_free: int | None
    line: int | None
    overrides: tuple[int, int, int] | None
    pins: str
    accessories: str | None  # only with Ov: (GRBL prints A: there)


_STATES = frozenset({"Idle", "Run", "Hold", "Jog", "Alarm", "Door", "Check", "Home", "Sleep"})


def _floats(text: str, n_min: int = 1) -> tuple[float, ...]:
    values = tuple(float(v) for v in text.split(","))
    if len(values) < n_min:
        raise ValueError(text)
    return values


def parse_status(line: str) -> GrblStatus:
    """Parse ``<Idle|MPos:0.000,0.000,0.000|FS:0,0>``; ``ValueError`` for anything else."""
    if not (line.startswith("<") and line.endswith(">")):
        raise ValueError(f"not a status report: {line!r}")
    fields = line[1:-1].split("|")
    state, _, sub = fields[0].partition(":")
    if state not in _STATES:
        raise ValueError(f"unknown machine state {fields[0]!r}")
    substate = int(sub) if sub else 0
    mpos = wpos = wco = None
    feed = spindle = None
    planner = rx = line_no = None
    overrides: tuple[int, int, int] | None = None
    pins = ""
    acc: str | None = None
    for f in fields[1:]:
        key, sep, value = f.partition(":")
        if not sep:
            raise ValueError(f"field without a value {f!r}")
        if key == "MPos":
            mpos = _floats(value, 3)
        elif key == "WPos":
            wpos = _floats(value, 3)
        elif key == "WCO":
            wco = _floats(value, 3)
        elif key == "FS":
            feed, spindle = _floats(value, 2)[:2]
        elif key == "F":
            feed = float(value)
        elif key == "Bf":
            planner, rx = (int(v) for v in value.split(","))
        elif key == "Ln":
            line_no = int(value)
        elif key == "Ov":
            ov = tuple(int(v) for v in value.split(","))
            if len(ov) != 3:
                raise ValueError(f"Ov needs three values: {f!r}")
            overrides = (ov[0], ov[1], ov[2])
        elif key == "Pn":
            pins = value
        elif key == "A":
            acc = value
        # other fields (Door/Probe extensions of forks) are ignored
    if mpos is None and wpos is None:
        raise ValueError(f"status report without MPos or WPos: {line!r}")
    if overrides is not None and acc is None:
        acc = ""
    return GrblStatus(state, substate, mpos, wpos, wco, feed, spindle, planner, rx, line_no,
                      overrides, pins, acc)
