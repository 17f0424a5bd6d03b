"""Modbus addresses: ``AREA:OFFSET[.BIT][:TYPE[COUNT]][:ORDER]`` (DESIGN §5, ADR 0004)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar, Literal, cast

from ._base import TypedAddress
from ._lex import TYPE_TOKEN, TypeSpec, parse_type_token, split_tokens, strip_text
from ._types import AddressError, ByteOrder, DataType, FieldError, parse_uint, quote

__all__ = ["MODBUS_TEXT_ENCODING", "MODBUS_TYPES", "ModbusAddress", "parse_modbus"]

Area = Literal["co", "di", "ir", "hr"]
_AREAS: dict[str, str] = {"co": "coil", "di": "discrete input", "ir": "input register",
                          "hr": "holding register"}
ADDRESS_SPACE = 65536  # 16-bit wire addresses 0..65535
#: string<N> text is ASCII: anything else read from a device is reported as undecodable.
MODBUS_TEXT_ENCODING = "ascii"

#: Types the Modbus grammar accepts (int8/uint8 do not exist on a 16-bit register).
MODBUS_TYPES: tuple[DataType, ...] = (
    DataType.BOOL, DataType.INT16, DataType.UINT16, DataType.INT32, DataType.UINT32,
    DataType.INT64, DataType.UINT64, DataType.FLOAT32, DataType.FLOAT64, DataType.STRING,
)
_TYPE_LIST = "bool, int16, uint16, int32, uint32, int64, uint64, float32, float64 or string<N>"
_GRAMMAR = "AREA:OFFSET[.BIT][:TYPE[COUNT]][:ORDER]"

Part = Literal["area", "offset", "bit", "type", "count", "order"]


@dataclass(frozen=True, slots=True)
class ModbusAddress(TypedAddress):
    """A Modbus tag address; implements :class:`smartline.core.Address`.

    Built by :func:`parse_modbus` or directly (checked either way). ``order`` ``dcba`` on a
    16-bit type is stored as ``badc``: on one register both mean "swap the two bytes".
    """

    text_encoding: ClassVar[str] = MODBUS_TEXT_ENCODING

    area: Area
    offset: int
    dtype: DataType
    bit: int | None = None
    count: int | None = None
    order: ByteOrder = ByteOrder.ABCD
    strlen: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "dtype", DataType(self.dtype))
        order = ByteOrder(self.order)
        if order is ByteOrder.DCBA and _width(self.dtype) == 1:
            order = ByteOrder.BADC
        object.__setattr__(self, "order", order)
        problem = _check(self)
        if problem is not None:
            raise FieldError(*problem, self._loose())

    # -- the Address protocol --------------------------------------------------------------
    @property
    def family(self) -> str:
        return "modbus"

    def canonical(self) -> str:
        """The one spelling of this address: lower case, decimal, defaults left out.

        Registers always show their type (``hr:100:uint16``); coils, discrete inputs and
        bits show ``bool`` only for arrays; the order is shown unless it is ``abcd``.
        """
        out = f"{self.area}:{self.offset}"
        if self.bit is not None:
            return f"{out}.{self.bit}"
        if self.is_bit_area:
            return out if self.count is None else f"{out}:bool[{self.count}]"
        out += f":{_type_text(self.dtype, self.strlen)}"
        if self.count is not None:
            out += f"[{self.count}]"
        if self.order is not ByteOrder.ABCD:
            out += f":{self.order}"
        return out

    def __str__(self) -> str:
        return self.canonical()

    # -- geometry --------------------------------------------------------------------------
    @property
    def is_bit_area(self) -> bool:
        """Coils and discrete inputs: addressed bit by bit."""
        return self.area in ("co", "di")

    @property
    def writable_area(self) -> bool:
        """Coils and holding registers can be written; inputs cannot."""
        return self.area in ("co", "hr")

    @property
    def registers_per_element(self) -> int:
        """Registers one element occupies (strings: ceil(N/2)); 0 for coils/discrete inputs."""
        if self.is_bit_area:
            return 0
        if self.dtype is DataType.STRING:
            return ((self.strlen or 0) + 1) // 2
        return _width(self.dtype)

    @property
    def registers(self) -> int:
        """Registers spanned (0 for coils and discrete inputs)."""
        return self.registers_per_element * self.elements

    @property
    def bits(self) -> int:
        """Bits spanned in a coil/discrete-input table (0 for register areas)."""
        return self.elements if self.is_bit_area else 0

    @property
    def end(self) -> int:
        """One past the last wire address spanned."""
        return self.offset + (self.bits if self.is_bit_area else self.registers)

    def _loose(self) -> str:
        """A rendering that never fails, for messages about invalid fields."""
        out = f"{self.area}:{self.offset}"
        if self.bit is not None:
            out += f".{self.bit}"
        out += f":{self.dtype.value}"
        if self.strlen is not None:
            out += f"<{self.strlen}>"
        if self.count is not None:
            out += f"[{self.count}]"
        return out + f":{self.order.value}"


def _width(dtype: DataType) -> int:
    """Registers per value for numeric types (BOOL and STRING: 1, unused)."""
    n = dtype.nbytes
    return 1 if n is None or n < 2 else n // 2


def _type_text(dtype: DataType, strlen: int | None) -> str:
    return f"string<{strlen}>" if dtype is DataType.STRING else dtype.value


def _check(a: ModbusAddress) -> tuple[str, Part] | None:
    """The first thing wrong with a set of fields, and which part of the text it is about."""
    if a.area not in _AREAS:
        return f"unknown Modbus area {a.area!r}: expected co, di, ir or hr", "area"
    if not 0 <= a.offset < ADDRESS_SPACE:
        return f"offset {a.offset} out of range: expected 0..65535", "offset"
    if a.dtype not in MODBUS_TYPES:
        return f"type {a.dtype} is not a Modbus type: expected {_TYPE_LIST}", "type"
    if a.is_bit_area:
        name = _AREAS[a.area]
        if a.bit is not None:
            return (f"bit index .{a.bit} on a {name}: {a.area} addresses single bits "
                    f"already; expected '{a.area}:{a.offset}'"), "bit"
        if a.dtype is not DataType.BOOL:
            return (f"type {_type_text(a.dtype, a.strlen)} on a {name}: "
                    f"{a.area} holds single bits; expected bool"), "type"
        if a.order is not ByteOrder.ABCD:
            return (f"byte order {a.order} on a {name}: orders apply to multi-byte "
                    "register values only"), "order"
    elif a.bit is not None:
        if not 0 <= a.bit <= 15:
            return f"bit index {a.bit} out of range: expected 0..15", "bit"
        if a.dtype is not DataType.BOOL:
            return (f"type {_type_text(a.dtype, a.strlen)} on bit {a.bit} of a register: "
                    "a bit is bool; expected no type or bool"), "type"
        if a.count is not None:
            return (f"array [{a.count}] on bit {a.bit} of a register: bits in registers "
                    "are single values; expected no count"), "count"
        if a.order is not ByteOrder.ABCD:
            return (f"byte order {a.order} on bit {a.bit} of a register: bits count from "
                    "the least significant bit of the register value; expected no order"), "order"
    elif a.dtype is DataType.BOOL:
        return (f"bool on a whole {_AREAS[a.area]}: a bool in a register needs a bit index; "
                f"expected '{a.area}:{a.offset}.0' for bit 0, or uint16 for the whole "
                "register"), "type"
    if a.dtype is DataType.STRING:
        if a.strlen is None or a.strlen < 1:
            return (f"string length {a.strlen}: expected string<N> with N ≥ 1 "
                    "(bytes)"), "type"
        if a.count is not None:
            return (f"array [{a.count}] of strings: expected a single string<N>; "
                    "use one tag per string"), "count"
        if a.order.swaps_words:
            return (f"byte order {a.order} on a string: strings accept abcd (high byte first) "
                    "or badc (low byte first)"), "order"
    elif a.strlen is not None:
        return f"length <{a.strlen}> on {a.dtype}: only string takes a length", "type"
    if a.count is not None and a.count < 1:
        return f"array count {a.count}: expected 1 or more elements", "count"
    if a.order.swaps_words and _width(a.dtype) == 1 and a.dtype is not DataType.STRING:
        return (f"byte order {a.order} on 16-bit {a.dtype}: a word swap needs a 32- or "
                "64-bit type; 16-bit values accept abcd or badc (byte swap)"), "order"
    if a.end > ADDRESS_SPACE:
        unit = "bits" if a.is_bit_area else "registers"
        span = a.end - a.offset
        return (f"{_describe(a)} at {a.area}:{a.offset} spans {span} {unit} "
                f"({a.offset}..{a.end - 1}): past the end of the 16-bit address space "
                f"(last {unit[:-1]} 65535)"), ("count" if a.count is not None else "offset")
    return None


def _describe(a: ModbusAddress) -> str:
    t = _type_text(a.dtype, a.strlen)
    return f"{t}[{a.count}]" if a.count is not None else t


# -- parser ---------------------------------------------------------------------------------

def parse_modbus(text: str) -> ModbusAddress:
    """Parse a Modbus address; raises :class:`AddressError` naming what was found and expected."""
    s, lead = strip_text(text)
    if not s:
        raise AddressError(f"empty Modbus address: expected {_GRAMMAR} like 'hr:100'",
                           column=lead)
    parts = split_tokens(s, ":")
    cols: dict[str, int] = {}
    area_tok, cols["area"] = parts[0]
    area = area_tok.lower()
    if area not in _AREAS:
        raise AddressError(f"unknown Modbus area {quote(area_tok)}: expected co, di, ir or hr "
                           f"({_GRAMMAR}) in {quote(text)}", column=lead)
    if len(parts) < 2 or not parts[1][0]:
        col = parts[1][1] if len(parts) > 1 else len(s)
        raise AddressError(f"missing offset after {quote(area_tok + ':')}: expected a "
                           f"number 0..65535 like '{area}:100' in {quote(text)}",
                           column=lead + col)
    off_tok, cols["offset"] = parts[1]
    off_text, dot, bit_text = off_tok.partition(".")
    offset = parse_uint(off_text, allow_hex=True)
    if offset is None:
        raise AddressError(f"offset {quote(off_text)} is not a number: expected 0..65535 "
                           f"(decimal or 0x hex) in {quote(text)}", column=lead + cols["offset"])
    bit: int | None = None
    if dot:
        cols["bit"] = cols["offset"] + len(off_text) + 1
        bit = parse_uint(bit_text)
        if bit is None:
            raise AddressError(f"bit index {quote(bit_text)} is not a number: expected 0..15 "
                               f"in {quote(text)}", column=lead + cols["bit"])
    spec: TypeSpec | None = None
    order: ByteOrder | None = None
    for tok, col in parts[2:]:
        low = tok.lower()
        where = f"in {quote(text)}"
        if low in ByteOrder._value2member_map_:
            if order is not None:
                raise AddressError(f"second byte order {quote(tok)}: expected one order at the "
                                   f"end ({_GRAMMAR}) {where}", column=lead + col)
            order = ByteOrder(low)
            cols["order"] = col
        elif order is not None:
            if _is_type_name(tok) and spec is None:
                raise AddressError(f"type {quote(tok)} after the byte order: the type comes "
                                   f"first ({_GRAMMAR}) {where}", column=lead + col)
            raise AddressError(f"unexpected {quote(tok)} after the byte order: expected "
                               f"{_GRAMMAR} {where}", column=lead + col)
        elif spec is not None or _ORDER_LIKE.fullmatch(tok):
            if _ORDER_LIKE.fullmatch(tok) or not _is_type_name(tok):
                raise AddressError(f"unknown byte order {quote(tok)}: expected abcd, cdab, badc "
                                   f"or dcba {where}", column=lead + col)
            raise AddressError(f"second type {quote(tok)}: expected {_GRAMMAR} {where}",
                               column=lead + col)
        elif not tok:
            raise AddressError(f"empty type after ':': expected {_TYPE_LIST} {where}",
                               column=lead + col)
        else:
            spec = parse_type_token(tok, lead + col, text, MODBUS_TYPES, _TYPE_LIST)
            cols["type"] = col
            cols["count"] = spec.count_col - lead
    if spec is None:
        dtype = DataType.BOOL if area in ("co", "di") or bit is not None else DataType.UINT16
        spec = TypeSpec(dtype, None, None, 0)
    try:
        return ModbusAddress(cast(Area, area), offset, spec.dtype, bit, spec.count,
                             order or ByteOrder.ABCD, spec.strlen)
    except FieldError as exc:
        raise exc.at(text, cols, lead) from None


_ORDER_LIKE = re.compile(r"[abcdABCD]{4}")


def _is_type_name(token: str) -> bool:
    m = TYPE_TOKEN.fullmatch(token)
    return m is not None and m["name"].lower() in DataType._value2member_map_
