"""A pyserial port read as lines on the event loop.

Ports with a file descriptor (device paths and ptys, ``socket://``) are read without a
thread: the descriptor is non-blocking and the event loop calls back when bytes arrive
(``loop.add_reader``), so a poll costs one write and one wake-up. Ports without one
(``rfc2217://``, ``loop://``) are read by a small thread that hands bytes to the loop.
Either way, bytes land in one buffer that is cut into lines at the reply terminator: a
streaming instrument's lines go to a callback, a polled instrument's reply wakes the one
exchange in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from ...core import LinkBrokenError, ProtocolError

__all__ = ["LinePort", "ReplyTimeout"]

log = logging.getLogger(__name__)


class ReplyTimeout(Exception):  # noqa: N818  (internal signal, not an error of the tree)
    """No complete reply line before the deadline; ``partial`` is what did arrive."""

    def __init__(self, partial: bytes) -> None:
        super().__init__(partial)
        self.partial = partial


class LinePort:
    """Lines in, frames out, on one pyserial port (opened by the caller)."""

    def __init__(self, ser: Any, loop: asyncio.AbstractEventLoop, reply_end: bytes,
                 max_line: int, *, on_line: Callable[[bytes, int], None] | None = None,
                 on_lost: Callable[[BaseException], None] | None = None,
                 wall_ns: Callable[[], int] | None = None) -> None:
        self.ser = ser
        self.loop = loop
        self.end = reply_end
        self.max_line = max_line
        self.on_line = on_line  # streaming: every line, with the time it arrived
        self.on_lost = on_lost
        self._wall_ns = wall_ns
        self.buf = bytearray()
        self.stale_bytes = 0
        self._waiter: asyncio.Future[None] | None = None
        # one deadline timer, re-armed lazily: a poll costs no timer of its own
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        self._fd: int | None = None
        self._thread: threading.Thread | None = None
        try:
            fd = ser.fileno()
        except (AttributeError, OSError, NotImplementedError, ValueError):
            fd = None
        if isinstance(fd, int) and fd >= 0:
            self._fd = fd
            os.set_blocking(fd, False)
            loop.add_reader(fd, self._readable)
        else:
            ser.timeout = 0.05
            self._thread = threading.Thread(target=self._pump, daemon=True,
                                            name="smartline-serial-reader")
            self._thread.start()

    # -- receiving -------------------------------------------------------------------------
    def _readable(self) -> None:
        assert self._fd is not None
        try:
            data = os.read(self._fd, 65536)
        except BlockingIOError:
            return
        except OSError as exc:
            self._lost(exc)
            return
        if not data:
            self._lost(LinkBrokenError("the port was closed by the other side (end of file)"))
            return
        self._feed(data)

    def _pump(self) -> None:
        """The reader thread of a port without a file descriptor."""
        ser = self.ser
        while not self._closed:
            try:
                data = ser.read(max(1, ser.in_waiting))
            except Exception as exc:  # the port died (or was closed under us)
                if not self._closed:
                    with contextlib.suppress(RuntimeError):
                        self.loop.call_soon_threadsafe(self._lost, exc)
                return
            if data and not self._closed:
                try:
                    self.loop.call_soon_threadsafe(self._feed, data)
                except RuntimeError:  # the loop is gone
                    return

    def _feed(self, data: bytes) -> None:
        if self._closed:
            return
        self.buf += data
        if self.on_line is not None:
            self._cut_lines()
        elif self._waiter is not None and not self._waiter.done() and (
                self.end in self.buf or len(self.buf) > self.max_line):
            self._waiter.set_result(None)
        elif self._waiter is None and len(self.buf) > 4 * self.max_line:
            # a polled instrument talking on its own between polls: keep the newest bytes
            # only (the next poll drains them anyway)
            drop = len(self.buf) - self.max_line
            self.stale_bytes += drop
            del self.buf[:drop]

    def _cut_lines(self) -> None:
        assert self.on_line is not None
        now = self._wall_ns() if self._wall_ns is not None else 0
        while True:
            i = self.buf.find(self.end)
            if i < 0:
                if len(self.buf) > self.max_line:  # no terminator in sight: noise
                    line = bytes(self.buf)
                    self.buf.clear()
                    self.on_line(line, now)
                return
            line = bytes(self.buf[:i])
            del self.buf[:i + len(self.end)]
            self.on_line(line, now)

    def _lost(self, exc: BaseException) -> None:
        if self._closed:
            return
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc if isinstance(exc, LinkBrokenError)
                                 else LinkBrokenError(f"serial port failed: {exc}"))
        self._stop_reading()
        if self.on_lost is not None:
            self.on_lost(exc)

    # -- sending ---------------------------------------------------------------------------
    def drain(self) -> int:
        """Throw away whatever arrived unasked (a late reply, noise): the next reply starts
        clean. Returns the number of bytes dropped."""
        if self._fd is not None:
            while True:
                try:
                    data = os.read(self._fd, 65536)
                except (BlockingIOError, OSError):
                    break
                if not data:
                    break
                self.buf += data
        n = len(self.buf)
        if n:
            self.stale_bytes += n
            log.debug("dropped %d stale bytes: %r", n, bytes(self.buf[:64]))
            self.buf.clear()
        return n

    def write(self, data: bytes) -> None:
        """Send ``data`` now (short frames: the kernel buffer takes them whole)."""
        if self._closed:
            raise LinkBrokenError("the serial port is closed")
        if self._fd is None:
            self.ser.write(data)
            return
        view = memoryview(data)
        tries = 0
        while view:
            try:
                n = os.write(self._fd, view)
            except BlockingIOError:
                tries += 1
                if tries > 1000:
                    raise LinkBrokenError("the serial port does not take data") from None
                continue
            view = view[n:]

    async def reply(self, deadline: float) -> bytes:
        """The next line (without its terminator), waiting until the loop time
        ``deadline``; raises :class:`ReplyTimeout` with what arrived, ``ProtocolError`` for
        a line longer than ``max_line``, ``LinkBrokenError`` if the port dies."""
        while True:
            i = self.buf.find(self.end)
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + len(self.end)]
                return line
            if len(self.buf) > self.max_line:
                junk = bytes(self.buf[:64])
                self.buf.clear()
                raise ProtocolError(f"reply longer than {self.max_line} bytes without "
                                    f"its terminator: {junk!r}...")
            if self._closed:
                raise LinkBrokenError("the serial port is closed")
            waiter = self.loop.create_future()
            self._waiter = waiter
            self._arm(deadline)
            try:
                await waiter
            finally:
                self._waiter = None
            if waiter.result() is False:  # the deadline passed
                if self.end in self.buf:
                    continue
                raise ReplyTimeout(bytes(self.buf))

    def _arm(self, deadline: float) -> None:
        self._deadline = deadline
        timer = self._timer
        if timer is not None and timer.when() > deadline:
            timer.cancel()
            timer = self._timer = None
        if timer is None:
            self._timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        """The deadline timer fired: expire the waiter whose deadline passed, or wait on
        for the current one (set since the timer was armed)."""
        self._timer = None
        waiter = self._waiter
        if waiter is None or waiter.done() or self._closed:
            return
        if self.loop.time() >= self._deadline - 1e-6:
            waiter.set_result(False)  # type: ignore[arg-type]
        else:
            self._timer = self.loop.call_at(self._deadline, self._on_timer)

    # -- closing ---------------------------------------------------------------------------
    def _stop_reading(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(Exception):
                self.loop.remove_reader(self._fd)

    def close(self) -> None:
        """Stop reading and close the port (idempotent, never raises)."""
        if self._closed:
            return
        self._closed = True
        self._stop_reading()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(LinkBrokenError("the serial port was closed"))
        with contextlib.suppress(Exception):
            self.ser.close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=0.5)
