"""A simulated GRBL controller on a pty (``os.openpty``, raw) or a TCP socket (``socket://``).

One thread owns the controller: it reads every byte as soon as it arrives (the serial
interrupt), services the controller, and writes what it says. The thread never shares the
controller with the caller except under :attr:`GrblSim.lock`, so tests may look inside.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import socket
import tempfile
import threading
import time
import tty
from collections import deque
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

from smartline.core import Clock, MonotonicClock, VirtualClock

from ._controller import GrblController, GrblFaults

__all__ = ["GrblSim"]

Transport = Literal["pty", "tcp"]


class GrblSim:
    """A GRBL 1.1 controller served on a pty (default) or on ``socket://host:port``.

    ``clock``: the controller's clock — real time by default; a :class:`VirtualClock`
    freezes motion until the test calls :meth:`advance`, or, with ``fast_forward``, jumps
    to the next motion event whenever no byte is waiting (jobs run as fast as the link).
    ``link_latency_s`` models a USB-serial adapter (an FTDI or CH340 adds about 1 ms per
    direction). :attr:`url` is what a line file puts in ``url:``.

    ``lockstep``: a :class:`VirtualClock` that someone else advances (a scenario in
    lock-step with a line). The controller then speaks only when bytes arrive: everything it
    says — answers, and what it would push by itself (``ALARM:N``, the banner after a
    power-up, the ``ok`` of a finished dwell) — leaves with the answer to the line's next
    bytes, at the virtual time of that request. A line whose I/O takes no virtual time
    thus sees the same bytes at the same virtual times on every run; a serving thread that
    woke on its own would hand them over at whatever virtual time the line had reached.
    """

    def __init__(self, controller: GrblController | None = None, *,
                 transport: Transport = "pty", clock: Clock | None = None,
                 fast_forward: bool = False, link_latency_s: float = 0.0,
                 host: str = "127.0.0.1", port: int = 0,
                 settings: dict[int, float] | None = None,
                 faults: GrblFaults | None = None, lockstep: bool = False) -> None:
        if controller is None:
            controller = GrblController(clock if clock is not None else MonotonicClock(),
                                        settings=settings, faults=faults)
        self.controller = controller
        self.clock = controller.clock
        if (fast_forward or lockstep) and not isinstance(self.clock, VirtualClock):
            raise ValueError("fast_forward and lockstep need a VirtualClock")
        if fast_forward and lockstep:
            raise ValueError("fast_forward moves the clock; lockstep leaves it to its owner")
        self.fast_forward = fast_forward
        self.lockstep = lockstep
        self.transport: Transport = transport
        self.link_latency_s = link_latency_s
        self.lock = threading.RLock()
        self.port = ""  # the pyserial port: a pty path (a stable symlink) or socket://host:port
        self.bytes_in = 0
        self.bytes_out = 0
        self._host, self._tcp_port = host, port
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._sel: selectors.DefaultSelector | None = None
        self._wake_r = self._wake_w = -1
        self._master = self._slave = -1
        self._dir: Path | None = None
        self._listener: socket.socket | None = None
        self._client: socket.socket | None = None
        self._inbound: deque[tuple[float, bytes]] = deque()
        self._outbound: deque[tuple[float, bytes]] = deque()
        self._pending_out = b""

    @property
    def faults(self) -> GrblFaults:
        return self.controller.faults

    @property
    def url(self) -> str:
        """``grbl://PORT`` for a line file or a :class:`~smartline.core.DeviceSpec`."""
        return f"grbl://{self.port}"

    # -- life cycle --------------------------------------------------------------------
    def start(self) -> Self:
        """Open the pty or the listening socket and start serving."""
        if self._thread is not None:
            return self
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        if self.transport == "pty":
            self._dir = Path(tempfile.mkdtemp(prefix="smartline-grbl-"))
            self.port = str(self._dir / "ttyGRBL")
            self._open_pty()
        else:
            self._listener = socket.create_server((self._host, self._tcp_port))
            self._listener.setblocking(False)
            host, port = self._listener.getsockname()[:2]
            self.port = f"socket://{host}:{port}"
            self._sel.register(self._listener, selectors.EVENT_READ, "accept")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="grbl-sim", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the pty or socket (idempotent)."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        self._wake()
        thread.join(timeout=5)
        self._close_link()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        if self._sel is not None:
            self._sel.close()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return self.start()

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.stop()

    # -- what tests do -----------------------------------------------------------------
    def advance(self, seconds: float) -> None:
        """Move a virtual clock forward (motion, holds and dwells progress)."""
        if not isinstance(self.clock, VirtualClock):
            raise TypeError("advance() needs a VirtualClock")
        with self.lock:
            self.clock.advance_ns(int(seconds * 1e9))
            self.controller.service()
        self._wake()

    def hard_reset(self) -> None:
        """The reset button (or a power glitch): the banner, every queue flushed."""
        with self.lock:
            self.controller.soft_reset(power=True)
        self._wake()

    def inject(self, data: bytes) -> None:
        """Send raw bytes to the client (noise on the line)."""
        with self.lock:
            self._outbound.append((time.monotonic(), data))
        self._wake()

    def drop_link(self) -> None:
        """Cut the line: the client's port fails; a new connection (or pty) is offered."""
        with self.lock:
            self._close_link()
            if self.transport == "pty":
                self._open_pty()
        self._wake()

    def set_fast_forward(self, on: bool) -> None:
        """Switch fast-forward of a virtual clock on or off while running."""
        if on and not isinstance(self.clock, VirtualClock):
            raise ValueError("fast_forward needs a VirtualClock")
        self.fast_forward = on
        self._wake()

    # -- machinery ---------------------------------------------------------------------
    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def _open_pty(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        link = Path(self.port)
        tmp = link.with_suffix(".new")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(os.ttyname(slave))
        tmp.replace(link)
        assert self._sel is not None
        self._sel.register(master, selectors.EVENT_READ, "data")

    def _close_link(self) -> None:
        if self._sel is not None:
            for fd in (self._master, self._client):
                if fd is not None and fd != -1:
                    with contextlib.suppress(KeyError, ValueError, OSError):
                        self._sel.unregister(fd)
        for fd in (self._master, self._slave):
            if fd != -1:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = -1
        if self._client is not None:
            with contextlib.suppress(OSError):
                self._client.close()
            self._client = None
        self._inbound.clear()
        self._outbound.clear()
        self._pending_out = b""

    def _run(self) -> None:
        sel = self._sel
        assert sel is not None
        while not self._stop.is_set():
            timeout = self._timeout()
            got_data = False
            for key, _ in sel.select(timeout):
                if key.data == "wake":
                    with contextlib.suppress(OSError):
                        os.read(self._wake_r, 4096)
                elif key.data == "accept":
                    self._accept()
                else:
                    got_data |= self._read(key.fileobj)
            with self.lock:
                now = time.monotonic()
                heard = got_data and self.link_latency_s <= 0
                while self._inbound and self._inbound[0][0] <= now:
                    self.controller.receive(self._inbound.popleft()[1])
                    heard = True
                if self.lockstep and not heard:
                    self._flush(now)  # what was already said (latency, injected noise)
                    continue
                if self.fast_forward and not got_data and not self._inbound:
                    nxt = self.controller.next_event_ns()
                    if nxt is not None and isinstance(self.clock, VirtualClock):
                        self.clock.set_ns(nxt)
                self.controller.service()
                out = self.controller.take_output()
                if out:
                    delay = self.link_latency_s + self.controller.faults.latency_s
                    self._outbound.append((now + delay, out))
                self._flush(now)

    def _timeout(self) -> float:
        now = time.monotonic()
        t = 0.05
        if self._inbound:
            t = min(t, self._inbound[0][0] - now)
        if self._outbound or self._pending_out:
            t = min(t, (self._outbound[0][0] - now) if self._outbound else 0.001)
        with self.lock:
            nxt = self.controller.next_event_ns()
            if nxt is not None:
                if self.fast_forward:
                    t = 0.0
                elif not isinstance(self.clock, VirtualClock):
                    t = min(t, (nxt - self.clock.now_ns()) / 1e9)
        return max(0.0, t)

    def _accept(self) -> None:
        assert self._listener is not None and self._sel is not None
        try:
            conn, _ = self._listener.accept()
        except OSError:
            return
        if self._client is not None:  # a serial server serves one client: the newest
            self._close_link()
        conn.setblocking(False)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._client = conn
        self._sel.register(conn, selectors.EVENT_READ, "data")

    def _read(self, fileobj: object) -> bool:
        try:
            if isinstance(fileobj, socket.socket):
                data = fileobj.recv(4096)
                if not data:
                    with self.lock:
                        self._close_link()
                    return False
            else:
                assert isinstance(fileobj, int)
                data = os.read(fileobj, 4096)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:  # the pty's other side is closed: nobody listens yet
            return False
        self.bytes_in += len(data)
        due = time.monotonic() + self.link_latency_s
        with self.lock:
            if self.link_latency_s > 0:
                self._inbound.append((due, data))
            else:
                self.controller.receive(data)
        return True

    def _flush(self, now: float) -> None:
        while self._outbound and self._outbound[0][0] <= now:
            self._pending_out += self._outbound.popleft()[1]
        if not self._pending_out:
            return
        try:
            if self._client is not None:
                n = self._client.send(self._pending_out)
            elif self._master != -1:
                n = os.write(self._master, self._pending_out)
            else:
                self._pending_out = b""
                return
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._pending_out = b""
            return
        self.bytes_out += n
        self._pending_out = self._pending_out[n:]
