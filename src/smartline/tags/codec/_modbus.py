"""Modbus codecs: registers (uint16, big-endian on the wire) and coil/discrete-input bits."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from .._modbus import MODBUS_TEXT_ENCODING, ModbusAddress
from .._types import ByteOrder, DataType, coerce_raw, encode_text
from ._gather import Gather

__all__ = ["BitLayout", "RegisterLayout", "encode_bits", "encode_registers",
           "register_bit_masks", "register_byte_index"]


def register_byte_index(first: int, registers: int, order: ByteOrder) -> list[int]:
    """Where each byte of a value lives in a big-endian byte image of the registers.

    Entry ``j`` is the byte position (``2 * register + 0`` for a register's high byte,
    ``+ 1`` for its low byte) of the value's ``j``-th byte, most significant first. Word
    swaps reverse the register order; byte swaps exchange high and low bytes.
    """
    out = []
    for j in range(2 * registers):
        k, high_first = divmod(j, 2)
        reg = first + (registers - 1 - k if order.swaps_words else k)
        out.append(2 * reg + (1 - high_first if order.swaps_bytes else high_first))
    return out


def _decode_ascii(data: bytes) -> str | None:
    """Text up to the first NUL, trailing spaces dropped; None if not ASCII."""
    data = data.split(b"\x00", 1)[0].rstrip(b" ")
    try:
        return data.decode(MODBUS_TEXT_ENCODING)
    except UnicodeDecodeError:
        return None


class RegisterLayout:
    """Decodes many Modbus register values from one concatenated uint16 buffer in one pass.

    ``items`` are ``(first image slot, address, register offset into the buffer)``.
    ``decode`` returns raw values aligned with :attr:`slots` (arrays expand to one slot per
    element), the strings by slot, and by slot the exact value of every int64/uint64
    element of magnitude ≥ 2**53 (its raw float64 value is rounded; the mapping is empty
    otherwise). A string's numeric value is 0.0 when its registers hold ASCII text and
    NaN (slot absent from the strings) when they do not.
    """

    def __init__(self, items: Sequence[tuple[int, ModbusAddress, int]]) -> None:
        gather = Gather()
        slots: list[int] = []
        text: list[bool] = []
        registers = 0
        for slot, addr, first in items:
            if addr.is_bit_area:
                raise ValueError(f"{addr} is a {addr.area} bit, not a register: decode it with "
                                 "BitLayout")
            if first < 0:
                raise ValueError(f"register offset {first} of {addr} is negative")
            registers = max(registers, first + addr.registers)
            if addr.bit is not None:
                # register bytes are [high, low]: bits 0..7 live in the low byte
                gather.add_bit(len(slots), 2 * first + (1 if addr.bit < 8 else 0), addr.bit % 8)
                slots.append(slot)
                text.append(False)
            elif addr.is_text:
                index = register_byte_index(first, addr.registers, addr.order)[:addr.strlen]
                gather.add_text(len(slots), slot, index, _decode_ascii)
                slots.append(slot)
                text.append(True)
            else:
                width = addr.registers_per_element
                for e in range(addr.elements):
                    index = register_byte_index(first + e * width, width, addr.order)
                    gather.add_value(len(slots), addr.dtype, index, slot + e)
                    slots.append(slot + e)
                    text.append(False)
        gather.build()
        self._gather = gather
        self.registers = registers
        self.slots: NDArray[np.intp] = np.asarray(slots, dtype=np.intp)
        self.text_mask: NDArray[np.bool_] = np.asarray(text, dtype=np.bool_)

    def decode(self, regs: NDArray[np.uint16] | Sequence[int]
               ) -> tuple[NDArray[np.float64], dict[int, str], dict[int, int]]:
        """Raw values aligned with :attr:`slots`, strings by slot, and exact 64-bit
        integers (magnitude ≥ 2**53) by slot."""
        words = np.asarray(regs, dtype=np.uint16)
        if words.ndim != 1 or words.shape[0] < self.registers:
            raise ValueError(f"register buffer holds {words.size} registers: the layout needs "
                             f"{self.registers}")
        buf = words.astype(">u2").view(np.uint8)  # each register high byte first
        out = np.empty(len(self.slots), dtype=np.float64)
        texts: dict[int, str] = {}
        exact: dict[int, int] = {}
        self._gather.run(buf, out, texts, exact)
        return out, texts, exact


class BitLayout:
    """Decodes coils/discrete inputs from one bool (or 0/1 uint8) buffer in one pass.

    ``items`` are ``(first image slot, address, bit offset into the buffer)``.
    """

    def __init__(self, items: Sequence[tuple[int, ModbusAddress, int]]) -> None:
        slots: list[int] = []
        index: list[int] = []
        for slot, addr, first in items:
            if not addr.is_bit_area:
                raise ValueError(f"{addr} is not a coil or discrete input: decode it with "
                                 "RegisterLayout")
            if first < 0:
                raise ValueError(f"bit offset {first} of {addr} is negative")
            for e in range(addr.elements):
                slots.append(slot + e)
                index.append(first + e)
        self.bits = max(index) + 1 if index else 0
        self.slots: NDArray[np.intp] = np.asarray(slots, dtype=np.intp)
        self.text_mask: NDArray[np.bool_] = np.zeros(len(slots), dtype=np.bool_)
        self._index: NDArray[np.intp] = np.asarray(index, dtype=np.intp)

    def decode(self, bits: NDArray[np.bool_] | NDArray[np.uint8] | Sequence[bool]
               ) -> tuple[NDArray[np.float64], dict[int, str], dict[int, int]]:
        """0.0/1.0 values aligned with :attr:`slots` (and, for symmetry with
        :meth:`RegisterLayout.decode`, no strings and no exact integers)."""
        arr = np.asarray(bits)
        if arr.ndim != 1 or arr.shape[0] < self.bits:
            raise ValueError(f"bit buffer holds {arr.size} bits: the layout needs {self.bits}")
        return (arr[self._index] != 0).astype(np.float64), {}, {}


# -- encoders ---------------------------------------------------------------------------------

def elements_of(dtype: DataType, count: int | None, value: object) -> list[bool | int | float]:
    """The raw values of a scalar (``count`` None) or an array, each checked against ``dtype``."""
    if count is None:
        return [coerce_raw(dtype, value)]
    if isinstance(value, str | bytes) or not isinstance(value, Sequence | np.ndarray):
        raise ValueError(f"expected a sequence of {count} values, found "
                         f"{type(value).__name__} {value!r}")
    items = list(value)
    if len(items) != count:
        raise ValueError(f"expected {count} values, found {len(items)}")
    out = []
    for i, v in enumerate(items):
        try:
            out.append(coerce_raw(dtype, v))
        except ValueError as exc:
            raise ValueError(f"element [{i}]: {exc}") from None
    return out


def encode_registers(addr: ModbusAddress, value: object) -> list[int]:
    """The uint16 words to write (FC6/FC16) for a raw value; ``ValueError`` if it does not fit."""
    if addr.is_bit_area:
        raise ValueError(f"{addr} is a {addr.area} bit, not a register: use encode_bits")
    if addr.bit is not None:
        raise ValueError(f"{addr} is one bit of a register: write it with register_bit_masks "
                         "(FC22) or a read-modify-write")
    buf = np.zeros(2 * addr.registers, dtype=np.uint8)
    if addr.is_text:
        data = encode_text(value, addr.strlen or 0, MODBUS_TEXT_ENCODING)
        index = register_byte_index(0, addr.registers, addr.order)[:len(data)]
        buf[index] = np.frombuffer(data, dtype=np.uint8)
    else:
        values = elements_of(addr.dtype, addr.count, value)
        width = addr.registers_per_element
        index = [i for e in range(len(values))
                 for i in register_byte_index(e * width, width, addr.order)]
        big = np.asarray(values, dtype=addr.dtype.numpy.newbyteorder(">"))
        buf[index] = big.view(np.uint8)
    return [int(w) for w in buf.view(">u2")]


def encode_bits(addr: ModbusAddress, value: object) -> list[bool]:
    """The coil states to write (FC5/FC15) for a raw bool value or bool array."""
    if not addr.is_bit_area:
        raise ValueError(f"{addr} is a register address: use encode_registers")
    return [bool(v) for v in elements_of(DataType.BOOL, addr.count, value)]


def register_bit_masks(addr: ModbusAddress, value: object) -> tuple[int, int]:
    """``(and_mask, or_mask)`` for Mask Write Register (FC22) setting one bit of a register.

    The device computes ``(current AND and_mask) OR (or_mask AND NOT and_mask)``.
    """
    if addr.bit is None:
        raise ValueError(f"{addr} is not a bit of a register (expected an address like hr:7.3)")
    state = coerce_raw(DataType.BOOL, value)
    mask = 1 << addr.bit
    return 0xFFFF & ~mask, mask if state else 0
