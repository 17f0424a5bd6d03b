"""A GRBL 1.1 controller, modelled on the server side: the bytes it receives, what it answers.

The model follows gnea/grbl 1.1h (``serial.c``, ``protocol.c``, ``gcode.c``, ``report.c``):
real-time bytes are taken out of the stream as they arrive; everything else goes into a
128-byte receive ring that really holds only 127 bytes (more is lost and counted as an
overflow); lines are pulled from the ring into an 80-byte line buffer (79 characters after
spaces and comments are dropped, else ``error:11``) only while the 15-block planner has
room, so a full planner stops the ring from draining — exactly what makes a sender
without character counting overflow it. Motion runs at the programmed feed (no
acceleration; a feed hold decelerates within ``hold_decel_s``) on an injected clock.

No I/O here: :class:`GrblController` is fed bytes with :meth:`~GrblController.receive`,
advanced with :meth:`~GrblController.service` and emptied with
:meth:`~GrblController.take_output`; :mod:`._server` puts it on a pty or a TCP socket.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from smartline.core import Clock

__all__ = [
    "BANNER",
    "DEFAULT_SETTINGS",
    "LINE_BUFFER_SIZE",
    "PLANNER_BLOCKS",
    "RX_BUFFER_SIZE",
    "GrblController",
    "GrblFaults",
]

RX_BUFFER_SIZE = 128  # grbl/serial.h; the ring holds RX_BUFFER_SIZE - 1 bytes
LINE_BUFFER_SIZE = 80  # grbl/protocol.h; 79 characters and a terminating NUL
PLANNER_BLOCKS = 15  # BLOCK_BUFFER_SIZE 16 on the ATmega328p: 15 usable blocks
BANNER = b"\r\nGrbl 1.1h ['$' for help]\r\n"
VERSION = "1.1h.20190825"
_INCH_MM = 25.4
_CRITICAL_ALARMS = (1, 2)

#: ``$$`` defaults of grbl 1.1h (defaults.h, DEFAULTS_GENERIC)
DEFAULT_SETTINGS: dict[int, float] = {
    0: 10, 1: 25, 2: 0, 3: 0, 4: 0, 5: 0, 6: 0, 10: 1, 11: 0.010, 12: 0.002, 13: 0, 20: 0,
    21: 0, 22: 0, 23: 0, 24: 25.0, 25: 500.0, 26: 250, 27: 1.0, 30: 1000, 31: 0, 32: 0,
    100: 250.0, 101: 250.0, 102: 250.0, 110: 500.0, 111: 500.0, 112: 500.0,
    120: 10.0, 121: 10.0, 122: 10.0, 130: 200.0, 131: 200.0, 132: 200.0,
}
_INT_SETTINGS = frozenset({0, 1, 2, 3, 4, 5, 6, 10, 13, 20, 21, 22, 23, 26, 30, 31, 32})

# real-time bytes (grbl/config.h CMD_*)
_RT_STATUS, _RT_HOLD, _RT_RESUME, _RT_RESET = 0x3F, 0x21, 0x7E, 0x18
_RT_FEED = {0x90: 0, 0x91: 10, 0x92: -10, 0x93: 1, 0x94: -1}
_RT_RAPID = {0x95: 100, 0x96: 50, 0x97: 25}
_RT_SPINDLE = {0x99: 0, 0x9A: 10, 0x9B: -10, 0x9C: 1, 0x9D: -1}

# G-code modal groups (NIST RS274NGC as grbl implements it)
_MOTION = {0.0, 1.0, 2.0, 3.0, 80.0}
_GROUPS: dict[float, str] = {
    **dict.fromkeys(_MOTION, "motion"), 90.0: "distance", 91.0: "distance",
    20.0: "units", 21.0: "units", 17.0: "plane", 18.0: "plane", 19.0: "plane",
    93.0: "feedmode", 94.0: "feedmode", 4.0: "nonmodal", 10.0: "nonmodal", 28.0: "nonmodal",
    30.0: "nonmodal", 53.0: "nonmodal", 92.0: "nonmodal", 92.1: "nonmodal",
    54.0: "wcs", 55.0: "wcs", 56.0: "wcs", 57.0: "wcs", 58.0: "wcs", 59.0: "wcs",
}
_M_GROUPS: dict[float, str] = {0.0: "stop", 1.0: "stop", 2.0: "stop", 30.0: "stop",
                               3.0: "spindle", 4.0: "spindle", 5.0: "spindle",
                               7.0: "coolant", 8.0: "coolant", 9.0: "coolant", 6.0: "toolchange"}
_AXES = "XYZ"
_VALUE_LETTERS = set("FIJKLNPRST")


class _GcodeError(Exception):
    """A line the parser rejects with ``error:code``."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class GrblFaults:
    """Faults to inject (change them while the simulator runs)."""

    latency_s: float = 0.0  # every answer leaves this late (real seconds)
    garbage: bool = False  # answers (and reports) are replaced by bytes that are not GRBL's
    silent: bool = False  # a stuck controller: takes bytes, never answers or reports
    alarm_on: str | None = None  # raise ``alarm_code`` when parsing a line with this text
    alarm_at_line: int | None = None  # ... or the n-th non-empty line since the last reset
    alarm_code: int = 1  # 1 and 2 are critical: nothing is answered until a reset


