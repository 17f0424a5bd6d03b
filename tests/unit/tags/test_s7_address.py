"""The S7 address grammar: STEP 7 absolute addresses with an optional :TYPE (ADR 0004)."""

import pytest

from smartline.core import Address
from smartline.tags import AddressError, DataType, S7Address, parse_address
from smartline.tags import parse_s7 as parse


@pytest.mark.parametrize(("text", "area", "db", "byte", "bit", "size", "s7type", "dtype",
                          "nbytes"), [
    ("DB1.DBX0.0", "DB", 1, 0, 0, "X", "BOOL", DataType.BOOL, 1),
    ("DB1.DBB1", "DB", 1, 1, None, "B", "BYTE", DataType.UINT8, 1),
    ("DB1.DBW2", "DB", 1, 2, None, "W", "WORD", DataType.UINT16, 2),
    ("DB1.DBD4", "DB", 1, 4, None, "D", "DWORD", DataType.UINT32, 4),
    ("M10.2", "M", None, 10, 2, "X", "BOOL", DataType.BOOL, 1),
    ("MB1", "M", None, 1, None, "B", "BYTE", DataType.UINT8, 1),
    ("MW20", "M", None, 20, None, "W", "WORD", DataType.UINT16, 2),
    ("MD24", "M", None, 24, None, "D", "DWORD", DataType.UINT32, 4),
    ("I0.0", "I", None, 0, 0, "X", "BOOL", DataType.BOOL, 1),
    ("IB3", "I", None, 3, None, "B", "BYTE", DataType.UINT8, 1),
    ("IW64", "I", None, 64, None, "W", "WORD", DataType.UINT16, 2),
    ("ID4", "I", None, 4, None, "D", "DWORD", DataType.UINT32, 4),
    ("Q0.1", "Q", None, 0, 1, "X", "BOOL", DataType.BOOL, 1),
    ("QB1", "Q", None, 1, None, "B", "BYTE", DataType.UINT8, 1),
    ("QW80", "Q", None, 80, None, "W", "WORD", DataType.UINT16, 2),
    ("QD8", "Q", None, 8, None, "D", "DWORD", DataType.UINT32, 4),
])
def test_every_location_form(text, area, db, byte, bit, size, s7type, dtype, nbytes):
    a = parse(text)
    assert (a.area, a.db, a.byte, a.bit, a.size, a.s7type) == (area, db, byte, bit, size, s7type)
    assert (a.dtype, a.nbytes, a.elements, a.count, a.strlen) == (dtype, nbytes, 1, None, None)
    assert a.canonical() == text
    assert a.family == "s7"
    assert isinstance(a, Address)


@pytest.mark.parametrize(("text", "canonical"), [
    ("E0.0", "I0.0"), ("EB1", "IB1"), ("EW4", "IW4"), ("ED8", "ID8"),
    ("A0.1", "Q0.1"), ("AB1", "QB1"), ("AW4", "QW4"), ("AD8", "QD8"),
    ("%MW20", "MW20"), ("%DB1.DBX0.0", "DB1.DBX0.0"), ("%I0.7", "I0.7"),
    ("db1.dbd4:real", "DB1.DBD4:REAL"), ("mw20:int", "MW20:INT"),
    ("DB1.DBW2:WORD", "DB1.DBW2"), ("DB1.DBX3.1:BOOL", "DB1.DBX3.1"), ("MB0:BYTE", "MB0"),
    ("MD0:DWORD", "MD0"),
    ("DB1.DBB20:STRING", "DB1.DBB20:STRING[254]"),
    ("MW0:WORD[4]", "MW0:WORD[4]"),
    (" DB01.DBW002 ", "DB1.DBW2"),
])
def test_canonical_forms(text, canonical):
    a = parse(text)
    assert a.canonical() == canonical
    assert parse(canonical) == a


