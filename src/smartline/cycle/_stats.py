"""Cycle timing statistics: per-task histograms of cycle time, lateness and phase times.

Storage, percentiles and the portable encoding are HdrHistogram's (the ``hdrhistogram``
package, 3 significant figures over 1 ns .. 60 s). Recording is not: the package's
``record_value`` is pure Python (≈3 µs a value, 15 µs a cycle for five series), so the tick
thread records a whole cycle in one call of a numba kernel that computes HdrHistogram's
bucket index into a preallocated counts matrix (≈1 µs a cycle, no allocation). A reader
copies a row into an :class:`hdrh.histogram.HdrHistogram` only when asked
(:meth:`TimingRecorder.histogram`), e.g. to encode it into the stats file. See
``docs/decisions/0006-cycle-histograms.md``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram
from numba import njit
from numpy.typing import NDArray

__all__ = [
    "SERIES",
    "STATS_SCHEMA",
    "Alarm",
    "EngineStats",
    "IoCounters",
    "SeriesStats",
    "TaskStats",
    "TimingRecorder",
]

STATS_SCHEMA = "smartline.cycle-stats/1"

SERIES: tuple[str, ...] = ("cycle", "lateness", "inputs", "logic", "outputs")
"""Timing series of a task, in the order of :attr:`TimingRecorder.values`."""

CYCLE, LATENESS, INPUTS, LOGIC, OUTPUTS = range(len(SERIES))

_LOWEST_NS = 1
_HIGHEST_NS = 60_000_000_000
_DIGITS = 3
_PERCENTILES = (50.0, 99.0, 99.9)

# layout of the summary matrix, one row per series
_COUNT, _MIN, _MAX, _SUM = range(4)


@njit(cache=True)  # type: ignore[misc]  # inside the compiled loop (nogil there)
def _record(counts: NDArray[np.int64], summary: NDArray[np.int64],
            values: NDArray[np.int64], params: NDArray[np.int64]) -> None:  # pragma: no cover
    """Add one value per series (negative = not measured) to the histograms; reset values to -1."""
    unit_magnitude = params[0]
    half_count_magnitude = params[1]
    sub_bucket_mask = params[2]
    half_count = params[3]
    counts_len = params[4]
    for s in range(values.shape[0]):
        v = values[s]
        values[s] = -1
        if v < 0:
            continue
        # HdrHistogram.counts_index_for(v): bucket from the bit length of (v | mask)
        x = v | sub_bucket_mask
        bit_length = 0
        while x:
            x >>= 1
            bit_length += 1
        bucket = bit_length - unit_magnitude - (half_count_magnitude + 1)
        sub_bucket = v >> (bucket + unit_magnitude)
        index = ((bucket + 1) << half_count_magnitude) + (sub_bucket - half_count)
        if index >= counts_len:
            index = counts_len - 1  # beyond 60 s: clamped; the exact max is kept below
        counts[s, index] += 1
        row = summary[s]
        if row[_COUNT] == 0 or v < row[_MIN]:
            row[_MIN] = v
        row[_MAX] = max(row[_MAX], v)
        row[_COUNT] += 1
        row[_SUM] += v


@dataclass(frozen=True, slots=True)
class SeriesStats:
    """Summary of one timing series, in nanoseconds (``count`` values recorded)."""

    count: int
    min_ns: int
    mean_ns: float
    p50_ns: int
    p99_ns: int
    p99_9_ns: int
    max_ns: int

    def as_dict(self) -> dict[str, float | int]:
        """The JSON form: microseconds, 3 decimals (the stats file's ``*_us`` fields)."""
        us = 1e-3
        return {
            "count": self.count,
            "min_us": round(self.min_ns * us, 3),
            "mean_us": round(self.mean_ns * us, 3),
            "p50_us": round(self.p50_ns * us, 3),
            "p99_us": round(self.p99_ns * us, 3),
            "p99_9_us": round(self.p99_9_ns * us, 3),
            "max_us": round(self.max_ns * us, 3),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SeriesStats:
        """Inverse of :meth:`as_dict` (to ns, rounded)."""
        return cls(int(d["count"]), round(d["min_us"] * 1e3), float(d["mean_us"]) * 1e3,
                   round(d["p50_us"] * 1e3), round(d["p99_us"] * 1e3),
                   round(d["p99_9_us"] * 1e3), round(d["max_us"] * 1e3))


EMPTY_SERIES = SeriesStats(0, 0, 0.0, 0, 0, 0, 0)


class TimingRecorder:
    """Histograms of one task's timing series, recorded once per cycle without allocation.

    The tick thread fills :attr:`values` (ns; ``-1`` = not measured) and calls
    :meth:`record`. Readers on other threads may call :meth:`series` or :meth:`histogram`
    at any time; a read racing a record may be off by that one cycle.
    """

    def __init__(self, series: Sequence[str] = SERIES) -> None:
        self.names: tuple[str, ...] = tuple(series)
        self._template = HdrHistogram(_LOWEST_NS, _HIGHEST_NS, _DIGITS)
        t = self._template
        n = len(self.names)
        self.counts: NDArray[np.int64] = np.zeros((n, t.counts_len), np.int64)
        self.summary: NDArray[np.int64] = np.zeros((n, 4), np.int64)
        self.values: NDArray[np.int64] = np.full(n, -1, np.int64)
        self._params = np.array([t.unit_magnitude, t.sub_bucket_half_count_magnitude,
                                 t.sub_bucket_mask, t.sub_bucket_half_count, t.counts_len],
                                np.int64)

    def warm_up(self) -> None:
        """Compile (or load from cache) the recording kernel outside the cycle."""
        n = self.counts.shape[1]
        _record(np.zeros((1, n), np.int64), np.zeros((1, 4), np.int64),
                np.ones(1, np.int64), self._params)

    def record(self) -> None:
        """Add :attr:`values` to the histograms and reset them to ``-1``."""
        _record(self.counts, self.summary, self.values, self._params)

    def reset(self) -> None:
        """Forget everything recorded."""
        self.counts.fill(0)
        self.summary.fill(0)

    def index(self, name: str) -> int:
        return self.names.index(name)

    def series(self, name: str) -> SeriesStats:
        """Count, min, mean, p50, p99, p99.9 and max of one series (ns)."""
        i = self.index(name)
        row = self.summary[i].copy()
        count = int(row[_COUNT])
        if count == 0:
            return EMPTY_SERIES
        t = self._template
        vmin, vmax = int(row[_MIN]), int(row[_MAX])
        last = t.counts_len - 1
        lo = min(t._counts_index_for(vmin), last)
        hi = min(t._counts_index_for(vmax), last) + 1
        cum = np.cumsum(self.counts[i, lo:hi])
        total = int(cum[-1])
        pcts: list[int] = []
        for p in _PERCENTILES:
            # HdrHistogram's get_value_at_percentile, vectorised over the recorded range
            target = max(int(p * total / 100 + 0.5), 1)
            idx = lo + int(np.searchsorted(cum, target, side="left"))
            if idx >= last:  # the top bucket also holds everything beyond 60 s
                pcts.append(vmax)
                continue
            value = t.get_highest_equivalent_value(t.get_value_from_index(idx))
            pcts.append(min(int(value), vmax))
        return SeriesStats(count=count, min_ns=vmin, mean_ns=float(row[_SUM]) / count,
                           p50_ns=pcts[0], p99_ns=pcts[1], p99_9_ns=pcts[2], max_ns=vmax)

    def histogram(self, name: str) -> HdrHistogram:
        """A standalone HdrHistogram of one series (for encoding, merging, percentile tables)."""
        i = self.index(name)
        h = HdrHistogram(_LOWEST_NS, _HIGHEST_NS, _DIGITS)
        counts = self.counts[i].copy()
        np.ctypeslib.as_array(h.counts)[:] = counts.astype(np.uint64)
        nz = np.flatnonzero(counts)
        if len(nz):
            h.set_internal_tacking_values(int(nz[0]), int(nz[-1]), int(counts.sum()))
        return h

    def encoded(self, name: str) -> str:
        """The series as a compressed, base64 HdrHistogram blob (V2 format)."""
        blob = self.histogram(name).encode()
        return blob.decode("ascii") if isinstance(blob, bytes) else str(blob)


@dataclass(slots=True)
class IoCounters:
    """I/O outcomes of one task, counted by its tick thread."""

    reads: int = 0  # reads started
    reads_late: int = 0  # synchronous reads not finished by the task's I/O deadline
    requests: int = 0  # wire requests reported by the drivers for completed reads
    stale_reads: int = 0  # device shares of a read cut off at the deadline (tags STALE)
    failed_reads: int = 0  # device shares that failed (tags BAD)
    writes: int = 0  # output batches sent
    written_tags: int = 0
    write_errors: int = 0
    writes_refused: int = 0  # outputs refused before sending (limits, type)
    writes_deferred: int = 0  # cycles whose changed outputs waited for a batch still in flight

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__slots__}  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Alarm:
    """A fault the engine raised: logged at ERROR and kept in the statistics."""

    time_ns: int  # wall clock
    task: str
    kind: str  # "watchdog" | "overrun" | "program" | "io"
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"time": _iso(self.time_ns), "task": self.task, "kind": self.kind,
                "message": self.message}


