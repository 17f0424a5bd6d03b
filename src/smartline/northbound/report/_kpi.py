"""KPIs from a line's history (issue #13): OEE = availability × performance × quality per
PackML unit and per period, MTBF, MTTR, downtime by stop reason. Pure functions over
state changes and counter deltas, so each number can be checked by hand
(docs/reference/report.md gives every definition).

PackML states → OEE buckets (research: practice after ISA-TR88.00.02 and ISO 22400-2):

* **run**: EXECUTE in production mode;
* **down**: HOLDING, HELD, UNHOLDING, ABORTING, ABORTED, CLEARING, STOPPING, STOPPED;
* **setup**: IDLE, STARTING, RESETTING, COMPLETING, COMPLETE (no order or changeover schedule
  is known, so this waiting is planned time lost, reported apart from down);
* **starved/blocked**: SUSPENDING, SUSPENDED, UNSUSPENDING — the cause is outside the
  machine, so it is not part of its planned time (reported);
* **other mode**: any state outside production mode (maintenance, manual): not planned.

Planned time = the time recorded in production mode minus starved/blocked time, i.e. the
line is planned to produce whenever smartline runs it (trim with ``since``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from ...recipes.packml import State, UnitMode

__all__ = [
    "Bucket",
    "Counts",
    "Failure",
    "Interval",
    "Kpis",
    "PeriodKpis",
    "ReasonDowntime",
    "best_observed_rate",
    "bucket_of",
    "counts_between",
    "downtime_by_reason",
    "failures",
    "intervals",
    "kpis",
    "oee_by_period",
    "reason_label",
]

NS = 1_000_000_000


class Bucket(Enum):
    """Where a unit's time goes in OEE."""

    RUN = "run"
    DOWN = "down"
    SETUP = "setup"
    STARVED_BLOCKED = "starved/blocked"
    OTHER_MODE = "other mode"


_DOWN = frozenset({State.HOLDING, State.HELD, State.UNHOLDING, State.ABORTING, State.ABORTED,
                   State.CLEARING, State.STOPPING, State.STOPPED})
_STARVED = frozenset({State.SUSPENDING, State.SUSPENDED, State.UNSUSPENDING})
_FAILED = frozenset({State.HOLDING, State.HELD, State.ABORTING, State.ABORTED})


def bucket_of(state: int, mode: int) -> Bucket:
    """The OEE bucket of a PackML state number in a unit mode number."""
    if mode != UnitMode.PRODUCTION:
        return Bucket.OTHER_MODE
    if state == State.EXECUTE:
        return Bucket.RUN
    if state in _DOWN:
        return Bucket.DOWN
    if state in _STARVED:
        return Bucket.STARVED_BLOCKED
    return Bucket.SETUP


@dataclass(frozen=True, slots=True)
class Interval:
    """A unit stayed in ``state``/``mode`` from ``start_ns`` to ``end_ns`` (one run)."""

    run: int
    start_ns: int
    end_ns: int
    state: int
    mode: int
    reason: float | None = None

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns

    @property
    def bucket(self) -> Bucket:
        return bucket_of(self.state, self.mode)


class _StateLike(Protocol):
    @property
    def run(self) -> int: ...
    @property
    def t_ns(self) -> int: ...
    @property
    def state(self) -> int: ...
    @property
    def mode(self) -> int: ...
    @property
    def reason(self) -> float | None: ...


class _CountLike(Protocol):
    @property
    def t_ns(self) -> int: ...
    @property
    def produced(self) -> float: ...
    @property
    def defective(self) -> float: ...


def intervals(changes: Iterable[_StateLike], run_ends: Mapping[int, int], *,
              since_ns: int | None = None, until_ns: int | None = None) -> list[Interval]:
    """One unit's state changes (by time) as intervals; each run's last state lasts until
    the run's end (``run_ends``: run id → end). Clipped to [``since_ns``, ``until_ns``]."""
    ordered = sorted(changes, key=lambda c: (c.run, c.t_ns))
    out: list[Interval] = []
    for i, c in enumerate(ordered):
        nxt = ordered[i + 1] if i + 1 < len(ordered) else None
        end = nxt.t_ns if nxt is not None and nxt.run == c.run else run_ends.get(c.run, c.t_ns)
        start = c.t_ns
        if since_ns is not None:
            start = max(start, since_ns)
        if until_ns is not None:
            end = min(end, until_ns)
        if end > start:
            out.append(Interval(c.run, start, end, c.state, c.mode, c.reason))
    return out


@dataclass(frozen=True, slots=True)
class Counts:
    """Parts a unit processed (total) and got right (good) in some time."""

    total: float = 0.0
    defective: float = 0.0

    @property
    def good(self) -> float:
        return self.total - self.defective


