"""``mtconnect+http://host:port[/device]`` — a CNC machine through an MTConnect agent.

On connect the driver reads ``/probe`` (devices, components, data items) and ``/current``
(the latest value of every data item and ``nextSequence``). Polled reads then ask
``/sample?from=<next>`` and keep the sequence; a line that subscribes gets a streaming
``/sample?interval=…`` kept open, its multipart documents parsed as they arrive and pushed,
heartbeats as liveness. Gaps (``from`` fell out of the agent's ring: OUT_OF_RANGE) are
logged with the number of observations lost and recovered with ``/current``; an agent
restart (new ``instanceId``) or a new ``deviceModelChangeTime`` means probe again.

Addresses are data item ids or names (``Xact``, ``d1_xpos``), resolved against the probe:
id first, then name (a name several data items share is an error naming their ids);
``NAME.active`` is the text of a condition's active entries. Values: SAMPLE → float,
EVENT → text (integers for counts such as PART_COUNT), CONDITION → ``normal``,
``warning``, ``fault`` or ``unavailable``; ``UNAVAILABLE`` → BAD with a note. MTConnect is
read-only: writes are refused before any I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import aiohttp

from ....core import (
    BrowsedPoint,
    BrowseResult,
    Clock,
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
from ...families.cnc import FAMILY, CncOptions
from ._multipart import PartSplitter, boundary_of
from ._xml import (
    DataItem,
    DeviceModel,
    ErrorDoc,
    Observation,
    StreamsDoc,
    parse_document,
    timestamp_ns,
)

__all__ = ["MtConnectDriver", "MtConnectPlan", "Target"]

log = logging.getLogger(__name__)

UNAVAILABLE_NOTE = "unavailable (adapter disconnected or no data)"

#: EVENT types whose values are counts: delivered as integers
INTEGER_EVENTS = frozenset({
    "PART_COUNT", "LINE", "LINE_NUMBER", "TOOL_NUMBER", "POCKET_NUMBER", "BLOCK_COUNT",
    "TOOL_OFFSET", "PALLET_ID", "SEQUENCE_NUMBER", "CYCLE_COUNT",
})
_ACTIVE = ".active"
_NUMBERS = re.compile(r"\s*[-+0-9.eE]+(?:\s+[-+0-9.eE]+)+\s*")


@dataclass(frozen=True, slots=True)
class Target:
    """What one point reads: a data item (or its active conditions), or why none."""

    point: Point
    item: DataItem | None
    active: bool = False  # NAME.active: the condition's active entries as text
    error: str | None = None


@dataclass(frozen=True, slots=True)
class MtConnectPlan:
    """Points resolved against one probe (``model_epoch``); one ``/sample`` per read."""

    targets: tuple[Target, ...]
    model_epoch: int

    @property
    def request_count(self) -> int:
        return 1

    @property
    def unknown(self) -> dict[str, str]:
        """Tags whose address the probe does not resolve, with the reason."""
        return {t.point.tag: t.error for t in self.targets if t.error}


@dataclass(slots=True)
class _Condition:
    """A condition data item's state: its active entries by native code."""

    active: dict[str, Observation] = field(default_factory=dict)
    base: str = "normal"  # normal or unavailable, when nothing is active
    last: Observation | None = None

    @property
    def state(self) -> str:
        levels = {o.element for o in self.active.values()}
        if "Fault" in levels:
            return "fault"
        if "Warning" in levels:
            return "warning"
        return self.base

    def describe(self) -> str:
        out = []
        for code, o in self.active.items():
            qualifier = f" [{o.qualifier}]" if o.qualifier else ""
            text = f": {o.value}" if o.value else ""
            out.append(f"{o.element.lower()} {code or '-'}{qualifier}{text}")
        return "; ".join(out)


@dataclass(slots=True)
class _Push:
    """A subscription's points by data item id."""

    by_item: dict[str, list[Target]]
    targets: tuple[Target, ...]


class _RefreshError(Exception):
    """The stream must be reopened from the new ``nextSequence`` (gap or restart)."""


