"""A simulated OPC UA server on asyncua's Server: a node tree from a device profile, security
and users on, and faults (server down and back, bad item status, a node not writable,
operation limits, link faults through a relay)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import socket
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self, cast

from asyncua import ua
from asyncua.common.callback import CallbackType
from asyncua.common.utils import ServiceError
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
from asyncua.server.server import Server
from asyncua.server.user_managers import UserManager
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.uaerrors import BadTooManyOperations
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from ...tags import OpcUaAddress, parse_opcua
from ._proxy import FaultProxy

__all__ = ["OpcUaSim", "SimVariable", "free_port"]

log = logging.getLogger(__name__)

SIM_URI = "urn:smartline:sim"
_TYPES = {t.name: t for t in ua.VariantType}
_SECURE = {
    "Basic256Sha256": (ua.SecurityPolicyType.Basic256Sha256_Sign,
                       ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt),
    "Aes128_Sha256_RsaOaep": (ua.SecurityPolicyType.Aes128Sha256RsaOaep_Sign,
                              ua.SecurityPolicyType.Aes128Sha256RsaOaep_SignAndEncrypt),
    "Aes256_Sha256_RsaPss": (ua.SecurityPolicyType.Aes256Sha256RsaPss_Sign,
                             ua.SecurityPolicyType.Aes256Sha256RsaPss_SignAndEncrypt),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True, slots=True)
class SimVariable:
    """One variable of the simulated server: its dotted browse path (objects are made for
    the parts before the last), node id text, initial value, OPC UA type and access."""

    name: str
    address: str
    value: bool | int | float | str = 0.0
    type: str | None = None  # VariantType name (Double, UInt64 …); None: from the value
    writable: bool = False

    def variant_type(self) -> ua.VariantType:
        if self.type is not None:
            try:
                return _TYPES[self.type]
            except KeyError:
                raise ValueError(f"{self.name}: unknown OPC UA type {self.type!r}") from None
        v = self.value
        if isinstance(v, bool):
            return ua.VariantType.Boolean
        if isinstance(v, int):
            return ua.VariantType.Int64 if abs(v) >= 2 ** 31 else ua.VariantType.Int32
        if isinstance(v, float):
            return ua.VariantType.Double
        return ua.VariantType.String


class _Users(UserManager):  # type: ignore[misc]
    def __init__(self, users: Mapping[str, str] | None) -> None:
        self.users = users

    def get_user(self, iserver: Any, username: str | None = None, password: str | None = None,
                 certificate: Any = None) -> User | None:
        if self.users is None:
            return User(role=UserRole.User, name=username or "anonymous")
        if username is not None and self.users.get(username) == password:
            return User(role=UserRole.User, name=username)
        return None


class OpcUaSim:
    """An OPC UA server on 127.0.0.1 serving ``variables`` (async context manager).

    ``policies``: the secure endpoints (``Basic256Sha256`` …, each with Sign and
    SignAndEncrypt), with a server certificate generated into a temporary folder
    (:attr:`certificate`); ``allow_none`` adds an endpoint without security (``policies=()``
    with it: a None-only server). ``users`` (name → password) turns anonymous logins off.
    ``trusted_clients`` (a list, possibly empty, of client certificate files) makes the
    server validate each client's application certificate (asyncua's
    :class:`CertificateValidator`: validity period and application URI) and accept only
    those certificates: any other gets ``BadCertificateUntrusted`` at CreateSession
    (:meth:`trust_client` adds one later; :attr:`rejected_clients` counts refusals).
    ``proxy`` puts a :class:`FaultProxy` in front (``url`` is then the relay's) for
    latency, garbage, silence and cut connections. :attr:`reads` counts Read requests and
    :attr:`read_sizes` their node counts.
    """

    def __init__(self, variables: Sequence[SimVariable], *, name: str = "opcua-sim",
                 policies: Sequence[str] = ("Basic256Sha256",), allow_none: bool = False,
                 users: Mapping[str, str] | None = None, max_nodes_per_read: int = 0,
                 max_nodes_per_write: int = 0, proxy: bool = True,
                 port: int | None = None,
                 trusted_clients: Sequence[str | os.PathLike[str]] | None = None) -> None:
        unknown = [p for p in policies if p not in _SECURE]
        if unknown:
            raise ValueError(f"unknown security policies {unknown}; known: {list(_SECURE)}")
        if not policies and not allow_none:
            raise ValueError("no endpoint: give policies or allow_none")
        self.variables = tuple(variables)
        self.name = name
        self.policies = tuple(policies)
        self.allow_none = allow_none
        self.users = dict(users) if users is not None else None
        self.max_nodes_per_read = max_nodes_per_read
        self.max_nodes_per_write = max_nodes_per_write
        self.port = port or 0
        self.reads = 0
        self.read_sizes: list[int] = []
        self.writes = 0
        self._use_proxy = proxy
        self.proxy: FaultProxy | None = None
        self._server: Server | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._nodes: dict[str, ua.NodeId] = {}
        self._types: dict[str, ua.VariantType] = {}
        self._running = False
        self._trusted_clients: set[bytes] | None = None
        if trusted_clients is not None:
            self._trusted_clients = {_der(Path(f)) for f in trusted_clients}
        self.rejected_clients = 0

    def trust_client(self, certificate: str | os.PathLike[str]) -> None:
        """Accept this client certificate (file, DER or PEM) from now on; turns the client
        certificate check on if it was off."""
        if self._trusted_clients is None:
            self._trusted_clients = set()
        self._trusted_clients.add(_der(Path(certificate)))

    async def _validate_client(self, cert: x509.Certificate,
                               app: ua.ApplicationDescription) -> None:
        """The server's certificate validator (asyncua calls it at CreateSession)."""
        try:
            await CertificateValidator(CertificateValidatorOptions.BASIC_VALIDATION |
                                       CertificateValidatorOptions.PEER_CLIENT)(cert, app)
            if self._trusted_clients is not None and \
                    cert.public_bytes(Encoding.DER) not in self._trusted_clients:
                raise ServiceError(StatusCodes.BadCertificateUntrusted)
        except ServiceError:
            self.rejected_clients += 1
            raise

    @classmethod
    def from_profile(cls, profile: Any, **kwargs: Any) -> OpcUaSim:
        """A server for an ``opcua`` profile (a ``Profile`` or its file): each point's node
        id, its ``sim`` hints ``value`` and ``type`` (an OPC UA type name), writable when
        the point's access has ``w``."""
        if isinstance(profile, str | os.PathLike | Path):
            from ...config import load_profile  # the simulator may read profiles

            profile = load_profile(profile)
        if profile.family != "opcua":
            raise ValueError(f"profile {profile.name} is a {profile.family} profile, not opcua")
        variables = []
        for name, point in profile.points.items():
            sim = dict(point.sim)
            value = sim.get("value", 0.0)
            kind = sim.get("type")
            variables.append(SimVariable(
                name=name, address=point.address.canonical(),
                value=value if value is not None else 0.0,
                type=str(kind) if kind is not None else None,
                writable="w" in str(getattr(point.access, "value", point.access)).lower()))
        kwargs.setdefault("name", profile.name)
        return cls(variables, **kwargs)

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def server_url(self) -> str:
        return f"opc.tcp://127.0.0.1:{self.port}/smartline/"

    def url(self) -> str:
        """The URL a driver connects to (the relay's when there is one)."""
        if self.proxy is not None:
            return f"opc.tcp://127.0.0.1:{self.proxy.port}/smartline/"
        return self.server_url

    @property
    def certificate(self) -> Path:
        """The server's certificate (DER), to put in a client's trust list."""
        assert self._tmp is not None, "the simulator is not started"
        return Path(self._tmp.name) / "server_cert.der"

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def start(self) -> None:
        """Build the server and start serving (on a free port the first time)."""
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="smartline-opcua-sim-")
        if not self.port:
            self.port = free_port()
        await self._build()
        if self._use_proxy and self.proxy is None:
            self.proxy = FaultProxy(self.port)
            await self.proxy.start()

    async def _build(self) -> None:
        tmp = Path(self._tmp.name) if self._tmp is not None else Path(".")
        server = Server(user_manager=_Users(self.users))
        await server.init()
        server.set_endpoint(self.server_url)
        server.set_server_name(f"smartline simulator {self.name}")
        await server.set_application_uri(SIM_URI)
        await server.set_build_info("urn:smartline:sim", "smartline", f"OPC UA sim {self.name}",
                                    "1.0", "1", dt.datetime.now(dt.UTC))
        cert, key = tmp / "server_cert.der", tmp / "server_key.pem"
        if self.policies:
            await setup_self_signed_certificate(
                key, cert, SIM_URI, socket.gethostname(),
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
                {"commonName": f"smartline-sim-{self.name}"})
            await server.load_certificate(str(cert))
            await server.load_private_key(str(key))
        types: list[ua.SecurityPolicyType] = []
        for p in self.policies:
            types += _SECURE[p]
        if self.allow_none:
            types.append(ua.SecurityPolicyType.NoSecurity)
        server.set_security_policy(types)
        server.set_certificate_validator(self._validate_client)
        tokens: list[type] = [ua.UserNameIdentityToken]
        if self.users is None:
            tokens.insert(0, ua.AnonymousIdentityToken)
        server.set_identity_tokens(tokens)
        await self._populate(server)
        server.subscribe_server_callback(CallbackType.PreRead, self._pre_read)
        server.subscribe_server_callback(CallbackType.PreWrite, self._pre_write)
        await server.start()
        self._server = server
        self._running = True

    async def _populate(self, server: Server) -> None:
        self._nodes.clear()
        self._types.clear()
        await self._set_limit(server, "MaxNodesPerRead", self.max_nodes_per_read)
        await self._set_limit(server, "MaxNodesPerWrite", self.max_nodes_per_write)
        objects: dict[tuple[int, str], Any] = {}
        for var in self.variables:
            address = parse_opcua(var.address)
            idx = await self._namespace(server, address)
            node_id = ua.NodeId(_identifier(address), cast(Any, idx), _id_type(address))
            parts = var.name.split(".")
            parent = server.nodes.objects
            for depth in range(1, len(parts)):
                key = (idx, ".".join(parts[:depth]))
                if key not in objects:
                    objects[key] = await parent.add_object(idx, parts[depth - 1])
                parent = objects[key]
            vt = var.variant_type()
            node = await parent.add_variable(node_id, ua.QualifiedName(parts[-1], idx),
                                             ua.Variant(_typed(vt, var.value), vt))
            if var.writable:
                await node.set_writable()
            self._nodes[var.name] = node_id
            self._nodes[address.canonical()] = node_id
            self._types[var.name] = vt

    async def _namespace(self, server: Server, address: OpcUaAddress) -> int:
        if address.namespace_uri is not None:
            names = await server.get_namespace_array()
            if address.namespace_uri in names:
                return names.index(address.namespace_uri)
            return int(await server.register_namespace(address.namespace_uri))
        assert address.namespace is not None
        while len(await server.get_namespace_array()) <= address.namespace:
            n = len(await server.get_namespace_array())
            await server.register_namespace(f"{SIM_URI}:{self.name}:ns{n}")
        return address.namespace

    @staticmethod
    async def _set_limit(server: Server, name: str, value: int) -> None:
        node = getattr(ObjectIds, f"Server_ServerCapabilities_OperationLimits_{name}")
        await server.write_attribute_value(ua.NodeId(node, cast(Any, 0)),
                                           ua.DataValue(ua.Variant(value, ua.VariantType.UInt32)))

    async def _pre_read(self, event: Any, dispatcher: Any) -> None:
        if not event.is_external:
            return
        count = len(event.request_params.NodesToRead or [])
        self.reads += 1
        self.read_sizes.append(count)
        if self.max_nodes_per_read and count > self.max_nodes_per_read:
            raise BadTooManyOperations()  # type: ignore[no-untyped-call]

    async def _pre_write(self, event: Any, dispatcher: Any) -> None:
        if not event.is_external:
            return
        self.writes += 1
        count = len(event.request_params.NodesToWrite or [])
        if self.max_nodes_per_write and count > self.max_nodes_per_write:
            raise BadTooManyOperations()  # type: ignore[no-untyped-call]

    async def stop(self) -> None:
        """The server goes away (its port stops answering; the relay cuts connections)."""
        server, self._server = self._server, None
        self._running = False
        if self.proxy is not None:
            self.proxy.kick()
        if server is not None:
            kept = []
            for v in self.variables:  # what it had, for the restart
                value: Any = v.value
                with contextlib.suppress(Exception):
                    dv = server.read_attribute_value(self._nodes[v.name])
                    if dv.Value is not None and dv.Value.Value is not None:
                        value = dv.Value.Value
                        if isinstance(value, ua.LocalizedText):
                            value = value.Text or ""
                kept.append(SimVariable(v.name, v.address, value, v.type, v.writable))
            self.variables = tuple(kept)
            with contextlib.suppress(Exception):
                await server.stop()

    async def restart(self) -> None:
        """The server comes back on the same port, with the values it had when stopped
        (unless changed since with :meth:`set` while down)."""
        if self._running:
            return
        await self._build()

    async def close(self) -> None:
        await self.stop()
        if self.proxy is not None:
            await self.proxy.stop()
            self.proxy = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    # -- the plant side --------------------------------------------------------------------
    def _node(self, name: str) -> ua.NodeId:
        try:
            return self._nodes[name]
        except KeyError:
            raise KeyError(f"{self.name} has no variable {name!r}") from None

    async def set(self, name: str, value: bool | int | float | str, *,
                  when: dt.datetime | None = None) -> None:
        """Change a variable from the device side (name or node id); subscribers get it with
        ``when`` (default: now) as its source timestamp."""
        var = next((v for v in self.variables if v.name == name or
                    parse_opcua(v.address).canonical() == name), None)
        if var is None:
            raise KeyError(f"{self.name} has no variable {name!r}")
        if self._server is None:  # down: the value it will have when it comes back
            self.variables = tuple(SimVariable(v.name, v.address, value, v.type, v.writable)
                                   if v is var else v for v in self.variables)
            return
        vt = self._types[var.name]
        dv = ua.DataValue(ua.Variant(_typed(vt, value), vt))
        dv.SourceTimestamp = cast(Any, when or dt.datetime.now(dt.UTC))
        dv.ServerTimestamp = cast(Any, dt.datetime.now(dt.UTC))
        await self._server.write_attribute_value(self._node(var.name), dv)

    @property
    def serving(self) -> bool:
        """Whether the server is up (between :meth:`start` or ``restart`` and ``stop``)."""
        return self._server is not None

    def value(self, name: str) -> Any:
        """The variable's current value, read in-process (no round trip, never suspends)."""
        if self._server is None:
            raise RuntimeError(f"{self.name} is not serving: no value to read")
        dv = self._server.read_attribute_value(self._node(name))
        return dv.Value.Value if dv.Value is not None else None

    async def get(self, name: str) -> Any:  # async: a plant model may await it
        """The variable's current value (:meth:`value`, for code that awaits)."""
        return self.value(name)

    async def set_status(self, name: str, code: int) -> None:
        """Make a variable answer with a status code (e.g. ``ua.StatusCodes.BadDeviceFailure``)."""
        assert self._server is not None
        dv = ua.DataValue(StatusCode=ua.StatusCode(cast(Any, code)))
        dv.SourceTimestamp = cast(Any, dt.datetime.now(dt.UTC))
        await self._server.write_attribute_value(self._node(name), dv)

    # -- link faults (through the relay) ---------------------------------------------------
    def set_latency(self, seconds: float) -> None:
        assert self.proxy is not None, "latency needs the relay (proxy=True)"
        self.proxy.latency_s = seconds

    def set_garbage(self, on: bool) -> None:
        assert self.proxy is not None, "garbage needs the relay (proxy=True)"
        self.proxy.garbage = on

    def set_silent(self, on: bool) -> None:
        """The server stays connected but stops answering (the relay swallows what it
        sends); turned off, the connections that went silent are cut and new ones work."""
        assert self.proxy is not None, "silence needs the relay (proxy=True)"
        self.proxy.set_silent(on)

    def kick(self) -> None:
        """Cut every client connection (the device hangs up); it accepts new ones."""
        assert self.proxy is not None, "kick needs the relay (proxy=True)"
        self.proxy.kick()

    async def wait_until(self, name: str, value: Any, timeout_s: float = 2.0) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        while await self.get(name) != value:
            if loop.time() > end:
                raise TimeoutError(f"{name} did not become {value!r}")
            await asyncio.sleep(0.01)


