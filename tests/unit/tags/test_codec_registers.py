"""Modbus register codecs, byte-exact against vectors derived by hand.

Modbus Application Protocol v1.1b3 §4.2: a register travels high byte first. The byte
order names the value's big-endian bytes A B C D (E F G H for 64-bit values) and says
which lands where: abcd as is, cdab registers reversed, badc bytes swapped inside each
register, dcba both (ADR 0004).

IEEE-754 derivations used below:

float32 123.456
    123.456 = 1.929 × 2^6 → sign 0, exponent 6 + 127 = 133 = 1000 0101b,
    fraction 0.929 × 2^23 = 7793016.832 → rounds to 7793017 = 0x76E979
    0 | 10000101 | 111 0110 1110 1001 0111 1001 = 0100 0010 1111 0110 1110 1001 0111 1001
    = 0x42F6E979, bytes A=42 B=F6 C=E9 D=79; it is exactly
    64 + 7793017 / 2^17 = 123.45600128173828.
float64 123.456
    exponent 6 + 1023 = 1029 = 0x405, fraction 0.929 × 2^52 = 4183844053827190.784
    → 4183844053827191 = 0xEDD2F1A9FBE77 → 0x405E_DD2F_1A9F_BE77 (the nearest double to
    123.456, i.e. the Python literal 123.456).
float64 -2.5
    -2.5 = -1.25 × 2^1 → sign 1, exponent 1024 = 0x400, fraction 0.25 × 2^52 = 0x4000000000000
    → 0xC004_0000_0000_0000.
int32 -2   two's complement 0xFFFF_FFFE (A=FF B=FF C=FF D=FE).
int64 -2   0xFFFF_FFFF_FFFF_FFFE.
"""

import math

import numpy as np
import pytest

from smartline.tags import parse_modbus
from smartline.tags.codec import (
    BitLayout,
    RegisterLayout,
    encode_bits,
    encode_registers,
    register_bit_masks,
    register_byte_index,
)

F32_123_456 = 123.45600128173828  # 0x42F6E979 exactly (see module docstring)


def decode_one(text, words):
    values, texts, exact = RegisterLayout([(0, parse_modbus(text), 0)]).decode(
        np.asarray(words, dtype=np.uint16))
    return values, texts, exact


FLOAT32_123_456 = {
    "abcd": [0x42F6, 0xE979],
    "cdab": [0xE979, 0x42F6],
    "badc": [0xF642, 0x79E9],
    "dcba": [0x79E9, 0xF642],
}
INT32_MINUS_2 = {
    "abcd": [0xFFFF, 0xFFFE],
    "cdab": [0xFFFE, 0xFFFF],
    "badc": [0xFFFF, 0xFEFF],
    "dcba": [0xFEFF, 0xFFFF],
}
UINT32_0x01020304 = {
    "abcd": [0x0102, 0x0304],
    "cdab": [0x0304, 0x0102],
    "badc": [0x0201, 0x0403],
    "dcba": [0x0403, 0x0201],
}
FLOAT64_123_456 = {  # A..H = 40 5E DD 2F 1A 9F BE 77
    "abcd": [0x405E, 0xDD2F, 0x1A9F, 0xBE77],
    "cdab": [0xBE77, 0x1A9F, 0xDD2F, 0x405E],
    "badc": [0x5E40, 0x2FDD, 0x9F1A, 0x77BE],
    "dcba": [0x77BE, 0x9F1A, 0x2FDD, 0x5E40],
}
FLOAT64_MINUS_2_5 = {  # C0 04 00 00 00 00 00 00
    "abcd": [0xC004, 0x0000, 0x0000, 0x0000],
    "cdab": [0x0000, 0x0000, 0x0000, 0xC004],
    "badc": [0x04C0, 0x0000, 0x0000, 0x0000],
    "dcba": [0x0000, 0x0000, 0x0000, 0x04C0],
}
INT64_MINUS_2 = {
    "abcd": [0xFFFF, 0xFFFF, 0xFFFF, 0xFFFE],
    "cdab": [0xFFFE, 0xFFFF, 0xFFFF, 0xFFFF],
    "badc": [0xFFFF, 0xFFFF, 0xFFFF, 0xFEFF],
    "dcba": [0xFEFF, 0xFFFF, 0xFFFF, 0xFFFF],
}
# 0x0012_3456_789A_BCDE < 2**53: exact in float64. A..H = 00 12 34 56 78 9A BC DE
UINT64_0x00123456789ABCDE = {
    "abcd": [0x0012, 0x3456, 0x789A, 0xBCDE],
    "cdab": [0xBCDE, 0x789A, 0x3456, 0x0012],
    "badc": [0x1200, 0x5634, 0x9A78, 0xDEBC],
    "dcba": [0xDEBC, 0x9A78, 0x5634, 0x1200],
}
# the ADR 0004 worked example: A..H = 01 02 03 04 05 06 07 08
UINT64_0x0102030405060708 = {
    "abcd": [0x0102, 0x0304, 0x0506, 0x0708],
    "cdab": [0x0708, 0x0506, 0x0304, 0x0102],
    "badc": [0x0201, 0x0403, 0x0605, 0x0807],
    "dcba": [0x0807, 0x0605, 0x0403, 0x0201],
}
ORDERS = ["abcd", "cdab", "badc", "dcba"]


