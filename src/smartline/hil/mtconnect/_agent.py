"""A simulated MTConnect agent over HTTP (aiohttp.web on 127.0.0.1) serving CNC machine models.

What it serves, as cppagent 2.x does: ``/probe``, ``/current``, ``/sample`` (``from``,
``count`` — negative counts from the end — ``to``, ``interval`` and ``heartbeat``), the
``/{device}/…`` variants, and ``/assets`` (empty). Observations live in a ring of
``buffer_size`` slots with global sequence numbers; a ``from`` that fell out of the ring is
an ``OUT_OF_RANGE`` error document (schema < 2.6 ``<Error errorCode=…>`` or 2.6+ typed
``<OutOfRange>``). ``interval=`` streams: chunked ``multipart/mixed`` parts, each framed
by the boundary, ``Content-type`` and ``Content-length``, heartbeat documents when nothing
happens, an error part and the end of the stream when the client fell out of the ring.

Documents are written here, on the server side, with :mod:`xml.etree.ElementTree`
(hostile documents as literal text); nothing is shared with the driver's parser.
Faults (:class:`MtConnectFaults`): latency, garbage, a truncated document, an entity bomb,
an external entity, an oversized document; :meth:`MtConnectAgentSim.restart` (a new
``instanceId``, sequences from 1), :meth:`~MtConnectAgentSim.disconnect_adapter`
(everything UNAVAILABLE), :meth:`~MtConnectAgentSim.kick` (drop every connection),
:meth:`~MtConnectAgentSim.touch_model` (a new ``deviceModelChangeTime``),
:meth:`~MtConnectAgentSim.pause` and :meth:`~MtConnectAgentSim.resume` (the listener goes
away and comes back on the same port, at once).

Time: everything a document says about time — observation timestamps, ``creationTime``,
``deviceModelChangeTime``, the ``instanceId`` (cppagent's start time) — and the machines'
progress come from the injected clock; under a :class:`~smartline.core.VirtualClock` and with
``seed`` given, the same requests at the same virtual times get the same bytes. The pacing of
the wire (latency, a stream's ``interval`` and ``heartbeat``) stays real time, as a real
agent's sockets do.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import socket
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import web

from smartline.core import Clock, MonotonicClock

from ._model import CncMachineModel, Condition, DataItemDef, camel_case

__all__ = ["MtConnectAgentSim", "MtConnectFaults", "Observation"]

DocumentFault = Literal["truncated", "entity_bomb", "external_entity", "oversize"]

_SECTIONS = {"SAMPLE": "Samples", "EVENT": "Events", "CONDITION": "Condition"}
_NEEDS_ESCAPE = re.compile(r'[&<>"\r\n\t]')  # what ElementTree escapes in a text or value
_MARK = "@@smartline-streams@@"  # where pieces written apart go into a serialized envelope


@dataclass
class MtConnectFaults:
    """Switchable faults of the agent (plain attributes; tests flip them)."""

    latency_s: float = 0.0  # answer (and each streamed part) this late
    garbage: bool = False  # answer bytes that are not XML
    document: DocumentFault | None = None  # answer this kind of bad document instead
    oversize_bytes: int = 2_000_000  # size of the ``oversize`` document (sent chunked)
    error_schema: Literal["1.x", "2.6"] = "1.x"  # how error documents are written


@dataclass(slots=True)
class Observation:
    """One observation in the agent's ring."""

    sequence: int
    device: CncMachineModel
    item: DataItemDef
    value: str  # the value; for a condition its level: Normal, Warning, Fault, Unavailable
    timestamp_ns: int
    condition: Condition | None = None  # the active condition (Warning/Fault)
    native_code: str | None = None  # a Normal that clears one code
    xml: bytes | None = None  # its element as the documents write it (made on first use)


@dataclass
class _Stream:
    """One open streaming response (so :meth:`MtConnectAgentSim.kick` can end it)."""

    response: web.StreamResponse
    request: web.Request
    parts: int = 0
    heartbeats: int = 0
    errors: list[str] = field(default_factory=list)


