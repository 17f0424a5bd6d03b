"""An independent Sparkplug B payload decoder and command encoder for the tests.

Built from the published schema's field numbers (Sparkplug B 3.0 specification §6.4, see
/work/shared/research/northbound-specs.md §1.3) on a small protobuf wire-format reader — it
never imports smartline's generated ``sparkplug_b_pb2``, so an error in our schema or our
use of it shows up as a disagreement. pytest puts tests/ on the import path
(``pythonpath`` in pyproject.toml): ``import northbound_decoder``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

# wire types
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5

# Payload fields
P_TIMESTAMP, P_METRICS, P_SEQ, P_UUID, P_BODY = 1, 2, 3, 4, 5
# Metric fields
(M_NAME, M_ALIAS, M_TIMESTAMP, M_DATATYPE, M_HISTORICAL, M_TRANSIENT, M_NULL, M_METADATA,
 M_PROPERTIES, M_INT, M_LONG, M_FLOAT, M_DOUBLE, M_BOOL, M_STRING, M_BYTES) = range(1, 17)
# PropertySet / PropertyValue fields
PS_KEYS, PS_VALUES = 1, 2
PV_TYPE, PV_NULL, PV_INT, PV_LONG, PV_FLOAT, PV_DOUBLE, PV_BOOL, PV_STRING = range(1, 9)

# DataType codes (§6.4.16)
INT8, INT16, INT32, INT64, UINT8, UINT16, UINT32, UINT64 = range(1, 9)
FLOAT, DOUBLE, BOOLEAN, STRING = 9, 10, 11, 12
_BITS = {INT8: 8, INT16: 16, INT32: 32, INT64: 64, UINT8: 8, UINT16: 16, UINT32: 32,
         UINT64: 64}
_SIGNED = {INT8, INT16, INT32, INT64}


@dataclass
class Metric:
    name: str | None = None
    alias: int | None = None
    timestamp: int | None = None
    datatype: int | None = None
    is_historical: bool = False
    is_transient: bool = False
    is_null: bool = False
    value: object = None
    value_field: int | None = None
    properties: dict[str, object] = field(default_factory=dict)


@dataclass
class Payload:
    timestamp: int | None = None
    seq: int | None = None
    uuid: str | None = None
    metrics: list[Metric] = field(default_factory=list)

    def by_name(self) -> dict[str, Metric]:
        return {m.name: m for m in self.metrics if m.name is not None}


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def fields(buf: bytes) -> list[tuple[int, int, object]]:
    """(field number, wire type, raw value) of every field in ``buf``, in order."""
    out: list[tuple[int, int, object]] = []
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        num, wt = key >> 3, key & 7
        value: object
        if wt == _VARINT:
            value, pos = _varint(buf, pos)
        elif wt == _I64:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wt == _I32:
            value, pos = buf[pos:pos + 4], pos + 4
        elif wt == _LEN:
            n, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + n], pos + n
        else:
            raise ValueError(f"unsupported wire type {wt} for field {num}")
        out.append((num, wt, value))
    if pos != len(buf):
        raise ValueError("truncated message")
    return out


def _signed(raw: int, datatype: int | None) -> int:
    """The low bits of ``raw`` as ``datatype`` (signed types sign-interpreted)."""
    bits = _BITS.get(datatype or 0)
    if bits is None:
        return raw
    raw &= (1 << bits) - 1
    if datatype in _SIGNED and raw >= 1 << (bits - 1):
        raw -= 1 << bits
    return raw


def _property_value(buf: bytes) -> object:
    ptype = None
    value: object = None
    for num, _, raw in fields(buf):
        if num == PV_TYPE:
            ptype = raw
        elif num == PV_NULL and raw:
            return None
        elif num in (PV_INT, PV_LONG):
            value = raw
        elif num == PV_FLOAT:
            value = struct.unpack("<f", raw)[0]  # type: ignore[arg-type]
        elif num == PV_DOUBLE:
            value = struct.unpack("<d", raw)[0]  # type: ignore[arg-type]
        elif num == PV_BOOL:
            value = bool(raw)
        elif num == PV_STRING:
            value = bytes(raw).decode()  # type: ignore[arg-type]
    if isinstance(value, int) and not isinstance(value, bool) and isinstance(ptype, int):
        value = _signed(value, ptype)
    return value


def _properties(buf: bytes) -> dict[str, object]:
    keys: list[str] = []
    values: list[object] = []
    for num, _, raw in fields(buf):
        if num == PS_KEYS:
            keys.append(bytes(raw).decode())  # type: ignore[arg-type]
        elif num == PS_VALUES:
            values.append(_property_value(raw))  # type: ignore[arg-type]
    return dict(zip(keys, values, strict=True))


def decode_metric(buf: bytes) -> Metric:
    m = Metric()
    for num, _, raw in fields(buf):
        if num == M_NAME:
            m.name = bytes(raw).decode()  # type: ignore[arg-type]
        elif num == M_ALIAS:
            m.alias = raw  # type: ignore[assignment]
        elif num == M_TIMESTAMP:
            m.timestamp = raw  # type: ignore[assignment]
        elif num == M_DATATYPE:
            m.datatype = raw  # type: ignore[assignment]
        elif num == M_HISTORICAL:
            m.is_historical = bool(raw)
        elif num == M_TRANSIENT:
            m.is_transient = bool(raw)
        elif num == M_NULL:
            m.is_null = bool(raw)
        elif num == M_PROPERTIES:
            m.properties = _properties(raw)  # type: ignore[arg-type]
        elif num in (M_INT, M_LONG):
            m.value, m.value_field = raw, num
        elif num == M_FLOAT:
            m.value, m.value_field = struct.unpack("<f", raw)[0], num  # type: ignore[arg-type]
        elif num == M_DOUBLE:
            m.value, m.value_field = struct.unpack("<d", raw)[0], num  # type: ignore[arg-type]
        elif num == M_BOOL:
            m.value, m.value_field = bool(raw), num
        elif num == M_STRING:
            m.value, m.value_field = bytes(raw).decode(), num  # type: ignore[arg-type]
        elif num == M_BYTES:
            m.value, m.value_field = bytes(raw), num  # type: ignore[arg-type]
    return m


def decode(buf: bytes, aliases: dict[int, int] | None = None) -> Payload:
    """A Sparkplug B payload. ``aliases`` (alias -> datatype, from the births) types the
    integer values of DATA metrics, which carry no datatype."""
    p = Payload()
    for num, _, raw in fields(buf):
        if num == P_TIMESTAMP:
            p.timestamp = raw  # type: ignore[assignment]
        elif num == P_SEQ:
            p.seq = raw  # type: ignore[assignment]
        elif num == P_UUID:
            p.uuid = bytes(raw).decode()  # type: ignore[arg-type]
        elif num == P_METRICS:
            p.metrics.append(decode_metric(raw))  # type: ignore[arg-type]
    for m in p.metrics:
        dt = m.datatype
        if dt is None and aliases is not None and m.alias is not None:
            dt = aliases.get(m.alias)
        if m.value_field in (M_INT, M_LONG) and isinstance(m.value, int):
            m.value = _signed(m.value, dt)
    return p


# -- encoding (commands a host sends) --------------------------------------------------------

def _enc_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _key(num: int, wt: int) -> bytes:
    return _enc_varint(num << 3 | wt)


def _len(num: int, data: bytes) -> bytes:
    return _key(num, _LEN) + _enc_varint(len(data)) + data


def encode_metric(*, name: str | None = None, alias: int | None = None, datatype: int,
                  value: object, timestamp: int = 0) -> bytes:
    out = b""
    if name is not None:
        out += _len(M_NAME, name.encode())
    if alias is not None:
        out += _key(M_ALIAS, _VARINT) + _enc_varint(alias)
    out += _key(M_TIMESTAMP, _VARINT) + _enc_varint(timestamp)
    out += _key(M_DATATYPE, _VARINT) + _enc_varint(datatype)
    if datatype == BOOLEAN:
        out += _key(M_BOOL, _VARINT) + _enc_varint(int(bool(value)))
    elif datatype == STRING:
        out += _len(M_STRING, str(value).encode())
    elif datatype == FLOAT:
        out += _key(M_FLOAT, _I32) + struct.pack("<f", float(value))  # type: ignore[arg-type]
    elif datatype == DOUBLE:
        out += _key(M_DOUBLE, _I64) + struct.pack("<d", float(value))  # type: ignore[arg-type]
    elif datatype in (INT64, UINT64):
        out += _key(M_LONG, _VARINT) + _enc_varint(int(value) & (2**64 - 1))  # type: ignore[call-overload]
    else:
        out += _key(M_INT, _VARINT) + _enc_varint(int(value) & 0xFFFFFFFF)  # type: ignore[call-overload]
    return out


def encode(metrics: list[bytes], *, timestamp: int = 0, seq: int | None = None) -> bytes:
    """A payload of already encoded metrics (a host's NCMD/DCMD)."""
    out = _key(P_TIMESTAMP, _VARINT) + _enc_varint(timestamp)
    for m in metrics:
        out += _len(P_METRICS, m)
    if seq is not None:
        out += _key(P_SEQ, _VARINT) + _enc_varint(seq)
    return out

