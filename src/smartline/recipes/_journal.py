"""The batch record: every event of a batch journaled in SQLite (WAL, ``synchronous=FULL``).

One writer thread owns the write connection. ``record`` and ``end`` only enqueue (the cycle
never waits for a disk); the writer drains whatever is queued and commits it in one
transaction, so a burst of records costs one fsync. ``begin`` waits for its commit because
the caller needs the batch id. Readers open their own connections. A record is *committed*
once ``flush`` returned after it (or ``begin`` returned): it then survives ``kill -9`` and,
with ``synchronous=FULL``, a power cut. See docs/reference/batch-records.md and ADR 0026.
"""

from __future__ import annotations

import csv
import datetime as dt
import enum
import json
import logging
import math
import os
import queue
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from ..core import Clock, ClosedError, MonotonicClock, RecipeError, SqliteKind, state_dir

__all__ = [
    "EVENT_KINDS",
    "SCHEMA_VERSION",
    "BatchEvent",
    "BatchJournal",
    "BatchSummary",
    "default_journal_path",
]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
"""``PRAGMA user_version`` of the journal files this module writes and reads."""

EVENT_KINDS = frozenset(
    {"batch", "state", "command", "phase", "write", "parameter", "alarm", "identity", "unit"})
"""The event kinds of the batch record (docs/reference/batch-records.md)."""

RUNNING = "RUNNING"
"""The state of a batch that has begun and recorded no ``state`` event yet."""

CSV_HEADER = ("seq", "wall_time", "plant_time_s", "kind", "subject", "data")

_BUSY_TIMEOUT_S = 10.0  # SQLite waits this long for a lock held by another connection
_BUSY_ATTEMPTS = 3  # then the writer retries the transaction, then gives up (loudly)
_MAX_DRAIN = 4096  # records per transaction at most: bounds the time a commit holds the lock

_SCHEMA = """
CREATE TABLE batches (
    id          TEXT PRIMARY KEY,
    line        TEXT NOT NULL,
    recipe      TEXT NOT NULL,
    version     TEXT NOT NULL,
    digest      TEXT NOT NULL,
    product     TEXT NOT NULL,
    source      TEXT NOT NULL,
    parameters  TEXT NOT NULL,
    on_restart  TEXT NOT NULL,
    state       TEXT NOT NULL,
    started_ns  INTEGER NOT NULL,
    started_plant_ns INTEGER NOT NULL,
    ended_ns    INTEGER,
    ended_plant_ns INTEGER,
    events      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX batches_line ON batches (line, started_ns);
CREATE INDEX batches_recipe ON batches (recipe, version);
CREATE TABLE events (
    batch    TEXT NOT NULL REFERENCES batches (id),
    seq      INTEGER NOT NULL,
    wall_ns  INTEGER NOT NULL,
    plant_ns INTEGER NOT NULL,
    kind     TEXT NOT NULL,
    subject  TEXT NOT NULL,
    data     TEXT NOT NULL,
    PRIMARY KEY (batch, seq)
) WITHOUT ROWID;
"""

_KIND = SqliteKind(
    what="batch journal", version=SCHEMA_VERSION, tables=("batches", "events"), schema=_SCHEMA,
    synchronous="FULL", error=RecipeError,
    hint="use the smartline that wrote it or another journal file (--journal)")


def default_journal_path(env: Mapping[str, str] | None = None) -> Path:
    """``$SMARTLINE_STATE_DIR/batches.db``, else ``~/.local/state/smartline/batches.db``."""
    return state_dir(env) / "batches.db"


@dataclass(frozen=True, slots=True)
class BatchSummary:
    """One batch as the history lists it; ``started_ns``/``ended_ns`` are wall-clock ns."""

    id: str
    line: str
    recipe: str
    version: str
    digest: str
    product: str
    state: str
    started_ns: int
    ended_ns: int | None
    parameters: Mapping[str, object]
    on_restart: str
    events: int


@dataclass(frozen=True, slots=True)
class BatchEvent:
    """One journaled event: ``seq`` counts 0, 1, 2 … within its batch, without gaps."""

    batch: str
    seq: int
    wall_ns: int
    plant_ns: int
    kind: str
    subject: str
    data: Mapping[str, object]


