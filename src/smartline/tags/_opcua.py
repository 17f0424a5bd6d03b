"""OPC UA node ids in their string form (OPC 10000-6 §5.3.1.10; ExpandedNodeId §5.3.1.11).

``ns=2;s=Line.Temp``, ``ns=2;i=1001``, ``i=85`` (namespace 0), ``ns=3;g=<guid>``,
``ns=4;b=<base64>``, ``nsu=<uri>;s=...``. Parsed strictly, stored canonicalised.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Literal, cast
from urllib.parse import unquote

from ._base import UntypedAddress
from ._types import AddressError, FieldError, parse_uint, quote

__all__ = ["OpcUaAddress", "parse_opcua"]

Kind = Literal["i", "s", "g", "b"]
_KINDS = {"i": "numeric", "s": "string", "g": "GUID", "b": "opaque (base64)"}
_MAX_ID = 4096  # characters of an s= identifier, bytes of a b= identifier (Part 3 §8.2.4)
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_NIL_GUID = "00000000-0000-0000-0000-000000000000"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # Unicode C0 and C1
_BAD_ESCAPE = re.compile(r"%(?![0-9a-fA-F]{2})")
_EXAMPLE = "ns=2;s=Line.Temp, ns=2;i=1001, i=85, nsu=urn:x;s=Temp"


@dataclass(frozen=True, slots=True)
class OpcUaAddress(UntypedAddress):
    """An OPC UA NodeId; implements :class:`smartline.core.Address`.

    Exactly one of ``namespace`` (index, 0 for the standard namespace) and
    ``namespace_uri`` is set. ``identifier`` is kept canonical: decimal for ``i``, lower-case
    hyphenated without braces for ``g``, padded standard base64 for ``b``.
    """

    namespace: int | None
    namespace_uri: str | None
    kind: Kind
    identifier: str

    def __post_init__(self) -> None:
        problem = _check(self)
        if problem is not None:
            raise FieldError(*problem, self._loose())
        object.__setattr__(self, "identifier", _canonical_id(self.kind, self.identifier))

    @property
    def family(self) -> str:
        return "opcua"

    def canonical(self) -> str:
        """``ns=`` left out for namespace 0 (OPC 10000-6); ';' and '%' escaped in nsu."""
        if self.namespace_uri is not None:
            uri = self.namespace_uri.replace("%", "%25").replace(";", "%3B")
            return f"nsu={uri};{self.kind}={self.identifier}"
        prefix = f"ns={self.namespace};" if self.namespace else ""
        return f"{prefix}{self.kind}={self.identifier}"

    def __str__(self) -> str:
        return self.canonical()

    def _loose(self) -> str:
        uri = self.namespace_uri
        ns = f"nsu={uri}" if uri is not None else f"ns={self.namespace}"
        return f"{ns};{self.kind}={self.identifier}"


def _canonical_id(kind: str, identifier: str) -> str:
    if kind == "i":
        return str(int(identifier))
    if kind == "g":
        return identifier.strip("{}").lower()
    if kind == "b":
        return base64.b64encode(base64.b64decode(identifier, validate=True)).decode("ascii")
    return identifier


def _check(a: OpcUaAddress) -> tuple[str, str] | None:
    """The first thing wrong with a set of fields, and which part of the text it is about."""
    if (a.namespace is None) == (a.namespace_uri is None):
        return "expected exactly one of a namespace index (ns=) and a namespace URI (nsu=)", "ns"
    if a.namespace is not None and not 0 <= a.namespace <= 65535:
        return f"namespace index {a.namespace} out of range: expected 0..65535", "ns"
    if a.namespace_uri is not None:
        if not a.namespace_uri:
            return "empty namespace URI: expected nsu=<uri>;", "ns"
        if _CONTROL.search(a.namespace_uri):
            return "namespace URI contains a control character", "ns"
    if a.kind not in _KINDS:
        return f"unknown identifier type {a.kind!r}: expected i, s, g or b", "kind"
    ident = a.identifier
    null = a.namespace == 0
    if a.kind == "i":
        number = parse_uint(ident)
        if number is None:
            return f"numeric identifier {ident!r} is not a number: expected 0..4294967295", "id"
        if number > 0xFFFF_FFFF:
            return f"numeric identifier {ident} out of range: expected 0..4294967295 (UInt32)", "id"
        if null and number == 0:
            return "i=0 in namespace 0 is the null NodeId, which names no node", "id"
    elif a.kind == "s":
        if not ident:
            return "empty string identifier: expected s=<name>", "id"
        if len(ident) > _MAX_ID:
            return (f"string identifier is {len(ident)} characters long: expected at most "
                    f"{_MAX_ID}"), "id"
        bad = _CONTROL.search(ident)
        if bad is not None:
            return (f"string identifier contains the control character {bad.group()!r} at "
                    f"{bad.start()}: expected printable text"), "id"
    elif a.kind == "g":
        inner = ident[1:-1] if ident.startswith("{") and ident.endswith("}") else ident
        if not _GUID.fullmatch(inner):
            return (f"GUID {ident!r} is malformed: expected 8-4-4-4-12 hex digits like "
                    "09087e75-8e5e-499b-954f-f2a9603db28a"), "id"
        if null and inner == _NIL_GUID:
            return "the all-zero GUID in namespace 0 is the null NodeId, which names no node", "id"
    else:
        try:
            raw = base64.b64decode(ident, validate=True)
        except (binascii.Error, ValueError):
            return (f"opaque identifier {ident!r} is not valid base64: expected standard "
                    "base64 with padding like M/RbKBsRVkePCePcx24oRA=="), "id"
        if not raw:
            return "empty opaque identifier: expected b=<base64 of 1 or more bytes>", "id"
        if len(raw) > _MAX_ID:
            return f"opaque identifier is {len(raw)} bytes: expected at most {_MAX_ID}", "id"
    return None


def parse_opcua(text: str) -> OpcUaAddress:
    """Parse a NodeId string; raises :class:`AddressError` naming what was found and expected.

    Nothing is stripped: a string identifier may legitimately end in a space.
    """
    where = f"in {quote(text)}"
    cols: dict[str, int] = {"ns": 0}
    rest, pos = text, 0
    namespace: int | None = 0
    uri: str | None = None
    if rest.startswith("svr="):
        raise AddressError(f"server index (svr=) is not supported: expected a node of the "
                           f"connected server like {_EXAMPLE} {where}", column=0)
    if rest.startswith(("ns=", "nsu=")):
        key, _, tail = rest.partition("=")
        value, semi, after = tail.partition(";")
        if not semi:
            raise AddressError(f"missing ';' and identifier after {quote(rest)}: expected "
                               f"{key}=...;TYPE=VALUE like {_EXAMPLE} {where}", column=len(rest))
        if key == "ns":
            number = parse_uint(value)
            if number is None:
                raise AddressError(f"namespace index {quote(value)} is not a number: expected "
                                   f"0..65535 {where}", column=3)
            namespace = number
        else:
            if _BAD_ESCAPE.search(value):
                raise AddressError(f"namespace URI {quote(value)} has a '%' that does not "
                                   f"start a %XX escape {where}", column=4)
            try:
                uri = unquote(value, errors="strict")
            except UnicodeDecodeError:
                raise AddressError(f"namespace URI {quote(value)} has %XX escapes that are "
                                   f"not UTF-8 {where}", column=4) from None
            namespace = None
        pos = len(key) + 1 + len(value) + 1
        rest = after
        if rest.startswith(("ns=", "nsu=")):
            raise AddressError(f"second namespace {quote(rest.partition(';')[0])}: expected "
                               f"one ns= or nsu= {where}", column=pos)
    cols["kind"] = pos
    kind, eq, ident = rest.partition("=")
    if not eq or kind not in _KINDS:
        found = quote(kind) if eq else quote(rest)
        raise AddressError(f"unknown identifier {found}: expected i=, s=, g= or b= "
                           f"(like {_EXAMPLE}) {where}", column=pos)
    cols["id"] = pos + 2
    try:
        return OpcUaAddress(namespace, uri, cast(Kind, kind), ident)
    except FieldError as exc:
        raise exc.at(text, cols) from None
