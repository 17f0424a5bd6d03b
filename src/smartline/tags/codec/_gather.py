"""The vectorised core shared by every layout: gather bytes from one buffer, view, scatter.

A layout is compiled once into groups, one per storage type: an index matrix of buffer
byte positions (one row per value, most significant byte first) and the output positions.
Decoding a group is three numpy operations: ``buf[index]`` gathers the bytes already in
big-endian order (byte and word order are folded into the index), ``.view`` reinterprets
them as the big-endian type, and the assignment to ``out[positions]`` converts to float64.
For 64-bit integer groups one comparison more finds the values float64 cannot hold
(magnitude ≥ 2**53, :data:`smartline.core.EXACT_LIMIT`); only those become Python ints.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ...core import EXACT_LIMIT
from .._types import DataType

__all__ = ["Gather", "TextDecoder"]

#: Turns the bytes of one text field into its text, or None if they are not valid text.
TextDecoder = Callable[[bytes], "str | None"]


@dataclass(frozen=True, slots=True)
class _Group:
    view: np.dtype[Any]  # big-endian value type
    index: NDArray[np.intp]  # (values, bytes per value)
    positions: NDArray[np.intp]
    keys: NDArray[np.intp] | None = None  # 64-bit integers: the keys of ``exact`` (slots)


_WIDE = frozenset({DataType.UINT64, DataType.INT64})


class Gather:
    """Collects values, bits and text fields, then decodes them all from one byte buffer."""

    def __init__(self) -> None:
        self._values: dict[DataType, tuple[list[int], list[Sequence[int]], list[int]]] = {}
        self._bits: tuple[list[int], list[int], list[int]] = ([], [], [])
        self._texts: list[tuple[int, int, NDArray[np.intp], TextDecoder]] = []
        self._groups: tuple[_Group, ...] = ()
        self._bit_arrays: tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.uint8]] | None = None

    def add_value(self, position: int, dtype: DataType, byte_index: Sequence[int],
                  slot: int | None = None) -> None:
        """A number whose bytes, most significant first, sit at ``byte_index`` in the buffer.

        ``slot`` keys the value in ``exact`` (see :meth:`run`); default: ``position``.
        """
        positions, rows, keys = self._values.setdefault(dtype, ([], [], []))
        positions.append(position)
        rows.append(byte_index)
        keys.append(position if slot is None else slot)

    def add_bit(self, position: int, byte: int, shift: int) -> None:
        """Bit ``shift`` (0 = least significant) of buffer byte ``byte``."""
        for column, v in zip(self._bits, (position, byte, shift), strict=True):
            column.append(v)

    def add_text(self, position: int, slot: int, byte_index: Sequence[int],
                 decode: TextDecoder) -> None:
        """A text field made of the bytes at ``byte_index`` (in text order)."""
        self._texts.append((position, slot, np.asarray(byte_index, dtype=np.intp), decode))

    def build(self) -> None:
        """Freeze the collected items into index arrays."""
        groups = []
        for dtype, (positions, rows, keys) in self._values.items():
            groups.append(_Group(dtype.numpy.newbyteorder(">"),
                                 np.asarray(rows, dtype=np.intp).reshape(len(rows), -1),
                                 np.asarray(positions, dtype=np.intp),
                                 np.asarray(keys, dtype=np.intp) if dtype in _WIDE else None))
        self._groups = tuple(groups)
        pos, byte, shift = self._bits
        if pos:
            self._bit_arrays = (np.asarray(pos, np.intp), np.asarray(byte, np.intp),
                                np.asarray(shift, np.uint8))

    def run(self, buf: NDArray[np.uint8], out: NDArray[np.float64], texts: dict[int, str],
            exact: dict[int, int] | None = None) -> None:
        """Decode everything from ``buf`` into ``out`` (numbers) and ``texts`` (by slot).

        A text position gets 0.0 when its bytes form valid text and NaN when they do not
        (its slot is then left out of ``texts``). With ``exact``, 64-bit integers of
        magnitude ≥ 2**53 (which ``out`` holds rounded) go there too, as Python ints keyed
        by the ``slot`` given to :meth:`add_value`.
        """
        with np.errstate(invalid="ignore"):  # signalling NaNs on the wire are just NaN here
            for g in self._groups:
                values = buf[g.index].view(g.view)[:, 0]
                if g.keys is None or exact is None:
                    out[g.positions] = values
                    continue
                # rounding to float64 is monotonic and 2**53 is a float64: the float's
                # magnitude reaches 2**53 exactly when the integer's does
                floats = values.astype(np.float64)
                out[g.positions] = floats
                size = np.abs(floats)
                if size.max() >= EXACT_LIMIT:  # rare: only then the mask and Python ints
                    big = size >= EXACT_LIMIT
                    exact.update(zip(g.keys[big].tolist(), values[big].tolist(), strict=True))
        if self._bit_arrays is not None:
            pos, byte, shift = self._bit_arrays
            out[pos] = (buf[byte] >> shift) & 1
        for position, slot, index, decode in self._texts:
            text = decode(buf[index].tobytes())
            if text is None:
                out[position] = math.nan
            else:
                out[position] = 0.0
                texts[slot] = text


def as_bytes(buf: object, need: int, what: str) -> NDArray[np.uint8]:
    """``buf`` as a uint8 array, checked to hold at least ``need`` bytes."""
    if isinstance(buf, bytes | bytearray | memoryview):
        arr = np.frombuffer(buf, dtype=np.uint8)
    else:
        arr = np.asarray(buf, dtype=np.uint8)
    if arr.ndim != 1 or arr.shape[0] < need:
        raise ValueError(f"{what} buffer holds {arr.size} bytes: the layout needs {need}")
    return arr
