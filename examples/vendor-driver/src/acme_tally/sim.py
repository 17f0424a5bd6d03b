"""The ACME Tally simulator: stations of counting channels behind one TCP port.

It is written from the protocol description alone (see :mod:`acme_tally.driver` for the
wire format) and imports nothing from the driver, its grammar or smartline: a formatting
bug cannot hide by being made the same way in both directions.

In a test, run it in process (``async with TallySim() as sim: ... sim.url()``) and inject
faults through :attr:`TallySim.faults`; from a shell, ``python -m acme_tally.sim --port 0``
prints one JSON line per station, ``{"device": "tally", "url": "acme+tcp://..."}``, and
serves until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import re
import signal
import sys
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["KINDS", "STATUS_READY", "STATUS_RUNNING", "TALLY_4", "Faults", "TallySim", "main"]

log = logging.getLogger(__name__)

KINDS = ("f64", "i64", "u64", "bool", "text")
"""The value kinds a channel can be configured with."""

Value = bool | int | float | str

TALLY_4: Mapping[int, tuple[str, Value]] = {
    1: ("u64", 0),  # lane 1 count
    2: ("u64", 0),  # lane 2 count
    3: ("u64", 0),  # lane 3 count
    4: ("u64", 0),  # lane 4 count
    5: ("f64", 0.0),  # rate, parts per minute
    6: ("u64", 1000),  # batch target
    7: ("bool", False),  # running
    8: ("text", ""),  # recipe name
    9: ("i64", 0),  # reject balance (may go negative when rejects are re-counted)
}
"""The channels of an ACME Tally-4 station: kind and value at power-up."""

STATUS_READY = 0x0001
STATUS_RUNNING = 0x0002
STATUS_JAM = 0x0004

_I64 = (-(2**63), 2**63 - 1)
_U64 = (0, 2**64 - 1)
_TEXT_BYTES = 64
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_FLOAT = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[-+]?inf|nan")
_INT = re.compile(r"-?[0-9]+")
_UINT = re.compile(r"[0-9]+")
_CHANNEL = re.compile(r"CH([1-9][0-9]{0,2})")
_GARBAGE = b"\xff\x00\x7fGARBAGE\xfe\x15\r\n"


@dataclass(slots=True)
class Faults:
    """Faults the simulator injects: a delay before every answer, garbage instead of
    answers, connections dropped on the next request, new connections refused."""

    latency_s: float = 0.0
    garbage: bool = False
    drop: bool = False
    refuse: bool = False


@dataclass(slots=True)
class _Channel:
    kind: str
    value: Value
    changed_ns: int


@dataclass(slots=True)
class _Station:
    number: int
    channels: dict[int, _Channel]
    status: int = STATUS_READY
    status_ns: int = field(default_factory=time.time_ns)


class _Client:
    """One TCP connection and the items it subscribed to."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.subscribed: set[tuple[int, str]] = set()
        self.gone = asyncio.Event()  # kicked: stop waiting, stop answering

    def close(self) -> None:
        self.gone.set()
        self.writer.close()

    def send(self, lines: Sequence[str] | bytes) -> None:
        if self.writer.is_closing():
            return
        data = lines if isinstance(lines, bytes) else "".join(f"{x}\r\n" for x in lines).encode()
        self.writer.write(data)


