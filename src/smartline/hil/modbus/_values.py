"""Register encoding for the simulator, with pymodbus's own converters — never smartline's codec.

``abcd`` is pymodbus ``word_order="big"``; ``cdab`` is ``word_order="little"`` (for 64-bit
values the four registers reversed); ``badc``/``dcba`` additionally swap the two bytes of
every register. Strings are ASCII, NUL-padded, first character in the high byte (``abcd``)
or the low byte (``badc``). If smartline's codec and this module disagreed about an order,
a value written by one and read by the other would not survive the round trip.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

from pymodbus.client.mixin import ModbusClientMixin

from ...tags import ByteOrder, DataType, ModbusAddress

__all__ = ["decode_words", "encode_words"]

_DT = ModbusClientMixin.DATATYPE
_PYMODBUS_TYPE = {
    DataType.INT16: _DT.INT16, DataType.UINT16: _DT.UINT16,
    DataType.INT32: _DT.INT32, DataType.UINT32: _DT.UINT32,
    DataType.INT64: _DT.INT64, DataType.UINT64: _DT.UINT64,
    DataType.FLOAT32: _DT.FLOAT32, DataType.FLOAT64: _DT.FLOAT64,
}


def _swap(words: list[int]) -> list[int]:
    return [((w & 0xFF) << 8) | (w >> 8) for w in words]


def _word_order(order: ByteOrder) -> str:
    return "little" if order in (ByteOrder.CDAB, ByteOrder.DCBA) else "big"


def _byte_swapped(order: ByteOrder) -> bool:
    return order in (ByteOrder.BADC, ByteOrder.DCBA)


def _one(dtype: DataType, order: ByteOrder, value: float | int) -> list[int]:
    kind = _PYMODBUS_TYPE[dtype]
    if dtype in (DataType.FLOAT32, DataType.FLOAT64):
        number: float | int = float(value)
    else:
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{value!r} is not a {dtype} value")
        number = round(value)
    words = ModbusClientMixin.convert_to_registers(
        number, kind, word_order=_word_order(order))  # type: ignore[arg-type]
    return _swap(words) if _byte_swapped(order) else list(words)


def encode_words(addr: ModbusAddress, value: object) -> list[int]:
    """The registers holding ``value`` (a raw number, a sequence for arrays, or text)."""
    if addr.is_bit_area or addr.bit is not None:
        raise ValueError(f"{addr} is a bit, not a register value")
    if addr.dtype is DataType.STRING:
        if not isinstance(value, str):
            raise ValueError(f"expected text for {addr}, found {value!r}")
        data = value.encode("ascii")
        size = addr.strlen or 0
        if len(data) > size:
            raise ValueError(f"text {value!r} is longer than {size} bytes")
        data = data.ljust(2 * addr.registers, b"\x00")
        words = [w for (w,) in struct.iter_unpack(">H", data)]
        return _swap(words) if _byte_swapped(addr.order) else words
    if addr.count is None:
        if not isinstance(value, int | float):
            raise ValueError(f"expected a number for {addr}, found {value!r}")
        return _one(addr.dtype, addr.order, value)
    if not isinstance(value, Sequence) or isinstance(value, str):
        values: Sequence[float | int] = [value] * addr.count  # type: ignore[list-item]
    else:
        values = value
    if len(values) != addr.count:
        raise ValueError(f"expected {addr.count} values for {addr}, found {len(values)}")
    return [w for v in values for w in _one(addr.dtype, addr.order, v)]


def decode_words(addr: ModbusAddress, words: Sequence[int]) -> float | int | str | list[float]:
    """The raw value held in ``words`` (as read from the register store)."""
    regs = [int(w) for w in words]
    if _byte_swapped(addr.order):
        regs = _swap(regs)
    if addr.dtype is DataType.STRING:
        data = b"".join(struct.pack(">H", w) for w in regs)[: addr.strlen or 0]
        return data.split(b"\x00", 1)[0].decode("ascii", errors="replace")
    kind = _PYMODBUS_TYPE[addr.dtype]
    width = addr.registers_per_element
    out: list[float] = []
    for e in range(addr.elements):
        part = regs[e * width:(e + 1) * width]
        value = ModbusClientMixin.convert_from_registers(
            part, kind, word_order=_word_order(addr.order))  # type: ignore[arg-type]
        out.append(value)  # type: ignore[arg-type]
    return out if addr.count is not None else out[0]
