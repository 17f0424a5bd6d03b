"""``LineServer``: the line as an OPC UA server (issue #13, ADR 0029).

Namespace ``urn:smartline:<line>``; under ``Objects/<line>`` a folder per device holds the
device's tags, each a variable ``ns=<idx>;s=<tag name>`` with the tag's DataType, its
``EngineeringUnits`` and ``EURange`` (an AnalogItemType when it has either), its quality as
the StatusCode and the device's sample time as SourceTimestamp. ``step`` (an engine service)
copies the tags that changed (by deadband and quality, :class:`TagFeed`) into the address
space. A client's write of a writable tag goes through ``line.io.write`` — the write guard and
the audit trail — with source ``opcua:<user>@<host>:<port>``; the line's PackML units are
objects with their state, mode, counters and command methods (see ``_packml``).

Security is on by default: ``sign-and-encrypt`` offers Basic256Sha256 and Aes256Sha256RsaPss
with SignAndEncrypt only, ``sign`` the same with Sign, ``none`` no security (with a warning);
under security a client's application certificate must be in the trust list. Logins are the
line file's users (operator may write, viewer may not), anonymous (read-only) only when asked.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlparse, urlunparse

from asyncua import ua
from asyncua.common.node import Node
from asyncua.crypto.permission_rules import User
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
from asyncua.server.internal_session import InternalSession
from asyncua.server.server import Server
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes
from cryptography import x509

from ...core import Clock, RecipeError, SmartlineError, WriteRefusedError
from ...cycle import TagValue
from ...line import Line
from ...recipes._units import UnitRuntime
from ...tags import DataType, TagSpec
from .._config import OpcUaServerConfig
from .._feed import TagFeed
from ._access import Account, LineUsers, TrustList, environment, passwords
from ._eu import eu_information
from ._packml import PackMLNodes, UnitMethod, build_unit, values
from ._values import NodeType, code, data_value, nid, node_type, utc

__all__ = ["LineServer"]

log = logging.getLogger(__name__)

_POLICIES: dict[str, list[ua.SecurityPolicyType]] = {
    "sign-and-encrypt": [ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
                         ua.SecurityPolicyType.Aes256Sha256RsaPss_SignAndEncrypt],
    "sign": [ua.SecurityPolicyType.Basic256Sha256_Sign,
             ua.SecurityPolicyType.Aes256Sha256RsaPss_Sign],
    "none": [ua.SecurityPolicyType.NoSecurity],
}
_ANALOG_ITEM_TYPE = nid(ObjectIds.AnalogItemType)


class LineServer:
    """The line's OPC UA server: ``await start()``, ``await step(now_ns)`` at a period (an
    engine service), ``await aclose()``. ``units`` exposes the line's PackML units."""

    def __init__(self, config: OpcUaServerConfig, line: Line, *, units: UnitRuntime | None,
                 clock: Clock, env: Mapping[str, str] | None = None) -> None:
        self.config = config
        self.line = line
        self.units = units
        self.clock = clock
        self._env = environment(env)
        self._server: Server | None = None
        self._url = config.endpoint
        self._ns = 0
        self._feed = TagFeed(line.image)
        self._types: dict[str, NodeType] = {}
        self._tag_nodes: dict[ua.NodeId, str] = {}
        self._unit_nodes: list[PackMLNodes] = []
        self._unit_values: dict[ua.NodeId, object] = {}
        self._methods: dict[ua.NodeId, UnitMethod] = {}
        self._mismatch: set[str] = set()

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The endpoint it listens on (a port 0 in the configuration replaced by the free
        port it took)."""
        return self._url

    @property
    def namespace_uri(self) -> str:
        return f"urn:smartline:{self.line.config.name}"

    @property
    def namespace_index(self) -> int:
        return self._ns

    def node_id(self, tag: str) -> ua.NodeId:
        """The NodeId of a tag's variable (``KeyError`` for an unknown tag)."""
        self.line.image.slot(tag)
        return nid(tag, self._ns)

    async def start(self) -> None:
        """Build the address space and listen. ``ConfigError`` when a user's password
        variable is not set, ``OSError`` when the port is taken. asyncua builds its standard
        address space in the loop (~1.5 s of CPU): start before the engine runs."""
        if self._server is not None:
            return
        config = self.config
        secrets = passwords(config, self._env, Path(self.line.config.source))
        server = Server(user_manager=LineUsers(config, secrets))
        await server.init()
        self._url = _resolve_port(config.endpoint)
        server.set_endpoint(self._url)
        name = self.line.config.name
        server.set_server_name(f"smartline line {name}")
        await server.set_application_uri(self._application_uri())
        await self._security(server)
        tokens: list[type] = [ua.UserNameIdentityToken]
        if config.anonymous:
            tokens.insert(0, ua.AnonymousIdentityToken)
        server.set_identity_tokens(tokens)
        if not config.users and not config.anonymous:
            log.warning("OPC UA server of %s: no users and anonymous: false: nobody can log in",
                        name)
        # each client session is ours: its writes and method calls know who and from where
        iserver = server.iserver

        def create_session(session_name: str, user: User | None = None, external: bool = False
                           ) -> InternalSession:
            return _Session(self, iserver, iserver.aspace, iserver.subscription_service,
                            session_name, user=user or User(), external=external)

        iserver.create_session = create_session  # type: ignore[method-assign,assignment]
        self._ns = int(await server.register_namespace(self.namespace_uri))
        await self._build(server)
        await server.start()
        self._server = server
        await self._publish(self._feed.snapshot())
        await self._publish_units()
        log.info("OPC UA server of line %s listening on %s (security %s, namespace %s = %d)",
                 name, self._url, config.security, self.namespace_uri, self._ns)

    async def step(self, now_ns: int) -> None:
        """Copy what changed in the image since the last step (and the units' state) into
        the address space; subscribers are notified by the server."""
        if self._server is None:
            return
        await self._publish(self._feed.changes())
        await self._publish_units()

    async def aclose(self) -> None:
        """Stop listening (sessions are closed); idempotent."""
        server, self._server = self._server, None
        if server is not None:
            await server.stop()

    # -- building ------------------------------------------------------------------------
    def _application_uri(self) -> str:
        cert = self.config.certificate
        if cert is not None and self.config.security != "none":
            uri = _certificate_uri(cert)
            if uri is not None:
                return uri
        return f"urn:smartline:{self.line.config.name}:server"

    async def _security(self, server: Server) -> None:
        config = self.config
        if config.security == "none":
            log.warning("OPC UA server of %s runs WITHOUT security (security: none): traffic "
                        "and passwords travel in clear text, any client may connect",
                        self.line.config.name)
            server.set_security_policy(_POLICIES["none"])
            return
        assert config.certificate is not None and config.private_key is not None
        await server.load_certificate(str(config.certificate))
        await server.load_private_key(str(config.private_key))
        server.set_security_policy(_POLICIES[config.security])
        store = TrustList(list(config.trust), [])
        await store.load()
        if not config.trust:
            log.warning("OPC UA server of %s: the trust list is empty: every client "
                        "certificate will be refused (add them under northbound.opcua.trust)",
                        self.line.config.name)
        validator = CertificateValidator(
            CertificateValidatorOptions.TRUSTED_VALIDATION
            | CertificateValidatorOptions.PEER_CLIENT, store)
        server.set_certificate_validator(cast(Any, validator))

    async def _build(self, server: Server) -> None:
        self._types.clear()
        self._tag_nodes.clear()
        self._unit_nodes.clear()
        self._unit_values.clear()
        self._methods.clear()
        ns = self._ns
        cfg = self.line.config
        root = await server.nodes.objects.add_object(nid(cfg.name, ns),
                                                     _qn(cfg.name, ns))
        folders: dict[str, Node] = {}
        for device in cfg.devices:
            folders[device] = await root.add_folder(nid(f"devices/{device}", ns),
                                                    _qn(device, ns))
        for spec in self.line.image.tags.values():
            await self._add_tag(folders[spec.device], spec)
        if self.units is not None and self.units.units.names:
            folder = await root.add_folder(nid("PackML", ns), _qn("Units", ns))
            for unit in self.units.units.names:
                nodes, methods = await build_unit(folder, ns, unit,
                                                  self.units.units[unit].description,
                                                  _refuse_internal)
                self._unit_nodes.append(nodes)
                self._methods.update(methods)

    async def _add_tag(self, folder: Node, spec: TagSpec) -> None:
        ns = self._ns
        kind = node_type(spec)
        numeric = kind.variant not in (ua.VariantType.Boolean, ua.VariantType.String)
        eu_range = _range(spec) if numeric else None
        analog = numeric and (spec.unit is not None or eu_range is not None)
        attrs = ua.VariableAttributes()
        attrs.DisplayName = ua.LocalizedText(spec.name)
        attrs.Description = ua.LocalizedText(spec.description or spec.name)
        attrs.DataType = kind.data_type
        attrs.Value = kind.initial()
        if kind.length is not None:
            attrs.ValueRank = ua.ValueRank.OneDimension
            attrs.ArrayDimensions = [kind.length]
        else:
            attrs.ValueRank = ua.ValueRank.Scalar
        access = ua.AccessLevel.CurrentRead.mask
        if spec.writable:
            access |= ua.AccessLevel.CurrentWrite.mask
        attrs.AccessLevel = access
        attrs.UserAccessLevel = access
        attrs.WriteMask = 0
        attrs.UserWriteMask = 0
        attrs.Historizing = False
        item = ua.AddNodesItem()
        item.RequestedNewNodeId = nid(spec.name, ns)
        item.BrowseName = _qn(spec.name, ns)
        item.NodeClass = ua.NodeClass.Variable
        item.ParentNodeId = folder.nodeid
        item.ReferenceTypeId = nid(ObjectIds.Organizes)
        item.TypeDefinition = _ANALOG_ITEM_TYPE if analog else \
            nid(ObjectIds.BaseDataVariableType)
        item.NodeAttributes = attrs
        result = (await folder.session.add_nodes([item]))[0]
        result.StatusCode.check()
        var = Node(folder.session, result.AddedNodeId)
        if spec.unit is not None and numeric:
            await var.add_property(0, "EngineeringUnits", eu_information(spec.unit),
                                   ua.VariantType.ExtensionObject,
                                   nid(ObjectIds.EUInformation))
        if eu_range is not None:
            low, high = eu_range
            await var.add_property(0, "EURange", ua.Range(Low=low, High=high),
                                   ua.VariantType.ExtensionObject, nid(ObjectIds.Range))
        self._types[spec.name] = kind
        self._tag_nodes[var.nodeid] = spec.name

    # -- values out ----------------------------------------------------------------------
    async def _publish(self, changed: list[TagValue]) -> None:
        server = self._server
        assert server is not None
        now = self.clock.wall_ns()
        for value in changed:
            kind = self._types[value.name]
            dv = data_value(kind, value, now)
            # the address space's own write (Server.write_attribute_value says no status)
            status = await server.iserver.aspace.write_attribute_value(
                nid(value.name, self._ns), AttributeIds.Value, dv)
            if not status.is_good() and value.name not in self._mismatch:
                self._mismatch.add(value.name)
                log.warning("OPC UA: tag %s: value %r not published: %s", value.name,
                            value.value, status.name)

    async def _publish_units(self) -> None:
        server = self._server
        if server is None or self.units is None:
            return
        image = self.line.image

        def current(tag: str) -> object:
            return image.get(tag).value if tag in image.tags else None

        now = utc(self.clock.wall_ns())
        for unit in self._unit_nodes:
            for path, value in values(self.units, unit.unit, current).items():
                node = unit.nodes[path]
                if self._unit_values.get(node) == value:
                    continue
                self._unit_values[node] = value
                dv = ua.DataValue(Value=ua.Variant(value, unit.types[path]),
                                  SourceTimestamp=cast(Any, now), ServerTimestamp=cast(Any, now))
                await server.write_attribute_value(node, dv)

    # -- client requests -----------------------------------------------------------------
    def tag_of(self, node: ua.NodeId) -> str | None:
        return self._tag_nodes.get(node)

    def method_of(self, node: ua.NodeId) -> UnitMethod | None:
        return self._methods.get(node)

    async def client_write(self, tag: str, dv: ua.DataValue, user: User | None,
                           peer: object) -> ua.StatusCode:
        """A client's write of a tag's Value: the role check, then the guarded, audited
        write; the StatusCode the client gets."""
        account = user if isinstance(user, Account) else None
        who = account.label if account is not None else "unknown"
        source = f"opcua:{who}@{_peer(peer)}"
        spec = self.line.image.tags[tag]
        value = _python(dv.Value.Value if dv.Value is not None else None)
        io = self.line.io
        if account is None or not account.may_write:
            reason = (f"OPC UA user {who!r} may not write (role "
                      f"{'anonymous' if account is None or account.anonymous else 'viewer'})")
            log.warning("%s: write of %s refused: %s", source, tag, reason)
            io.audit_write(tag, value, "refused", reason, source=source)
            await io.flush_audit()
            return code(StatusCodes.BadUserAccessDenied)
        try:
            await io.write({tag: value}, source=source)
        except WriteRefusedError as exc:
            await io.flush_audit()  # the refusal's audit entry is on disk before the answer
            log.warning("%s: write of %s = %r refused: %s", source, tag, value, exc)
            return code(_refusal(spec, value))
        except SmartlineError as exc:
            log.warning("%s: write of %s = %r failed: %s", source, tag, value, exc)
            return code(StatusCodes.BadCommunicationError)
        return code(StatusCodes.Good)

    async def client_call(self, method: UnitMethod, request: ua.CallMethodRequest,
                          user: User | None, peer: object) -> ua.CallMethodResult:
        """A client's call of a unit's command method (or SetUnitMode)."""
        account = user if isinstance(user, Account) else None
        who = account.label if account is not None else "unknown"
        source = f"opcua:{who}@{_peer(peer)}"
        args = list(request.InputArguments or [])
        result = ua.CallMethodResult()
        result.InputArgumentResults = [ua.StatusCode() for _ in args]
        what = method.command.name if method.command is not None else "SetUnitMode"
        units = self.units
        if account is None or not account.may_write or units is None:
            reason = f"OPC UA user {who!r} may not command units"
            log.warning("%s: %s of unit %s refused: %s", source, what, method.unit, reason)
            self._audit_command(method, args, "refused", reason, source)
            await self.line.io.flush_audit()
            result.StatusCode = code(StatusCodes.BadUserAccessDenied)
            return result
        try:
            if method.command is not None:
                if args:
                    result.StatusCode = code(StatusCodes.BadTooManyArguments)
                    return result
                units.command(method.unit, method.command, source=source)
            else:
                mode = _mode_name(units, method.unit, args)
                if mode is None:
                    result.StatusCode = code(StatusCodes.BadInvalidArgument)
                    if args:
                        result.InputArgumentResults = [
                            code(StatusCodes.BadInvalidArgument)]
                    return result
                units.set_mode(method.unit, mode, source=source)
        except RecipeError as exc:
            log.warning("%s: %s of unit %s refused: %s", source, what, method.unit, exc)
            self._audit_command(method, args, "refused", str(exc), source)
            await self.line.io.flush_audit()
            result.StatusCode = code(StatusCodes.BadInvalidState)
            return result
        log.info("%s: %s of unit %s accepted", source, what, method.unit)
        await self._publish_units()
        return result

    def _audit_command(self, method: UnitMethod, args: list[ua.Variant], outcome: str,
                       reason: str, source: str) -> None:
        """A refused unit command in the audit trail, as the write of the unit's CntrlCmd
        (``<unit>.command``) it stands for (SetUnitMode: ``<unit>.mode``)."""
        value: object
        if method.command is not None:
            tag, value = f"{method.unit}.command", int(method.command)
        else:
            tag = f"{method.unit}.mode"
            value = args[0].Value if args else None
        self.line.io.audit_write(tag, value, outcome, reason, source=source)


