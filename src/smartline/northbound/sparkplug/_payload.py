"""Sparkplug B payloads from the process image: data types, values, quality and the
topic names (specification §4 topics, §6 payloads). Pure functions over the generated
protobuf classes; the edge node (``_node.py``) owns the session state (seq, bdSeq)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum

from ...core import Quality
from ...tags import DataType, TagSpec
from ._store import StoredSample
from .sparkplug_b_pb2 import Payload

__all__ = [
    "QUALITY_CODE",
    "MetricDef",
    "SpType",
    "cmd_value",
    "metric_type",
    "quality_code",
    "set_value",
    "topic",
]

NAMESPACE = "spBv1.0"


class SpType(IntEnum):
    """The Sparkplug B DataType codes used here (specification §6.4.16)."""

    INT8 = 1
    INT16 = 2
    INT32 = 3
    INT64 = 4
    UINT8 = 5
    UINT16 = 6
    UINT32 = 7
    UINT64 = 8
    FLOAT = 9
    DOUBLE = 10
    BOOLEAN = 11
    STRING = 12


_BY_DTYPE: dict[DataType, SpType] = {
    DataType.BOOL: SpType.BOOLEAN, DataType.INT8: SpType.INT8, DataType.INT16: SpType.INT16,
    DataType.INT32: SpType.INT32, DataType.INT64: SpType.INT64, DataType.UINT8: SpType.UINT8,
    DataType.UINT16: SpType.UINT16, DataType.UINT32: SpType.UINT32,
    DataType.UINT64: SpType.UINT64, DataType.FLOAT32: SpType.FLOAT,
    DataType.FLOAT64: SpType.DOUBLE, DataType.STRING: SpType.STRING,
}
_BITS = {SpType.INT8: 8, SpType.INT16: 16, SpType.INT32: 32, SpType.INT64: 64,
         SpType.UINT8: 8, SpType.UINT16: 16, SpType.UINT32: 32, SpType.UINT64: 64}
_SIGNED = (SpType.INT8, SpType.INT16, SpType.INT32, SpType.INT64)

#: the ``Quality`` property (PropertyValue type Int32): 0 BAD, 192 GOOD, 500 STALE as the
#: specification lists them; UNCERTAIN is 64, the OPC DA "uncertain" code of the family the
#: other two come from (our choice, ADR 0027).
QUALITY_CODE: dict[Quality, int] = {Quality.GOOD: 192, Quality.UNCERTAIN: 64,
                                    Quality.STALE: 500, Quality.BAD: 0}
GOOD = 192
_INT32 = 3  # PropertyValue type of the Quality property


@dataclass(frozen=True, slots=True)
class MetricDef:
    """One published tag: its device, metric name (the tag name), alias and type."""

    device: str
    tag: str
    alias: int
    datatype: SpType


def topic(group: str, verb: str, node: str, device: str | None = None) -> str:
    """``spBv1.0/<group>/<verb>/<node>[/<device>]``."""
    base = f"{NAMESPACE}/{group}/{verb}/{node}"
    return base if device is None else f"{base}/{device}"


def metric_type(spec: TagSpec, sample: object = None) -> SpType | None:
    """The Sparkplug type of a tag: by its address type (Double when scaled), String for
    text; None for arrays (not published). Untyped tags (OPC UA, profiles) are Double,
    or String when the value at birth is text."""
    if spec.is_array:
        return None
    if spec.is_text:
        return SpType.STRING
    if spec.scale is not None:
        return SpType.DOUBLE
    dtype = spec.dtype
    if dtype is None:
        return SpType.STRING if isinstance(sample, str) else SpType.DOUBLE
    return _BY_DTYPE[dtype]


def quality_code(quality: Quality) -> int:
    return QUALITY_CODE[quality]


def coerce(value: object, datatype: int) -> float | int | bool | str | None:
    """``value`` as the Python type ``datatype`` carries (None when it cannot)."""
    if value is None:
        return None
    try:
        if datatype == SpType.BOOLEAN:
            return bool(value)
        if datatype == SpType.STRING:
            return str(value)
        if datatype in _BITS:
            return int(value)  # type: ignore[call-overload, no-any-return]
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return None


def set_value(metric: Payload.Metric, datatype: int,
              value: float | int | bool | str | None) -> None:
    """Put ``value`` in the oneof field ``datatype`` uses; ``is_null`` when None.

    Integers of 8–32 bits go in ``int_value`` (negative ones as the 32-bit two's
    complement, as the TCK's encoder does), 64-bit ones in ``long_value``.
    """
    v = coerce(value, datatype)
    if v is None:
        metric.is_null = True
        return
    if datatype == SpType.BOOLEAN:
        metric.boolean_value = bool(v)
    elif datatype == SpType.STRING:
        metric.string_value = str(v)
    elif datatype == SpType.FLOAT:
        metric.float_value = float(v)
    elif datatype == SpType.DOUBLE:
        metric.double_value = float(v)
    elif datatype in (SpType.INT64, SpType.UINT64):
        metric.long_value = int(v) & 0xFFFF_FFFF_FFFF_FFFF
    else:
        metric.int_value = int(v) & 0xFFFF_FFFF


def set_quality(metric: Payload.Metric, quality: int) -> None:
    """The ``Quality`` property (Int32) on ``metric``."""
    metric.properties.keys.append("Quality")
    prop = metric.properties.values.add()
    prop.type = _INT32
    prop.int_value = quality & 0xFFFF_FFFF


def add_sample(payload: Payload, sample: StoredSample, *, alias: int | None,
               name: str | None, birth: bool, historical: bool,
               quality_property: bool) -> None:
    """Append one metric: BIRTH has name, alias and datatype; DATA the alias only."""
    m = payload.metrics.add()
    if name is not None:
        m.name = name
    if alias is not None:
        m.alias = alias
    m.timestamp = sample.ts_ms
    if birth:
        m.datatype = sample.datatype
    if historical:
        m.is_historical = True
    set_value(m, sample.datatype, None if sample.quality == 0 else sample.value)
    if quality_property:
        set_quality(m, sample.quality)


def cmd_value(metric: Payload.Metric, datatype: int) -> float | int | bool | str | None:
    """The value a command metric carries, read as ``datatype`` (whichever field a host
    used; signed integers from the low bits of either integer field)."""
    field = metric.WhichOneof("value")
    if field is None or metric.is_null:
        return None
    raw: object = getattr(metric, field)
    if field in ("int_value", "long_value") and isinstance(raw, int):
        bits = _BITS.get(SpType(datatype)) if datatype in _BITS else None
        if bits is not None:
            raw &= (1 << bits) - 1
            if SpType(datatype) in _SIGNED and raw >= 1 << (bits - 1):
                raw -= 1 << bits
    if field in ("bytes_value", "dataset_value", "template_value", "extension_value"):
        return None
    return coerce(raw, datatype)


def payload(timestamp_ms: int, seq: int | None) -> Payload:
    """An empty payload with its timestamp (and seq, except for NDEATH)."""
    p = Payload()
    p.timestamp = timestamp_ms
    if seq is not None:
        p.seq = seq
    return p


def node_metric(p: Payload, name: str, datatype: SpType, value: float | int | bool | str,
                timestamp_ms: int) -> None:
    """A node metric without alias (bdSeq, Node Control/Rebirth, properties)."""
    m = p.metrics.add()
    m.name = name
    m.timestamp = timestamp_ms
    m.datatype = datatype
    set_value(m, datatype, value)


def group_by_device(items: Iterable[tuple[int, StoredSample]]
                    ) -> dict[str, list[tuple[int, StoredSample]]]:
    """Samples by device, in order."""
    out: dict[str, list[tuple[int, StoredSample]]] = {}
    for item in items:
        out.setdefault(item[1].device, []).append(item)
    return out


def ids_of(items: Sequence[tuple[int, StoredSample]]) -> list[int]:
    return [i for i, _ in items]