def _der(path: Path) -> bytes:
    data = path.read_bytes()
    cert = (x509.load_pem_x509_certificate(data) if data.lstrip().startswith(b"-----")
            else x509.load_der_x509_certificate(data))
    return cert.public_bytes(Encoding.DER)


def _identifier(address: OpcUaAddress) -> Any:
    import base64
    import uuid

    if address.kind == "i":
        return int(address.identifier)
    if address.kind == "g":
        return uuid.UUID(address.identifier)
    if address.kind == "b":
        return base64.b64decode(address.identifier)
    return address.identifier


def _id_type(address: OpcUaAddress) -> ua.NodeIdType:
    return {"i": ua.NodeIdType.Numeric, "s": ua.NodeIdType.String, "g": ua.NodeIdType.Guid,
            "b": ua.NodeIdType.ByteString}[address.kind]


def _typed(vt: ua.VariantType, value: Any) -> Any:
    if vt == ua.VariantType.Boolean:
        return bool(value)
    if vt in (ua.VariantType.Float, ua.VariantType.Double):
        return float(value)
    if vt == ua.VariantType.String:
        return str(value)
    if vt == ua.VariantType.LocalizedText:
        return ua.LocalizedText(str(value))
    if vt.name.startswith(("Int", "UInt", "SByte", "Byte")):
        return int(value)
    return value
