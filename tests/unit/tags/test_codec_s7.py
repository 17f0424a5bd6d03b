"""S7 byte codecs, byte-exact against vectors derived by hand.

S7 stores every multi-byte value big-endian (most significant byte at the lowest
address). BOOL bit n of a byte is the bit with value 2^n (DBX0.0 = 0x01, DBX0.7 = 0x80).
STRING[n] is byte 0 = n (max length), byte 1 = actual length, then n character bytes.

IEEE-754 derivations: REAL 123.456 = 0x42F6E979 and LREAL 123.456 = 0x405EDD2F1A9FBE77
(see test_codec_registers.py); REAL -2.5 = 0xC0200000 (sign 1, exponent 1 + 127 = 0x80,
fraction 0.25 × 2^23 = 0x200000).
"""

import math

import numpy as np
import pytest

from smartline.tags import parse_s7
from smartline.tags.codec import ByteLayout, encode_s7

F32_123_456 = 123.45600128173828  # 0x42F6E979 exactly


def decode_one(text, data):
    """Values and texts (exact 64-bit integers are checked by their own test)."""
    values, texts, _ = ByteLayout([(0, parse_s7(text), 0)]).decode(bytes(data))
    return values, texts


@pytest.mark.parametrize(("text", "value", "data", "decoded"), [
    ("DB1.DBD0:REAL", 123.456, "42 F6 E9 79", F32_123_456),
    ("DB1.DBD0:REAL", -2.5, "C0 20 00 00", -2.5),
    ("DB1.DBD0:DINT", -2, "FF FF FF FE", -2.0),
    ("DB1.DBD0:DINT", 0x01020304, "01 02 03 04", 16909060.0),
    ("DB1.DBD0:UDINT", 4294967294, "FF FF FF FE", 4294967294.0),
    ("DB1.DBD0", 0xDEADBEEF, "DE AD BE EF", 3735928559.0),  # DWORD by default
    ("DB1.DBW0:INT", -2, "FF FE", -2.0),
    ("DB1.DBW0:INT", 1000, "03 E8", 1000.0),
    ("DB1.DBW0:INT", -32768, "80 00", -32768.0),
    ("DB1.DBW0:INT", 32767, "7F FF", 32767.0),
    ("DB1.DBW0:UINT", 65535, "FF FF", 65535.0),
    ("DB1.DBW0", 0x1234, "12 34", 4660.0),  # WORD by default
    ("DB1.DBB0", 0xA5, "A5", 165.0),  # BYTE by default
    ("DB1.DBB0:SINT", -1, "FF", -1.0),
    ("DB1.DBB0:SINT", -128, "80", -128.0),
    ("DB1.DBB0:USINT", 255, "FF", 255.0),
    ("DB1.DBB0:LREAL", 123.456, "40 5E DD 2F 1A 9F BE 77", 123.456),
    ("DB1.DBB0:LINT", -2, "FF FF FF FF FF FF FF FE", -2.0),
    ("DB1.DBB0:ULINT", 0x00123456789ABCDE, "00 12 34 56 78 9A BC DE", 5124095576030430.0),
    ("DB1.DBB0:LWORD", 0x0102030405060708, "01 02 03 04 05 06 07 08", 72623859790382848.0),
    ("MD4:REAL", 123.456, "42 F6 E9 79", F32_123_456),
    ("QW2:INT", -2, "FF FE", -2.0),
])
def test_numbers(text, value, data, decoded):
    addr = parse_s7(text)
    expected = bytes.fromhex(data)
    assert encode_s7(addr, value) == expected
    values, texts = decode_one(text, expected)
    assert values.tolist() == [decoded]
    assert texts == {}


def test_string_header_and_characters():
    addr = parse_s7("DB1.DBB0:STRING[10]")
    encoded = encode_s7(addr, "ABC")
    # max length 10, actual length 3, 'A' 'B' 'C', seven NUL padding bytes
    assert encoded == bytes([0x0A, 0x03, 0x41, 0x42, 0x43]) + bytes(7)
    assert len(encoded) == 12 == addr.nbytes
    values, texts = decode_one("DB1.DBB0:STRING[10]", encoded)
    assert texts == {0: "ABC"}
    assert values.tolist() == [0.0]


def test_string_decoding_uses_the_actual_length_not_nuls():
    data = bytes([0x0A, 0x04, 0x41, 0x20, 0x00, 0x42, 0x58, 0x58]) + bytes(4)
    assert decode_one("DB1.DBB0:STRING[10]", data)[1] == {0: "A \x00B"}
    assert decode_one("DB1.DBB0:STRING[10]", bytes(12))[1] == {0: ""}  # uninitialised


def test_string_with_actual_length_beyond_capacity_is_invalid():
    data = bytes([0x0A, 0x0B]) + b"ABCDEFGHIJ"
    values, texts = decode_one("DB1.DBB0:STRING[10]", data)
    assert texts == {}
    assert math.isnan(values[0])


def test_string_is_latin_1():
    addr = parse_s7("DB1.DBB0:STRING[4]")
    assert encode_s7(addr, "°Cä") == bytes([4, 3, 0xB0, 0x43, 0xE4, 0x00])
    assert decode_one("DB1.DBB0:STRING[4]", bytes([4, 3, 0xB0, 0x43, 0xE4, 0x00]))[1] == {
        0: "°Cä"}
    with pytest.raises(ValueError, match="which latin-1 cannot encode"):
        encode_s7(addr, "€")


