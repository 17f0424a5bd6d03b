"""The instrument side of a profile's line protocol: requests recognised, replies written.

The simulator reads the same ``protocol:`` section the driver does, but as the instrument:
it recognises a request by turning the command's *send* template into a pattern (the
value field becomes a capture), and writes replies from the reply rules' *format*
templates with its own state (point values and their units). Per-instrument behaviour
(the scale's tare and zero, the SCPI error queue) lives in small :class:`Behaviour`
classes; everything else is generic. Faults change what goes on the wire.
"""

from __future__ import annotations

import math
import re
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from smartline.config import LineProtocol, Profile
from smartline.config._lineproto import ReplyRule, Template, checksum

__all__ = ["Behaviour", "FaultKind", "Instrument", "MtSicsBehaviour", "PfeifferBehaviour",
           "ScannerBehaviour", "ScpiBehaviour", "behaviour_for", "u_expo_new"]

Value = bool | int | float | str
FaultKind = Literal["no_reply", "partial", "noise", "unexpected", "bad_checksum", "error"]
NOISE = b"\x00\xff\x13\x7f"
GARBAGE = b"\x15\xfe#?~"


@dataclass(slots=True)
class _Fault:
    kind: FaultKind
    command: str | None
    count: int | None  # None: until cleared
    text: str = ""


@dataclass(frozen=True, slots=True)
class _Request:
    name: str
    pattern: re.Pattern[str]
    point: str | None


@dataclass(slots=True)
class Reply:
    """What the instrument says to one request (``None`` text: nothing)."""

    text: str | None
    delay_s: float = 0.0
    raw: bytes | None = None  # bytes exactly as sent (faults), else text is framed


class Behaviour:
    """Instrument-specific state on top of the generic one (subclass per instrument)."""

    def start(self, inst: Instrument) -> None:
        """Called once with the instrument's initial values."""

    def command(self, inst: Instrument, name: str, arg: str | None) -> str | bool | None:
        """Handle a recognised command: a reply text, None (say nothing) or False (let
        the generic handling answer)."""
        return False

    def unknown(self, inst: Instrument, text: str) -> str | bool | None:
        """Handle a request no command matches (False: the protocol's first error reply)."""
        return False

    def set(self, inst: Instrument, name: str, value: Value) -> bool:
        """A test changes a point: True when handled here."""
        return False


