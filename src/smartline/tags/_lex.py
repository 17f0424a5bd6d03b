"""Lexing helpers shared by the address grammars: tokens with columns, ``TYPE[COUNT]``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ._types import AddressError, DataType, parse_uint, quote

__all__ = ["TYPE_TOKEN", "TypeSpec", "parse_type_token", "split_tokens", "strip_text"]

TYPE_TOKEN = re.compile(
    r"(?P<name>[A-Za-z][A-Za-z0-9]*)(?:<(?P<len>[^<>]*)>)?(?:\[(?P<count>[^\[\]]*)\])?")


def split_tokens(text: str, sep: str) -> list[tuple[str, int]]:
    """``text`` split at ``sep``, each piece with its column."""
    out: list[tuple[str, int]] = []
    col = 0
    for piece in text.split(sep):
        out.append((piece, col))
        col += len(piece) + len(sep)
    return out


def strip_text(text: str) -> tuple[str, int]:
    """``text`` without surrounding whitespace, and how many characters were cut in front."""
    stripped = text.lstrip()
    lead = len(text) - len(stripped)
    return stripped.rstrip(), lead


@dataclass(slots=True)
class TypeSpec:
    """A parsed ``TYPE[COUNT]`` token."""

    dtype: DataType
    strlen: int | None
    count: int | None
    count_col: int


def parse_type_token(token: str, col: int, text: str, allowed: tuple[DataType, ...],
                     type_list: str) -> TypeSpec:
    """Parse ``TYPE``, ``TYPE[COUNT]``, ``string<N>`` (shared by the Modbus and memory grammars)."""
    m = TYPE_TOKEN.fullmatch(token)
    if m is None:
        raise AddressError(f"cannot read type {quote(token)}: expected TYPE or TYPE[COUNT] "
                           f"like float32 or float32[8] in {quote(text)}", column=col)
    name = m["name"].lower()
    try:
        dtype = DataType(name)
    except ValueError:
        dtype = None
    if dtype is None:
        raise AddressError(f"unknown type {quote(m['name'])}: expected {type_list} "
                           f"in {quote(text)}", column=col)
    if dtype not in allowed:
        raise AddressError(f"type {quote(m['name'])} is not available here: expected "
                           f"{type_list} in {quote(text)}", column=col)
    strlen: int | None = None
    if m["len"] is not None:
        if dtype is not DataType.STRING:
            raise AddressError(f"length <{m['len']}> on {dtype}: only string takes a length "
                               f"in {quote(text)}", column=col + m.start("len") - 1)
        strlen = parse_uint(m["len"])
        if strlen is None:
            raise AddressError(f"string length {quote(m['len'])} is not a number: expected "
                               f"string<N> with N ≥ 1 (bytes) in {quote(text)}",
                               column=col + m.start("len"))
    elif dtype is DataType.STRING:
        raise AddressError(f"string without a length: expected string<N> (N bytes) "
                           f"in {quote(text)}", column=col + m.end("name"))
    count: int | None = None
    count_col = col + (m.start("count") if m["count"] is not None else 0)
    if m["count"] is not None:
        count = parse_uint(m["count"])
        if count is None:
            raise AddressError(f"array count {quote(m['count'])} is not a number: expected "
                               f"TYPE[COUNT] with COUNT ≥ 1 in {quote(text)}", column=count_col)
    return TypeSpec(dtype, strlen, count, count_col)
