"""Messages that say what was found and what was expected, for every validation error."""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

__all__ = ["describe", "did_you_mean", "one_of", "pydantic_message"]

_MAX_TEXT = 60


def describe(value: object) -> str:
    """A short, user-facing description of a value read from YAML: ``string '10'``."""
    if value is None:
        return "null (nothing)"
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"number {_number(value)}"
    if isinstance(value, str):
        text = value if len(value) <= _MAX_TEXT else value[: _MAX_TEXT - 3] + "..."
        return f"string {text!r}"
    if isinstance(value, list):
        return f"a list of {len(value)} item{'s' if len(value) != 1 else ''}"
    if isinstance(value, dict):
        return "a mapping"
    return f"{type(value).__name__} {str(value)[:_MAX_TEXT]!r}"


def _number(value: float) -> str:
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    return repr(value)


def _bound(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def one_of(choices: Iterable[str]) -> str:
    """``a, b or c``."""
    items = list(choices)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " or " + items[-1]


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'url'?)`` when a close match exists, else an empty string."""
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


_TYPE_NAMES: Mapping[str, str] = MappingProxyType({
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
    "float_type": "a number", "float_parsing": "a number",
    "finite_number": "a finite number",
    "string_type": "a string", "string_unicode": "a string",
    "bool_type": "true or false", "bool_parsing": "true or false",
    "list_type": "a list", "tuple_type": "a list", "set_type": "a list",
    "iterable_type": "a list",
    "dict_type": "a mapping", "model_type": "a mapping", "model_attributes_type": "a mapping",
    "dataclass_type": "a mapping",
})

_BOUNDS: Mapping[str, tuple[str, str]] = MappingProxyType({
    "greater_than": ("gt", "greater than"),
    "greater_than_equal": ("ge", "at least"),
    "less_than": ("lt", "less than"),
    "less_than_equal": ("le", "at most"),
})


def pydantic_message(error: Mapping[str, Any], allowed_keys: Iterable[str] | None = None) -> str:
    """Turn one pydantic error (from ``ValidationError.errors()``) into our message style."""
    kind: str = error["type"]
    loc: tuple[Any, ...] = tuple(error.get("loc", ()))
    value = error.get("input")
    ctx: Mapping[str, Any] = error.get("ctx") or {}
    if loc and loc[-1] == "[key]":
        expected = _TYPE_NAMES.get(kind, "a name")
        hint = ""
        if expected == "a string" and isinstance(value, bool):
            hint = " (YAML reads yes/no/on/off/true/false as booleans): quote the name"
        elif expected == "a string" and (isinstance(value, (int, float)) or value is None):
            hint = ": quote the name"
        return f"a key here must be {expected}, found {describe(value)}{hint}"
    if kind == "missing":
        return f"missing required key {loc[-1]!r}" if loc else "missing value"
    if kind == "extra_forbidden":
        key = str(loc[-1]) if loc else "?"
        if allowed_keys is None:
            return f"unknown key {key!r}"
        allowed = list(allowed_keys)
        return (f"unknown key {key!r}{did_you_mean(key, allowed)}; expected one of: "
                f"{', '.join(allowed)}")
    if kind in _TYPE_NAMES:
        return f"expected {_TYPE_NAMES[kind]}, found {describe(value)}"
    if kind == "literal_error":
        expected = ctx.get("expected", "one of the allowed values")
        return f"expected {expected}, found {describe(value)}"
    if kind in _BOUNDS:
        key, words = _BOUNDS[kind]
        return f"must be {words} {_bound(ctx.get(key))}, found {describe(value)}"
    if kind in ("too_short", "too_long"):
        return (f"expected {ctx.get('min_length', ctx.get('max_length'))} items, found "
                f"{describe(value)}")
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "value_error":
        return str(ctx.get("error", error.get("msg", "invalid value")))
    if kind == "assertion_error":
        return str(ctx.get("error", error.get("msg", "invalid value")))
    # our own PydanticCustomError messages are already in our style
    return str(error.get("msg", "invalid value"))