def counts_between(deltas: Iterable[_CountLike], start_ns: int | None = None,
                   end_ns: int | None = None) -> Counts:
    """Counter deltas stamped in [``start_ns``, ``end_ns``)."""
    total = defective = 0.0
    for d in deltas:
        if (start_ns is None or d.t_ns >= start_ns) and (end_ns is None or d.t_ns < end_ns):
            total += d.produced
            defective += d.defective
    return Counts(total, min(defective, total))


def _time_in(ivs: Iterable[Interval], start_ns: int | None = None,
             end_ns: int | None = None) -> dict[Bucket, int]:
    out = dict.fromkeys(Bucket, 0)
    for iv in ivs:
        a = iv.start_ns if start_ns is None else max(iv.start_ns, start_ns)
        b = iv.end_ns if end_ns is None else min(iv.end_ns, end_ns)
        if b > a:
            out[iv.bucket] += b - a
    return out


@dataclass(frozen=True, slots=True)
class Kpis:
    """OEE and its factors for one unit over some time; a factor is None where its
    denominator is 0 (nothing planned, never ran, nothing counted)."""

    planned_ns: int
    time_ns: Mapping[Bucket, int]
    counts: Counts
    ideal_rate_per_s: float | None
    availability: float | None
    performance: float | None
    quality: float | None
    failures: int = 0
    mtbf_s: float | None = None  # run time / failures; None without a failure
    mttr_s: float | None = None  # mean time to restoration of the restored failures
    open_failures: int = 0  # failures not restored when the history ends

    @property
    def oee(self) -> float | None:
        if self.availability is None or self.performance is None or self.quality is None:
            return None
        return self.availability * self.performance * self.quality

    @property
    def run_ns(self) -> int:
        return self.time_ns[Bucket.RUN]


def _factors(times: Mapping[Bucket, int], counts: Counts, ideal_rate_per_s: float | None,
             cap: bool) -> tuple[int, float | None, float | None, float | None]:
    planned = times[Bucket.RUN] + times[Bucket.DOWN] + times[Bucket.SETUP]
    run = times[Bucket.RUN]
    a = run / planned if planned > 0 else None
    p = None
    if run > 0 and ideal_rate_per_s:
        p = counts.total / (ideal_rate_per_s * run / NS)
        if cap:
            p = min(p, 1.0)
    q = counts.good / counts.total if counts.total > 0 else None
    return planned, a, p, q


def kpis(ivs: Sequence[Interval], deltas: Sequence[_CountLike], *,
         ideal_rate_per_s: float | None) -> Kpis:
    """OEE factors, MTBF and MTTR of one unit over its intervals (time clipped already).

    Availability = run / planned; performance = total count / (ideal rate × run time);
    quality = good / total. Counts are those stamped inside the intervals' span."""
    times = _time_in(ivs)
    counts = counts_between(deltas, ivs[0].start_ns, ivs[-1].end_ns + 1) if ivs else Counts()
    planned, a, p, q = _factors(times, counts, ideal_rate_per_s, cap=False)
    fs = failures(ivs)
    restored = [f.ttr_ns for f in fs if f.ttr_ns is not None]
    run_s = times[Bucket.RUN] / NS
    return Kpis(planned_ns=planned, time_ns=times, counts=counts,
                ideal_rate_per_s=ideal_rate_per_s, availability=a, performance=p, quality=q,
                failures=len(fs), mtbf_s=run_s / len(fs) if fs else None,
                mttr_s=sum(restored) / len(restored) / NS if restored else None,
                open_failures=sum(1 for f in fs if f.ttr_ns is None))


@dataclass(frozen=True, slots=True)
class Failure:
    """A unit left EXECUTE for HOLDING/HELD/ABORTING/ABORTED at ``t_ns``; restored when it
    was back in EXECUTE (``ttr_ns``: time to restoration; None: not within the run)."""

    run: int
    t_ns: int
    state: int
    ttr_ns: int | None
    reason: float | None = None


def failures(ivs: Sequence[Interval]) -> list[Failure]:
    """Failures: an interval in EXECUTE followed directly (same run, no gap) by HOLDING,
    HELD, ABORTING or ABORTED; restoration: the next EXECUTE in the same run."""
    out: list[Failure] = []
    for i in range(1, len(ivs)):
        prev, cur = ivs[i - 1], ivs[i]
        if not (prev.state == State.EXECUTE and cur.state in _FAILED
                and prev.run == cur.run and prev.end_ns == cur.start_ns):
            continue
        ttr = None
        reason = cur.reason
        for later in ivs[i + 1:]:
            if later.run != cur.run:
                break
            if reason is None and later.state in _DOWN:
                reason = later.reason
            if later.state == State.EXECUTE:
                ttr = later.start_ns - cur.start_ns
                break
        out.append(Failure(cur.run, cur.start_ns, cur.state, ttr, reason))
    return out


