"""Identity from scanned codes: GS1 element strings, AIM identifiers, identifier handles.

A barcode scanner sends one line per decode; this module turns that line into named fields
(GTIN, batch, serial, dates …) that a scanner profile exposes as points, so a part or batch
can be followed into recipes and records. Three kinds of content are understood:

* **GS1 element strings** (GS1-128, GS1 DataMatrix, GS1 QR, GS1 DataBar, GS1 DotCode), in the
  transmitted form (``]C1`` + AIs, GS 0x1D separators), the human-readable form with
  parentheses ``(01)09501101530003(17)261231`` and the GS1 Digital Link URI form
  ``https://id.example.com/01/09501101530003/10/AB12``;
* **AIM symbology identifiers** (ISO/IEC 15424: ``]`` + code character + modifier);
* **identifier handles** ``prefix/suffix`` (Handle System; China's industrial-internet
  identifiers ``88.<node>.<enterprise>/<suffix>``), bare or inside a URL.

The AI table is data: :data:`APPLICATION_IDENTIFIERS`, built once from the text table
``_AI_TABLE`` (transcribed from the GS1 Barcode Syntax Dictionary) into a read-only mapping.
Pure Python, standard library only. Reference: ``docs/reference/identity.md``.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import Final, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

__all__ = [
    "APPLICATION_IDENTIFIERS",
    "GS",
    "SCAN_FIELDS",
    "AiComponent",
    "AiSpec",
    "AimId",
    "GS1Data",
    "GS1Element",
    "GS1Value",
    "Handle",
    "gs1_check_digit",
    "is_scan_field",
    "parse_aim",
    "parse_gs1",
    "parse_handle",
    "scan_fields",
]

GS: Final = "\x1d"
"""Group separator: how a scanner transmits an inner FNC1 (a field separator)."""

SCAN_FIELDS: Final[tuple[str, ...]] = (
    "symbology", "symbology_name", "data", "gtin", "sscc", "batch", "serial",
    "prod_date", "pack_date", "best_before", "expiry", "count", "order", "handle",
    "handle_prefix", "handle_suffix", "net_weight_kg",
)
"""The named fields :func:`scan_fields` can return (besides ``ai.NN`` for every element)."""

GS1Value = str | int | Decimal | dt.date
"""The typed value of one element: text, a count, a measure, a date (a datetime for AI 7003)."""

# ---------------------------------------------------------------------------------------------
# The AI table. One line per AI or AI range: ``AI[-AI] [*] COMPONENT... # TITLE``.
# ``*`` = predefined length (its first two digits are in GS1 GenSpecs figure 7.8.5-1): no FNC1
# needed after it. A component is ``N``/``X``/``Y``/``Z`` (digits, GS1 set 82, set 39, set 64)
# with a length ``6`` or ``..20`` (up to 20), in ``[...]`` when it may be left out, then
# ``,checks``: ``csum`` (GS1 check digit), ``yymmd0`` (date, day 00 allowed), ``yymmdd``,
# ``hhmm``. Other checks of the dictionary (country codes, IBAN …) are not applied.
# Source: gs1/gs1-syntax-dictionary ``gs1-syntax-dictionary.txt`` (Apache-2.0), which follows
# the GS1 General Specifications §3.2 table of AIs; req/ex/dlpkey attributes left out.
_AI_TABLE: Final = """
00        * N18,csum          # SSCC
01        * N14,csum          # GTIN
02        * N14,csum          # CONTENT
10          X..20             # BATCH/LOT
11        * N6,yymmd0         # PROD DATE
12        * N6,yymmd0         # DUE DATE
13        * N6,yymmd0         # PACK DATE
15        * N6,yymmd0         # BEST BEFORE or BEST BY
16        * N6,yymmd0         # SELL BY
17        * N6,yymmd0         # USE BY or EXPIRY
20        * N2                # VARIANT
21          X..20             # SERIAL
22          X..20             # CPV
235         X..28             # TPX
240         X..30             # ADDITIONAL ID
241         X..30             # CUST. PART No.
242         N..6              # MTO VARIANT
243         X..20             # PCN
250         X..30             # SECONDARY SERIAL
251         X..30             # REF. TO SOURCE
253         N13,csum [X..17]  # GDTI
254         X..20             # GLN EXTENSION COMPONENT
255         N13,csum [N..12]  # GCN
30          N..8              # VAR. COUNT
3100-3105 * N6                # NET WEIGHT (kg)
3110-3115 * N6                # LENGTH (m)
3120-3125 * N6                # WIDTH (m)
3130-3135 * N6                # HEIGHT (m)
3140-3145 * N6                # AREA (m²)
3150-3155 * N6                # NET VOLUME (l)
3160-3165 * N6                # NET VOLUME (m³)
3200-3205 * N6                # NET WEIGHT (lb)
3210-3215 * N6                # LENGTH (in)
3220-3225 * N6                # LENGTH (ft)
3230-3235 * N6                # LENGTH (yd)
3240-3245 * N6                # WIDTH (in)
3250-3255 * N6                # WIDTH (ft)
3260-3265 * N6                # WIDTH (yd)
3270-3275 * N6                # HEIGHT (in)
3280-3285 * N6                # HEIGHT (ft)
3290-3295 * N6                # HEIGHT (yd)
3300-3305 * N6                # GROSS WEIGHT (kg)
3310-3315 * N6                # LENGTH (m), log
3320-3325 * N6                # WIDTH (m), log
3330-3335 * N6                # HEIGHT (m), log
3340-3345 * N6                # AREA (m²), log
3350-3355 * N6                # VOLUME (l), log
3360-3365 * N6                # VOLUME (m³), log
3370-3375 * N6                # KG PER m²
3400-3405 * N6                # GROSS WEIGHT (lb)
3410-3415 * N6                # LENGTH (in), log
3420-3425 * N6                # LENGTH (ft), log
3430-3435 * N6                # LENGTH (yd), log
3440-3445 * N6                # WIDTH (in), log
3450-3455 * N6                # WIDTH (ft), log
3460-3465 * N6                # WIDTH (yd), log
3470-3475 * N6                # HEIGHT (in), log
3480-3485 * N6                # HEIGHT (ft), log
3490-3495 * N6                # HEIGHT (yd), log
3500-3505 * N6                # AREA (in²)
3510-3515 * N6                # AREA (ft²)
3520-3525 * N6                # AREA (yd²)
3530-3535 * N6                # AREA (in²), log
3540-3545 * N6                # AREA (ft²), log
3550-3555 * N6                # AREA (yd²), log
3560-3565 * N6                # NET WEIGHT (t oz)
3570-3575 * N6                # NET VOLUME (oz)
3600-3605 * N6                # NET VOLUME (qt)
3610-3615 * N6                # NET VOLUME (gal.)
3620-3625 * N6                # VOLUME (qt), log
3630-3635 * N6                # VOLUME (gal.), log
3640-3645 * N6                # VOLUME (in³)
3650-3655 * N6                # VOLUME (ft³)
3660-3665 * N6                # VOLUME (yd³)
3670-3675 * N6                # VOLUME (in³), log
3680-3685 * N6                # VOLUME (ft³), log
3690-3695 * N6                # VOLUME (yd³), log
37          N..8              # COUNT
3900-3909   N..15             # AMOUNT
3910-3919   N3 N..15          # AMOUNT
3920-3929   N..15             # PRICE
3930-3939   N3 N..15          # PRICE
3940-3943   N4                # PRCNT OFF
3950-3955   N6                # PRICE/UoM
400         X..30             # ORDER NUMBER
401         X..30             # GINC
402         N17,csum          # GSIN
403         X..30             # ROUTE
410       * N13,csum          # SHIP TO LOC
411       * N13,csum          # BILL TO
412       * N13,csum          # PURCHASE FROM
413       * N13,csum          # SHIP FOR LOC
414       * N13,csum          # LOC No.
415       * N13,csum          # PAY TO
416       * N13,csum          # PROD/SERV LOC
417       * N13,csum          # PARTY
420         X..20             # SHIP TO POST
421         N3 X..9           # SHIP TO POST
422         N3                # ORIGIN
423         N..15             # COUNTRY - INITIAL PROCESS
424         N3                # COUNTRY - PROCESS
425         N..15             # COUNTRY - DISASSEMBLY
426         N3                # COUNTRY - FULL PROCESS
427         X..3              # ORIGIN SUBDIVISION
4300        X..35             # SHIP TO COMP
4301        X..35             # SHIP TO NAME
4302        X..70             # SHIP TO ADD1
4303        X..70             # SHIP TO ADD2
4304        X..70             # SHIP TO SUB
4305        X..70             # SHIP TO LOC
4306        X..70             # SHIP TO REG
4307        X2                # SHIP TO COUNTRY
4308        X..30             # SHIP TO PHONE
4309        N10 N10           # SHIP TO GEO
4310        X..35             # RTN TO COMP
4311        X..35             # RTN TO NAME
4312        X..70             # RTN TO ADD1
4313        X..70             # RTN TO ADD2
4314        X..70             # RTN TO SUB
4315        X..70             # RTN TO LOC
4316        X..70             # RTN TO REG
4317        X2                # RTN TO COUNTRY
4318        X..20             # RTN TO POST
4319        X..30             # RTN TO PHONE
4320        X..35             # SRV DESCRIPTION
4321        N1                # DANGEROUS GOODS
4322        N1                # AUTH TO LEAVE
4323        N1                # SIG REQUIRED
4324        N6,yymmd0 N4,hhmm # NOT BEF DEL DT
4325        N6,yymmd0 N4,hhmm # NOT AFT DEL DT
4326        N6,yymmdd         # REL DATE
4330        N6 [X1]           # MAX TEMP F.
4331        N6 [X1]           # MAX TEMP C.
4332        N6 [X1]           # MIN TEMP F.
4333        N6 [X1]           # MIN TEMP C.
7001        N13               # NSN
7002        X..30             # MEAT CUT
7003        N6,yymmdd N4,hhmm # EXPIRY TIME
7004        N..4              # ACTIVE POTENCY
7005        X..12             # CATCH AREA
7006        N6,yymmdd         # FIRST FREEZE DATE
7007        N6,yymmdd [N6]    # HARVEST DATE
7008        X..3              # AQUATIC SPECIES
7009        X..10             # FISHING GEAR TYPE
7010        X..2              # PROD METHOD
7011        N6,yymmdd [N4]    # TEST BY DATE
7020        X..20             # REFURB LOT
7021        X..20             # FUNC STAT
7022        X..20             # REV STAT
7023        X..30             # GIAI - ASSEMBLY
7030-7039   N3 X..27          # PROCESSOR # s
7040        N1 X1 X1 X1       # UIC+EXT
710         X..20             # NHRN PZN
711         X..20             # NHRN CIP
712         X..20             # NHRN CN
713         X..20             # NHRN DRN
714         X..20             # NHRN AIM
715         X..20             # NHRN NDC
7230-7239   X2 X..28          # CERT # s
7240        X..20             # PROTOCOL
7241        N2                # AIDC MEDIA TYPE
7242        X..25             # VCN
8001        N14               # DIMENSIONS
8002        X..20             # CMT No.
8003        N1 N13,csum [X..16] # GRAI
8004        X..30             # GIAI
8005        N6                # PRICE PER UNIT
8006        N14,csum N4       # ITIP
8007        X..34             # IBAN
8008        N8 [N..4]         # PROD TIME
8009        X..50             # OPTSEN
8010        Y..30             # CPID
8011        N..12             # CPID SERIAL
8012        X..20             # VERSION
8013        X..25             # GMN
8017        N18,csum          # GSRN - PROVIDER
8018        N18,csum          # GSRN - RECIPIENT
8019        N..10             # SRIN
8020        X..25             # REF No.
8026        N14,csum N4       # ITIP CONTENT
8030        Z..90             # DIGSIG
8110        X..70             # COUPON
8111        N4                # POINTS
8112        X..70             # PAPERLESS COUPON
8200        X..70             # PRODUCT URL
90          X..30             # INTERNAL
91-99       X..90             # INTERNAL
"""

# Characters of GS1 AI encodable character set 82, set 39 and set 64 (GenSpecs §7.11).
_CSET82: Final = frozenset(
    "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz")
_CSET39: Final = frozenset("#-/0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_CSET64: Final = frozenset(
    "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz=")
_CHARSETS: Final = MappingProxyType({"X": _CSET82, "Y": _CSET39, "Z": _CSET64})
_CHARSET_NAMES: Final = MappingProxyType({"N": "digits", "X": "GS1 set 82",
                                          "Y": "GS1 set 39", "Z": "GS1 set 64"})

# Names of the keys whose check digit is verified, for the error message.
_KEY_NAMES: Final = MappingProxyType({
    "00": "SSCC", "01": "GTIN", "02": "GTIN", "253": "GDTI", "255": "GCN", "402": "GSIN",
    "8003": "GRAI", "8006": "GTIN", "8017": "GSRN", "8018": "GSRN", "8026": "GTIN",
    **{f"41{d}": "GLN" for d in "01234567"},
})

# GS1 Digital Link primary keys (the dictionary's ``dlpkey`` entries).
_DL_PRIMARY_KEYS: Final = frozenset(
    {"00", "01", "253", "255", "401", "402", "414", "417", "8003", "8004", "8006", "8010",
     "8013", "8017", "8018"})

# AIM modifiers that say "FNC1 in first position": the data is GS1 element strings.
_GS1_AIM: Final = frozenset({"C1", "d2", "Q3", "e0", "J1"})

# ISO/IEC 15424 code characters (plus DotCode ``J`` from the AIM DotCode specification).
_SYMBOLOGIES: Final = MappingProxyType({
    "A": "Code 39", "B": "Telepen", "C": "Code 128", "D": "Code One", "E": "EAN/UPC",
    "F": "Codabar", "G": "Code 93", "H": "Code 11", "I": "ITF", "J": "DotCode",
    "K": "Code 16K", "L": "PDF417", "M": "MSI", "N": "Anker", "O": "Codablock",
    "P": "Plessey", "Q": "QR Code", "R": "Straight 2 of 5 (2-bar start/stop)",
    "S": "Straight 2 of 5 (3-bar start/stop)", "T": "Code 49", "U": "MaxiCode",
    "X": "other", "Y": "system expansion", "Z": "non-barcode", "c": "Channel Code",
    "d": "Data Matrix", "e": "GS1 DataBar", "h": "Han Xin", "o": "OCR", "p": "PosiCode",
    "s": "SuperCode", "z": "Aztec Code",
})
# Code character + modifier pairs with a name of their own (GS1 GenSpecs figure 5.1.2-2).
_SYMBOLOGY_VARIANTS: Final = MappingProxyType({
    "C1": "GS1-128", "C2": "Code 128 (FNC1 in 2nd position)", "E0": "EAN-13/UPC-A/UPC-E",
    "E1": "EAN 2-digit add-on", "E2": "EAN 5-digit add-on", "E3": "EAN-13/UPC with add-on",
    "E4": "EAN-8", "I1": "ITF-14", "e0": "GS1 DataBar", "e1": "GS1 Composite",
    "e2": "GS1 Composite", "d1": "Data Matrix", "d2": "GS1 DataMatrix", "Q1": "QR Code",
    "Q3": "GS1 QR Code", "J1": "GS1 DotCode",
})


@dataclass(frozen=True, slots=True)
class AiComponent:
    """One part of an AI's data field: character set, length bounds, optional, checks."""

    charset: Literal["N", "X", "Y", "Z"]
    min_len: int
    max_len: int
    optional: bool = False
    checks: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AiSpec:
    """An application identifier: its digits, title, data components, predefined length."""

    ai: str
    title: str
    components: tuple[AiComponent, ...]
    predefined_length: bool

    @property
    def min_len(self) -> int:
        """Fewest data characters."""
        return sum(c.min_len for c in self.components if not c.optional)

    @property
    def max_len(self) -> int:
        """Most data characters."""
        return sum(c.max_len for c in self.components)

    @property
    def fixed_length(self) -> bool:
        """True when the data always has the same length (it can be cut without a GS)."""
        return self.min_len == self.max_len

    @property
    def decimals(self) -> int | None:
        """Implied decimal places (last AI digit) for measures and amounts, else None."""
        if len(self.ai) == 4 and (self.ai[:2] in {"31", "32", "33", "34", "35", "36"}
                                  or self.ai[:3] in {"390", "392", "394", "395"}):
            return int(self.ai[3])
        return None


