"""S7 addresses: STEP 7 absolute addresses as typed in TIA Portal (DESIGN §5, ADR 0004).

``DB1.DBX0.0``, ``DB1.DBB1``, ``DB1.DBW2``, ``DB1.DBD4``, ``M10.2``, ``MB1``, ``MW20``,
``MD24``, ``I0.0``/``E0.0``, ``IB``/``EB``, ``IW64``/``EW64``, ``ID``/``ED``, ``Q0.1``/``A0.1``,
``QB``/``AB``, ``QW80``/``AW80``, ``QD``/``AD``; an optional ``%`` in front (TIA's IEC
display) and an optional ``:TYPE``, ``:TYPE[COUNT]`` or ``:STRING[n]`` after.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, cast

from ._lex import strip_text
from ._types import AddressError, DataType, FieldError, parse_uint, quote

__all__ = ["S7_TEXT_ENCODING", "S7_TYPES", "S7Address", "parse_s7"]

S7Area = Literal["DB", "M", "I", "Q"]
Size = Literal["X", "B", "W", "D"]
AREA_SPACE = 65536  # byte offsets 0..65535 (PUT/GET DBs are at most 64 KiB)
STRING_MAX = 254
#: S7 CHAR/STRING hold one byte per character; Latin-1 maps every byte to one character.
S7_TEXT_ENCODING = "latin-1"

#: IEC type → (storage type, bytes per element; 0 for BOOL, which is a bit).
S7_TYPES: dict[str, tuple[DataType, int]] = {
    "BOOL": (DataType.BOOL, 0),
    "BYTE": (DataType.UINT8, 1), "USINT": (DataType.UINT8, 1), "SINT": (DataType.INT8, 1),
    "CHAR": (DataType.STRING, 1),
    "INT": (DataType.INT16, 2), "UINT": (DataType.UINT16, 2), "WORD": (DataType.UINT16, 2),
    "DINT": (DataType.INT32, 4), "UDINT": (DataType.UINT32, 4), "DWORD": (DataType.UINT32, 4),
    "REAL": (DataType.FLOAT32, 4),
    "LREAL": (DataType.FLOAT64, 8), "LINT": (DataType.INT64, 8), "ULINT": (DataType.UINT64, 8),
    "LWORD": (DataType.UINT64, 8),
    "STRING": (DataType.STRING, 0),
}
_DEFAULT_TYPE: dict[str, str] = {"X": "BOOL", "B": "BYTE", "W": "WORD", "D": "DWORD"}
_GERMAN = {"E": "I", "A": "Q"}
_AREA_NAMES = {"DB": "data block", "M": "memory (M)", "I": "inputs (I)", "Q": "outputs (Q)"}
_FORMS = ("DBn.DBXb.x, DBn.DBBb, DBn.DBWb, DBn.DBDb, Mb.x, MBb, MWb, MDb, Ib.x, IBb, IWb, "
          "IDb, Qb.x, QBb, QWb or QDb")
_TYPE_LIST = ("BOOL, BYTE, CHAR, SINT, USINT, INT, UINT, WORD, DINT, UDINT, DWORD, REAL, LREAL, "
              "LINT, ULINT, LWORD or STRING[n]")


@dataclass(frozen=True, slots=True)
class S7Address:
    """An S7 tag address; implements :class:`smartline.core.Address`.

    ``byte`` is the first byte; types wider than 4 bytes and ``STRING[n]`` name it with the
    B size letter (``DB1.DBB8:LREAL``). ``CHAR[n]`` is text of n characters (one image
    slot, no header); other arrays fill one slot per element. German mnemonics ``E``/``A``
    are stored as ``I``/``Q``.
    """

    area: S7Area
    db: int | None
    byte: int
    bit: int | None
    size: Size
    s7type: str
    strlen: int | None = None
    count: int | None = None

    def __post_init__(self) -> None:
        area = str(self.area).upper()
        object.__setattr__(self, "area", _GERMAN.get(area, area))
        object.__setattr__(self, "size", str(self.size).upper())
        object.__setattr__(self, "s7type", str(self.s7type).upper())
        problem = _check(self)
        if problem is not None:
            raise FieldError(*problem, self._loose())

    # -- the Address protocol --------------------------------------------------------------
    @property
    def family(self) -> str:
        return "s7"

    @property
    def dtype(self) -> DataType:
        """Storage type the value decodes to (CHAR and STRING: STRING)."""
        return S7_TYPES[self.s7type][0]

    @property
    def elements(self) -> int:
        """Image slots filled: the array length, else 1 (text is one slot)."""
        return 1 if self.is_text or self.count is None else self.count

    @property
    def is_text(self) -> bool:
        return self.s7type in ("CHAR", "STRING")

    def canonical(self) -> str:
        """Upper case, I/Q (not E/A), no ``%``; the type is left out when it is the size default."""
        if self.area == "DB":
            out = f"DB{self.db}.DB{self.size}{self.byte}"
        else:
            out = f"{self.area}{'' if self.size == 'X' else self.size}{self.byte}"
        if self.bit is not None:
            out += f".{self.bit}"
        if self.s7type == "STRING":
            return f"{out}:STRING[{self.strlen}]"
        if self.count is not None:
            return f"{out}:{self.s7type}[{self.count}]"
        if self.s7type != _DEFAULT_TYPE[self.size]:
            out += f":{self.s7type}"
        return out

    def __str__(self) -> str:
        return self.canonical()

    # -- geometry --------------------------------------------------------------------------
    @property
    def element_bytes(self) -> int:
        """Bytes per element (BOOL: 0, it is a bit; STRING[n]: n + 2)."""
        if self.s7type == "STRING":
            return (self.strlen or 0) + 2
        return S7_TYPES[self.s7type][1]

    @property
    def nbytes(self) -> int:
        """Bytes spanned from ``byte`` (a BOOL spans the byte that holds it)."""
        n = self.count if self.count is not None else 1
        if self.s7type == "BOOL":
            return (int(self.bit or 0) + n + 7) // 8
        return self.element_bytes * (1 if self.s7type == "STRING" else n)

    @property
    def end(self) -> int:
        """One past the last byte spanned."""
        return self.byte + self.nbytes

    @property
    def writable_area(self) -> bool:
        """DB, M and Q can be written; the process input image I is the PLC's, not ours."""
        return self.area != "I"

    @property
    def text_rule(self) -> tuple[int, str] | None:
        """STRING[n]: n bytes; CHAR[n]: n characters; latin-1 either way."""
        if self.s7type == "STRING":
            return self.strlen or 0, S7_TEXT_ENCODING
        if self.s7type == "CHAR":
            return self.count or 1, S7_TEXT_ENCODING
        return None

    def _loose(self) -> str:
        db = f"DB{self.db}." if self.db is not None else ""
        bit = f".{self.bit}" if self.bit is not None else ""
        extra = "".join(f"[{x}]" for x in (self.strlen, self.count) if x is not None)
        return f"{db}{self.area}{self.size}{self.byte}{bit}:{self.s7type}{extra}"