@pytest.mark.parametrize(("text", "dtype", "nbytes", "elements", "is_text"), [
    ("DB1.DBW0:INT", DataType.INT16, 2, 1, False),
    ("DB1.DBW0:UINT", DataType.UINT16, 2, 1, False),
    ("DB1.DBD0:DINT", DataType.INT32, 4, 1, False),
    ("DB1.DBD0:UDINT", DataType.UINT32, 4, 1, False),
    ("DB1.DBD4:REAL", DataType.FLOAT32, 4, 1, False),
    ("DB1.DBB8:LREAL", DataType.FLOAT64, 8, 1, False),
    ("DB1.DBB8:LINT", DataType.INT64, 8, 1, False),
    ("DB1.DBB8:ULINT", DataType.UINT64, 8, 1, False),
    ("DB1.DBB8:LWORD", DataType.UINT64, 8, 1, False),
    ("DB1.DBB0:SINT", DataType.INT8, 1, 1, False),
    ("DB1.DBB0:USINT", DataType.UINT8, 1, 1, False),
    ("DB1.DBB0:CHAR", DataType.STRING, 1, 1, True),
    ("DB1.DBB0:CHAR[10]", DataType.STRING, 10, 1, True),
    ("DB1.DBB20:STRING[16]", DataType.STRING, 18, 1, True),
    ("DB1.DBD0:REAL[10]", DataType.FLOAT32, 40, 10, False),
    ("DB1.DBW0:INT[3]", DataType.INT16, 6, 3, False),
    ("DB1.DBB0:LREAL[2]", DataType.FLOAT64, 16, 2, False),
    ("DB1.DBX0.0:BOOL[16]", DataType.BOOL, 2, 16, False),
    ("DB1.DBX0.7:BOOL[2]", DataType.BOOL, 2, 2, False),
    ("DB1.DBX0.5:BOOL[3]", DataType.BOOL, 1, 3, False),
])
def test_types_and_sizes(text, dtype, nbytes, elements, is_text):
    a = parse(text)
    assert (a.dtype, a.nbytes, a.elements, a.is_text) == (dtype, nbytes, elements, is_text)
    assert a.end == a.byte + nbytes
    assert parse(a.canonical()) == a


def test_string_length_and_header():
    a = parse("DB1.DBB20:STRING[16]")
    assert (a.strlen, a.element_bytes, a.nbytes) == (16, 18, 18)
    assert parse("DB1.DBB0:STRING[1]").nbytes == 3
    assert parse("DB1.DBB0:STRING[254]").nbytes == 256


def test_writable_areas():
    assert parse("DB1.DBW0").writable_area
    assert parse("MW0").writable_area
    assert parse("QW0").writable_area
    assert not parse("IW0").writable_area


def test_parse_address_dispatches():
    assert parse_address("s7", "DB1.DBD4:REAL") == parse("DB1.DBD4:REAL")