@dataclass(frozen=True, slots=True)
class TaskStats:
    """A snapshot of one task's counters and timing (see docs/reference/cycle.md)."""

    name: str
    period_ns: int
    overrun_policy: str
    state: str  # "idle" | "running" | "stopped" | "faulted"
    cycles: int
    overruns: int
    skipped: int
    max_overruns_in_row: int
    timing: Mapping[str, SeriesStats]
    io: IoCounters
    watchdog_time_ns: int | None = None
    watchdog_sensitivity: int | None = None
    watchdog_tripped: bool = False
    fault: str | None = None
    realtime: Mapping[str, object] = field(default_factory=dict)
    read_requests_planned: int = 0  # wire requests one read of the task's group sends
    pushed_tags: int = 0  # tags the task takes from pushes, not reads
    hdr: Mapping[str, str] = field(default_factory=dict)  # series -> encoded HdrHistogram

    def __getitem__(self, series: str) -> SeriesStats:
        return self.timing[series]

    def as_dict(self) -> dict[str, object]:
        wd: dict[str, object] | None = None
        if self.watchdog_time_ns is not None:
            wd = {"time_ms": self.watchdog_time_ns / 1e6, "sensitivity": self.watchdog_sensitivity,
                  "tripped": self.watchdog_tripped}
        out: dict[str, object] = {
            "period_ms": self.period_ns / 1e6,
            "overrun_policy": self.overrun_policy,
            "state": self.state,
            "fault": self.fault,
            "cycles": self.cycles,
            "overruns": self.overruns,
            "skipped": self.skipped,
            "max_overruns_in_row": self.max_overruns_in_row,
            "watchdog": wd,
            "realtime": dict(self.realtime),
            "io": {**self.io.as_dict(), "read_requests_planned": self.read_requests_planned,
                   "pushed_tags": self.pushed_tags},
            "timing": {k: v.as_dict() for k, v in self.timing.items()},
        }
        if self.hdr:
            out["hdr"] = dict(self.hdr)
        return out


