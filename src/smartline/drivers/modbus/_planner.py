"""The Modbus request planner: pure functions from tags to the fewest wire requests.

Reads
    :func:`plan_reads` turns ``(point, address)`` items into :class:`ReadRequest` s, per
    area (coils, discrete inputs, input registers and holding registers are separate
    tables). A value is cut into *atoms* — a scalar (a number, a string, the register that
    holds a bit) is one atom and is never split; an array is one atom per element, so an
    array may span consecutive requests, each element whole. A request is *feasible* when
    it is no longer than the per-request limit, contains no known hole, and every run of
    registers (or bits) in it that belongs to no tag is at most ``max_gap`` long. The
    planner is greedy — each request starts at the first atom not yet covered and reaches
    as far as feasibility allows — and greedy is optimal here because feasibility depends
    on the range alone (not on which atoms are assigned to it) and holds for every
    sub-range of a feasible range (see ADR 0005; a hypothesis test checks it against an
    exhaustive search).

Writes
    :func:`plan_writes` coalesces exactly adjacent registers into FC16 and coils into FC15
    (single ones into FC6/FC5), never splitting a value across two requests.

Holes
    :class:`HoleMemory` remembers, per area, wire ranges a device refused with exception 2
    (illegal data address); plans built with it never include a hole, and atoms that lie
    in one are left out (their tags go BAD with ``DEVICE_ERROR``).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from ...core import Point, SmartlineError
from ...tags import ModbusAddress

__all__ = [
    "AREAS",
    "Area",
    "Atom",
    "HoleMemory",
    "ModbusLimits",
    "Piece",
    "PlanError",
    "ReadRequest",
    "WriteChunk",
    "WriteRequest",
    "atoms_of",
    "feasible",
    "plan_reads",
    "plan_writes",
]

Area = Literal["co", "di", "ir", "hr"]
AREAS: tuple[Area, ...] = ("co", "di", "hr", "ir")
READ_FC: Mapping[str, int] = {"co": 1, "di": 2, "hr": 3, "ir": 4}
BIT_AREAS = frozenset({"co", "di"})


class PlanError(SmartlineError, ValueError):
    """A tag cannot be planned: e.g. a single value longer than one request may carry."""


@dataclass(frozen=True, slots=True)
class ModbusLimits:
    """Per-device request limits (Modbus spec defaults; devices may need less).

    A driver builds them from its typed options (``ModbusOptions``, where ``max_bit_gap``
    left out is 16 × ``max_gap``).
    """

    max_registers: int = 125  # FC3/FC4 read
    max_bits: int = 2000  # FC1/FC2 read
    max_gap: int = 16  # registers in a request that belong to no tag
    max_bit_gap: int = 256  # coils/inputs in a request that belong to no tag
    max_write_registers: int = 123  # FC16
    max_write_bits: int = 1968  # FC15

    def __post_init__(self) -> None:
        for name, lo, hi in (("max_registers", 1, 125), ("max_bits", 1, 2000),
                             ("max_gap", 0, 125), ("max_bit_gap", 0, 2000),
                             ("max_write_registers", 1, 123),
                             ("max_write_bits", 1, 1968)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise ValueError(f"{name} must be an integer {lo}..{hi}, found {value!r}")

    def read_limit(self, area: str) -> int:
        return self.max_bits if area in BIT_AREAS else self.max_registers

    def gap_limit(self, area: str) -> int:
        return self.max_bit_gap if area in BIT_AREAS else self.max_gap


@dataclass(frozen=True, slots=True)
class Atom:
    """A wire range that must come back in one request: a scalar, or one array element."""

    area: Area
    start: int
    end: int
    item: int  # index into the planned items
    element: int  # element index (0 for scalars)


@dataclass(frozen=True, slots=True)
class Piece:
    """Consecutive elements of one item delivered by one request."""

    item: int
    first: int  # first element index
    count: int  # elements
    offset: int  # wire offset of the first element relative to the request start


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """One read on the wire and what it delivers."""

    area: Area
    start: int
    count: int
    pieces: tuple[Piece, ...] = ()

    @property
    def end(self) -> int:
        return self.start + self.count

    @property
    def function_code(self) -> int:
        return READ_FC[self.area]

    def __str__(self) -> str:
        return f"{self.area}:{self.start}+{self.count}"


class HoleMemory:
    """Wire ranges one device refused with "illegal data address", per area (mutable).

    ``version`` changes whenever a hole is added or forgotten, so plans know when to
    re-plan.
    """

    def __init__(self, holes: Mapping[str, Iterable[tuple[int, int]]] | None = None) -> None:
        self._ranges: dict[str, list[tuple[int, int]]] = {a: [] for a in AREAS}
        self.version = 0
        for area, ranges in (holes or {}).items():
            for start, end in ranges:
                self.add(area, start, end)

    def add(self, area: str, start: int, end: int) -> bool:
        """Remember ``[start, end)``; returns False if it was already known entirely."""
        if end <= start:
            return False
        if self.covers(area, start, end):
            return False
        merged = [*self._ranges[area], (start, end)]
        merged.sort()
        out: list[tuple[int, int]] = []
        for s, e in merged:
            if out and s <= out[-1][1]:
                out[-1] = (out[-1][0], max(out[-1][1], e))
            else:
                out.append((s, e))
        self._ranges[area] = out
        self.version += 1
        return True

    def covers(self, area: str, start: int, end: int) -> bool:
        """Whether ``[start, end)`` lies entirely inside one known hole."""
        ranges = self._ranges[area]
        i = bisect.bisect_right(ranges, (start, 1 << 30)) - 1
        return i >= 0 and ranges[i][0] <= start and end <= ranges[i][1]

    def ranges(self, area: str) -> tuple[tuple[int, int], ...]:
        return tuple(self._ranges[area])

    def as_mapping(self) -> dict[str, tuple[tuple[int, int], ...]]:
        return {a: tuple(r) for a, r in self._ranges.items() if r}

    def clear(self) -> None:
        if any(self._ranges.values()):
            self._ranges = {a: [] for a in AREAS}
            self.version += 1

    def __len__(self) -> int:
        return sum(len(r) for r in self._ranges.values())

    def __bool__(self) -> bool:
        return len(self) > 0


def atoms_of(index: int, address: ModbusAddress) -> list[Atom]:
    """The atoms of one address: one per array element, one for a scalar."""
    area = address.area
    if address.is_bit_area:
        return [Atom(area, address.offset + k, address.offset + k + 1, index, k)
                for k in range(address.elements)]
    if address.bit is not None:
        return [Atom(area, address.offset, address.offset + 1, index, 0)]
    width = address.registers_per_element
    if address.count is None:
        return [Atom(area, address.offset, address.offset + width, index, 0)]
    return [Atom(area, address.offset + k * width, address.offset + (k + 1) * width, index, k)
            for k in range(address.count)]


def _overlaps(ranges: Sequence[tuple[int, int]], start: int, end: int) -> bool:
    i = bisect.bisect_right(ranges, (start, 1 << 30)) - 1
    if i >= 0 and ranges[i][1] > start:
        return True
    return i + 1 < len(ranges) and ranges[i + 1][0] < end


def _segments(atoms: Sequence[Atom]) -> list[tuple[int, int]]:
    """Union of the atoms' ranges as sorted disjoint segments (touching ones joined)."""
    out: list[tuple[int, int]] = []
    for a in sorted(atoms, key=lambda a: a.start):
        if out and a.start <= out[-1][1]:
            if a.end > out[-1][1]:
                out[-1] = (out[-1][0], a.end)
        else:
            out.append((a.start, a.end))
    return out


