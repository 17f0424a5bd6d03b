"""KPIs on hand-built PackML state histories, with the expected numbers computed by hand."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from smartline.northbound.report import (
    Bucket,
    LineHistory,
    bucket_of,
    intervals,
    kpis,
    parse_design_speeds,
    parse_since,
)
from smartline.northbound.report._history import CounterRow, StateRow, counter_delta
from smartline.northbound.report._kpi import (
    best_observed_rate,
    downtime_by_reason,
    failures,
    oee_by_period,
)
from smartline.recipes.packml import State, UnitMode

S = 1_000_000_000
P, MAINT = int(UnitMode.PRODUCTION), int(UnitMode.MAINTENANCE)


@dataclass(frozen=True)
class Ch:  # a state change
    t_ns: int
    state: int
    mode: int = P
    reason: float | None = None
    run: int = 1


@dataclass(frozen=True)
class Cnt:  # a counter delta
    t_ns: int
    produced: float
    defective: float = 0.0


def history(*changes: tuple[float, State] | tuple[float, State, float]) -> list[Ch]:
    return [Ch(round(c[0] * S), int(c[1]), reason=c[2] if len(c) == 3 else None)
            for c in changes]


# 0 IDLE | 10 EXECUTE | 50 HELD (reason 7) | 60 EXECUTE | 80 SUSPENDED | 90 EXECUTE | 100 end
BASIC = history((0, State.IDLE), (10, State.EXECUTE), (50, State.HELD, 7),
                (60, State.EXECUTE), (80, State.SUSPENDED), (90, State.EXECUTE))
BASIC_COUNTS = [Cnt(20 * S, 40), Cnt(45 * S, 40, 4), Cnt(70 * S, 30, 2), Cnt(95 * S, 10)]


def test_buckets_of_every_state() -> None:
    run = {State.EXECUTE}
    down = {State.HOLDING, State.HELD, State.UNHOLDING, State.ABORTING, State.ABORTED,
            State.CLEARING, State.STOPPING, State.STOPPED}
    starved = {State.SUSPENDING, State.SUSPENDED, State.UNSUSPENDING}
    setup = {State.IDLE, State.STARTING, State.RESETTING, State.COMPLETING, State.COMPLETE}
    assert run | down | starved | setup == set(State)
    for s in State:
        expected = (Bucket.RUN if s in run else Bucket.DOWN if s in down
                    else Bucket.STARVED_BLOCKED if s in starved else Bucket.SETUP)
        assert bucket_of(s, P) is expected, s
        assert bucket_of(s, MAINT) is Bucket.OTHER_MODE
        assert bucket_of(s, int(UnitMode.MANUAL)) is Bucket.OTHER_MODE


def test_oee_mtbf_mttr_by_hand() -> None:
    ivs = intervals(BASIC, {1: 100 * S})
    assert [(iv.start_ns // S, iv.end_ns // S) for iv in ivs] == [
        (0, 10), (10, 50), (50, 60), (60, 80), (80, 90), (90, 100)]
    k = kpis(ivs, BASIC_COUNTS, ideal_rate_per_s=2.0)  # design speed 120 / min
    # run 40 + 20 + 10 = 70 s; down 10 (HELD); setup 10 (IDLE); starved 10 (SUSPENDED)
    assert k.time_ns[Bucket.RUN] == 70 * S
    assert k.time_ns[Bucket.DOWN] == 10 * S
    assert k.time_ns[Bucket.SETUP] == 10 * S
    assert k.time_ns[Bucket.STARVED_BLOCKED] == 10 * S
    assert k.planned_ns == 90 * S  # starved/blocked is not the machine's planned time
    assert k.availability == pytest.approx(70 / 90)
    assert k.counts.total == 120 and k.counts.good == 114
    assert k.performance == pytest.approx(120 / (2.0 * 70))
    assert k.quality == pytest.approx(114 / 120)
    assert k.oee == pytest.approx(70 / 90 * 120 / 140 * 114 / 120)  # 0.6333
    assert k.oee == pytest.approx(0.63333, abs=1e-5)
    # one failure (EXECUTE -> HELD at 50 s), restored at 60 s
    assert k.failures == 1 and k.open_failures == 0
    assert k.mtbf_s == pytest.approx(70.0)
    assert k.mttr_s == pytest.approx(10.0)


def test_failures_abort_path_stop_is_not_a_failure_and_open_failure() -> None:
    ch = history(
        (0, State.EXECUTE),
        (30, State.ABORTING), (31, State.ABORTED), (40, State.CLEARING), (42, State.STOPPED),
        (45, State.RESETTING), (46, State.IDLE), (48, State.STARTING), (50, State.EXECUTE),
        (70, State.STOPPING), (71, State.STOPPED), (75, State.RESETTING), (76, State.IDLE),
        (77, State.STARTING), (78, State.EXECUTE),
        (88, State.HOLDING), (89, State.HELD))
    ivs = intervals(ch, {1: 100 * S})
    fs = failures(ivs)
    assert [(f.t_ns // S, State(f.state).name, f.ttr_ns) for f in fs] == [
        (30, "ABORTING", 20 * S), (88, "HOLDING", None)]
    k = kpis(ivs, [], ideal_rate_per_s=None)
    # run: 0-30, 50-70, 78-88 = 60 s; two failures; MTTR over the restored one only
    assert k.run_ns == 60 * S
    assert k.failures == 2 and k.open_failures == 1
    assert k.mtbf_s == pytest.approx(30.0)
    assert k.mttr_s == pytest.approx(20.0)
    # down: ABORTING..STOPPED 30-45 (15) + STOPPING/STOPPED 70-75 (5) + HOLDING/HELD 88-100 (12)
    assert k.time_ns[Bucket.DOWN] == 32 * S
    # nothing counted: no performance, no quality, no OEE; availability 60 / 100
    assert k.performance is None and k.quality is None and k.oee is None
    assert k.availability == pytest.approx(0.6)


def test_other_modes_are_outside_planned_time() -> None:
    ch = [Ch(0, int(State.EXECUTE)), Ch(20 * S, int(State.STOPPED), MAINT),
          Ch(50 * S, int(State.EXECUTE))]
    k = kpis(intervals(ch, {1: 60 * S}), [Cnt(10 * S, 10)], ideal_rate_per_s=1.0)
    assert k.time_ns[Bucket.OTHER_MODE] == 30 * S
    assert k.planned_ns == 30 * S and k.availability == pytest.approx(1.0)
    assert k.performance == pytest.approx(10 / 30)


def test_intervals_per_run_clipped_by_since() -> None:
    ch = [Ch(0, int(State.EXECUTE), run=1), Ch(10 * S, int(State.HELD), run=1),
          Ch(100 * S, int(State.EXECUTE), run=2)]
    ivs = intervals(ch, {1: 20 * S, 2: 130 * S}, since_ns=5 * S)
    # run 1's HELD ends with run 1 (20 s), not when run 2 starts; the gap is nobody's time
    assert [(iv.run, iv.start_ns // S, iv.end_ns // S, iv.state) for iv in ivs] == [
        (1, 5, 10, State.EXECUTE), (1, 10, 20, State.HELD), (2, 100, 130, State.EXECUTE)]
    # HELD at the end of run 1 is not restored by run 2's EXECUTE: an open failure
    assert [f.ttr_ns for f in failures(ivs)] == [None]


def test_downtime_pareto_by_reason() -> None:
    ch = history((0, State.EXECUTE), (10, State.HELD, 7), (20, State.EXECUTE),
                 (30, State.ABORTING), (31, State.ABORTED), (50, State.EXECUTE),
                 (60, State.HOLDING), (61, State.HELD, 7), (65, State.UNHOLDING),
                 (66, State.EXECUTE), (70, State.SUSPENDED))
    pareto = downtime_by_reason({"filler": intervals(ch, {1: 80 * S})})
    # ABORTING+ABORTED 20 s without reason; reason 7: 10 s + (HOLDING, HELD, UNHOLDING) 6 s
    # (the reason given in HELD counts for the whole stop); SUSPENDED is not down time
    assert [(d.reason, d.down_ns // S, d.stops) for d in pareto] == [
        ("ABORTING (no stop reason)", 20, 1), ("reason 7", 16, 2)]
    assert pareto[0].share == pytest.approx(20 / 36)
    assert pareto[1].cumulative == pytest.approx(1.0)
    assert pareto[0].units == ("filler",)


def test_best_observed_rate_and_trend() -> None:
    # 0-60 s EXECUTE 60 parts (1/s); 60-120 s EXECUTE 30 s then HELD 30 s, 45 parts
    ch = history((0, State.EXECUTE), (90, State.HELD))
    counts = [Cnt(30 * S, 60), Cnt(80 * S, 45)]
    ivs = intervals(ch, {1: 120 * S})
    # windows of 60 s: 60 / 60 s = 1/s; 45 / 30 s run = 1.5/s (ran half the window)
    assert best_observed_rate(ivs, counts) == pytest.approx(1.5)
    assert best_observed_rate(ivs, counts, min_run_share=0.75) == pytest.approx(105 / 90)
    trend = oee_by_period(ivs, counts, period_ns=60 * S, ideal_rate_per_s=1.5)
    assert [(p.start_ns // S, p.end_ns // S) for p in trend] == [(0, 60), (60, 120)]
    assert trend[0].availability == pytest.approx(1.0)
    assert trend[0].performance == pytest.approx(60 / 90)
    assert trend[1].availability == pytest.approx(0.5)
    assert trend[1].performance == pytest.approx(1.0)
    assert trend[1].oee == pytest.approx(0.5)


def test_counter_delta_survives_resets() -> None:
    last: float | None = None  # the first reading is the baseline
    deltas = []
    for value in (10.0, 12.0, 12.0, 3.0, 5.0):  # reset to 0 between 12 and 3
        deltas.append(counter_delta(last, value))
        last = value
    assert deltas == [0.0, 2.0, 0.0, 3.0, 2.0]


def test_history_round_trip(tmp_path) -> None:
    with LineHistory(tmp_path / "h.db") as h:
        run = h.begin_run("l", "virtual", 5 * S)
        h.write(run, 6 * S, states=[StateRow(run, "u", 5 * S, int(State.HOLDING), P)],
                counters=[CounterRow(run, "u", 6 * S, 3.0, 1.0)])
        h.write(run, 7 * S, reasons=[("u", 5 * S, 12.0)], stopped=True)
        [r] = h.runs()
        assert (r.started_ns, r.stopped_ns, r.end_ns) == (5 * S, 7 * S, 7 * S)
        assert h.states("u") == [StateRow(run, "u", 5 * S, int(State.HOLDING), P, 12.0)]
        assert h.counters() == [CounterRow(run, "u", 6 * S, 3.0, 1.0)]
        assert h.runs(since_ns=8 * S) == []
    import sqlite3

    with sqlite3.connect(tmp_path / "h.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_parse_since_and_design_speeds() -> None:
    assert parse_since("2026-01-01") == 1_767_225_600 * S
    assert parse_since("2026-01-01T01:00:00+01:00") == 1_767_225_600 * S
    assert parse_since("2026-01-01T00:00:30Z") == 1_767_225_630 * S
    with pytest.raises(ValueError, match="--since 'yesterday'"):
        parse_since("yesterday")
    assert parse_design_speeds(["filler=120", "capper = 90.5"]) == {"filler": 120.0,
                                                                   "capper": 90.5}
    for bad in ("filler", "filler=0", "filler=fast", "=3", "filler=inf"):
        with pytest.raises(ValueError, match="expected UNIT=N"):
            parse_design_speeds([bad])