@dataclass
class _Block:
    """One planner block: a straight move (arcs are one block with the arc's length)."""

    start: tuple[float, float, float]
    end: tuple[float, float, float]
    length_mm: float
    rate_mm_min: float
    rapid: bool
    line_number: int | None
    done_mm: float = 0.0

    def position(self) -> tuple[float, float, float]:
        f = 1.0 if self.length_mm <= 0 else min(1.0, self.done_mm / self.length_mm)
        return (self.start[0] + (self.end[0] - self.start[0]) * f,
                self.start[1] + (self.end[1] - self.start[1]) * f,
                self.start[2] + (self.end[2] - self.start[2]) * f)


@dataclass
class _Modal:
    """The parser state that ``$G`` reports."""

    motion: float = 0.0
    wcs: float = 54.0
    plane: float = 17.0
    units: float = 21.0
    distance: float = 90.0
    feedmode: float = 94.0
    spindle: float = 5.0
    coolant: float = 9.0
    tool: int = 0
    feed: float = 0.0  # mm/min
    speed: float = 0.0  # rpm


@dataclass
class _Pending:
    """A parsed line waiting for a resource before it is acknowledged."""

    kind: str  # "motion", "sync", "dwell", "pause", "home", "end"
    blocks: list[_Block] = field(default_factory=list)
    dwell_s: float = 0.0
    until_ns: int | None = None


