"""The ``northbound:`` section of a line file: the Sparkplug B edge node and the OPC UA
server of the line (issue #13). Read from the line file itself (the config layer only
accepts the section), every problem located ``FILE:LINE:COL: northbound.key: message``.

```yaml
northbound:
  sparkplug:
    broker: "mqtt://127.0.0.1:1883"   # mqtts:// with TLS
    group: plant-1
    node: line-1
    primary_host: scada-1             # optional: publish only while its STATE is online
    store: {path: "/var/lib/smartline/line-1", max_mb: 512}
  opcua:
    endpoint: "opc.tcp://0.0.0.0:4840/smartline/"
    security: sign-and-encrypt        # sign-and-encrypt | sign | none
    certificate: certs/server.der
    private_key: certs/server.pem
    users: {operator: {password_env: OPCUA_OPERATOR_PW, role: operator}}
```
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..config import CheckOptions, FileKind, LineConfig
from ..config._check import check_line, line_summary
from ..config._common import Issues
from ..config._schema import LINE_FORMAT_KEY, fail
from ..config._source import Document, read_document, sort_issues
from ..core import ConfigError

__all__ = [
    "FILE_KINDS",
    "NorthboundConfig",
    "OpcUaServerConfig",
    "OpcUaUser",
    "SparkplugConfig",
    "StoreConfig",
    "TlsConfig",
    "build_northbound",
    "load_northbound",
]

_ID = r"^[^+/#\s]+$"  # Sparkplug ids: UTF-8 without + / # (and no blanks, by our choice)
_ENV = r"^[A-Za-z_][A-Za-z0-9_]*$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class _UserModel(_Model):
    name: Annotated[str, Field(min_length=1)]
    password_env: Annotated[str, Field(pattern=_ENV)] | None = None


class _TlsModel(_Model):
    ca: str | None = None            # CA file for the broker's certificate (default: system CAs)
    certificate: str | None = None   # client certificate (mutual TLS)
    private_key: str | None = None
    insecure: bool = False           # no host-name check (tests only; said in the log)

    @model_validator(mode="after")
    def _pair(self) -> _TlsModel:
        if (self.certificate is None) != (self.private_key is None):
            fail("a client certificate needs its private_key, and a private_key its certificate")
        return self


class _StoreModel(_Model):
    path: Annotated[str, Field(min_length=1)]
    max_mb: Annotated[float, Field(ge=0.0625)] = 512.0  # at least 64 KiB
    overflow: Literal["drop-oldest", "drop-newest"] = "drop-oldest"


class _SparkplugModel(_Model):
    broker: Annotated[str, Field(pattern=r"^mqtts?://[^/\s]+(:\d+)?/?$")]
    group: Annotated[str, Field(pattern=_ID)]
    node: Annotated[str, Field(pattern=_ID)]
    primary_host: Annotated[str, Field(pattern=_ID)] | None = None
    store: _StoreModel
    user: _UserModel | None = None
    tls: _TlsModel | None = None
    mqtt: Literal["3.1.1", "5"] = "3.1.1"
    keepalive_s: Annotated[float, Field(ge=5, le=3600)] = 30.0
    period_ms: Annotated[float, Field(ge=10)] = 100.0   # report-by-exception scan period
    devices: list[str] | None = None                      # default: every device of the line
    client_id: str | None = None


class _OpcUaUserModel(_Model):
    password_env: Annotated[str, Field(pattern=_ENV)]
    role: Literal["operator", "viewer"] = "viewer"  # operator: may write writable tags


class _OpcUaModel(_Model):
    endpoint: Annotated[str, Field(pattern=r"^opc\.tcp://[^/\s]+(:\d+)?(/.*)?$")]
    security: Literal["sign-and-encrypt", "sign", "none"] = "sign-and-encrypt"
    certificate: str | None = None
    private_key: str | None = None
    trust: list[str] = []            # client certificates (DER/PEM files or folders) trusted
    users: dict[str, _OpcUaUserModel] = {}
    anonymous: bool = False          # read-only anonymous sessions (never writes)

    @model_validator(mode="after")
    def _secure(self) -> _OpcUaModel:
        if self.security != "none" and (self.certificate is None or self.private_key is None):
            fail(f"security {self.security} needs the server's certificate and private_key "
                 "(smartline certs create makes them)")
        return self


class _NorthboundModel(_Model):
    sparkplug: _SparkplugModel | None = None
    opcua: _OpcUaModel | None = None


@dataclass(frozen=True, slots=True)
class TlsConfig:
    ca: Path | None
    certificate: Path | None
    private_key: Path | None
    insecure: bool


@dataclass(frozen=True, slots=True)
class StoreConfig:
    path: Path                   # a folder: the buffer database lives in it
    max_bytes: int
    overflow: str                # "drop-oldest" | "drop-newest"


@dataclass(frozen=True, slots=True)
class SparkplugConfig:
    host: str
    port: int
    tls: TlsConfig | None        # set for mqtts:// (and for mqtt:// with a tls: section)
    group: str
    node: str
    primary_host: str | None
    store: StoreConfig
    user: str | None
    password_env: str | None
    mqtt: str                    # "3.1.1" | "5"
    keepalive_s: float
    period_ms: float
    devices: tuple[str, ...]     # the line's devices published (each a Sparkplug device)
    client_id: str


@dataclass(frozen=True, slots=True)
class OpcUaUser:
    name: str
    password_env: str
    role: str


@dataclass(frozen=True, slots=True)
class OpcUaServerConfig:
    endpoint: str
    security: str                # "sign-and-encrypt" | "sign" | "none"
    certificate: Path | None
    private_key: Path | None
    trust: tuple[Path, ...]
    users: tuple[OpcUaUser, ...]
    anonymous: bool


@dataclass(frozen=True, slots=True)
class NorthboundConfig:
    sparkplug: SparkplugConfig | None = None
    opcua: OpcUaServerConfig | None = None

    @property
    def empty(self) -> bool:
        return self.sparkplug is None and self.opcua is None


def load_northbound(config: LineConfig) -> NorthboundConfig:
    """The ``northbound:`` section of ``config``'s line file; ``ConfigError`` listing every
    problem, located."""
    return build_northbound(read_document(config.source, what="line file"), config)


def build_northbound(doc: Document, config: LineConfig) -> NorthboundConfig:
    """Check the ``northbound:`` section of a parsed line file against the line."""
    issues = Issues(doc)
    issues.items.clear()  # the document's own problems are the line loader's
    data = doc.data
    raw: Any = data.get("northbound") if isinstance(data, dict) else None
    if not raw:
        return NorthboundConfig()
    model = issues.validate(_NorthboundModel, raw, ("northbound",))
    if model is None:
        raise ConfigError(sort_issues(issues.items, doc.file))
    folder = doc.folder
    sp = _sparkplug(model.sparkplug, config, issues, folder) if model.sparkplug else None
    ua = _opcua(model.opcua, issues, folder) if model.opcua else None
    if issues.items:
        raise ConfigError(sort_issues(issues.items, doc.file))
    return NorthboundConfig(sparkplug=sp, opcua=ua)


def _file(text: str | None, folder: Path, path: tuple[Any, ...], issues: Issues) -> Path | None:
    if text is None:
        return None
    p = Path(os.path.expanduser(text))
    p = p if p.is_absolute() else folder / p
    if not p.exists():
        issues.add(path, f"file not found: {p}")
    return p


def _sparkplug(m: _SparkplugModel, config: LineConfig, issues: Issues,
               folder: Path) -> SparkplugConfig:
    base = ("northbound", "sparkplug")
    scheme, _, rest = m.broker.partition("://")
    hostport = rest.rstrip("/")
    host, _, port_text = hostport.rpartition(":") if ":" in hostport else (hostport, "", "")
    secure = scheme == "mqtts"
    port = int(port_text) if port_text else (8883 if secure else 1883)
    if not 0 < port < 65536:
        issues.add((*base, "broker"), f"port {port} out of range 1..65535")
    tls = None
    if secure or m.tls is not None:
        t = m.tls or _TlsModel()
        tls = TlsConfig(ca=_file(t.ca, folder, (*base, "tls", "ca"), issues),
                        certificate=_file(t.certificate, folder, (*base, "tls", "certificate"),
                                          issues),
                        private_key=_file(t.private_key, folder, (*base, "tls", "private_key"),
                                          issues),
                        insecure=t.insecure)
    devices = tuple(m.devices) if m.devices is not None else tuple(config.devices)
    for i, d in enumerate(devices if m.devices is not None else ()):
        if d not in config.devices:
            issues.add((*base, "devices", i), f"unknown device {d!r}; the line has "
                       f"{', '.join(config.devices) or 'none'}")
    store = Path(os.path.expanduser(m.store.path))
    return SparkplugConfig(
        host=host, port=port, tls=tls, group=m.group, node=m.node,
        primary_host=m.primary_host,
        store=StoreConfig(path=store if store.is_absolute() else folder / store,
                          max_bytes=int(m.store.max_mb * 1024 * 1024),
                          overflow=m.store.overflow),
        user=m.user.name if m.user else None,
        password_env=m.user.password_env if m.user else None,
        mqtt=m.mqtt, keepalive_s=m.keepalive_s, period_ms=m.period_ms, devices=devices,
        client_id=m.client_id or f"smartline-{m.group}-{m.node}")


def _opcua(m: _OpcUaModel, issues: Issues, folder: Path) -> OpcUaServerConfig:
    base = ("northbound", "opcua")
    trust = tuple(p for i, t in enumerate(m.trust)
                  if (p := _file(t, folder, (*base, "trust", i), issues)) is not None)
    return OpcUaServerConfig(
        endpoint=m.endpoint, security=m.security,
        certificate=_file(m.certificate, folder, (*base, "certificate"), issues),
        private_key=_file(m.private_key, folder, (*base, "private_key"), issues),
        trust=trust,
        users=tuple(OpcUaUser(n, u.password_env, u.role) for n, u in m.users.items()),
        anonymous=m.anonymous)


def _check_line(doc: Document, options: CheckOptions) -> str:
    """``smartline check LINE``: the line with its units (the recipe layer's check), and
    its ``northbound:`` section."""
    from ..recipes._load import units_summary

    line = check_line(doc, options)
    more = units_summary(doc, line)
    data = doc.data
    if isinstance(data, dict) and data.get("northbound"):
        nb = build_northbound(doc, line)
        parts = []
        if nb.sparkplug is not None:
            sp = nb.sparkplug
            parts.append(f"Sparkplug B {sp.group}/{sp.node} via "
                         f"{'mqtts' if sp.tls else 'mqtt'}://{sp.host}:{sp.port}")
        if nb.opcua is not None:
            parts.append(f"OPC UA server {nb.opcua.endpoint} ({nb.opcua.security})")
        more += f"; north-bound: {', '.join(parts)}"
    return line_summary(doc, line, more)


FILE_KINDS: Mapping[str, FileKind] = MappingProxyType({
    LINE_FORMAT_KEY: FileKind("line file", ("line", "devices", "tags", "tasks", "units",
                                            "northbound"), _check_line),
})
"""Line files checked with their units and north-bound sections, for ``smartline check``
(the CLI passes ``kinds={**KINDS, ..., **FILE_KINDS}``, this last)."""
