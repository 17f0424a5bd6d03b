"""Serving a simulated instrument: on a pty (``os.openpty``, raw), as ``socket://`` (TCP,
the same byte stream) and as ``rfc2217://`` (pyserial's RFC 2217 port manager in front of a
second pty). One thread owns the wire; replies due later (latency) wait in a queue.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import multiprocessing
import os
import selectors
import socket
import threading
import time
import tty
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from smartline.config import Profile, load_profile

from ._instrument import Behaviour, Instrument, Value

__all__ = ["SerialInstrumentSim", "SimProcess"]

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Channel:
    """One way in: the pty master or a TCP client."""

    fd: int
    kind: str  # "pty", "rfc-pty", "tcp"
    sock: socket.socket | None = None
    inbuf: bytearray = field(default_factory=bytearray)

    def send(self, data: bytes) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.sendall(data)
            return
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.fd, view):]
            except BlockingIOError:
                time.sleep(0.0005)
            except OSError:
                return


class SerialInstrumentSim:
    """A profile's instrument on a pty, on TCP and (on request) on RFC 2217.

    ``sim.instrument`` holds the state and the faults (:class:`Instrument`);
    :attr:`pty_path`, :meth:`socket_url` and :meth:`rfc2217_url` are the ports a driver
    opens (``serial://`` + any of them). Streaming instruments print with :meth:`scan`
    (or :meth:`emit` for any line) and can go silent with :meth:`stop_stream`.
    """

    def __init__(self, profile: Profile | str | Path, *, behaviour: Behaviour | None = None,
                 station: int | None = None, tcp: bool = True) -> None:
        if not isinstance(profile, Profile):
            profile = load_profile(profile)
        self.instrument = Instrument(profile, behaviour=behaviour, station=station)
        self.protocol = self.instrument.protocol
        self._tcp = tcp
        self._sel = selectors.DefaultSelector()
        self._channels: dict[int, _Channel] = {}
        self._due: list[tuple[float, int, int, bytes]] = []
        self._seq = 0
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._thread: threading.Thread | None = None
        self._running = False
        self._listener: socket.socket | None = None
        self._slave = -1
        self._master = -1
        self.pty_path = ""
        self.tcp_port = 0
        self.streaming = True  # False: the instrument stopped printing (a stream fault)
        self._rfc: _Rfc2217Bridge | None = None
        self._lock = threading.Lock()
        self._kicks: list[threading.Event] = []

    # -- life --------------------------------------------------------------------------------
    def start(self) -> Self:
        master, slave = os.openpty()
        tty.setraw(master)
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self.pty_path = os.ttyname(slave)
        self._add(_Channel(master, "pty"))
        if self._tcp:
            lst = socket.create_server(("127.0.0.1", 0))
            lst.setblocking(False)
            self._listener = lst
            self.tcp_port = lst.getsockname()[1]
            self._sel.register(lst, selectors.EVENT_READ, "listen")
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._running = True
        self._thread = threading.Thread(target=self._serve, daemon=True,
                                        name=f"serial-sim-{self.instrument.profile.name}")
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and release the pty and sockets (idempotent)."""
        if not self._running:
            return
        self._running = False
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        if self._rfc is not None:
            self._rfc.close()
        for ch in list(self._channels.values()):
            self._drop(ch)
        if self._listener is not None:
            self._listener.close()
        for fd in (self._slave, self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._sel.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self.start()

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.close()

    # -- addresses ---------------------------------------------------------------------------
    def socket_url(self) -> str:
        return f"socket://127.0.0.1:{self.tcp_port}"

    def rfc2217_url(self) -> str:
        """Start (once) an RFC 2217 server in front of the instrument; its pyserial URL."""
        if self._rfc is None:
            master, slave = os.openpty()
            tty.setraw(master)
            tty.setraw(slave)
            os.set_blocking(master, False)
            self._add(_Channel(master, "rfc-pty"))
            self._wake()
            self._rfc = _Rfc2217Bridge(os.ttyname(slave), slave)
        return f"rfc2217://127.0.0.1:{self._rfc.port}"

    # -- what tests use ----------------------------------------------------------------------
    def set(self, name: str, value: Value) -> None:
        self.instrument.set(name, value)

    def emit(self, text: str) -> None:
        """The instrument prints ``text`` as one line (on every connection), unless its
        stream was stopped."""
        if not self.streaming:
            return
        with self.instrument.lock:
            data = self.instrument.stream_line(text)
        self._schedule_all(data, 0.0)

    def scan(self, code: str) -> None:
        """A scanner reads ``code`` (its AIM identifier included) and prints it."""
        self.instrument.values["code"] = code
        self.emit(code)

    def stop_stream(self) -> None:
        self.streaming = False

    def resume_stream(self) -> None:
        self.streaming = True

    def connections(self) -> int:
        """TCP clients connected now (``socket://``)."""
        with self._lock:
            return sum(1 for c in self._channels.values() if c.kind == "tcp")

    def kick(self) -> None:
        """Close every TCP connection (the device server restarted); the pty stays.
        Returns once they are closed."""
        done = threading.Event()
        with self._lock:
            self._kicks.append(done)
        self._wake()
        done.wait(2.0)

    # -- the thread --------------------------------------------------------------------------
    def _add(self, ch: _Channel) -> None:
        with self._lock:
            self._channels[ch.fd] = ch
        self._sel.register(ch.sock if ch.sock is not None else ch.fd, selectors.EVENT_READ,
                           ch)

    def _drop(self, ch: _Channel) -> None:
        with self._lock:
            self._channels.pop(ch.fd, None)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._sel.unregister(ch.sock if ch.sock is not None else ch.fd)
        if ch.sock is not None:
            with contextlib.suppress(OSError):
                ch.sock.close()
        else:
            with contextlib.suppress(OSError):
                os.close(ch.fd)

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def _schedule_all(self, data: bytes, delay_s: float) -> None:
        with self._lock:
            fds = list(self._channels)
        for fd in fds:
            self._schedule(fd, data, delay_s)
        self._wake()

    def _schedule(self, fd: int, data: bytes, delay_s: float) -> None:
        with self._lock:
            self._seq += 1
            heapq.heappush(self._due, (time.monotonic() + delay_s, self._seq, fd, data))

    def _serve(self) -> None:
        term = self.protocol.terminator.encode(self.protocol.encoding)
        while self._running:
            with self._lock:
                nxt = self._due[0][0] if self._due else None
            timeout = None if nxt is None else max(0.0, nxt - time.monotonic())
            for key, _ in self._sel.select(timeout):
                data = key.data
                if data == "wake":
                    with contextlib.suppress(OSError):
                        os.read(self._wake_r, 4096)
                elif data == "listen":
                    assert self._listener is not None
                    with contextlib.suppress(OSError):
                        conn, _ = self._listener.accept()
                        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                        self._add(_Channel(conn.fileno(), "tcp", conn))
                elif isinstance(data, _Channel):
                    self._receive(data, term)
            if self._kicks:
                with self._lock:
                    kicks, self._kicks = self._kicks, []
                    tcp = [c for c in self._channels.values() if c.kind == "tcp"]
                for ch in tcp:
                    self._drop(ch)
                for done in kicks:
                    done.set()
            self._flush_due()

    def _receive(self, ch: _Channel, term: bytes) -> None:
        try:
            data = ch.sock.recv(65536) if ch.sock is not None else os.read(ch.fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            if ch.kind == "tcp":
                self._drop(ch)
            else:  # a pty with no reader (EIO): wait for the next opener
                time.sleep(0.005)
            return
        ch.inbuf += data
        while True:
            i = ch.inbuf.find(term)
            if i < 0:
                if len(ch.inbuf) > 4096:
                    ch.inbuf.clear()
                return
            line = bytes(ch.inbuf[:i])
            del ch.inbuf[:i + len(term)]
            try:
                reply = self.instrument.handle(line)
            except Exception:  # a fault of the simulator must not end its thread
                log.exception("serial sim: handling %r failed", line)
                continue
            if self.instrument.outbox:
                with self.instrument.lock:
                    out, self.instrument.outbox = self.instrument.outbox, []
                for data in out:
                    if self.streaming:
                        self._schedule_all(data, 0.0)
            if reply is None:
                continue
            delay = self.instrument.latency_s
            if delay <= 0:
                ch.send(reply)
            else:
                self._schedule(ch.fd, reply, delay)

    def _flush_due(self) -> None:
        now = time.monotonic()
        while True:
            with self._lock:
                if not self._due or self._due[0][0] > now:
                    return
                _, _, fd, data = heapq.heappop(self._due)
                ch = self._channels.get(fd)
            if ch is not None:
                ch.send(data)


class _Rfc2217Bridge:
    """An RFC 2217 server (pyserial's :class:`serial.rfc2217.PortManager`) in front of a
    pty the simulator serves: one client at a time, two pumping threads."""

    def __init__(self, path: str, slave_fd: int) -> None:
        self.path = path
        self._slave_fd = slave_fd  # kept open so the pty survives between clients
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._running = True
        self._conn: socket.socket | None = None
        self._thread = threading.Thread(target=self._accept, daemon=True,
                                        name="serial-sim-rfc2217")
        self._thread.start()

    def _accept(self) -> None:
        import serial
        import serial.rfc2217

        self._listener.settimeout(0.05)
        while self._running:
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._conn = conn
            ser = _pty_serial(serial.Serial)(self.path, timeout=0.05)

            pm = serial.rfc2217.PortManager(ser, _Writer(conn))
            alive = threading.Event()
            alive.set()

            def to_net(ser: Any = ser, pm: Any = pm, alive: threading.Event = alive,
                       conn: socket.socket = conn) -> None:
                while alive.is_set():
                    try:
                        data = ser.read(ser.in_waiting or 1)
                    except Exception:
                        return
                    if data:
                        with contextlib.suppress(OSError):
                            conn.sendall(b"".join(pm.escape(data)))

            pump = threading.Thread(target=to_net, daemon=True)
            pump.start()
            try:
                conn.settimeout(0.05)
                while self._running:
                    try:
                        data = conn.recv(4096)
                    except TimeoutError:
                        continue
                    if not data:
                        break
                    ser.write(b"".join(pm.filter(data)))
            except OSError as exc:
                log.debug("rfc2217 client ended: %r", exc)
            finally:
                alive.clear()
                pump.join(timeout=1.0)
                with contextlib.suppress(Exception):
                    ser.close()
                with contextlib.suppress(OSError):
                    conn.close()
                self._conn = None

    def close(self) -> None:
        self._running = False
        with contextlib.suppress(OSError):
            self._listener.close()
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=2.0)
        with contextlib.suppress(OSError):
            os.close(self._slave_fd)


class _Writer:
    """The connection object pyserial's PortManager writes telnet answers to."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn

    def write(self, data: bytes) -> None:
        with contextlib.suppress(OSError):
            self.conn.sendall(data)


def _pty_serial(base: type[Any]) -> type[Any]:
    """pyserial's port class for a pty: a pty has no modem lines (their ioctls fail with
    ENOTTY), so RTS/DTR/break settings an RFC 2217 client sends are accepted and dropped."""

    class PtySerial(base):  # type: ignore[misc,valid-type]
        def _update_rts_state(self) -> None:
            pass

        def _update_dtr_state(self) -> None:
            pass

        def _update_break_state(self) -> None:
            pass

        @property
        def cts(self) -> bool:
            return True

        @property
        def dsr(self) -> bool:
            return True

        @property
        def ri(self) -> bool:
            return False

        @property
        def cd(self) -> bool:
            return True

    return PtySerial


# -- in another process ------------------------------------------------------------------------

def _child(profile_path: str, conn: Any) -> None:
    sim = SerialInstrumentSim(profile_path).start()
    conn.send({"pty": sim.pty_path, "socket": sim.socket_url()})
    with contextlib.suppress(EOFError, OSError):
        conn.recv()  # any message (or the parent going away): stop
    sim.close()


class SimProcess:
    """A :class:`SerialInstrumentSim` in a separate process (its own interpreter and GIL),
    for benchmarks: ``with SimProcess(path) as urls: urls["pty"]``."""

    def __init__(self, profile_path: str | Path) -> None:
        self.profile_path = str(profile_path)
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_child, args=(self.profile_path, child), daemon=True)

    def __enter__(self) -> dict[str, str]:
        self._proc.start()
        if not self._conn.poll(30):
            self._proc.kill()
            raise RuntimeError("the simulator process did not start")
        urls: dict[str, str] = self._conn.recv()
        return urls

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        with contextlib.suppress(OSError):
            self._conn.send("stop")
        self._proc.join(timeout=5)
        if self._proc.is_alive():
            self._proc.kill()
