"""The OPC UA driver: ``opc.tcp://host:port/path`` on asyncua's client.

Reads and writes by node id in batches of the server's operation limits, pushes data
changes through subscriptions (sampling interval, absolute deadband) with the server's
source timestamps, browses the address space, and connects with security by default.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar, cast

import numpy as np
from asyncua import ua
from asyncua.client.client import Client
from asyncua.client.ua_client import UaClientState
from asyncua.common.subscription import DataChangeEvent, StatusChangeEvent
from asyncua.common.subscription import Subscription as UaSubscription
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.uaerrors import UaStatusCodeError

from smartline.core import (
    EXACT_LIMIT,
    BrowsedPoint,
    BrowseResult,
    Clock,
    ConnectError,
    DeviceError,
    DeviceSpec,
    DriverBase,
    DriverFamily,
    LinkBrokenError,
    LinkPool,
    Point,
    ProtocolError,
    Quality,
    ReadPlan,
    ReadResult,
    Reason,
    ResultBuilder,
    SmartlineError,
    Subscription,
    WriteItem,
    WriteRefusedError,
)
from smartline.tags import OpcUaAddress

from ..families.opcua import FAMILY, OpcUaOptions
from ._security import Channel, choose_channel, wants_no_security
from ._values import encode, fill, ns_of, plain, status_text

__all__ = ["OpcUaDriver", "OpcUaPlan"]

log = logging.getLogger(__name__)

_USER_REFUSED = {StatusCodes.BadUserAccessDenied, StatusCodes.BadIdentityTokenRejected,
                 StatusCodes.BadIdentityTokenInvalid}
_CERT_REFUSED = {StatusCodes.BadCertificateUntrusted, StatusCodes.BadCertificateInvalid,
                 StatusCodes.BadCertificateTimeInvalid, StatusCodes.BadCertificateUriInvalid,
                 StatusCodes.BadCertificateUseNotAllowed, StatusCodes.BadCertificateRevoked,
                 StatusCodes.BadSecurityChecksFailed}
_SESSION_GONE = {StatusCodes.BadSessionIdInvalid, StatusCodes.BadSessionClosed,
                 StatusCodes.BadSecureChannelIdInvalid, StatusCodes.BadSecureChannelClosed,
                 StatusCodes.BadConnectionClosed, StatusCodes.BadServerHalted,
                 StatusCodes.BadShutdown, StatusCodes.BadTimeout,
                 StatusCodes.BadCommunicationError}
_WRITE_REFUSED = {StatusCodes.BadNotWritable, StatusCodes.BadUserAccessDenied,
                  StatusCodes.BadWriteNotSupported, StatusCodes.BadTypeMismatch,
                  StatusCodes.BadOutOfRange}
_ACCESS = {0: "", 1: "r", 2: "w", 3: "rw"}


@dataclass(frozen=True, slots=True)
class OpcUaPlan:
    """A compiled read: distinct node ids in batches of at most MaxNodesPerRead, and the
    points each node fills."""

    batches: tuple[tuple[ua.NodeId, ...], ...]
    points: Mapping[ua.NodeId, tuple[Point, ...]]
    unresolved: tuple[Point, ...] = ()  # nsu= of a namespace the server does not have
    order: tuple[int, ...] = ()  # per point of the plan: its node's index in the batches (-1: none)

    @property
    def request_count(self) -> int:
        return len(self.batches)


@dataclass(slots=True)
class _Route:
    """One subscription's device side: the asyncua subscription, its consumer and the
    points of each monitored item (by client handle)."""

    ua_sub: UaSubscription
    items: dict[int, tuple[Point, ...]] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None


class OpcUaDriver(DriverBase[OpcUaPlan, OpcUaOptions]):
    """One OPC UA session per device; security by default (``docs/reference/opcua.md``)."""

    family_plugin: ClassVar[DriverFamily | None] = FAMILY

    def __init__(self, spec: DeviceSpec, *, clock: Clock | None = None, rng: Any = None,
                 links: LinkPool | None = None) -> None:
        super().__init__(spec, clock=clock, rng=rng, links=links)
        self._client: Client | None = None
        self._namespaces: tuple[str, ...] = ()
        self._max_read = 0  # 0: no limit
        self._max_write = 0
        self._types: dict[ua.NodeId, ua.VariantType] = {}
        self._routes: dict[Subscription, _Route] = {}
        self._handles = 0
        self._garbled = False
        self._channel = Channel()
        self._notifications = 0

    @property
    def url(self) -> str:
        u = self.spec.url
        host = u.host or "127.0.0.1"
        netloc = f"[{host}]" if ":" in host else host
        port = u.port if u.port is not None else 4840
        return f"opc.tcp://{netloc}:{port}{u.path}"

    @property
    def channel(self) -> Channel:
        """The security policy and mode of the current (or last) connection."""
        return self._channel

    # -- connection ------------------------------------------------------------------------
    async def _connect(self) -> None:
        url = self.url
        timeout = self.spec.timeout_s
        client = Client(url, timeout=timeout, watchdog_intervall=max(0.5, timeout))
        client.name = client.description = "smartline"
        client.product_uri = "urn:smartline"
        if wants_no_security(self.options):
            self._channel = Channel()
        else:
            endpoints = await self._endpoints(client)
            channel = choose_channel(self.options, dict(self.spec.security), url, endpoints)
            assert channel.policy_class is not None and channel.certificate is not None
            assert channel.private_key is not None and channel.application_uri is not None
            client.application_uri = channel.application_uri
            await client.set_security(channel.policy_class, str(channel.certificate),
                                      str(channel.private_key),
                                      server_certificate=channel.server_certificate,
                                      mode=channel.message_mode)
            self._channel = channel
        if self.spec.username is not None:
            client.set_user(self.spec.username)
            if self.spec.password is not None:
                client.set_password(self.spec.password)
        self._garbled = False
        try:
            await client.connect()
        except UaStatusCodeError as exc:
            raise self._refused(exc) from exc
        self._client = client
        client.connection_lost_callback = self._make_lost_callback(client)
        self._watch_garbage(client)
        await self._negotiate(client)

    async def _endpoints(self, client: Client) -> list[ua.EndpointDescription]:
        try:
            return list(await client.connect_and_get_server_endpoints())
        except UaStatusCodeError as exc:
            raise ConnectError(f"{self.url}: GetEndpoints failed: {status_text(exc.code)}"
                               ) from exc

    def _refused(self, exc: UaStatusCodeError) -> SmartlineError:
        code = exc.code
        name = status_text(code)
        if code in _USER_REFUSED:
            who = f"user {self.spec.username!r}" if self.spec.username else "anonymous login"
            return ConnectError(f"{self.url} refused {who} ({name}): check the device's "
                                "'user' name and the password in its password_env")
        if code in _CERT_REFUSED:
            return ConnectError(
                f"{self.url} refused this application's certificate "
                f"{self._channel.certificate} ({name}): the server does not trust it or "
                "finds it invalid; trust it on the server (copy it into the server's "
                "trusted client certificates), or give the device another 'certificate'")
        if "Certificate" in name or "Security" in name:
            return ConnectError(
                f"{self.url} refused the secure channel ({name}); the server may not trust "
                f"this application's certificate {self._channel.certificate}: trust it on "
                "the server, or check the device's 'security'")
        return ConnectError(f"{self.url} refused the session ({name})")

    def _make_lost_callback(self, client: Client) -> Any:
        async def lost(exc: Exception) -> None:
            if self._client is client:
                self.connection_lost(exc if isinstance(exc, OSError) else
                                     LinkBrokenError(f"session lost: {exc!r}"))
        return lost

    def _watch_garbage(self, client: Client) -> None:
        """asyncua closes the socket on bytes it cannot parse; remember that it was
        garbage (a ProtocolError), not the peer going away."""
        proto = client.uaclient.protocol
        if proto is None:
            return
        original = proto.data_received

        def data_received(data: bytes) -> None:
            original(data)
            transport = proto.transport
            if transport is None or transport.is_closing():
                self._garbled = True

        setattr(proto, "data_received", data_received)  # noqa: B010 - patching an instance

    async def _negotiate(self, client: Client) -> None:
        """Operation limits and the namespace array; plans are made again when they change."""
        ids = [ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead,
               ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerWrite,
               ObjectIds.Server_NamespaceArray]
        values = await self._read_values([_nid(i, 0) for i in ids])
        limits = []
        for dv in values[:2]:
            ok = dv.StatusCode is None or dv.StatusCode.is_good()
            v = dv.Value.Value if ok and dv.Value is not None else 0
            limits.append(int(v) if isinstance(v, int) and v > 0 else 0)
        ns_dv = values[2]
        namespaces = tuple(str(x) for x in (ns_dv.Value.Value or [])) \
            if ns_dv.Value is not None else ()
        if (limits[0], limits[1], namespaces) != (self._max_read, self._max_write,
                                                  self._namespaces):
            self._max_read, self._max_write = limits
            self._namespaces = namespaces
            self._types.clear()
            self.renegotiated()

    async def _close(self) -> None:
        client, self._client = self._client, None
        routes = list(self._routes.values())
        self._routes.clear()
        for route in routes:
            if route.task is not None:
                route.task.cancel()
        for route in routes:
            if route.task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await route.task
        if client is None:
            return
        client.connection_lost_callback = None
        if client.uaclient.state is UaClientState.CONNECTED:
            try:
                async with asyncio.timeout(min(1.0, self.spec.timeout_s)):
                    await client.disconnect()
                return
            except Exception as exc:  # the link is broken: close what is left below
                log.debug("%s: disconnect failed: %r", self.spec.name, exc)
        client.uaclient.request_disconnect()
        with contextlib.suppress(Exception):  # stops its tasks; sends nothing on a dead link
            async with asyncio.timeout(0.2):
                await client.close_session()
        session = client.uaclient.session
        for task in (getattr(client, "_stale_watchdog_task", None),
                     getattr(client, "_supervisor_task", None),
                     getattr(client, "_renew_channel_task", None),
                     getattr(session, "_publish_task", None)):
            if isinstance(task, asyncio.Task) and not task.done():
                task.cancel()
        with contextlib.suppress(Exception):
            client.disconnect_socket()

    def _refine(self, err: SmartlineError, what: str) -> SmartlineError:
        if self._garbled and not isinstance(err, ProtocolError | DeviceError):
            refined = ProtocolError(f"{what}: the server sent bytes that are not OPC UA "
                                    f"({err.message})", device=self.spec.name)
            refined.__cause__ = err
            return refined
        return err

    # -- services --------------------------------------------------------------------------
    def _session(self) -> Client:
        client = self._client
        if client is None or client.uaclient.state is not UaClientState.CONNECTED:
            raise LinkBrokenError("the OPC UA session is gone")
        return client

    async def _service(self, call: Any, params: Any) -> Any:
        """One service call; a ServiceFault is a DeviceError (or a lost session)."""
        self.health.requests += 1
        try:
            return await call(params)
        except UaStatusCodeError as exc:
            name = status_text(exc.code)
            if exc.code in _SESSION_GONE:
                raise LinkBrokenError(f"the server ended the session ({name})") from exc
            raise DeviceError(f"the server refused the request: {name}",
                              code=exc.code) from exc
        except ConnectionError as exc:
            raise LinkBrokenError(f"connection lost: {exc}") from exc

    async def _read_values(self, nodes: Sequence[ua.NodeId],
                           attribute: AttributeIds = AttributeIds.Value
                           ) -> list[ua.DataValue]:
        client = self._session()
        out: list[ua.DataValue] = []
        size = self._max_read or len(nodes) or 1
        for i in range(0, len(nodes), size):
            params = ua.ReadParameters()
            params.TimestampsToReturn = ua.TimestampsToReturn.Both
            params.NodesToRead = [ua.ReadValueId(NodeId=n, AttributeId=attribute)
                                  for n in nodes[i:i + size]]
            out += await self._service(client.uaclient.read, params)
        return out

    def _node_id(self, address: OpcUaAddress) -> ua.NodeId | None:
        ns = address.namespace
        if address.namespace_uri is not None:
            try:
                ns = self._namespaces.index(address.namespace_uri)
            except ValueError:
                return None
        assert ns is not None
        ident: Any = address.identifier
        kind = address.kind
        if kind == "i":
            return _nid(int(ident), ns, ua.NodeIdType.Numeric)
        if kind == "s":
            return _nid(ident, ns, ua.NodeIdType.String)
        if kind == "g":
            import uuid

            return _nid(uuid.UUID(ident), ns, ua.NodeIdType.Guid)
        import base64

        return _nid(base64.b64decode(ident), ns, ua.NodeIdType.ByteString)

    def _by_node(self, points: Iterable[Point]) -> tuple[dict[ua.NodeId, list[Point]],
                                                         list[Point]]:
        grouped: dict[ua.NodeId, list[Point]] = {}
        unresolved: list[Point] = []
        for p in points:
            address = p.address
            assert isinstance(address, OpcUaAddress)
            node = self._node_id(address)
            if node is None:
                unresolved.append(p)
            else:
                grouped.setdefault(node, []).append(p)
        return grouped, unresolved

    # -- reading ---------------------------------------------------------------------------
    def _plan(self, points: Sequence[Point]) -> OpcUaPlan:
        grouped, unresolved = self._by_node(points)
        nodes = list(grouped)
        size = self._max_read or len(nodes) or 1
        batches = tuple(tuple(nodes[i:i + size]) for i in range(0, len(nodes), size))
        index = {n: i for i, n in enumerate(nodes)}
        order = []
        for p in points:
            assert isinstance(p.address, OpcUaAddress)
            node = self._node_id(p.address)
            order.append(index[node] if node is not None else -1)
        return OpcUaPlan(batches, MappingProxyType({n: tuple(ps) for n, ps in grouped.items()}),
                         tuple(unresolved), tuple(order))

    async def _read(self, plan: ReadPlan[OpcUaPlan]) -> ReadResult:
        compiled = plan.compiled
        client = self._session()
        values: list[ua.DataValue] = []
        for batch in compiled.batches:
            params = ua.ReadParameters()
            params.TimestampsToReturn = ua.TimestampsToReturn.Source
            params.NodesToRead = [ua.ReadValueId(NodeId=n, AttributeId=AttributeIds.Value)
                                  for n in batch]
            got = await self._service(client.uaclient.read, params)
            if len(got) != len(batch):
                raise ProtocolError(f"{len(got)} results for {len(batch)} nodes read")
            values += got
        received = self.clock.wall_ns()
        if len(compiled.order) != len(plan.points):  # a plan made by hand: the slow path
            return self._fill_slowly(plan, values, received)
        n = len(plan.points)
        raw = [math.nan] * n
        quality = [int(Quality.BAD)] * n
        reason = [int(Reason.DEVICE_ERROR)] * n
        source = [received] * n
        texts: dict[int, str] = {}
        exact: dict[int, int] = {}
        types = self._types
        nodes = [n for batch in compiled.batches for n in batch]
        for i, (p, k) in enumerate(zip(plan.points, compiled.order, strict=True)):
            if k < 0:
                continue
            dv = values[k]
            status = dv.StatusCode
            if status is not None and status.value:
                if status.is_uncertain():
                    quality[i] = int(Quality.UNCERTAIN)
                continue
            variant = dv.Value
            if variant is None or variant.Value is None:
                reason[i] = int(Reason.DECODE_ERROR)
                continue
            vt = variant.VariantType
            value = plain(vt, variant.Value)
            if value is None:
                reason[i] = int(Reason.DECODE_ERROR)
                continue
            types[nodes[k]] = vt
            if isinstance(value, str):
                texts[p.slot] = value
                raw[i] = 0.0
            else:
                if type(value) is int and not -EXACT_LIMIT < value < EXACT_LIMIT:
                    exact[p.slot] = value
                raw[i] = float(value)
            quality[i] = 0
            reason[i] = 0
            when = dv.SourceTimestamp
            if when is not None:
                ns = ns_of(when)
                if ns is not None:
                    source[i] = ns
        return ReadResult(plan.slots, np.asarray(raw), np.asarray(quality, np.uint8),
                          np.asarray(reason, np.uint8), received, np.asarray(source, np.int64),
                          MappingProxyType(texts), MappingProxyType(exact),
                          compiled.request_count)

    def _fill_slowly(self, plan: ReadPlan[OpcUaPlan], values: Sequence[ua.DataValue],
                     received: int) -> ReadResult:
        compiled = plan.compiled
        nodes = [n for batch in compiled.batches for n in batch]
        builder = ResultBuilder(plan.points, received)
        for node, dv in zip(nodes, values, strict=True):
            for point in compiled.points[node]:
                vt = fill(builder, point, dv)
                if vt is not None:
                    self._types[node] = vt
        for point in compiled.unresolved:
            builder.fail(point, Reason.DEVICE_ERROR)
        return builder.build(requests=compiled.request_count)

    # -- writing ---------------------------------------------------------------------------
    def _prepare_write(self, items: Sequence[WriteItem]) -> Any:
        """Refuse what no node can take (a sequence) and, for nodes whose type is known
        from an earlier read, values of the wrong type or range — before any I/O."""
        for it in items:
            address = it.point.address
            if not isinstance(address, OpcUaAddress):
                raise WriteRefusedError("not an OPC UA address", tag=it.point.tag)
            if isinstance(it.value, tuple):
                raise WriteRefusedError(f"{address.canonical()}: an OPC UA tag holds one "
                                        "value, not a sequence", tag=it.point.tag)
            node = self._node_id(address)
            vt = self._types.get(node) if node is not None else None
            if vt is not None:
                try:
                    encode(vt, it.value)
                except ValueError as exc:
                    raise WriteRefusedError(f"{address.canonical()}: {exc}",
                                            tag=it.point.tag) from None
        return None

    async def _write(self, items: Sequence[WriteItem], prepared: Any) -> None:
        client = self._session()
        targets: list[tuple[WriteItem, ua.NodeId]] = []
        for it in items:
            assert isinstance(it.point.address, OpcUaAddress)
            node = self._node_id(it.point.address)
            if node is None:
                raise DeviceError(f"{it.point.address.canonical()}: the server has no "
                                  "namespace with that URI", tag=it.point.tag)
            targets.append((it, node))
        unknown = list(dict.fromkeys(n for _, n in targets if n not in self._types))
        if unknown:
            await self._learn_types(unknown)
        values: list[ua.WriteValue] = []
        for it, node in targets:
            vt = self._types.get(node)
            if vt is None:
                raise DeviceError(f"{it.point.address.canonical()}: the node's value type "
                                  "could not be read", tag=it.point.tag)
            try:
                variant = encode(vt, it.value)
            except ValueError as exc:
                raise WriteRefusedError(f"{it.point.address.canonical()}: {exc}",
                                        tag=it.point.tag) from None
            wv = ua.WriteValue()
            wv.NodeId = node
            wv.AttributeId = AttributeIds.Value
            wv.Value = ua.DataValue(variant)
            wv.Value.SourceTimestamp = None
            wv.Value.ServerTimestamp = None
            values.append(wv)
        size = self._max_write or len(values) or 1
        failed: list[str] = []
        first_code = 0
        for i in range(0, len(values), size):
            params = ua.WriteParameters()
            params.NodesToWrite = values[i:i + size]
            results = await self._service(client.uaclient.write, params)
            for (it, _), status in zip(targets[i:i + size], results, strict=True):
                if not status.is_good():
                    first_code = first_code or status.value
                    failed.append(f"{it.point.tag} ({it.point.address.canonical()}): "
                                  f"{status_text(status.value)}")
        if failed:
            what = "refused" if first_code in _WRITE_REFUSED else "failed"
            raise DeviceError(f"the server {what} the write of {'; '.join(failed)}",
                              code=first_code, tag=targets[0][0].point.tag
                              if len(failed) == 1 else None)

    async def _learn_types(self, nodes: Sequence[ua.NodeId]) -> None:
        values = await self._read_values(nodes)
        missing: list[ua.NodeId] = []
        for node, dv in zip(nodes, values, strict=True):
            v = dv.Value
            if v is not None and v.VariantType != ua.VariantType.Null and v.Value is not None:
                self._types[node] = v.VariantType
            elif dv.StatusCode is None or dv.StatusCode.is_good():
                missing.append(node)
        if missing:  # a node without a value yet: its DataType attribute says
            for node, dv in zip(missing, await self._read_values(
                    missing, AttributeIds.DataType), strict=True):
                dtype = dv.Value.Value if dv.Value is not None else None
                if isinstance(dtype, ua.NodeId) and dtype.NamespaceIndex == 0:
                    with contextlib.suppress(Exception):
                        vt = ua.datatype_to_varianttype(dtype)
                        if isinstance(vt, ua.VariantType):
                            self._types[node] = vt

    # -- pushing ---------------------------------------------------------------------------
    def _pushes(self, point: Point) -> bool:
        return self.options.subscribe

    async def _subscribe(self, subscription: Subscription) -> None:
        client = self._session()
        opts = self.options
        publishing_ms = max(opts.sampling_interval_ms, 20.0)
        self.health.requests += 1
        ua_sub = await client.create_subscription(publishing_ms, None, queue_maxsize=100_000)
        route = _Route(ua_sub)
        grouped, unresolved = self._by_node(subscription.points)
        mfilter: ua.DataChangeFilter | None = None
        if opts.deadband > 0:
            mfilter = ua.DataChangeFilter()
            mfilter.Trigger = ua.DataChangeTrigger.StatusValue
            mfilter.DeadbandType = ua.DeadbandType.Absolute
            mfilter.DeadbandValue = opts.deadband
        requests: list[ua.MonitoredItemCreateRequest] = []
        for node, points in grouped.items():
            self._handles += 1
            route.items[self._handles] = tuple(points)
            mparams = ua.MonitoringParameters()
            mparams.ClientHandle = self._handles
            mparams.SamplingInterval = opts.sampling_interval_ms
            mparams.QueueSize = 1
            mparams.DiscardOldest = True
            if mfilter is not None:
                mparams.Filter = mfilter
            mir = ua.MonitoredItemCreateRequest()
            mir.ItemToMonitor = ua.ReadValueId(NodeId=node, AttributeId=AttributeIds.Value)
            mir.MonitoringMode = ua.MonitoringMode.Reporting
            mir.RequestedParameters = mparams
            requests.append(mir)
        self._routes[subscription] = route
        route.task = asyncio.ensure_future(self._consume(subscription, route))
        size = self._max_read or len(requests) or 1
        failed = ResultBuilder(subscription.points, self.clock.wall_ns())
        any_failed = False
        for i in range(0, len(requests), size):
            self.health.requests += 1
            results = await ua_sub.create_monitored_items(requests[i:i + size])
            for mir, result in zip(requests[i:i + size], results, strict=True):
                if isinstance(result, ua.StatusCode):  # this item was refused
                    for point in route.items.pop(mir.RequestedParameters.ClientHandle, ()):
                        failed.fail(point, Reason.DEVICE_ERROR)
                        any_failed = True
        for point in unresolved:
            failed.fail(point, Reason.DEVICE_ERROR)
            any_failed = True
        if any_failed:
            subscription.deliver(failed.build(only_set=True))

    async def _consume(self, subscription: Subscription, route: _Route) -> None:
        """Deliver each data change as it arrives (on the event loop)."""
        async for event in route.ua_sub:
            if isinstance(event, DataChangeEvent):
                points = route.items.get(event.data.monitored_item.ClientHandle)
                dv = event.data.monitored_item.Value
                if not points or dv is None:
                    continue
                self._notifications += 1
                builder = subscription.builder()
                for point in points:
                    fill(builder, point, dv)
                subscription.deliver(builder.build(only_set=True))
            elif isinstance(event, StatusChangeEvent):
                status = event.notification.Status
                if status is not None and not status.is_good() and self._routes.get(
                        subscription) is route:
                    self.connection_lost(LinkBrokenError(
                        f"the server ended the subscription ({status_text(status.value)})"))
                    return

    async def _unsubscribe(self, subscription: Subscription) -> None:
        route = self._routes.pop(subscription, None)
        if route is None:
            return
        if route.task is not None:
            route.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await route.task
        self.health.requests += 1
        await route.ua_sub.delete()

    # -- browsing --------------------------------------------------------------------------
    async def _browse(self, depth: int) -> BrowseResult:
        self._session()
        identity: dict[str, object] = {"url": self.url,
                                       "security": f"{self._channel.policy or 'None'}/"
                                                   f"{self._channel.mode or 'None'}"}
        build = await self._read_values([_nid(ObjectIds.Server_ServerStatus_BuildInfo,
                                                   0)])
        info = build[0].Value.Value if build and build[0].Value is not None else None
        if info is not None:
            identity.update({
                "product_uri": info.ProductUri, "manufacturer": info.ManufacturerName,
                "product": info.ProductName, "software_version": info.SoftwareVersion,
                "build_number": info.BuildNumber})
        points: list[BrowsedPoint] = []
        notes: list[str] = []
        frontier: list[tuple[ua.NodeId, str]] = [(_nid(ObjectIds.ObjectsFolder, 0), "")]
        seen: set[ua.NodeId] = {frontier[0][0]}
        variables: list[tuple[ua.NodeId, str, str]] = []
        for _level in range(max(1, depth)):
            if not frontier:
                break
            children = await self._children([n for n, _ in frontier])
            nxt: list[tuple[ua.NodeId, str]] = []
            for (_, prefix), refs in zip(frontier, children, strict=True):
                for ref in refs:
                    node = ref.NodeId
                    if node in seen or (node.NamespaceIndex == 0 and not prefix):
                        continue
                    seen.add(node)
                    name = str(ref.BrowseName.Name)
                    dotted = f"{prefix}.{name}" if prefix else name
                    if ref.NodeClass == ua.NodeClass.Variable:
                        variables.append((node, dotted, str(ref.DisplayName.Text or "")))
                    nxt.append((node, dotted))
            frontier = nxt
        if frontier:
            notes.append(f"stopped at depth {depth}: {len(frontier)} nodes not expanded")
        if variables:
            nodes = [v[0] for v in variables]
            types = await self._read_values(nodes, AttributeIds.DataType)
            access = await self._read_values(nodes, AttributeIds.UserAccessLevel)
            names = await self._type_names([t.Value.Value for t in types
                                            if t.Value is not None])
            for (node, dotted, display), t, a in zip(variables, types, access, strict=True):
                dtype = t.Value.Value if t.Value is not None else None
                level = a.Value.Value if a.Value is not None and a.Value.Value else 0
                points.append(BrowsedPoint(
                    name=_tag_name(dotted), address=_canonical(node, self._namespaces),
                    access=_ACCESS.get(int(level) & 3, "") or "r",
                    type=names.get(dtype, str(dtype)) if dtype is not None else "",
                    description=display if display != dotted.rpartition(".")[2] else ""))
        return BrowseResult(MappingProxyType(identity), tuple(points), tuple(notes))

    async def _children(self, nodes: Sequence[ua.NodeId]) -> list[list[ua.ReferenceDescription]]:
        client = self._session()
        out: list[list[ua.ReferenceDescription]] = []
        for node in nodes:
            desc = ua.BrowseDescription()
            desc.NodeId = node
            desc.BrowseDirection = ua.BrowseDirection.Forward
            desc.ReferenceTypeId = _nid(ObjectIds.HierarchicalReferences, 0)
            desc.IncludeSubtypes = True
            desc.NodeClassMask = int(ua.NodeClass.Object | ua.NodeClass.Variable)
            desc.ResultMask = int(ua.BrowseResultMask.All)
            params = ua.BrowseParameters()
            params.NodesToBrowse = [desc]
            results = await self._service(client.uaclient.browse, params)
            refs = list(results[0].References or [])
            cont = results[0].ContinuationPoint
            while cont:
                nparams = ua.BrowseNextParameters()
                nparams.ContinuationPoints = [cont]
                more = await self._service(client.uaclient.browse_next, nparams)
                refs += list(more[0].References or [])
                cont = more[0].ContinuationPoint
            out.append(refs)
        return out

    async def _type_names(self, dtypes: Sequence[Any]) -> dict[Any, str]:
        distinct = list(dict.fromkeys(d for d in dtypes if isinstance(d, ua.NodeId)))
        if not distinct:
            return {}
        names = await self._read_values(distinct, AttributeIds.BrowseName)
        return {d: str(n.Value.Value.Name) if n.Value is not None and n.Value.Value else str(d)
                for d, n in zip(distinct, names, strict=True)}

    def _stats(self) -> dict[str, object]:
        return {"notifications": self._notifications, "max_nodes_per_read": self._max_read,
                "max_nodes_per_write": self._max_write,
                "security": f"{self._channel.policy or 'None'}/{self._channel.mode or 'None'}"}


def _nid(identifier: Any, namespace: int, kind: ua.NodeIdType | None = None) -> ua.NodeId:
    """A NodeId (asyncua's annotations want its own integer types)."""
    if kind is None:
        return ua.NodeId(identifier, cast(Any, namespace))
    return ua.NodeId(identifier, cast(Any, namespace), kind)


def _canonical(node: ua.NodeId, namespaces: Sequence[str]) -> str:
    """The node id in smartline's grammar (``ns=2;s=...``)."""
    import base64

    ns = node.NamespaceIndex
    prefix = f"ns={ns};" if ns else ""
    t = node.NodeIdType
    ident: Any = node.Identifier
    if t in (ua.NodeIdType.TwoByte, ua.NodeIdType.FourByte, ua.NodeIdType.Numeric):
        return f"{prefix}i={ident}"
    if t == ua.NodeIdType.String:
        return f"{prefix}s={ident}"
    if t == ua.NodeIdType.Guid:
        return f"{prefix}g={ident}"
    return f"{prefix}b={base64.b64encode(ident).decode('ascii')}"


def _tag_name(dotted: str) -> str:
    """A dotted tag name: each part reduced to letters, digits and underscores."""
    parts = []
    for part in dotted.split("."):
        clean = "".join(c if c.isalnum() or c == "_" else "_" for c in part).strip("_")
        if not clean:
            clean = "x"
        if clean[0].isdigit():
            clean = f"n{clean}"
        parts.append(clean)
    return ".".join(parts)