def _size_for(s7type: str) -> str:
    width = S7_TYPES[s7type][1]
    if s7type == "BOOL":
        return "X"
    return {2: "W", 4: "D"}.get(width, "B")


def _location(a: S7Address, size: str) -> str:
    if a.area == "DB":
        return f"DB{a.db}.DB{size}{a.byte}"
    return f"{a.area}{'' if size == 'X' else size}{a.byte}"


def _check(a: S7Address) -> tuple[str, str] | None:
    """The first thing wrong with a set of fields, and which part of the text it is about."""
    if a.area not in _AREA_NAMES:
        return f"unknown S7 area {a.area!r}: expected DB, M, I (E) or Q (A)", "area"
    if a.area == "DB":
        if a.db is None or not 1 <= a.db <= 65535:
            return f"data block number {a.db} out of range: expected 1..65535", "db"
    elif a.db is not None:
        return f"data block number {a.db} on area {a.area}: only DB addresses have one", "db"
    if a.size not in _DEFAULT_TYPE:
        return f"unknown size letter {a.size!r}: expected X, B, W or D", "size"
    if not 0 <= a.byte < AREA_SPACE:
        return f"byte offset {a.byte} out of range: expected 0..65535", "byte"
    if a.size == "X":
        if a.bit is None:
            return (f"{_location(a, 'X')} without a bit: expected a bit number 0..7 like "
                    f"{_location(a, 'X')}.0"), "bit"
        if not 0 <= a.bit <= 7:
            return f"bit index {a.bit} out of range: expected 0..7", "bit"
    elif a.bit is not None:
        return (f"bit .{a.bit} after a {a.size} (byte/word/double word) address: bits are "
                f"addressed as {_location(a, 'X')}.{a.bit}"), "bit"
    if a.s7type not in S7_TYPES:
        return f"unknown S7 type {a.s7type!r}: expected {_TYPE_LIST}", "type"
    need = _size_for(a.s7type)
    if need != a.size:
        width = S7_TYPES[a.s7type][1]
        if a.s7type == "BOOL":
            hint = f"BOOL is a bit: expected a bit address like {_location(a, 'X')}.0"
        elif need == "B":
            what = "text" if a.s7type == "STRING" else f"{width} bytes"
            hint = (f"{a.s7type} is {what}: name its first byte, "
                    f"{_location(a, 'B')}:{a.s7type}")
        else:
            hint = f"{a.s7type} is {width} bytes: expected {_location(a, need)}:{a.s7type}"
        return f"type {a.s7type} does not fit {_location(a, a.size)}: {hint}", "type"
    if a.s7type == "STRING":
        if a.strlen is None or not 1 <= a.strlen <= STRING_MAX:
            return f"STRING length {a.strlen} out of range: expected STRING[1..254]", "strlen"
        if a.count is not None:
            return (f"array [{a.count}] of STRING: expected a single STRING[n]; use one tag "
                    "per string"), "count"
    elif a.strlen is not None:
        return f"length [{a.strlen}] on {a.s7type}: only STRING takes a length", "strlen"
    if a.count is not None and a.count < 1:
        return f"array count {a.count}: expected 1 or more elements", "count"
    if a.end > AREA_SPACE:
        what = a.s7type + (f"[{a.count}]" if a.count is not None else "")
        return (f"{what} at byte {a.byte} spans {a.nbytes} bytes ({a.byte}..{a.end - 1}): "
                "past the end of the area (last byte 65535)"), ("count" if a.count else "byte")
    return None


