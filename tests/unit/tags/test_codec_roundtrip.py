"""Property tests: decode(encode(x)) == x for every type and order, alone and inside a plan."""

import math
import struct

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from smartline.tags import DataType, parse_modbus, parse_s7
from smartline.tags.codec import (
    ByteLayout,
    RegisterLayout,
    encode_registers,
    encode_s7,
)

ORDERS = ["abcd", "cdab", "badc", "dcba"]
NUMERIC = [DataType.INT16, DataType.UINT16, DataType.INT32, DataType.UINT32, DataType.INT64,
           DataType.UINT64, DataType.FLOAT32, DataType.FLOAT64]


def values_of(dtype: DataType) -> st.SearchStrategy[float | int]:
    if dtype is DataType.FLOAT32:
        return st.floats(width=32)
    if dtype is DataType.FLOAT64:
        return st.floats()
    lo, hi = dtype.range
    return st.integers(int(lo), int(hi))


def same(decoded: float, value: float | int) -> bool:
    """Decoded float64 equals the value as float64 (NaN equals NaN)."""
    expected = float(value)
    return (math.isnan(decoded) and math.isnan(expected)) or decoded == expected


def beyond_float64(slot: int, values: tuple[float | int, ...]) -> dict[int, int]:
    """The integers float64 cannot hold, by slot: what ``exact`` must return."""
    return {slot + k: v for k, v in enumerate(values)
            if isinstance(v, int) and abs(v) >= 2**53}


@st.composite
def modbus_case(draw: st.DrawFn) -> tuple[str, object]:
    dtype = draw(st.sampled_from(NUMERIC))
    orders = ["abcd", "badc", "dcba"] if dtype.nbytes == 2 else ORDERS
    order = draw(st.sampled_from(orders))
    count = draw(st.none() | st.integers(1, 5))
    if count is None:
        return f"hr:0:{dtype}:{order}", draw(values_of(dtype))
    return f"hr:0:{dtype}[{count}]:{order}", tuple(
        draw(st.lists(values_of(dtype), min_size=count, max_size=count)))


@given(modbus_case())
@settings(max_examples=600)
def test_modbus_numbers_round_trip(case):
    text, value = case
    addr = parse_modbus(text)
    words = encode_registers(addr, value)
    assert len(words) == addr.registers
    assert all(0 <= w <= 0xFFFF for w in words)
    values, texts, exact = RegisterLayout([(0, addr, 0)]).decode(words)
    expected = value if isinstance(value, tuple) else (value,)
    assert texts == {}
    assert len(values) == len(expected)
    assert all(same(d, v) for d, v in zip(values.tolist(), expected, strict=True))
    assert exact == beyond_float64(0, expected)


@given(st.sampled_from(ORDERS), st.integers(-(2**31), 2**31 - 1))
def test_int32_words_are_the_order_permutation_of_the_big_endian_bytes(order, value):
    # an independent oracle for the permutation: struct gives the big-endian bytes ABCD
    a, b, c, d = struct.pack(">i", value)
    expected = {"abcd": [a << 8 | b, c << 8 | d], "cdab": [c << 8 | d, a << 8 | b],
                "badc": [b << 8 | a, d << 8 | c], "dcba": [d << 8 | c, b << 8 | a]}[order]
    assert encode_registers(parse_modbus(f"hr:0:int32:{order}"), value) == expected


@given(st.sampled_from(ORDERS), st.floats())
def test_float64_words_are_the_order_permutation_of_the_big_endian_bytes(order, value):
    b = struct.pack(">d", value)
    words = [b[i] << 8 | b[i + 1] for i in range(0, 8, 2)]  # abcd
    if order in ("badc", "dcba"):
        words = [((w & 0xFF) << 8) | (w >> 8) for w in words]
    if order in ("cdab", "dcba"):
        words = words[::-1]
    assert encode_registers(parse_modbus(f"hr:0:float64:{order}"), value) == words


ascii_text = st.text(st.characters(min_codepoint=1, max_codepoint=127), max_size=12).map(
    lambda s: s.rstrip(" "))