class TallySim:
    """Simulated ACME Tally stations on 127.0.0.1 (or ``host``), one TCP port for all.

    ``layout`` gives each channel's kind and power-up value (default: a Tally-4);
    every station in ``stations`` gets its own copy. ``max_items`` is the limit the
    stations announce in their greeting. ``writes`` records the accepted writes.
    """

    def __init__(self, layout: Mapping[int, tuple[str, Value]] = TALLY_4, *,
                 stations: Sequence[int] = (1,), host: str = "127.0.0.1", port: int = 0,
                 max_items: int = 32) -> None:
        now = time.time_ns()
        for number, (kind, _) in layout.items():
            if kind not in KINDS or not 1 <= number <= 999:
                raise ValueError(f"channel {number}: kind {kind!r} (expected one of {KINDS})")
        self.stations = {s: _Station(s, {n: _Channel(k, _check(k, v), now) for n, (k, v) in
                                         layout.items()}) for s in stations}
        self.host = host
        self.max_items = max_items
        self.faults = Faults()
        self.requests = 0
        self.connections = 0
        self.writes: deque[tuple[int, str, Value]] = deque(maxlen=1000)
        self._port = port
        self._server: asyncio.Server | None = None
        self._clients: set[_Client] = set()
        self._handlers: set[asyncio.Task[None]] = set()

    # -- life cycle ------------------------------------------------------------------------
    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self._port)
        self._port = self._server.sockets[0].getsockname()[1]
        log.info("ACME Tally simulator on %s:%d", self.host, self._port)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        self.kick()
        await server.wait_closed()
        if self._handlers:  # every connection's handler ends on its own once kicked
            await asyncio.wait(self._handlers, timeout=5)

    async def __aenter__(self) -> TallySim:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        return self._port

    def url(self, station: int = 1) -> str:
        return f"acme+tcp://{self.host}:{self._port}?station={station}"

    # -- the device side ---------------------------------------------------------------------
    def get(self, channel: int, station: int = 1) -> Value:
        return self.stations[station].channels[channel].value

    def set(self, channel: int, value: Value, station: int = 1) -> None:
        """Change a channel as the station itself would (a count going up); subscribers hear."""
        ch = self.stations[station].channels[channel]
        value = _check(ch.kind, value)
        if ch.value == value and type(ch.value) is type(value) and not (
                isinstance(value, float) and math.isnan(value)):
            return
        ch.value = value
        ch.changed_ns = time.time_ns()
        self._notify(station, [f"CH{channel}"])

    def set_status(self, word: int, station: int = 1) -> None:
        st = self.stations[station]
        if st.status != word:
            st.status = word & 0xFFFF
            st.status_ns = time.time_ns()
            self._notify(station, ["ST"])

    def kick(self) -> None:
        """Drop every connection (the station restarted)."""
        for client in list(self._clients):
            client.close()

    # -- the wire ----------------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client = _Client(writer)
        handler = asyncio.current_task()
        if handler is not None:
            self._handlers.add(handler)
            handler.add_done_callback(self._handlers.discard)
        if self.faults.refuse:
            client.send(["ER 09 busy: the station refuses connections"])
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            writer.close()
            return
        self.connections += 1
        self._clients.add(client)
        client.send([f"HELLO ACME-TALLY/1 MAXITEMS={self.max_items}"])
        try:
            while True:
                raw = await reader.readline()
                if not raw.endswith(b"\n"):
                    break  # closed (or closed mid-line)
                self.requests += 1
                if self.faults.drop:
                    break
                if self.faults.latency_s:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.faults.latency_s):
                            await client.gone.wait()
                    if client.gone.is_set():
                        break
                if self.faults.garbage:
                    client.send(_GARBAGE)
                else:
                    client.send(self._answer(client, raw))
                await writer.drain()
        except (ConnectionError, ValueError):  # reset by the peer; a line over the limit
            pass
        finally:
            self._clients.discard(client)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def _answer(self, client: _Client, raw: bytes) -> list[str]:
        try:
            line = raw.decode("ascii").rstrip("\r\n")
        except UnicodeDecodeError:
            return ["ER 01 syntax: requests are ASCII"]
        parts = line.split(" ")
        command = parts[0]
        if command not in ("RD", "WR", "SUB", "UNSUB"):
            return [f"ER 01 syntax: unknown command {_printable(command)}"]
        if len(parts) < 2 or not _UINT.fullmatch(parts[1]):
            return ["ER 01 syntax: expected COMMAND STATION ITEM..."]
        station = self.stations.get(int(parts[1]))
        if station is None:
            return [f"ER 04 no station {int(parts[1])}"]
        items = parts[2:]
        if "" in items:
            return ["ER 01 syntax: items are separated by one space"]
        if len(items) > self.max_items:
            return [f"ER 06 too many items: at most {self.max_items} per request"]
        if command == "RD":
            if not items:
                return ["ER 01 syntax: RD needs items"]
            return ["OK " + " ".join(self._value(station, item) for item in items)]
        if command == "WR":
            return [self._write(station, items)]
        if command == "SUB":
            unknown = [i for i in items if not self._exists(station, i)]
            if unknown or not items:
                return [f"ER 02 no such item {_printable(unknown[0])}" if unknown
                        else "ER 01 syntax: SUB needs items"]
            client.subscribed.update((station.number, i) for i in items)
            # the current values first, then every change
            return ["OK", f"EV {station.number} " + " ".join(
                self._value(station, i) for i in dict.fromkeys(items))]
        if items:
            client.subscribed.difference_update((station.number, i) for i in items)
        else:
            client.subscribed = {s for s in client.subscribed if s[0] != station.number}
        return ["OK"]

    def _exists(self, station: _Station, item: str) -> bool:
        if item == "ST":
            return True
        m = _CHANNEL.fullmatch(item)
        return m is not None and int(m[1]) in station.channels

    def _value(self, station: _Station, item: str) -> str:
        if item == "ST":
            return f"ST={station.status}@{station.status_ns}"
        m = _CHANNEL.fullmatch(item)
        if m is None:
            return f"{_printable(item)}=ERR:01"
        ch = station.channels.get(int(m[1]))
        if ch is None:
            return f"{item}=ERR:02"
        return f"{item}={_format(ch.kind, ch.value)}@{ch.changed_ns}"

    def _write(self, station: _Station, items: list[str]) -> str:
        if not items:
            return "ER 01 syntax: WR needs ITEM=VALUE pairs"
        staged: list[tuple[int, Value]] = []
        for pair in items:  # every pair is checked before any is applied: all or nothing
            item, eq, text = pair.partition("=")
            if not eq:
                return f"ER 01 syntax: expected ITEM=VALUE, found {_printable(pair)}"
            if item == "ST":
                return "ER 05 ST is read-only"
            m = _CHANNEL.fullmatch(item)
            ch = station.channels.get(int(m[1])) if m is not None else None
            if m is None or ch is None:
                return f"ER 02 no such item {_printable(item)}"
            try:
                staged.append((int(m[1]), _parse(ch.kind, text)))
            except ValueError as exc:
                return f"ER 03 bad value for {item}: {exc}"
        for channel, value in staged:
            self.writes.append((station.number, f"CH{channel}", value))
            self.set(channel, value, station.number)
        return "OK"

    def _notify(self, station: int, items: list[str]) -> None:
        st = self.stations[station]
        for client in list(self._clients):
            mine = [i for i in items if (station, i) in client.subscribed]
            if mine:
                client.send([f"EV {station} " + " ".join(self._value(st, i) for i in mine)])


