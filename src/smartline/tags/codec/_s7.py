"""S7 codecs: big-endian bytes, BOOL bits (bit 0 = least significant), CHAR and STRING[n]."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import numpy as np
from numpy.typing import NDArray

from .._s7 import S7_TEXT_ENCODING, S7Address
from .._types import DataType, encode_text
from ._gather import Gather, as_bytes
from ._modbus import elements_of

__all__ = ["ByteLayout", "encode_s7"]


def _decode_chars(data: bytes) -> str:
    """CHAR / ARRAY OF CHAR: text up to the first NUL, trailing spaces dropped."""
    return data.split(b"\x00", 1)[0].rstrip(b" ").decode(S7_TEXT_ENCODING)


def _decode_string(capacity: int, data: bytes) -> str | None:
    """S7 STRING[n]: byte 0 max length, byte 1 actual length, then the characters.

    None when the actual length exceeds the declared capacity (a corrupt or mis-declared
    string); the max-length byte is not trusted, an uninitialised string reads 0/0.
    """
    actual = data[1]
    if actual > capacity:
        return None
    return data[2:2 + actual].decode(S7_TEXT_ENCODING)


class ByteLayout:
    """Decodes many S7 values from one concatenated byte buffer in one pass.

    ``items`` are ``(first image slot, address, byte offset of address.byte in the buffer)``.
    Returns raw values aligned with :attr:`slots` and texts by slot; a text slot is 0.0
    when valid and NaN (and absent from the texts) when its STRING header is corrupt.
    """

    def __init__(self, items: Sequence[tuple[int, S7Address, int]]) -> None:
        gather = Gather()
        slots: list[int] = []
        text: list[bool] = []
        nbytes = 0
        for slot, addr, first in items:
            if first < 0:
                raise ValueError(f"byte offset {first} of {addr} is negative")
            nbytes = max(nbytes, first + addr.nbytes)
            if addr.s7type == "BOOL":
                for e in range(addr.elements):
                    byte, shift = divmod(int(addr.bit or 0) + e, 8)
                    gather.add_bit(len(slots), first + byte, shift)
                    slots.append(slot + e)
                    text.append(False)
            elif addr.is_text:
                span = range(first, first + addr.nbytes)
                decode = (partial(_decode_string, addr.strlen or 0) if addr.s7type == "STRING"
                          else _decode_chars)
                gather.add_text(len(slots), slot, span, decode)
                slots.append(slot)
                text.append(True)
            else:
                width = addr.element_bytes
                for e in range(addr.elements):
                    start = first + e * width
                    gather.add_value(len(slots), addr.dtype, range(start, start + width),
                                     slot=slot + e)
                    slots.append(slot + e)
                    text.append(False)
        gather.build()
        self._gather = gather
        self.nbytes = nbytes
        self.slots: NDArray[np.intp] = np.asarray(slots, dtype=np.intp)
        self.text_mask: NDArray[np.bool_] = np.asarray(text, dtype=np.bool_)

    def decode(self, buf: NDArray[np.uint8] | bytes | bytearray
               ) -> tuple[NDArray[np.float64], dict[int, str], dict[int, int]]:
        """Raw values aligned with :attr:`slots`, texts by slot, and by slot the LINT/ULINT
        values float64 cannot hold (magnitude ≥ 2**53) as exact Python ints."""
        data = as_bytes(buf, self.nbytes, "S7")
        out = np.empty(len(self.slots), dtype=np.float64)
        texts: dict[int, str] = {}
        exact: dict[int, int] = {}
        self._gather.run(data, out, texts, exact)
        return out, texts, exact


def encode_s7(addr: S7Address, value: object) -> bytes:
    """The bytes to write at ``addr.byte`` for a raw value; ``ValueError`` if it does not fit.

    BOOL gives one byte per element (0x00/0x01), each to be written as a single-bit
    item at its bit address. ``STRING[n]`` gives all n + 2 bytes: max length n, actual
    length, the characters, NUL padding. CHAR text is NUL-padded to its length.
    """
    if addr.s7type == "STRING":
        capacity = addr.strlen or 0
        data = encode_text(value, capacity, S7_TEXT_ENCODING)
        return bytes([capacity, len(data)]) + data + bytes(capacity - len(data))
    if addr.s7type == "CHAR":
        capacity = addr.count or 1
        data = encode_text(value, capacity, S7_TEXT_ENCODING)
        return data + bytes(capacity - len(data))
    values = elements_of(addr.dtype, addr.count, value)
    if addr.dtype is DataType.BOOL:
        return bytes(1 if v else 0 for v in values)
    return np.asarray(values, dtype=addr.dtype.numpy.newbyteorder(">")).tobytes()
