"""From the process image to OPC UA: a tag's DataType, its values as Variants and its quality
as a StatusCode (OPC 10000-4 §7.39, 10000-8 §6.3.2)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from asyncua import ua
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes

from ...core import Quality, Reason
from ...cycle import TagValue
from ...tags import DataType, TagSpec

__all__ = ["NodeType", "code", "data_value", "is_bad", "nid", "node_type", "status_code", "utc"]

_VARIANTS: dict[DataType, ua.VariantType] = {
    DataType.BOOL: ua.VariantType.Boolean,
    DataType.INT8: ua.VariantType.SByte,
    DataType.UINT8: ua.VariantType.Byte,
    DataType.INT16: ua.VariantType.Int16,
    DataType.UINT16: ua.VariantType.UInt16,
    DataType.INT32: ua.VariantType.Int32,
    DataType.UINT32: ua.VariantType.UInt32,
    DataType.INT64: ua.VariantType.Int64,
    DataType.UINT64: ua.VariantType.UInt64,
    DataType.FLOAT32: ua.VariantType.Float,
    DataType.FLOAT64: ua.VariantType.Double,
    DataType.STRING: ua.VariantType.String,
}

#: a BAD value's reason -> the Bad code a client sees
_BAD: dict[Reason, int] = {
    Reason.NOT_READ: StatusCodes.BadWaitingForInitialData,
    Reason.NOT_CONNECTED: StatusCodes.BadNotConnected,
    Reason.TIMEOUT: StatusCodes.BadTimeout,
    Reason.DEADLINE: StatusCodes.BadTimeout,
    Reason.DEVICE_ERROR: StatusCodes.BadDeviceFailure,
    Reason.PROTOCOL_ERROR: StatusCodes.BadCommunicationError,
    Reason.DECODE_ERROR: StatusCodes.BadDataEncodingInvalid,
    Reason.LINK_BROKEN: StatusCodes.BadNoCommunication,
    Reason.DEMOTED: StatusCodes.BadNoCommunication,
    Reason.SUBSCRIPTION_LOST: StatusCodes.BadNoCommunication,
    Reason.OUT_OF_RANGE: StatusCodes.BadOutOfRange,
    Reason.CLOSED: StatusCodes.BadOutOfService,
    Reason.SIMULATED: StatusCodes.BadOutOfService,
}

#: an UNCERTAIN value's reason -> its Uncertain code (others: UncertainLastUsableValue)
_UNCERTAIN: dict[Reason, int] = {
    Reason.OUT_OF_RANGE: StatusCodes.UncertainEngineeringUnitsExceeded,
    Reason.SIMULATED: StatusCodes.UncertainSubstituteValue,
}


@dataclass(frozen=True, slots=True)
class NodeType:
    """How a tag looks in the address space: its Variant type (which fixes the DataType
    node), and its array length (None for a scalar)."""

    variant: ua.VariantType
    data_type: ua.NodeId
    length: int | None

    def initial(self) -> ua.Variant:
        """A value of the right type to create the variable with (0, false, empty)."""
        one: object = {ua.VariantType.Boolean: False, ua.VariantType.String: "",
                       ua.VariantType.Float: 0.0, ua.VariantType.Double: 0.0}.get(self.variant, 0)
        if self.length is not None:
            return ua.Variant([one] * self.length, self.variant, is_array=True)
        return ua.Variant(one, self.variant)

    def variant_of(self, value: object) -> ua.Variant:
        """``value`` (as the image gives it) as a Variant of this type; ``ValueError`` when
        it cannot be one (NaN for an integer, text for a number)."""
        if self.length is not None:
            if not isinstance(value, Sequence) or isinstance(value, str):
                raise ValueError(f"expected {self.length} values, found {value!r}")
            return ua.Variant([self._scalar(v) for v in value], self.variant, is_array=True)
        return ua.Variant(self._scalar(value), self.variant)

    def _scalar(self, value: object) -> object:
        vt = self.variant
        if vt == ua.VariantType.String:
            if not isinstance(value, str):
                raise ValueError(f"expected text, found {value!r}")
            return value
        if isinstance(value, str) or value is None:
            raise ValueError(f"expected a number, found {value!r}")
        if not isinstance(value, bool | int | float):
            raise ValueError(f"expected a number, found {value!r}")
        if vt == ua.VariantType.Boolean:
            return bool(value)
        if vt in (ua.VariantType.Float, ua.VariantType.Double):
            return float(value)
        number = float(value)
        if not math.isfinite(number) or not number.is_integer():
            raise ValueError(f"{value!r} is not a whole number")
        return int(value)


def nid(identifier: int | str, ns: int = 0) -> ua.NodeId:
    """A NodeId (asyncua's annotations want its own integer aliases)."""
    return ua.NodeId(cast(Any, identifier), cast(Any, ns))


def code(value: int) -> ua.StatusCode:
    """A StatusCode from its number."""
    return ua.StatusCode(cast(Any, value))


def node_type(spec: TagSpec) -> NodeType:
    """The OPC UA type of a tag's engineering value: the wire type when the value is the raw
    one, Double when a scale turns it into a float, String for text; a tag whose type the
    device decides (OPC UA nodes, profile points) is a Double of abstract DataType Number
    (asyncua's type check needs a fixed Variant type per node)."""
    dtype = spec.dtype
    length = spec.elements if spec.is_array else None
    if spec.is_text:
        vt = ua.VariantType.String
    elif dtype is None:
        return NodeType(ua.VariantType.Double, nid(ObjectIds.Number), length)
    elif spec.scale is not None and dtype is not DataType.BOOL:
        vt = ua.VariantType.Double
    else:
        vt = _VARIANTS[dtype]
    return NodeType(vt, nid(int(vt.value)), length)


def status_code(quality: Quality, reason: Reason) -> int:
    """The StatusCode of an image value: GOOD Good; UNCERTAIN and STALE (the last value
    kept) UncertainLastUsableValue, or a finer Uncertain code where the reason says more;
    BAD the Bad code of its reason (BadWaitingForInitialData before the first read)."""
    if quality is Quality.GOOD:
        return StatusCodes.Good
    if quality is Quality.BAD:
        return _BAD.get(reason, StatusCodes.Bad)
    if quality is Quality.UNCERTAIN:
        return _UNCERTAIN.get(reason, StatusCodes.UncertainLastUsableValue)
    return StatusCodes.UncertainLastUsableValue


def is_bad(code: int) -> bool:
    """Whether a StatusCode's severity is Bad (its two top bits 10)."""
    return code & 0xC0000000 == 0x80000000


def utc(ns: int) -> dt.datetime | None:
    """Wall-clock nanoseconds as an aware UTC datetime (None for 0: never)."""
    if not ns:
        return None
    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC)


def data_value(kind: NodeType, value: TagValue, server_ns: int) -> ua.DataValue:
    """The DataValue a client reads for ``value``: its StatusCode from the quality, its
    SourceTimestamp from the time the device sampled it; a value the type cannot hold is
    BadDataEncodingInvalid (a bad status carries no value, as OPC 10000-4 §7.7.1 asks)."""
    status = status_code(value.quality, value.reason)
    variant: ua.Variant | None = None
    if not is_bad(status):
        try:
            variant = kind.variant_of(value.value)
        except ValueError:
            status = StatusCodes.BadDataEncodingInvalid if value.quality is Quality.GOOD \
                else _BAD.get(value.reason, StatusCodes.Bad)
    if variant is None:
        variant = ua.Variant(None, ua.VariantType.Null)
    return ua.DataValue(Value=variant, StatusCode=ua.StatusCode(cast(Any, status)),
                        SourceTimestamp=cast(Any, utc(value.source_ns)),
                        ServerTimestamp=cast(Any, utc(server_ns)))