@pytest.mark.parametrize("order", ORDERS)
def test_float32_123_456(order):
    addr = parse_modbus(f"hr:0:float32:{order}")
    assert encode_registers(addr, 123.456) == FLOAT32_123_456[order]
    values, texts, exact = decode_one(f"hr:0:float32:{order}", FLOAT32_123_456[order])
    assert values.tolist() == [F32_123_456]
    assert texts == {} and exact == {}


@pytest.mark.parametrize("order", ORDERS)
def test_int32_minus_2(order):
    addr = parse_modbus(f"hr:0:int32:{order}")
    assert encode_registers(addr, -2) == INT32_MINUS_2[order]
    assert decode_one(f"hr:0:int32:{order}", INT32_MINUS_2[order])[0].tolist() == [-2.0]
    # the same words read unsigned: 0xFFFFFFFE = 4294967294
    assert decode_one(f"hr:0:uint32:{order}", INT32_MINUS_2[order])[0].tolist() == [4294967294.0]


@pytest.mark.parametrize("order", ORDERS)
def test_uint32_distinct_bytes(order):
    addr = parse_modbus(f"hr:0:uint32:{order}")
    assert encode_registers(addr, 0x01020304) == UINT32_0x01020304[order]
    assert decode_one(f"hr:0:uint32:{order}", UINT32_0x01020304[order])[0].tolist() == [
        float(0x01020304)]


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize(("value", "table"), [(123.456, FLOAT64_123_456),
                                              (-2.5, FLOAT64_MINUS_2_5)])
def test_float64(order, value, table):
    addr = parse_modbus(f"hr:0:float64:{order}")
    assert encode_registers(addr, value) == table[order]
    assert decode_one(f"hr:0:float64:{order}", table[order])[0].tolist() == [value]


@pytest.mark.parametrize("order", ORDERS)
def test_int64_minus_2(order):
    addr = parse_modbus(f"hr:0:int64:{order}")
    assert encode_registers(addr, -2) == INT64_MINUS_2[order]
    values, _, exact = decode_one(f"hr:0:int64:{order}", INT64_MINUS_2[order])
    assert values.tolist() == [-2.0]
    assert exact == {}  # float64 holds it: nothing exact to add


@pytest.mark.parametrize("order", ORDERS)
def test_uint64_exact_below_2_53(order):
    addr = parse_modbus(f"hr:0:uint64:{order}")
    assert encode_registers(addr, 0x00123456789ABCDE) == UINT64_0x00123456789ABCDE[order]
    decoded = decode_one(f"hr:0:uint64:{order}", UINT64_0x00123456789ABCDE[order])[0]
    assert decoded.tolist() == [5124095576030430.0]  # = 0x00123456789ABCDE exactly


@pytest.mark.parametrize("order", ORDERS)
def test_uint64_word_order_worked_example(order):
    addr = parse_modbus(f"hr:0:uint64:{order}")
    assert encode_registers(addr, 0x0102030405060708) == UINT64_0x0102030405060708[order]
    decoded, _, exact = decode_one(f"hr:0:uint64:{order}", UINT64_0x0102030405060708[order])
    # above 2**53 the float64 result is the nearest double: 72623859790382856 → ...848
    assert decoded.tolist() == [72623859790382848.0]
    assert exact == {0: 0x0102030405060708} and type(exact[0]) is int  # and the exact value


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize(("dtype", "value", "is_exact"), [
    ("uint64", 2**64 - 1, True),
    ("uint64", 2**53, True),
    ("uint64", 2**53 - 1, False),
    ("int64", -(2**63), True),
    ("int64", 2**63 - 1, True),
    ("int64", -(2**53), True),
    ("int64", -(2**53) + 1, False),
    ("int64", 2**53 + 1, True),
])
def test_64_bit_integers_beyond_2_53_decode_exactly(order, dtype, value, is_exact):
    words = encode_registers(parse_modbus(f"hr:0:{dtype}:{order}"), value)
    values, _, exact = decode_one(f"hr:0:{dtype}:{order}", words)
    assert values.tolist() == [float(value)]
    assert exact == ({0: value} if is_exact else {})


