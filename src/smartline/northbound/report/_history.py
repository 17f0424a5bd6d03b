"""The line's history for KPIs and the report (issue #13): what each PackML unit did, what
it counted, how the devices, tags and tasks fared, in one SQLite file (WAL) per line.

:class:`LineHistory` owns the file (default ``$SMARTLINE_STATE_DIR/history-<line>.db``);
:class:`HistoryRecorder` is an engine service (about once a second) that appends to it:
state and mode changes (with the stop reason at an entry into a down state), counter
deltas (robust to counter resets), device connection changes, per-tag time GOOD, and the
cycle statistics of every task. Times are wall-clock nanoseconds (the engine clock's).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import sqlite3
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ...core import Quality, SmartlineError, SqliteKind, state_dir
from ...recipes.packml import State

if TYPE_CHECKING:
    from ...cycle import Engine
    from ...line import Line

__all__ = [
    "DOWN_ENTRY_STATES",
    "CounterRow",
    "CycleRow",
    "HealthRow",
    "HistoryRecorder",
    "LineHistory",
    "RunRow",
    "StateRow",
    "TagQualityRow",
    "counter_delta",
    "default_history_path",
    "recorder_attach",
]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
RECORD_PERIOD_NS = 1_000_000_000
"""The recorder's default period as an engine service (1 s)."""

_STATS_EVERY_NS = 10_000_000_000  # cycle statistics (with histograms) written every 10 s

DOWN_ENTRY_STATES = frozenset({State.HOLDING, State.HELD, State.ABORTING, State.ABORTED,
                               State.STOPPING, State.STOPPED})
"""States whose entry records the unit's stop reason (``<unit>.stop_reason``)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY, line TEXT NOT NULL, clock TEXT NOT NULL,
    started_ns INTEGER NOT NULL, stopped_ns INTEGER, last_ns INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS unit_states (
    run INTEGER NOT NULL, unit TEXT NOT NULL, t_ns INTEGER NOT NULL,
    state INTEGER NOT NULL, mode INTEGER NOT NULL, reason REAL);
CREATE INDEX IF NOT EXISTS unit_states_t ON unit_states (unit, t_ns);
CREATE TABLE IF NOT EXISTS counters (
    run INTEGER NOT NULL, unit TEXT NOT NULL, t_ns INTEGER NOT NULL,
    produced REAL NOT NULL, defective REAL NOT NULL);
CREATE INDEX IF NOT EXISTS counters_t ON counters (unit, t_ns);
CREATE TABLE IF NOT EXISTS device_health (
    run INTEGER NOT NULL, device TEXT NOT NULL, t_ns INTEGER NOT NULL,
    connected INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS tag_quality (
    run INTEGER NOT NULL, tag TEXT NOT NULL, good_ns INTEGER NOT NULL,
    total_ns INTEGER NOT NULL, samples INTEGER NOT NULL, good_samples INTEGER NOT NULL,
    PRIMARY KEY (run, tag));
CREATE TABLE IF NOT EXISTS cycle_stats (
    run INTEGER NOT NULL, task TEXT NOT NULL, t_ns INTEGER NOT NULL,
    period_ns INTEGER NOT NULL, cycles INTEGER NOT NULL, overruns INTEGER NOT NULL,
    count INTEGER NOT NULL, mean_ns REAL NOT NULL, p50_ns INTEGER NOT NULL,
    p99_ns INTEGER NOT NULL, max_ns INTEGER NOT NULL, hdr TEXT NOT NULL,
    PRIMARY KEY (run, task));
"""

_KIND = SqliteKind(what="line history", version=SCHEMA_VERSION,
                   tables=("runs", "unit_states", "counters", "device_health", "tag_quality",
                           "cycle_stats"), schema=_SCHEMA,
                   synchronous="NORMAL", hint="move it away or give another --history",
                   adopt_unversioned=True)  # histories of before 2026-11-29 (no user_version)


def default_history_path(line: str, env: Mapping[str, str] | None = None) -> Path:
    """``$SMARTLINE_STATE_DIR/history-<line>.db``, else ``~/.local/state/smartline/...``."""
    return state_dir(env) / f"history-{line}.db"


@dataclass(frozen=True, slots=True)
class RunRow:
    """One run of the line (``smartline run``): its wall-clock span."""

    id: int
    line: str
    clock: str
    started_ns: int
    stopped_ns: int | None  # None: the process died; ``last_ns`` is the last record
    last_ns: int

    @property
    def end_ns(self) -> int:
        return self.stopped_ns if self.stopped_ns is not None else self.last_ns


