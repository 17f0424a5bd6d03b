"""The ACME Tally driver: ``acme+tcp://host:port?station=N`` (default port 7878).

The protocol, ACME Tally/1: ASCII lines over TCP, each ending in CRLF. The station greets,
then answers one request at a time, in order; between answers it may send events.

===========================  =================================================================
``HELLO ACME-TALLY/1 MAXITEMS=n``  the greeting; ``n`` items at most per request (or
                                   ``ER <code> <text>`` and the station hangs up)
``RD <st> <item>...``        ``OK <item>=<value>@<ns> ...`` — one entry per item, in order;
                             ``<item>=ERR:<code>`` for an item the station does not have
``WR <st> <item>=<value>...``  ``OK`` — all items or none
``SUB <st> <item>...``       ``OK``, then ``EV <st> <item>=<value>@<ns> ...``: the current
                             values at once, then every change as it happens
``UNSUB <st> <item>...``     ``OK``
any request                  ``ER <code> <text>``: the request failed as a whole
===========================  =================================================================

Items are ``CH<n>`` and ``ST``; ``<ns>`` is when the station took the value (ns since the
epoch). Values: integers in decimal (exact for 64 bits), f64 as the shortest decimal that
round-trips (``nan``, ``inf``, ``-inf``), bool as ``0``/``1``, text as percent-encoded
UTF-8 (everything but ``A-Z a-z 0-9 - . _ ~`` encoded). Error codes: 01 syntax, 02 no such
item, 03 bad value, 04 no such station, 05 read-only, 06 too many items, 09 busy.

The driver fills :class:`~smartline.core.DriverBase`'s hooks only: timeouts, reconnects,
backoff, error wrapping and keeping subscriptions alive are the base class's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar, TypeVar
from urllib.parse import quote_from_bytes, unquote_to_bytes

from smartline.core import (
    Clock,
    ClosedError,
    ConnectError,
    DeviceError,
    DeviceSpec,
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
    SmartlineError,
    Subscription,
    WriteItem,
    WriteRefusedError,
)
from smartline.tags import DataType, coerce_raw

from .address import FAMILY_NAME, TEXT_BYTES, TallyAddress
from .family import DEFAULT_PORT, FAMILY, TallyOptions

__all__ = ["TallyDriver", "TallyPlan"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_LINE_LIMIT = 1 << 20  # bytes in one line; 64 items of 64-byte text are ~13 KiB
_HELLO = re.compile(r"HELLO ACME-TALLY/1 MAXITEMS=([1-9][0-9]{0,3})")
_ER = re.compile(r"ER ([0-9]{2}) ?(.*)")
_ITEM = re.compile(r"ST|CH[1-9][0-9]{0,2}")
_DECIMAL = re.compile(r"[0-9]+")
_INTEGER = re.compile(r"-?[0-9]+")
_FLOAT = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[-+]?inf|nan")
_ENCODED = re.compile(r"(?:[A-Za-z0-9._~-]|%[0-9A-Fa-f]{2})*")

Value = bool | int | float | str


@dataclass(frozen=True, slots=True)
class TallyPlan:
    """A compiled read: the items of each request (at most the batch size each) and the
    points each item fills (two tags may read one channel, each in its own type)."""

    batches: tuple[tuple[str, ...], ...]
    points: Mapping[str, tuple[Point, ...]]

    @property
    def request_count(self) -> int:
        return len(self.batches)


@dataclass(slots=True)
class _Route:
    """Where the events of one subscription go. While its SUB requests are in progress
    (one per batch of items) the values are held and then delivered as one result."""

    points: Mapping[str, tuple[Point, ...]]
    holding: bool = True
    held: ResultBuilder | None = None


@dataclass(frozen=True, slots=True)
class _Entry:
    """One ``item=value@ns`` (or ``item=ERR:code``) of an answer or an event."""

    item: str
    text: str | None  # None: the station answered ERR:code for this item
    source_ns: int = 0
    code: int = 0


class TallyDriver(DriverBase[TallyPlan, TallyOptions]):
    """Reads, writes and subscribes to one ACME Tally station over its own TCP connection."""

    #: the family object: hand-made specs parse URL parameters as the line loader does
    family_plugin: ClassVar[DriverFamily | None] = FAMILY
    family: ClassVar[str] = FAMILY_NAME
    options_type: ClassVar[type[Any]] = TallyOptions

    def __init__(self, spec: DeviceSpec, *, clock: Clock | None = None, rng: Any = None,
                 links: LinkPool | None = None) -> None:
        super().__init__(spec, clock=clock, rng=rng, links=links)
        self._batch = self.options.max_batch  # until the station's greeting says otherwise
        self._writer: asyncio.StreamWriter | None = None
        self._receiver: asyncio.Task[None] | None = None
        self._pending: deque[asyncio.Future[str]] = deque()
        self._routes: dict[Subscription, _Route] = {}
        self._events = 0
        self._wire = logging.getLogger(f"smartline.wire.{spec.name}")

    # -- connection ------------------------------------------------------------------------
    async def _connect(self) -> None:
        url = self.spec.url
        port = url.port if url.port is not None else DEFAULT_PORT
        reader, writer = await asyncio.open_connection(url.host or "127.0.0.1", port,
                                                       limit=_LINE_LIMIT)
        self._writer = writer
        hello = _line(await reader.readline())
        if hello is None:
            raise ConnectError("the station closed the connection without a greeting")
        refused = _ER.fullmatch(hello)
        if refused is not None:
            raise ConnectError(f"the station refused the connection: {refused[2]} "
                               f"(ACME error {refused[1]})")
        greeting = _HELLO.fullmatch(hello)
        if greeting is None:
            raise ProtocolError(f"expected the greeting 'HELLO ACME-TALLY/1 MAXITEMS=n', "
                                f"found {hello[:60]!r}")
        batch = min(self.options.max_batch, int(greeting[1]))
        if batch != self._batch:  # plans made with the old batch size are made again
            self._batch = batch
            self.renegotiated()
        self._pending.clear()
        self._receiver = asyncio.create_task(self._receive(reader),
                                             name=f"acme-tally-{self.spec.name}")

    async def _close(self) -> None:
        receiver, self._receiver = self._receiver, None
        writer, self._writer = self._writer, None
        if receiver is not None:
            receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await receiver
        for future in self._pending:  # only a close() during an operation leaves one
            if not future.done():
                future.set_exception(ClosedError("driver is closed") if self.closed
                                     else LinkBrokenError("the connection was closed"))
                future.exception()  # retrieved: its waiter may be gone already
        self._pending.clear()
        self._routes.clear()  # the station forgets subscriptions with the connection
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _receive(self, reader: asyncio.StreamReader) -> None:
        """Route every line: events to subscriptions, anything else to the request waiting."""
        error: SmartlineError
        try:
            while True:
                line = _line(await reader.readline())
                if line is None:
                    error = LinkBrokenError("the station closed the connection")
                    break
                self._wire.debug("<- %s", line)
                if line.startswith("EV "):
                    self._event(line)
                elif self._pending:
                    future = self._pending.popleft()
                    if not future.done():  # a request cancelled meanwhile: its answer is dropped
                        future.set_result(line)
                else:
                    raise ProtocolError(f"unsolicited line from the station: {line[:60]!r}")
        except SmartlineError as exc:
            error = exc
        except ValueError:  # asyncio's LimitOverrunError: no end of line in sight
            error = ProtocolError(f"a line longer than {_LINE_LIMIT} bytes")
        except OSError as exc:
            error = LinkBrokenError(f"receive failed: {exc}")
        waiting = [f for f in self._pending if not f.done()]
        self._pending.clear()
        if waiting:  # the request in progress fails, and the base class drops the link
            for future in waiting:
                future.set_exception(error)
        else:  # nothing in progress: tell the base class, which reconnects and re-subscribes
            self.connection_lost(error)

    async def _request(self, line: str) -> str:
        """Send one request; return what follows ``OK``. ``ER`` raises DeviceError."""
        writer, receiver = self._writer, self._receiver
        if writer is None or receiver is None or receiver.done():
            raise LinkBrokenError("the connection to the station is gone")
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._pending.append(future)
        self._wire.debug("-> %s", line)
        writer.write(line.encode("ascii") + b"\r\n")
        self.health.requests += 1
        await writer.drain()
        reply = await future
        if reply == "OK":
            return ""
        if reply.startswith("OK "):
            return reply[3:]
        failed = _ER.fullmatch(reply)
        if failed is not None:
            raise DeviceError(f"station {self.options.station}: {failed[2]} (ACME error "
                              f"{failed[1]})", code=int(failed[1]))
        raise ProtocolError(f"expected OK or ER, found {reply[:60]!r}")

    async def _command(self, verb: str, items: Sequence[str]) -> None:
        """Send ``verb`` for ``items`` in requests of at most the batch size; each answers OK."""
        for batch in _chunks(items, self._batch):
            rest = await self._request(f"{verb} {self.options.station} {' '.join(batch)}")
            if rest:
                raise ProtocolError(f"expected a bare OK to {verb}, found 'OK {rest[:40]}'")

    # -- reading ---------------------------------------------------------------------------
    def _plan(self, points: Sequence[Point]) -> TallyPlan:
        by_item = _by_item(points)
        return TallyPlan(tuple(_chunks(list(by_item), self._batch)), by_item)

    async def _read(self, plan: ReadPlan[TallyPlan]) -> ReadResult:
        compiled = plan.compiled
        answers: list[_Entry] = []
        for batch in compiled.batches:
            body = await self._request(f"RD {self.options.station} {' '.join(batch)}")
            answers += _entries(body, batch)
        builder = ResultBuilder(plan.points, self.clock.wall_ns())
        for entry in answers:
            for point in compiled.points[entry.item]:
                _fill(builder, point, entry)
        return builder.build(requests=compiled.request_count)

    # -- writing ---------------------------------------------------------------------------
    def _prepare_write(self, items: Sequence[WriteItem]) -> list[str]:
        """``CH<n>=<value>`` for every item, or a refusal before anything is sent."""
        pairs: list[str] = []
        for it in items:
            address = it.point.address
            assert isinstance(address, TallyAddress)
            if address.channel is None:
                raise WriteRefusedError("ST, the station's status word, is read-only",
                                        tag=it.point.tag)
            try:
                pairs.append(f"{address.item}={_encode(address.dtype, it.value)}")
            except ValueError as exc:
                raise WriteRefusedError(f"{address.canonical()}: {exc}",
                                        tag=it.point.tag) from None
        return pairs

    async def _write(self, items: Sequence[WriteItem], prepared: Any) -> None:
        await self._command("WR", prepared)

    # -- pushing ---------------------------------------------------------------------------
    def _pushes(self, point: Point) -> bool:
        return self.options.subscribe

    async def _subscribe(self, subscription: Subscription) -> None:
        route = _Route(_by_item(subscription.points))
        self._routes[subscription] = route  # before SUB: the current values follow its OK
        try:
            await self._command("SUB", list(route.points))
        except BaseException:
            self._routes.pop(subscription, None)
            raise
        route.holding = False
        if route.held is not None:
            subscription.deliver(route.held.build(only_set=True))  # counted in health.pushes
            route.held = None

    async def _unsubscribe(self, subscription: Subscription) -> None:
        mine = self._routes.pop(subscription, None)
        if mine is None:
            return
        still = {item for route in self._routes.values() for item in route.points}
        await self._command("UNSUB", [item for item in mine.points if item not in still])

    def _event(self, line: str) -> None:
        parts = line.split(" ", 2)
        if len(parts) != 3 or not _DECIMAL.fullmatch(parts[1]):
            raise ProtocolError(f"malformed event {line[:60]!r}")
        if int(parts[1]) != self.options.station:
            return  # another station behind the same gateway
        entries = _entries(parts[2], None)
        self._events += 1
        for subscription, route in list(self._routes.items()):
            hits = [(e, p) for e in entries for p in route.points.get(e.item, ())]
            if not hits or not subscription.active:
                continue
            if route.holding:
                if route.held is None:
                    route.held = subscription.builder()
                builder = route.held
            else:
                builder = subscription.builder()
            for entry, point in hits:
                _fill(builder, point, entry)
            if not route.holding:
                subscription.deliver(builder.build(only_set=True))

    def _stats(self) -> dict[str, object]:
        return {"events": self._events, "batch": self._batch}


# -- the wire format ---------------------------------------------------------------------------

def _line(raw: bytes) -> str | None:
    """One received line without its CRLF; None at the end of the stream."""
    if not raw.endswith(b"\n"):
        return None
    try:
        return raw.decode("ascii").rstrip("\r\n")
    except UnicodeDecodeError:
        raise ProtocolError(f"bytes that are not ACME Tally from the station: {raw[:40]!r}"
                            ) from None


def _chunks(items: Sequence[T], size: int) -> list[tuple[T, ...]]:
    return [tuple(items[i:i + size]) for i in range(0, len(items), size)]


def _by_item(points: Sequence[Point]) -> Mapping[str, tuple[Point, ...]]:
    grouped: dict[str, list[Point]] = {}
    for p in points:
        address = p.address
        assert isinstance(address, TallyAddress)
        grouped.setdefault(address.item, []).append(p)
    return MappingProxyType({item: tuple(ps) for item, ps in grouped.items()})


def _entries(body: str, asked: Sequence[str] | None) -> list[_Entry]:
    """The ``item=value@ns`` entries of an answer (to ``asked``, in order) or of an event."""
    tokens = body.split(" ") if body else []
    if asked is not None and len(tokens) != len(asked):
        raise ProtocolError(f"{len(tokens)} values in the answer to {len(asked)} items")
    out: list[_Entry] = []
    for i, token in enumerate(tokens):
        item, eq, rest = token.partition("=")
        if not eq or not _ITEM.fullmatch(item):
            raise ProtocolError(f"malformed value {token[:40]!r}")
        if asked is not None and item != asked[i]:
            raise ProtocolError(f"the answer gives {item} where {asked[i]} was asked")
        if rest.startswith("ERR:"):
            if not re.fullmatch(r"[0-9]{2}", rest[4:]):
                raise ProtocolError(f"malformed error code {token[:40]!r}")
            out.append(_Entry(item, None, code=int(rest[4:])))
            continue
        text, at, stamp = rest.rpartition("@")
        if not at or not _DECIMAL.fullmatch(stamp):
            raise ProtocolError(f"value without a time stamp: {token[:40]!r}")
        out.append(_Entry(item, text, int(stamp)))
    return out


def _fill(builder: ResultBuilder, point: Point, entry: _Entry) -> None:
    """Set ``point`` from ``entry``: GOOD, BAD with DEVICE_ERROR (the station has no such
    item) or BAD with DECODE_ERROR (the value is not of the address's type)."""
    if entry.text is None:
        builder.fail(point, Reason.DEVICE_ERROR)
        return
    address = point.address
    assert isinstance(address, TallyAddress)
    value = _decode(address.dtype, entry.text)
    if value is None:
        builder.fail(point, Reason.DECODE_ERROR)
    else:
        builder.set(point, value, entry.source_ns)


def _decode(dtype: DataType, text: str) -> Value | None:
    """The value ``text`` stands for as ``dtype``; None if it is not one."""
    if dtype is DataType.STRING:
        if not _ENCODED.fullmatch(text):
            return None
        try:
            return unquote_to_bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            return None
    if dtype is DataType.BOOL:
        return {"0": False, "1": True}.get(text)
    if dtype is DataType.FLOAT64:
        return float(text) if _FLOAT.fullmatch(text) else None
    if not _INTEGER.fullmatch(text):
        return None
    number = int(text)
    low, high = dtype.range
    return number if low <= number <= high else None


def _encode(dtype: DataType, value: object) -> str:
    """``value`` as the wire text of a ``dtype`` channel; ``ValueError`` says why it cannot be."""
    if isinstance(value, tuple | list):
        raise ValueError("a channel holds one value, not a sequence")
    if dtype is DataType.STRING:
        if not isinstance(value, str):
            raise ValueError(f"expected text, found {type(value).__name__} {value!r}")
        try:
            data = value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"text {value!r} cannot be encoded as UTF-8") from None
        if len(data) > TEXT_BYTES:
            raise ValueError(f"text is {len(data)} bytes long: a channel holds at most "
                             f"{TEXT_BYTES}")
        return quote_from_bytes(data, safe="")
    number = coerce_raw(dtype, value)  # refuses text, 1.5 for an integer, out-of-range values
    if dtype is DataType.BOOL:
        return "1" if number else "0"
    if dtype is DataType.FLOAT64:
        return repr(float(number))
    return str(int(number))