def test_exact_integers_are_keyed_by_slot_in_a_layout():
    items = [(10, parse_modbus("hr:0:int64[3]"), 0), (3, parse_modbus("hr:12:uint64:cdab"), 12),
             (4, parse_modbus("hr:16:float64"), 16), (5, parse_modbus("hr:20:int32"), 20)]
    words = (encode_registers(items[0][1], (1, -(2**60) - 3, 2**62 + 1))
             + encode_registers(items[1][1], 2**64 - 2)
             + encode_registers(items[2][1], 2.0**60) + encode_registers(items[3][1], -7))
    values, texts, exact = RegisterLayout(items).decode(words)
    assert exact == {11: -(2**60) - 3, 12: 2**62 + 1, 3: 2**64 - 2}  # not the float64 2**60
    assert values.tolist() == [1.0, float(-(2**60) - 3), float(2**62 + 1), float(2**64 - 2),
                               2.0**60, -7.0]
    assert texts == {}


@pytest.mark.parametrize(("text", "value", "words"), [
    ("uint16", 0, [0x0000]),
    ("uint16", 1, [0x0001]),
    ("uint16", 0x1234, [0x1234]),
    ("uint16", 65535, [0xFFFF]),
    ("int16", 0, [0x0000]),
    ("int16", -1, [0xFFFF]),
    ("int16", -2, [0xFFFE]),
    ("int16", 32767, [0x7FFF]),
    ("int16", -32768, [0x8000]),
    ("uint16:badc", 0x1234, [0x3412]),
    ("int16:badc", -2, [0xFEFF]),
    ("int16:badc", 1, [0x0100]),
    ("int16:dcba", 1, [0x0100]),  # same as badc on one register
])
def test_16_bit_edges(text, value, words):
    addr = parse_modbus(f"hr:0:{text}")
    assert encode_registers(addr, value) == words
    assert decode_one(f"hr:0:{text}", words)[0].tolist() == [float(value)]


def test_nan_and_infinity_decode_as_such():
    # float32 quiet NaN 0x7FC00000, +inf 0x7F800000, -inf 0xFF800000
    values, _, _ = RegisterLayout([
        (0, parse_modbus("hr:0:float32"), 0),
        (1, parse_modbus("hr:2:float32"), 2),
        (2, parse_modbus("hr:4:float32:cdab"), 4),
    ]).decode([0x7FC0, 0x0000, 0x7F80, 0x0000, 0x0000, 0xFF80])
    assert math.isnan(values[0])
    assert values[1] == math.inf
    assert values[2] == -math.inf
    assert encode_registers(parse_modbus("hr:0:float32"), math.inf) == [0x7F80, 0x0000]
    assert encode_registers(parse_modbus("hr:0:float64"), -math.inf) == [0xFFF0, 0, 0, 0]
    nan_words = encode_registers(parse_modbus("hr:0:float32"), math.nan)
    assert nan_words[0] & 0x7F80 == 0x7F80 and (nan_words[0] & 0x007F or nan_words[1])


def test_bits_in_registers_count_from_the_least_significant_bit():
    # register 0x8421 = 1000 0100 0010 0001b: bits 0, 5, 10, 15 set
    items = [(b, parse_modbus(f"hr:0.{b}"), 0) for b in range(16)]
    values, _, _ = RegisterLayout(items).decode([0x8421])
    assert np.flatnonzero(values).tolist() == [0, 5, 10, 15]
    values, _, _ = RegisterLayout([(0, parse_modbus("ir:9.8"), 1)]).decode([0xFFFF, 0x0100])
    assert values.tolist() == [1.0]


def test_register_bit_masks_for_fc22():
    addr = parse_modbus("hr:7.3")
    assert register_bit_masks(addr, True) == (0xFFF7, 0x0008)
    assert register_bit_masks(addr, False) == (0xFFF7, 0x0000)
    assert register_bit_masks(parse_modbus("hr:7.15"), 1) == (0x7FFF, 0x8000)
    # the device computes (current AND and) OR (or AND NOT and)
    current = 0x1234
    and_mask, or_mask = register_bit_masks(addr, True)
    assert (current & and_mask) | (or_mask & ~and_mask & 0xFFFF) == 0x123C
    with pytest.raises(ValueError, match="not a bit of a register"):
        register_bit_masks(parse_modbus("hr:7"), True)


