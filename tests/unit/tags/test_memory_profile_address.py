"""Memory-driver addresses (NAME[:TYPE[COUNT]]), profile names, and the family dispatch."""

import pytest

from smartline.tags import (
    AddressError,
    DataType,
    MemoryAddress,
    ProfileAddress,
    parse_address,
    parse_memory,
    parse_profile,
)


@pytest.mark.parametrize(("text", "dtype", "count", "strlen", "canonical"), [
    ("level", DataType.FLOAT64, None, None, "level"),
    ("level:float64", DataType.FLOAT64, None, None, "level"),
    ("speeds:float64[8]", DataType.FLOAT64, 8, None, "speeds:float64[8]"),
    ("msg:string<16>", DataType.STRING, None, 16, "msg:string<16>"),
    ("run:bool", DataType.BOOL, None, None, "run:bool"),
    ("b:INT8", DataType.INT8, None, None, "b:int8"),
    ("b:uint8[3]", DataType.UINT8, 3, None, "b:uint8[3]"),
    ("line.tank_1.level:float32", DataType.FLOAT32, None, None, "line.tank_1.level:float32"),
    ("_x", DataType.FLOAT64, None, None, "_x"),
    (" level ", DataType.FLOAT64, None, None, "level"),
])
def test_memory_forms(text, dtype, count, strlen, canonical):
    a = parse_memory(text)
    assert (a.dtype, a.count, a.strlen) == (dtype, count, strlen)
    assert a.canonical() == canonical
    assert parse_memory(canonical) == a
    assert a.family == "memory"
    assert a.elements == (count or 1)
    assert a.is_text == (dtype is DataType.STRING)


@pytest.mark.parametrize(("text", "message", "column"), [
    ("", "memory name '' is not an identifier: expected letters, digits and '_', not starting "
         "with a digit, optionally dotted (line.level) in ''", 0),
    ("1abc", "memory name '1abc' is not an identifier: expected letters, digits and '_', not "
             "starting with a digit, optionally dotted (line.level) in '1abc'", 0),
    ("a-b", "memory name 'a-b' is not an identifier: expected letters, digits and '_', not "
            "starting with a digit, optionally dotted (line.level) in 'a-b'", 0),
    ("a:float", "unknown type 'float': expected bool, int8, uint8, int16, uint16, int32, uint32, "
                "int64, uint64, float32, float64 or string<N> in 'a:float'", 2),
    ("a:float64[0]", "array count 0 out of range: expected 1..65536 in 'a:float64[0]'", 10),
    ("a:float64[70000]", "array count 70000 out of range: expected 1..65536 "
                         "in 'a:float64[70000]'", 10),
    ("a:string", "string without a length: expected string<N> (N bytes) in 'a:string'", 8),
    ("a:string<0>", "string length 0 out of range: expected string<N> with N 1..65535 (bytes) "
                    "in 'a:string<0>'", 2),
    ("a:string<4>[2]", "array [2] of strings: expected a single string<N>; use one address per "
                       "string in 'a:string<4>[2]'", 12),
    ("a:", "empty type after ':': expected bool, int8, uint8, int16, uint16, int32, uint32, "
           "int64, uint64, float32, float64 or string<N> in 'a:'", 2),
    ("a:float64:x", "unexpected 'x' after the type: expected NAME[:TYPE[COUNT]] "
                    "in 'a:float64:x'", 10),
])
def test_memory_errors(text, message, column):
    with pytest.raises(AddressError) as info:
        parse_memory(text)
    assert str(info.value) == message
    assert info.value.column == column


def test_memory_direct_construction():
    assert MemoryAddress("x") == parse_memory("x")
    with pytest.raises(AddressError, match="length <4> on float64"):
        MemoryAddress("x", DataType.FLOAT64, strlen=4)


@pytest.mark.parametrize("name", ["weight", "Sspeed", "axis.x.pos", "dtop_1", "x-pos", "_a"])
def test_profile_names(name):
    a = parse_profile(name)
    assert a == ProfileAddress(name)
    assert a.canonical() == name
    assert (a.family, a.elements, a.is_text) == ("profile", 1, False)
    assert parse_profile(f"  {name} ") == a


def test_profile_names_are_case_sensitive():
    assert parse_profile("Sspeed") != parse_profile("sspeed")


@pytest.mark.parametrize("name", ["", "1x", "-x", "a..b", "a.", ".a", "a b", "a:b", "a/b",
                                  "x" * 129])
def test_bad_profile_names(name):
    with pytest.raises(AddressError) as info:
        parse_profile(name)
    assert "profile name" in str(info.value)
    assert info.value.column == 0


def test_profile_error_message():
    with pytest.raises(AddressError) as info:
        parse_profile("1x")
    assert str(info.value) == (
        "profile name '1x' is not a name: expected letters, digits, '_' and '-', not starting "
        "with a digit or '-', optionally dotted (axis.x.pos) in '1x'")


def test_families():
    assert parse_address("serial", "weight") == ProfileAddress("weight", "serial")
    assert parse_address("cnc", "Sspeed").family == "cnc"
    assert parse_address("memory", "level") == MemoryAddress("level")


def test_unknown_family_and_non_text():
    from smartline.core import DriverRegistry

    builtin = DriverRegistry(use_entry_points=False)
    with pytest.raises(AddressError, match=r"^unknown address family 'bacnet': no driver "
                                           r"family 'bacnet' is installed \(installed: cnc, "
                                           r"memory, modbus, opcua, s7, serial\)"):
        parse_address("bacnet", "x", registry=builtin)
    with pytest.raises(AddressError, match=r"^expected the address as text, found int 100; "
                                           r"quote it in YAML$"):
        parse_address("modbus", 100)  # type: ignore[arg-type]
