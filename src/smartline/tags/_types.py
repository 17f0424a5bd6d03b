"""Storage data types, register byte orders, the address error and value coercion rules."""

from __future__ import annotations

import math
import re
from enum import StrEnum
from typing import Any

import numpy as np

from ..core import SmartlineError

__all__ = ["AddressError", "ByteOrder", "DataType", "FieldError", "coerce_raw", "encode_text"]


class AddressError(SmartlineError, ValueError):
    """An address does not follow its grammar; the message says what was found and expected.

    ``column`` is the 0-based offset in the address text where the problem starts, when known.
    """

    def __init__(self, message: str, *, column: int | None = None) -> None:
        super().__init__(message)
        self.column = column


class FieldError(AddressError):
    """Fields that do not form a valid address; ``part`` names the offending part of the text.

    Raised by the address constructors; the parsers turn it into an :class:`AddressError`
    that quotes the text and points at the part's column.
    """

    def __init__(self, reason: str, part: str, rendering: str) -> None:
        super().__init__(f"{reason} in {rendering!r}")
        self.reason = reason
        self.part = part

    def at(self, text: str, columns: dict[str, int], lead: int = 0) -> AddressError:
        """The same problem as a parser reports it: quoting ``text``, with the part's column."""
        return AddressError(f"{self.reason} in {text!r}",
                            column=lead + columns.get(self.part, 0))


class DataType(StrEnum):
    """Canonical storage types; the names are the lower-case type names of the Modbus grammar."""

    BOOL = "bool"
    INT8 = "int8"
    UINT8 = "uint8"
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    INT64 = "int64"
    UINT64 = "uint64"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    STRING = "string"

    @property
    def nbytes(self) -> int | None:
        """Bytes of one value (BOOL: 1, as numpy stores it); None for STRING (the address says)."""
        return _NBYTES[self]

    @property
    def numpy(self) -> np.dtype[Any]:
        """The numpy dtype in native byte order (STRING: ``np.str_``)."""
        dt: np.dtype[Any] = np.dtype(_NUMPY[self])
        return dt

    @property
    def is_integer(self) -> bool:
        """Signed or unsigned integer (not BOOL)."""
        return self in _INTEGER_RANGES

    @property
    def is_float(self) -> bool:
        return self in (DataType.FLOAT32, DataType.FLOAT64)

    @property
    def is_numeric(self) -> bool:
        """Integer or float: the types that scaling and limits apply to."""
        return self.is_integer or self.is_float

    @property
    def range(self) -> tuple[float, float]:
        """Smallest and largest representable value (exact ``int`` bounds for integer types).

        Raises ``ValueError`` for STRING, which has no numeric range.
        """
        if self in _INTEGER_RANGES:
            return _INTEGER_RANGES[self]
        if self is DataType.BOOL:
            return (0, 1)
        if self is DataType.FLOAT32:
            return (-_F32_MAX, _F32_MAX)
        if self is DataType.FLOAT64:
            return (-_F64_MAX, _F64_MAX)
        raise ValueError("string has no numeric range")

    def describe_range(self) -> str:
        """The range for messages: ``0..65535``, ``±3.40282e+38``."""
        lo, hi = self.range
        if self.is_float:
            return f"±{hi:g}"
        return f"{lo}..{hi}"


_NBYTES: dict[DataType, int | None] = {
    DataType.BOOL: 1, DataType.INT8: 1, DataType.UINT8: 1, DataType.INT16: 2,
    DataType.UINT16: 2, DataType.INT32: 4, DataType.UINT32: 4, DataType.INT64: 8,
    DataType.UINT64: 8, DataType.FLOAT32: 4, DataType.FLOAT64: 8, DataType.STRING: None,
}
_NUMPY: dict[DataType, Any] = {
    DataType.BOOL: np.bool_, DataType.INT8: np.int8, DataType.UINT8: np.uint8,
    DataType.INT16: np.int16, DataType.UINT16: np.uint16, DataType.INT32: np.int32,
    DataType.UINT32: np.uint32, DataType.INT64: np.int64, DataType.UINT64: np.uint64,
    DataType.FLOAT32: np.float32, DataType.FLOAT64: np.float64, DataType.STRING: np.str_,
}
_INTEGER_RANGES: dict[DataType, tuple[float, float]] = {
    DataType.INT8: (-(2**7), 2**7 - 1), DataType.UINT8: (0, 2**8 - 1),
    DataType.INT16: (-(2**15), 2**15 - 1), DataType.UINT16: (0, 2**16 - 1),
    DataType.INT32: (-(2**31), 2**31 - 1), DataType.UINT32: (0, 2**32 - 1),
    DataType.INT64: (-(2**63), 2**63 - 1), DataType.UINT64: (0, 2**64 - 1),
}
_F32_MAX = float(np.finfo(np.float32).max)
_F64_MAX = float(np.finfo(np.float64).max)


