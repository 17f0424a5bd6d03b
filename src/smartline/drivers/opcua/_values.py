"""OPC UA values ↔ smartline raw values: decoding DataValues, encoding writes, times."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from asyncua import ua

from smartline.core import Point, Quality, Reason, ResultBuilder, WriteValue

__all__ = ["INTEGER_RANGES", "encode", "fill", "ns_of", "plain", "status_text"]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_US = dt.timedelta(microseconds=1)

INTEGER_RANGES: dict[ua.VariantType, tuple[int, int]] = {
    ua.VariantType.SByte: (-(2 ** 7), 2 ** 7 - 1),
    ua.VariantType.Byte: (0, 2 ** 8 - 1),
    ua.VariantType.Int16: (-(2 ** 15), 2 ** 15 - 1),
    ua.VariantType.UInt16: (0, 2 ** 16 - 1),
    ua.VariantType.Int32: (-(2 ** 31), 2 ** 31 - 1),
    ua.VariantType.UInt32: (0, 2 ** 32 - 1),
    ua.VariantType.Int64: (-(2 ** 63), 2 ** 63 - 1),
    ua.VariantType.UInt64: (0, 2 ** 64 - 1),
}
_FLOATS = (ua.VariantType.Float, ua.VariantType.Double)
_TEXTS = (ua.VariantType.String, ua.VariantType.LocalizedText, ua.VariantType.QualifiedName,
          ua.VariantType.NodeId, ua.VariantType.ExpandedNodeId, ua.VariantType.Guid,
          ua.VariantType.XmlElement)

# item status codes whose point is simply not there or not allowed (the device answered)
_DEVICE = Reason.DEVICE_ERROR


def ns_of(when: dt.datetime | None) -> int | None:
    """Nanoseconds since the epoch of an OPC UA time (naive times are UTC)."""
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    ns = (when - _EPOCH) // _US * 1000
    return ns if ns > 0 else None


def status_text(code: int) -> str:
    """``BadNodeIdUnknown`` (the name of an OPC UA status code)."""
    name, _ = ua.status_codes.get_name_and_doc(code)
    return str(name) if name else f"0x{code:08X}"


def fill(builder: ResultBuilder, point: Point, dv: ua.DataValue) -> ua.VariantType | None:
    """Set ``point`` from a DataValue (value typed by its Variant, the source time of the
    server); returns the variant type seen (None when there was no value)."""
    status = dv.StatusCode
    if status is not None and not status.is_good():
        builder.fail(point, _DEVICE,
                     Quality.UNCERTAIN if status.is_uncertain() else Quality.BAD)
        return None
    variant = dv.Value
    if variant is None or variant.VariantType == ua.VariantType.Null or variant.Value is None:
        builder.fail(point, Reason.DECODE_ERROR)
        return None
    vt = variant.VariantType
    value = plain(vt, variant.Value)
    if value is None:
        builder.fail(point, Reason.DECODE_ERROR)
        return vt
    source = ns_of(dv.SourceTimestamp) or ns_of(dv.ServerTimestamp)
    builder.set(point, value, source)
    return vt


def plain(vt: ua.VariantType, value: Any) -> bool | int | float | str | None:
    if isinstance(value, list):  # arrays are not scalar tags
        return None
    if vt == ua.VariantType.Boolean:
        return bool(value)
    if vt in INTEGER_RANGES or vt == ua.VariantType.StatusCode:
        return int(value.value if isinstance(value, ua.StatusCode) else value)
    if vt in _FLOATS:
        return float(value)
    if vt == ua.VariantType.String:
        return str(value)
    if vt == ua.VariantType.LocalizedText:
        return str(value.Text or "")
    if vt == ua.VariantType.QualifiedName:
        return str(value.Name or "")
    if vt in (ua.VariantType.NodeId, ua.VariantType.ExpandedNodeId):
        return str(value.to_string())
    if vt in (ua.VariantType.Guid, ua.VariantType.XmlElement):
        return str(value)
    if vt == ua.VariantType.DateTime:
        return ns_of(value)
    return None


def encode(vt: ua.VariantType, value: WriteValue) -> ua.Variant:
    """``value`` as a Variant of the node's type; ``ValueError`` says why it cannot be."""
    if isinstance(value, tuple):
        raise ValueError("an OPC UA tag holds one value, not a sequence")
    if vt == ua.VariantType.Boolean:
        if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
            return ua.Variant(bool(value), vt)
        raise ValueError(f"the node is Boolean; found {value!r}")
    if vt in INTEGER_RANGES:
        if isinstance(value, str):
            raise ValueError(f"the node is {vt.name}; found text {value!r}")
        if isinstance(value, float):
            if not value.is_integer():
                raise ValueError(f"the node is {vt.name}; {value!r} is not a whole number")
            value = int(value)
        low, high = INTEGER_RANGES[vt]
        if not low <= int(value) <= high:
            raise ValueError(f"{value} is outside {vt.name}'s range {low}..{high}")
        return ua.Variant(int(value), vt)
    if vt in _FLOATS:
        if isinstance(value, str):
            raise ValueError(f"the node is {vt.name}; found text {value!r}")
        number = float(value)
        if vt == ua.VariantType.Float and math.isfinite(number) and abs(number) > 3.4028235e38:
            raise ValueError(f"{value} is outside Float's range")
        return ua.Variant(number, vt)
    if vt == ua.VariantType.String:
        if not isinstance(value, str):
            raise ValueError(f"the node is String; found {type(value).__name__} {value!r}")
        return ua.Variant(value, vt)
    if vt == ua.VariantType.LocalizedText:
        if not isinstance(value, str):
            raise ValueError(f"the node is LocalizedText; found {value!r}")
        return ua.Variant(ua.LocalizedText(value), vt)
    raise ValueError(f"writing {vt.name} nodes is not supported")


def is_text_type(vt: ua.VariantType) -> bool:
    return vt in _TEXTS
