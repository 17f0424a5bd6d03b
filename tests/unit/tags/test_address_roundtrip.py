"""Property tests: canonical() parses back to the same address, and parsing never crashes."""

import base64
import uuid

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from smartline.tags import (
    MODBUS_TYPES,
    S7_TYPES,
    AddressError,
    ByteOrder,
    DataType,
    MemoryAddress,
    ModbusAddress,
    OpcUaAddress,
    ProfileAddress,
    S7Address,
    parse_address,
)

orders = st.sampled_from(list(ByteOrder))
counts = st.none() | st.integers(1, 300)


@st.composite
def modbus_addresses(draw: st.DrawFn) -> ModbusAddress:
    area = draw(st.sampled_from(["co", "di", "ir", "hr"]))
    offset = draw(st.integers(0, 65535))
    if area in ("co", "di"):
        fields = dict(dtype=DataType.BOOL, count=draw(counts))
    else:
        kind = draw(st.sampled_from(["bit", "number", "string"]))
        if kind == "bit":
            fields = dict(dtype=DataType.BOOL, bit=draw(st.integers(0, 15)))
        elif kind == "string":
            fields = dict(dtype=DataType.STRING, strlen=draw(st.integers(1, 300)),
                          order=draw(st.sampled_from([ByteOrder.ABCD, ByteOrder.BADC])))
        else:
            dtype = draw(st.sampled_from([t for t in MODBUS_TYPES
                                          if t not in (DataType.BOOL, DataType.STRING)]))
            order = draw(orders)
            assume(not (dtype.nbytes == 2 and order is ByteOrder.CDAB))
            fields = dict(dtype=dtype, count=draw(counts), order=order)
    try:
        return ModbusAddress(area, offset, **fields)  # type: ignore[arg-type]
    except AddressError:
        assume(False)  # past the end of the address space
        raise


@st.composite
def s7_addresses(draw: st.DrawFn) -> S7Address:
    area = draw(st.sampled_from(["DB", "M", "I", "Q"]))
    db = draw(st.integers(1, 65535)) if area == "DB" else None
    s7type = draw(st.sampled_from(sorted(S7_TYPES)))
    width = S7_TYPES[s7type][1]
    size = "X" if s7type == "BOOL" else {2: "W", 4: "D"}.get(width, "B")
    bit = draw(st.integers(0, 7)) if size == "X" else None
    strlen = draw(st.integers(1, 254)) if s7type == "STRING" else None
    count = None if s7type == "STRING" else draw(counts)
    try:
        return S7Address(area, db, draw(st.integers(0, 65535)), bit, size, s7type,  # type: ignore[arg-type]
                         strlen, count)
    except AddressError:
        assume(False)
        raise


identifier_text = st.text(
    st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=40)


@st.composite
def opcua_addresses(draw: st.DrawFn) -> OpcUaAddress:
    use_uri = draw(st.booleans())
    ns = None if use_uri else draw(st.integers(0, 65535))
    uri = draw(identifier_text) if use_uri else None
    kind = draw(st.sampled_from(["i", "s", "g", "b"]))
    if kind == "i":
        ident = str(draw(st.integers(1 if ns == 0 else 0, 2**32 - 1)))
    elif kind == "s":
        ident = draw(identifier_text)
    elif kind == "g":
        ident = str(uuid.UUID(int=draw(st.integers(1, 2**128 - 1))))
        if draw(st.booleans()):
            ident = "{" + ident.upper() + "}"
    else:
        ident = base64.b64encode(draw(st.binary(min_size=1, max_size=64))).decode()
    return OpcUaAddress(ns, uri, kind, ident)  # type: ignore[arg-type]


segment = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
dotted = st.lists(segment, min_size=1, max_size=3).map(".".join)


@st.composite
def memory_addresses(draw: st.DrawFn) -> MemoryAddress:
    dtype = draw(st.sampled_from(list(DataType)))
    if dtype is DataType.STRING:
        return MemoryAddress(draw(dotted), dtype, None, draw(st.integers(1, 65535)))
    return MemoryAddress(draw(dotted), dtype, draw(counts))


profile_addresses = st.from_regex(
    r"[A-Za-z_][A-Za-z0-9_-]{0,10}(\.[A-Za-z_][A-Za-z0-9_-]{0,10}){0,3}", fullmatch=True
).flatmap(lambda n: st.sampled_from(["serial", "cnc"]).map(lambda f: ProfileAddress(n, f)))

addresses = (modbus_addresses() | s7_addresses() | opcua_addresses() | memory_addresses()
             | profile_addresses)


@given(addresses)
@settings(max_examples=500)
def test_canonical_parses_back_to_the_same_address(a):
    text = a.canonical()
    b = parse_address(a.family, text)
    assert b == a
    assert b.canonical() == text  # idempotent
    assert b.elements == a.elements
    assert b.is_text == a.is_text


near_misses = {
    "modbus": st.from_regex(
        r"\s?(co|di|ir|hr|HR|xx)?:?(0x)?[0-9]{0,6}(\.[0-9]{0,3})?"
        r"(:(bool|int16|uint16|int32|float32|float64|uint64|string<[0-9]{0,4}>|int8|foo)"
        r"(\[[0-9x]{0,6}\])?)?(:(abcd|cdab|badc|dcba|abdc))?(:.)?\s?", fullmatch=True),
    "s7": st.from_regex(
        r"%?(DB[0-9]{0,6}\.DB[XBWDZ]|[MIQEAT][BWDX]?)[0-9]{0,6}(\.[0-9]{0,2})?"
        r"(:(BOOL|INT|REAL|LREAL|STRING|CHAR|WORD|FOO)(\[[0-9]{0,4}\]){0,2})?", fullmatch=True),
    "opcua": st.from_regex(
        r"(svr=1;)?(ns=[0-9]{0,6};|nsu=[a-z:%0-9;]{0,8};)?([isgbx]=)?[-A-Za-z0-9{}+/=%;]{0,40}",
        fullmatch=True),
    "memory": st.from_regex(r"[A-Za-z0-9_.-]{0,8}(:[a-z0-9<>\[\]]{0,12}){0,2}", fullmatch=True),
    "serial": st.from_regex(r"[A-Za-z0-9_.\- ]{0,12}", fullmatch=True),
    "cnc": st.from_regex(r"[A-Za-z0-9_.\- ]{0,12}", fullmatch=True),
}


def _parse_or_address_error(family, text):
    try:
        a = parse_address(family, text)
    except AddressError:
        return
    canonical = a.canonical()
    assert parse_address(family, canonical) == a
    assert parse_address(family, canonical).canonical() == canonical


FAMILIES = tuple(near_misses)  # every built-in family's grammar


def test_every_builtin_family_is_fuzzed():
    from smartline.core import BUILTIN_FAMILIES

    assert set(FAMILIES) == set(BUILTIN_FAMILIES)


@given(st.sampled_from(FAMILIES), st.text(max_size=60))
@settings(max_examples=1000)
def test_arbitrary_text_only_ever_raises_address_error(family, text):
    _parse_or_address_error(family, text)


@given(st.sampled_from(FAMILIES).flatmap(
    lambda f: st.tuples(st.just(f), near_misses[f])))
@settings(max_examples=400)
def test_near_miss_text_only_ever_raises_address_error(pair):
    _parse_or_address_error(*pair)
