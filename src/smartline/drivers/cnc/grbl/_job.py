"""Streaming a G-code file to GRBL: character counting (or send-response), progress, pause,
resume, the safe stop, and a stop on the first alarm or error."""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from smartline.core import (
    CommunicationError,
    ConfigError,
    ConfigIssue,
    DeviceError,
    DeviceTimeoutError,
)

from ._codes import alarm_meaning, error_meaning
from ._driver import GrblDriver, line_problem
from ._link import GrblLink

__all__ = ["GcodeJob", "GcodeLine", "GcodeProgram", "JobAlarm", "JobError", "JobOutcome",
           "JobProgress", "StreamMode", "clean_line"]

log = logging.getLogger(__name__)

StreamMode = Literal["counting", "send-response"]
JobState = Literal["pending", "running", "paused", "stopping", "done", "error", "alarm",
                   "cancelled", "reset", "broken"]

_FINAL: dict[str, JobState] = {"": "done", "error": "error", "alarm": "alarm",
                               "cancel": "cancelled", "reset": "reset", "broken": "broken",
                               "stall": "error"}
_COMMENT = re.compile(r"\([^()]*\)")
# lines that write EEPROM (or need the machine still): sent alone, answered before the next
_SYNC = re.compile(r"^\$|G10L[0-9]|G28\.1|G30\.1", re.IGNORECASE)


def clean_line(raw: str) -> str:
    """One G-code line as sent: comments ``(…)`` and ``;…``, whitespace and a ``%`` tape
    mark removed, letters upper-cased (GRBL ignores spaces and case)."""
    text = raw.split(";", 1)[0]
    text = _COMMENT.sub("", text)
    text = "".join(text.split())
    if text == "%":
        return ""
    return text if text.startswith("$") else text.upper()


@dataclass(frozen=True, slots=True)
class GcodeLine:
    """A line to send and where it comes from (1-based line of the file)."""

    number: int
    text: str


@dataclass(frozen=True, slots=True)
class GcodeProgram:
    """A G-code file ready to stream: its lines, cleaned and checked."""

    source: str
    lines: tuple[GcodeLine, ...]

    @classmethod
    def from_text(cls, text: str, source: str = "<gcode>") -> GcodeProgram:
        """Clean and check every line; ``ConfigError`` locates every problem (FILE:LINE)."""
        issues: list[ConfigIssue] = []
        lines: list[GcodeLine] = []
        for number, raw in enumerate(text.splitlines(), start=1):
            if raw.count("(") != raw.count(")"):
                issues.append(ConfigIssue(source, "gcode", "unbalanced '(' comment "
                                          "(a comment must close on its line)", line=number))
                continue
            cleaned = clean_line(raw)
            if not cleaned:
                continue
            problem = line_problem(cleaned)
            if problem:
                issues.append(ConfigIssue(source, "gcode", problem, line=number))
                continue
            lines.append(GcodeLine(number, cleaned))
        if issues:
            raise ConfigError(issues)
        return cls(source, tuple(lines))

    @classmethod
    def load(cls, path: str | Path) -> GcodeProgram:
        """Read and check a G-code file (``ConfigError`` for a bad line, ``OSError`` if
        unreadable)."""
        p = Path(path)
        try:
            text = p.read_text(encoding="ascii")
        except UnicodeDecodeError as exc:
            line = p.read_bytes()[:exc.start].count(b"\n") + 1
            raise ConfigError(ConfigIssue(str(p), "gcode", "a byte that is not ASCII: G-code "
                                          "for GRBL is ASCII", line=line)) from None
        return cls.from_text(text, str(p))


@dataclass(frozen=True, slots=True)
class JobError:
    """An ``error:N`` the controller answered to a line of the file."""

    file_line: int
    text: str
    code: int
    meaning: str

    def __str__(self) -> str:
        return f"line {self.file_line} ({self.text}): error:{self.code} ({self.meaning})"


@dataclass(frozen=True, slots=True)
class JobAlarm:
    """An ``ALARM:N`` during the job and the file line the controller was processing."""

    code: int
    meaning: str
    file_line: int | None
    text: str

    def __str__(self) -> str:
        where = (f"at line {self.file_line} ({self.text})" if self.file_line
                 else "after the last line")
        return f"ALARM:{self.code} ({self.meaning}) {where}"