def feasible(start: int, end: int, *, limit: int, gap: int,
             segments: Sequence[tuple[int, int]], holes: Sequence[tuple[int, int]]) -> bool:
    """Whether one request may read ``[start, end)`` (the definition the planner optimises)."""
    if end - start > limit or _overlaps(holes, start, end):
        return False
    pos = start
    for s, e in segments:
        if e <= start:
            continue
        if s >= end:
            break
        if s > pos and s - pos > gap:
            return False
        pos = max(pos, e)
    return not (pos < end and end - pos > gap)


def _reach(start: int, *, limit: int, gap: int, segments: Sequence[tuple[int, int]],
           holes: Sequence[tuple[int, int]]) -> int:
    """The largest ``end`` with ``[start, end)`` feasible (ignoring a trailing gap)."""
    reach = start + limit
    i = bisect.bisect_right(holes, (start, 1 << 30))
    if i < len(holes):
        reach = min(reach, holes[i][0])
    j = bisect.bisect_right(segments, (start, 1 << 30)) - 1
    j = max(j, 0)
    pos = start
    for s, e in segments[j:]:
        if s >= reach:
            break
        if s > pos and s - pos > gap:
            reach = min(reach, pos)
            break
        pos = max(pos, e)
    return reach


def _plan_area(area: Area, atoms: list[Atom], limits: ModbusLimits,
               holes: Sequence[tuple[int, int]]) -> list[ReadRequest]:
    limit = limits.read_limit(area)
    gap = limits.gap_limit(area)
    atoms.sort(key=lambda a: (a.start, a.end, a.item, a.element))
    segments = _segments(atoms)
    covered = [False] * len(atoms)
    requests: list[ReadRequest] = []
    first = 0
    n = len(atoms)
    while first < n:
        if covered[first]:
            first += 1
            continue
        start = atoms[first].start
        reach = _reach(start, limit=limit, gap=gap, segments=segments, holes=holes)
        chosen: list[Atom] = []
        k = first
        while k < n and atoms[k].start < reach:
            a = atoms[k]
            if not covered[k] and a.end <= reach:
                covered[k] = True
                chosen.append(a)
            k += 1
        end = max(a.end for a in chosen)
        requests.append(ReadRequest(area, start, end - start, _pieces(chosen, start)))
    return requests


