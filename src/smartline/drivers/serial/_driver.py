"""``serial://PORT`` — an instrument whose line protocol its device profile describes.

The driver sends the profile's command templates and reads the replies through the
profile's rules (:mod:`._proto`); it knows nothing of any one instrument. One command is in
flight at a time (MT-SICS requires it). Before each command the port is drained, so a late
reply or noise from an earlier failure cannot be taken for the answer (the resync). A
reply the device marks as an error (``S +``) makes the command's points BAD with
``DEVICE_ERROR`` and the reply in the note; garbage, a bad checksum or an unexpected reply
makes them BAD with ``PROTOCOL_ERROR``. When nothing in a poll was understood, or a reply
did not come in time, the poll raises (``ProtocolError`` / ``DeviceTimeoutError`` with the
partial line in words): the base class then reopens the port, with backoff.

A streaming instrument (a scanner) prints lines on its own: they are read as they come,
their values held and pushed to subscriptions; reads return the values held.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ...config._lineproto import LineProtocol, TemplateError
from ...core import (
    BrowsedPoint,
    BrowseResult,
    Clock,
    ConfigError,
    ConfigIssue,
    ConnectError,
    DeviceError,
    DeviceSpec,
    DeviceTimeoutError,
    DriverBase,
    DriverFamily,
    LinkBrokenError,
    LinkPool,
    Point,
    ProtocolError,
    ReadPlan,
    ReadResult,
    Reason,
    ResultBuilder,
    Subscription,
    WriteItem,
    WriteRefusedError,
)
from ..families.serial import FAMILY, SerialInstrumentOptions
from ._port import LinePort, ReplyTimeout
from ._proto import Command, Compiled, Outcome, Rule, Value, compile_protocol

__all__ = ["SerialInstrumentDriver", "SerialPlan"]

log = logging.getLogger(__name__)

_TYPES = {"float": "float64", "int": "int64", "bool": "bool", "string": "string"}


@dataclass(frozen=True, slots=True)
class SerialPlan:
    """The commands one read sends (each once, in profile order) and the points each
    gives; ``held`` are the points a streaming instrument printed."""

    commands: tuple[tuple[str, tuple[Point, ...]], ...]
    held: tuple[Point, ...]
    unknown: tuple[Point, ...]

    @property
    def request_count(self) -> int:
        return len(self.commands)


class SerialInstrumentDriver(DriverBase[SerialPlan, SerialInstrumentOptions]):
    """Reads and writes the points of a profile-described serial instrument."""

    family_plugin: ClassVar[DriverFamily | None] = FAMILY

    def __init__(self, spec: DeviceSpec, *, clock: Clock | None = None,
                 rng: Any = None, links: LinkPool | None = None) -> None:
        super().__init__(spec, clock=clock, rng=rng, links=links)
        protocol = spec.protocol
        if isinstance(protocol, dict):
            protocol = LineProtocol.model_validate(protocol)
        if not isinstance(protocol, LineProtocol):
            raise ConfigError(ConfigIssue(str(spec.url), f"devices.{spec.name}.profile",
                                          "a serial instrument needs a profile with a "
                                          "'protocol' section"))
        self.proto: Compiled = compile_protocol(protocol, self.options,
                                                f"devices.{spec.name}")
        self.port: LinePort | None = None
        self.identity: dict[str, str] = {}
        self._held: dict[str, tuple[Value | None, Reason, str, int]] = {}
        self._sent: dict[str, str] = {}  # queries rendered once (they carry no value)
        self._frames: dict[str, bytes] = {}
        self._counts = {"lines": 0, "unexpected_replies": 0, "device_errors": 0,
                        "stream_lines": 0}

    @property
    def streaming(self) -> bool:
        return self.proto.spec.mode == "streaming"

    # -- connection ----------------------------------------------------------------------
    async def _connect(self) -> None:
        import serial

        o = self.options
        url = self.spec.url.path
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.spec.timeout_s * 0.95  # inside the base's timeout

        def open_port() -> Any:
            ser = serial.serial_for_url(
                url, baudrate=o.baudrate, bytesize=o.bytesize, parity=o.parity,
                stopbits=o.stopbits, timeout=0)
            ser.reset_input_buffer()
            return ser

        try:
            ser = await self.run_blocking(open_port)
        except serial.SerialException as exc:
            raise ConnectError(f"cannot open {url}: {exc}") from exc
        self._held.clear()
        self.port = LinePort(ser, loop, self.proto.reply_end, self.proto.spec.max_line,
                             on_line=self._stream_line if self.streaming else None,
                             on_lost=self._lost, wall_ns=self.clock.wall_ns)
        ident = self.proto.spec.identify
        if ident is not None and ident.on_connect and not self.streaming:
            await self._identify(deadline)

    async def _identify(self, deadline: float) -> dict[str, str]:
        assert self.proto.identify is not None
        template, rx = self.proto.identify
        sent = self.proto.render(template)
        line = await self._exchange(sent, deadline)
        text, why = self.proto.text_of(line)
        m = rx.search(text) if text is not None else None
        if m is None:
            raise ProtocolError(why or f"the instrument answered {text!r} to {sent!r}, not "
                                "what the profile's identify expects: is it the right "
                                "instrument and line setting?")
        self.identity = {k: (v or "").strip() for k, v in m.groupdict().items()}
        return self.identity

    def _lost(self, exc: BaseException) -> None:
        self.connection_lost(exc)

    async def _close(self) -> None:
        port, self.port = self.port, None
        if port is not None:
            port.close()

    # -- reading -------------------------------------------------------------------------
    def _plan(self, points: Sequence[Point]) -> SerialPlan:
        by_cmd: dict[str, list[Point]] = {}
        held: list[Point] = []
        unknown: list[Point] = []
        for p in points:
            name = p.address.canonical()
            cmd = self.proto.producer.get(name)
            if cmd is None:
                unknown.append(p)
            elif cmd == "":
                held.append(p)
            else:
                by_cmd.setdefault(cmd, []).append(p)
        order = [c for c in self.proto.commands if c in by_cmd]
        return SerialPlan(tuple((c, tuple(by_cmd[c])) for c in order), tuple(held),
                          tuple(unknown))

    async def _read(self, plan: ReadPlan[SerialPlan]) -> ReadResult:
        compiled = plan.compiled
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        deadline = t0 + self.spec.timeout_s * 0.95
        b = ResultBuilder(plan.points, self.clock.wall_ns())
        for p in compiled.unknown:
            b.fail(p, Reason.DEVICE_ERROR, note=f"no command of the profile gives "
                   f"{p.address.canonical()!r}")
        answered = 0
        first_failure: tuple[Reason, str] | None = None
        for name, pts in compiled.commands:
            cmd = self.proto.commands[name]
            out = await self._query(cmd, pts, deadline)
            stamp = self.clock.wall_ns()
            if out.understood:
                answered += 1
            elif first_failure is None:
                first_failure = (out.reason, out.note)
            for p in pts:
                key = p.address.canonical()
                if out.reason != Reason.NONE:
                    b.fail(p, out.reason, note=out.note)
                elif key in out.values:
                    b.set(p, out.values[key], stamp)
                else:
                    reason, note = out.failed.get(key, (Reason.PROTOCOL_ERROR, "no value"))
                    b.fail(p, reason, note=note)
        if compiled.commands and not answered and first_failure is not None:
            raise ProtocolError(first_failure[1])
        self._fill_held(b, compiled.held)
        self.health.requests += len(compiled.commands)
        return b.build(requests=len(compiled.commands))

    async def _query(self, cmd: Command, pts: Sequence[Point], deadline: float) -> Outcome:
        """Send one query and read what its reply says about ``pts``."""
        sent = self._sent.get(cmd.name)
        if sent is None:
            sent = self._sent[cmd.name] = self.proto.render(cmd.send)
        line = await self._exchange(sent, deadline)
        text, why = self.proto.text_of(line)
        if text is None:
            self._counts["unexpected_replies"] += 1
            if self.port is not None:
                self.port.drain()
            return Outcome(reason=Reason.PROTOCOL_ERROR, note=why, understood=False)
        out = self.proto.interpret(cmd.rules, text,
                                   tuple(p.address.canonical() for p in pts), sent)
        if not out.understood:
            self._counts["unexpected_replies"] += 1
            if self.port is not None:
                self.port.drain()
        elif out.reason != Reason.NONE:
            self._counts["device_errors"] += 1
        return out

    async def _exchange(self, sent: str, deadline: float) -> bytes:
        """One command on the wire and its reply line; raises on timeout or a dead port."""
        port = self.port
        if port is None:
            raise LinkBrokenError("the serial port is not open")
        port.drain()
        frame = self._frames.get(sent)
        if frame is None:
            frame = self.proto.frame(sent)
            if len(self._frames) < 256:
                self._frames[sent] = frame
        self._wire_log.debug("-> %r", frame)
        port.write(frame)
        try:
            line = await port.reply(deadline)
        except ReplyTimeout as exc:
            partial = exc.partial.decode("latin-1")
            ms = round(self.spec.timeout_s * 1000)
            raise DeviceTimeoutError(
                f"no reply to {sent!r} within {ms} ms"
                + (f" (partial {partial!r})" if partial else "")) from None
        self._counts["lines"] += 1
        self._wire_log.debug("<- %r", line)
        return line

    def _fill_held(self, b: ResultBuilder, points: Sequence[Point]) -> None:
        for p in points:
            held = self._held.get(p.address.canonical())
            if held is None:
                b.fail(p, Reason.NOT_READ,
                       note="the instrument has printed nothing since the port was opened")
                continue
            value, reason, note, stamp = held
            if value is None:
                b.fail(p, reason, note=note)
            else:
                b.set(p, value, stamp)

    # -- streaming -----------------------------------------------------------------------
    def _stream_line(self, line: bytes, received_ns: int) -> None:
        self._counts["stream_lines"] += 1
        text, why = self.proto.text_of(line)
        out = (self.proto.stream_line(text) if text is not None
               else Outcome(reason=Reason.PROTOCOL_ERROR, note=why, understood=False))
        names = [n for n, c in self.proto.producer.items() if c == ""]
        for name in names:
            if out.reason != Reason.NONE:
                self._held[name] = (None, out.reason, out.note, received_ns)
            elif name in out.values:
                self._held[name] = (out.values[name], Reason.NONE, "", received_ns)
            elif name in out.failed:
                reason, note = out.failed[name]
                self._held[name] = (None, reason, note, received_ns)
            else:
                self._held[name] = (None, Reason.PROTOCOL_ERROR,
                                    f"line {text!r} does not give {name}", received_ns)
        if not out.understood:
            self._counts["unexpected_replies"] += 1
            log.debug("%s: %s", self.spec.name, out.note)
        for sub in list(self._subs):
            if sub.active:
                b = sub.builder()
                self._fill_held(b, sub.points)
                sub.deliver(b.build())

    def _pushes(self, point: Point) -> bool:
        return self.streaming and self.proto.producer.get(point.address.canonical()) == ""

    async def _subscribe(self, subscription: Subscription) -> None:
        b = subscription.builder()
        self._fill_held(b, subscription.points)
        subscription.deliver(b.build())

    async def _unsubscribe(self, subscription: Subscription) -> None:
        return None

    # -- writing -------------------------------------------------------------------------
    def _prepare_write(self, items: Sequence[WriteItem]) -> list[tuple[Command, str | None]]:
        out: list[tuple[Command, str | None]] = []
        for it in items:
            name = it.point.address.canonical()
            cmd_name = self.proto.writer.get(name)
            if cmd_name is None:
                raise WriteRefusedError(f"no command of the profile writes {name!r}",
                                        tag=it.point.tag)
            cmd = self.proto.commands[cmd_name]
            value = it.value
            if isinstance(value, tuple):
                raise WriteRefusedError(f"{name} takes one value, not {len(value)}",
                                        tag=it.point.tag)
            spec = self.proto.fields.get(name)
            if spec is not None and spec.type in ("float", "int") and (
                    isinstance(value, str | bool)):
                raise WriteRefusedError(f"{value!r} is not a number for {name}",
                                        tag=it.point.tag)
            if "value" not in cmd.send.fields:
                # a momentary command (zero, tare): writing true sends it, false nothing
                out.append((cmd, self.proto.render(cmd.send) if value else None))
                continue
            try:
                out.append((cmd, self.proto.render(cmd.send, value)))
            except TemplateError as exc:
                raise WriteRefusedError(f"cannot send {value!r} to {name}: {exc}",
                                        tag=it.point.tag) from None
        return out

    async def _write(self, items: Sequence[WriteItem], prepared: Any) -> None:
        loop = asyncio.get_running_loop()
        for cmd, sent in prepared:
            if sent is None:
                continue
            deadline = loop.time() + self.spec.timeout_s * 0.95
            self.health.requests += 1
            if not cmd.rules:
                port = self.port
                if port is None:
                    raise LinkBrokenError("the serial port is not open")
                port.drain()
                port.write(self.proto.frame(sent))
                if cmd.confirm is not None:
                    template, rules = cmd.confirm
                    await self._expect(rules, self.proto.render(template), deadline, sent)
                continue
            await self._expect(cmd.rules, sent, deadline, sent)

    async def _expect(self, rules: tuple[Rule, ...], sent: str, deadline: float,
                      what: str) -> None:
        line = await self._exchange(sent, deadline)
        text, why = self.proto.text_of(line)
        if text is None:
            raise ProtocolError(why)
        out = self.proto.interpret(rules, text, (), sent)
        if out.reason == Reason.DEVICE_ERROR:
            raise DeviceError(f"{what!r} refused: {out.note}")
        if out.reason != Reason.NONE:
            if self.port is not None:
                self.port.drain()
            raise ProtocolError(out.note)

    # -- browse and stats ----------------------------------------------------------------
    async def _browse(self, depth: int) -> BrowseResult:
        notes: list[str] = []
        identity: dict[str, object] = {"mode": self.proto.spec.mode}
        if self.proto.identify is not None and not self.streaming:
            loop = asyncio.get_running_loop()
            try:
                identity.update(await self._identify(loop.time() + self.spec.timeout_s))
            except (ProtocolError, DeviceTimeoutError) as exc:
                notes.append(f"identify failed: {exc.message}")
        points: list[BrowsedPoint] = []
        names = list(dict.fromkeys([*self.proto.producer, *self.proto.writer]))
        for name in names:
            spec = self.proto.fields.get(name)
            readable = name in self.proto.producer
            writable = name in self.proto.writer
            access = "rw" if readable and writable else ("w" if writable else "r")
            source = self.proto.producer.get(name)
            if source == "":
                how = "printed by the instrument (pushed)"
            elif source is not None:
                how = f"query {self.proto.render(self.proto.commands[source].send)!r}"
            else:
                how = f"command {self.proto.commands[self.proto.writer[name]].send.text!r}"
            points.append(BrowsedPoint(
                name=name, address=name, access=access,
                type=_TYPES[spec.type] if spec is not None and spec.decode is None
                else ("string" if spec is not None else "bool"),
                unit=spec.unit if spec is not None else None, description=how))
        if self.streaming:
            notes.append("a streaming instrument: its points are pushed as it prints lines")
        return BrowseResult(identity=identity, points=tuple(points), notes=tuple(notes))

    def _stats(self) -> dict[str, object]:
        stale = self.port.stale_bytes if self.port is not None else 0
        return {**self._counts, "stale_bytes": stale}