class ByteOrder(StrEnum):
    """Byte layout of a multi-register Modbus value; letters name its big-endian bytes.

    For 64-bit values the same rule is applied word-wise: ``cdab`` reverses the order of
    all four registers (least significant register first), ``badc`` swaps the two bytes
    inside every register, ``dcba`` does both (fully little-endian).
    """

    ABCD = "abcd"
    CDAB = "cdab"
    BADC = "badc"
    DCBA = "dcba"

    @property
    def swaps_words(self) -> bool:
        """Least significant register first."""
        return self in (ByteOrder.CDAB, ByteOrder.DCBA)

    @property
    def swaps_bytes(self) -> bool:
        """Low byte first inside each register."""
        return self in (ByteOrder.BADC, ByteOrder.DCBA)


# -- parsing helpers shared by the grammars ---------------------------------------------------

_DEC = re.compile(r"[0-9]+")
_HEX = re.compile(r"0[xX][0-9a-fA-F]+")
_MAX_DIGITS = 30  # longer numbers are beyond every range here; spares int() huge strings


def parse_uint(token: str, *, allow_hex: bool = False) -> int | None:
    """A non-negative integer written in ASCII decimal (or ``0x`` hex); None if not one."""
    if _DEC.fullmatch(token):
        return int(token) if len(token) <= _MAX_DIGITS else 10**_MAX_DIGITS
    if allow_hex and _HEX.fullmatch(token):
        return int(token, 16) if len(token) <= _MAX_DIGITS else 10**_MAX_DIGITS
    return None


def quote(text: str) -> str:
    """An address or token for a message, quoted like Python does."""
    return repr(text)


# -- value coercion (shared by TagSpec.check_write and the encoders) ----------------------------

def _is_bool(value: object) -> bool:
    return isinstance(value, bool | np.bool_)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not _is_bool(value)


def coerce_raw(dtype: DataType, value: object) -> bool | int | float:
    """``value`` as the Python type that ``dtype`` stores, or ``ValueError`` saying why not.

    BOOL takes a bool or the integers 0/1. Integer types take integers and integral
    floats within their range. Float types take any number; NaN and infinities pass (they
    are representable), a finite value too large for float32 does not.
    """
    if dtype is DataType.BOOL:
        if _is_bool(value):
            return bool(value)  # type: ignore[arg-type]
        if isinstance(value, int | np.integer) and int(value) in (0, 1):
            return bool(value)
        raise ValueError(f"expected a bool (or 0/1) for a bool value, found {_show(value)}")
    if dtype is DataType.STRING:
        raise ValueError(f"expected text for a string value, found {_show(value)}")
    if not _is_number(value):
        raise ValueError(f"expected a number for a {dtype} value, found {_show(value)}")
    if dtype.is_integer:
        if isinstance(value, float | np.floating):
            f = float(value)
            if not math.isfinite(f) or not f.is_integer():
                raise ValueError(f"{f!r} is not a whole number; {dtype} holds integers only")
            number = int(f)
        else:
            number = int(value)  # type: ignore[call-overload]
        lo, hi = dtype.range
        if not lo <= number <= hi:
            raise ValueError(f"{number} does not fit {dtype} ({dtype.describe_range()})")
        return number
    f = float(value)  # type: ignore[arg-type]
    if dtype is DataType.FLOAT32 and math.isfinite(f) and abs(f) > _F32_MAX:
        raise ValueError(f"{f!r} does not fit float32 ({DataType.FLOAT32.describe_range()})")
    return f


def encode_text(value: object, capacity: int, encoding: str) -> bytes:
    """``value`` encoded for a text field of ``capacity`` bytes, or ``ValueError`` saying why."""
    if not isinstance(value, str):
        raise ValueError(f"expected text, found {_show(value)}")
    if "\x00" in value:
        raise ValueError(f"text {value!r} contains a NUL character, which ends text on the wire")
    try:
        data = value.encode(encoding)
    except UnicodeEncodeError as exc:
        bad = value[exc.start]
        raise ValueError(f"text {value!r} has the character {bad!r}, which {encoding} "
                         "cannot encode") from None
    if len(data) > capacity:
        raise ValueError(f"text {value!r} is {len(data)} bytes long: the field holds at most "
                         f"{capacity}")
    return data


def _show(value: object) -> str:
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{type(value).__name__} {text}"