def best_observed_rate(ivs: Sequence[Interval], deltas: Sequence[_CountLike], *,
                       window_ns: int = 60 * NS, min_run_share: float = 0.5) -> float | None:
    """The ideal rate when no design speed is given: the highest count per second of run
    time over the windows (``window_ns``, aligned to the first interval) in which the unit
    ran at least ``min_run_share`` of the window — and at least the overall rate, so that
    the whole span's performance is at most 1. None if it never ran or counted."""
    if not ivs:
        return None
    times = _time_in(ivs)
    total = counts_between(deltas, ivs[0].start_ns, ivs[-1].end_ns + 1).total
    run = times[Bucket.RUN]
    if run <= 0 or total <= 0:
        return None
    best = total / (run / NS)
    t0, end = ivs[0].start_ns, ivs[-1].end_ns
    start = t0
    while start < end:
        stop = start + window_ns
        r = _time_in(ivs, start, stop)[Bucket.RUN]
        if r >= min_run_share * min(window_ns, end - start) and r > 0:
            c = counts_between(deltas, start, stop).total
            best = max(best, c / (r / NS))
        start = stop
    return best


@dataclass(frozen=True, slots=True)
class PeriodKpis:
    """OEE of one unit in one period of the trend (performance capped at 1)."""

    start_ns: int
    end_ns: int
    availability: float | None
    performance: float | None
    quality: float | None

    @property
    def oee(self) -> float | None:
        if self.availability is None or self.performance is None or self.quality is None:
            return None
        return self.availability * self.performance * self.quality


def oee_by_period(ivs: Sequence[Interval], deltas: Sequence[_CountLike], *,
                  period_ns: int, ideal_rate_per_s: float | None,
                  origin_ns: int | None = None) -> list[PeriodKpis]:
    """The OEE trend: the factors in consecutive periods of ``period_ns`` from
    ``origin_ns`` (default: the first interval's start) to the last interval's end."""
    if not ivs:
        return []
    t = ivs[0].start_ns if origin_ns is None else origin_ns
    end = ivs[-1].end_ns
    out: list[PeriodKpis] = []
    while t < end:
        stop = t + period_ns
        times = _time_in(ivs, t, stop)
        counts = counts_between(deltas, t, stop)
        _, a, p, q = _factors(times, counts, ideal_rate_per_s, cap=True)
        out.append(PeriodKpis(t, stop, a, p, q))
        t = stop
    return out


@dataclass(frozen=True, slots=True)
class ReasonDowntime:
    """Down time of one stop reason (a Pareto bar)."""

    reason: str
    down_ns: int
    stops: int
    share: float  # of all down time
    cumulative: float  # share of this and every bigger reason
    units: tuple[str, ...] = field(default_factory=tuple)


def reason_label(reason: float | None, state: int) -> str:
    """``reason 12`` for a PackTags stop reason id; the down state's name without one."""
    if reason is not None:
        return f"reason {int(reason) if float(reason).is_integer() else reason}"
    try:
        return f"{State(state).name} (no stop reason)"
    except ValueError:
        return f"state {state} (no stop reason)"


def downtime_by_reason(by_unit: Mapping[str, Sequence[Interval]]) -> list[ReasonDowntime]:
    """Down time (bucket *down*) grouped by stop reason, biggest first. A stop is a run of
    contiguous down intervals of one unit; its reason is the first one given in it (else
    the name of the state it entered), and all its down time goes to that reason."""
    time: dict[str, int] = {}
    stops: dict[str, int] = {}
    units: dict[str, set[str]] = {}
    for unit, ivs in by_unit.items():
        for stop in _stops(ivs):
            reason = next((iv.reason for iv in stop if iv.reason is not None), None)
            label = reason_label(reason, stop[0].state)
            stops[label] = stops.get(label, 0) + 1
            time[label] = time.get(label, 0) + sum(iv.duration_ns for iv in stop)
            units.setdefault(label, set()).add(unit)
    total = sum(time.values())
    out: list[ReasonDowntime] = []
    cum = 0
    for label in sorted(time, key=lambda k: (-time[k], k)):
        cum += time[label]
        out.append(ReasonDowntime(label, time[label], stops[label],
                                  time[label] / total if total else 0.0,
                                  cum / total if total else 0.0, tuple(sorted(units[label]))))
    return out


def _stops(ivs: Sequence[Interval]) -> list[list[Interval]]:
    """Contiguous runs of down intervals (same run, each starting where the last ended)."""
    out: list[list[Interval]] = []
    current: list[Interval] = []
    for iv in ivs:
        if iv.bucket is not Bucket.DOWN:
            current = []
            continue
        if current and (current[-1].run != iv.run or current[-1].end_ns != iv.start_ns):
            current = []
        if not current:
            out.append(current)
        current.append(iv)
    return out
