"""ACME Tally addresses: ``CH<n>[:TYPE]`` (a channel of the station) and ``ST`` (its status).

``CH<n>`` names channel *n* (1..999, no leading zeros); TYPE says how its value travels:
``f64`` (the default), ``i64``, ``u64``, ``bool`` or ``text`` (at most 64 bytes of UTF-8).
``ST`` is the station's status word, a read-only uint16. Letters may be given in any case;
the canonical spelling is ``CH12``, ``CH12:u64``, ``ST``, and
``parse_tally(a.canonical()) == a`` for every address.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from smartline.tags import AddressError, DataType, TypedAddress

__all__ = ["FAMILY_NAME", "MAX_CHANNEL", "STATUS", "TEXT_BYTES", "TYPES", "TallyAddress",
           "parse_tally"]

FAMILY_NAME = "acme"
MAX_CHANNEL = 999
TEXT_BYTES = 64
"""The longest text a channel holds, in bytes of UTF-8."""

TYPES: dict[str, DataType] = {
    "f64": DataType.FLOAT64,
    "i64": DataType.INT64,
    "u64": DataType.UINT64,
    "bool": DataType.BOOL,
    "text": DataType.STRING,
}
"""The grammar's type names and the storage types they stand for."""

_TYPE_NAMES = {dtype: name for name, dtype in TYPES.items()}
_TYPE_LIST = "f64, i64, u64, bool or text"
_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True, slots=True)
class TallyAddress(TypedAddress):
    """A channel (``channel`` 1..999, with the type it is read and written as) or, with
    ``channel`` None, the station status word. ``TypedAddress`` supplies ``elements``,
    ``is_text`` and ``text_rule`` from ``dtype`` and ``strlen``."""

    channel: int | None
    dtype: DataType = DataType.FLOAT64
    count: int | None = field(default=None, init=False, repr=False, compare=False)
    """Channels hold one value each: no arrays."""

    def __post_init__(self) -> None:
        if self.channel is None:
            if self.dtype is not DataType.UINT16:
                raise AddressError("ST, the status word, is a uint16")
            return
        if isinstance(self.channel, bool) or not isinstance(self.channel, int) \
                or not 1 <= self.channel <= MAX_CHANNEL:
            raise AddressError(f"channel {self.channel!r}: expected 1..{MAX_CHANNEL}")
        if self.dtype not in _TYPE_NAMES:
            raise AddressError(f"type {self.dtype}: expected one of {_TYPE_LIST}")

    @property
    def family(self) -> str:
        return FAMILY_NAME

    @property
    def strlen(self) -> int | None:
        """Bytes a text channel holds (``TypedAddress.text_rule`` reads it)."""
        return TEXT_BYTES if self.dtype is DataType.STRING else None

    @property
    def writable_area(self) -> bool:
        """Every channel may be written; the status word never."""
        return self.channel is not None

    @property
    def item(self) -> str:
        """The name of the value on the wire: ``CH12`` or ``ST``."""
        return "ST" if self.channel is None else f"CH{self.channel}"

    def canonical(self) -> str:
        if self.channel is None or self.dtype is DataType.FLOAT64:
            return self.item
        return f"{self.item}:{_TYPE_NAMES[self.dtype]}"

    def __str__(self) -> str:
        return self.canonical()


STATUS = TallyAddress(None, DataType.UINT16)
"""``ST``: the station status word."""


def parse_tally(text: str) -> TallyAddress:
    """Parse an ACME Tally address; :class:`~smartline.tags.AddressError` says what was
    expected, with ``column`` (0-based) at the offending part of ``text``."""
    if not isinstance(text, str):
        raise AddressError(f"expected the address as text, found {type(text).__name__}")
    body = text.strip()
    lead = len(text) - len(text.lstrip())
    if not body:
        raise AddressError(f"empty address: expected CH<n>[:TYPE] or ST, found {text!r}",
                           column=0)
    head, colon, tail = body.partition(":")
    if head.upper() == "ST":
        if colon:
            raise AddressError(f"ST takes no type (the status word is a uint16) in {text!r}",
                               column=lead + len(head))
        return STATUS
    if head[:2].upper() != "CH":
        raise AddressError(f"unknown item {head!r}: expected CH<n>[:TYPE] (a channel, CH1.."
                           f"CH{MAX_CHANNEL}) or ST (the status word) in {text!r}",
                           column=lead)
    digits = head[2:]
    col = lead + 2
    if not digits:
        raise AddressError(f"channel number missing after CH: expected CH1..CH{MAX_CHANNEL} "
                           f"in {text!r}", column=col)
    run = _DIGITS.match(digits)
    if run is None or run.end() != len(digits):
        bad = run.end() if run is not None else 0
        raise AddressError(f"unexpected {digits[bad:]!r} in the channel number: expected "
                           f"CH<n> with n 1..{MAX_CHANNEL} in {text!r}", column=col + bad)
    if digits[0] == "0" and len(digits) > 1:
        raise AddressError(f"channel {digits}: write it without leading zeros "
                           f"(CH{int(digits)}) in {text!r}", column=col)
    channel = int(digits)
    if not 1 <= channel <= MAX_CHANNEL:
        raise AddressError(f"channel {channel} out of range: expected 1..{MAX_CHANNEL} "
                           f"in {text!r}", column=col)
    dtype = DataType.FLOAT64
    if colon:
        col = lead + len(head) + 1
        name, extra, rest = tail.partition(":")
        if extra:
            raise AddressError(f"unexpected ':{rest}' after the type: expected CH<n>[:TYPE] "
                               f"in {text!r}", column=col + len(name))
        if not name:
            raise AddressError(f"empty type after ':': expected {_TYPE_LIST} in {text!r}",
                               column=col)
        found = TYPES.get(name.lower())
        if found is None:
            raise AddressError(f"unknown type {name!r}: expected {_TYPE_LIST} in {text!r}",
                               column=col)
        dtype = found
    return TallyAddress(channel, dtype)