class _Session(InternalSession):  # type: ignore[misc]
    """A client session whose writes of tag values and calls of unit methods are the line's
    (asyncua handles every other request as usual). ``name`` is the peer (host, port)."""

    def __init__(self, owner: LineServer, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.owner = owner

    async def write(self, params: ua.WriteParameters) -> list[ua.StatusCode]:
        items = list(params.NodesToWrite or [])
        results: list[ua.StatusCode | None] = [None] * len(items)
        rest: list[int] = []
        for i, item in enumerate(items):
            tag = self.owner.tag_of(item.NodeId)
            if tag is None or item.AttributeId != AttributeIds.Value or not self.external:
                rest.append(i)
                continue
            results[i] = await self.owner.client_write(tag, item.Value, self.user, self.name)
        if rest:
            others = await super().write(ua.WriteParameters(
                NodesToWrite=[items[i] for i in rest]))
            for i, status in zip(rest, others, strict=True):
                results[i] = status
        return [r if r is not None else code(StatusCodes.BadInternalError)
                for r in results]

    async def read(self, params: ua.ReadParameters) -> list[ua.DataValue]:
        """As asyncua reads, but a tag's UserAccessLevel says CurrentWrite only to a user
        who may write (a viewer's client shows the tags read-only)."""
        results: list[ua.DataValue] = await super().read(params)
        user = self.user
        if isinstance(user, Account) and user.may_write:
            return results
        out = list(results)
        for i, (item, dv) in enumerate(zip(params.NodesToRead or [], results, strict=True)):
            if item.AttributeId == AttributeIds.UserAccessLevel and \
                    self.owner.tag_of(item.NodeId) is not None and \
                    dv.Value is not None and isinstance(dv.Value.Value, int):
                level = dv.Value.Value & ~ua.AccessLevel.CurrentWrite.mask
                # a new DataValue: the one read is the address space's own
                out[i] = dataclasses.replace(dv, Value=ua.Variant(level, ua.VariantType.Byte))
        return out

    async def call(self, params: list[ua.CallMethodRequest]) -> list[ua.CallMethodResult]:
        out: list[ua.CallMethodResult] = []
        for request in params:
            method = self.owner.method_of(request.MethodId)
            if method is None or not self.external:
                out.extend(await super().call([request]))
            else:
                out.append(await self.owner.client_call(method, request, self.user, self.name))
        return out


def _qn(name: str, ns: int) -> ua.QualifiedName:
    return ua.QualifiedName(name, cast(Any, ns))


async def _refuse_internal(parent: ua.NodeId, *args: ua.Variant) -> ua.StatusCode:
    """A unit method called other than by a client session (asyncua's internal session)."""
    return code(StatusCodes.BadUserAccessDenied)


def _mode_name(units: UnitRuntime, unit: str, args: list[ua.Variant]) -> str | None:
    if len(args) != 1 or isinstance(args[0].Value, bool) or \
            not isinstance(args[0].Value, int):
        return None
    number = int(args[0].Value)
    for name, mode in units.units[unit].modes.items():
        if mode.number == number:
            return name
    return None


def _refusal(spec: TagSpec, value: object) -> int:
    """The StatusCode of a refused write: BadNotWritable for a read-only tag,
    BadOutOfRange for a value of the right kind the tag cannot take (limits, text length,
    wire range), BadTypeMismatch otherwise."""
    if not spec.writable:
        return StatusCodes.BadNotWritable
    items = value if spec.is_array and isinstance(value, list) else [value]
    if spec.is_text:
        right = all(isinstance(v, str) for v in items)
    elif spec.dtype is DataType.BOOL:
        right = all(isinstance(v, bool) for v in items)
    else:
        right = all(isinstance(v, int | float) and not isinstance(v, bool) for v in items)
    return StatusCodes.BadOutOfRange if right else StatusCodes.BadTypeMismatch


def _python(value: object) -> object:
    """A Variant's value as the write guard takes it (lists for arrays)."""
    if isinstance(value, tuple):
        return list(value)
    return value


def _range(spec: TagSpec) -> tuple[float, float] | None:
    if spec.limits is not None:
        return float(spec.limits[0]), float(spec.limits[1])
    if spec.scale is not None and spec.scale.eng_range is not None:
        low, high = sorted(spec.scale.eng_range)
        return float(low), float(high)
    return None


def _peer(peer: object) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        host = str(peer[0])
        return f"[{host}]:{peer[1]}" if ":" in host else f"{host}:{peer[1]}"
    return str(peer)


def _resolve_port(endpoint: str) -> str:
    """``endpoint`` with port 0 replaced by a free port of its host (4840 when it has none)."""
    url = urlparse(endpoint)
    port = url.port if url.port is not None else 4840
    host = url.hostname or "0.0.0.0"
    if port == 0:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return urlunparse(url._replace(netloc=netloc))


def _certificate_uri(path: Path) -> str | None:
    """The application URI in a certificate's subjectAltName (asyncua checks the server's
    ApplicationUri against it)."""
    try:
        data = path.read_bytes()
        cert = (x509.load_pem_x509_certificate(data) if data.lstrip().startswith(b"-----")
                else x509.load_der_x509_certificate(data))
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except (OSError, ValueError, x509.ExtensionNotFound):
        return None
    uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None