_COMPONENT_RE: Final = re.compile(
    r"^(?P<open>\[)?(?P<cs>[NXYZ])(?P<var>\.\.)?(?P<len>\d+)(?P<close>\])?(?P<checks>(?:,\w+)*)$")


def _build_table(text: str) -> Mapping[str, AiSpec]:
    """Parse ``_AI_TABLE`` into a read-only mapping AI → spec (ranges expanded)."""
    table: dict[str, AiSpec] = {}
    for line in text.strip().splitlines():
        spec_text, _, title = line.partition("#")
        words = spec_text.split()
        first, _, last = words[0].partition("-")
        predefined = len(words) > 1 and words[1] == "*"
        components: list[AiComponent] = []
        for word in words[2 if predefined else 1:]:
            m = _COMPONENT_RE.match(word)
            if m is None:  # pragma: no cover - a typo in the table; the tests load it
                raise ValueError(f"AI table line {line!r}: bad component {word!r}")
            length = int(m["len"])
            charset: Literal["N", "X", "Y", "Z"] = m["cs"]  # type: ignore[assignment]
            components.append(AiComponent(
                charset, 1 if m["var"] else length, length, optional=bool(m["open"]),
                checks=tuple(c for c in m["checks"].split(",") if c)))
        width = len(first)
        for n in range(int(first), int(last or first) + 1):
            ai = f"{n:0{width}d}"
            entry_title = title.strip()
            if entry_title.endswith(" s"):  # "PROCESSOR # s": numbered by the last digit
                entry_title = f"{entry_title[:-2]} {int(ai[3]) + (ai[:3] == '723')}"
            table[ai] = AiSpec(ai, entry_title, tuple(components), predefined)
    return MappingProxyType(table)