class MtConnectAgentSim:
    """An MTConnect agent serving ``machines`` on 127.0.0.1 (any free port by default).

    ``buffer_size`` is the number of observations the ring keeps. ``clock`` drives both the
    machine models and the timestamps (real time by default; a test passes a
    :class:`~smartline.core.VirtualClock` and calls :meth:`tick` after advancing it).
    With ``tick_s`` > 0 a background task calls :meth:`tick` that often (real time);
    ``tick_on_request`` ticks before answering each request instead, which is what a
    virtual clock wants (the machines move to the request's time, whatever the wall time).
    ``seed`` makes the multipart boundary reproducible (random otherwise, as cppagent's).
    """

    def __init__(self, machines: Sequence[CncMachineModel] | None = None, *,
                 buffer_size: int = 4096, clock: Clock | None = None, port: int = 0,
                 tick_s: float = 0.05, version: str = "2.3", sender: str = "smartline-sim",
                 boundary: str | None = None, seed: int | None = None,
                 tick_on_request: bool = False) -> None:
        if buffer_size < 1:
            raise ValueError("buffer_size must be at least 1")
        self.machines: tuple[CncMachineModel, ...] = tuple(machines or (CncMachineModel(),))
        ids = [i.id for m in self.machines for i in m.items]
        if len(ids) != len(set(ids)):
            raise ValueError("data item ids repeat across machines: give each an id_prefix")
        self.buffer_size = buffer_size
        self.clock: Clock = clock if clock is not None else MonotonicClock()
        self.version = version
        self.sender = sender
        self.faults = MtConnectFaults()
        self.tick_s = tick_s
        self.tick_on_request = tick_on_request
        self.requests = 0
        self.streams: list[_Stream] = []
        self.boundary = boundary or (uuid.uuid4().hex if seed is None else uuid.UUID(
            int=random.Random(seed).getrandbits(128), version=4).hex)
        self._port = port
        self._runner: web.AppRunner | None = None
        self._server: asyncio.AbstractServer | None = None
        self._listening: socket.socket | None = None
        self._attaching: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._transports: set[asyncio.BaseTransport] = set()
        self._waiters: set[asyncio.Future[None]] = set()
        self._adapter = True
        self._tag_cache: dict[tuple[str, ...], tuple[bytes, bytes]] = {}
        self._item_parts: dict[str, tuple[str, str, str] | None] = {}
        self._stamp_s = -1
        self._stamp_text = ""
        self._ring: list[Observation | None] = [None] * buffer_size
        self._restarts = -1
        self._reset_sequences()
        self.model_change_ns = self.clock.wall_ns()
        self._record_all()

    # -- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        """Listen on 127.0.0.1 and start ticking the machines."""
        if self._runner is None:
            app = web.Application(middlewares=[self._track])
            app.router.add_get("/{tail:.*}", self._handle)
            self._runner = web.AppRunner(app, access_log=None, handle_signals=False,
                                         shutdown_timeout=0.1)
            await self._runner.setup()
        self.resume()
        await self.settle()
        if self.tick_s > 0 and self._ticker is None:
            self._ticker = asyncio.ensure_future(self._tick_forever())

    async def stop(self) -> None:
        """Stop ticking, end every stream and connection, stop listening."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        self.pause()
        await self.settle()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def pause(self) -> None:
        """Stop listening now — a new connection is refused from this call on — and drop
        every connection; the ring, the machines and the ticker go on (a crashed agent's
        port, as a scenario's ``down`` wants it within one synchronous step)."""
        sock, self._listening = self._listening, None
        server, self._server = self._server, None
        if server is not None:
            server.close()  # closes the listening socket
        elif sock is not None:
            sock.close()  # its server is still being attached: that fails and stops there
        self.kick()

    def resume(self) -> None:
        """Listen again on the same port now (connections wait in the kernel's backlog);
        the HTTP server takes them once attached (:meth:`settle` waits for that). Needs a
        running event loop and a :meth:`start` done once."""
        if self._listening is not None or self._runner is None:
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", self._port))
            sock.listen(128)
        except OSError:
            sock.close()
            raise
        self._port = sock.getsockname()[1]
        self._listening = sock
        self._attaching = asyncio.ensure_future(self._attach(sock))

    async def settle(self) -> None:
        """Wait until the listener of the last :meth:`resume` serves (or failed to)."""
        task = self._attaching
        if task is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(task)

    async def _attach(self, sock: socket.socket) -> None:
        runner = self._runner
        assert runner is not None and runner.server is not None
        try:
            server = await asyncio.get_running_loop().create_server(runner.server, sock=sock)
        except OSError:  # paused before it was attached: the socket is closed already
            return
        if self._listening is sock:
            self._server = server
        else:
            server.close()

    async def __aenter__(self) -> MtConnectAgentSim:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        return self._port

    def url(self, device: str | None = None, **params: object) -> str:
        """``mtconnect+http://127.0.0.1:PORT[/device][?k=v…]`` (the first machine's name
        when ``device`` is None; ``device=""`` for the whole agent)."""
        name = self.machines[0].name if device is None else device
        query = "&".join(f"{k}={v}" for k, v in params.items())
        return (f"mtconnect+http://127.0.0.1:{self._port}" + (f"/{name}" if name else "")
                + (f"?{query}" if query else ""))

    def http_url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self._port}/{path.lstrip('/')}"

    # -- the device side --------------------------------------------------------------
    @property
    def instance_id(self) -> int:
        return self._instance

    @property
    def next_sequence(self) -> int:
        return self._next

    @property
    def first_sequence(self) -> int:
        return max(self._origin, self._next - self.buffer_size)

    def machine(self, name: str | None = None) -> CncMachineModel:
        """The machine called ``name`` (the first when None)."""
        if name is None:
            return self.machines[0]
        for m in self.machines:
            if m.name == name:
                return m
        raise KeyError(name)

    def tick(self) -> int:
        """Step every machine to the clock's time and record what changed; the number of
        observations recorded."""
        if not self._adapter:
            return 0
        before = self._next
        now_s = self.clock.now_ns() / 1e9
        for m in self.machines:
            for key, value in m.step(now_s).items():
                self._record(m, m.by_key[key], value)
            self._record_conditions(m)
        if self._next != before:
            self._notify()
        return self._next - before

    def set(self, item: str, value: object, machine: str | None = None) -> None:
        """Publish a value for a data item (by id, name or model key) as the adapter would."""
        m, d = self._find(item, machine)
        text = str(value)
        if d.category == "CONDITION":
            raise ValueError(f"{item} is a condition: use raise_alarm/clear_alarm")
        m.put(d.key, text)  # the model's last value, so tick does not repeat it
        self._record(m, d, text)
        self._notify()

    def raise_alarm(self, native_code: str, text: str, *, level: str = "Fault",
                    key: str = "system", machine: str | None = None,
                    native_severity: str | None = None, qualifier: str | None = None) -> None:
        """Activate a condition on ``machine`` and publish it."""
        m = self.machine(machine)
        m.raise_alarm(native_code, text, level=level, key=key,
                      native_severity=native_severity, qualifier=qualifier)
        self.tick()
        self._record_conditions(m)
        self._notify()

    def clear_alarm(self, native_code: str | None = None, *, key: str = "system",
                    machine: str | None = None) -> None:
        """Clear one condition (or all of ``key``'s) and publish it."""
        m = self.machine(machine)
        m.clear_alarm(native_code, key=key)
        self._record_conditions(m)
        self.tick()
        self._notify()

    def disconnect_adapter(self) -> None:
        """The adapter went away: every data item becomes UNAVAILABLE."""
        self._adapter = False
        for m in self.machines:
            for d in m.items:
                self._record(m, d, "Unavailable" if d.category == "CONDITION"
                             else "UNAVAILABLE")
            self._active[m.name] = {}
        self._notify()

    def reconnect_adapter(self) -> None:
        """The adapter is back: every value is published again."""
        self._adapter = True
        self._record_all()
        self._notify()

    def restart(self, *, drop_connections: bool = False) -> None:
        """The agent restarted: a new ``instanceId``, an empty ring, sequences from 1, and
        every value published again. ``drop_connections`` also ends open connections."""
        self._reset_sequences()
        self._record_all()
        if drop_connections:
            self.kick()
        self._notify()

    def touch_model(self) -> None:
        """The device model changed (``deviceModelChangeTime`` moves on)."""
        self.model_change_ns = self.clock.wall_ns()

    def flood(self, count: int) -> None:
        """Record ``count`` position samples at once (benchmarks: a busy machine)."""
        m = self.machines[0]
        axes = (m.by_key["xpos"], m.by_key["ypos"], m.by_key["zpos"])
        base = self._next
        now = self.clock.wall_ns()
        for k in range(count):
            self._append(m, axes[k % 3], f"{(base + k) % 100000 / 100:.2f}", now)
        self._notify()

    def kick(self) -> None:
        """Drop every connection (streams end at once), as a crashing agent would."""
        for t in list(self._transports):
            t.close()
        self._transports.clear()

    # -- recording ----------------------------------------------------------------------
    def _reset_sequences(self) -> None:
        # cppagent uses the start time in seconds; the restart count keeps restarts apart
        self._restarts += 1
        self._instance = self.clock.wall_ns() // 1_000_000_000 * 1000 + self._restarts % 1000
        self._origin = 1
        self._next = 1
        self._ring = [None] * self.buffer_size
        self._current: dict[str, Observation] = {}
        self._conditions: dict[str, list[Observation]] = {}
        #: the conditions published as active, by machine name, item key and native code
        self._active: dict[str, dict[str, dict[str, Condition]]] = {}

    def _record_all(self) -> None:
        now_s = self.clock.now_ns() / 1e9
        for m in self.machines:
            m.step(now_s)
            values = m.values()
            for d in m.items:
                if d.category != "CONDITION":
                    self._record(m, d, values.get(d.key, "UNAVAILABLE"))
            self._active[m.name] = {}
            for d in m.items:
                if d.category == "CONDITION":
                    self._record(m, d, "Normal")
            self._record_conditions(m)

    def _record_conditions(self, m: CncMachineModel) -> None:
        if not self._adapter:
            return
        published = self._active.setdefault(m.name, {})
        for d in m.items:
            if d.category != "CONDITION":
                continue
            want = dict(m.conditions.get(d.key, {}))
            have = published.setdefault(d.key, {})
            for code, cond in want.items():
                if have.get(code) != cond:
                    self._record(m, d, cond.level, condition=cond)
                    have[code] = cond
            for code in [c for c in have if c not in want]:
                del have[code]
                self._record(m, d, "Normal", native_code=code if have else None)

    def _record(self, m: CncMachineModel, d: DataItemDef, value: str, *,
                condition: Condition | None = None, native_code: str | None = None) -> None:
        self._append(m, d, value, self.clock.wall_ns(), condition=condition,
                     native_code=native_code)

    def _append(self, m: CncMachineModel, d: DataItemDef, value: str, now_ns: int, *,
                condition: Condition | None = None, native_code: str | None = None) -> None:
        obs = Observation(self._next, m, d, value, now_ns, condition, native_code)
        self._ring[self._next % self.buffer_size] = obs
        self._next += 1
        if d.category != "CONDITION":
            self._current[d.id] = obs
            return
        # the condition's active list, as /current shows it
        active = self._conditions.get(d.id, [])
        if condition is not None:
            active = [o for o in active if o.condition is not None
                      and o.condition.native_code != condition.native_code] + [obs]
        elif native_code is not None:
            active = [o for o in active if o.condition is not None
                      and o.condition.native_code != native_code] or [obs]
        else:
            active = [obs]
        self._conditions[d.id] = active

    def _notify(self) -> None:
        for w in list(self._waiters):
            if not w.done():
                w.set_result(None)
        self._waiters.clear()

    async def _wait_for_data(self, timeout_s: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(fut)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(fut), max(0.0, timeout_s))
        finally:
            self._waiters.discard(fut)

    def _find(self, item: str, machine: str | None) -> tuple[CncMachineModel, DataItemDef]:
        for m in ([self.machine(machine)] if machine else self.machines):
            for d in m.items:
                if item in (d.id, d.name, d.key):
                    return m, d
        raise KeyError(item)

    async def _tick_forever(self) -> None:
        while True:
            self.tick()
            await asyncio.sleep(self.tick_s)

    # -- HTTP -----------------------------------------------------------------------------
    @web.middleware
    async def _track(self, request: web.Request,
                     handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                     ) -> web.StreamResponse:
        if request.transport is not None:
            self._transports.add(request.transport)
        self.requests += 1
        if self.tick_on_request:
            self.tick()
        return await handler(request)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.match_info["tail"].split("/") if p]
        if self.faults.latency_s:
            await asyncio.sleep(self.faults.latency_s)
        if not parts:
            parts = ["probe"]
        if len(parts) > 2:
            return self._error(404, "INVALID_URI", f"{request.path} is not an MTConnect request")
        what = parts[-1]
        devices = self.machines
        if len(parts) == 2:
            try:
                devices = (self.machine(parts[0]),)
            except KeyError:
                return self._error(404, "NO_DEVICE", f"Could not find the device '{parts[0]}'")
        bad = self._fault_response()
        if bad is not None:
            return await bad(request)
        try:
            if what == "probe":
                return self._xml(self._probe_doc(devices))
            if what == "current":
                return self._xml(self._current_doc(devices))
            if what == "assets":
                return self._xml(self._assets_doc())
            if what == "sample":
                return await self._sample(request, devices)
        except _QueryError as exc:
            return self._error(400, exc.code, exc.text, exc.param)
        return self._error(404, "INVALID_URI", f"'{what}' is not an MTConnect request")

    async def _sample(self, request: web.Request,
                      devices: Sequence[CncMachineModel]) -> web.StreamResponse:
        query = request.query
        count = _int_param(query, "count") or 0 if "count" in query else 100
        if count == 0:
            raise _QueryError("OUT_OF_RANGE", "'count' must not be zero(0)", ("count", 0, 1))
        first = self.first_sequence
        to = _int_param(query, "to")
        start = _int_param(query, "from")
        if count < 0:
            end = to if to is not None else self._next
            start = max(first, end + count)
            count = -count
        if start is None:
            start = first
        self._check_from(start)
        interval = _int_param(query, "interval")
        if interval is None:
            obs, nxt = self._slice(start, count, to, devices)
            return self._xml(self._streams_doc(obs, nxt, devices))
        heartbeat = _int_param(query, "heartbeat")
        if heartbeat is None or heartbeat <= 0:
            heartbeat = 10000
        return await self._stream(request, devices, start=start, count=count,
                                  interval_ms=interval, heartbeat_ms=heartbeat)

    def _check_from(self, start: int) -> None:
        first = self.first_sequence
        if start < first:
            raise _QueryError("OUT_OF_RANGE", f"'from' must be greater than {first - 1}",
                              ("from", start, first, self._next))
        if start > self._next:
            raise _QueryError("OUT_OF_RANGE", f"'from' must be less than {self._next + 1}",
                              ("from", start, first, self._next))

    def _slice(self, start: int, count: int, to: int | None,
               devices: Sequence[CncMachineModel]) -> tuple[list[Observation], int]:
        end = self._next if to is None else min(to, self._next)
        names = {m.name for m in devices}
        out: list[Observation] = []
        seq = start
        while seq < end and len(out) < count:
            obs = self._ring[seq % self.buffer_size]
            seq += 1
            if obs is not None and obs.device.name in names:
                out.append(obs)
        return out, seq

    async def _stream(self, request: web.Request, devices: Sequence[CncMachineModel], *,
                      start: int, count: int, interval_ms: int,
                      heartbeat_ms: int) -> web.StreamResponse:
        resp = web.StreamResponse(headers={
            "Content-Type": f"multipart/mixed;boundary={self.boundary}"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        stream = _Stream(resp, request)
        self.streams.append(stream)
        loop = asyncio.get_running_loop()
        pos = start
        last = loop.time()
        instance = self._instance
        try:
            while True:
                if self.faults.latency_s:
                    await asyncio.sleep(self.faults.latency_s)
                if self._instance != instance:
                    return resp  # a restarted agent ends its streams
                bad = self._fault_body()
                if bad is not None:
                    await self._write_part(resp, bad)
                    continue
                if pos < self.first_sequence:
                    err = _QueryError("OUT_OF_RANGE",
                                      f"'from' must be greater than {self.first_sequence - 1}",
                                      ("from", pos, self.first_sequence, self._next))
                    stream.errors.append(err.code)
                    await self._write_part(resp, self._error_doc(err.code, err.text, err.param))
                    return resp  # the agent closes the stream after an error
                if pos < self._next:
                    obs, pos = self._slice(pos, count, None, devices)
                    await self._write_part(resp, self._streams_doc(obs, pos, devices))
                    stream.parts += 1
                    last = loop.time()
                    if interval_ms > 0:
                        await asyncio.sleep(interval_ms / 1000)
                    else:
                        await asyncio.sleep(0)
                    continue
                wait = heartbeat_ms / 1000 - (loop.time() - last)
                if wait <= 0:
                    await self._write_part(resp, self._streams_doc([], pos, devices))
                    stream.heartbeats += 1
                    last = loop.time()
                    continue
                await self._wait_for_data(wait)
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            return resp
        finally:
            self.streams.remove(stream)

    async def _write_part(self, resp: web.StreamResponse, body: bytes) -> None:
        head = (f"--{self.boundary}\r\nContent-type: text/xml\r\n"
                f"Content-length: {len(body)}\r\n\r\n").encode()
        await resp.write(head + body + b"\r\n")

    # -- faults ----------------------------------------------------------------------------
    def _fault_body(self) -> bytes | None:
        f = self.faults
        if f.garbage:
            return b"\x00\x17 not an MTConnect document \xff\xfe"
        if f.document == "truncated":
            whole = self._streams_doc(list(self._current.values()), self._next, self.machines)
            return whole[: len(whole) // 2]
        if f.document == "entity_bomb":
            return self._bomb()
        if f.document == "external_entity":
            return self._external()
        if f.document == "oversize":
            return self._oversize()
        return None

    def _fault_response(self) -> Callable[[web.Request], Awaitable[web.StreamResponse]] | None:
        """An answer with the fault's document instead of the real one, or None."""
        body = self._fault_body()
        if body is None:
            return None
        chunked = self.faults.document == "oversize"

        async def answer(request: web.Request) -> web.StreamResponse:
            if not chunked:
                return web.Response(body=body, content_type="text/xml")
            # sent without a Content-Length: the client must count while it reads
            resp = web.StreamResponse(headers={"Content-Type": "text/xml"})
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            with contextlib.suppress(ConnectionError, RuntimeError):
                for i in range(0, len(body), 65536):
                    await resp.write(body[i:i + 65536])
                await resp.write_eof()
            return resp

        return answer

    def _bomb(self) -> bytes:
        ents = ['<!ENTITY lol0 "lollollollollollollollollollol">']
        ents += [f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' for i in range(1, 10)]
        return (f'<?xml version="1.0"?>\n<!DOCTYPE MTConnectStreams [{"".join(ents)}]>\n'
                f'<MTConnectStreams xmlns="{self._ns("Streams")}"><Header instanceId='
                f'"{self._instance}" nextSequence="{self._next}" firstSequence='
                f'"{self.first_sequence}" lastSequence="{self._next - 1}"/><Streams>'
                f'<DeviceStream name="x" uuid="x"><ComponentStream component="Path" '
                f'componentId="p"><Events><Program dataItemId="p" sequence="1" timestamp='
                f'"2026-01-01T00:00:00Z">&lol9;</Program></Events></ComponentStream>'
                f'</DeviceStream></Streams></MTConnectStreams>').encode()

    def _external(self) -> bytes:
        return (f'<?xml version="1.0"?>\n<!DOCTYPE MTConnectStreams [<!ENTITY xxe SYSTEM '
                f'"file:///etc/passwd">]>\n<MTConnectStreams xmlns="{self._ns("Streams")}">'
                f'<Header instanceId="{self._instance}" nextSequence="{self._next}" '
                f'firstSequence="{self.first_sequence}" lastSequence="{self._next - 1}"/>'
                f'<Streams><DeviceStream name="x" uuid="x"><ComponentStream component='
                f'"Path" componentId="p"><Events><Program dataItemId="p" sequence="1" '
                f'timestamp="2026-01-01T00:00:00Z">&xxe;</Program></Events>'
                f'</ComponentStream></DeviceStream></Streams></MTConnectStreams>').encode()

    def _oversize(self) -> bytes:
        doc = self._streams_doc(list(self._current.values()), self._next, self.machines)
        pad = max(0, self.faults.oversize_bytes - len(doc))
        head, _, tail = doc.partition(b"<Streams>")
        return head + b"<!-- " + b"x" * pad + b" --><Streams>" + tail

    # -- documents -------------------------------------------------------------------------
    def _ns(self, kind: str) -> str:
        org = "mtconnect.com" if self.version in ("1.0", "1.1") else "mtconnect.org"
        return f"urn:{org}:MTConnect{kind}:{self.version}"

    def _root(self, kind: str, **extra: object) -> ET.Element:
        root = ET.Element(f"MTConnect{kind}", {"xmlns": self._ns(kind)})
        header = {"creationTime": _iso(self.clock.wall_ns()), "sender": self.sender,
                  "instanceId": str(self._instance), "version": f"{self.version}.0.0",
                  "bufferSize": str(self.buffer_size)}
        if self.version >= "1.7" or self.version.startswith("2"):
            header["deviceModelChangeTime"] = _iso(self.model_change_ns)
        header.update({k: str(v) for k, v in extra.items()})
        ET.SubElement(root, "Header", header)
        return root

    def _probe_doc(self, devices: Sequence[CncMachineModel]) -> bytes:
        root = self._root("Devices", assetBufferSize=1024, assetCount=0)
        devs = ET.SubElement(root, "Devices")
        for m in devices:
            dev = ET.SubElement(devs, "Device", id=f"{m.id_prefix}dev", name=m.name,
                                uuid=m.uuid)
            by_comp: dict[str, list[DataItemDef]] = {}
            for d in m.items:
                by_comp.setdefault(d.component_id, []).append(d)
            self._data_items(dev, by_comp.pop(f"{m.id_prefix}dev", []))
            comps = ET.SubElement(dev, "Components")
            axes = ET.SubElement(ET.SubElement(comps, "Axes", id=f"{m.id_prefix}axes",
                                               name="base"), "Components")
            ctrl = ET.SubElement(comps, "Controller", id=f"{m.id_prefix}cn",
                                 name="controller")
            ctrl_items = by_comp.pop(f"{m.id_prefix}cn", [])
            self._data_items(ctrl, ctrl_items)
            ctrl_comps = ET.SubElement(ctrl, "Components")
            for items in by_comp.values():
                d0 = items[0]
                parent = ctrl_comps if d0.component == "Path" else axes
                comp = ET.SubElement(parent, d0.component, id=d0.component_id,
                                     name=d0.component_name)
                self._data_items(comp, items)
        return _bytes(root)

    @staticmethod
    def _data_items(parent: ET.Element, items: Iterable[DataItemDef]) -> None:
        items = list(items)
        if not items:
            return
        box = ET.SubElement(parent, "DataItems")
        for d in items:
            attrs = {"id": d.id, "name": d.name, "type": d.type, "category": d.category}
            if d.sub_type:
                attrs["subType"] = d.sub_type
            if d.units:
                attrs["units"] = d.units
            ET.SubElement(box, "DataItem", attrs)

    def _current_doc(self, devices: Sequence[CncMachineModel]) -> bytes:
        obs = [o for o in self._current.values() if o.device in devices]
        obs += [o for active in self._conditions.values() for o in active
                if o.device in devices]
        return self._streams_doc(obs, self._next, devices)

    def _streams_doc(self, obs: Sequence[Observation], next_seq: int,
                     devices: Sequence[CncMachineModel]) -> bytes:
        """A streams document: the envelope by ElementTree, the streams from pieces made once
        (each observation's element is written when first served, each stream's tags once):
        the same bytes as one ElementTree of the whole document, for a fraction of the work
        (a lock-step line asks for ``current`` every cycle)."""
        root = self._root("Streams", nextSequence=next_seq,
                          firstSequence=self.first_sequence, lastSequence=self._next - 1)
        streams = ET.SubElement(root, "Streams")
        grouped: dict[str, dict[str, dict[str, list[Observation]]]] = {}
        for o in obs:
            grouped.setdefault(o.device.name, {}).setdefault(o.item.component_id, {}) \
                .setdefault(o.item.category, []).append(o)
        body: list[bytes] = []
        for m in devices:
            comps = grouped.get(m.name)
            if comps is None:
                continue
            ds_open, ds_close = self._tags("DeviceStream", name=m.name, uuid=m.uuid)
            body.append(ds_open)
            for comp_id, cats in comps.items():
                d0 = next(iter(cats.values()))[0].item
                cs_open, cs_close = self._tags("ComponentStream", component=d0.component,
                                               name=d0.component_name, componentId=comp_id)
                body.append(cs_open)
                for cat in ("SAMPLE", "EVENT", "CONDITION"):
                    group = cats.get(cat)
                    if not group:
                        continue
                    section = _SECTIONS[cat]
                    body.append(f"<{section}>".encode())
                    for o in group:
                        xml = o.xml
                        if xml is None:
                            xml = o.xml = self._fragment(o)
                        body.append(xml)
                    body.append(f"</{section}>".encode())
                body.append(cs_close)
            body.append(ds_close)
        if not body:  # an empty <Streams />, as ElementTree writes it
            return _bytes(root)
        streams.text = _MARK
        head, tail = _bytes(root).split(_MARK.encode(), 1)
        return b"".join((head, *body, tail))

    def _tags(self, tag: str, **attrs: str) -> tuple[bytes, bytes]:
        """The opening and closing tags of an element with ``attrs``, as ElementTree writes
        them (made once per element and kept)."""
        key = (tag, *attrs.values())
        tags = self._tag_cache.get(key)
        if tags is None:
            el = ET.Element(tag, attrs)
            el.text = _MARK
            opening, closing = ET.tostring(el, encoding="utf-8").split(_MARK.encode(), 1)
            tags = self._tag_cache[key] = (opening, closing)
        return tags

    @staticmethod
    def _observation(o: Observation) -> ET.Element:
        tag, attrs, text = MtConnectAgentSim._observation_parts(o)
        el = ET.Element(tag, attrs)
        el.text = text
        return el

    def _fragment(self, o: Observation) -> bytes:
        """``o``'s element as ElementTree writes it. A sample or event whose value needs no
        escaping is written from its item's parts, made once (the usual case: a moving
        axis makes a new observation every step, and a poll serves each of them once)."""
        d = o.item
        if d.category == "CONDITION" or _NEEDS_ESCAPE.search(o.value):
            return self._observation_xml(o)
        parts = self._item_parts.get(d.id)
        if parts is None:
            tag, attrs, _ = self._observation_parts(o)
            if _NEEDS_ESCAPE.search(tag) or any(_NEEDS_ESCAPE.search(v) for v in attrs.values()):
                parts = None
            else:
                parts = (f'<{tag} dataItemId="{d.id}" timestamp="',
                         "".join([f' {k}="{v}"' for k, v in attrs.items()
                                  if k not in ("dataItemId", "timestamp", "sequence")]),
                         f"</{tag}>")
            self._item_parts[d.id] = parts
        if parts is None:
            return self._observation_xml(o)
        head, rest, close = parts
        stamp = self._stamp(o.timestamp_ns)
        if not o.value:
            return f'{head}{stamp}" sequence="{o.sequence}"{rest} />'.encode()
        return f'{head}{stamp}" sequence="{o.sequence}"{rest}>{o.value}{close}'.encode()

    def _stamp(self, ns: int) -> str:
        """:func:`_iso` of ``ns``, its date and time of day made once per second."""
        secs, rem = divmod(ns, 1_000_000_000)
        if secs != self._stamp_s:
            self._stamp_s = secs
            self._stamp_text = _iso(secs * 1_000_000_000)[:-8]
        return f"{self._stamp_text}.{rem // 1000:06d}Z"

    @staticmethod
    def _observation_xml(o: Observation) -> bytes:
        """``o``'s element as ElementTree writes it; written here when nothing in it needs
        escaping (the usual case: a sample of a moving axis is a new observation every
        poll), by ElementTree otherwise."""
        tag, attrs, text = MtConnectAgentSim._observation_parts(o)
        if _NEEDS_ESCAPE.search(tag) or (text and _NEEDS_ESCAPE.search(text)) or any(
                _NEEDS_ESCAPE.search(v) for v in attrs.values()):
            el = ET.Element(tag, attrs)
            el.text = text
            written: bytes = ET.tostring(el, encoding="utf-8")
            return written
        head = "<" + tag + "".join([f' {k}="{v}"' for k, v in attrs.items()])
        return (f"{head}>{text}</{tag}>" if text else head + " />").encode()

    @staticmethod
    def _observation_parts(o: Observation) -> tuple[str, dict[str, str], str | None]:
        """An observation's element: its tag, attributes and text."""
        d = o.item
        attrs = {"dataItemId": d.id, "timestamp": _iso(o.timestamp_ns),
                 "sequence": str(o.sequence), "name": d.name}
        if d.sub_type:
            attrs["subType"] = d.sub_type
        if d.category == "CONDITION":
            attrs["type"] = d.type
            c = o.condition
            if c is not None:
                attrs["nativeCode"] = c.native_code
                if c.native_severity:
                    attrs["nativeSeverity"] = c.native_severity
                if c.qualifier:
                    attrs["qualifier"] = c.qualifier
            elif o.native_code:
                attrs["nativeCode"] = o.native_code
            return o.value, attrs, c.text if c is not None and c.text else None
        return camel_case(d.type), attrs, o.value

    def _assets_doc(self) -> bytes:
        root = self._root("Assets", assetBufferSize=1024, assetCount=0)
        ET.SubElement(root, "Assets")
        return _bytes(root)

    def _error_doc(self, code: str, text: str,
                   param: tuple[str, int, int, int] | tuple[str, int, int] | None = None
                   ) -> bytes:
        root = self._root("Error")
        errors = ET.SubElement(root, "Errors")
        if self.faults.error_schema == "2.6":
            el = ET.SubElement(errors, camel_case(code))
            ET.SubElement(el, "ErrorMessage").text = text
            if param is not None:
                qp = ET.SubElement(el, "QueryParameter", name=param[0])
                ET.SubElement(qp, "Value").text = str(param[1])
                ET.SubElement(qp, "Minimum").text = str(param[2])
                if len(param) > 3:
                    ET.SubElement(qp, "Maximum").text = str(param[3])  # type: ignore[misc]
        else:
            ET.SubElement(errors, "Error", errorCode=code).text = text
        return _bytes(root)

    def _error(self, status: int, code: str, text: str,
               param: tuple[str, int, int, int] | tuple[str, int, int] | None = None
               ) -> web.Response:
        return web.Response(status=status, body=self._error_doc(code, text, param),
                            content_type="text/xml")

    @staticmethod
    def _xml(body: bytes) -> web.Response:
        return web.Response(body=body, content_type="text/xml")


class _QueryError(Exception):
    def __init__(self, code: str, text: str,
                 param: tuple[str, int, int, int] | tuple[str, int, int] | None = None) -> None:
        super().__init__(text)
        self.code = code
        self.text = text
        self.param = param


def _int_param(query: Mapping[str, str], name: str) -> int | None:
    """The integer query parameter ``name`` (None when absent)."""
    text = query.get(name)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise _QueryError("INVALID_PARAMETER_VALUE",
                          f"'{name}' must be an integer, not '{text}'") from None


def _iso(ns: int) -> str:
    """UTC ISO-8601 with microseconds, as cppagent writes timestamps."""
    secs, rem = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{rem // 1000:06d}Z"


def _bytes(root: ET.Element) -> bytes:
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return body