def test_strings_two_chars_per_register_high_byte_first():
    # 'A' 0x41 'B' 0x42 'C' 0x43; string<5> spans 3 registers, unused bytes NUL
    addr = parse_modbus("hr:0:string<5>")
    assert encode_registers(addr, "ABC") == [0x4142, 0x4300, 0x0000]
    assert encode_registers(addr, "ABCDE") == [0x4142, 0x4344, 0x4500]
    values, texts, exact = decode_one("hr:0:string<5>", [0x4142, 0x4344, 0x4500])
    assert texts == {0: "ABCDE"} and exact == {}
    assert values.tolist() == [0.0]


def test_strings_byte_swapped():
    addr = parse_modbus("hr:0:string<5>:badc")
    assert encode_registers(addr, "ABC") == [0x4241, 0x0043, 0x0000]
    assert encode_registers(addr, "ABCDE") == [0x4241, 0x4443, 0x0045]
    assert decode_one("hr:0:string<5>:badc", [0x4241, 0x4443, 0x0045])[1] == {0: "ABCDE"}


def test_string_decoding_stops_at_nul_and_drops_trailing_spaces():
    assert decode_one("hr:0:string<6>", [0x4142, 0x0043, 0x4400])[1] == {0: "AB"}
    assert decode_one("hr:0:string<6>", [0x4142, 0x2020, 0x2020])[1] == {0: "AB"}
    assert decode_one("hr:0:string<6>", [0x2041, 0x2042, 0x2020])[1] == {0: " A B"}
    assert decode_one("hr:0:string<4>", [0x0000, 0x0000])[1] == {0: ""}
    # string<3> reads 3 bytes: the low byte of the second register is ignored
    assert decode_one("hr:0:string<3>", [0x4142, 0x4344])[1] == {0: "ABC"}


def test_non_ascii_string_is_reported_invalid():
    values, texts, exact = decode_one("hr:0:string<4>", [0xFFFF, 0xFFFF])
    assert texts == {} and exact == {}
    assert math.isnan(values[0])


def test_layout_decodes_a_whole_plan_in_one_pass():
    # one buffer: hr:100 float32 cdab @0, hr:102 int16 @2, hr:103.4 @3, hr:104 string<4> @4,
    # hr:106 uint16[3] badc @6, hr:109 int32 @9
    items = [
        (10, parse_modbus("hr:100:float32:cdab"), 0),
        (11, parse_modbus("hr:102:int16"), 2),
        (12, parse_modbus("hr:103.4"), 3),
        (13, parse_modbus("hr:104:string<4>"), 4),
        (20, parse_modbus("hr:106:uint16[3]:badc"), 6),
        (14, parse_modbus("hr:109:int32"), 9),
    ]
    layout = RegisterLayout(items)
    assert layout.slots.tolist() == [10, 11, 12, 13, 20, 21, 22, 14]
    assert layout.text_mask.tolist() == [False, False, False, True, False, False, False, False]
    assert layout.registers == 11
    words = [0xE979, 0x42F6, 0xFF85, 0x0010, 0x4F4B, 0x0000, 0x0100, 0x0200, 0xFFFF,
             0xFFFF, 0xFFFE]
    values, texts, exact = layout.decode(words)
    assert values.tolist() == [F32_123_456, -123.0, 1.0, 0.0, 1.0, 2.0, 65535.0, -2.0]
    assert texts == {13: "OK"} and exact == {}
    # the same layout again with a plain list of ints
    values2, _, _ = layout.decode(list(words))
    assert values2.tolist() == values.tolist()


def test_layout_checks_its_buffer_and_items():
    layout = RegisterLayout([(0, parse_modbus("hr:0:float64"), 2)])
    with pytest.raises(ValueError, match="register buffer holds 5 registers: the layout "
                                         "needs 6"):
        layout.decode(np.zeros(5, np.uint16))
    with pytest.raises(ValueError, match="co:0 is a co bit, not a register: decode it with "
                                         "BitLayout"):
        RegisterLayout([(0, parse_modbus("co:0"), 0)])
    with pytest.raises(OverflowError):
        layout.decode([70000] * 6)
    empty = RegisterLayout([])
    values, texts, exact = empty.decode(np.zeros(0, np.uint16))
    assert values.size == 0 and texts == {} and exact == {} and empty.slots.size == 0