class GrblController:
    """One GRBL 1.1 controller: receive ring, line buffer, parser, planner, motion, reports."""

    def __init__(self, clock: Clock, *, settings: dict[int, float] | None = None,
                 faults: GrblFaults | None = None, hold_decel_s: float = 0.05,
                 homing_s: float = 0.2) -> None:
        self.clock = clock
        self.faults = faults if faults is not None else GrblFaults()
        self.settings: dict[int, float] = {**DEFAULT_SETTINGS, **(settings or {})}
        self.hold_decel_s = hold_decel_s
        self.homing_s = homing_s
        self.mpos = [0.0, 0.0, 0.0]
        self.g54 = [0.0, 0.0, 0.0]
        self.g92 = [0.0, 0.0, 0.0]
        self.startup_lines = ["", ""]
        # counters the tests read
        self.overflow_bytes = 0  # bytes lost because the receive ring was full
        self.rx_high_water = 0  # the most bytes the ring ever held
        self.lines_received = 0  # lines taken from the ring since power-up
        self.lines_executed: list[str] = []  # every line acknowledged with ok since power-up
        self.resets = 0
        self.status_reports = 0
        self._out = bytearray()
        self._report_due = False
        self._power_up()
        self._out += BANNER

    # -- state -------------------------------------------------------------------------
    def _power_up(self) -> None:
        self._rx: deque[int] = deque()
        self._line = bytearray()
        self._line_overflow = False
        self._in_comment = False
        self._planner: deque[_Block] = deque()
        self._pending: _Pending | None = None
        self._pending_text = ""
        self._last_ns = self.clock.now_ns()
        self.modal = _Modal()
        self.gc_pos = list(self.mpos)  # the parser's position: the end of the last block
        self.g92 = [0.0, 0.0, 0.0]
        self.state = "Idle"
        self.hold_phase = 0
        self._hold_started_ns = 0
        self._homing_until_ns: int | None = None
        self.alarm: int = 0
        self.critical = False  # waiting for a reset after ALARM:1/2
        self.check_mode = False
        self.ov_feed = self.ov_rapid = self.ov_spindle = 100
        self._wco_counter = 0
        self._ov_counter = 0
        self._dwell_until_ns: int | None = None
        self.lines_since_reset = 0
        if self.settings.get(22):
            self.state = "Alarm"

    def rx_used(self) -> int:
        """Bytes in the receive ring now."""
        return len(self._rx)

    def planner_used(self) -> int:
        """Blocks in the planner now."""
        return len(self._planner)

    @property
    def wco(self) -> list[float]:
        return [a + b for a, b in zip(self.g54, self.g92, strict=True)]

    def take_output(self) -> bytes:
        """Everything the controller has said since the last call."""
        out = bytes(self._out)
        self._out.clear()
        return out

    def _say(self, text: str) -> None:
        if self.faults.silent:
            return
        if self.faults.garbage:
            self._out += b"\xfe\x01#@!%garbage&*\r\n"
            return
        self._out += text.encode("ascii") + b"\r\n"

    # -- the serial interrupt ----------------------------------------------------------
    def receive(self, data: bytes) -> None:
        """Bytes arrive on the serial line (the RX interrupt: real-time bytes act at once)."""
        now = self.clock.now_ns()
        self._advance(now)
        for b in data:
            if b in (_RT_STATUS, _RT_HOLD, _RT_RESUME, _RT_RESET) or b >= 0x80:
                self._realtime(b, now)
                continue
            if len(self._rx) >= RX_BUFFER_SIZE - 1:
                self.overflow_bytes += 1
                continue
            self._rx.append(b)
            self.rx_high_water = max(self.rx_high_water, len(self._rx))
            if b in (0x0A, 0x0D):
                self.service()  # the main loop takes a line as soon as it is whole
        self.service()

    def _realtime(self, b: int, now: int) -> None:
        if self.faults.silent:
            return
        if b == _RT_RESET:
            self.soft_reset()
        elif b == _RT_STATUS:
            self._report_due = True  # answered at the end of this service, as the main loop does
        elif b == _RT_HOLD:
            self._feed_hold(now)
        elif b == _RT_RESUME:
            self._cycle_start()
        elif b in _RT_FEED:
            step = _RT_FEED[b]
            self.ov_feed = 100 if step == 0 else max(10, min(200, self.ov_feed + step))
            self._ov_counter = 0
        elif b in _RT_RAPID:
            self.ov_rapid = _RT_RAPID[b]
            self._ov_counter = 0
        elif b in _RT_SPINDLE:
            step = _RT_SPINDLE[b]
            self.ov_spindle = 100 if step == 0 else max(10, min(200, self.ov_spindle + step))
            self._ov_counter = 0

    def _feed_hold(self, now: int) -> None:
        if self.state in ("Alarm", "Check", "Home", "Sleep"):
            return
        if self.state == "Run":
            self.state, self.hold_phase, self._hold_started_ns = "Hold", 1, now
        elif self.state == "Idle":
            self.state, self.hold_phase = "Hold", 0

    def _cycle_start(self) -> None:
        if self.state == "Hold" and self.hold_phase == 0:
            if self._pending is not None and self._pending.kind == "pause":
                self._ack(self._pending_text)
                self._pending = None
            self.state = "Run" if self._planner else "Idle"
        elif self.state == "Idle" and self._planner:
            self.state = "Run"

    def soft_reset(self, *, power: bool = False) -> None:
        """Ctrl-X (or power-up when ``power``): flush everything, print the banner."""
        moving = self.state in ("Run", "Home", "Jog") or (self.state == "Hold"
                                                          and self.hold_phase == 1)
        if moving and not power:
            self._advance(self.clock.now_ns())
            if self._planner:
                self.mpos = list(self._planner[0].position())
            self._say("ALARM:3")
        was_alarm = (moving and not power) or self.critical or self.state == "Alarm"
        self.resets += 1
        self._power_up()
        if not self.faults.silent:
            self._out += BANNER
        if was_alarm or self.settings.get(22):
            self.state = "Alarm"
            self._say("[MSG:'$H'|'$X' to unlock]")

    def raise_alarm(self, code: int) -> None:
        """Halt with ``ALARM:code`` as the firmware does (a limit switch, a probe failure):
        motion stops, the planner is flushed, and after 1/2 nothing is answered until a
        reset. Faults and scenarios use it; callers hold the controller's lock."""
        self._advance(self.clock.now_ns())
        if self._planner:
            self.mpos = list(self._planner[0].position())
        self._planner.clear()
        self._pending = None
        self.gc_pos = list(self.mpos)
        self.state, self.alarm = "Alarm", code
        self._say(f"ALARM:{code}")
        if code in _CRITICAL_ALARMS:
            self.critical = True
            self._say("[MSG:Reset to continue]")

    # -- time --------------------------------------------------------------------------
    def next_event_ns(self) -> int | None:
        """When the model next changes by itself (a block ends, a hold or dwell completes)."""
        now = self._last_ns
        if self._homing_until_ns is not None:
            return self._homing_until_ns
        if self.state == "Hold" and self.hold_phase == 1:
            return self._hold_started_ns + int(self.hold_decel_s * 1e9)
        if self._dwell_until_ns is not None:
            return self._dwell_until_ns
        if self.state == "Run" and self._planner:
            b = self._planner[0]
            speed = self._speed_mm_s(b)
            left = max(0.0, b.length_mm - b.done_mm)
            return now + max(1, int(left / speed * 1e9)) if speed > 0 else None
        return None

    def busy(self) -> bool:
        """Whether time must pass for the controller to make progress."""
        return self.next_event_ns() is not None

    def _speed_mm_s(self, b: _Block) -> float:
        ov = self.ov_rapid if b.rapid else self.ov_feed
        return b.rate_mm_min * ov / 100.0 / 60.0

    def _advance(self, now: int) -> None:
        """Move the axes from the last service time to ``now``."""
        t = self._last_ns
        self._last_ns = max(now, t)
        if self._homing_until_ns is not None:
            if now >= self._homing_until_ns:
                self._homing_until_ns = None
                self.mpos = [0.0, 0.0, 0.0]
                self.gc_pos = list(self.mpos)
                self.state, self.alarm = "Idle", 0
                self._ack("$H")
            return
        while t < now and self._planner and self.state in ("Run", "Hold"):
            b = self._planner[0]
            factor = 1.0
            end = now
            if self.state == "Hold":
                if self.hold_phase == 0:
                    break
                decel_end = self._hold_started_ns + int(self.hold_decel_s * 1e9)
                factor = 0.5  # the mean speed of a linear ramp to zero
                end = min(now, decel_end)
            speed = self._speed_mm_s(b) * factor
            if speed <= 0:
                break
            need_ns = int((b.length_mm - b.done_mm) / speed * 1e9)
            if t + need_ns <= end:
                t += need_ns
                self.mpos = list(b.end)
                self._planner.popleft()
            else:
                b.done_mm += speed * (end - t) / 1e9
                self.mpos = list(b.position())
                t = end
            if self.state == "Hold" and t >= self._hold_started_ns + int(
                    self.hold_decel_s * 1e9):
                self.hold_phase = 0
                break
        if self.state == "Hold" and self.hold_phase == 1 and now >= (
                self._hold_started_ns + int(self.hold_decel_s * 1e9)):
            self.hold_phase = 0
        if self.state == "Run" and not self._planner:
            self.state = "Idle"
        if self._dwell_until_ns is not None and now >= self._dwell_until_ns:
            self._dwell_until_ns = None

    # -- the main loop -----------------------------------------------------------------
    def service(self) -> None:
        """Advance to the clock's now and execute lines while the planner has room."""
        now = self.clock.now_ns()
        for _ in range(100_000):  # event by event: a freed block takes the next line at once
            nxt = self.next_event_ns()
            step = now if nxt is None or nxt > now else max(nxt, self._last_ns)
            self._advance(step)
            if not self.faults.silent:
                self._consume(step)
            if step >= now:
                break
        if self._report_due:
            self._report_due = False
            if self._homing_until_ns is None and not self.critical:
                self._say(self.status_report())

    def _consume(self, now: int) -> None:
        """Execute lines from the ring while nothing blocks (planner room, a sync, a reset)."""
        while not self.critical and self._homing_until_ns is None:
            if self._pending is not None:
                if not self._try_pending(now):
                    break
                continue
            text = self._next_line()
            if text is None:
                break
            self._execute(text, now)
        if self.state == "Idle" and self._planner:
            self.state = "Run"

    def _next_line(self) -> str | None:
        """Pull characters from the ring into the line buffer; a whole line, or None."""
        while self._rx:
            c = self._rx.popleft()
            if c in (0x0A, 0x0D):
                text = self._line.decode("ascii", "replace")
                overflow = self._line_overflow
                self._line.clear()
                self._line_overflow = False
                self._in_comment = False
                self.lines_received += 1
                return "\x00overflow" if overflow else text
            ch = chr(c)
            if self._in_comment:
                if ch == ")":
                    self._in_comment = False
                continue
            if ch == "(":
                self._in_comment = True
            elif ch == ";":
                self._in_comment = True  # to the end of the line
            elif ch in " \t" or c < 0x20:
                continue
            elif len(self._line) >= LINE_BUFFER_SIZE - 1:
                self._line_overflow = True
            else:
                self._line.append(ord(ch.upper()))
        return None

    def _ack(self, text: str) -> None:
        self.lines_executed.append(text)
        self._say("ok")

    def _error(self, code: int) -> None:
        self._say(f"error:{code}")

    def _execute(self, text: str, now: int) -> None:
        if text == "\x00overflow":
            self._error(11)
            return
        if not text:
            self._say("ok")
            return
        self.lines_since_reset += 1
        if text.startswith("$"):
            self._system(text, now)
            return
        if self.state == "Alarm":
            self._error(9)
            return
        trigger = self.faults.alarm_on
        at = self.faults.alarm_at_line
        if (trigger is not None and trigger.replace(" ", "").upper() in text) or (
                at is not None and self.lines_since_reset == at):
            self.raise_alarm(self.faults.alarm_code)
            if not self.critical:
                self._error(9)
            return
        try:
            pending = self._gcode(text)
        except _GcodeError as exc:
            self._error(exc.code)
            return
        if self.state == "Alarm":
            return  # a soft limit: ALARM:2 instead of an answer
        if pending is None:
            self._ack(text)
            return
        self._pending, self._pending_text = pending, text
        self._try_pending(now)

    def _try_pending(self, now: int) -> bool:
        """Try to finish the waiting line; True when it was acknowledged (or dropped)."""
        p = self._pending
        assert p is not None
        if p.kind == "motion":
            while p.blocks and len(self._planner) < PLANNER_BLOCKS:
                self._planner.append(p.blocks.pop(0))
                if self.state == "Idle":
                    self.state = "Run"
            if p.blocks:
                return False
        elif p.kind in ("sync", "dwell", "end", "pause"):
            if self._planner or (self.state == "Hold" and p.kind != "pause"):
                return False
            if p.kind == "dwell":
                if p.until_ns is None:
                    p.until_ns = now + int(p.dwell_s * 1e9)
                    self._dwell_until_ns = p.until_ns
                if now < p.until_ns:
                    return False
            if p.kind == "pause":
                if self.state != "Hold":
                    self.state, self.hold_phase = "Hold", 0
                return False  # acknowledged by ~ (see _cycle_start)
            if p.kind == "end":
                self.modal = _Modal(feed=self.modal.feed, tool=self.modal.tool)
                self.g92 = [0.0, 0.0, 0.0]
        self._pending = None
        self._ack(self._pending_text)
        return True

    # -- $ commands --------------------------------------------------------------------
    def _system(self, text: str, now: int) -> None:
        busy = self.state in ("Run", "Hold", "Home", "Jog")
        cmd = text[1:]
        if cmd == "":
            self._say("[HLP:$$ $# $G $I $N $x=val $Nx=line $J=line $SLP $C $X $H ~ ! ? ctrl-x]")
        elif cmd == "$":
            if busy:
                return self._error(8)
            for n, v in sorted(self.settings.items()):
                self._say(f"${n}={_fmt_setting(n, v)}")
        elif cmd == "G":
            m = self.modal
            self._say(f"[GC:G{m.motion:g} G{m.wcs:g} G{m.plane:g} G{m.units:g} "
                      f"G{m.distance:g} G{m.feedmode:g} M{m.spindle:g} M{m.coolant:g} "
                      f"T{m.tool} F{m.feed:g} S{m.speed:g}]")
        elif cmd == "I":
            self._say(f"[VER:{VERSION}:]")
            self._say(f"[OPT:V,{PLANNER_BLOCKS},{RX_BUFFER_SIZE}]")
        elif cmd == "#":
            if busy:
                return self._error(8)
            self._say("[G54:{:.3f},{:.3f},{:.3f}]".format(*self.g54))
            self._say("[G92:{:.3f},{:.3f},{:.3f}]".format(*self.g92))
        elif cmd == "X":
            if self.state == "Alarm":
                self.state, self.alarm = "Idle", 0
                self._say("[MSG:Caution: Unlocked]")
        elif cmd == "H":
            if not self.settings.get(22):
                return self._error(5)
            if busy or self.check_mode:
                return self._error(8)
            self.state = "Home"
            self._homing_until_ns = now + int(self.homing_s * 1e9)
            return None  # acknowledged when homing completes
        elif cmd == "C":
            if self.check_mode:
                self._say("[MSG:Disabled]")
                self._ack(text)
                self.soft_reset()
                return None
            if self.state != "Idle":
                return self._error(8)
            self.check_mode, self.state = True, "Check"
            self._say("[MSG:Enabled]")
        elif cmd == "SLP":
            self.state = "Sleep"
            self._say("[MSG:Sleeping]")
        elif cmd.startswith("N") and "=" not in cmd and cmd[1:] == "":
            for i, line in enumerate(self.startup_lines):
                self._say(f"$N{i}={line}")
        elif cmd.startswith("N") and "=" in cmd:
            idx, _, line = cmd[1:].partition("=")
            if idx not in ("0", "1"):
                return self._error(3)
            self.startup_lines[int(idx)] = line
        elif cmd.startswith("RST="):
            if cmd[4:] in ("$", "*"):
                self.settings = dict(DEFAULT_SETTINGS)
            elif cmd[4:] != "#":
                return self._error(3)
        elif "=" in cmd:
            if self.state not in ("Idle", "Alarm"):
                return self._error(8)
            key, _, value = cmd.partition("=")
            if not key.isdigit():
                return self._error(3)
            n = int(key)
            if n not in self.settings:
                return self._error(3)
            try:
                v = float(value)
            except ValueError:
                return self._error(2)
            if v < 0:
                return self._error(4)
            if n == 20 and v and not self.settings.get(22):
                return self._error(10)
            self.settings[n] = float(int(v)) if n in _INT_SETTINGS else v
        else:
            return self._error(3)
        self._ack(text)
        return None

    # -- G-code ------------------------------------------------------------------------
    def _gcode(self, text: str) -> _Pending | None:
        words = _words(text)
        gs: dict[str, float] = {}
        ms: dict[str, float] = {}
        vals: dict[str, float] = {}
        axes: dict[int, float] = {}
        for letter, value in words:
            if letter == "G":
                group = _GROUPS.get(round(value, 1))
                if group is None:
                    raise _GcodeError(20)
                if group in gs:
                    raise _GcodeError(21)
                gs[group] = round(value, 1)
            elif letter == "M":
                mgroup = _M_GROUPS.get(round(value, 1))
                if mgroup is None:
                    raise _GcodeError(20)
                if mgroup in ms:
                    raise _GcodeError(21)
                ms[mgroup] = round(value, 1)
            elif letter in _AXES:
                i = _AXES.index(letter)
                if i in axes:
                    raise _GcodeError(25)
                axes[i] = value
            elif letter in _VALUE_LETTERS:
                if letter in vals:
                    raise _GcodeError(25)
                vals[letter] = value
            else:
                raise _GcodeError(20)
        m = self.modal
        inch = _INCH_MM if gs.get("units", m.units) == 20.0 else 1.0
        if "F" in vals:
            if vals["F"] < 0:
                raise _GcodeError(4)
            m.feed = vals["F"] * inch
        if "S" in vals:
            m.speed = vals["S"]
        if "T" in vals:
            m.tool = int(vals["T"])
        for key in ("units", "distance", "plane", "feedmode", "wcs"):
            if key in gs:
                setattr(m, key, gs[key])
        if "spindle" in ms:
            m.spindle = ms["spindle"]
            self._ov_counter = 0  # accessory changes are reported at once (A:)
        if "coolant" in ms:
            m.coolant = ms["coolant"]
            self._ov_counter = 0
        nonmodal = gs.get("nonmodal")
        motion = gs.get("motion")
        if motion is not None:
            m.motion = motion
        line_number = int(vals["N"]) if "N" in vals else None
        pending: _Pending | None = None
        if nonmodal == 4.0:
            if "P" not in vals:
                raise _GcodeError(28)
            pending = _Pending("dwell", dwell_s=max(0.0, vals["P"]))
        elif nonmodal == 92.0:
            if not axes:
                raise _GcodeError(26)
            for i, v in axes.items():
                self.g92[i] = self.gc_pos[i] - self.g54[i] - v * inch
            self._wco_counter = 0
            return None
        elif nonmodal == 92.1:
            self.g92 = [0.0, 0.0, 0.0]
            self._wco_counter = 0
            return None
        elif nonmodal == 10.0:
            if vals.get("L") not in (2.0, 20.0) or vals.get("P", 1.0) not in (0.0, 1.0):
                raise _GcodeError(20)
            for i, v in axes.items():
                if vals["L"] == 2.0:
                    self.g54[i] = v * inch
                else:
                    self.g54[i] = self.gc_pos[i] - self.g92[i] - v * inch
            self._wco_counter = 0
            return _Pending("sync")
        elif nonmodal in (28.0, 30.0):
            pending = _Pending("motion", blocks=self._blocks(
                0.0, {i: 0.0 for i in range(3)}, {}, line_number, machine=True))
        if axes and nonmodal not in (28.0, 30.0):
            if m.motion == 80.0:
                raise _GcodeError(31)
            if m.motion in (1.0, 2.0, 3.0) and m.feed <= 0:
                raise _GcodeError(22)
            scaled = {i: v * inch for i, v in axes.items()}
            offsets = {k: vals[k] * inch for k in "IJKR" if k in vals}
            blocks = self._blocks(m.motion, scaled, offsets, line_number,
                                  machine=nonmodal == 53.0)
            pending = _Pending("motion", blocks=blocks)
        elif motion in (2.0, 3.0) and nonmodal is None:
            raise _GcodeError(26)
        if self.check_mode:
            return None  # parsed and checked (gc_pos moved), nothing planned or waited for
        stop = ms.get("stop")
        if stop in (0.0, 1.0) and (pending is None or not pending.blocks):
            return _Pending("pause") if stop == 0.0 else None
        if stop in (2.0, 30.0):
            if pending is not None and pending.blocks:
                return pending  # the end is reached with the next sync; close enough
            return _Pending("end")
        return pending

    def _blocks(self, motion: float, axes: dict[int, float], offsets: dict[str, float],
                line_number: int | None, *, machine: bool) -> list[_Block]:
        """The planner blocks of one motion line (soft limits checked first)."""
        start = (self.gc_pos[0], self.gc_pos[1], self.gc_pos[2])
        target = list(start)
        wco = self.wco
        for i, v in axes.items():
            if machine:
                target[i] = v
            elif self.modal.distance == 91.0:
                target[i] = start[i] + v
            else:
                target[i] = v + wco[i]
        if self.settings.get(20):
            for i in range(3):
                travel = self.settings[130 + i]
                if target[i] > 0.0 or target[i] < -travel:
                    self.raise_alarm(2)
                    return []
        end = (target[0], target[1], target[2])
        rapid = motion == 0.0
        rate = (min(self.settings[110 + i] for i in range(3)) if rapid else self.modal.feed)
        if motion in (2.0, 3.0):
            length = self._arc_length(start, end, offsets, clockwise=motion == 2.0)
        else:
            length = math.dist(start, end)
        self.gc_pos = list(end)
        return [_Block(start, end, length, rate, rapid, line_number)]

    def _arc_length(self, start: tuple[float, ...], end: tuple[float, ...],
                    offsets: dict[str, float], *, clockwise: bool) -> float:
        """The length of a G2/G3 arc in the selected plane (helical part included)."""
        a, b = {17.0: (0, 1), 18.0: (2, 0), 19.0: (1, 2)}[self.modal.plane]
        lin = 3 - a - b
        off_names = "IJK"
        dx, dy = end[a] - start[a], end[b] - start[b]
        if "R" in offsets:
            r = offsets["R"]
            h2 = 4.0 * r * r - dx * dx - dy * dy
            if h2 < 0 or (dx == 0 and dy == 0):
                raise _GcodeError(33)
            chord = math.hypot(dx, dy)
            half = math.asin(min(1.0, chord / (2 * abs(r))))
            angle = 2 * half if r > 0 else 2 * math.pi - 2 * half
            radius = abs(r)
        else:
            oa, ob = offsets.get(off_names[a], 0.0), offsets.get(off_names[b], 0.0)
            if oa == 0 and ob == 0:
                raise _GcodeError(35)
            ca, cb = start[a] + oa, start[b] + ob
            radius = math.hypot(oa, ob)
            r_end = math.hypot(end[a] - ca, end[b] - cb)
            if abs(radius - r_end) > max(0.005, 0.001 * radius):
                raise _GcodeError(33)
            a0 = math.atan2(start[b] - cb, start[a] - ca)
            a1 = math.atan2(end[b] - cb, end[a] - ca)
            angle = a1 - a0
            if clockwise:
                angle = -angle
            angle %= 2 * math.pi
            if angle < 1e-9:
                angle = 2 * math.pi
        return math.hypot(radius * angle, end[lin] - start[lin])

    # -- reports -----------------------------------------------------------------------
    def status_report(self) -> str:
        """``<State|MPos:…|Bf:…|FS:…|…>`` as ``$10`` and the refresh counters decide."""
        self.status_reports += 1
        mask = int(self.settings.get(10, 1))
        inch = bool(self.settings.get(13))
        scale, digits = (1 / _INCH_MM, 4) if inch else (1.0, 3)
        state = self.state
        if state in ("Hold", "Door"):
            state = f"{state}:{self.hold_phase}"
        pos = self._planner[0].position() if self._planner and self.state in (
            "Run", "Hold") else tuple(self.mpos)
        wco = self.wco
        if mask & 1:
            fields = ["MPos:" + ",".join(f"{v * scale:.{digits}f}" for v in pos)]
        else:
            fields = ["WPos:" + ",".join(f"{(v - w) * scale:.{digits}f}"
                                         for v, w in zip(pos, wco, strict=True))]
        if mask & 2:
            fields.append(f"Bf:{PLANNER_BLOCKS - len(self._planner)},"
                          f"{RX_BUFFER_SIZE - len(self._rx)}")
        head = self._planner[0] if self._planner else None
        if head is not None and head.line_number is not None:
            fields.append(f"Ln:{head.line_number}")
        feed = 0.0
        if head is not None and self.state == "Run":
            feed = head.rate_mm_min * (self.ov_rapid if head.rapid else self.ov_feed) / 100
        rpm = 0.0 if self.modal.spindle == 5.0 else self.modal.speed * self.ov_spindle / 100
        fields.append(f"FS:{feed * scale:.0f},{rpm:.0f}")
        busy_state = self.state in ("Run", "Hold", "Home", "Jog")
        if self._wco_counter > 0:
            self._wco_counter -= 1
        else:
            fields.append("WCO:" + ",".join(f"{v * scale:.{digits}f}" for v in wco))
            self._wco_counter = 29 if busy_state else 9
            self._ov_counter = max(self._ov_counter, 1)
        if self._ov_counter > 0:
            self._ov_counter -= 1
        else:
            fields.append(f"Ov:{self.ov_feed},{self.ov_rapid},{self.ov_spindle}")
            acc = ("S" if self.modal.spindle == 3.0 else "C" if self.modal.spindle == 4.0
                   else "") + ("F" if self.modal.coolant == 8.0 else "") \
                + ("M" if self.modal.coolant == 7.0 else "")
            if acc:
                fields.append(f"A:{acc}")
            self._ov_counter = 19 if busy_state else 9
        return f"<{state}|{'|'.join(fields)}>"


def _fmt_setting(n: int, v: float) -> str:
    return str(int(v)) if n in _INT_SETTINGS else f"{v:.3f}"


def _words(text: str) -> list[tuple[str, float]]:
    """``G1X10.5F300`` → ``[("G", 1.0), ("X", 10.5), ("F", 300.0)]`` (error:1 / error:2)."""
    out: list[tuple[str, float]] = []
    i, n = 0, len(text)
    while i < n:
        letter = text[i]
        if not "A" <= letter <= "Z":
            raise _GcodeError(1)
        j = i + 1
        if j < n and text[j] in "+-":
            j += 1
        k = j
        while k < n and (text[k].isdigit() or text[k] == "."):
            k += 1
        number = text[j:k]
        if not number or number == "." or number.count(".") > 1:
            raise _GcodeError(2)
        value = float(text[i + 1:k])
        out.append((letter, value))
        i = k
    return out
