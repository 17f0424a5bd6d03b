"""Timing histograms: the numba recorder matches HdrHistogram exactly; JSON round trip."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram

from smartline.cycle import SeriesStats, TimingRecorder
from smartline.cycle._stats import _record


def values(seed: int, n: int) -> list[int]:
    rng = random.Random(seed)
    return [min(int(rng.lognormvariate(10, 2.5)), 59_000_000_000) for _ in range(n)]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_recorder_buckets_and_percentiles_match_hdrhistogram(seed: int) -> None:
    rec = TimingRecorder(("x",))
    ref = HdrHistogram(1, 60_000_000_000, 3)
    for v in values(seed, 5000):
        rec.values[0] = v
        rec.record()
        ref.record_value(v)
    assert np.array_equal(rec.counts[0].astype(np.uint64), np.ctypeslib.as_array(ref.counts))
    s = rec.series("x")
    assert s.count == 5000
    assert s.p50_ns == ref.get_value_at_percentile(50)
    assert s.p99_ns == ref.get_value_at_percentile(99)
    assert s.p99_9_ns == min(ref.get_value_at_percentile(99.9), s.max_ns)
    assert s.max_ns == max(values(seed, 5000)) and s.min_ns == min(values(seed, 5000))


def test_negative_values_are_not_recorded_and_values_reset() -> None:
    rec = TimingRecorder(("a", "b"))
    rec.values[:] = [5, -1]
    rec.record()
    assert rec.values.tolist() == [-1, -1]
    assert rec.series("a").count == 1 and rec.series("b").count == 0
    assert rec.series("b") == SeriesStats(0, 0, 0.0, 0, 0, 0, 0)


def test_values_beyond_range_are_clamped_but_max_is_exact() -> None:
    rec = TimingRecorder(("a",))
    rec.values[0] = 120_000_000_000
    rec.record()
    s = rec.series("a")
    assert s.max_ns == 120_000_000_000 and s.p99_ns == 120_000_000_000


def test_histogram_export_encodes_and_decodes() -> None:
    rec = TimingRecorder(("a",))
    for v in (100, 200, 300, 1_000_000):
        rec.values[0] = v
        rec.record()
    h = HdrHistogram.decode(rec.encoded("a"))
    assert h.get_total_count() == 4
    assert h.get_value_at_percentile(50) == rec.histogram("a").get_value_at_percentile(50)


def test_series_dict_round_trip() -> None:
    s = SeriesStats(10, 1000, 1500.5, 1200, 2000, 2500, 3000)
    d = s.as_dict()
    assert d["p99_us"] == 2.0 and d["mean_us"] == 1.5
    assert SeriesStats.from_dict(d) == SeriesStats(10, 1000, 1500.0, 1200, 2000, 2500, 3000)


def test_record_kernel_does_not_allocate() -> None:
    from smartline.testing.budget import assert_no_allocation

    rec = TimingRecorder()
    rec.values[:] = 1234
    assert_no_allocation(_record, rec.counts, rec.summary, rec.values, rec._params)