class Instrument:
    """One simulated instrument: state, request recognition, reply writing, faults.

    Thread-safe: the server thread calls :meth:`handle`, tests call :meth:`set`,
    :meth:`fault` and friends under :attr:`lock`.
    """

    def __init__(self, profile: Profile, *, behaviour: Behaviour | None = None,
                 station: int | None = None) -> None:
        protocol = profile.protocol
        if not isinstance(protocol, LineProtocol):
            raise ValueError(f"profile {profile.name} has no line protocol")
        self.profile = profile
        self.protocol = protocol
        self.lock = threading.RLock()
        default_station = profile.defaults.get("station")
        self.station = station if station is not None else (
            int(default_station) if isinstance(default_station, int) else 1)
        self.values: dict[str, Value] = {}
        self.units: dict[str, str] = {}
        self._kinds: dict[str, str] = {}
        for rule in self._all_rules():
            for name, spec in rule.points.items():
                self._kinds.setdefault(name, "string" if spec.decode else spec.type)
                if spec.unit is not None:
                    self.units.setdefault(name, spec.unit)
        for name, point in profile.points.items():
            hint = point.sim.get("value")
            kind = self._kinds.get(name, "bool")
            self.values[name] = hint if hint is not None else _zero(kind)
            if point.unit is not None:
                self.units.setdefault(name, point.unit)
        self.requests: list[_Request] = []
        for name, cmd in protocol.commands.items():
            self.requests.append(_Request(name, self._request_pattern(cmd.send), cmd.point))
        self._identify = (self._request_pattern(protocol.identify.send)
                          if protocol.identify is not None else None)
        self.latency_s = 0.0
        self.garbage = False
        self.silent = False  # answers nothing at all (unplugged)
        self.faults: list[_Fault] = []
        self.received: deque[str] = deque(maxlen=1000)
        self.outbox: list[bytes] = []  # unsolicited lines for every connection (a scan)
        self.writes: dict[str, Value] = {}
        self.behaviour = behaviour if behaviour is not None else behaviour_for(profile)
        self.behaviour.start(self)

    # -- setup -----------------------------------------------------------------------------
    def _all_rules(self) -> list[ReplyRule]:
        rules = list(self.protocol.stream)
        for cmd in self.protocol.commands.values():
            rules += cmd.replies
        return rules

    def _request_pattern(self, send: str) -> re.Pattern[str]:
        out = []
        for part in Template.parse(send).parts:
            if isinstance(part, str):
                out.append(re.escape(part))
            elif part[0] == "station":
                out.append(re.escape(format(self.station, part[1])))
            else:
                out.append("(?P<arg>.*?)")
        return re.compile("".join(out), re.DOTALL)

    # -- what tests use ----------------------------------------------------------------------
    def set(self, name: str, value: Value) -> None:
        """Change a point as the instrument would (the load on the pan, a reading)."""
        with self.lock:
            if not self.behaviour.set(self, name, value):
                self.values[name] = value

    def fault(self, kind: FaultKind, *, command: str | None = None, count: int | None = 1,
              text: str = "") -> None:
        """Inject a fault into the next ``count`` replies (None: until :meth:`clear`) to
        ``command`` (None: any): ``no_reply``; ``partial`` (half a line, no terminator);
        ``noise`` (bytes before the reply); ``unexpected`` (``text`` or another
        command's reply); ``bad_checksum``; ``error`` (reply ``text`` instead: ``S +``)."""
        with self.lock:
            self.faults.append(_Fault(kind, command, count, text))

    def forget(self, command: str) -> None:
        """The instrument no longer knows ``command`` (an older firmware, another model):
        its requests get the instrument's answer to unknown commands."""
        with self.lock:
            self.requests = [r for r in self.requests if r.name != command]

    def clear(self) -> None:
        """Remove every fault."""
        with self.lock:
            self.faults.clear()
            self.latency_s = 0.0
            self.garbage = False
            self.silent = False

    def context(self) -> dict[str, object]:
        ctx: dict[str, object] = {"station": self.station}
        for name, v in self.values.items():
            ctx[name] = v
            ctx[f"{name}.unit"] = self.units.get(name, "")
        return ctx

    def render(self, rule_format: str) -> str:
        return Template.parse(rule_format).render(self.context())

    # -- the wire ----------------------------------------------------------------------------
    def frame(self, text: str) -> bytes:
        """A reply line as bytes: encoded, checksum appended, terminated."""
        body = text.encode(self.protocol.encoding, errors="replace")
        ck = self.protocol.checksum
        if ck is not None:
            body += format(checksum(ck.algorithm, body), ck.format).encode("ascii")
        return body + self.protocol.reply_end.encode(self.protocol.encoding)

    def unframe(self, line: bytes) -> str | None:
        """A request's text (terminator removed), None when its checksum is wrong (the
        instrument ignores such a request, as the Pfeiffer protocol says)."""
        ck = self.protocol.checksum
        if ck is not None:
            width = len(format(0, ck.format))
            body, given = line[:-width], line[-width:]
            try:
                ok = int(given, 16 if ck.format[-1] in "xX" else 10) == checksum(
                    ck.algorithm, body)
            except ValueError:
                ok = False
            if not ok:
                return None
            line = body
        return line.decode(self.protocol.encoding, errors="replace")

    def handle(self, line: bytes) -> bytes | None:
        """The bytes answering one request line (without its terminator)."""
        with self.lock:
            text = self.unframe(line)
            if text is None or self.silent:
                return None
            self.received.append(text)
            name, reply = self._answer(text)
            if reply is None:
                return None
            if self.garbage:
                return GARBAGE + self.protocol.reply_end.encode("ascii")
            return self._apply_faults(name, reply)

    def _answer(self, text: str) -> tuple[str | None, str | None]:
        for req in self.requests:
            m = req.pattern.fullmatch(text)
            if m is None:
                continue
            arg = m.groupdict().get("arg")
            got = self.behaviour.command(self, req.name, arg)
            if got is not False:
                return req.name, got if isinstance(got, str) else None
            return req.name, self._generic(req, arg)
        if self._identify is not None and self._identify.fullmatch(text):
            ident = self.protocol.identify
            assert ident is not None
            return "identify", self.render(ident.format) if ident.format else None
        got = self.behaviour.unknown(self, text)
        if got is not False:
            return None, got if isinstance(got, str) else None
        for err in self.protocol.errors:
            if err.format is not None:
                return None, self.render(err.format)
        return None, None

    def _generic(self, req: _Request, arg: str | None) -> str | None:
        cmd = self.protocol.commands[req.name]
        if req.point is not None:
            if arg is not None:
                self.values[req.point] = self._parse(req.point, arg)
                self.writes[req.point] = self.values[req.point]
            else:
                self.writes[req.point] = True
            rules = [r for r in cmd.replies if (r.ok or r.points) and r.format]
            return self.render(rules[0].format) if rules and rules[0].format else None
        for r in cmd.replies:
            if r.points and r.format:
                return self.render(r.format)
        return None

    def _parse(self, point: str, arg: str) -> Value:
        """The value a write request carries (the instrument reading its own command)."""
        kind = self._kinds.get(point)
        text = arg.strip()
        m = re.match(r"\s*([-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)", text)
        if kind == "float" and m:
            return float(m.group(1))
        if kind == "int" and m:
            return int(float(m.group(1)))
        if kind == "bool":
            return text.upper() in ("1", "ON", "TRUE", "YES")
        return text.strip('"')

    def _apply_faults(self, name: str | None, text: str) -> bytes | None:
        fault = None
        for f in self.faults:
            if f.command is None or f.command == name:
                fault = f
                break
        if fault is None:
            return self.frame(text)
        if fault.count is not None:
            fault.count -= 1
            if fault.count <= 0:
                self.faults.remove(fault)
        if fault.kind == "no_reply":
            return None
        if fault.kind == "partial":
            return self.frame(text)[:max(1, len(text) * 2 // 3)]
        if fault.kind == "noise":
            return NOISE + self.frame(text)
        if fault.kind == "unexpected":
            return self.frame(fault.text or "UNEXPECTED REPLY")
        if fault.kind == "bad_checksum":
            framed = self.frame(text)
            ck = self.protocol.checksum
            end = self.protocol.reply_end.encode("ascii")
            if ck is None:
                return framed
            width = len(format(0, ck.format))
            body = framed[:-len(end) - width]
            bad = (checksum(ck.algorithm, body) + 1) % 256
            return body + format(bad, ck.format).encode("ascii") + end
        return self.frame(fault.text)  # "error"

    def stream_line(self, text: str) -> bytes:
        """One line a streaming instrument prints (a scan)."""
        return self.frame(text)


def _zero(kind: str) -> Value:
    return {"float": 0.0, "int": 0, "bool": False}.get(kind, "")


# -- behaviours ------------------------------------------------------------------------------

@dataclass
class MtSicsBehaviour(Behaviour):
    """A balance: a gross load on the pan, a zero offset and a tare; the net weight is
    gross − zero − tare. ``stable`` False makes ``S`` answer ``S I`` and ``SI`` ``S D``."""

    gross: float = 0.0
    zero: float = 0.0
    tare: float = 0.0
    stable: bool = True

    def start(self, inst: Instrument) -> None:
        self.tare = float(inst.values.get("tare_weight", 0.0))  # type: ignore[arg-type]
        self.gross = float(inst.values.get("weight", 0.0)) + self.tare  # type: ignore[arg-type]
        self._update(inst)

    def _update(self, inst: Instrument) -> None:
        net = round(self.gross - self.zero - self.tare, 6)
        inst.values.update(weight=net, weight_now=net, tare_weight=self.tare,
                           stable=self.stable)

    def set(self, inst: Instrument, name: str, value: Value) -> bool:
        if name in ("weight", "weight_now"):
            self.gross = float(value) + self.zero + self.tare
        elif name == "gross":
            self.gross = float(value)
        elif name == "stable":
            self.stable = bool(value)
        elif name == "tare_weight":
            self.tare = float(value)
        else:
            return False
        self._update(inst)
        return True

    def command(self, inst: Instrument, name: str, arg: str | None) -> str | bool | None:
        unit = inst.units.get("weight", "g")
        self._update(inst)
        if name == "stable_weight" and not self.stable:
            return "S I"
        if name == "weight_now" and not self.stable:
            return f"S D {inst.values['weight_now']:>10.2f} {unit}"
        if name == "zero":
            if not self.stable:
                return "Z I"
            self.zero = self.gross - self.tare
            inst.writes["zero"] = True
            self._update(inst)
            return "Z A"
        if name == "tare":
            if not self.stable:
                return "T I"
            self.tare = self.gross - self.zero
            inst.writes["tare"] = True
            self._update(inst)
            return f"T S {self.tare:>10.2f} {unit}"
        if name == "tare_preset" and arg is not None:
            try:
                self.tare = float(arg.split()[0])
            except (ValueError, IndexError):
                return "TA L"
            inst.writes["tare_weight"] = self.tare
            self._update(inst)
            return f"TA A {self.tare:>10.2f} {unit}"
        if name == "reset":
            inst.writes["reset"] = True
            self.stable = True
            self._update(inst)
            return f'I4 A "{inst.values.get("serial_number", "")}"'
        return False


@dataclass
class ScpiBehaviour(Behaviour):
    """IEEE 488.2 / SCPI status: an error queue of ``size`` entries, oldest first, where
    an error arriving at a full queue replaces the newest entry with ``-350,"Queue
    overflow"``; ``SYST:ERR?`` pops one (``0,"No error"`` when empty); ``*CLS`` clears."""

    size: int = 20
    queue: deque[tuple[int, str]] = field(default_factory=deque)

    def push(self, code: int, text: str) -> None:
        if len(self.queue) >= self.size:
            self.queue[-1] = (-350, "Queue overflow")
            return
        self.queue.append((code, text))

    def command(self, inst: Instrument, name: str, arg: str | None) -> str | bool | None:
        if name in ("error", "next_error"):
            code, text = self.queue.popleft() if self.queue else (0, "No error")
            inst.values.update(error_code=code, error_text=text)
        if name == "nplc_set" and arg is not None:
            try:
                nplc = float(arg)
            except ValueError:
                self.push(-104, "Data type error")
                return None
            if nplc not in (0.02, 0.2, 1.0, 10.0, 100.0):
                self.push(-222, "Data out of range")
                return None
        return False

    def unknown(self, inst: Instrument, text: str) -> str | bool | None:
        if text.strip().upper() == "*CLS":
            self.queue.clear()
            return None
        self.push(-113, "Undefined header")
        return None


def u_expo_new(value: float) -> str:
    """A positive number as the Pfeiffer Vacuum protocol's ``u_expo_new``: four digits of
    mantissa (×10⁻³) and a two-digit exponent offset by 20 (1000 hPa → ``100023``)."""
    if value <= 0:
        return "000000"
    exp = math.floor(math.log10(value))
    mant = round(value / 10.0 ** exp * 1000)
    if mant >= 10000:
        mant //= 10
        exp += 1
    return f"{mant:04d}{exp + 20:02d}"


@dataclass
class PfeifferBehaviour(Behaviour):
    """A Pfeiffer Vacuum protocol device: P:740 in ``u_expo_new``; a parameter it does not
    have answers ``NO_DEF``."""

    def command(self, inst: Instrument, name: str, arg: str | None) -> str | bool | None:
        if name == "pressure":
            value = float(inst.values.get("pressure", 0.0))  # type: ignore[arg-type]
            return f"{inst.station:03d}1074006{u_expo_new(value)}"
        return False

    def unknown(self, inst: Instrument, text: str) -> str | bool | None:
        m = re.fullmatch(r"(\d{3})(00|10)(\d{3})(\d{2}).*", text)
        if m is None or int(m.group(1)) != inst.station:
            return None  # not for us: a bus device stays silent
        return f"{inst.station:03d}10{m.group(3)}06NO_DEF"


@dataclass
class ScannerBehaviour(Behaviour):
    """A scanner: the serial trigger prints the code in front of it."""

    def command(self, inst: Instrument, name: str, arg: str | None) -> str | bool | None:
        if name == "trigger":
            inst.writes["trigger"] = True
            inst.outbox.append(inst.stream_line(str(inst.values.get("code", ""))))
            return None
        return False


_BEHAVIOURS: Mapping[str, type[Behaviour]] = {
    "mettler-toledo/mt-sics": MtSicsBehaviour,
    "keysight/34461a": ScpiBehaviour,
    "pfeiffer-vacuum/ppt-100": PfeifferBehaviour,
    "honeywell/xenon-1900": ScannerBehaviour,
}


def behaviour_for(profile: Profile) -> Behaviour:
    """The behaviour of a profile's instrument (the generic one for most)."""
    kind = _BEHAVIOURS.get(profile.name, Behaviour)
    return kind()