# -- values on the wire (the simulator's own rendering of the protocol) ------------------------

def _check(kind: str, value: Value) -> Value:
    """``value`` as a channel of ``kind`` stores it; ``ValueError`` if it does not fit."""
    if kind == "text":
        if not isinstance(value, str) or len(value.encode()) > _TEXT_BYTES:
            raise ValueError(f"expected text of at most {_TEXT_BYTES} bytes, found {value!r}")
        return value
    if kind == "bool":
        if value not in (0, 1) or isinstance(value, str | float):
            raise ValueError(f"expected a bool, found {value!r}")
        return bool(value)
    if kind == "f64":
        if isinstance(value, str | bool):
            raise ValueError(f"expected a number, found {value!r}")
        return float(value)
    low, high = _I64 if kind == "i64" else _U64
    if isinstance(value, str | bool | float) or not low <= value <= high:
        raise ValueError(f"expected an integer {low}..{high}, found {value!r}")
    return int(value)


def _format(kind: str, value: Value) -> str:
    if kind == "text":
        assert isinstance(value, str)
        return "".join(chr(b) if b in _UNRESERVED else f"%{b:02X}" for b in value.encode())
    if kind == "bool":
        return "1" if value else "0"
    if kind == "f64":
        return repr(float(value))
    return str(int(value))


def _parse(kind: str, text: str) -> Value:
    if kind == "text":
        out = bytearray()
        i = 0
        while i < len(text):
            c = text[i]
            if c == "%":
                pair = text[i + 1:i + 3]
                if len(pair) != 2 or not all(ch in "0123456789ABCDEFabcdef" for ch in pair):
                    raise ValueError(f"bad percent escape at {i}")
                out.append(int(pair, 16))
                i += 3
            elif ord(c) in _UNRESERVED:
                out.append(ord(c))
                i += 1
            else:
                raise ValueError(f"{c!r} must be percent-encoded")
        try:
            decoded = out.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("text is not UTF-8") from None
        return _check(kind, decoded)
    if kind == "bool":
        if text not in ("0", "1"):
            raise ValueError(f"expected 0 or 1, found {_printable(text)}")
        return text == "1"
    if kind == "f64":
        if not _FLOAT.fullmatch(text):
            raise ValueError(f"expected a number, found {_printable(text)}")
        return float(text)
    if not (_INT if kind == "i64" else _UINT).fullmatch(text):
        raise ValueError(f"expected an integer, found {_printable(text)}")
    return _check(kind, int(text))


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() and c != " " else "?" for c in text[:40])


# -- command line --------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> None:
    """``python -m acme_tally.sim``: serve Tally-4 stations until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m acme_tally.sim",
                                     description="ACME Tally-4 station simulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7878, help="0: any free port")
    parser.add_argument("--station", type=int, action="append", dest="stations",
                        help="station number (repeatable; default 1)")
    parser.add_argument("--max-items", type=int, default=32)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args(argv)
    stations = args.stations or [1]
    try:
        asyncio.run(_run(args.host, args.port, stations, args.max_items, args.latency_ms))
    except OSError as exc:
        sys.stderr.write(f"acme-tally-sim: {exc}\n")
        sys.exit(1)


async def _run(host: str, port: int, stations: list[int], max_items: int,
               latency_ms: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with TallySim(stations=stations, host=host, port=port, max_items=max_items) as sim:
        sim.faults.latency_s = latency_ms / 1000
        for s in stations:
            name = "tally" if len(stations) == 1 else f"tally-{s}"
            sys.stdout.write(json.dumps({"device": name, "url": sim.url(s)}) + "\n")
        sys.stdout.flush()
        await stop.wait()


if __name__ == "__main__":
    main()