APPLICATION_IDENTIFIERS: Final[Mapping[str, AiSpec]] = _build_table(_AI_TABLE)
"""Every known AI (``"01"``, ``"3103"`` …) → its :class:`AiSpec`; read-only."""

# ---------------------------------------------------------------------------------------------
# Public value types


@dataclass(frozen=True, slots=True)
class AimId:
    """An AIM symbology identifier (ISO/IEC 15424): ``]`` + code character + modifier."""

    code: str
    modifier: str

    def __str__(self) -> str:
        return f"]{self.code}{self.modifier}"

    @property
    def name(self) -> str:
        """The symbology in words, e.g. ``GS1-128`` for ``]C1``."""
        key = self.code + self.modifier
        if key in _SYMBOLOGY_VARIANTS:
            return _SYMBOLOGY_VARIANTS[key]
        return _SYMBOLOGIES.get(self.code, f"unknown symbology {self.code!r}")

    @property
    def is_gs1(self) -> bool:
        """True when the modifier says the data is GS1 element strings (FNC1 first)."""
        return self.code + self.modifier in _GS1_AIM


@dataclass(frozen=True, slots=True)
class GS1Element:
    """One element string: the AI, its title, the data as encoded and its typed value."""

    ai: str
    title: str
    raw: str
    value: GS1Value

    @property
    def text(self) -> str:
        """The value as point text: ISO dates, measures with their decimal point, else raw."""
        if isinstance(self.value, dt.datetime):
            return self.value.isoformat(timespec="minutes")
        if isinstance(self.value, dt.date):
            return self.value.isoformat()
        if isinstance(self.value, Decimal):
            return str(self.value)
        return self.raw