# -- parser ---------------------------------------------------------------------------------

_FLAGS = re.ASCII | re.IGNORECASE
_DB_RE = re.compile(r"DB(?P<db>[0-9]+)\.DB(?P<size>[XBWD])(?P<byte>[0-9]+)(?:\.(?P<bit>[0-9]+))?",
                    _FLAGS)
_AREA_RE = re.compile(r"(?P<area>[MIQEA])(?P<size>[BWD]?)(?P<byte>[0-9]+)(?:\.(?P<bit>[0-9]+))?",
                      _FLAGS)
_TYPE_RE = re.compile(r"(?P<name>[A-Za-z]+)(?:\[(?P<a>[^\[\]]*)\])?(?:\[(?P<b>[^\[\]]*)\])?")


def parse_s7(text: str) -> S7Address:
    """Parse an S7 address; raises :class:`AddressError` naming what was found and expected."""
    s, lead = strip_text(text)
    if s.startswith("%"):
        s, lead = s[1:], lead + 1
    where = f"in {quote(text)}"
    loc, colon, type_tok = s.partition(":")
    if not loc:
        raise AddressError(f"empty S7 address: expected {_FORMS} {where}", column=lead)
    cols: dict[str, int] = {"area": 0}
    m = _DB_RE.fullmatch(loc) or _AREA_RE.fullmatch(loc)
    if m is None:
        raise AddressError(_diagnose(loc) + f" {where}", column=lead)
    groups = m.groupdict()
    area = "DB" if "db" in groups else str(groups["area"]).upper()
    db = parse_uint(groups["db"]) if "db" in groups else None
    if "db" in groups:
        cols["db"] = m.start("db")
    size = (groups["size"] or "X").upper()
    cols["size"] = m.start("size")
    byte = parse_uint(groups["byte"])
    cols["byte"] = m.start("byte")
    bit: int | None = None
    if groups["bit"] is not None:
        bit = parse_uint(groups["bit"])
        cols["bit"] = m.start("bit")
    elif size == "X" and area != "DB":
        raise AddressError(f"{quote(loc)} needs a bit ({loc}.0) or a size letter "
                           f"({area}B{groups['byte']}, {area}W{groups['byte']}, "
                           f"{area}D{groups['byte']}) {where}", column=lead + len(loc))
    s7type = _DEFAULT_TYPE[size]
    strlen: int | None = None
    count: int | None = None
    if colon:
        tcol = len(loc) + 1
        cols["type"] = tcol
        tm = _TYPE_RE.fullmatch(type_tok)
        if tm is None:
            raise AddressError(f"cannot read type {quote(type_tok)}: expected TYPE, "
                               f"TYPE[COUNT] or STRING[n] like REAL or INT[10] {where}",
                               column=lead + tcol)
        s7type = tm["name"].upper()
        if s7type not in S7_TYPES:
            raise AddressError(f"unknown S7 type {quote(tm['name'])}: expected {_TYPE_LIST} "
                               f"{where}", column=lead + tcol)
        first, second = tm["a"], tm["b"]
        if s7type == "STRING":
            strlen = STRING_MAX
            if first is not None:
                cols["strlen"] = tcol + tm.start("a")
                strlen = _bracket(first, "STRING length", "STRING[n] with n 1..254", text,
                                  lead + cols["strlen"])
            if second is not None:
                cols["count"] = tcol + tm.start("b")
                count = _bracket(second, "array count", "a single STRING[n]", text,
                                 lead + cols["count"])
        else:
            if second is not None:
                raise AddressError(f"second [...] after {s7type}[{first}]: expected "
                                   f"TYPE[COUNT] {where}", column=lead + tcol + tm.start("b"))
            if first is not None:
                cols["count"] = tcol + tm.start("a")
                count = _bracket(first, "array count", "TYPE[COUNT] with COUNT ≥ 1", text,
                                 lead + cols["count"])
    assert db is None or isinstance(db, int)
    assert byte is not None
    try:
        return S7Address(cast(S7Area, area), db, byte, bit, cast(Size, size), s7type,
                         strlen, count)
    except FieldError as exc:
        raise exc.at(text, cols, lead) from None


def _bracket(token: str, what: str, expected: str, text: str, column: int) -> int:
    value = parse_uint(token)
    if value is None:
        raise AddressError(f"{what} {quote(token)} is not a number: expected {expected} "
                           f"in {quote(text)}", column=column)
    return value


def _diagnose(loc: str) -> str:
    """Why ``loc`` is not an S7 location, as precisely as cheaply possible."""
    up = loc.upper()
    if up.startswith("DB"):
        return (f"cannot read {quote(loc)}: a data block address is DBn.DBXb.x, DBn.DBBb, "
                "DBn.DBWb or DBn.DBDb (e.g. DB1.DBW2)")
    if re.fullmatch(r"[MIQEA]X[0-9]+(\.[0-9]+)?", up):
        return (f"cannot read {quote(loc)}: bits of M, I and Q are written without X "
                f"(e.g. {up[0]}{up[2:]})")
    if up[:1] in ("M", "I", "Q", "E", "A"):
        return f"cannot read {quote(loc)}: expected {_FORMS}"
    return f"unknown S7 area in {quote(loc)}: expected {_FORMS}"