@given(ascii_text, st.integers(0, 4), st.sampled_from(["abcd", "badc"]))
def test_modbus_strings_round_trip(text, spare, order):
    addr = parse_modbus(f"hr:0:string<{len(text) + spare or 1}>:{order}")
    words = encode_registers(addr, text)
    values, texts, exact = RegisterLayout([(7, addr, 0)]).decode(words)
    assert texts == {7: text} and exact == {}
    assert values.tolist() == [0.0]


S7_NUMERIC = {
    "INT": "W", "UINT": "W", "WORD": "W", "DINT": "D", "UDINT": "D", "DWORD": "D", "REAL": "D",
    "LREAL": "B", "LINT": "B", "ULINT": "B", "LWORD": "B", "BYTE": "B", "SINT": "B",
    "USINT": "B",
}


@st.composite
def s7_case(draw: st.DrawFn) -> tuple[str, object]:
    s7type = draw(st.sampled_from(sorted(S7_NUMERIC)))
    addr = parse_s7(f"DB1.DB{S7_NUMERIC[s7type]}10:{s7type}")
    count = draw(st.none() | st.integers(1, 4))
    if count is None:
        return addr.canonical(), draw(values_of(addr.dtype))
    return f"DB1.DB{S7_NUMERIC[s7type]}10:{s7type}[{count}]", tuple(
        draw(st.lists(values_of(addr.dtype), min_size=count, max_size=count)))


@given(s7_case())
@settings(max_examples=400)
def test_s7_numbers_round_trip(case):
    text, value = case
    addr = parse_s7(text)
    data = encode_s7(addr, value)
    assert len(data) == addr.nbytes
    values, _, exact = ByteLayout([(0, addr, 0)]).decode(data)
    expected = value if isinstance(value, tuple) else (value,)
    assert all(same(d, v) for d, v in zip(values.tolist(), expected, strict=True))
    for i, v in enumerate(expected):  # 64-bit integers beyond 2**53 also come back exactly
        if isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 2**53:
            assert exact[i] == v


@given(st.integers(0, 7), st.lists(st.booleans(), min_size=1, max_size=20))
def test_s7_bool_arrays_round_trip(bit, bits):
    addr = parse_s7(f"DB1.DBX4.{bit}:BOOL[{len(bits)}]")
    # encode_s7 gives one byte per bit (for single-bit writes); pack them as the PLC stores them
    flags = encode_s7(addr, bits)
    buf = bytearray(addr.nbytes)
    for i, flag in enumerate(flags):
        byte, shift = divmod(bit + i, 8)
        buf[byte] |= flag << shift
    values, _, _ = ByteLayout([(0, addr, 0)]).decode(bytes(buf))
    assert values.tolist() == [float(b) for b in bits]


latin1_text = st.text(st.characters(min_codepoint=1, max_codepoint=255), max_size=20)


@given(latin1_text, st.integers(0, 5))
def test_s7_strings_round_trip(text, spare):
    addr = parse_s7(f"DB1.DBB0:STRING[{len(text) + spare or 1}]")
    data = encode_s7(addr, text)
    assert data[:2] == bytes([addr.strlen, len(text)])
    assert ByteLayout([(3, addr, 0)]).decode(data)[1] == {3: text}


@given(st.lists(modbus_case(), min_size=1, max_size=8))
@settings(max_examples=200)
def test_many_values_in_one_buffer(cases):
    items, buffer, expected, slot = [], [], [], 0
    wanted: dict[int, int] = {}
    for text, value in cases:
        addr = parse_modbus(text)
        items.append((slot, addr, len(buffer)))
        buffer.extend(encode_registers(addr, value))
        values = value if isinstance(value, tuple) else (value,)
        expected.extend(values)
        wanted.update(beyond_float64(slot, values))
        slot += addr.elements
    layout = RegisterLayout(items)
    values, _, exact = layout.decode(np.asarray(buffer, dtype=np.uint16))
    assert layout.slots.tolist() == list(range(slot))
    assert all(same(d, v) for d, v in zip(values.tolist(), expected, strict=True))
    assert exact == wanted