# --- queue items (caller -> writer) ---------------------------------------------------

@dataclass(slots=True)
class _Begin:
    line: str
    recipe: str
    version: str
    digest: str
    product: str
    source: str
    parameters: str
    on_restart: str
    wall_ns: int
    plant_ns: int
    start_data: str
    done: threading.Event = field(default_factory=threading.Event)
    batch: str = ""
    error: BaseException | None = None


@dataclass(frozen=True, slots=True)
class _Record:
    batch: str
    kind: str
    subject: str
    data: str
    wall_ns: int
    plant_ns: int
    end_state: str | None = None  # set: this is the batch's end event


_STOP = object()


class BatchJournal:
    """The batch records of one file: write from the cycle without blocking, read the history.

    ``read_only=True`` opens an existing file for history and export only (another process
    may be writing it): nothing is created and every write is refused.
    """

    def __init__(self, path: str | os.PathLike[str], *, clock: Clock | None = None,
                 read_only: bool = False) -> None:
        self.path = Path(path).expanduser()
        self.read_only = read_only
        self._clock: Clock = clock if clock is not None else MonotonicClock()
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._enqueued = 0  # records handed to the writer (under _lock)
        self._done = 0  # records the writer has finished with, committed or failed (under _lock)
        self._errors: list[RecipeError] = []  # per-record failures not yet raised by flush()
        self._failure: RecipeError | None = None  # the writer cannot write any more
        self._ended: set[str] = set()  # batches ended through this journal
        self._closed = False
        self._writer: threading.Thread | None = None
        if read_only:
            if self.path.exists():
                self._connect_read().close()  # refuses a foreign file or schema now
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._open_writer_connection()
        self._writer = threading.Thread(target=self._run_writer, args=(conn,),
                                        name=f"batch-journal:{self.path.name}", daemon=True)
        self._writer.start()

    # --- writing ------------------------------------------------------------------------

    def begin(self, *, line: str, recipe: str, version: str, digest: str, product: str,
              source: str, parameters: Mapping[str, object], on_restart: str) -> str:
        """Start a batch and return its id once its ``batch start`` event (seq 0) is committed.

        Raises RecipeError if ``recipe`` ``version`` was already used with another digest.
        """
        for name, value in (("line", line), ("recipe", recipe), ("version", version),
                            ("digest", digest)):
            if not value:
                raise RecipeError(f"batch journal: begin() needs a non-empty {name}")
        params = _jsonable(dict(parameters))
        start = {"recipe": recipe, "version": version, "digest": digest, "product": product,
                 "source": source, "parameters": params, "on_restart": on_restart}
        with self._lock:
            self._check_writable("begin a batch")
            item = _Begin(line=line, recipe=recipe, version=version, digest=digest,
                          product=product, source=source, parameters=_dumps(params),
                          on_restart=on_restart, wall_ns=self._clock.wall_ns(),
                          plant_ns=self._clock.now_ns(), start_data=_dumps(start))
            self._enqueued += 1
            self._queue.put(item)
        item.done.wait()
        if item.error is not None:
            raise item.error
        log.info("batch %s begun: %s version %s on %s", item.batch, recipe, version, line)
        return item.batch

    def record(self, batch: str, kind: str, subject: str,
               data: Mapping[str, object] | None = None, *, plant_ns: int | None = None) -> None:
        """Queue one event of ``batch``; the writer commits it soon (``flush`` waits for it).

        Never blocks on the disk. Timestamps are taken now: wall time from the clock's
        ``wall_ns``, plant time from ``plant_ns`` or the clock's ``now_ns``.
        """
        if kind not in EVENT_KINDS:
            raise RecipeError(f"batch journal: unknown event kind {kind!r} "
                              f"(kinds: {', '.join(sorted(EVENT_KINDS))})")
        text = _dumps(_jsonable(dict(data or {})))
        with self._lock:
            self._check_writable(f"record {kind} {subject!r}")
            if batch in self._ended:
                raise RecipeError(f"batch {batch} has ended: its record is closed "
                                  f"(refused {kind} {subject!r})")
            self._enqueue(_Record(batch, kind, subject, text, self._clock.wall_ns(),
                                  self._clock.now_ns() if plant_ns is None else plant_ns))

    def end(self, batch: str, state: str) -> None:
        """Queue the ``batch end`` event and mark the batch ended in ``state``; non-blocking."""
        with self._lock:
            self._check_writable(f"end batch {batch}")
            if batch in self._ended:
                raise RecipeError(f"batch {batch} has already ended")
            self._ended.add(batch)
            self._enqueue(_Record(batch, "batch", "end", _dumps({"state": state}),
                                  self._clock.wall_ns(), self._clock.now_ns(), end_state=state))

    def flush(self, timeout_s: float | None = None) -> None:
        """Wait until everything queued before this call is committed; raise writer errors.

        TimeoutError if that takes longer than ``timeout_s``; RecipeError for a record the
        writer refused (unknown or ended batch) or a failure of the file itself.
        """
        with self._cond:
            target = self._enqueued
            if not self._cond.wait_for(lambda: self._done >= target, timeout_s):
                raise TimeoutError(f"batch journal {self.path}: {target - self._done} records "
                                   f"not committed after {timeout_s} s")
            self._raise_errors()

    def close(self) -> None:
        """Commit what is queued, stop the writer and raise any error not raised yet."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            writer = self._writer
            if writer is not None:
                self._queue.put(_STOP)
        if writer is not None:
            writer.join()
        with self._lock:
            self._raise_errors()

    def __enter__(self) -> BatchJournal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- reading ------------------------------------------------------------------------

    def batches(self, *, line: str | None = None, limit: int | None = None) -> list[BatchSummary]:
        """The batches of the file (of ``line`` if given), newest first."""
        sql = f"SELECT {_SUMMARY_COLUMNS} FROM batches"
        args: list[object] = []
        if line is not None:
            sql += " WHERE line = ?"
            args.append(line)
        sql += " ORDER BY started_ns DESC, rowid DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(max(limit, 0))
        with self._reading() as conn:
            if conn is None:
                return []
            return [_summary(row) for row in conn.execute(sql, args)]

    def batch(self, batch: str) -> BatchSummary:
        """The summary of one batch; KeyError naming it if the file has no such batch."""
        with self._reading() as conn:
            row = None if conn is None else conn.execute(
                f"SELECT {_SUMMARY_COLUMNS} FROM batches WHERE id = ?", (batch,)).fetchone()
        if row is None:
            raise KeyError(f"no batch {batch!r} in {self.path}")
        return _summary(row)

    def events(self, batch: str) -> list[BatchEvent]:
        """Every event of ``batch`` in ``seq`` order; KeyError if there is no such batch."""
        with self._reading() as conn:
            if conn is None or conn.execute(
                    "SELECT 1 FROM batches WHERE id = ?", (batch,)).fetchone() is None:
                raise KeyError(f"no batch {batch!r} in {self.path}")
            return _events(conn, batch)

    def unfinished(self, line: str) -> list[BatchSummary]:
        """The batches of ``line`` that began and never ended (restart mid-batch), oldest first."""
        with self._reading() as conn:
            if conn is None:
                return []
            rows = conn.execute(
                f"SELECT {_SUMMARY_COLUMNS} FROM batches WHERE line = ? AND ended_ns IS NULL "
                "ORDER BY started_ns, rowid", (line,)).fetchall()
        return [_summary(row) for row in rows]

    def check_version(self, recipe: str, version: str, digest: str) -> None:
        """RecipeError if ``recipe`` ``version`` was used by a batch with another digest."""
        with self._reading() as conn:
            if conn is None:
                return
            _check_version(conn, recipe, version, digest)

    def export_json(self, batch: str, out: TextIO) -> None:
        """Write ``{"batch": {summary}, "events": [...]}`` as one JSON document."""
        with self._reading() as conn:
            row = None if conn is None else conn.execute(
                f"SELECT {_SUMMARY_COLUMNS}, source, started_plant_ns, ended_plant_ns "
                "FROM batches WHERE id = ?", (batch,)).fetchone()
            if conn is None or row is None:
                raise KeyError(f"no batch {batch!r} in {self.path}")
            events = _events(conn, batch)
        summary = _summary(row[:-3])
        source, started_plant, ended_plant = row[-3:]
        head: dict[str, object] = {
            "id": summary.id, "line": summary.line, "recipe": summary.recipe,
            "version": summary.version, "digest": summary.digest, "product": summary.product,
            "source": source, "state": summary.state,
            "started_ns": summary.started_ns, "started": iso_utc(summary.started_ns),
            "started_plant_ns": started_plant,
            "ended_ns": summary.ended_ns,
            "ended": None if summary.ended_ns is None else iso_utc(summary.ended_ns),
            "ended_plant_ns": ended_plant,
            "parameters": dict(summary.parameters), "on_restart": summary.on_restart,
            "events": summary.events,
        }
        body = [{"seq": e.seq, "wall_ns": e.wall_ns, "wall_time": iso_utc(e.wall_ns),
                 "plant_ns": e.plant_ns, "kind": e.kind, "subject": e.subject,
                 "data": dict(e.data)} for e in events]
        json.dump({"batch": head, "events": body}, out, indent=2, ensure_ascii=False,
                  allow_nan=False)
        out.write("\n")

    def export_csv(self, batch: str, out: TextIO) -> None:
        """Write the events as CSV: ``seq,wall_time,plant_time_s,kind,subject,data``."""
        events = self.events(batch)
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_HEADER)
        for e in events:
            writer.writerow((e.seq, iso_utc(e.wall_ns), seconds_text(e.plant_ns), e.kind,
                             e.subject, _dumps(e.data)))

    # --- internals: caller side --------------------------------------------------------

    def _check_writable(self, what: str) -> None:
        if self._closed:
            raise ClosedError(f"batch journal {self.path} is closed: cannot {what}")
        if self._writer is None:
            raise RecipeError(f"batch journal {self.path} is open read-only: cannot {what}")
        if self._failure is not None:
            raise RecipeError(f"batch journal {self.path} cannot write any more "
                              f"({self._failure.message}): cannot {what}") from self._failure

    def _enqueue(self, item: _Record) -> None:
        self._enqueued += 1
        self._queue.put(item)

    def _raise_errors(self) -> None:
        """Raise the first writer error not raised yet (the journal's failure last of all)."""
        if self._errors:
            first, more = self._errors[0], len(self._errors) - 1
            self._errors.clear()
            if more:
                raise RecipeError(f"{first.message} (and {more} more refused records)") from first
            raise first

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection | None]:
        """A read connection of its own (None if the file does not exist yet).

        Waits first for what this journal queued, so a reader sees its own writes.
        """
        with self._cond:
            target = self._enqueued
            self._cond.wait_for(lambda: self._done >= target)
        if not self.path.exists():
            yield None
            return
        with closing(self._connect_read()) as conn:
            conn.execute("BEGIN")  # one snapshot for every query of the caller
            yield conn

    def _connect_read(self) -> sqlite3.Connection:
        return _KIND.open(self.path, read_only=True, timeout_s=_BUSY_TIMEOUT_S)

    # --- internals: the writer thread ---------------------------------------------------

    def _open_writer_connection(self) -> sqlite3.Connection:
        conn = _KIND.open(self.path, timeout_s=_BUSY_TIMEOUT_S)
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    def _run_writer(self, conn: sqlite3.Connection) -> None:
        """Drain the queue, one transaction per drained group, until close()."""
        stop = False
        items: list[object] = []
        try:
            while not stop:
                items = [self._queue.get()]
                while len(items) < _MAX_DRAIN:
                    try:
                        items.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                if _STOP in items:
                    stop = True
                    items = [i for i in items if i is not _STOP]
                if items:
                    self._write(conn, items)
                items = []
        except BaseException as exc:  # a bug: fail loudly rather than hang begin()/flush()
            log.exception("batch journal %s: writer thread failed", self.path)
            self._fail(RecipeError(f"batch journal {self.path}: writer failed: {exc!r}"))
            self._finish(items, [])
            self._drain_failed()
        finally:
            conn.close()

    def _write(self, conn: sqlite3.Connection, items: list[object]) -> None:
        """Commit ``items`` in one transaction; a lock held elsewhere is waited for and retried."""
        if self._failure is not None:
            lost = RecipeError(f"batch journal {self.path}: {len(items)} more records lost "
                               f"after the failure ({self._failure.message})")
            log.error("%s", lost)
            self._finish(items, [lost])
            return
        refused: list[RecipeError] = []
        for attempt in range(1, _BUSY_ATTEMPTS + 1):
            try:
                refused = self._transaction(conn, items)
                break
            except sqlite3.OperationalError as exc:
                if _is_busy(exc) and attempt < _BUSY_ATTEMPTS:
                    log.warning("batch journal %s: locked by another connection, retrying "
                                "(%d/%d): %s", self.path, attempt, _BUSY_ATTEMPTS, exc)
                    continue
                self._lose(items, exc)
                break
            except Exception as exc:
                self._lose(items, exc)
                break
        self._finish(items, refused)

    def _transaction(self, conn: sqlite3.Connection, items: list[object]) -> list[RecipeError]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            refused = self._apply(conn, items)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error as exc:
                    log.error("batch journal %s: rollback failed: %s", self.path, exc)
            raise
        return refused

    def _lose(self, items: list[object], exc: Exception) -> None:
        """The commit of ``items`` failed for good: the journal refuses further writes."""
        log.error("batch journal %s: commit of %d records failed: %s", self.path, len(items),
                  exc)
        failure = RecipeError(f"batch journal {self.path}: commit failed, {len(items)} "
                              f"records lost: {exc}")
        failure.__cause__ = exc
        self._fail(failure)
        for item in items:
            if isinstance(item, _Begin):
                item.batch = ""
                item.error = failure

    def _apply(self, conn: sqlite3.Connection, items: list[object]) -> list[RecipeError]:
        """Insert the items inside the open transaction; return the records refused."""
        seqs: dict[str, int] = {}  # batch -> next seq (this transaction)
        refused: list[RecipeError] = []
        for item in items:
            if isinstance(item, _Begin):
                item.batch, item.error = "", None  # a retried transaction starts afresh
                try:
                    _check_version(conn, item.recipe, item.version, item.digest)
                except RecipeError as exc:
                    item.error = exc
                    continue
                item.batch = _insert_batch(conn, item)
                seqs[item.batch] = 1
                continue
            assert isinstance(item, _Record)
            seq = seqs.get(item.batch)
            if seq is None:
                row = conn.execute("SELECT events, ended_ns FROM batches WHERE id = ?",
                                   (item.batch,)).fetchone()
                if row is None or row[1] is not None:
                    why = "no such batch" if row is None else "the batch has ended"
                    err = RecipeError(f"batch journal {self.path}: {item.kind} "
                                      f"{item.subject!r} of batch {item.batch!r} refused: {why}")
                    log.error("%s", err)
                    refused.append(err)
                    continue
                seq = int(row[0])
            conn.execute("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (item.batch, seq, item.wall_ns, item.plant_ns, item.kind,
                          item.subject, item.data))
            seqs[item.batch] = seq + 1
            state = _new_state(item)
            if item.end_state is not None:
                conn.execute("UPDATE batches SET ended_ns = ?, ended_plant_ns = ?, state = ?, "
                             "events = ? WHERE id = ?",
                             (item.wall_ns, item.plant_ns, state, seq + 1, item.batch))
                del seqs[item.batch]  # the row now says ended: later records are refused
            elif state is not None:
                conn.execute("UPDATE batches SET state = ? WHERE id = ?", (state, item.batch))
        for batch, seq in seqs.items():
            conn.execute("UPDATE batches SET events = ? WHERE id = ?", (seq, batch))
        return refused

    def _fail(self, failure: RecipeError) -> None:
        with self._lock:
            if self._failure is None:
                self._failure = failure
                self._errors.append(failure)

    def _finish(self, items: list[object], refused: list[RecipeError]) -> None:
        with self._cond:
            self._errors.extend(refused)
            self._done += len(items)
            self._cond.notify_all()
        for item in items:
            if isinstance(item, _Begin):
                if self._failure is not None and not item.batch and item.error is None:
                    item.error = self._failure
                item.done.set()

    def _drain_failed(self) -> None:
        """After a writer crash: finish whatever is queued so no caller waits forever."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not _STOP:
                self._finish([item], [])


_SUMMARY_COLUMNS = ("id, line, recipe, version, digest, product, state, started_ns, ended_ns, "
                    "parameters, on_restart, events")


def _summary(row: tuple[Any, ...]) -> BatchSummary:
    (bid, line, recipe, version, digest, product, state, started, ended, params, on_restart,
     events) = row
    return BatchSummary(
        id=bid, line=line, recipe=recipe, version=version, digest=digest, product=product,
        state=state, started_ns=started, ended_ns=ended, parameters=json.loads(params),
        on_restart=on_restart, events=events)


def _events(conn: sqlite3.Connection, batch: str) -> list[BatchEvent]:
    rows = conn.execute("SELECT seq, wall_ns, plant_ns, kind, subject, data FROM events "
                        "WHERE batch = ? ORDER BY seq", (batch,)).fetchall()
    return [BatchEvent(batch, seq, wall, plant, kind, subject, json.loads(data))
            for seq, wall, plant, kind, subject, data in rows]


def _check_version(conn: sqlite3.Connection, recipe: str, version: str, digest: str) -> None:
    row = conn.execute(
        "SELECT id, digest FROM batches WHERE recipe = ? AND version = ? AND digest <> ? "
        "ORDER BY rowid LIMIT 1", (recipe, version, digest)).fetchone()
    if row is not None:
        raise RecipeError(
            f"recipe {recipe!r} version {version!r} was already used by batch {row[0]} with "
            f"digest {str(row[1])[:12]}, and this file's digest is {digest[:12]}: a used "
            "recipe version is immutable — give the changed recipe a new version")


def _insert_batch(conn: sqlite3.Connection, item: _Begin) -> str:
    """Insert the batch row and its ``batch start`` event; return the new, unique id."""
    stamp = dt.datetime.fromtimestamp(item.wall_ns // 1_000_000_000, dt.UTC)
    prefix = f"{item.line}-{stamp:%Y%m%dT%H%M%S}-"
    taken = {str(r[0]) for r in conn.execute(
        "SELECT id FROM batches WHERE substr(id, 1, ?) = ?", (len(prefix), prefix))}
    n = 1
    while f"{prefix}{n}" in taken:
        n += 1
    batch = f"{prefix}{n}"
    conn.execute(
        "INSERT INTO batches (id, line, recipe, version, digest, product, source, parameters, "
        "on_restart, state, started_ns, started_plant_ns, events) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
        (batch, item.line, item.recipe, item.version, item.digest, item.product, item.source,
         item.parameters, item.on_restart, RUNNING, item.wall_ns, item.plant_ns))
    conn.execute("INSERT INTO events VALUES (?, 0, ?, ?, 'batch', 'start', ?)",
                 (batch, item.wall_ns, item.plant_ns, item.start_data))
    return batch


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _new_state(item: _Record) -> str | None:
    """The batch state an event sets: the end state, or the ``to`` of a ``state`` event."""
    if item.end_state is not None:
        return item.end_state
    if item.kind == "state":
        to = json.loads(item.data).get("to")
        return None if to is None else str(to)
    return None


def _dumps(value: object) -> str:
    """Compact JSON with sorted keys (the stored and the CSV form of event data)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


def _jsonable(value: object) -> object:
    """``value`` as plain JSON types: numpy scalars and arrays, enums (by name), non-finite
    floats (as strings), bytes (hex), sets (sorted), anything else by ``str``."""
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_jsonable(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((_jsonable(v) for v in value), key=repr)
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


def iso_utc(wall_ns: int) -> str:
    """Wall-clock ns as ISO-8601 UTC with microseconds: ``2026-01-01T00:00:00.000000Z``."""
    seconds, ns = divmod(wall_ns, 1_000_000_000)
    stamp = dt.datetime.fromtimestamp(seconds, dt.UTC)
    return f"{stamp:%Y-%m-%dT%H:%M:%S}.{ns // 1000:06d}Z"


def seconds_text(value_ns: int) -> str:
    """Nanoseconds as exact decimal seconds (``12.500000000``), no float rounding."""
    sign = "-" if value_ns < 0 else ""
    seconds, ns = divmod(abs(value_ns), 1_000_000_000)
    return f"{sign}{seconds}.{ns:09d}"