def test_char_and_char_arrays():
    assert encode_s7(parse_s7("DB1.DBB0:CHAR"), "A") == b"A"
    assert decode_one("DB1.DBB0:CHAR", b"A")[1] == {0: "A"}
    addr = parse_s7("DB1.DBB0:CHAR[6]")
    assert encode_s7(addr, "AB") == b"AB\x00\x00\x00\x00"
    assert decode_one("DB1.DBB0:CHAR[6]", b"AB  \x00\x00")[1] == {0: "AB"}
    assert decode_one("DB1.DBB0:CHAR[6]", b"ABCDEF")[1] == {0: "ABCDEF"}
    with pytest.raises(ValueError, match="is 7 bytes long: the field holds at most 6"):
        encode_s7(addr, "ABCDEFG")


@pytest.mark.parametrize(("text", "byte", "mask"), [
    ("DB1.DBX0.0", 0, 0x01), ("DB1.DBX0.1", 0, 0x02), ("DB1.DBX0.7", 0, 0x80),
    ("DB1.DBX1.3", 1, 0x08), ("M2.6", 2, 0x40),
])
def test_bool_bit_positions(text, byte, mask):
    addr = parse_s7(text)
    layout = ByteLayout([(0, addr, addr.byte)])  # the buffer starts at byte 0 of the area
    buf = bytearray(4)
    buf[byte] = mask
    assert layout.decode(bytes(buf))[0].tolist() == [1.0]
    buf[byte] = 0xFF ^ mask
    assert layout.decode(bytes(buf))[0].tolist() == [0.0]
    assert encode_s7(addr, True) == b"\x01"
    assert encode_s7(addr, False) == b"\x00"


def test_bool_arrays_run_on_into_the_next_byte():
    # DBX0.6:BOOL[4] = bits 0.6, 0.7, 1.0, 1.1
    addr = parse_s7("DB1.DBX0.6:BOOL[4]")
    assert addr.nbytes == 2
    layout = ByteLayout([(0, addr, 0)])
    assert layout.decode(bytes([0b0100_0000, 0b0000_0010]))[0].tolist() == [1.0, 0.0, 0.0, 1.0]
    assert encode_s7(addr, [1, 0, 0, True]) == b"\x01\x00\x00\x01"


def test_layout_decodes_a_whole_plan_in_one_pass():
    # buffer holds DB1 bytes 100..125 (byte offset = address byte - 100)
    items = [
        (0, parse_s7("DB1.DBD100:REAL"), 0),
        (1, parse_s7("DB1.DBW104:INT"), 4),
        (2, parse_s7("DB1.DBX106.3"), 6),
        (3, parse_s7("DB1.DBB108:STRING[4]"), 8),
        (10, parse_s7("DB1.DBW114:INT[2]"), 14),
        (4, parse_s7("DB1.DBB118:LREAL"), 18),
    ]
    layout = ByteLayout(items)
    assert layout.slots.tolist() == [0, 1, 2, 3, 10, 11, 4]
    assert layout.text_mask.tolist() == [False, False, False, True, False, False, False]
    assert layout.nbytes == 26
    buf = bytes.fromhex("42F6E979" "FFFE" "08" "00" "0402" "4F4B0000"
                        "0001" "8000" "405EDD2F1A9FBE77")
    values, texts, _ = layout.decode(buf)
    assert values.tolist() == [F32_123_456, -2.0, 1.0, 0.0, 1.0, -32768.0, 123.456]
    assert texts == {3: "OK"}
    assert layout.decode(np.frombuffer(buf, np.uint8))[0].tolist() == values.tolist()
    assert layout.decode(bytearray(buf))[0].tolist() == values.tolist()


def test_layout_checks_its_buffer():
    layout = ByteLayout([(0, parse_s7("DB1.DBB0:LREAL"), 2)])
    with pytest.raises(ValueError, match="S7 buffer holds 9 bytes: the layout needs 10"):
        layout.decode(bytes(9))
    with pytest.raises(ValueError, match="negative"):
        ByteLayout([(0, parse_s7("MB0"), -1)])


@pytest.mark.parametrize(("text", "value", "message"), [
    ("DB1.DBW0:INT", 40000, r"^40000 does not fit int16 \(-32768\.\.32767\)$"),
    ("DB1.DBB0:SINT", 128, r"^128 does not fit int8 \(-128\.\.127\)$"),
    ("DB1.DBB0", 256, r"^256 does not fit uint8 \(0\.\.255\)$"),
    ("DB1.DBD0:REAL", 1e39, r"^1e\+39 does not fit float32"),
    ("DB1.DBD0:DINT", 0.5, r"^0\.5 is not a whole number; int32 holds integers only$"),
    ("DB1.DBX0.0", 2, r"^expected a bool \(or 0/1\) for a bool value, found int 2$"),
    ("DB1.DBB0:STRING[3]", "ABCD", r"^text 'ABCD' is 4 bytes long: the field holds at most 3$"),
    ("DB1.DBB0:STRING[3]", 5, r"^expected text, found int 5$"),
    ("DB1.DBD0:REAL[2]", (1.0,), r"^expected 2 values, found 1$"),
])
def test_encoder_refuses_values_that_do_not_fit(text, value, message):
    with pytest.raises(ValueError, match=message):
        encode_s7(parse_s7(text), value)


@pytest.mark.parametrize(("text", "value"), [
    ("DB1.DBB0:LINT", -(2**63) + 1), ("DB1.DBB0:LINT", 2**53 + 1),
    ("DB1.DBB0:ULINT", 2**64 - 1), ("DB1.DBB0:LWORD", 2**63 + 5)])
def test_64_bit_integers_decode_exactly(text, value):
    addr = parse_s7(text)
    values, _, exact = ByteLayout([(9, addr, 0)]).decode(encode_s7(addr, value))
    assert exact == {9: value}
    assert values.tolist() == [float(value)]
    _, _, small = ByteLayout([(9, addr, 0)]).decode(encode_s7(addr, 12345))
    assert small == {}  # only values float64 cannot hold travel exactly
