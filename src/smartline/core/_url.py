"""Connection URLs (DESIGN §4): ``scheme://host:port/path?key=value``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import parse_qsl, quote, unquote, urlsplit

__all__ = ["ConnectionUrl", "parse_url"]


@dataclass(frozen=True, slots=True)
class ConnectionUrl:
    """A parsed connection URL. ``port_path`` holds the serial port for serial schemes."""

    scheme: str
    host: str | None = None
    port: int | None = None
    path: str = ""
    params: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def param(self, key: str, default: str | None = None) -> str | None:
        return self.params.get(key, default)

    def __str__(self) -> str:
        netloc = ""
        if self.host is not None:
            netloc = f"[{self.host}]" if ":" in self.host else self.host
            if self.port is not None:
                netloc += f":{self.port}"
        query = "&".join(f"{k}={quote(v, safe='/:')}" for k, v in self.params.items())
        return f"{self.scheme}://{netloc}{self.path}" + (f"?{query}" if query else "")


def parse_url(text: str) -> ConnectionUrl:
    """Split a connection URL; raises ``ValueError`` with a message fit for a user.

    Serial schemes (``modbus+rtu``, ``serial``, ``grbl``) carry a device path or a
    pyserial URL instead of host:port: ``modbus+rtu:///dev/ttyUSB0`` or
    ``modbus+rtu://socket://127.0.0.1:4001`` both work; the port is kept in ``path``.
    """
    if not isinstance(text, str) or "://" not in text:
        raise ValueError(f"expected a URL like 'modbus+tcp://host:port?unit=1', found {text!r}")
    scheme, _, rest = text.partition("://")
    scheme = scheme.lower()
    if not scheme or not all(c.isalnum() or c in "+.-" for c in scheme):
        raise ValueError(f"bad URL scheme {scheme!r} in {text!r}")
    if scheme in _SERIAL_SCHEMES:
        port, _, query = rest.partition("?")
        # a nested pyserial URL may carry its own query: keep known keys for us only
        inner = port if "://" in port else unquote(port)
        if not inner:
            raise ValueError(
                f"expected a serial port after '{scheme}://', found nothing in {text!r}")
        params = dict(parse_qsl(query, keep_blank_values=True))
        return ConnectionUrl(scheme=scheme, path=inner, params=MappingProxyType(params))
    parts = urlsplit(f"//{rest}")
    try:
        port_num = parts.port
    except ValueError:
        raise ValueError(f"port must be a number 1-65535 in {text!r}") from None
    host = parts.hostname
    if not host:
        raise ValueError(f"expected a host in {text!r}")
    if port_num is not None and not 0 < port_num < 65536:
        raise ValueError(f"port must be 1-65535 in {text!r}")
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    return ConnectionUrl(
        scheme=scheme, host=host, port=port_num, path=parts.path,
        params=MappingProxyType(params),
    )


_SERIAL_SCHEMES = frozenset({"modbus+rtu", "serial", "grbl"})