@dataclass(frozen=True, slots=True)
class GS1Data:
    """The elements of one GS1 code, in the order they were encoded."""

    elements: tuple[GS1Element, ...]
    form: Literal["element string", "hri", "digital link"] = "element string"

    def __iter__(self) -> Iterator[GS1Element]:
        return iter(self.elements)

    def __len__(self) -> int:
        return len(self.elements)

    def get(self, ai: str) -> GS1Element | None:
        """The element with this AI, or None."""
        return next((e for e in self.elements if e.ai == ai), None)

    def hri(self) -> str:
        """The human-readable form, ``(01)09501101530003(17)261231``."""
        return "".join(f"({e.ai}){e.raw}" for e in self.elements)


@dataclass(frozen=True, slots=True)
class Handle:
    """An identifier handle ``prefix/suffix`` (prefix and suffix opaque, case-sensitive)."""

    prefix: str
    suffix: str

    def __str__(self) -> str:
        return f"{self.prefix}/{self.suffix}"


# ---------------------------------------------------------------------------------------------
# Check digit and dates


def gs1_check_digit(digits: str) -> int:
    """The GS1 mod-10 check digit for ``digits`` (the number without its check digit).

    Weights 3, 1, 3, 1 … from the rightmost digit leftwards; check = (10 − sum mod 10) mod 10
    (GenSpecs §7.9.1). ``gs1_check_digit("950110153100") == 0``.
    """
    if not digits or not (digits.isascii() and digits.isdigit()):
        raise ValueError(f"check digit: {digits!r} is not a string of digits")
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits)))
    return (10 - total % 10) % 10