@dataclass(frozen=True, slots=True)
class EngineStats:
    """Statistics of every task of a run, as written by ``smartline run --stats FILE.json``."""

    line: str
    clock: str  # "monotonic" | "virtual" | class name
    started_ns: int  # wall clock
    elapsed_s: float
    tasks: Mapping[str, TaskStats]
    alarms: Sequence[Alarm] = ()
    devices: Mapping[str, Mapping[str, object]] = field(default_factory=dict)

    def __getitem__(self, task: str) -> TaskStats:
        return self.tasks[task]

    @property
    def faulted(self) -> bool:
        return any(t.state == "faulted" for t in self.tasks.values())

    def as_dict(self) -> dict[str, object]:
        return {
            "schema": STATS_SCHEMA,
            "line": self.line,
            "clock": self.clock,
            "started": _iso(self.started_ns),
            "elapsed_s": round(self.elapsed_s, 6),
            "tasks": {k: v.as_dict() for k, v in self.tasks.items()},
            "alarms": [a.as_dict() for a in self.alarms],
            "devices": {k: dict(v) for k, v in self.devices.items()},
        }

    def write_json(self, path: str | os.PathLike[str]) -> Path:
        """Write the stats file atomically (temp file + rename)."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text(json.dumps(self.as_dict(), indent=2, default=_json_default) + "\n",
                       encoding="utf-8")
        os.replace(tmp, p)
        return p


def _json_default(o: object) -> object:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return str(o)


def _iso(wall_ns: int) -> str:
    return (datetime.fromtimestamp(wall_ns / 1e9, tz=UTC)
            .isoformat(timespec="microseconds").replace("+00:00", "Z"))
