"""The read planner against an exhaustive optimum, and its guarantees one by one."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smartline.core import Point
from smartline.drivers.modbus import (
    HoleMemory,
    ModbusLimits,
    PlanError,
    WriteChunk,
    feasible,
    plan_reads,
    plan_writes,
)
from smartline.drivers.modbus._planner import _segments, atoms_of
from smartline.tags import ModbusAddress, parse_modbus


def items_of(*texts: str) -> list[tuple[Point, ModbusAddress]]:
    out = []
    slot = 0
    for i, text in enumerate(texts):
        addr = parse_modbus(text)
        out.append((Point(f"t{i}", slot, addr), addr))
        slot += addr.elements
    return out


def brute_force(items: list[tuple[Point, ModbusAddress]], limits: ModbusLimits,
                holes: HoleMemory) -> int:
    """Fewest feasible ranges covering every live atom: exhaustive over sets of ranges."""
    total = 0
    for area in ("co", "di", "hr", "ir"):
        atoms = [a for i, (_, addr) in enumerate(items) if addr.area == area
                 for a in atoms_of(i, addr)]
        hole_ranges = holes.ranges(area)
        atoms = [a for a in atoms if not any(s < a.end and a.start < e for s, e in hole_ranges)]
        if not atoms:
            continue
        segments = _segments(atoms)
        limit, gap = limits.read_limit(area), limits.gap_limit(area)
        keys = sorted({(a.start, a.end) for a in atoms})
        starts = sorted({s for s, _ in keys})
        ends = sorted({e for _, e in keys})
        candidates = []
        for s in starts:
            for e in ends:
                if e > s and feasible(s, e, limit=limit, gap=gap, segments=segments,
                                      holes=hole_ranges):
                    mask = frozenset(k for k in keys if s <= k[0] and k[1] <= e)
                    if mask:
                        candidates.append(mask)
        need = frozenset(keys)
        best = None
        for k in range(1, len(need) + 1):
            for combo in itertools.combinations(set(candidates), k):
                if frozenset().union(*combo) >= need:
                    best = k
                    break
            if best is not None:
                break
        assert best is not None
        total += best
    return total


def check_plan(items, limits, holes) -> None:
    """Every live atom is read whole by one feasible request; nothing else is read."""
    requests = plan_reads(items, limits, holes)
    for r in requests:
        atoms = [a for i, (_, addr) in enumerate(items) if addr.area == r.area
                 for a in atoms_of(i, addr)]
        live = [a for a in atoms if not any(s < a.end and a.start < e
                                            for s, e in holes.ranges(r.area))]
        assert feasible(r.start, r.end, limit=limits.read_limit(r.area),
                        gap=limits.gap_limit(r.area), segments=_segments(live),
                        holes=holes.ranges(r.area)), r
    delivered = {(p.item, p.first + k) for r in requests for p in r.pieces for k in range(p.count)}
    for i, (_, addr) in enumerate(items):
        for a in atoms_of(i, addr):
            in_hole = any(s < a.end and a.start < e for s, e in holes.ranges(addr.area))
            assert ((i, a.element) in delivered) != in_hole, (addr, a)


# -- hypothesis: greedy == exhaustive optimum --------------------------------------------------

TYPES = ["uint16", "int16", "float32", "uint32", "float64", "string<3>"]


@st.composite
def layouts(draw):
    n = draw(st.integers(1, 6))
    texts = []
    for _ in range(n):
        area = draw(st.sampled_from(["hr", "ir", "co"]))
        offset = draw(st.integers(0, 30))
        if area == "co":
            count = draw(st.sampled_from([None, 2, 3]))
            texts.append(f"co:{offset}" + (f":bool[{count}]" if count else ""))
            continue
        kind = draw(st.sampled_from([*TYPES, "bit"]))
        if kind == "bit":
            texts.append(f"{area}:{offset}.{draw(st.integers(0, 15))}")
            continue
        count = draw(st.sampled_from([None, None, 2, 3])) if "string" not in kind else None
        texts.append(f"{area}:{offset}:{kind}" + (f"[{count}]" if count else ""))
    limits = ModbusLimits(max_registers=draw(st.integers(4, 12)),
                          max_bits=draw(st.integers(3, 10)),
                          max_gap=draw(st.integers(0, 5)),
                          max_bit_gap=draw(st.integers(0, 5)))
    holes = HoleMemory()
    for _ in range(draw(st.integers(0, 2))):
        area = draw(st.sampled_from(["hr", "ir", "co"]))
        s = draw(st.integers(0, 34))
        holes.add(area, s, s + draw(st.integers(1, 3)))
    return texts, limits, holes


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layouts())
def test_greedy_matches_exhaustive_optimum(layout) -> None:
    texts, limits, holes = layout
    items = items_of(*texts)
    check_plan(items, limits, holes)
    assert len(plan_reads(items, limits, holes)) == brute_force(items, limits, holes)


# -- examples ----------------------------------------------------------------------------------

def test_merges_within_gap_and_splits_beyond() -> None:
    items = items_of("hr:0:uint16", "hr:5:float32", "hr:30:uint16")
    reqs = plan_reads(items, ModbusLimits(max_gap=4))
    assert [(r.area, r.start, r.count) for r in reqs] == [("hr", 0, 7), ("hr", 30, 1)]
    reqs = plan_reads(items, ModbusLimits(max_gap=3))
    assert [(r.start, r.count) for r in reqs] == [(0, 1), (5, 2), (30, 1)]


def test_tables_are_separate() -> None:
    items = items_of("hr:0", "ir:0", "ir:1", "co:0", "di:0", "co:1")
    reqs = plan_reads(items, ModbusLimits())
    assert [(r.area, r.start, r.count, r.function_code) for r in reqs] == [
        ("co", 0, 2, 1), ("di", 0, 1, 2), ("hr", 0, 1, 3), ("ir", 0, 2, 4)]


def test_limit_never_exceeded_and_array_split_at_elements() -> None:
    items = items_of("hr:0:float32[100]")  # 200 registers
    reqs = plan_reads(items, ModbusLimits())
    assert [(r.start, r.count) for r in reqs] == [(0, 124), (124, 76)]
    assert [(p.first, p.count) for r in reqs for p in r.pieces] == [(0, 62), (62, 38)]
    coils = plan_reads(items_of("co:0:bool[4500]"), ModbusLimits())
    assert [r.count for r in coils] == [2000, 2000, 500]


def test_scalar_is_never_split() -> None:
    with pytest.raises(PlanError, match="never split"):
        plan_reads(items_of("hr:0:string<300>"), ModbusLimits())
    # a float64 does not straddle the 10-register limit: the request stops before it
    reqs = plan_reads(items_of("hr:0:uint16[8]", "hr:8:float64"), ModbusLimits(max_registers=10))
    assert [(r.start, r.count) for r in reqs] == [(0, 8), (8, 4)]


def test_bits_in_one_register_share_the_read() -> None:
    reqs = plan_reads(items_of("hr:7.0", "hr:7.3", "hr:7.15", "hr:8"), ModbusLimits())
    assert [(r.start, r.count) for r in reqs] == [(7, 2)]
    assert len(reqs[0].pieces) == 4


def test_holes_are_avoided_and_tags_inside_are_left_out() -> None:
    items = items_of("hr:0", "hr:4", "hr:10:float32")
    holes = HoleMemory({"hr": [(2, 3)]})
    reqs = plan_reads(items, ModbusLimits(), holes)
    assert [(r.start, r.count) for r in reqs] == [(0, 1), (4, 8)]
    holes.add("hr", 10, 11)  # the float lies in a hole: not requested
    reqs = plan_reads(items, ModbusLimits(), holes)
    assert [(r.start, r.count) for r in reqs] == [(0, 1), (4, 1)]


def test_hole_memory_merges_and_versions() -> None:
    h = HoleMemory()
    assert h.add("hr", 5, 8) and h.version == 1
    assert not h.add("hr", 6, 7) and h.version == 1
    assert h.add("hr", 8, 10)
    assert h.ranges("hr") == ((5, 10),)
    assert h.covers("hr", 5, 10) and not h.covers("hr", 4, 6)
    h.clear()
    assert not h and h.version == 3


def test_limits_validation() -> None:
    lim = ModbusLimits(max_registers=60, max_gap=4, max_bit_gap=64)
    assert (lim.max_registers, lim.max_gap, lim.max_bit_gap) == (60, 4, 64)
    with pytest.raises(ValueError, match="max_registers"):
        ModbusLimits(max_registers=126)
    with pytest.raises(ValueError, match="max_write_registers"):
        ModbusLimits(max_write_registers=124)


# -- writes ------------------------------------------------------------------------------------

def test_writes_coalesce_adjacent_registers_and_coils() -> None:
    chunks = [WriteChunk("hr", 10, (1,), 1, "a"), WriteChunk("hr", 11, (2, 3), 2, "b"),
              WriteChunk("hr", 20, (9,), 1, "c"), WriteChunk("co", 0, (True,), 1, "d"),
              WriteChunk("co", 1, (False, True), 1, "e"), WriteChunk("co", 5, (True,), 1, "f")]
    reqs = plan_writes(chunks, ModbusLimits())
    assert [(r.function_code, r.start, r.values) for r in reqs] == [
        (15, 0, (True, False, True)), (5, 5, (True,)), (16, 10, (1, 2, 3)), (6, 20, (9,))]
    assert reqs[2].tags == ("a", "b")
    multiple = plan_writes(chunks, ModbusLimits(), single_as_multiple=True)
    assert [r.function_code for r in multiple] == [15, 15, 16, 16]


def test_writes_never_split_a_value_and_respect_limits() -> None:
    chunks = [WriteChunk("hr", 0, tuple(range(8)), 2, "arr"),
              WriteChunk("hr", 8, (1, 2, 3, 4), 4, "f64")]
    reqs = plan_writes(chunks, ModbusLimits(max_write_registers=7))
    assert [(r.start, r.count) for r in reqs] == [(0, 6), (6, 6)]  # cuts only between values
    with pytest.raises(PlanError):
        plan_writes([WriteChunk("hr", 0, tuple(range(10)), 10, "s")],
                    ModbusLimits(max_write_registers=8))


def test_later_write_to_the_same_register_wins() -> None:
    reqs = plan_writes([WriteChunk("hr", 0, (1, 2)), WriteChunk("hr", 1, (7,))], ModbusLimits())
    assert [(r.start, r.values) for r in reqs] == [(0, (1, 7))]
