"""Parsers for URL query parameters (``?unit=3&baudrate=9600``), for families to declare.

A parser turns the parameter's text into its value, or raises ``ValueError`` saying what it
expects (the line loader adds the file, key path and column).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from types import MappingProxyType

__all__ = [
    "SERIAL_PARAMS",
    "ParamParser",
    "param_flag",
    "param_int",
    "param_int_of",
    "param_text_of",
]

ParamParser = Callable[[str], int | float | str | bool]
"""Turns a query parameter's text into its value; raises ``ValueError`` saying what it expects."""


def _one_of(choices: list[str]) -> str:
    if len(choices) == 1:
        return choices[0]
    return ", ".join(choices[:-1]) + " or " + choices[-1]


def param_int(low: int, high: int) -> ParamParser:
    """An integer ``low..high`` written in decimal digits."""
    def parse(text: str) -> int:
        if not re.fullmatch(r"[0-9]+", text) or not low <= int(text) <= high:
            raise ValueError(f"expected an integer {low}..{high}")
        return int(text)
    return parse


def param_int_of(*choices: int) -> ParamParser:
    """One of the given integers."""
    def parse(text: str) -> int:
        if text not in {str(c) for c in choices}:
            raise ValueError(f"expected {_one_of([str(c) for c in choices])}")
        return int(text)
    return parse


def param_text_of(*choices: str) -> ParamParser:
    """One of the given words (case matters)."""
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError(f"expected {_one_of(list(choices))}")
        return text
    return parse


def param_flag(text: str) -> bool:
    """1/0, true/false, yes/no."""
    if text.lower() in ("1", "true", "yes"):
        return True
    if text.lower() in ("0", "false", "no"):
        return False
    raise ValueError("expected 1 or 0 (true/false, yes/no)")


SERIAL_PARAMS: Mapping[str, ParamParser] = MappingProxyType({
    "baudrate": param_int(50, 4_000_000),
    "parity": param_text_of("N", "E", "O"),
    "stopbits": param_int_of(1, 2),
    "bytesize": param_int_of(7, 8),
})
"""The serial line settings every serial scheme takes."""
