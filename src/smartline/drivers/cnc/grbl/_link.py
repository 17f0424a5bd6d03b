"""The GRBL serial link: one reader thread, and the character-counting FIFO on the event loop.

The reader thread blocks in pyserial's ``read`` and hands whole lines to the event loop
(``call_soon_threadsafe``, in batches); everything else — the FIFO of line lengths sent
but not yet answered, status waiters, cached reports and settings, listeners of a running
job — lives on the loop, so it needs no locks. Writes are small (at most the controller's
receive buffer is ever outstanding) and go straight to the port from the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from smartline.core import (
    CommunicationError,
    DeviceError,
    LinkBrokenError,
    ProtocolError,
)

from ._codes import CRITICAL_ALARMS, alarm_meaning, error_meaning
from ._protocol import GrblStatus, Kind, classify, parse_status

__all__ = ["ControllerResetError", "GrblLink", "LinkListener"]

log = logging.getLogger(__name__)

_MAX_LINE_BYTES = 1024  # a line longer than this from the controller is garbage


class ControllerResetError(DeviceError):
    """The controller reset (its banner arrived) before it answered a line: the line is lost."""


class LinkListener(Protocol):
    """What a running job hears from the link besides the answers to its own lines."""

    def on_alarm(self, code: int) -> None: ...

    def on_reset(self) -> None: ...

    def on_broken(self, exc: BaseException) -> None: ...


@dataclass(slots=True)
class _Entry:
    """A line sent and not yet answered."""

    length: int  # bytes on the wire, newline included
    text: str
    future: asyncio.Future[None] | None = None
    on_answer: Callable[[int | None], None] | None = None  # error code, None for ok


class GrblLink:
    """An open serial port to a GRBL controller and what the driver knows about it."""

    def __init__(self, port: Any, loop: asyncio.AbstractEventLoop, name: str,
                 on_lost: Callable[[BaseException], None], now_ns: Callable[[], int]) -> None:
        self.port = port
        self.loop = loop
        self.name = name
        self._on_lost = on_lost
        self._now_ns = now_ns
        self.fifo: deque[_Entry] = deque()
        self.inflight_bytes = 0
        self.status: GrblStatus | None = None
        self.status_ns = 0  # monotonic time the last report arrived
        self.wco: tuple[float, ...] = (0.0, 0.0, 0.0)
        self.wco_known = False
        self.overrides: tuple[int, int, int] | None = None
        self.accessories: str | None = None
        self.settings: dict[int, float] = {}
        self.settings_ns = 0
        self.alarm = 0
        self.critical = False  # after ALARM:1/2 nothing is answered until a reset
        self.homing = False
        self.version = ""
        self.banners = 0
        self.expect_reset = False
        self.last_message = ""
        self.feedback: dict[str, str] = {}
        self.last_rx_ns = now_ns()
        #: when the first byte written since the controller last spoke left (None: nothing
        #: written since): what :meth:`unanswered_s` measures a silence from
        self.asked_ns: int | None = None
        self.lines_in = 0
        self.bytes_out = 0
        self.unmatched = 0  # answers that arrived with nothing outstanding
        self.listener: LinkListener | None = None
        self.dead: BaseException | None = None
        self._status_waiters: list[asyncio.Future[GrblStatus]] = []
        self._drained: list[asyncio.Future[None]] = []
        self._changed = asyncio.Event()
        self._outbuf = bytearray()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._reader, name=f"grbl-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Stop the reader and close the port (called through ``run_blocking``)."""
        self._stop.set()
        try:
            cancel = getattr(self.port, "cancel_read", None)
            if cancel is not None:
                cancel()
        except Exception:
            pass
        try:
            self.port.close()
        finally:
            self._thread.join(timeout=1.0)

    # -- the reader thread ---------------------------------------------------------------
    def _reader(self) -> None:
        buf = bytearray()
        port = self.port
        try:
            while not self._stop.is_set():
                chunk = port.read(max(1, port.in_waiting))
                if not chunk:
                    continue
                buf += chunk
                if b"\n" not in chunk:
                    if len(buf) > _MAX_LINE_BYTES:
                        raise ProtocolError(f"{len(buf)} bytes without a line end from the "
                                            f"controller: {bytes(buf[:40])!r}")
                    continue
                *lines, rest = bytes(buf).split(b"\n")
                buf = bytearray(rest)
                self.loop.call_soon_threadsafe(self._on_lines, lines)
        except Exception as exc:
            if not self._stop.is_set():
                err = exc if isinstance(exc, CommunicationError) else LinkBrokenError(
                    f"serial port failed: {exc}")
                err.__cause__ = exc
                with contextlib.suppress(RuntimeError):  # a closed loop: nobody listens
                    self.loop.call_soon_threadsafe(self._fail, err)

    # -- on the event loop ---------------------------------------------------------------
    def _on_lines(self, raw_lines: list[bytes]) -> None:
        if self.dead is not None:
            return
        now = self._now_ns()
        self.last_rx_ns = now
        self.asked_ns = None
        for raw in raw_lines:
            self.lines_in += 1
            try:
                text = raw.rstrip(b"\r").decode("ascii")
            except UnicodeDecodeError:
                self._fail(ProtocolError(f"bytes that are not GRBL's from the controller: "
                                         f"{raw[:40]!r}", device=self.name))
                return
            kind, payload = classify(text)
            if kind is Kind.GARBAGE:
                self._fail(ProtocolError(f"a line that is not GRBL's from the controller: "
                                         f"{text[:60]!r}", device=self.name))
                return
            self._handle(kind, payload, text, now)
        self._changed.set()

    def _handle(self, kind: Kind, payload: object, text: str, now: int) -> None:
        if kind is Kind.OK or kind is Kind.ERROR:
            code = payload if isinstance(payload, int) else None
            self._answer(code)
        elif kind is Kind.STATUS:
            try:
                st = parse_status(text)
            except ValueError as exc:
                self._fail(ProtocolError(f"bad status report {text[:60]!r}: {exc}",
                                         device=self.name))
                return
            self._take_status(st, now)
        elif kind is Kind.ALARM:
            assert isinstance(payload, int)
            self.alarm = payload
            self.critical = payload in CRITICAL_ALARMS
            self.homing = False
            log.warning("%s: ALARM:%d (%s)", self.name, payload, alarm_meaning(payload))
            if self.critical:  # nothing outstanding will be answered before a reset
                for e in self.fifo:
                    if e.future is not None and not e.future.done():
                        e.future.set_exception(DeviceError(
                            f"{e.text!r} not answered: ALARM:{payload} "
                            f"({alarm_meaning(payload)}); a soft reset is needed",
                            code=payload, device=self.name))
                # nor is a '?': GRBL sends no report until the reset
                waiters, self._status_waiters = self._status_waiters, []
                for w in waiters:
                    if not w.done():
                        w.set_exception(DeviceError(
                            f"no status report: ALARM:{payload} ({alarm_meaning(payload)}); "
                            "GRBL sends none until a soft reset", code=payload,
                            device=self.name))
                        w.exception()  # retrieved: a waiter that gave up must not warn
            if self.listener is not None:
                self.listener.on_alarm(payload)
        elif kind is Kind.BANNER:
            self._reset(str(payload))
        elif kind is Kind.SETTING:
            assert isinstance(payload, tuple)
            self.settings[payload[0]] = payload[1]
            self.settings_ns = now
        elif kind is Kind.MESSAGE:
            self.last_message = str(payload)
            log.info("%s: [MSG:%s]", self.name, payload)
        elif kind is Kind.FEEDBACK:
            key, _, value = text[1:-1].partition(":")
            self.feedback[key] = value  # VER, OPT, GC, G54 ... (the last of each)

    def _take_status(self, st: GrblStatus, now: int) -> None:
        self.status, self.status_ns = st, now
        if st.wco is not None:
            self.wco, self.wco_known = st.wco, True
        if st.overrides is not None:
            self.overrides, self.accessories = st.overrides, st.accessories
        if st.state != "Alarm":
            self.alarm, self.critical = 0, False
        if st.state != "Home":
            self.homing = False
        waiters, self._status_waiters = self._status_waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(st)

    def _answer(self, code: int | None) -> None:
        if not self.fifo:
            self.unmatched += 1
            log.warning("%s: an answer (%s) with no line outstanding", self.name,
                        "ok" if code is None else f"error:{code}")
            return
        e = self.fifo.popleft()
        self.inflight_bytes -= e.length
        if e.text.upper() == "$H":
            self.homing = False
        if e.future is not None and not e.future.done():
            if code is None:
                e.future.set_result(None)
            else:
                e.future.set_exception(DeviceError(
                    f"{e.text!r} refused: error:{code} ({error_meaning(code)})", code=code,
                    device=self.name))
        if e.on_answer is not None:
            e.on_answer(code)
        if not self.fifo:
            self._wake_drained()

    def _reset(self, version: str) -> None:
        """A banner: the controller flushed its buffers; lines not answered are lost."""
        self.version = version
        self.banners += 1
        expected, self.expect_reset = self.expect_reset, False
        lost = list(self.fifo)
        self.fifo.clear()
        self.inflight_bytes = 0
        self.homing = False
        self.critical = False
        self.wco_known = False
        self.overrides = None
        if lost or (not expected and self.listener is not None):
            log.warning("%s: controller reset (Grbl %s); %d line(s) unanswered are lost, "
                        "not resent", self.name, version, len(lost))
        else:
            log.info("%s: controller reset (Grbl %s)", self.name, version)
        for e in lost:
            err = ControllerResetError(f"{e.text!r} lost: the controller reset (banner) "
                                       "before answering", device=self.name)
            if e.future is not None and not e.future.done():
                e.future.set_exception(err)
        self._wake_drained()
        if self.listener is not None:  # a job ends with any reset it did not ask for itself
            self.listener.on_reset()

    def _wake_drained(self) -> None:
        waiters, self._drained = self._drained, []
        for w in waiters:
            if not w.done():
                w.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        """The link is unusable (port failed, garbage): fail everyone waiting."""
        if self.dead is not None:
            return
        self.dead = exc
        waiting: list[asyncio.Future[Any]] = [
            e.future for e in self.fifo if e.future is not None and not e.future.done()]
        waiting += [w for w in self._status_waiters if not w.done()]
        waiting += [w for w in self._drained if not w.done()]
        for fut in waiting:
            fut.set_exception(exc)
            fut.exception()  # retrieved: a waiter that gave up already must not warn
        self._status_waiters.clear()
        self._drained.clear()
        self._changed.set()
        if self.listener is not None:
            self.listener.on_broken(exc)
        if not waiting:
            self._on_lost(exc)

    # -- what the driver and jobs do -----------------------------------------------------
    def check(self) -> None:
        if self.dead is not None:
            raise self.dead

    def write(self, data: bytes) -> None:
        """Bytes to the controller, now (real-time bytes and counted lines alike)."""
        self.check()
        try:
            self.port.write(data)
        except Exception as exc:
            err = LinkBrokenError(f"write to the serial port failed: {exc}", device=self.name)
            self._fail(err)
            raise err from exc
        self.bytes_out += len(data)
        if self.asked_ns is None:
            self.asked_ns = self._now_ns()

    def unanswered_s(self) -> float:
        """Seconds since the first byte written after the controller last spoke (0 when it
        has spoken since the last write). A stuck controller leaves the line's requests
        unanswered; a controller nobody asked may be silent for as long as it likes — GRBL
        pushes nothing by itself while it moves, and a simulator in lock-step with a virtual
        clock speaks only when asked, whatever time has passed."""
        asked = self.asked_ns
        return 0.0 if asked is None else max(0, self._now_ns() - asked) / 1e9

    def send_line(self, text: str, *, future: bool = True,
                  on_answer: Callable[[int | None], None] | None = None
                  ) -> asyncio.Future[None] | None:
        """Send one line (without its newline) and count it; the future ends with its answer."""
        fut: asyncio.Future[None] | None = self.loop.create_future() if future else None
        self.queue_line(text, on_answer, fut)
        self.flush()
        return fut

    def queue_line(self, text: str, on_answer: Callable[[int | None], None] | None = None,
                   future: asyncio.Future[None] | None = None) -> None:
        """Count a line as sent and keep its bytes for the next :meth:`flush` (lines that
        fit the buffer together leave in one write)."""
        data = text.encode("ascii") + b"\n"
        self.fifo.append(_Entry(len(data), text, future, on_answer))
        self.inflight_bytes += len(data)
        self._outbuf += data

    def flush(self) -> None:
        """Write the queued lines."""
        if self._outbuf:
            data, self._outbuf = bytes(self._outbuf), bytearray()
            self.write(data)

    async def drained(self) -> None:
        """Wait until every line sent has been answered."""
        self.check()
        if not self.fifo:
            return
        fut: asyncio.Future[None] = self.loop.create_future()
        self._drained.append(fut)
        await fut

    async def command(self, text: str) -> None:
        """Send-response: wait for the buffer to be empty, send ``text``, wait for its ``ok``
        (``DeviceError`` with GRBL's meaning for ``error:N``)."""
        await self.drained()
        fut = self.send_line(text)
        assert fut is not None
        await fut

    async def fresh_status(self) -> GrblStatus:
        """Ask for a report (``?``, real-time, never counted) and wait for the next one."""
        self.check()
        fut: asyncio.Future[GrblStatus] = self.loop.create_future()
        self._status_waiters = [w for w in self._status_waiters if not w.done()]
        first = not self._status_waiters
        self._status_waiters.append(fut)
        if first:
            self.write(b"?")
        return await fut

    async def changed(self, timeout_s: float) -> None:
        """Wait until something arrives (any line) or ``timeout_s`` passes."""
        self._changed.clear()
        try:
            async with asyncio.timeout(timeout_s):
                await self._changed.wait()
        except TimeoutError:
            pass
