"""The S7 request planner: pure functions from byte ranges to the fewest Read/Write Var jobs.

The frame (S7comm, ISO-on-TCP; see docs/reference/s7.md):

* a read job is ``10 header + 2 (function, item count) + 12 per item`` bytes; its answer
  ``12 header + 2 + Σ (4 + data, padded to even)`` — both at most the negotiated PDU;
* a write job is ``12 + Σ (12 + 4 + data, padded to even)``; its answer is small.

Reads
    Every point is a byte range of one area (DB n, M, I, Q). Ranges of an area closer than
    ``max_gap`` bytes are *coalesced* into runs (an item may carry up to ``max_gap`` bytes
    that belong to no tag). A run longer than one item may carry (PDU − 18) is *cut* into
    pieces at element boundaries where it can be, else anywhere: a single value larger
    than a PDU is read in pieces. The pieces are then *packed* into requests — bin packing
    with two limits (bytes of the answer, items per request): :func:`pack` searches
    exactly (branch and bound) up to :data:`EXACT_PIECES` pieces and otherwise takes
    first-fit decreasing, and says which (``PlannedReads.optimal``). A hypothesis test
    checks the exact search against enumerating every partition.

Writes
    Values are merged only where their bytes touch (never writing a byte that belongs to
    no tag), cut to what one write item may carry, and packed the same way; BOOLs are
    single-bit items.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from ...core import SmartlineError

__all__ = [
    "EXACT_PIECES",
    "AreaKey",
    "Piece",
    "PlanError",
    "PlannedReads",
    "PlannedWrites",
    "ReadSpan",
    "Run",
    "S7Limits",
    "WriteItem7",
    "WriteSpan",
    "pack",
    "plan_reads",
    "plan_writes",
    "read_cost",
    "write_cost",
]

AreaName = Literal["DB", "M", "I", "Q"]
AreaKey = tuple[str, int]  # ("DB", 5), ("M", 0) …
EXACT_PIECES = 14
"""Up to this many pieces per plan the packing is searched exactly."""
_NODE_BUDGET = 200_000

READ_JOB_HEADER = 12  # 10 header + function + item count
ITEM_SPEC = 12
READ_ANSWER_HEADER = 14  # 12 header (with error class/code) + function + item count
ITEM_HEADER = 4  # return code, transport size, length
WRITE_JOB_HEADER = 12


class PlanError(SmartlineError, ValueError):
    """A point or write cannot be planned (e.g. a PDU too small for one element)."""


def read_cost(length: int) -> int:
    """Bytes one read item of ``length`` data bytes takes in the answer (padded even)."""
    return ITEM_HEADER + length + (length & 1)


def write_cost(length: int) -> int:
    """Bytes one write item of ``length`` data bytes takes in the job (spec + data, even)."""
    return ITEM_SPEC + ITEM_HEADER + length + (length & 1)


@dataclass(frozen=True, slots=True)
class S7Limits:
    """What one request may carry, from the negotiated PDU size."""

    pdu: int = 480
    max_items: int = 20
    max_gap: int = 0

    def __post_init__(self) -> None:
        if self.pdu < 64:
            raise ValueError(f"PDU size {self.pdu} is too small for S7 (at least 64)")
        if not 1 <= self.max_items <= 255:
            raise ValueError(f"max_items must be 1..255, found {self.max_items}")
        if self.max_gap < 0:
            raise ValueError(f"max_gap must be ≥ 0, found {self.max_gap}")

    @property
    def read_items(self) -> int:
        """Items per read job: what fits the job (12 bytes each) and ``max_items``."""
        return max(1, min(self.max_items, (self.pdu - READ_JOB_HEADER) // ITEM_SPEC))

    @property
    def read_capacity(self) -> int:
        """Σ read_cost of a job's items must not exceed this."""
        return self.pdu - READ_ANSWER_HEADER

    @property
    def max_read_item(self) -> int:
        """The most data bytes one read item may carry (even)."""
        return (self.read_capacity - ITEM_HEADER) & ~1

    @property
    def write_items(self) -> int:
        return max(1, min(self.max_items, (self.pdu - WRITE_JOB_HEADER) // (ITEM_SPEC + 6)))

    @property
    def write_capacity(self) -> int:
        return self.pdu - WRITE_JOB_HEADER

    @property
    def max_write_item(self) -> int:
        return (self.write_capacity - ITEM_SPEC - ITEM_HEADER) & ~1


# -- packing --------------------------------------------------------------------------------

def _first_fit_decreasing(costs: Sequence[int], capacity: int, max_items: int
                          ) -> list[list[int]]:
    bins: list[list[int]] = []
    loads: list[int] = []
    for i in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        for b, load in enumerate(loads):
            if load + costs[i] <= capacity and len(bins[b]) < max_items:
                bins[b].append(i)
                loads[b] += costs[i]
                break
        else:
            bins.append([i])
            loads.append(costs[i])
    return bins


class _OutOfBudgetError(Exception):
    pass


def pack(costs: Sequence[int], capacity: int, max_items: int) -> tuple[list[list[int]], bool]:
    """Pack items of the given costs into the fewest bins (≤ ``capacity`` and ≤
    ``max_items`` each). Returns the bins (indices) and whether the count is proven
    optimal (exact search, or first-fit decreasing meeting the lower bound)."""
    n = len(costs)
    if n == 0:
        return [], True
    if any(c > capacity for c in costs):
        raise PlanError("an item is larger than one request may carry")
    best = _first_fit_decreasing(costs, capacity, max_items)
    lower = max(math.ceil(sum(costs) / capacity), math.ceil(n / max_items))
    if len(best) <= lower:
        return best, True
    if n > EXACT_PIECES:
        return best, False
    order = sorted(range(n), key=lambda i: (-costs[i], i))
    bins: list[list[int]] = []
    loads: list[int] = []
    nodes = 0

    def search(k: int) -> bool:
        """True when a packing meeting the lower bound was found (stop)."""
        nonlocal best, nodes
        nodes += 1
        if nodes > _NODE_BUDGET:
            raise _OutOfBudgetError
        if k == n:
            if len(bins) < len(best):
                best = [list(b) for b in bins]
            return len(best) <= lower
        i = order[k]
        c = costs[i]
        seen: set[tuple[int, int]] = set()
        for b in range(len(bins)):
            state = (loads[b], len(bins[b]))
            if state in seen or loads[b] + c > capacity or len(bins[b]) >= max_items:
                continue
            seen.add(state)
            bins[b].append(i)
            loads[b] += c
            done = search(k + 1)
            bins[b].pop()
            loads[b] -= c
            if done:
                return True
        if len(bins) + 1 < len(best):
            bins.append([i])
            loads.append(c)
            done = search(k + 1)
            bins.pop()
            loads.pop()
            if done:
                return True
        return False

    try:
        search(0)
    except _OutOfBudgetError:
        return best, False
    return best, True


# -- reads ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ReadSpan:
    """The bytes one point needs: ``[start, end)`` of an area, and where it may be cut
    (element starts of an array; empty for a scalar, which is cut only if it must be)."""

    key: AreaKey
    start: int
    end: int
    cuts: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Run:
    """Coalesced bytes of one area read into one place of the plan's buffer."""

    key: AreaKey
    start: int
    end: int
    offset: int  # where the run's first byte goes in the plan's buffer

    @property
    def length(self) -> int:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class Piece:
    """One item on the wire: ``length`` bytes from ``start`` of ``run``'s area."""

    run: int
    key: AreaKey
    start: int
    length: int
    offset: int  # in the plan's buffer

    @property
    def end(self) -> int:
        return self.start + self.length


@dataclass(frozen=True, slots=True)
class PlannedReads:
    runs: tuple[Run, ...]
    pieces: tuple[Piece, ...]
    requests: tuple[tuple[int, ...], ...]  # piece indices per request, in address order
    optimal: bool
    nbytes: int  # buffer size

    @property
    def request_count(self) -> int:
        return len(self.requests)


def _coalesce(spans: Sequence[ReadSpan], max_gap: int
              ) -> list[tuple[AreaKey, int, int, set[int]]]:
    by_key: dict[AreaKey, list[ReadSpan]] = {}
    for s in spans:
        by_key.setdefault(s.key, []).append(s)
    out: list[tuple[AreaKey, int, int, set[int]]] = []
    for key in sorted(by_key):
        group = sorted(by_key[key], key=lambda s: (s.start, s.end))
        cur: tuple[AreaKey, int, int, set[int]] | None = None
        for s in group:
            if cur is not None and s.start - cur[2] <= max_gap:
                cur = (key, cur[1], max(cur[2], s.end), cur[3])
            else:
                if cur is not None:
                    out.append(cur)
                cur = (key, s.start, s.end, set())
            cur[3].add(s.start)
            cur[3].update(s.cuts)
            cur[3].add(s.end)
        if cur is not None:
            out.append(cur)
    return out


def _cut(start: int, end: int, bounds: Iterable[int], most: int) -> list[tuple[int, int]]:
    """Cut ``[start, end)`` into pieces of at most ``most`` bytes, at bounds where possible."""
    ordered = sorted(b for b in bounds if start < b < end)
    pieces: list[tuple[int, int]] = []
    pos = start
    while end - pos > most:
        limit = pos + most
        cut = max((b for b in ordered if pos < b <= limit), default=limit)
        pieces.append((pos, cut))
        pos = cut
    pieces.append((pos, end))
    return pieces


def plan_reads(spans: Sequence[ReadSpan], limits: S7Limits) -> PlannedReads:
    """The fewest read jobs that bring every span's bytes (see the module docstring)."""
    runs: list[Run] = []
    pieces: list[Piece] = []
    offset = 0
    for key, start, end, bounds in _coalesce(spans, limits.max_gap):
        r = len(runs)
        runs.append(Run(key, start, end, offset))
        for s, e in _cut(start, end, bounds, limits.max_read_item):
            pieces.append(Piece(r, key, s, e - s, offset + s - start))
        offset += end - start
    bins, optimal = pack([read_cost(p.length) for p in pieces], limits.read_capacity,
                         limits.read_items)
    requests = [tuple(sorted(b, key=lambda i: (pieces[i].key, pieces[i].start))) for b in bins]
    requests.sort(key=lambda b: (pieces[b[0]].key, pieces[b[0]].start))
    return PlannedReads(tuple(runs), tuple(pieces), tuple(requests), optimal, offset)


# -- writes ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class WriteSpan:
    """Encoded bytes of one value to write at ``start`` (``bit`` set: a single bit, ``data``
    one byte 0/1). ``unit`` is the element size: a cut falls between elements if it can."""

    key: AreaKey
    start: int
    data: bytes
    bit: int | None = None
    unit: int = 0
    tag: str = ""


@dataclass(frozen=True, slots=True)
class WriteItem7:
    """One item of a write job."""

    key: AreaKey
    start: int
    data: bytes
    bit: int | None = None
    tags: tuple[str, ...] = field(default=())

    @property
    def length(self) -> int:
        return len(self.data)

    @property
    def cost(self) -> int:
        return write_cost(len(self.data))


@dataclass(frozen=True, slots=True)
class PlannedWrites:
    items: tuple[WriteItem7, ...]
    requests: tuple[tuple[int, ...], ...]
    optimal: bool

    @property
    def request_count(self) -> int:
        return len(self.requests)


def plan_writes(spans: Sequence[WriteSpan], limits: S7Limits) -> PlannedWrites:
    """Merge touching byte writes, cut them to one item's size, pack into the fewest jobs.

    A byte written twice takes the later value; a bit write to a byte also written whole
    is applied after it (in a later item of the same or a later job).
    """
    items: list[WriteItem7] = []
    by_key: dict[AreaKey, tuple[dict[int, int], dict[int, str], set[int]]] = {}
    bits: list[WriteSpan] = []
    for s in spans:
        if s.bit is not None:
            bits.append(s)
            continue
        values, owner, bounds = by_key.setdefault(s.key, ({}, {}, set()))
        for k, b in enumerate(s.data):
            values[s.start + k] = b
            owner[s.start + k] = s.tag
        unit = s.unit if s.unit > 0 else len(s.data)
        bounds.update(range(s.start, s.start + len(s.data) + 1, max(1, unit)))
        bounds.add(s.start + len(s.data))
    for key in sorted(by_key):
        values, owner, bounds = by_key[key]
        addresses = sorted(values)
        runs: list[tuple[int, int]] = []
        for a in addresses:
            if runs and a == runs[-1][1]:
                runs[-1] = (runs[-1][0], a + 1)
            else:
                runs.append((a, a + 1))
        for start, end in runs:
            for lo, hi in _cut(start, end, bounds, limits.max_write_item):
                tags = tuple(dict.fromkeys(owner[a] for a in range(lo, hi) if owner[a]))
                items.append(WriteItem7(key, lo, bytes(values[a] for a in range(lo, hi)),
                                        None, tags))
    first_bit = len(items)
    for s in bits:
        items.append(WriteItem7(s.key, s.start, bytes([1 if s.data[:1] != b"\x00" else 0]),
                                s.bit, (s.tag,) if s.tag else ()))
    if not items:
        return PlannedWrites((), (), True)
    if limits.max_write_item < 1:
        raise PlanError(f"a PDU of {limits.pdu} bytes cannot carry a write")
    byte_items = list(range(first_bit))
    bit_items = list(range(first_bit, len(items)))
    # bits go after the bytes they may share: pack the byte items, then the bit items
    bins, optimal = pack([items[i].cost for i in byte_items], limits.write_capacity,
                         limits.write_items)
    requests = [tuple(sorted((byte_items[j] for j in b),
                             key=lambda i: (items[i].key, items[i].start))) for b in bins]
    requests.sort(key=lambda b: (items[b[0]].key, items[b[0]].start))
    if bit_items:
        bbins, bopt = pack([items[i].cost for i in bit_items], limits.write_capacity,
                           limits.write_items)
        optimal = optimal and bopt and not byte_items
        requests.extend(tuple(bit_items[j] for j in sorted(b)) for b in bbins)
    return PlannedWrites(tuple(items), tuple(requests), optimal)