@dataclass(frozen=True, slots=True)
class StateRow:
    """A unit entered ``state`` in ``mode`` at ``t_ns`` (``reason``: its stop reason)."""

    run: int
    unit: str
    t_ns: int
    state: int
    mode: int
    reason: float | None = None


@dataclass(frozen=True, slots=True)
class CounterRow:
    """Parts a unit counted (processed, defective) since its previous row."""

    run: int
    unit: str
    t_ns: int
    produced: float
    defective: float


@dataclass(frozen=True, slots=True)
class HealthRow:
    run: int
    device: str
    t_ns: int
    connected: bool


@dataclass(frozen=True, slots=True)
class TagQualityRow:
    """Time and samples a tag was GOOD in one run (sampled at the recorder's period)."""

    run: int
    tag: str
    good_ns: int
    total_ns: int
    samples: int
    good_samples: int


@dataclass(frozen=True, slots=True)
class CycleRow:
    """A task's cycle-time statistics at the end of a run (``hdr``: the encoded histogram)."""

    run: int
    task: str
    t_ns: int
    period_ns: int
    cycles: int
    overruns: int
    count: int
    mean_ns: float
    p50_ns: int
    p99_ns: int
    max_ns: int
    hdr: str


class LineHistory:
    """A line's history file (SQLite in WAL mode): written by :class:`HistoryRecorder`,
    read by the KPIs and the report. One writer at a time; readers any time."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SmartlineError(f"line history {self.path}: cannot create its folder: "
                                 f"{exc.strerror or exc}") from exc
        self._db = _KIND.open(self.path)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> LineHistory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing (the recorder) ------------------------------------------------------------
    def begin_run(self, line: str, clock: str, started_ns: int) -> int:
        cur = self._db.execute(
            "INSERT INTO runs (line, clock, started_ns, last_ns) VALUES (?, ?, ?, ?)",
            (line, clock, started_ns, started_ns))
        assert cur.lastrowid is not None
        return cur.lastrowid

    def write(self, run: int, now_ns: int, *, states: Sequence[StateRow] = (),
              counters: Sequence[CounterRow] = (), health: Sequence[HealthRow] = (),
              reasons: Sequence[tuple[str, int, float]] = (),
              quality: Sequence[TagQualityRow] = (), cycles: Sequence[CycleRow] = (),
              stopped: bool = False) -> None:
        """One step's records, in one transaction. ``reasons``: (unit, t_ns of its state
        row, reason) for a stop reason that came after the entry into the down state."""
        db = self._db
        with db:
            db.execute("BEGIN")
            db.executemany("INSERT INTO unit_states VALUES (?, ?, ?, ?, ?, ?)",
                           [(r.run, r.unit, r.t_ns, r.state, r.mode, r.reason) for r in states])
            db.executemany("UPDATE unit_states SET reason = ? WHERE run = ? AND unit = ? "
                           "AND t_ns = ? AND reason IS NULL",
                           [(reason, run, unit, t) for unit, t, reason in reasons])
            db.executemany("INSERT INTO counters VALUES (?, ?, ?, ?, ?)",
                           [(r.run, r.unit, r.t_ns, r.produced, r.defective) for r in counters])
            db.executemany("INSERT INTO device_health VALUES (?, ?, ?, ?)",
                           [(r.run, r.device, r.t_ns, int(r.connected)) for r in health])
            db.executemany("INSERT OR REPLACE INTO tag_quality VALUES (?, ?, ?, ?, ?, ?)",
                           [(r.run, r.tag, r.good_ns, r.total_ns, r.samples, r.good_samples)
                            for r in quality])
            db.executemany("INSERT OR REPLACE INTO cycle_stats VALUES "
                           "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           [(r.run, r.task, r.t_ns, r.period_ns, r.cycles, r.overruns, r.count,
                             r.mean_ns, r.p50_ns, r.p99_ns, r.max_ns, r.hdr) for r in cycles])
            if stopped:
                db.execute("UPDATE runs SET last_ns = ?, stopped_ns = ? WHERE id = ?",
                           (now_ns, now_ns, run))
            else:
                db.execute("UPDATE runs SET last_ns = ? WHERE id = ?", (now_ns, run))

    # -- reading ---------------------------------------------------------------------------
    def runs(self, since_ns: int | None = None) -> list[RunRow]:
        """The runs that end after ``since_ns`` (all when None), oldest first."""
        rows = self._db.execute("SELECT id, line, clock, started_ns, stopped_ns, last_ns "
                                "FROM runs ORDER BY started_ns, id").fetchall()
        out = [RunRow(*r) for r in rows]
        return [r for r in out if since_ns is None or r.end_ns > since_ns]

    def units(self) -> list[str]:
        rows = self._db.execute("SELECT DISTINCT unit FROM unit_states ORDER BY unit")
        return [r[0] for r in rows]

    def states(self, unit: str | None = None) -> list[StateRow]:
        """State changes, by time (of one unit, or all)."""
        q = "SELECT run, unit, t_ns, state, mode, reason FROM unit_states"
        args: tuple[object, ...] = ()
        if unit is not None:
            q, args = q + " WHERE unit = ?", (unit,)
        return [StateRow(*r) for r in self._db.execute(q + " ORDER BY t_ns, rowid", args)]

    def counters(self, unit: str | None = None) -> list[CounterRow]:
        q = "SELECT run, unit, t_ns, produced, defective FROM counters"
        args: tuple[object, ...] = ()
        if unit is not None:
            q, args = q + " WHERE unit = ?", (unit,)
        return [CounterRow(*r) for r in self._db.execute(q + " ORDER BY t_ns, rowid", args)]

    def health(self) -> list[HealthRow]:
        rows = self._db.execute("SELECT run, device, t_ns, connected FROM device_health "
                                "ORDER BY t_ns, rowid")
        return [HealthRow(r[0], r[1], r[2], bool(r[3])) for r in rows]

    def tag_quality(self) -> list[TagQualityRow]:
        rows = self._db.execute("SELECT run, tag, good_ns, total_ns, samples, good_samples "
                                "FROM tag_quality ORDER BY run, tag")
        return [TagQualityRow(*r) for r in rows]

    def cycle_stats(self) -> list[CycleRow]:
        rows = self._db.execute("SELECT run, task, t_ns, period_ns, cycles, overruns, count, "
                                "mean_ns, p50_ns, p99_ns, max_ns, hdr FROM cycle_stats "
                                "ORDER BY run, task")
        return [CycleRow(*r) for r in rows]


def counter_delta(last: float | None, value: float) -> float:
    """Parts counted since ``last`` by a counter now at ``value``: a counter that went down
    was reset (to 0, then counted ``value``); the first reading is the baseline (0)."""
    if last is None:
        return 0.0
    return value - last if value >= last else value


class HistoryRecorder:
    """Samples the line into a :class:`LineHistory`: ``await step(now_ns)`` as an engine
    service (it never waits on a device), ``close()`` after the engine stopped."""

    def __init__(self, history: LineHistory, line: Line, engine: Engine,
                 units_names: Iterable[str]) -> None:
        self.history = history
        self.line = line
        self.engine = engine
        image = line.image
        self.units = tuple(u for u in units_names if f"{u}.state" in image.tags)
        clock = line.clock
        self._wall_offset_ns = clock.wall_ns() - clock.now_ns()
        self._clock_name = "virtual" if engine.virtual else type(clock).__name__
        self.run: int | None = None
        self._state: dict[str, tuple[int, int]] = {}
        self._down_row: dict[str, int] = {}  # unit -> t_ns of its down row without a reason
        self._count: dict[tuple[str, str], float] = {}  # (unit, key) -> last counter value
        self._connected: dict[str, bool] = {}
        self._tags = tuple(image.tags)
        self._slots = np.asarray([image.slot(t) for t in self._tags], np.intp)
        self._good_ns = np.zeros(len(self._tags), np.int64)
        self._total_ns = 0
        self._good_samples = np.zeros(len(self._tags), np.int64)
        self._samples = 0
        self._last_ns: int | None = None
        self._stats_due_ns = 0
        self._closed = False

    def wall(self, now_ns: int) -> int:
        """The engine's time ``now_ns`` as wall-clock nanoseconds."""
        return now_ns + self._wall_offset_ns

    async def step(self, now_ns: int) -> None:
        """Record what changed since the previous step (one SQLite transaction)."""
        if self._closed:
            return
        t = self.wall(now_ns)
        if self.run is None:
            self.run = await asyncio.to_thread(self.history.begin_run, self.line.config.name,
                                               self._clock_name, t)
            self._stats_due_ns = t + _STATS_EVERY_NS
        # sampled here (cheap, on the loop); the SQL and any disk wait in a worker thread
        await asyncio.to_thread(self._collect(t, stopped=False))

    def _collect(self, t: int, *, stopped: bool) -> Callable[[], None]:
        """Sample the line now; the write of what changed, to call (in any thread)."""
        assert self.run is not None
        run = self.run
        states, reasons = self._states(t)
        cycles = []
        if stopped or t >= self._stats_due_ns:
            cycles = self._cycles(t)
            self._stats_due_ns = t + _STATS_EVERY_NS
        counters, health, quality = self._counters(t), self._health(t), self._quality(t)

        def write() -> None:
            self.history.write(run, t, states=states, reasons=reasons, counters=counters,
                               health=health, quality=quality, cycles=cycles,
                               stopped=stopped)
        return write

    def _value(self, tag: str) -> float | None:
        if tag not in self.line.image.tags:
            return None
        v = self.line.image.get(tag)
        if v.quality is not Quality.GOOD or v.value is None or isinstance(v.value, str | tuple):
            return None
        x = float(v.value)
        return x if math.isfinite(x) else None

    def _states(self, t: int) -> tuple[list[StateRow], list[tuple[str, int, float]]]:
        assert self.run is not None
        rows: list[StateRow] = []
        reasons: list[tuple[str, int, float]] = []
        for u in self.units:
            s, m = self._value(f"{u}.state"), self._value(f"{u}.mode")
            if s is None:
                continue
            key = (int(s), int(m) if m is not None else 0)
            reason = self._value(f"{u}.stop_reason")
            reason = reason if reason else None  # 0: no reason given
            if self._state.get(u) != key:
                self._state[u] = key
                down = key[0] in DOWN_ENTRY_STATES
                rows.append(StateRow(self.run, u, t, key[0], key[1],
                                     reason if down else None))
                self._down_row.pop(u, None)
                if down and reason is None:
                    self._down_row[u] = t
            elif reason is not None and u in self._down_row:  # the reason came after the stop
                reasons.append((u, self._down_row.pop(u), reason))
        return rows, reasons

    def _counters(self, t: int) -> list[CounterRow]:
        assert self.run is not None
        rows: list[CounterRow] = []
        for u in self.units:
            delta = [0.0, 0.0]
            for i, key in enumerate(("produced", "defective")):
                v = self._value(f"{u}.{key}")
                if v is None:
                    continue
                last = self._count.get((u, key))
                self._count[(u, key)] = v
                delta[i] = counter_delta(last, v)
            if delta[0] or delta[1]:
                rows.append(CounterRow(self.run, u, t, delta[0], delta[1]))
        return rows

    def _health(self, t: int) -> list[HealthRow]:
        assert self.run is not None
        rows: list[HealthRow] = []
        io = self.line.io
        for name, h in io.health().items():
            up = bool(h.get("connected", False))
            if self._connected.get(name) != up:
                self._connected[name] = up
                rows.append(HealthRow(self.run, name, t, up))
        return rows

    def _quality(self, t: int) -> list[TagQualityRow]:
        assert self.run is not None
        good = self.line.image.quality[self._slots] == Quality.GOOD
        if self._last_ns is not None:
            dt = max(0, t - self._last_ns)
            self._good_ns[good] += dt
            self._total_ns += dt
        self._last_ns = t
        self._good_samples[good] += 1
        self._samples += 1
        return [TagQualityRow(self.run, tag, int(self._good_ns[i]), self._total_ns,
                              self._samples, int(self._good_samples[i]))
                for i, tag in enumerate(self._tags)]

    def _cycles(self, t: int) -> list[CycleRow]:
        assert self.run is not None
        stats = self.engine.stats(hdr=True)
        rows = []
        for name, ts in stats.tasks.items():
            c = ts.timing.get("cycle")
            if c is None:
                continue
            rows.append(CycleRow(self.run, name, t, ts.period_ns, ts.cycles, ts.overruns,
                                 c.count, c.mean_ns, c.p50_ns, c.p99_ns, c.max_ns,
                                 ts.hdr.get("cycle", "")))
        return rows

    def close(self) -> None:
        """Record the run's last step and its end; idempotent. The history stays open."""
        if self._closed:
            return
        self._closed = True
        if self.run is None:
            return
        try:
            self._collect(self.wall(self.line.clock.now_ns()), stopped=True)()
        except sqlite3.Error:
            log.exception("history %s: cannot record the end of run %d", self.history.path,
                          self.run)

    async def aclose(self) -> None:
        """:meth:`close`, as a clean-up to await."""
        self.close()


def recorder_attach(path: str | os.PathLike[str] | None, units_names: Iterable[str], *,
                    period_ns: int = RECORD_PERIOD_NS,
                    ) -> Callable[[Line, Engine], Callable[[], Awaitable[None]]]:
    """An ``Attach`` (see :mod:`smartline.run`) that records the line's history as an engine
    service; ``path`` None: :func:`default_history_path`. The clean-up closes the file."""
    names = tuple(units_names)

    def attach(line: Line, engine: Engine) -> Callable[[], Awaitable[None]]:
        history = LineHistory(path if path is not None
                              else default_history_path(line.config.name))
        rec = HistoryRecorder(history, line, engine, names)
        engine.add_service("history", period_ns, rec.step)

        async def done() -> None:
            try:
                rec.close()
            finally:
                history.close()
        return done
    return attach
