"""The Modbus address grammar AREA:OFFSET[.BIT][:TYPE[COUNT]][:ORDER] (DESIGN §5, ADR 0004)."""

import pytest

from smartline.core import Address
from smartline.tags import AddressError, ByteOrder, DataType, ModbusAddress, parse_address
from smartline.tags import parse_modbus as parse


def test_full_form():
    a = parse("hr:100:float32:cdab")
    assert a == ModbusAddress("hr", 100, DataType.FLOAT32, order=ByteOrder.CDAB)
    assert (a.bit, a.count, a.strlen) == (None, None, None)
    assert a.family == "modbus"
    assert a.elements == 1
    assert not a.is_text
    assert (a.registers, a.bits, a.end) == (2, 0, 102)
    assert a.canonical() == "hr:100:float32:cdab"
    assert str(a) == "hr:100:float32:cdab"
    assert isinstance(a, Address)


@pytest.mark.parametrize(("text", "dtype"), [
    ("co:5", DataType.BOOL), ("di:5", DataType.BOOL),
    ("hr:5", DataType.UINT16), ("ir:5", DataType.UINT16),
])
def test_default_types(text, dtype):
    assert parse(text).dtype is dtype


@pytest.mark.parametrize(("text", "canonical"), [
    ("hr:100", "hr:100:uint16"),
    ("hr:200:uint16", "hr:200:uint16"),
    ("co:5", "co:5"),
    ("co:5:bool", "co:5"),
    ("co:0:bool[16]", "co:0:bool[16]"),
    ("hr:7.3", "hr:7.3"),
    ("hr:7.3:bool", "hr:7.3"),
    ("ir:0:int16", "ir:0:int16"),
    ("hr:10:float32[8]", "hr:10:float32[8]"),
    ("hr:10:float32:abcd", "hr:10:float32"),
    ("HR:0x10:FLOAT32:CDAB", "hr:16:float32:cdab"),
    ("hr:0010", "hr:10:uint16"),
    ("  hr:3  ", "hr:3:uint16"),
    ("hr:1:int16:dcba", "hr:1:int16:badc"),
    ("hr:1:uint16:badc", "hr:1:uint16:badc"),
    ("hr:1:badc", "hr:1:uint16:badc"),
    ("hr:0:string<5>", "hr:0:string<5>"),
    ("hr:0:string<6>:badc", "hr:0:string<6>:badc"),
    ("hr:0:uint64:dcba", "hr:0:uint64:dcba"),
    ("hr:65535", "hr:65535:uint16"),
    ("hr:65534:float32", "hr:65534:float32"),
    ("co:65535", "co:65535"),
])
def test_canonical_forms(text, canonical):
    a = parse(text)
    assert a.canonical() == canonical
    assert parse(canonical) == a


@pytest.mark.parametrize(("text", "registers", "end", "elements"), [
    ("hr:10:int16", 1, 11, 1),
    ("hr:10:int32", 2, 12, 1),
    ("hr:10:float64", 4, 14, 1),
    ("hr:10:float32[8]", 16, 26, 8),
    ("hr:10:string<5>", 3, 13, 1),
    ("hr:10:string<6>", 3, 13, 1),
    ("hr:10.15", 1, 11, 1),
])
def test_register_geometry(text, registers, end, elements):
    a = parse(text)
    assert (a.registers, a.end, a.elements, a.bits) == (registers, end, elements, 0)


def test_bit_area_geometry():
    a = parse("co:10:bool[16]")
    assert (a.registers, a.bits, a.end, a.elements) == (0, 16, 26, 16)
    assert a.is_bit_area and a.writable_area
    assert not parse("di:0").writable_area
    assert not parse("ir:0").writable_area
    assert parse("hr:0").writable_area


def test_bit_in_register():
    a = parse("hr:7.3")
    assert (a.area, a.offset, a.bit, a.dtype) == ("hr", 7, 3, DataType.BOOL)
    assert parse("ir:7.15").bit == 15
    assert parse("hr:7.0").bit == 0


def test_strings():
    a = parse("hr:0:string<5>")
    assert (a.dtype, a.strlen, a.is_text, a.elements) == (DataType.STRING, 5, True, 1)