def _pieces(chosen: Sequence[Atom], start: int) -> tuple[Piece, ...]:
    """Group a request's atoms into runs of consecutive elements of the same item."""
    by_item: dict[int, list[Atom]] = {}
    for a in chosen:
        by_item.setdefault(a.item, []).append(a)
    out: list[Piece] = []
    for item, atoms in by_item.items():
        atoms.sort(key=lambda a: a.element)
        run_first = atoms[0]
        count = 1
        for prev, a in itertools.pairwise(atoms):
            if a.element == prev.element + 1:
                count += 1
                continue
            out.append(Piece(item, run_first.element, count, run_first.start - start))
            run_first, count = a, 1
        out.append(Piece(item, run_first.element, count, run_first.start - start))
    out.sort(key=lambda p: (p.offset, p.item, p.first))
    return tuple(out)


def plan_reads(items: Sequence[tuple[Point, ModbusAddress]], limits: ModbusLimits,
               holes: HoleMemory | Mapping[str, Sequence[tuple[int, int]]] | None = None,
               ) -> list[ReadRequest]:
    """The fewest requests that read every atom of ``items`` not lying in a known hole.

    Requests come out ordered by area (co, di, hr, ir) and start address. Atoms inside a
    hole are in no request. Raises :class:`PlanError` for a single value longer than the
    per-request limit (it could not be read consistently).
    """
    memory = holes if isinstance(holes, HoleMemory) else HoleMemory(holes)
    hole_map = memory.as_mapping()
    by_area: dict[str, list[Atom]] = {}
    for index, (point, address) in enumerate(items):
        atoms = atoms_of(index, address)
        limit = limits.read_limit(address.area)
        if atoms and atoms[0].end - atoms[0].start > limit:
            unit = "bits" if address.is_bit_area else "registers"
            raise PlanError(
                f"{address.canonical()} is one value of {atoms[0].end - atoms[0].start} "
                f"{unit}, more than one request may read ({limit}); a value is never split "
                "across requests", tag=point.tag)
        area_holes = hole_map.get(address.area, ())
        live = [a for a in atoms if not _overlaps(area_holes, a.start, a.end)]
        by_area.setdefault(address.area, []).extend(live)
    requests: list[ReadRequest] = []
    for area in AREAS:
        area_atoms = by_area.get(area)
        if area_atoms:
            requests.extend(_plan_area(area, area_atoms, limits, hole_map.get(area, ())))
    return requests


