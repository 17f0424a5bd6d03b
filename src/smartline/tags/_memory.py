"""Memory-driver addresses: ``NAME[:TYPE[COUNT]]`` (``level``, ``speeds:float64[8]``)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ._base import TypedAddress
from ._lex import parse_type_token, split_tokens, strip_text
from ._types import AddressError, DataType, FieldError, quote

__all__ = ["MEMORY_MAX_COUNT", "MEMORY_MAX_STRLEN", "MemoryAddress", "parse_memory"]

MEMORY_MAX_COUNT = 65536
MEMORY_MAX_STRLEN = 65535
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_TYPE_LIST = ("bool, int8, uint8, int16, uint16, int32, uint32, int64, uint64, float32, "
              "float64 or string<N>")


@dataclass(frozen=True, slots=True)
class MemoryAddress(TypedAddress):
    """A named cell of the in-memory test driver; implements :class:`smartline.core.Address`."""

    name: str
    dtype: DataType = DataType.FLOAT64
    count: int | None = None
    strlen: int | None = None  # string<N>: at most N bytes of UTF-8

    def __post_init__(self) -> None:
        object.__setattr__(self, "dtype", DataType(self.dtype))
        problem = _check(self)
        if problem is not None:
            raise FieldError(*problem, self._loose())

    @property
    def family(self) -> str:
        return "memory"

    def canonical(self) -> str:
        """The name alone for a float64 scalar; otherwise ``name:type[count]``."""
        if self.dtype is DataType.FLOAT64 and self.count is None:
            return self.name
        t = f"string<{self.strlen}>" if self.dtype is DataType.STRING else self.dtype.value
        return f"{self.name}:{t}" + (f"[{self.count}]" if self.count is not None else "")

    def __str__(self) -> str:
        return self.canonical()

    def _loose(self) -> str:
        extra = "".join(f"[{x}]" for x in (self.strlen, self.count) if x is not None)
        return f"{self.name}:{self.dtype.value}{extra}"


def _check(a: MemoryAddress) -> tuple[str, str] | None:
    if not isinstance(a.name, str) or not _NAME.fullmatch(a.name):
        return (f"memory name {a.name!r} is not an identifier: expected letters, digits and "
                "'_', not starting with a digit, optionally dotted (line.level)"), "name"
    if a.dtype is DataType.STRING:
        if a.strlen is None or not 1 <= a.strlen <= MEMORY_MAX_STRLEN:
            return (f"string length {a.strlen} out of range: expected string<N> with N "
                    f"1..{MEMORY_MAX_STRLEN} (bytes)"), "type"
        if a.count is not None:
            return (f"array [{a.count}] of strings: expected a single string<N>; use one "
                    "address per string"), "count"
    elif a.strlen is not None:
        return f"length <{a.strlen}> on {a.dtype}: only string takes a length", "type"
    if a.count is not None and not 1 <= a.count <= MEMORY_MAX_COUNT:
        return f"array count {a.count} out of range: expected 1..{MEMORY_MAX_COUNT}", "count"
    return None


def parse_memory(text: str) -> MemoryAddress:
    """Parse a memory address; raises :class:`AddressError` naming what was found and expected."""
    s, lead = strip_text(text)
    parts = split_tokens(s, ":")
    if len(parts) > 2:
        raise AddressError(f"unexpected {quote(parts[2][0])} after the type: expected "
                           f"NAME[:TYPE[COUNT]] in {quote(text)}", column=lead + parts[2][1])
    cols = {"name": 0}
    name = parts[0][0]
    if len(parts) == 1:
        dtype, count, strlen = DataType.FLOAT64, None, None
    else:
        tok, col = parts[1]
        if not tok:
            raise AddressError(f"empty type after ':': expected {_TYPE_LIST} in {quote(text)}",
                               column=lead + col)
        spec = parse_type_token(tok, lead + col, text, tuple(DataType), _TYPE_LIST)
        dtype, count, strlen = spec.dtype, spec.count, spec.strlen
        cols["type"] = col
        cols["count"] = spec.count_col - lead
    try:
        return MemoryAddress(name, dtype, count, strlen)
    except FieldError as exc:
        raise exc.at(text, cols, lead) from None