def test_bit_layout():
    items = [(0, parse_modbus("co:10"), 0), (5, parse_modbus("co:11:bool[3]"), 1),
             (1, parse_modbus("di:20"), 7)]
    layout = BitLayout(items)
    assert layout.slots.tolist() == [0, 5, 6, 7, 1]
    assert layout.bits == 8
    buf = [True, False, True, True, False, False, False, True]
    assert layout.decode(buf)[0].tolist() == [1.0, 0.0, 1.0, 1.0, 1.0]
    assert layout.decode(buf)[1:] == ({}, {})
    assert layout.decode(np.array([1, 0, 1, 1, 0, 0, 0, 1], np.uint8))[0].tolist() == [
        1.0, 0.0, 1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="bit buffer holds 7 bits: the layout needs 8"):
        layout.decode(buf[:7])
    with pytest.raises(ValueError, match="not a coil or discrete input"):
        BitLayout([(0, parse_modbus("hr:0"), 0)])


def test_encode_bits():
    assert encode_bits(parse_modbus("co:5"), True) == [True]
    assert encode_bits(parse_modbus("co:5"), 0) == [False]
    assert encode_bits(parse_modbus("co:5:bool[3]"), (1, 0, True)) == [True, False, True]
    with pytest.raises(ValueError, match="expected a bool"):
        encode_bits(parse_modbus("co:5"), 2)
    with pytest.raises(ValueError, match="expected 3 values, found 2"):
        encode_bits(parse_modbus("co:5:bool[3]"), (1, 0))
    with pytest.raises(ValueError, match="register address: use encode_registers"):
        encode_bits(parse_modbus("hr:5"), True)


def test_encode_registers_arrays():
    addr = parse_modbus("hr:0:int16[3]")
    assert encode_registers(addr, (1, -1, 256)) == [0x0001, 0xFFFF, 0x0100]
    addr = parse_modbus("hr:0:float32[2]:cdab")
    assert encode_registers(addr, [123.456, -2.5]) == [0xE979, 0x42F6, 0x0000, 0xC020]
    # float32 -2.5 = 0xC0200000 (sign 1, exponent 128 = 0x80, fraction 0.25 → 0x200000)


@pytest.mark.parametrize(("text", "value", "message"), [
    ("hr:0:uint16", 65536, r"^65536 does not fit uint16 \(0\.\.65535\)$"),
    ("hr:0:int16", -32769, r"^-32769 does not fit int16 \(-32768\.\.32767\)$"),
    ("hr:0:int16", 1.5, r"^1\.5 is not a whole number; int16 holds integers only$"),
    ("hr:0:uint32", -1, r"^-1 does not fit uint32"),
    ("hr:0:uint64", 2**64, r"^18446744073709551616 does not fit uint64"),
    ("hr:0:float32", 1e39, r"^1e\+39 does not fit float32"),
    ("hr:0:float32", "1.0", r"^expected a number for a float32 value, found str '1\.0'$"),
    ("hr:0:int16[2]", 5, r"^expected a sequence of 2 values, found int 5$"),
    ("hr:0:int16[2]", (1, 2, 3), r"^expected 2 values, found 3$"),
    ("hr:0:int16[2]", (1, 99999), r"^element \[1\]: 99999 does not fit int16"),
    ("hr:0:string<4>", "ABCDE", r"^text 'ABCDE' is 5 bytes long: the field holds at most 4$"),
    ("hr:0:string<4>", "Grüß", r"^text 'Grüß' has the character 'ü', which ascii cannot "
                               r"encode$"),
    ("hr:0:string<4>", "A\x00B", r"contains a NUL character"),
    ("hr:0:string<4>", 12, r"^expected text, found int 12$"),
    ("hr:7.3", True, r"^hr:7\.3 is one bit of a register: write it with register_bit_masks"),
    ("co:1", True, r"^co:1 is a co bit, not a register: use encode_bits$"),
])
def test_encoders_refuse_values_that_do_not_fit(text, value, message):
    with pytest.raises(ValueError, match=message):
        encode_registers(parse_modbus(text), value)


def test_register_byte_index_formula():
    assert register_byte_index(0, 2, parse_modbus("hr:0:float32").order) == [0, 1, 2, 3]
    assert register_byte_index(0, 2, parse_modbus("hr:0:float32:cdab").order) == [2, 3, 0, 1]
    assert register_byte_index(0, 2, parse_modbus("hr:0:float32:badc").order) == [1, 0, 3, 2]
    assert register_byte_index(0, 2, parse_modbus("hr:0:float32:dcba").order) == [3, 2, 1, 0]
    assert register_byte_index(5, 4, parse_modbus("hr:0:float64:cdab").order) == [
        16, 17, 14, 15, 12, 13, 10, 11]


@pytest.mark.filterwarnings("error")
def test_signalling_nan_decodes_quietly():
    # float32 0x7F800001: exponent all ones, fraction non-zero, quiet bit clear → sNaN
    values, _, _ = decode_one("hr:0:float32", [0x7F80, 0x0001])
    assert math.isnan(values[0])