# -- writes -----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class WriteChunk:
    """Encoded values of one tag to write: registers (ints) or coils (bools)."""

    area: Area
    start: int
    values: tuple[int, ...] | tuple[bool, ...]
    unit: int = 1  # element size: a request may only be cut at element boundaries
    tag: str = ""

    @property
    def end(self) -> int:
        return self.start + len(self.values)


@dataclass(frozen=True, slots=True)
class WriteRequest:
    """One write on the wire (FC5, FC6, FC15 or FC16)."""

    function_code: int
    start: int
    values: tuple[int, ...] | tuple[bool, ...]
    tags: tuple[str, ...] = field(default=())

    @property
    def area(self) -> Area:
        return "co" if self.function_code in (5, 15) else "hr"

    @property
    def count(self) -> int:
        return len(self.values)


def plan_writes(chunks: Sequence[WriteChunk], limits: ModbusLimits, *,
                single_as_multiple: bool = False) -> list[WriteRequest]:
    """Coalesce writes: exactly adjacent registers into FC16, coils into FC15.

    A register or coil written by two chunks takes the later chunk's value. A request is
    cut only at element boundaries, so no value is split; single registers/coils use
    FC6/FC5 unless ``single_as_multiple`` (for devices that only implement FC16/FC15).
    """
    out: list[WriteRequest] = []
    for area in ("co", "hr"):
        values: dict[int, int | bool] = {}
        owner: dict[int, str] = {}
        no_cut: set[int] = set()  # positions p where a cut between p-1 and p splits a value
        for c in chunks:
            if c.area != area:
                continue
            if c.area not in ("co", "hr"):
                raise PlanError(f"{c.area} is read-only on Modbus", tag=c.tag or None)
            for k, v in enumerate(c.values):
                values[c.start + k] = v
                owner[c.start + k] = c.tag
            for e in range(0, len(c.values), c.unit):
                no_cut.update(range(c.start + e + 1, c.start + min(e + c.unit, len(c.values))))
        if not values:
            continue
        limit = limits.max_write_bits if area == "co" else limits.max_write_registers
        addresses = sorted(values)
        runs: list[tuple[int, int]] = []
        for a in addresses:
            if runs and a == runs[-1][1]:
                runs[-1] = (runs[-1][0], a + 1)
            else:
                runs.append((a, a + 1))
        for start, end in runs:
            pos = start
            while pos < end:
                cut = min(end, pos + limit)
                while cut > pos and cut < end and cut in no_cut:
                    cut -= 1
                if cut == pos:
                    raise PlanError(
                        f"a value at {area}:{pos} is longer than one write request may carry "
                        f"({limit})", tag=owner[pos] or None)
                vals = tuple(values[a] for a in range(pos, cut))
                tags = tuple(dict.fromkeys(owner[a] for a in range(pos, cut) if owner[a]))
                single = cut - pos == 1 and not single_as_multiple
                if area == "co":
                    fc = 5 if single else 15
                    out.append(WriteRequest(fc, pos, tuple(bool(v) for v in vals), tags))
                else:
                    fc = 6 if single else 16
                    out.append(WriteRequest(fc, pos, tuple(int(v) for v in vals), tags))
                pos = cut
    return out