def _century_year(yy: int, today: dt.date) -> int:
    """The full year for two digits YY, GenSpecs §7.12 (a −49..+50 year window)."""
    current = today.year % 100
    century = today.year - current
    diff = yy - current
    if 51 <= diff <= 99:
        century -= 100
    elif -99 <= diff <= -50:
        century += 100
    return century + yy


def _date(raw: str, *, day_zero: bool, today: dt.date) -> dt.date:
    """YYMMDD → date; DD=00 (when allowed) is the last day of the month.

    Raises ValueError with the reason in words (``month 13``).
    """
    year = _century_year(int(raw[0:2]), today)
    month, day = int(raw[2:4]), int(raw[4:6])
    if not 1 <= month <= 12:
        raise ValueError(f"month {month:02d}")
    last = calendar.monthrange(year, month)[1]
    if day == 0 and day_zero:
        return dt.date(year, month, last)
    if not 1 <= day <= last:
        raise ValueError(f"day {day:02d}, {year}-{month:02d} has {last} days")
    return dt.date(year, month, day)


# ---------------------------------------------------------------------------------------------
# Elements


def _show(text: str, limit: int = 4) -> str:
    """A short quotable excerpt of ``text`` (GS shown as <GS>)."""
    cut = text[:limit] + ("…" if len(text) > limit else "")
    return cut.replace(GS, "<GS>")


