"""Vectorised codecs: build a layout once per read plan, decode every cycle in a few numpy calls.

Modbus registers travel big-endian (high byte first) per the Modbus application protocol;
multi-register values follow the address's :class:`~smartline.tags.ByteOrder`. S7 data is
big-endian. Decoders return raw (unscaled) float64 values; int64/uint64 are exact up to
2**53 there, and the Modbus layouts also return the larger ones exactly, as Python ints by
slot (``smartline.core.EXACT_LIMIT``). NaN and infinities decode as such: the caller
decides quality.
"""

from ._modbus import (
    BitLayout,
    RegisterLayout,
    encode_bits,
    encode_registers,
    register_bit_masks,
    register_byte_index,
)
from ._s7 import ByteLayout, encode_s7

__all__ = [
    "BitLayout",
    "ByteLayout",
    "RegisterLayout",
    "encode_bits",
    "encode_registers",
    "encode_s7",
    "register_bit_masks",
    "register_byte_index",
]
