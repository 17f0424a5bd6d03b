"""The Sparkplug B 3.0 edge node of a line (issue #13, ADR 0027).

One edge node (``spBv1.0/<group>/+/<node>``) per line, one Sparkplug device per line device,
each tag a metric named by the tag name with a node-wide alias. Every change the
:class:`~smartline.northbound.TagFeed` reports (each tag's deadband) goes first into the
on-disk :class:`SampleStore`; it is published live as DDATA only while the node is online
and nothing older waits in the store, otherwise it is replayed after the next births,
oldest first, flagged historical. The MQTT session follows the specification: a new
aiomqtt client per CONNECT whose Will is the NDEATH with that CONNECT's bdSeq, NCMD and
DCMD subscribed before the births, NDEATH published before an intentional DISCONNECT (on
MQTT 5 a DISCONNECT with reason 0x04, so the broker sends the Will too), births held until
the primary host's STATE says online.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import ssl
from collections.abc import Mapping, Sequence
from typing import Any

import aiomqtt
import numpy as np
from numpy.typing import NDArray
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from ..._version import __version__
from ...core import Clock, ConfigError, ConfigIssue, Quality, SmartlineError, WriteRefusedError
from ...cycle import TagValue
from ...line import Line
from .._config import SparkplugConfig
from .._feed import TagFeed
from ._payload import (
    GOOD,
    MetricDef,
    SpType,
    add_sample,
    cmd_value,
    group_by_device,
    ids_of,
    metric_type,
    node_metric,
    payload,
    quality_code,
    topic,
)
from ._store import SampleStore, StoredSample
from .sparkplug_b_pb2 import Payload

__all__ = ["EdgeNode"]

log = logging.getLogger(__name__)

REBIRTH = "Node Control/Rebirth"
BD_SEQ = "bdSeq"
REPLAY_BATCH = 500          # samples per replay read (split per device into DDATA)
BACKOFF_S = (0.2, 10.0)     # reconnect backoff: first wait, cap (doubling)
CONNECT_TIMEOUT_S = 5.0


class EdgeNode:
    """The line as a Sparkplug B edge node; ``step`` is an engine service at ``period_ms``.

    ``store`` may be given (tests, the benchmark); by default the node opens the
    :class:`SampleStore` of ``config.store`` in :meth:`start`. ``data_qos`` is the MQTT QoS
    of DDATA: 0 as the specification says, 1 for at-least-once delivery to the broker
    (a sample is marked sent only after the broker's PUBACK). ``backoff_s`` is the first
    and the longest wait between connection attempts (doubling in between).
    """

    def __init__(self, config: SparkplugConfig, line: Line, *, clock: Clock,
                 env: Mapping[str, str] | None = None, store: SampleStore | None = None,
                 data_qos: int = 0, backoff_s: tuple[float, float] = BACKOFF_S) -> None:
        self.config = config
        self.line = line
        self.clock = clock
        self._env = env if env is not None else os.environ
        self._store = store
        self._data_qos = data_qos
        self._backoff_s = backoff_s
        image = line.image
        self.metrics: dict[str, MetricDef] = {}  # tag -> its metric
        self.devices: dict[str, list[str]] = {}  # device -> its published tags
        skipped: list[str] = []
        alias = 0
        for device in config.devices:
            names: list[str] = []
            for name, spec in image.tags.items():
                if spec.device != device:
                    continue
                sp = metric_type(spec, image.get(name).value)
                if sp is None:
                    skipped.append(name)
                    continue
                alias += 1
                self.metrics[name] = MetricDef(device, name, alias, sp)
                names.append(name)
            self.devices[device] = names
        if skipped:
            log.info("sparkplug: array tags are not published (no array metrics yet): %s",
                     ", ".join(skipped))
        self.by_alias = {m.alias: m for m in self.metrics.values()}
        self._slots: dict[str, NDArray[np.intp]] = {
            d: np.asarray([image.slot(n) for n in names], dtype=np.intp)
            for d, names in self.devices.items()}
        self._feed = TagFeed(image, list(self.metrics))
        self._group, self._node = config.group, config.node
        self._seq = 0
        self._bd_seq = -1            # the first CONNECT uses 0
        self._client: aiomqtt.Client | None = None
        self._connected = False
        self._born = False           # NBIRTH and DBIRTHs out in this session
        self._live = False           # born and the backlog replayed: changes go out live
        self._alive: dict[str, bool] = dict.fromkeys(self.devices, False)  # DBIRTH valid
        self._sent_quality: dict[str, int] = {}
        self._primary_online = config.primary_host is None
        self._primary_ts = -1
        self._stop = asyncio.Event()
        self._restart = asyncio.Event()  # primary host went offline: leave this session
        self._task: asyncio.Task[None] | None = None
        self._writes: set[asyncio.Task[None]] = set()
        self._tls: ssl.SSLContext | None = None
        self._password: str | None = None
        self.births_sent = 0
        self.published = 0           # DATA metrics published (live and replayed)
        self.replayed = 0
        self.connects = 0

    # -- the service -----------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store and start the connection loop (returns at once; a broker that is
        down is retried with backoff while changes are buffered). A missing password
        variable or an unreadable TLS file raises ``ConfigError`` here."""
        cfg = self.config
        if cfg.password_env is not None:
            pw = self._env.get(cfg.password_env)
            if pw is None:
                raise ConfigError(ConfigIssue(
                    str(self.line.config.source), "northbound.sparkplug.user.password_env",
                    f"environment variable {cfg.password_env} is not set (the MQTT "
                    f"password of user {cfg.user!r})"))
            self._password = pw
        if cfg.tls is not None:
            self._tls = await asyncio.to_thread(self._tls_context)
        if self._store is None:
            self._store = await asyncio.to_thread(
                SampleStore, cfg.store.path, max_bytes=cfg.store.max_bytes,
                overflow=cfg.store.overflow)
        self._feed.snapshot()  # changes are measured from now; births carry the values
        self._task = asyncio.create_task(self._run(), name=f"sparkplug {cfg.node}")

    async def step(self, now_ns: int) -> None:
        """Report by exception: the feed's changes into the store, then live if online."""
        store = self._store
        if store is None:
            return
        changes = self._feed.changes()
        try:
            if changes:
                samples = [self._sample(tv) for tv in changes]
                ids = await asyncio.to_thread(store.add, samples)
                if not self._live or store.backlog() != len(ids):
                    return  # offline, or older samples wait: they go out by replay, in order
                pairs = list(zip(ids, samples, strict=True))
                await self._publish_data([p for p in pairs if self._alive.get(p[1].device)],
                                         historical=False)
                dead = [i for i, s in pairs if not self._alive.get(s.device)]
                if dead:  # a dead device's samples: its DDEATH said so, its DBIRTH says more
                    await asyncio.to_thread(store.mark_sent, dead)
            await self._device_transitions()
        except aiomqtt.MqttError as exc:
            log.info("sparkplug: publish failed (%s); the samples wait for the replay", exc)

    async def aclose(self) -> None:
        """NDEATH, DISCONNECT, then close the store (idempotent)."""
        self._stop.set()
        task, self._task = self._task, None
        if task is not None:
            try:
                await asyncio.wait_for(task, timeout=CONNECT_TIMEOUT_S + 5)
            except (TimeoutError, asyncio.CancelledError):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)
        store, self._store = self._store, None
        if store is not None:
            await asyncio.to_thread(store.close)

    def status(self) -> dict[str, object]:
        """What the node is doing, for ``smartline status`` and tests."""
        store = self._store
        stats = store.stats() if store is not None else None
        return {"connected": self._connected, "primary_online": self._primary_online,
                "born": self._born, "live": self._live, "births_sent": self.births_sent,
                "seq": self._seq, "bd_seq": self._bd_seq, "connects": self.connects,
                "published": self.published, "replayed": self.replayed,
                "buffered": stats.backlog if stats else 0,
                "dropped": stats.dropped if stats else 0,
                "devices_alive": [d for d, a in self._alive.items() if a]}

    # -- the session ------------------------------------------------------------------------

    async def _run(self) -> None:
        first, cap = self._backoff_s
        backoff = first
        while not self._stop.is_set():
            try:
                await self._session()
                backoff = first
            except aiomqtt.MqttError as exc:
                log.warning("sparkplug: broker %s:%d: %s; retrying in %.1f s",
                            self.config.host, self.config.port, exc, backoff)
            except asyncio.CancelledError:
                raise
            except Exception:  # never let the node die: log and reconnect
                log.exception("sparkplug: session failed; reconnecting")
            finally:
                self._connected = self._born = self._live = False
                self._client = None
            if self._stop.is_set():
                break
            with contextlib.suppress(TimeoutError):
                # network retries wait in real time, whatever clock runs the line
                await asyncio.wait_for(self._stop.wait(), backoff)
            backoff = min(backoff * 2, cap)

    def _new_client(self) -> aiomqtt.Client:
        """A client for one CONNECT: its Will is the NDEATH with this CONNECT's bdSeq."""
        cfg = self.config
        self._bd_seq = (self._bd_seq + 1) % 256
        will = aiomqtt.Will(topic(self._group, "NDEATH", self._node),
                            self._death_payload(), qos=1, retain=False)
        v5 = cfg.mqtt == "5"
        kw: dict[str, Any] = {"clean_start": True} if v5 else {"clean_session": True}
        return aiomqtt.Client(
            cfg.host, cfg.port, identifier=cfg.client_id, username=cfg.user,
            password=self._password, will=will, keepalive=int(cfg.keepalive_s),
            timeout=CONNECT_TIMEOUT_S, tls_context=self._tls,
            tls_insecure=True if cfg.tls is not None and cfg.tls.insecure else None,
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311, **kw)

    async def _session(self) -> None:
        client = self._new_client()
        self.connects += 1
        async with client:
            self._client = client
            self._connected = True
            self._restart.clear()
            log.info("sparkplug: connected to %s:%d as %s/%s (bdSeq %d)", self.config.host,
                     self.config.port, self._group, self._node, self._bd_seq)
            await client.subscribe(topic(self._group, "NCMD", self._node), qos=1)
            await client.subscribe(topic(self._group, "DCMD", self._node, "+"), qos=1)
            if self.config.primary_host is not None:
                self._primary_online = False
                await client.subscribe(f"spBv1.0/STATE/{self.config.primary_host}", qos=1)
            else:
                await self._birth()
            messages = asyncio.create_task(self._messages(client))
            stop = asyncio.create_task(self._stop.wait())
            restart = asyncio.create_task(self._restart.wait())
            try:
                await asyncio.wait({messages, stop, restart},
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                for t in (messages, stop, restart):
                    t.cancel()
                await asyncio.gather(messages, stop, restart, return_exceptions=True)
            if messages.done() and not messages.cancelled() and messages.exception():
                raise messages.exception()  # type: ignore[misc]
            # intentional end (aclose, primary host offline): NDEATH first, since a clean
            # DISCONNECT makes the broker drop the Will
            self._live = self._born = False
            await client.publish(topic(self._group, "NDEATH", self._node),
                                 self._death_payload(), qos=1)
            log.info("sparkplug: NDEATH published (bdSeq %d); disconnecting", self._bd_seq)
            if self.config.mqtt == "5":
                await _disconnect_with_will(client)

    async def _messages(self, client: aiomqtt.Client) -> None:
        async for msg in client.messages:
            t = str(msg.topic)
            data = msg.payload if isinstance(msg.payload, bytes | bytearray) else b""
            try:
                if t.startswith("spBv1.0/STATE/"):
                    await self._on_state(bytes(data))
                elif "/NCMD/" in t:
                    await self._on_ncmd(bytes(data))
                elif "/DCMD/" in t:
                    self._on_dcmd(t.rsplit("/", 1)[-1], bytes(data))
            except aiomqtt.MqttError:
                raise
            except Exception:  # a bad command never stops the node
                log.exception("sparkplug: message on %s not handled", t)

    async def _on_state(self, data: bytes) -> None:
        """The primary host's STATE (3.0 JSON): births on online, leave on offline."""
        try:
            state = json.loads(data)
            online = state["online"]
            ts = int(state["timestamp"])
            if not isinstance(online, bool):
                raise TypeError("online is not a boolean")
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("sparkplug: STATE of %s ignored (%s): %r", self.config.primary_host,
                        exc, data[:100])
            return
        if ts < self._primary_ts:
            log.info("sparkplug: STATE older than the last one seen ignored")
            return
        self._primary_ts = ts
        self._primary_online = online
        if online and not self._born:
            await self._birth()
        elif not online and self._born:
            log.warning("sparkplug: primary host %s offline: NDEATH and reconnect",
                        self.config.primary_host)
            self._restart.set()

    async def _on_ncmd(self, data: bytes) -> None:
        p = Payload()
        p.ParseFromString(data)
        for m in p.metrics:
            if m.name == REBIRTH and m.WhichOneof("value") == "boolean_value" \
                    and m.boolean_value:
                log.info("sparkplug: rebirth requested")
                if self._primary_online:
                    await self._birth()
            else:
                log.info("sparkplug: NCMD metric %r ignored", m.name or m.alias)

    def _on_dcmd(self, device: str, data: bytes) -> None:
        """DCMD metrics (by alias or name) become guarded, audited writes, one per metric."""
        p = Payload()
        p.ParseFromString(data)
        host = self.config.primary_host
        source = f"sparkplug:{host}:DCMD" if host else "sparkplug:DCMD"
        for m in p.metrics:
            md = self.by_alias.get(m.alias) if m.HasField("alias") else self.metrics.get(m.name)
            if md is None or md.device != device:
                log.warning("sparkplug: DCMD for %s: unknown metric %r", device,
                            m.name or m.alias)
                continue
            value = cmd_value(m, md.datatype)
            task = asyncio.create_task(self._write(md.tag, value, source))
            self._writes.add(task)
            task.add_done_callback(self._writes.discard)

    async def _write(self, tag: str, value: object, source: str) -> None:
        try:
            await self.line.io.write({tag: value}, source=source)
            log.info("sparkplug: %s wrote %s = %r", source, tag, value)
        except WriteRefusedError as exc:
            log.warning("sparkplug: %s refused: %s", source, exc)
        except SmartlineError as exc:
            log.warning("sparkplug: %s failed: %s", source, exc)
        except Exception:
            log.exception("sparkplug: %s failed", source)

    # -- births, data, replay -----------------------------------------------------------------

    async def _birth(self) -> None:
        """NBIRTH (seq 0, this CONNECT's bdSeq), every DBIRTH, the backlog, then live."""
        client = self._client
        if client is None:
            return
        self._live = False
        now = self._now_ms()
        self._seq = 0
        p = payload(now, self._next_seq())
        node_metric(p, BD_SEQ, SpType.INT64, self._bd_seq, now)
        node_metric(p, REBIRTH, SpType.BOOLEAN, False, now)
        node_metric(p, "Properties/Line", SpType.STRING, self.line.config.name, now)
        node_metric(p, "Properties/Software", SpType.STRING, f"smartline {__version__}", now)
        await client.publish(topic(self._group, "NBIRTH", self._node), p.SerializeToString(),
                             qos=0)
        self._born = True
        for device in self.devices:
            await self._device_birth(client, device)
        self.births_sent += 1
        await self._replay(client)
        self._live = True

    async def _device_birth(self, client: aiomqtt.Client, device: str) -> None:
        p = payload(self._now_ms(), self._next_seq())
        for name in self.devices[device]:
            md = self.metrics[name]
            s = self._sample(self.line.image.get(name))
            add_sample(p, s, alias=md.alias, name=name, birth=True, historical=False,
                       quality_property=s.quality != GOOD)
            self._sent_quality[name] = s.quality
        await client.publish(topic(self._group, "DBIRTH", self._node, device),
                             p.SerializeToString(), qos=0)
        self._alive[device] = True

    async def _replay(self, client: aiomqtt.Client) -> None:
        """The backlog, oldest first, as historical DDATA, until it is empty."""
        store = self._store
        while store is not None and not self._stop.is_set():
            batch = await asyncio.to_thread(store.unsent, REPLAY_BATCH)
            if not batch:
                return
            await self._publish_data(batch, historical=True, client=client)
            self.replayed += len(batch)

    async def _publish_data(self, items: Sequence[tuple[int, StoredSample]], *,
                            historical: bool, client: aiomqtt.Client | None = None) -> None:
        """One DDATA per device (aliases only), then ``mark_sent``."""
        client = client or self._client
        store = self._store
        if client is None or store is None or not items:
            return
        for device, group in group_by_device(items).items():
            if not historical and not self._live:
                return  # a rebirth or a disconnect began: the rest goes out by replay
            p = payload(self._now_ms(), self._next_seq())
            for _, s in group:
                md = self.metrics.get(s.tag)
                if md is None:
                    continue  # a tag no longer published (line file changed)
                last = self._sent_quality.get(s.tag, GOOD)
                add_sample(p, s, alias=md.alias, name=None, birth=False,
                           historical=historical,
                           quality_property=s.quality != GOOD or last != GOOD)
                if not historical:
                    self._sent_quality[s.tag] = s.quality
            await client.publish(topic(self._group, "DDATA", self._node, device),
                                 p.SerializeToString(), qos=self._data_qos)
            self.published += len(group)
            await asyncio.to_thread(store.mark_sent, ids_of(group))

    async def _device_transitions(self) -> None:
        """DDEATH for a live device whose tags all went BAD (link lost), DBIRTH when one
        of them has a value again."""
        client = self._client
        if client is None or not self._live:
            return
        quality = self.line.image.quality
        for device, slots in self._slots.items():
            if slots.size == 0:
                continue
            all_bad = bool((quality[slots] == Quality.BAD).all())
            if all_bad and self._alive[device]:
                p = payload(self._now_ms(), self._next_seq())
                self._alive[device] = False
                await client.publish(topic(self._group, "DDEATH", self._node, device),
                                     p.SerializeToString(), qos=0)
                log.info("sparkplug: DDEATH %s (every tag BAD)", device)
            elif not all_bad and not self._alive[device]:
                await self._device_birth(client, device)
                log.info("sparkplug: DBIRTH %s again", device)

    # -- helpers ----------------------------------------------------------------------------

    def _sample(self, tv: TagValue) -> StoredSample:
        md = self.metrics[tv.name]
        q = quality_code(tv.quality)
        ts = tv.source_ns // 1_000_000 if tv.source_ns > 0 else self._now_ms()
        value = tv.value if not isinstance(tv.value, tuple) else None
        if isinstance(value, float) and md.datatype not in (SpType.FLOAT, SpType.DOUBLE):
            value = None if math.isnan(value) else value  # NaN in an integer/text metric
        return StoredSample(md.device, tv.name, ts, value, q, int(md.datatype))

    def _next_seq(self) -> int:
        s = self._seq
        self._seq = (s + 1) % 256
        return s

    def _now_ms(self) -> int:
        return self.clock.wall_ns() // 1_000_000

    def _death_payload(self) -> bytes:
        p = payload(self._now_ms(), None)
        node_metric(p, BD_SEQ, SpType.INT64, self._bd_seq, self._now_ms())
        data: bytes = p.SerializeToString()
        return data

    def _tls_context(self) -> ssl.SSLContext:
        tls = self.config.tls
        assert tls is not None
        try:
            ctx = ssl.create_default_context(
                cafile=str(tls.ca) if tls.ca is not None else None)
            if tls.certificate is not None and tls.private_key is not None:
                ctx.load_cert_chain(str(tls.certificate), str(tls.private_key))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(ConfigIssue(str(self.line.config.source),
                                          "northbound.sparkplug.tls",
                                          f"cannot load the TLS files: {exc}")) from exc
        if tls.insecure:
            log.warning("sparkplug: TLS without host-name check (tls.insecure)")
            ctx.check_hostname = False
        return ctx


async def _disconnect_with_will(client: aiomqtt.Client) -> None:
    """MQTT 5: DISCONNECT with reason 0x04 "Disconnect with Will Message", as Sparkplug 3.0
    requires of an intentional disconnect (the broker then publishes the NDEATH Will too).

    aiomqtt 2 sends a DISCONNECT without a reason on leaving ``async with`` and has no option
    for one, so this sends it through aiomqtt's paho client and waits for the disconnection;
    aiomqtt's exit then finds the client disconnected and returns (ADR 0027). If a future
    aiomqtt lacks those attributes, the plain DISCONNECT of its exit is sent instead.
    """
    paho_client = getattr(client, "_client", None)
    disconnected = getattr(client, "_disconnected", None)
    if paho_client is None or not isinstance(disconnected, asyncio.Future):
        log.warning("sparkplug: this aiomqtt offers no way to send DISCONNECT reason 0x04; "
                    "disconnecting without it (the NDEATH was published)")
        return
    reason = ReasonCode(PacketTypes.DISCONNECT, "Disconnect with will message")
    if paho_client.disconnect(reasoncode=reason) != 0:
        return  # not connected any more: aiomqtt's exit ends the session
    with contextlib.suppress(TimeoutError, aiomqtt.MqttError):
        await asyncio.wait_for(asyncio.shield(disconnected), CONNECT_TIMEOUT_S)