def _element(spec: AiSpec, raw: str, where: str, today: dt.date) -> GS1Element:
    """Validate one element's data against its spec and type its value."""
    ai = spec.ai
    n = len(raw)
    if n < spec.min_len or n > spec.max_len:
        if spec.fixed_length:
            need = f"expected {spec.min_len}"
        elif n > spec.max_len:
            need = f"at most {spec.max_len}"
        else:
            need = f"at least {spec.min_len}"
        count = "no data" if n == 0 else f"{n} character{'s' if n != 1 else ''}"
        raise ValueError(f"AI {ai}: {count}, {need}{where}")
    # Split into components: fixed ones take their length; a variable one takes the rest
    # less what the fixed components after it need (in the table it is always last).
    pos = 0
    parts: list[tuple[AiComponent, str]] = []
    for i, comp in enumerate(spec.components):
        if comp.optional and pos >= n:
            break
        after = sum(c.min_len for c in spec.components[i + 1:] if not c.optional)
        take = comp.max_len if comp.min_len == comp.max_len else n - pos - after
        part = raw[pos:pos + take]
        if len(part) < comp.min_len:  # pragma: no cover - excluded by the length check
            raise ValueError(f"AI {ai}: {n} characters, expected {spec.min_len}{where}")
        parts.append((comp, part))
        pos += take
    for comp, part in parts:
        if comp.charset == "N":
            bad = next((c for c in part if not ("0" <= c <= "9")), None)
        else:
            allowed = _CHARSETS[comp.charset]
            bad = next((c for c in part if c not in allowed), None)
        if bad is not None:
            raise ValueError(f"AI {ai}: {raw!r} has {bad!r}, not in {_CHARSET_NAMES[comp.charset]}"
                             f" (offset {raw.index(bad)}){where}")
        for check in comp.checks:
            if check == "csum":
                want = gs1_check_digit(part[:-1])
                if int(part[-1]) != want:
                    name = _KEY_NAMES.get(ai, f"AI {ai}")
                    raise ValueError(f"{name} {part}: check digit {part[-1]}, expected {want}"
                                     f" (AI {ai}){where}")
            elif check in ("yymmd0", "yymmdd"):
                try:
                    _date(part, day_zero=check == "yymmd0", today=today)
                except ValueError as exc:
                    raise ValueError(f"AI {ai}: {raw!r} is not a date ({exc}){where}") from None
            elif check == "hhmm" and (int(part[:2]) > 23 or int(part[2:]) > 59):
                raise ValueError(f"AI {ai}: {raw!r} is not a time of day ({part}){where}")
    return GS1Element(ai, spec.title, raw, _typed(spec, parts, today))


def _typed(spec: AiSpec, parts: list[tuple[AiComponent, str]], today: dt.date) -> GS1Value:
    """The typed value of a validated element."""
    checks = [c.checks for c, _ in parts]
    if len(parts) == 1 and checks[0] and checks[0][0] in ("yymmd0", "yymmdd"):
        return _date(parts[0][1], day_zero=checks[0][0] == "yymmd0", today=today)
    if len(parts) == 2 and checks[1] == ("hhmm",) and checks[0]:
        day = _date(parts[0][1], day_zero=checks[0][0] == "yymmd0", today=today)
        hhmm = parts[1][1]
        return dt.datetime(day.year, day.month, day.day, int(hhmm[:2]), int(hhmm[2:]))
    decimals = spec.decimals
    raw = "".join(p for _, p in parts)
    if decimals is not None:
        return Decimal(int(raw)).scaleb(-decimals)
    if spec.ai in ("30", "37"):
        return int(raw)
    return raw


def _lookup_ai(data: str, pos: int) -> AiSpec | None:
    """The AI starting at ``pos`` (AIs are prefix-free: at most one of 2, 3, 4 digits fits)."""
    for width in (2, 3, 4):
        spec = APPLICATION_IDENTIFIERS.get(data[pos:pos + width])
        if spec is not None:
            return spec
    return None


def _unknown(data: str, pos: int, where: str = "") -> ValueError:
    return ValueError(f"unknown application identifier at position {pos}: "
                      f"{_show(data[pos:])!r}{where}")


def _parse_element_string(data: str, today: dt.date) -> list[GS1Element]:
    """Walk the AI table through GS-separated chunks (leading FNC1 already removed)."""
    elements: list[GS1Element] = []
    start = 0
    for chunk in data.split(GS):
        pos, end = start, start + len(chunk)
        while pos < end:
            spec = _lookup_ai(data, pos) if data[pos:pos + 2].isdigit() else None
            if spec is None or pos + len(spec.ai) > end:
                raise _unknown(data, pos)
            body = pos + len(spec.ai)
            # A fixed-length element takes its length (cut short by a GS or the end: an error).
            stop = min(body + spec.min_len, end) if spec.fixed_length else end
            elements.append(_element(spec, data[body:stop], f", at position {pos}", today))
            pos = stop
        start = end + 1
    return elements


_HRI_AI_RE: Final = re.compile(r"\((\d{2,4})\)")


def _parse_hri(text: str, today: dt.date) -> list[GS1Element]:
    """``(01)…(17)…``: each value runs to the next ``(AI)`` of a known AI."""
    marks = [m for m in _HRI_AI_RE.finditer(text) if m[1] in APPLICATION_IDENTIFIERS]
    if not marks or marks[0].start() != 0:
        raise ValueError(f"GS1 text with parentheses must start with '(AI)': {_show(text, 8)!r}")
    elements = []
    for m, nxt in zip(marks, [*marks[1:], None], strict=True):
        stop = nxt.start() if nxt is not None else len(text)
        elements.append(_element(APPLICATION_IDENTIFIERS[m[1]], text[m.end():stop],
                                 f", at position {m.start()}", today))
    return elements