def test_dcba_on_16_bit_is_stored_as_byte_swap():
    assert parse("hr:1:int16:dcba").order is ByteOrder.BADC
    assert ModbusAddress("hr", 1, DataType.INT16, order=ByteOrder.DCBA).order is ByteOrder.BADC
    assert ModbusAddress("hr", 1, DataType.INT32, order=ByteOrder.DCBA).order is ByteOrder.DCBA


def test_parse_address_dispatches():
    assert parse_address("modbus", "hr:1") == parse("hr:1")


@pytest.mark.parametrize(("text", "message", "column"), [
    ("", "empty Modbus address: expected AREA:OFFSET[.BIT][:TYPE[COUNT]][:ORDER] like 'hr:100'",
     0),
    ("xx:5", "unknown Modbus area 'xx': expected co, di, ir or hr "
             "(AREA:OFFSET[.BIT][:TYPE[COUNT]][:ORDER]) in 'xx:5'", 0),
    ("hr", "missing offset after 'hr:': expected a number 0..65535 like 'hr:100' in 'hr'", 2),
    ("hr:", "missing offset after 'hr:': expected a number 0..65535 like 'hr:100' in 'hr:'", 3),
    ("hr:a", "offset 'a' is not a number: expected 0..65535 (decimal or 0x hex) in 'hr:a'", 3),
    ("hr:-1", "offset '-1' is not a number: expected 0..65535 (decimal or 0x hex) in 'hr:-1'",
     3),
    ("hr:65536", "offset 65536 out of range: expected 0..65535 in 'hr:65536'", 3),
    ("hr:7.16", "bit index 16 out of range: expected 0..15 in 'hr:7.16'", 5),
    ("hr:7.x", "bit index 'x' is not a number: expected 0..15 in 'hr:7.x'", 5),
    ("co:5.1", "bit index .1 on a coil: co addresses single bits already; expected 'co:5' "
               "in 'co:5.1'", 5),
    ("co:5:int16", "type int16 on a coil: co holds single bits; expected bool in 'co:5:int16'",
     5),
    ("di:5:float32", "type float32 on a discrete input: di holds single bits; expected bool "
                     "in 'di:5:float32'", 5),
    ("hr:0:flaot32", "unknown type 'flaot32': expected bool, int16, uint16, int32, uint32, "
                     "int64, uint64, float32, float64 or string<N> in 'hr:0:flaot32'", 5),
    ("hr:0:int8", "type 'int8' is not available here: expected bool, int16, uint16, int32, "
                  "uint32, int64, uint64, float32, float64 or string<N> in 'hr:0:int8'", 5),
    ("hr:0:float32:abdc", "unknown byte order 'abdc': expected abcd, cdab, badc or dcba "
                          "in 'hr:0:float32:abdc'", 13),
    ("hr:0:abdc", "unknown byte order 'abdc': expected abcd, cdab, badc or dcba "
                  "in 'hr:0:abdc'", 5),
    ("hr:1:int16:cdab", "byte order cdab on 16-bit int16: a word swap needs a 32- or 64-bit "
                        "type; 16-bit values accept abcd or badc (byte swap) "
                        "in 'hr:1:int16:cdab'", 11),
    ("hr:0:float32[0]", "array count 0: expected 1 or more elements in 'hr:0:float32[0]'", 13),
    ("hr:0:float32[x]", "array count 'x' is not a number: expected TYPE[COUNT] with COUNT ≥ 1 "
                        "in 'hr:0:float32[x]'", 13),
    ("hr:0:string<0>", "string length 0: expected string<N> with N ≥ 1 (bytes) "
                       "in 'hr:0:string<0>'", 5),
    ("hr:0:string", "string without a length: expected string<N> (N bytes) in 'hr:0:string'",
     11),
    ("hr:0:int16<4>", "length <4> on int16: only string takes a length in 'hr:0:int16<4>'", 10),
    ("hr:0:string<3>[2]", "array [2] of strings: expected a single string<N>; use one tag per "
                          "string in 'hr:0:string<3>[2]'", 15),
    ("hr:0:string<8>:cdab", "byte order cdab on a string: strings accept abcd (high byte first) "
                            "or badc (low byte first) in 'hr:0:string<8>:cdab'", 15),
    ("hr:5:bool", "bool on a whole holding register: a bool in a register needs a bit index; "
                  "expected 'hr:5.0' for bit 0, or uint16 for the whole register "
                  "in 'hr:5:bool'", 5),
    ("hr:7.3:int16", "type int16 on bit 3 of a register: a bit is bool; expected no type or "
                     "bool in 'hr:7.3:int16'", 7),
    ("hr:7.3:bool[2]", "array [2] on bit 3 of a register: bits in registers are single values; "
                       "expected no count in 'hr:7.3:bool[2]'", 12),
    ("ir:7.3:cdab", "byte order cdab on bit 3 of a register: bits count from the least "
                    "significant bit of the register value; expected no order "
                    "in 'ir:7.3:cdab'", 7),
    ("hr:65535:float32", "float32 at hr:65535 spans 2 registers (65535..65536): past the end of "
                         "the 16-bit address space (last register 65535) "
                         "in 'hr:65535:float32'", 3),
    ("hr:65530:float32[4]", "float32[4] at hr:65530 spans 8 registers (65530..65537): past the "
                            "end of the 16-bit address space (last register 65535) "
                            "in 'hr:65530:float32[4]'", 17),
    ("di:65535:bool[2]", "bool[2] at di:65535 spans 2 bits (65535..65536): past the end of the "
                         "16-bit address space (last bit 65535) in 'di:65535:bool[2]'", 14),
    ("hr:0:cdab:float32", "type 'float32' after the byte order: the type comes first "
                          "(AREA:OFFSET[.BIT][:TYPE[COUNT]][:ORDER]) in 'hr:0:cdab:float32'",
     10),
    ("hr:0:float32:cdab:abcd", "second byte order 'abcd': expected one order at the end "
                               "(AREA:OFFSET[.BIT][:TYPE[COUNT]][:ORDER]) "
                               "in 'hr:0:float32:cdab:abcd'", 18),
    ("hr:0:float32:int16", "second type 'int16': expected AREA:OFFSET[.BIT][:TYPE[COUNT]][:ORDER] "
                           "in 'hr:0:float32:int16'", 13),
    ("hr:1::cdab", "empty type after ':': expected bool, int16, uint16, int32, uint32, int64, "
                   "uint64, float32, float64 or string<N> in 'hr:1::cdab'", 5),
    ("hr:0:float32[", "cannot read type 'float32[': expected TYPE or TYPE[COUNT] like float32 "
                      "or float32[8] in 'hr:0:float32['", 5),
])
def test_errors_name_what_was_found_and_expected(text, message, column):
    with pytest.raises(AddressError) as info:
        parse(text)
    assert str(info.value) == message
    assert info.value.column == column


