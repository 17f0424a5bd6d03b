"""The S7 planner against an exhaustive optimum, and the PDU arithmetic one rule at a time."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smartline.drivers.s7 import (
    PlanError,
    ReadSpan,
    S7Limits,
    WriteSpan,
    pack,
    plan_reads,
    plan_writes,
    read_cost,
    write_cost,
)
from smartline.drivers.s7._planner import _first_fit_decreasing


def partitions(items: Sequence[int]) -> Iterator[list[list[int]]]:
    """Every partition of ``items`` into non-empty blocks."""
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for part in partitions(rest):
        for k in range(len(part)):
            yield [*part[:k], [first, *part[k]], *part[k + 1:]]
        yield [[first], *part]


def brute_force(costs: Sequence[int], capacity: int, max_items: int) -> int:
    best = len(costs)
    for part in partitions(list(range(len(costs)))):
        if len(part) < best and all(sum(costs[i] for i in b) <= capacity
                                    and len(b) <= max_items for b in part):
            best = len(part)
    return best


def check_read_plan(spans: Sequence[ReadSpan], limits: S7Limits) -> None:
    """Every byte of every span comes back; every job and its answer fit the PDU."""
    planned = plan_reads(spans, limits)
    covered: set[tuple[tuple[str, int], int]] = set()
    for req in planned.requests:
        assert 1 <= len(req) <= limits.read_items
        assert 12 + 12 * len(req) <= limits.pdu, "the job is larger than the PDU"
        answer = 14 + sum(read_cost(planned.pieces[k].length) for k in req)
        assert answer <= limits.pdu, "the answer is larger than the PDU"
        for k in req:
            pc = planned.pieces[k]
            covered.update((pc.key, b) for b in range(pc.start, pc.end))
    for s in spans:
        for b in range(s.start, s.end):
            assert (s.key, b) in covered, f"byte {b} of {s} is read by no job"
    assert sorted(k for req in planned.requests for k in req) == list(range(len(planned.pieces)))


# -- the PDU arithmetic ------------------------------------------------------------------------

@pytest.mark.parametrize(("pdu", "items", "largest"), [(240, 19, 222), (480, 20, 462),
                                                       (960, 20, 942)])
def test_limits_follow_the_pdu(pdu: int, items: int, largest: int) -> None:
    limits = S7Limits(pdu)
    assert limits.read_items == items  # (PDU − 12) // 12, at most 20
    assert limits.max_read_item == largest  # PDU − 18: one item's data
    assert limits.max_write_item == pdu - 28  # 12 + 12 + 4 + data
    assert S7Limits(pdu, max_items=5).read_items == 5


def test_costs_pad_to_even() -> None:
    assert read_cost(1) == 6 and read_cost(2) == 6 and read_cost(222) == 226
    assert write_cost(1) == 18 and write_cost(4) == 20


def test_twenty_scattered_reals_fit_one_job_at_480_but_not_at_240() -> None:
    spans = [ReadSpan(("DB", 1), 100 * k, 100 * k + 4) for k in range(20)]
    assert plan_reads(spans, S7Limits(480)).request_count == 1
    # 240: 19 items per job (12 + 12·20 = 252 > 240)
    assert plan_reads(spans, S7Limits(240)).request_count == 2


def test_max_gap_coalesces_neighbours() -> None:
    spans = [ReadSpan(("DB", 1), 0, 4), ReadSpan(("DB", 1), 10, 14)]
    assert len(plan_reads(spans, S7Limits(480, max_gap=0)).pieces) == 2
    planned = plan_reads(spans, S7Limits(480, max_gap=6))
    assert [(p.start, p.length) for p in planned.pieces] == [(0, 14)]
    # areas never merge
    other = [ReadSpan(("DB", 1), 0, 4), ReadSpan(("DB", 2), 4, 8), ReadSpan(("M", 0), 8, 9)]
    assert len(plan_reads(other, S7Limits(480, max_gap=100)).pieces) == 3


def test_a_large_area_is_split_across_pdus() -> None:
    spans = [ReadSpan(("DB", 1), 0, 1000, tuple(range(4, 1000, 4)))]
    planned = plan_reads(spans, S7Limits(240))
    assert planned.request_count == math.ceil(1000 / 222) == 5
    assert all(p.length % 4 == 0 for p in planned.pieces)  # cut between elements
    check_read_plan(spans, S7Limits(240))


def test_a_value_larger_than_a_pdu_is_read_in_pieces() -> None:
    spans = [ReadSpan(("DB", 1), 0, 256)]  # a STRING[254]
    planned = plan_reads(spans, S7Limits(240))
    assert [p.length for p in planned.pieces] == [222, 34]
    assert planned.request_count == 2
    assert planned.pieces[1].offset == 222  # contiguous in the buffer


def test_pack_rejects_an_item_larger_than_a_job() -> None:
    with pytest.raises(PlanError):
        pack([300], 226, 20)


# -- optimality --------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(5, 230), min_size=1, max_size=8), st.sampled_from([240, 480]),
       st.integers(1, 6))
def test_pack_is_optimal(costs: list[int], pdu: int, max_items: int) -> None:
    capacity = pdu - 14
    costs = [min(c, capacity) for c in costs]
    bins, optimal = pack(costs, capacity, max_items)
    assert optimal
    assert sorted(i for b in bins for i in b) == list(range(len(costs)))
    assert all(sum(costs[i] for i in b) <= capacity and len(b) <= max_items for b in bins)
    assert len(bins) == brute_force(costs, capacity, max_items)


span_lists = st.lists(
    st.tuples(st.sampled_from([("DB", 1), ("DB", 2), ("M", 0)]), st.integers(0, 600),
              st.integers(1, 120)),
    min_size=1, max_size=7)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(span_lists, st.sampled_from([240, 480]), st.integers(0, 16), st.integers(2, 20))
def test_plan_reads_is_optimal_and_complete(raw: list[tuple[tuple[str, int], int, int]],
                                            pdu: int, gap: int, max_items: int) -> None:
    spans = [ReadSpan(key, start, start + n) for key, start, n in raw]
    limits = S7Limits(pdu, max_items=max_items, max_gap=gap)
    check_read_plan(spans, limits)
    planned = plan_reads(spans, limits)
    costs = [read_cost(p.length) for p in planned.pieces]
    if len(costs) <= 8:
        assert planned.optimal
        assert planned.request_count == brute_force(costs, limits.read_capacity,
                                                    limits.read_items)
    # never fewer jobs than the bytes or the items require
    assert planned.request_count >= math.ceil(sum(costs) / limits.read_capacity)


def test_exact_beats_first_fit_decreasing() -> None:
    # first-fit decreasing needs 3 jobs here (40+40, 30+30+30, 30); the optimum is 2
    costs = [40, 40, 30, 30, 30, 30]
    assert len(_first_fit_decreasing(costs, 100, 20)) == 3
    bins, optimal = pack(costs, 100, 20)
    assert optimal and len(bins) == brute_force(costs, 100, 20) == 2


# -- writes ------------------------------------------------------------------------------------

def test_writes_merge_touching_values_and_never_fill_gaps() -> None:
    spans = [WriteSpan(("DB", 1), 0, b"\x00\x01", unit=2, tag="a"),
             WriteSpan(("DB", 1), 2, b"\x00\x00\x00\x02", unit=4, tag="b"),
             WriteSpan(("DB", 1), 10, b"\x07\x07", unit=2, tag="c"),
             WriteSpan(("DB", 1), 6, b"\x01", bit=3, tag="d")]
    planned = plan_writes(spans, S7Limits(480))
    items = {(it.start, it.bit): it for it in planned.items}
    assert items[(0, None)].data == b"\x00\x01\x00\x00\x00\x02"
    assert items[(0, None)].tags == ("a", "b")
    assert items[(10, None)].data == b"\x07\x07"
    assert items[(6, 3)].data == b"\x01"
    for req in planned.requests:
        assert 12 + sum(planned.items[k].cost for k in req) <= 480


def test_a_long_write_is_cut_between_elements() -> None:
    data = bytes(range(200)) * 3  # 600 bytes of 4-byte elements
    planned = plan_writes([WriteSpan(("DB", 3), 0, data, unit=4, tag="big")], S7Limits(240))
    assert b"".join(it.data for it in planned.items) == data
    assert all(it.length <= 212 and it.length % 4 == 0 for it in planned.items)
    assert planned.request_count == len(planned.items) == 3


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 300), st.integers(1, 40)), min_size=1, max_size=10),
       st.sampled_from([240, 480]))
def test_writes_carry_every_byte_once_within_the_pdu(raw: list[tuple[int, int]],
                                                     pdu: int) -> None:
    spans = [WriteSpan(("DB", 1), s, bytes([k % 250 + 1]) * n, unit=1, tag=f"t{k}")
             for k, (s, n) in enumerate(raw)]
    expected: dict[int, int] = {}
    for s in spans:
        for i, b in enumerate(s.data):
            expected[s.start + i] = b
    planned = plan_writes(spans, S7Limits(pdu))
    written: dict[int, int] = {}
    for it in planned.items:
        for i, b in enumerate(it.data):
            assert it.start + i not in written
            written[it.start + i] = b
    assert written == expected
    for req in planned.requests:
        assert len(req) <= S7Limits(pdu).write_items
        assert 12 + sum(planned.items[k].cost for k in req) <= pdu