class MtConnectDriver(DriverBase[MtConnectPlan, CncOptions]):
    """Reads an MTConnect agent's data items by id or name; pushes them from a stream."""

    family_plugin: ClassVar[DriverFamily | None] = FAMILY
    family: ClassVar[str] = "cnc"
    options_type: ClassVar[type[Any]] = CncOptions

    def __init__(self, spec: DeviceSpec, *, clock: Clock | None = None,
                 rng: Any = None, links: LinkPool | None = None) -> None:
        super().__init__(spec, clock=clock, rng=rng, links=links)
        url = spec.url
        device = url.path.strip("/")
        self.device_path = device
        self._base = f"http://{url.host}:{url.port or 5000}/" + (f"{device}/" if device else "")
        self._session: aiohttp.ClientSession | None = None
        self._model: DeviceModel | None = None
        self._model_epoch = 0
        self._instance: str | None = None
        self._model_time: str | None = None
        self._next = 0
        self._latest: dict[str, Observation] = {}
        self._conditions: dict[str, _Condition] = {}
        self._seen: dict[str, int] = {}  # data item id -> last sequence applied
        self._stream_task: asyncio.Task[None] | None = None
        self._stream_live = False
        self._warned: set[str] = set()
        self._counters: dict[str, int] = dict.fromkeys(
            ("gaps", "observations_lost", "restarts", "probes", "currents", "samples",
             "model_changes", "observations", "documents", "stream_parts", "heartbeats",
             "streams_opened", "bytes", "refused_documents", "catchup_jumps"), 0)

    # -- hooks ------------------------------------------------------------------------
    async def _connect(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None),
            connector=aiohttp.TCPConnector(limit=4),
            headers={"Accept": "application/xml, text/xml"})
        await self._probe()
        await self._refresh_current()

    async def _close(self) -> None:
        task, self._stream_task = self._stream_task, None
        self._stream_live = False
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _plan(self, points: Sequence[Point]) -> MtConnectPlan:
        targets = tuple(self._resolve(p) for p in points)
        if self._model is None:  # planned before the first probe: resolved again after it
            return MtConnectPlan(targets, self._model_epoch)
        for t in targets:
            if t.error and t.point.tag not in self._warned:
                self._warned.add(t.point.tag)
                log.warning("%s: %s: %s", self.spec.name, t.point.tag, t.error)
        return MtConnectPlan(targets, self._model_epoch)

    async def _read(self, plan: ReadPlan[MtConnectPlan]) -> ReadResult:
        requests = 0
        if not self._stream_live:
            requests = await self._poll()
        if plan.compiled.model_epoch != self._model_epoch:
            plan.compiled = self._plan(plan.points)
        b = ResultBuilder(plan.points, self.clock.wall_ns())
        for t in plan.compiled.targets:
            self._fill(b, t)
        return b.build(requests=requests)

    def _prepare_write(self, items: Sequence[WriteItem]) -> Any:
        tags = ", ".join(it.point.tag for it in items)
        raise WriteRefusedError(f"MTConnect is read-only: the agent publishes observations "
                                f"and takes no writes (refused: {tags})")

    async def _write(self, items: Sequence[WriteItem], prepared: Any) -> None:
        raise WriteRefusedError("MTConnect is read-only")

    def _pushes(self, point: Point) -> bool:
        return bool(self.options.stream)

    async def _subscribe(self, subscription: Subscription) -> None:
        targets = tuple(self._resolve(p) for p in subscription.points)
        by_item: dict[str, list[Target]] = {}
        for t in targets:
            if t.item is not None:
                by_item.setdefault(t.item.id, []).append(t)
        subscription.handle = _Push(by_item, targets)
        self._deliver_all(subscription)
        if self._stream_task is None or self._stream_task.done():
            # the subscription stands once the agent has answered the streaming request
            ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            # retrieved even when _subscribe gave up waiting (its timeout)
            ready.add_done_callback(lambda f: f.cancelled() or f.exception())
            self._stream_task = asyncio.ensure_future(self._stream(ready))
            await asyncio.shield(ready)

    async def _unsubscribe(self, subscription: Subscription) -> None:
        subscription.handle = None
        if not any(s.active and s is not subscription for s in self._subs):
            task, self._stream_task = self._stream_task, None
            self._stream_live = False
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    def _stats(self) -> dict[str, object]:
        return {**self._counters, "next_sequence": self._next,
                "instance_id": self._instance, "streaming": self._stream_live}

    async def _browse(self, depth: int) -> BrowseResult:
        model = await self._probe()
        by_name = model.by_name
        points: list[BrowsedPoint] = []
        skipped: list[str] = []
        for item in model.items.values():
            name = item.name
            address = name if name and len(by_name.get(name, ())) == 1 \
                and name not in model.items and _valid_name(name) else item.id
            if not _valid_name(address):
                skipped.append(item.id)
                continue
            kind = f"{item.category} {item.type}" + (f"/{item.sub_type}"
                                                     if item.sub_type else "")
            where = f"{item.device} {item.component}, id {item.id}"
            if name and address != name:
                where += f", name {name} (shared: address by id)"
            parts = [_suggest(item.component), name or item.id]
            if len(model.devices) > 1:
                parts.insert(0, item.device)
            suggested = ".".join(parts)
            points.append(BrowsedPoint(name=suggested, address=address, access="r",
                                       type=kind, unit=item.units, description=where))
            if item.category == "CONDITION":
                points.append(BrowsedPoint(
                    name=suggested + ".active", address=address + _ACTIVE, access="r",
                    type=f"{kind} active entries", description=f"{where}: active "
                    "conditions as text"))
        h = model.header
        identity: dict[str, object] = {
            "protocol": "MTConnect", "agent": self._base, "sender": h.sender,
            "version": h.version, "instanceId": h.instance_id,
            "devices": [f"{d.name} (uuid {d.uuid})" for d in model.devices]}
        notes = [f"{len(model.items)} data items; addresses are names where unique, "
                 "ids otherwise; MTConnect is read-only"]
        if skipped:
            notes.append("data items whose ids are not valid addresses left out: "
                         + ", ".join(skipped))
        return BrowseResult(identity=identity, points=tuple(points), notes=tuple(notes))

    # -- resolution ----------------------------------------------------------------------
    def _resolve(self, point: Point) -> Target:
        model = self._model
        if model is None:
            return Target(point, None, error="not resolved yet: the agent was not probed")
        text = point.address.canonical()
        found = self._lookup(model, text)
        if isinstance(found, DataItem):
            return Target(point, found)
        if text.endswith(_ACTIVE):
            base = self._lookup(model, text[:-len(_ACTIVE)])
            if isinstance(base, DataItem):
                if base.category != "CONDITION":
                    return Target(point, None, error=(
                        f"{text!r}: '{_ACTIVE}' reads a condition's active entries, and "
                        f"{base.id} is a {base.category} ({base.type})"))
                return Target(point, base, active=True)
        if isinstance(found, str):
            return Target(point, None, error=found)
        scope = f"device {self.device_path}" if self.device_path else "the agent"
        names = list(model.items) + [n for n in model.by_name if n not in model.items]
        near = near_matches(text, names)
        hint = f"; near matches: {', '.join(near)}" if near else "; browse the agent to list them"
        return Target(point, None, error=f"no data item {text!r} in the probe of {scope}{hint}")

    @staticmethod
    def _lookup(model: DeviceModel, text: str) -> DataItem | str | None:
        item = model.items.get(text)
        if item is not None:
            return item
        named = model.by_name.get(text, [])
        if len(named) == 1:
            return named[0]
        if named:
            ids = ", ".join(f"{i.id} ({i.device} {i.component})" for i in named)
            return f"the name {text!r} is ambiguous: data items {ids}; address one by its id"
        return None

    # -- values --------------------------------------------------------------------------
    def _fill(self, b: ResultBuilder, t: Target) -> None:
        p, item = t.point, t.item
        if item is None:
            b.fail(p, Reason.DEVICE_ERROR, note=t.error)
            return
        if item.category == "CONDITION":
            cond = self._conditions.get(item.id)
            if cond is None or cond.last is None:
                b.fail(p, Reason.NOT_READ, note=f"the agent reported no value for {item.id}")
                return
            source = timestamp_ns(cond.last.timestamp)
            b.set(p, cond.describe() if t.active else cond.state, source)
            return
        obs = self._latest.get(item.id)
        if obs is None:
            b.fail(p, Reason.NOT_READ, note=f"the agent reported no value for {item.id}")
            return
        value = obs.value
        if value == "UNAVAILABLE":
            b.fail(p, Reason.DEVICE_ERROR, note=UNAVAILABLE_NOTE)
            return
        source = timestamp_ns(obs.timestamp)
        if item.category == "SAMPLE":
            try:
                b.set(p, float(value), source)
            except ValueError:
                if _NUMBERS.fullmatch(value):  # a 3D or time-series sample: as text
                    b.set(p, " ".join(value.split()), source)
                else:
                    b.fail(p, Reason.DECODE_ERROR,
                           note=f"sample {item.id} is {value!r}: expected a number")
            return
        if item.type in INTEGER_EVENTS:
            try:
                b.set(p, int(value), source)
            except ValueError:
                b.fail(p, Reason.DECODE_ERROR,
                       note=f"{item.type} {item.id} is {value!r}: expected an integer")
            return
        b.set(p, value, source)

    def _apply(self, observations: Sequence[Observation]) -> set[str]:
        """Take a sample's observations in (each data item's in sequence order); the ids
        of the data items that changed."""
        changed: set[str] = set()
        seen = self._seen
        latest = self._latest
        for o in observations:
            item = o.item_id
            if o.sequence <= seen.get(item, 0):
                continue  # already applied (a poll and the stream overlapped)
            seen[item] = o.sequence
            if o.category == "CONDITION":
                self._apply_condition(o)
            else:
                latest[item] = o
            changed.add(item)
        self._counters["observations"] += len(observations)
        return changed

    def _apply_condition(self, o: Observation) -> None:
        cond = self._conditions.setdefault(o.item_id, _Condition())
        level = o.element
        if level in ("Warning", "Fault"):
            cond.active[o.native_code or ""] = o
        elif level == "Normal" and o.native_code:
            cond.active.pop(o.native_code, None)
            cond.base = "normal"
        elif level == "Unavailable":
            cond.active.clear()
            cond.base = "unavailable"
        else:  # Normal without a code clears them all
            cond.active.clear()
            cond.base = "normal"
        cond.last = o

    # -- HTTP ----------------------------------------------------------------------------
    async def _get(self, what: str) -> DeviceModel | StreamsDoc | ErrorDoc:
        session = self._session
        if session is None:
            raise LinkBrokenError("not connected")
        self.health.requests += 1
        async with session.get(self._base + what) as resp:
            data = await self._body(resp, what)
            status = resp.status
        doc = self._parse(data, what)
        if status >= 400 and not isinstance(doc, ErrorDoc):
            raise ProtocolError(f"the agent answered {what} with HTTP {status} and a "
                                f"{type(doc).__name__}")
        return doc

    async def _body(self, resp: aiohttp.ClientResponse, what: str) -> bytes:
        limit = self.options.max_document_bytes
        if resp.content_length is not None and resp.content_length > limit:
            self._counters["refused_documents"] += 1
            raise ProtocolError(f"the answer to {what} is {resp.content_length} bytes: more "
                                f"than max_document_bytes ({limit}); refused unread")
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_any():
            size += len(chunk)
            if size > limit:
                self._counters["refused_documents"] += 1
                raise ProtocolError(f"the answer to {what} grew past max_document_bytes "
                                    f"({limit}) while reading; refused unparsed")
            chunks.append(chunk)
        self._counters["bytes"] += size
        return b"".join(chunks)

    def _parse(self, data: bytes, what: str) -> DeviceModel | StreamsDoc | ErrorDoc:
        try:
            doc = parse_document(data, what)
        except ProtocolError:
            self._counters["refused_documents"] += 1
            raise
        self._counters["documents"] += 1
        return doc

    async def _probe(self) -> DeviceModel:
        doc = await self._get("probe")
        if isinstance(doc, ErrorDoc):
            raise DeviceError(f"the agent refused /probe: {doc.describe()}")
        if not isinstance(doc, DeviceModel):
            raise ProtocolError("the answer to probe is not an MTConnectDevices document")
        self._counters["probes"] += 1
        old = self._model
        self._model = doc
        self._model_time = doc.header.model_change_time
        if self._instance is not None and doc.header.instance_id != self._instance:
            self._counters["restarts"] += 1
            log.warning("%s: the agent restarted (instanceId %s -> %s)", self.spec.name,
                        self._instance, doc.header.instance_id)
            self._seen.clear()
        self._instance = doc.header.instance_id
        if old is None or old.items != doc.items:
            self._model_epoch += 1
            self.renegotiated()
            self._warned.clear()
            self._reresolve()
        return doc

    async def _refresh_current(self, again: bool = True) -> StreamsDoc:
        doc = await self._get("current")
        if isinstance(doc, ErrorDoc):
            raise DeviceError(f"the agent refused /current: {doc.describe()}")
        if not isinstance(doc, StreamsDoc):
            raise ProtocolError("the answer to current is not an MTConnectStreams document")
        self._counters["currents"] += 1
        if doc.header.instance_id != self._instance:
            if not again:
                raise ProtocolError(f"the agent's instanceId keeps changing "
                                    f"({self._instance} -> {doc.header.instance_id})")
            await self._probe()
            return await self._refresh_current(again=False)
        self._latest.clear()
        self._conditions.clear()
        self._seen.clear()
        for o in doc.observations:  # /current lists every active condition
            if o.category == "CONDITION":
                cond = self._conditions.setdefault(o.item_id, _Condition())
                if o.element in ("Warning", "Fault"):
                    cond.active[o.native_code or ""] = o
                else:
                    cond.base = "unavailable" if o.element == "Unavailable" else "normal"
                if cond.last is None or o.sequence >= cond.last.sequence:
                    cond.last = o
            else:
                self._latest[o.item_id] = o
            self._seen[o.item_id] = max(self._seen.get(o.item_id, 0), o.sequence)
        self._next = doc.header.next_sequence or 0
        return doc

    async def _check_header(self, doc: StreamsDoc | ErrorDoc) -> bool:
        """Re-probe after a restart or a device model change; True if everything was
        read again (the document itself is then stale)."""
        h = doc.header
        if h.instance_id != self._instance:
            await self._probe()
            await self._refresh_current()
            return True
        if h.model_change_time is not None and self._model_time is not None \
                and h.model_change_time != self._model_time:
            self._counters["model_changes"] += 1
            log.info("%s: the device model changed (%s): probing again", self.spec.name,
                     h.model_change_time)
            await self._probe()
            await self._refresh_current()
            return True
        return False

    async def _gap(self, asked: int, doc: ErrorDoc | None) -> None:
        """``from`` left the agent's ring: count what was lost, start again at /current."""
        current = await self._refresh_current()
        first = current.header.first_sequence
        lost = max(0, first - asked) if first is not None else 0
        self._counters["gaps"] += 1
        self._counters["observations_lost"] += lost
        why = doc.describe() if doc is not None else f"firstSequence is {first}"
        log.warning("%s: gap in the agent's observations: asked from %d, %s; %d "
                    "observation(s) lost; continuing from /current (nextSequence %d)",
                    self.spec.name, asked, why, lost, self._next)

    async def _poll(self) -> int:
        """Catch up with ``/sample?from=<next>``; the requests sent."""
        requests = 0
        for _ in range(8):
            asked = self._next
            doc = await self._get(f"sample?from={asked}&count={self.options.sample_count}")
            requests += 1
            self._counters["samples"] += 1
            if isinstance(doc, DeviceModel):
                raise ProtocolError("the answer to sample is an MTConnectDevices document")
            if await self._check_header(doc):
                return requests + 2
            if isinstance(doc, ErrorDoc):
                if doc.has("OUT_OF_RANGE"):
                    await self._gap(asked, doc)
                    return requests + 1
                raise DeviceError(f"the agent refused /sample: {doc.describe()}")
            assert isinstance(doc, StreamsDoc)
            h = doc.header
            if h.first_sequence is not None and asked < h.first_sequence:
                await self._gap(asked, None)
                return requests + 1
            self._apply(doc.observations)
            self._next = h.next_sequence if h.next_sequence is not None else self._next
            if h.last_sequence is None or self._next > h.last_sequence:
                return requests
        self._counters["catchup_jumps"] += 1  # far behind: the latest values will do
        await self._refresh_current()
        return requests + 1

    # -- streaming -----------------------------------------------------------------------
    async def _stream(self, ready: asyncio.Future[None]) -> None:
        """Keep a streaming /sample open and push what it brings, until cancelled;
        ``ready`` is resolved when the agent first answers with a stream."""
        try:
            while True:
                try:
                    await self._stream_once(ready)
                except _RefreshError:
                    self._deliver_everything()
                    continue
                raise LinkBrokenError("the agent ended the stream")
        except asyncio.CancelledError:
            if not ready.done():
                ready.cancel()
            raise
        except Exception as exc:
            self._stream_live = False
            if not ready.done():  # _subscribe is waiting: it fails, and the base reconnects
                ready.set_exception(exc)
                return
            log.info("%s: stream ended: %s", self.spec.name, exc)
            self.connection_lost(exc)

    async def _stream_once(self, ready: asyncio.Future[None]) -> None:
        session = self._session
        if session is None:
            raise LinkBrokenError("not connected")
        o = self.options
        asked = self._next
        what = (f"sample?from={asked}&count={o.sample_count}&interval={o.interval_ms}"
                f"&heartbeat={o.heartbeat_ms}")
        liveness_s = o.heartbeat_ms / 1000 * 2 + self.spec.timeout_s
        self.health.requests += 1
        self._counters["streams_opened"] += 1
        async with asyncio.timeout(self.spec.timeout_s):
            resp = await session.get(self._base + what)
        async with resp:
            boundary = boundary_of(resp.headers.get("Content-Type", ""))
            if boundary is None:  # not streamed: one document, e.g. an error
                async with asyncio.timeout(self.spec.timeout_s):
                    doc = self._parse(await self._body(resp, what), what)
                await self._stream_doc(doc, asked)
                raise ProtocolError(f"the agent does not stream /sample (HTTP {resp.status}, "
                                    f"{resp.headers.get('Content-Type')!r})")
            splitter = PartSplitter(boundary, o.max_document_bytes)
            self._stream_live = True
            if not ready.done():
                ready.set_result(None)
            try:
                while True:
                    try:
                        async with asyncio.timeout(liveness_s):
                            chunk = await resp.content.readany()
                    except TimeoutError:
                        raise DeviceTimeoutError(
                            f"no document or heartbeat from the agent's stream within "
                            f"{liveness_s:g} s") from None
                    if not chunk:
                        return
                    self._counters["bytes"] += len(chunk)
                    for part in splitter.feed(chunk):
                        self._counters["stream_parts"] += 1
                        try:
                            doc = self._parse(part, "the streamed /sample")
                        except ProtocolError:
                            raise
                        await self._stream_doc(doc, self._next)
            finally:
                self._stream_live = False

    async def _stream_doc(self, doc: DeviceModel | StreamsDoc | ErrorDoc, asked: int) -> None:
        if isinstance(doc, DeviceModel):
            raise ProtocolError("the agent streamed an MTConnectDevices document")
        async with asyncio.timeout(self.spec.timeout_s * 4):
            if await self._check_header(doc):
                raise _RefreshError
            if isinstance(doc, ErrorDoc):
                if doc.has("OUT_OF_RANGE"):
                    await self._gap(asked, doc)
                    raise _RefreshError
                raise DeviceError(f"the agent's stream ended with an error: {doc.describe()}")
        h = doc.header
        if not doc.observations:
            self._counters["heartbeats"] += 1
        changed = self._apply(doc.observations)
        if h.next_sequence is not None:
            self._next = h.next_sequence
        if changed:
            self._deliver(changed)

    # -- delivery ------------------------------------------------------------------------
    def _deliver(self, changed: set[str]) -> None:
        for sub in self._subs:
            push = sub.handle
            if not sub.active or not isinstance(push, _Push):
                continue
            hits = [t for item in changed for t in push.by_item.get(item, ())]
            if not hits:
                continue
            b = sub.builder()
            for t in hits:
                self._fill(b, t)
            sub.deliver(b.build(only_set=True))

    def _deliver_all(self, sub: Subscription) -> None:
        push = sub.handle
        if not isinstance(push, _Push):
            return
        b = sub.builder()
        for t in push.targets:
            self._fill(b, t)
        sub.deliver(b.build(only_set=True))

    def _deliver_everything(self) -> None:
        for sub in self._subs:
            if sub.active:
                self._deliver_all(sub)

    def _reresolve(self) -> None:
        """Resolve the subscriptions' points against a new probe."""
        for sub in self._subs:
            if isinstance(sub.handle, _Push):
                targets = tuple(self._resolve(p) for p in sub.points)
                by_item: dict[str, list[Target]] = {}
                for t in targets:
                    if t.item is not None:
                        by_item.setdefault(t.item.id, []).append(t)
                sub.handle = _Push(by_item, targets)


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z_][A-Za-z0-9_-]*)*")
_SEGMENT = re.compile(r"[^A-Za-z0-9_]+")


def _valid_name(text: str) -> bool:
    return bool(_NAME.fullmatch(text)) and len(text) <= 128


def _suggest(component: str) -> str:
    """``Axes[base]/Linear[X]`` → ``X`` (the innermost component's name)."""
    last = component.rsplit("/", 1)[-1]
    inner = last[last.find("[") + 1:-1] if "[" in last else last
    return _SEGMENT.sub("_", inner) or "device"


def near_matches(text: str, names: Sequence[str]) -> list[str]:
    """Up to five names close to ``text`` (for 'did you mean')."""
    return difflib.get_close_matches(text, list(names), n=5, cutoff=0.5)