def test_error_column_counts_stripped_whitespace():
    with pytest.raises(AddressError) as info:
        parse("  hr:7.16")
    assert info.value.column == 7


def test_default_order_abcd_may_be_written_on_any_type():
    assert parse("co:5:bool:abcd") == parse("co:5")
    assert parse("hr:5:int16:abcd") == parse("hr:5:int16")


def test_byte_order_on_a_coil_is_refused():
    with pytest.raises(AddressError, match=r"^byte order cdab on a coil: orders apply to "
                                           r"multi-byte register values only in 'co:5:cdab'$"):
        parse("co:5:cdab")


def test_huge_numbers_are_out_of_range_not_crashes():
    with pytest.raises(AddressError, match=r"out of range: expected 0\.\.65535"):
        parse("hr:" + "9" * 5000)
    with pytest.raises(AddressError, match="past the end of the 16-bit address space"):
        parse("hr:0:float32[" + "9" * 40 + "]")


@pytest.mark.parametrize("text", ["hr:１２", "hr:1_000", "hr:+5", "hr:0x", "hr:0b11", "hr: 5"])
def test_only_ascii_decimal_or_hex_offsets(text):
    with pytest.raises(AddressError, match="is not a number"):
        parse(text)


def test_direct_construction_is_checked():
    with pytest.raises(AddressError, match=r"^bit index 16 out of range: expected 0\.\.15 in "):
        ModbusAddress("hr", 7, DataType.BOOL, bit=16)
    with pytest.raises(AddressError, match="type int16 on a coil"):
        ModbusAddress("co", 0, DataType.INT16)
    with pytest.raises(AddressError, match="not a Modbus type"):
        ModbusAddress("hr", 0, DataType.INT8)
    with pytest.raises(AddressError, match="unknown Modbus area"):
        ModbusAddress("xx", 0, DataType.UINT16)  # type: ignore[arg-type]