@pytest.mark.parametrize(("text", "message", "column"), [
    ("", "empty S7 address: expected DBn.DBXb.x, DBn.DBBb, DBn.DBWb, DBn.DBDb, Mb.x, MBb, MWb, "
         "MDb, Ib.x, IBb, IWb, IDb, Qb.x, QBb, QWb or QDb in ''", 0),
    ("DB1.DBW2:REAL", "type REAL does not fit DB1.DBW2: REAL is 4 bytes: expected DB1.DBD2:REAL "
                      "in 'DB1.DBW2:REAL'", 9),
    ("DB1.DBB4:REAL", "type REAL does not fit DB1.DBB4: REAL is 4 bytes: expected DB1.DBD4:REAL "
                      "in 'DB1.DBB4:REAL'", 9),
    ("MD4:INT", "type INT does not fit MD4: INT is 2 bytes: expected MW4:INT in 'MD4:INT'", 4),
    ("DB1.DBD4:LREAL", "type LREAL does not fit DB1.DBD4: LREAL is 8 bytes: name its first "
                       "byte, DB1.DBB4:LREAL in 'DB1.DBD4:LREAL'", 9),
    ("DB1.DBW0:STRING[4]", "type STRING does not fit DB1.DBW0: STRING is text: name its first "
                           "byte, DB1.DBB0:STRING in 'DB1.DBW0:STRING[4]'", 9),
    ("DB1.DBW4:BOOL", "type BOOL does not fit DB1.DBW4: BOOL is a bit: expected a bit address "
                      "like DB1.DBX4.0 in 'DB1.DBW4:BOOL'", 9),
    ("DB1.DBX0.0:INT", "type INT does not fit DB1.DBX0: INT is 2 bytes: expected DB1.DBW0:INT "
                       "in 'DB1.DBX0.0:INT'", 11),
    ("DB1.DBX0.8", "bit index 8 out of range: expected 0..7 in 'DB1.DBX0.8'", 9),
    ("M0.9", "bit index 9 out of range: expected 0..7 in 'M0.9'", 3),
    ("DB1.DBX0", "DB1.DBX0 without a bit: expected a bit number 0..7 like DB1.DBX0.0 "
                 "in 'DB1.DBX0'", 0),
    ("DB0.DBW0", "data block number 0 out of range: expected 1..65535 in 'DB0.DBW0'", 2),
    ("DB65536.DBW0", "data block number 65536 out of range: expected 1..65535 "
                     "in 'DB65536.DBW0'", 2),
    ("DB1.DBW2.3", "bit .3 after a W (byte/word/double word) address: bits are addressed as "
                   "DB1.DBX2.3 in 'DB1.DBW2.3'", 9),
    ("MW65536", "byte offset 65536 out of range: expected 0..65535 in 'MW65536'", 2),
    ("DB1.DBW65535:INT", "INT at byte 65535 spans 2 bytes (65535..65536): past the end of the "
                         "area (last byte 65535) in 'DB1.DBW65535:INT'", 7),
    ("DB1.DBD65532:REAL[2]", "REAL[2] at byte 65532 spans 8 bytes (65532..65539): past the end "
                             "of the area (last byte 65535) in 'DB1.DBD65532:REAL[2]'", 18),
    ("M10", "'M10' needs a bit (M10.0) or a size letter (MB10, MW10, MD10) in 'M10'", 3),
    ("MX10.2", "cannot read 'MX10.2': bits of M, I and Q are written without X (e.g. M10.2) "
               "in 'MX10.2'", 0),
    ("DB1.W2", "cannot read 'DB1.W2': a data block address is DBn.DBXb.x, DBn.DBBb, DBn.DBWb "
               "or DBn.DBDb (e.g. DB1.DBW2) in 'DB1.W2'", 0),
    ("T5", "unknown S7 area in 'T5': expected DBn.DBXb.x, DBn.DBBb, DBn.DBWb, DBn.DBDb, Mb.x, "
           "MBb, MWb, MDb, Ib.x, IBb, IWb, IDb, Qb.x, QBb, QWb or QDb in 'T5'", 0),
    ("DB1.DBD0:FLOAT", "unknown S7 type 'FLOAT': expected BOOL, BYTE, CHAR, SINT, USINT, INT, "
                       "UINT, WORD, DINT, UDINT, DWORD, REAL, LREAL, LINT, ULINT, LWORD or "
                       "STRING[n] in 'DB1.DBD0:FLOAT'", 9),
    ("DB1.DBB0:STRING[0]", "STRING length 0 out of range: expected STRING[1..254] "
                           "in 'DB1.DBB0:STRING[0]'", 16),
    ("DB1.DBB0:STRING[255]", "STRING length 255 out of range: expected STRING[1..254] "
                             "in 'DB1.DBB0:STRING[255]'", 16),
    ("DB1.DBB0:STRING[10][2]", "array [2] of STRING: expected a single STRING[n]; use one tag "
                               "per string in 'DB1.DBB0:STRING[10][2]'", 20),
    ("DB1.DBW0:INT[0]", "array count 0: expected 1 or more elements in 'DB1.DBW0:INT[0]'", 13),
    ("DB1.DBW0:INT[2][3]", "second [...] after INT[2]: expected TYPE[COUNT] "
                           "in 'DB1.DBW0:INT[2][3]'", 16),
    ("DB1.DBW0:INT[a]", "array count 'a' is not a number: expected TYPE[COUNT] with COUNT ≥ 1 "
                        "in 'DB1.DBW0:INT[a]'", 13),
    ("DB1.DBB0:REAL[", "cannot read type 'REAL[': expected TYPE, TYPE[COUNT] or STRING[n] like "
                       "REAL or INT[10] in 'DB1.DBB0:REAL['", 9),
    ("%MW20:REAL", "type REAL does not fit MW20: REAL is 4 bytes: expected MD20:REAL "
                   "in '%MW20:REAL'", 6),
])
def test_errors_name_what_was_found_and_expected(text, message, column):
    with pytest.raises(AddressError) as info:
        parse(text)
    assert str(info.value) == message
    assert info.value.column == column


def test_direct_construction_is_checked_and_normalised():
    a = S7Address("E", None, 0, 3, "X", "bool")  # type: ignore[arg-type]
    assert (a.area, a.s7type, a.canonical()) == ("I", "BOOL", "I0.3")
    with pytest.raises(AddressError, match="data block number 7 on area M"):
        S7Address("M", 7, 0, None, "W", "INT")
    with pytest.raises(AddressError, match="unknown size letter 'Z'"):
        S7Address("M", None, 0, None, "Z", "INT")  # type: ignore[arg-type]
    with pytest.raises(AddressError, match="length \\[4\\] on INT: only STRING takes a length"):
        S7Address("M", None, 0, None, "W", "INT", strlen=4)