@dataclass(frozen=True, slots=True)
class JobProgress:
    """Where a job is: lines sent and acknowledged, percent and a naive ETA."""

    state: JobState
    total: int
    sent: int
    acked: int
    file_line: int  # file line of the last acknowledged line (0 before the first)
    elapsed_s: float
    eta_s: float | None
    machine_state: str

    @property
    def percent(self) -> float:
        return 100.0 * self.acked / self.total if self.total else 100.0


@dataclass(frozen=True, slots=True)
class JobOutcome:
    """How a job ended."""

    state: JobState
    total: int
    sent: int
    acked: int
    elapsed_s: float
    errors: tuple[JobError, ...] = ()
    alarm: JobAlarm | None = None
    message: str = ""
    mode: StreamMode = "counting"

    @property
    def ok(self) -> bool:
        return self.state == "done" and not self.errors


@dataclass
class _Shared:
    state: JobState = "pending"
    sent: int = 0
    acked: int = 0
    last_line: int = 0
    errors: list[JobError] = field(default_factory=list)
    alarm: JobAlarm | None = None
    stop: str = ""  # why sending stopped: error, alarm, cancel, reset, broken, stall
    broken: BaseException | None = None


class GcodeJob:
    """Stream a :class:`GcodeProgram` to a connected :class:`GrblDriver`.

    ``counting`` keeps the controller's receive buffer full (the FIFO of line lengths sent
    and not answered never exceeds ``rx_buffer_bytes - 1``); ``send-response`` waits for
    each answer. ``$`` lines and EEPROM writes (G10 L2/L20, G28.1, G30.1) always go
    send-response after the buffer drained. The first ``error:N`` (with
    ``stop_on_error``) or ``ALARM:N`` stops sending; an error, :meth:`cancel` or a stall
    then does the safe stop: feed hold, wait for ``Hold:0``, soft reset. ``check`` wraps
    the job in GRBL's check mode (``$C``): parsed and answered, nothing moves.
    """

    def __init__(self, driver: GrblDriver, program: GcodeProgram, *,
                 mode: StreamMode = "counting", stop_on_error: bool = True,
                 check: bool = False, stall_timeout_s: float = 5.0,
                 stop_timeout_s: float = 10.0,
                 on_progress: Callable[[JobProgress], None] | None = None) -> None:
        if mode not in ("counting", "send-response"):
            raise ValueError(f"mode must be 'counting' or 'send-response', not {mode!r}")
        self.driver = driver
        self.program = program
        self.mode: StreamMode = mode
        self.stop_on_error = stop_on_error
        self.check = check
        self.stall_timeout_s = stall_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.on_progress = on_progress
        self._s = _Shared()
        self._event = asyncio.Event()
        self._t0: float | None = None
        self._t_end: float | None = None
        self._link: GrblLink | None = None
        self._pending_lines: deque[int] = deque()  # indices of lines sent and not answered

    # -- state ---------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._s.state in ("running", "paused", "stopping")

    @property
    def progress(self) -> JobProgress:
        s = self._s
        total = len(self.program.lines)
        now = self._t_end if self._t_end is not None else self._now_s()
        elapsed = now - self._t0 if self._t0 is not None else 0.0
        eta = elapsed / s.acked * (total - s.acked) if s.acked and self.running else None
        link = self._link
        st = link.status.state if link is not None and link.status is not None else ""
        return JobProgress(s.state, total, s.sent, s.acked, s.last_line, elapsed, eta, st)

    def _now_s(self) -> float:
        return self.driver.clock.now_ns() / 1e9

    def _poke(self) -> None:
        self._event.set()
        if self.on_progress is not None:
            try:
                self.on_progress(self.progress)
            except Exception:
                log.exception("progress callback failed")

    # -- link events (LinkListener) ------------------------------------------------------
    def on_alarm(self, code: int) -> None:
        s = self._s
        if s.alarm is None and self.running:
            lines = self.program.lines
            at = lines[self._pending_lines[0]] if self._pending_lines else None
            s.alarm = JobAlarm(code, alarm_meaning(code), at.number if at else None,
                               at.text if at else "")
            s.stop = s.stop or "alarm"
        self._poke()

    def on_reset(self) -> None:
        if self.running:
            self._s.stop = self._s.stop or "reset"
        self._pending_lines.clear()
        self._poke()

    def on_broken(self, exc: BaseException) -> None:
        if self.running:
            self._s.stop = self._s.stop or "broken"
            self._s.broken = exc
        self._poke()

    def _answered(self, index: int, code: int | None) -> None:
        s = self._s
        if self._pending_lines and self._pending_lines[0] == index:
            self._pending_lines.popleft()
        s.acked += 1
        line = self.program.lines[index]
        s.last_line = line.number
        if code is not None:
            err = JobError(line.number, line.text, code, error_meaning(code))
            s.errors.append(err)
            log.warning("%s: %s:%s", self.driver.spec.name, self.program.source, err)
            if self.stop_on_error:
                s.stop = s.stop or "error"
        self._poke()

    # -- control -------------------------------------------------------------------------
    async def pause(self) -> None:
        """Feed hold (``!``): motion decelerates and stops; lines keep filling the buffer."""
        link = self._need_link()
        link.write(b"!")
        if self._s.state == "running":
            self._s.state = "paused"
        self._poke()

    async def resume(self) -> None:
        """Cycle start (``~``) after :meth:`pause`."""
        link = self._need_link()
        link.write(b"~")
        if self._s.state == "paused":
            self._s.state = "running"
        self._poke()

    def cancel(self) -> None:
        """Stop the job with the safe stop (hold, wait for Hold:0, soft reset); :meth:`run`
        returns the outcome ``cancelled`` once the controller has reset."""
        if self.running:
            self._s.stop = self._s.stop or "cancel"
        self._poke()

    def _need_link(self) -> GrblLink:
        if self._link is None:
            raise RuntimeError("the job is not running")
        return self._link

    # -- streaming -----------------------------------------------------------------------
    async def run(self) -> JobOutcome:
        """Stream the program; returns how it ended (never raises for the device's errors)."""
        if self._s.state != "pending":
            raise RuntimeError("a job runs once; make a new GcodeJob")
        drv = self.driver
        if drv.job is not None and drv.job.running:
            raise RuntimeError(f"{drv.spec.name} is already streaming a job")
        link = drv.job_link()
        self._link = link
        drv.job = self
        link.listener = self
        self._t0 = self._now_s()
        self._s.state = "running"
        poller = asyncio.ensure_future(self._poll_status(link))
        message = ""
        try:
            if self.check:
                await link.command("$C")
            await self._stream(link)
            link.flush()
            await self._drain(link)
        except DeviceError as exc:  # $C refused, a forced line refused before it ran
            self._s.stop = self._s.stop or "error"
            message = str(exc)
        except CommunicationError as exc:
            self._s.stop = self._s.stop or "broken"
            self._s.broken = exc
        except asyncio.CancelledError:  # the caller gave up on the job: stop the machine too
            self._s.stop = self._s.stop or "cancel"
            await asyncio.shield(self._finish(link))
            raise
        finally:
            poller.cancel()
        s = self._s
        if s.stop in ("error", "cancel", "stall") and s.sent:
            await self._safe_stop(link)
        elif self.check and s.stop in ("", "error"):
            link.listener = None  # the reset that ends check mode is ours
            try:
                link.expect_reset = True
                await link.command("$C")  # leaving check mode resets the controller
            except (DeviceError, CommunicationError) as exc:
                log.info("%s: leaving check mode: %s", drv.spec.name, exc)
        if link.listener is self:
            link.listener = None
        final = _FINAL[s.stop]
        if s.errors and final == "done":
            final = "error"
        s.state = final
        self._t_end = self._now_s()
        self._poke()
        elapsed = self._t_end - (self._t0 if self._t0 is not None else self._t_end)
        return JobOutcome(final, len(self.program.lines), s.sent, s.acked, elapsed,
                          tuple(s.errors), s.alarm, message or self._describe(final), self.mode)

    async def _finish(self, link: GrblLink) -> None:
        if self._s.sent:
            await self._safe_stop(link)
        if link.listener is self:
            link.listener = None
        self._s.state = "cancelled"
        self._t_end = self._now_s()

    def _describe(self, state: JobState) -> str:
        s = self._s
        src = self.program.source
        if state == "done":
            return f"{src}: {s.acked} lines streamed"
        if state == "error":
            if s.errors:
                e = s.errors[0]
                return f"{src}:{e.file_line}: {e.text}: error:{e.code} ({e.meaning})"
            return f"{src}: the controller stopped answering for {self.stall_timeout_s:g} s " \
                   f"after line {s.last_line}; safe stop done"
        if state == "alarm" and s.alarm is not None:
            where = f"{src}:{s.alarm.file_line}: {s.alarm.text}: " if s.alarm.file_line else \
                f"{src}: after line {s.last_line}: "
            return f"{where}ALARM:{s.alarm.code} ({s.alarm.meaning})"
        if state == "cancelled":
            return f"{src}: cancelled after line {s.last_line}; safe stop done (hold, reset)"
        if state == "reset":
            return (f"{src}: the controller reset during the job after line {s.last_line}; "
                    f"{s.sent - s.acked} line(s) in its buffer were lost (not resent)")
        return f"{src}: the link broke after line {s.last_line}: {s.broken}"

    async def _wait(self, condition: Callable[[], bool], link: GrblLink) -> None:
        """Wait until ``condition()`` or a stop; a stall (nothing heard) ends it too.
        Lines queued so far leave first, in one write."""
        if condition() or self._s.stop:
            return
        link.flush()
        while not condition() and not self._s.stop:
            self._event.clear()
            try:
                async with asyncio.timeout(0.25):
                    await self._event.wait()
            except TimeoutError:
                # a stall is a request left unanswered, not a silence: a controller that
                # was not asked (a simulator in lock-step with a virtual clock that ran on
                # between two heartbeats) is not stuck
                silent_s = link.unanswered_s()
                if silent_s > self.stall_timeout_s and (link.fifo or self._s.sent == 0):
                    self._s.stop = "stall"
                    log.warning("%s: no byte from the controller for %.1f s after a request",
                                link.name, silent_s)

    async def _stream(self, link: GrblLink) -> None:
        lines = self.program.lines
        limit = self.driver.rx_limit
        s = self._s
        for index, line in enumerate(lines):
            need = len(line.text) + 1
            forced = self.mode == "send-response" or bool(_SYNC.search(line.text))
            if forced:
                await self._wait(lambda: not link.fifo, link)
                if line.text.startswith("$") and not line.text.startswith("$J="):
                    await self._wait_still(link)  # '$' commands need Idle (else error:8)
            else:
                await self._wait(lambda n=need: link.inflight_bytes + n <= limit, link)  # type: ignore[misc]
            if s.stop:
                return
            self._pending_lines.append(index)
            link.queue_line(line.text, functools.partial(self._answered, index))
            s.sent += 1
            if forced:
                link.flush()
                await self._wait(lambda k=s.sent: s.acked >= k, link)  # type: ignore[misc]

    async def _wait_still(self, link: GrblLink) -> None:
        while not self._s.stop:
            try:
                async with asyncio.timeout(1.0):
                    st = await link.fresh_status()
            except TimeoutError:
                if link.unanswered_s() > self.stall_timeout_s:
                    self._s.stop = "stall"
                continue
            if st.state not in ("Run", "Jog", "Home"):
                return
            await asyncio.sleep(0.02)

    async def _drain(self, link: GrblLink) -> None:
        s = self._s
        await self._wait(lambda: s.acked >= s.sent or not self._pending_lines, link)

    async def _poll_status(self, link: GrblLink) -> None:
        """Ask for a report every ``status_interval_ms`` (state for progress, and a heartbeat
        that tells a busy controller from a stuck one)."""
        interval = self.driver.options.status_interval_ms / 1e3
        while True:
            await asyncio.sleep(interval)
            if link.dead is not None:
                return
            if not link.homing and not link.critical:
                try:
                    link.write(b"?")
                except CommunicationError:
                    return

    async def _safe_stop(self, link: GrblLink) -> None:
        """Feed hold, wait for the machine to stand (Hold:0, or Idle/Check/Alarm), soft reset."""
        if link.dead is not None:
            return
        name = self.driver.spec.name
        self._s.state = "stopping"
        try:
            link.write(b"!")
            loop = asyncio.get_running_loop()  # real waits on a real link: the loop's time
            deadline = loop.time() + self.stop_timeout_s
            while loop.time() < deadline:
                try:
                    async with asyncio.timeout(0.5):
                        st = await link.fresh_status()
                except TimeoutError:
                    continue
                if (st.state == "Hold" and st.substate == 0) or st.state in (
                        "Idle", "Check", "Alarm"):
                    break
                await asyncio.sleep(0.02)
            else:
                log.warning("%s: no Hold:0 within %.1f s; resetting anyway", name,
                            self.stop_timeout_s)
            link.expect_reset = True
            banners = link.banners
            link.write(b"\x18")
            deadline = loop.time() + max(0.5, min(2.0, self.stop_timeout_s))
            while link.banners == banners and loop.time() < deadline:
                await asyncio.sleep(0.01)
            if link.banners == banners:
                raise DeviceTimeoutError("no banner after the soft reset", device=name)
        except CommunicationError as exc:
            log.warning("%s: safe stop incomplete: %s", name, exc)