def _parse_digital_link(url: str, today: dt.date) -> list[GS1Element] | None:
    """GS1 Digital Link URI → elements; None when the URL carries no primary key."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        return None
    segments = parts.path.split("/")
    for i, seg in enumerate(segments):
        if seg not in _DL_PRIMARY_KEYS or i + 1 >= len(segments):
            continue
        rest = segments[i:]
        if rest[-1] == "":  # a trailing slash
            rest = rest[:-1]
        if len(rest) % 2 or any(a not in APPLICATION_IDENTIFIERS for a in rest[::2]):
            continue
        pairs = [(a, _dl_value(a, unquote(v))) for a, v in zip(rest[::2], rest[1::2],
                                                                strict=True)]
        if not _plausible_key(APPLICATION_IDENTIFIERS[seg], pairs[0][1]):
            continue  # e.g. https://example.com/01/news: not a Digital Link, just a URL
        break
    else:
        return None
    pairs += [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
              if k.isdigit() and k in APPLICATION_IDENTIFIERS]
    elements = []
    for ai, raw in pairs:
        elements.append(_element(APPLICATION_IDENTIFIERS[ai], _dl_value(ai, raw),
                                 " (in the Digital Link URI)", today))
    return elements


def _dl_value(ai: str, value: str) -> str:
    """GTIN-8/12/13 are allowed in a Digital Link URI; AI 01 holds them as 14 digits."""
    if ai == "01" and len(value) in (8, 12, 13) and value.isascii() and value.isdigit():
        return value.zfill(14)
    return value


def _plausible_key(spec: AiSpec, value: str) -> bool:
    """True when a URI path value has the length and leading digits of its primary key."""
    first = spec.components[0]
    head = value[:first.min_len]
    return (spec.min_len <= len(value) <= spec.max_len
            and (first.charset != "N" or (head.isascii() and head.isdigit())))


def _check_repeats(elements: list[GS1Element]) -> None:
    """The same AI twice must carry the same data (GenSpecs §4.14)."""
    seen: dict[str, str] = {}
    for e in elements:
        if seen.setdefault(e.ai, e.raw) != e.raw:
            raise ValueError(f"AI {e.ai} appears twice with different data: "
                             f"{seen[e.ai]!r} and {e.raw!r}")


def parse_gs1(data: str, *, today: dt.date | None = None) -> GS1Data:
    """Parse GS1 data: element strings (GS 0x1D separators), ``(AI)`` text, or a Digital Link.

    ``data`` is what follows the AIM identifier (a leading GS, as some scanners send for the
    first FNC1, is skipped). ``today`` anchors the century of YYMMDD dates (default: the
    current date). Raises ValueError saying what is wrong and where.
    """
    ref = today if today is not None else dt.date.today()
    form: Literal["element string", "hri", "digital link"]
    if data[:8].lower().startswith(("http://", "https://")):
        found = _parse_digital_link(data, ref)
        if found is None:
            raise ValueError(f"URL {_show(data, 40)!r} is not a GS1 Digital Link URI "
                             "(no primary key such as /01/<GTIN> in its path)")
        elements, form = found, "digital link"
    elif data.startswith("("):
        elements, form = _parse_hri(data, ref), "hri"
    else:
        if not data.strip(GS):
            raise ValueError("GS1 data is empty")
        elements, form = _parse_element_string(data, ref), "element string"
    _check_repeats(elements)
    return GS1Data(tuple(elements), form)


# ---------------------------------------------------------------------------------------------
# AIM identifiers and handles

_AIM_RE: Final = re.compile(r"\]([A-Za-z])([0-9A-Za-z])")


def parse_aim(text: str) -> tuple[AimId | None, str]:
    """Split a leading AIM symbology identifier (``]C1`` …) off ``text``: ``(id, rest)``."""
    m = _AIM_RE.match(text)
    if m is None:
        return None, text
    return AimId(m[1], m[2]), text[m.end():]


# Prefix: digits, then dot-separated segments (``88.1000.2``, ``20.500.12345``); suffix: any
# text without control characters. Both opaque; compared case-sensitively.
_HANDLE_RE: Final = re.compile(r"(\d{2,}(?:\.[0-9A-Za-z_-]+)+)/([^\x00-\x1f\x7f]+)")
_PREFIX_RE: Final = re.compile(r"\d{2,}(?:\.[0-9A-Za-z_-]+)+")


def parse_handle(text: str) -> Handle | None:
    """The identifier handle in ``text``: bare ``88.1000.2/mm``, or in a URL's path or query.

    Returns None when there is none. Percent-escapes in URLs are decoded (UTF-8).
    """
    text = text.strip()
    m = _HANDLE_RE.fullmatch(text)
    if m is not None and "://" not in text:
        return Handle(m[1], m[2])
    if "://" not in text:
        return None
    parts = urlsplit(text)
    segments = [unquote(s) for s in parts.path.split("/")]
    for i, seg in enumerate(segments):
        if _PREFIX_RE.fullmatch(seg) and i + 1 < len(segments):
            suffix = "/".join(segments[i + 1:])
            if suffix and _HANDLE_RE.fullmatch(f"{seg}/{suffix}"):
                return Handle(seg, suffix)
    for _, value in parse_qsl(parts.query):
        m = _HANDLE_RE.fullmatch(value.strip())
        if m is not None:
            return Handle(m[1], m[2])
    return None


# ---------------------------------------------------------------------------------------------
# Scanner lines → fields

_NAMED_AIS: Final = (("sscc", "00"), ("gtin", "01"), ("batch", "10"), ("prod_date", "11"),
                     ("pack_date", "13"), ("best_before", "15"), ("expiry", "17"),
                     ("serial", "21"), ("order", "400"))

_AI_FIELD_RE: Final = re.compile(r"ai\.(\d{2,4})")


def is_scan_field(name: str) -> bool:
    """True for a field :func:`scan_fields` can return: a SCAN_FIELDS name or ``ai.<known AI>``."""
    if name in SCAN_FIELDS:
        return True
    m = _AI_FIELD_RE.fullmatch(name)
    return m is not None and m[1] in APPLICATION_IDENTIFIERS


def _as_utf8(text: str) -> str:
    """Text decoded as Latin-1 that is valid UTF-8 is re-read as UTF-8 (QR codes carry it)."""
    if text.isascii():
        return text
    try:
        return text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def _gtin_from_symbol(aim: AimId, data: str) -> str | None:
    """The GTIN of an EAN/UPC or ITF-14 symbol, zero-padded to 14 digits, if it checks."""
    key = aim.code + aim.modifier
    if key in ("E0", "E3") and len(data) >= 12:
        digits = data[:13] if len(data) >= 13 and key == "E3" else data
    elif key in {"E4", "I1"}:
        digits = data
    else:
        return None
    if len(digits) not in (8, 12, 13, 14) or not (digits.isascii() and digits.isdigit()):
        return None
    if gs1_check_digit(digits[:-1]) != int(digits[-1]):
        return None
    return digits.zfill(14)


def _gs1_of(aim: AimId | None, data: str, today: dt.date) -> GS1Data | None:
    """The GS1 content of a scan: strict when the code claims GS1, a cautious guess otherwise."""
    hri = _HRI_AI_RE.match(data)
    claims = (aim is not None and aim.is_gs1) or (hri is not None
                                                   and hri[1] in APPLICATION_IDENTIFIERS)
    if claims:
        return parse_gs1(data, today=today)
    if data.lower().startswith(("http://", "https://")):
        found = _parse_digital_link(data, today)  # raises when a primary key is malformed
        return GS1Data(tuple(found), "digital link") if found is not None else None
    if aim is None and (data[:2] in ("00", "01", "02") or GS in data):
        # No AIM identifier (the scanner does not send one): element strings that start with
        # a checked key, or that contain a GS, are taken as GS1; anything else is plain data.
        try:
            return parse_gs1(data, today=today)
        except ValueError:
            return None
    return None


def scan_fields(text: str, *, today: dt.date | None = None) -> dict[str, str]:
    """The fields of one scanned code (one line, suffix stripped), as point texts.

    Keys are present only when found: ``symbology``/``symbology_name`` for an AIM identifier,
    ``data`` (always: the text after the identifier), the named GS1 fields of SCAN_FIELDS,
    ``ai.NN`` for every GS1 element, and ``handle``/``handle_prefix``/``handle_suffix``.
    Raises ValueError for malformed GS1 data only when the code claims to be GS1 (a GS1 AIM
    modifier, ``(AI)`` text, or a Digital Link URI with a primary key).
    """
    ref = today if today is not None else dt.date.today()
    aim, data = parse_aim(_as_utf8(text))
    fields: dict[str, str] = {}
    if aim is not None:
        fields["symbology"] = str(aim)
        fields["symbology_name"] = aim.name
    fields["data"] = data
    gs1 = _gs1_of(aim, data, ref)
    if gs1 is not None:
        for e in gs1:
            fields[f"ai.{e.ai}"] = e.text
        for name, ai in _NAMED_AIS:
            if f"ai.{ai}" in fields:
                fields[name] = fields[f"ai.{ai}"]
        count = gs1.get("37") or gs1.get("30")
        if count is not None:
            fields["count"] = str(count.value)
        weight = next((e for e in gs1 if e.ai.startswith("310")), None)
        if weight is not None:
            fields["net_weight_kg"] = weight.text
    elif aim is not None and (gtin := _gtin_from_symbol(aim, data)) is not None:
        fields["gtin"] = gtin
    if gs1 is None:
        handle = parse_handle(data)
        if handle is not None:
            fields["handle"] = str(handle)
            fields["handle_prefix"] = handle.prefix
            fields["handle_suffix"] = handle.suffix
    return fields
