"""Store-and-forward for the Sparkplug edge node: samples on disk until they are published.

Every change the node reports goes into ``FOLDER/buffer.db`` (SQLite, WAL mode,
``synchronous=FULL``) *before* it is published, one transaction per :meth:`SampleStore.add`
batch; a row is deleted by :meth:`SampleStore.mark_sent` only after its publish, so a
sample committed by ``add`` survives a broker outage, ``kill -9`` of smartline and a power
cut. Rows are replayed oldest first (by id, which SQLite's ``AUTOINCREMENT`` never reuses).
A kill between a publish and ``mark_sent`` re-sends those rows after the restart, with
their original timestamps and flagged historical: a host drops them by
(device, metric, timestamp). The store holds at most ``max_bytes``; over it, the
``overflow`` policy drops the oldest (``drop-oldest``) or refuses the newest
(``drop-newest``) samples — a gap in the host's history, counted and logged.
See docs/reference/store-and-forward.md and ADR 0028.
"""

from __future__ import annotations

import contextlib
import logging
import math
import numbers
import os
import sqlite3
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ...core import ClosedError, SmartlineError, SqliteKind

if sys.platform != "win32":
    import fcntl

__all__ = [
    "MIN_STORE_BYTES",
    "OVERFLOW_POLICIES",
    "SCHEMA_VERSION",
    "SampleStore",
    "StoreStats",
    "StoredSample",
]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
"""``PRAGMA user_version`` of the buffer files this module writes and reads."""

OVERFLOW_POLICIES = ("drop-oldest", "drop-newest")
"""What :class:`SampleStore` does with samples over its size budget."""

MIN_STORE_BYTES = 64 * 1024
"""The smallest size budget accepted: a few pages of schema plus room for samples."""

_DB_NAME = "buffer.db"
_LOCK_NAME = "buffer.lock"
_BUSY_TIMEOUT_S = 10.0
_MAX_WAL_PAGES = 1000  # SQLite's default autocheckpoint: the WAL stays near 4 MiB at most
_EMPTY_PAGES = 5       # pages of an empty store: schema, tables and the meta key index
_EPISODE_END = 0.9     # an overflow episode ends when the data is back under 90 % of budget
_INT64 = (-(2**63), 2**63 - 1)

# value kinds: SQLite has no bool, stores NaN as NULL and integers as signed 64-bit
_NULL, _BOOL, _INT, _FLOAT, _TEXT, _BIGINT = range(6)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    device   TEXT NOT NULL,
    tag      TEXT NOT NULL,
    ts_ms    INTEGER NOT NULL,
    kind     INTEGER NOT NULL,
    value,
    quality  INTEGER NOT NULL,
    datatype INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO meta (key, value) VALUES ('dropped', 0);
"""

_COLUMNS = "id, device, tag, ts_ms, kind, value, quality, datatype"

_KIND = SqliteKind(
    what="sample store", version=SCHEMA_VERSION, tables=("samples", "meta"), schema=_SCHEMA,
    synchronous="FULL",
    hint="move it away or point northbound.sparkplug.store.path elsewhere")


@dataclass(frozen=True, slots=True)
class StoredSample:
    """One tag value waiting to be published: its Sparkplug device, metric name, source
    timestamp (ms since the Unix epoch), value, smartline quality and Sparkplug DataType."""

    device: str
    tag: str
    ts_ms: int
    value: float | int | bool | str | None
    quality: int
    datatype: int  # Sparkplug DataType number


@dataclass(frozen=True, slots=True)
class StoreStats:
    """What the store holds: ``rows`` on disk, ``backlog`` of them unsent, ``bytes`` on disk
    (database plus WAL) against ``max_bytes``, samples ``dropped`` by the overflow policy
    since the file was created, and the timestamp of the oldest unsent sample."""

    rows: int
    backlog: int
    bytes: int
    max_bytes: int
    dropped: int
    oldest_unsent_ms: int | None


class SampleStore:
    """The on-disk buffer ``folder/buffer.db`` of one edge node (one writer process at a
    time: a second :class:`SampleStore` on the same folder is refused while the first is open).

    Thread-safe: the node may call it from a worker thread (``asyncio.to_thread``) so that a
    commit's fsync never blocks the I/O loop. Sent rows are deleted at once (no rolling
    window: see ADR 0028).
    """

    def __init__(self, folder: Path, *, max_bytes: int, overflow: str = "drop-oldest") -> None:
        if overflow not in OVERFLOW_POLICIES:
            raise ValueError(f"store overflow must be one of {', '.join(OVERFLOW_POLICIES)}, "
                             f"not {overflow!r}")
        if max_bytes < MIN_STORE_BYTES:
            raise ValueError(f"store max_bytes {max_bytes} is below the minimum "
                             f"{MIN_STORE_BYTES} ({MIN_STORE_BYTES // 1024} KiB)")
        self.folder = Path(folder)
        self.path = self.folder / _DB_NAME
        self.max_bytes = int(max_bytes)
        self.overflow = overflow
        self._mutex = threading.Lock()
        self._closed = False
        self._episode = 0          # samples dropped in the current overflow episode (0: none)
        self._episode_first_ms: int | None = None
        self._episode_last_ms: int | None = None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SmartlineError(f"cannot create the store folder {self.folder}: {exc}") from exc
        self._lock_file = self._take_lock()
        try:
            self._conn = self._open()
            self._page_size = int(self._pragma("page_size"))
            wal_pages = max(2, min(_MAX_WAL_PAGES, self.max_bytes // 8 // self._page_size))
            self._conn.execute(f"PRAGMA wal_autocheckpoint = {wal_pages}")
            self._conn.execute(f"PRAGMA journal_size_limit = {wal_pages * self._page_size}")
            # the WAL: the checkpoint threshold plus the frames of one transaction
            self._data_budget = self.max_bytes - (2 * wal_pages + 2) * self._page_size
            if self._data_budget < (_EMPTY_PAGES + 2) * self._page_size:
                raise ValueError(f"store max_bytes {max_bytes} leaves no room for samples "
                                 f"with {self._page_size}-byte pages")
            row = self._conn.execute("SELECT count(*) FROM samples").fetchone()
            self._rows = int(row[0])
            self._dropped = int(self._conn.execute(
                "SELECT value FROM meta WHERE key = 'dropped'").fetchone()[0])
        except BaseException:
            conn = getattr(self, "_conn", None)
            if conn is not None:
                conn.close()
            self._release_lock()
            raise
        if self._rows:
            log.info("sample store %s: %d unsent samples from before (replayed, historical)",
                     self.path, self._rows)

    # -- writing -------------------------------------------------------------------------

    def add(self, samples: Sequence[StoredSample]) -> list[int]:
        """Store ``samples`` in one transaction, committed (fsynced) before it returns; the
        ids of the rows stored, in order. Over the budget, ``drop-oldest`` deletes the oldest
        unsent rows in the same transaction; ``drop-newest`` stores only what fits (and
        nothing more until the backlog has shrunk below 90 % of the budget): the refused
        samples get no id (the list is shorter). Both count what they drop."""
        if not samples:
            self._check_open()
            return []
        rows = [_row(s) for s in samples]
        with self._mutex:
            self._check_open()
            if self._episode:
                self._maybe_end_episode()
            conn = self._conn
            rows_before = self._rows
            drops = _Drops()
            conn.execute("BEGIN IMMEDIATE")
            try:
                rows = self._make_room(rows, drops)
                ids: list[int] = []
                for r in rows:
                    cur = conn.execute(
                        "INSERT INTO samples (device, tag, ts_ms, kind, value, quality, "
                        "datatype) VALUES (?, ?, ?, ?, ?, ?, ?)", r)
                    assert cur.lastrowid is not None
                    ids.append(cur.lastrowid)
                self._rows += len(ids)
                ids = self._enforce_budget(ids, drops)
                if drops.n:
                    conn.execute("UPDATE meta SET value = value + ? WHERE key = 'dropped'",
                                 (drops.n,))
                conn.execute("COMMIT")
            except BaseException:
                self._rows = rows_before
                _rollback(conn)
                raise
            if drops.n:
                self._dropped += drops.n
                self._note_drop(drops)
            return ids

    def mark_sent(self, ids: Sequence[int]) -> None:
        """The rows ``ids`` were published: delete them, committed before it returns (ids
        already gone — dropped, or sent twice — are ignored)."""
        if not ids:
            self._check_open()
            return
        with self._mutex:
            self._check_open()
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                gone = 0
                for start in range(0, len(ids), 500):
                    chunk = [int(i) for i in ids[start:start + 500]]
                    cur = conn.execute(
                        f"DELETE FROM samples WHERE id IN ({','.join('?' * len(chunk))})", chunk)
                    gone += cur.rowcount
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise
            self._rows -= gone
            if self._episode:
                self._maybe_end_episode()

    # -- reading -------------------------------------------------------------------------

    def unsent(self, limit: int) -> list[tuple[int, StoredSample]]:
        """Up to ``limit`` unsent samples with their ids, oldest first (by id)."""
        with self._mutex:
            self._check_open()
            cur = self._conn.execute(
                f"SELECT {_COLUMNS} FROM samples ORDER BY id LIMIT ?", (max(0, int(limit)),))
            return [(int(r[0]), _sample(r)) for r in cur.fetchall()]

    def backlog(self) -> int:
        """How many samples wait to be published (kept in memory: no table scan)."""
        with self._mutex:
            self._check_open()
            return self._rows

    def stats(self) -> StoreStats:
        """Rows, backlog, bytes on disk and budget, samples dropped, oldest unsent time."""
        with self._mutex:
            self._check_open()
            row = self._conn.execute("SELECT ts_ms FROM samples ORDER BY id LIMIT 1").fetchone()
            return StoreStats(rows=self._rows, backlog=self._rows, bytes=self._disk_bytes(),
                              max_bytes=self.max_bytes, dropped=self._dropped,
                              oldest_unsent_ms=int(row[0]) if row else None)

    def close(self) -> None:
        """Checkpoint and close the database, release the folder (idempotent)."""
        with self._mutex:
            if self._closed:
                return
            self._closed = True
            if self._episode:
                self._end_episode()
            try:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:  # a reader holds the WAL: the next open checkpoints
                log.debug("sample store %s: checkpoint at close skipped: %s", self.path, exc)
            finally:
                self._conn.close()
                self._release_lock()

    def __enter__(self) -> SampleStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self._rows} unsent"
        return f"SampleStore({str(self.path)!r}, {state}, max_bytes={self.max_bytes})"

    # -- inside --------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"sample store {self.path} is closed")

    def _take_lock(self) -> IO[str] | None:
        """Hold ``buffer.lock`` (flock, released by the kernel even on ``kill -9``): two
        processes publishing one buffer would send every sample twice."""
        if sys.platform == "win32":
            return None
        lock_path = self.folder / _LOCK_NAME
        handle = open(lock_path, "a+", encoding="utf-8")  # noqa: SIM115 - held until close
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            handle.seek(0)
            owner = handle.read().strip() or "?"
            handle.close()
            raise SmartlineError(
                f"sample store {self.folder} is in use by another process (pid {owner}); "
                "one edge node per store folder") from exc
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        return handle

    def _release_lock(self) -> None:
        handle = self._lock_file
        self._lock_file = None
        if handle is not None:
            if sys.platform != "win32":
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            handle.close()

    def _open(self) -> sqlite3.Connection:
        return _KIND.open(self.path, timeout_s=_BUSY_TIMEOUT_S)

    def _pragma(self, name: str) -> int:
        return int(self._conn.execute(f"PRAGMA {name}").fetchone()[0])

    def _data_bytes(self) -> int:
        """Bytes of the database's pages in use (free pages are reused before it grows)."""
        return (self._pragma("page_count") - self._pragma("freelist_count")) * self._page_size

    def _disk_bytes(self) -> int:
        wal = self.path.with_name(self.path.name + "-wal")
        try:
            wal_bytes = wal.stat().st_size
        except OSError:
            wal_bytes = 0
        return self._pragma("page_count") * self._page_size + wal_bytes

    def _row_bytes(self, used: int) -> float:
        """Bytes one row takes on average (an estimate: the exact check follows the insert)."""
        if self._rows < 50:
            return 64.0
        return max(24.0, (used - _EMPTY_PAGES * self._page_size) / self._rows)

    def _make_room(self, rows: list[_Row], drops: _Drops) -> list[_Row]:
        """Before the insert (so that the file does not grow past the budget): drop the
        oldest rows the new ones need room for, or cut the new rows to what fits."""
        used = self._data_bytes()
        per_row = self._row_bytes(used)
        if self.overflow == "drop-newest":
            if self._episode:
                keep = 0  # still full: refuse until the backlog has shrunk
            else:
                keep = max(0, min(len(rows), int((self._data_budget - used) // per_row)))
            for r in rows[keep:]:
                drops.add(r[2])
            return rows[:keep]
        excess = used + len(rows) * per_row - self._data_budget
        if excess > 0 and self._rows:
            self._delete(math.ceil(excess / per_row), oldest=True, drops=drops)
        return rows

    def _delete(self, n: int, *, oldest: bool, drops: _Drops) -> set[int]:
        order = "" if oldest else " DESC"
        victims = self._conn.execute(
            f"SELECT id, ts_ms FROM samples ORDER BY id{order} LIMIT ?", (n,)).fetchall()
        if victims:
            self._conn.execute(
                f"DELETE FROM samples WHERE id IN ({','.join('?' * len(victims))})",
                [v[0] for v in victims])
        for _vid, ts in victims:
            drops.add(int(ts))
        self._rows -= len(victims)
        return {int(v[0]) for v in victims}

    def _enforce_budget(self, ids: list[int], drops: _Drops) -> list[int]:
        """After the insert, inside the add's transaction: if the estimate was short, drop
        by the policy until the data is under budget; the ids of the new rows still stored."""
        newest = self.overflow == "drop-newest"
        new = set(ids)
        while self._rows and (used := self._data_bytes()) > self._data_budget:
            per_row = self._row_bytes(used)
            n = min(self._rows, math.ceil((used - self._data_budget) / per_row) + 1)
            if newest:
                n = min(n, len(new))
                if n == 0:
                    break  # the rows from before fit on their own: never drop those
            new -= self._delete(n, oldest=not newest, drops=drops)
        return [i for i in ids if i in new]

    def _note_drop(self, drops: _Drops) -> None:
        if not self._episode:
            what = "oldest unsent" if self.overflow == "drop-oldest" else "newest"
            log.warning("sample store %s is full (%d bytes budget): dropped the %d %s samples "
                        "(a gap in the host's history); further drops are counted until the "
                        "backlog shrinks below 90 %% of the budget", self.path, self.max_bytes,
                        drops.n, what)
            self._episode_first_ms = drops.first_ms
            self._episode_last_ms = drops.last_ms
        else:
            self._episode_first_ms = _opt(min, self._episode_first_ms, drops.first_ms)
            self._episode_last_ms = _opt(max, self._episode_last_ms, drops.last_ms)
        self._episode += drops.n

    def _maybe_end_episode(self) -> None:
        if self._data_bytes() <= _EPISODE_END * self._data_budget:
            self._end_episode()

    def _end_episode(self) -> None:
        log.warning("sample store %s: overflow over, %d samples dropped (%s), timestamps %s..%s"
                    " ms", self.path, self._episode, self.overflow, self._episode_first_ms,
                    self._episode_last_ms)
        self._episode = 0
        self._episode_first_ms = self._episode_last_ms = None


_Row = tuple[str, str, int, int, object, int, int]


class _Drops:
    """Samples dropped by one add: how many, and the span of their timestamps."""

    __slots__ = ("first_ms", "last_ms", "n")

    def __init__(self) -> None:
        self.n = 0
        self.first_ms: int | None = None
        self.last_ms: int | None = None

    def add(self, ts_ms: int) -> None:
        self.n += 1
        self.first_ms = ts_ms if self.first_ms is None else min(self.first_ms, ts_ms)
        self.last_ms = ts_ms if self.last_ms is None else max(self.last_ms, ts_ms)


def _opt(pick: Callable[[int, int], int], a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else pick(a, b)


def _row(s: StoredSample) -> _Row:
    """The columns of ``s``: (device, tag, ts_ms, kind, value, quality, datatype)."""
    kind, value = _encode(s.value, s)
    return (s.device, s.tag, int(s.ts_ms), kind, value, int(s.quality), int(s.datatype))


def _encode(value: object, s: StoredSample) -> tuple[int, object]:
    if value is None:
        return _NULL, None
    if isinstance(value, bool):
        return _BOOL, int(value)
    if isinstance(value, str):
        return _TEXT, value
    if isinstance(value, numbers.Integral):  # int and numpy integers
        v = int(value)
        return (_INT, v) if _INT64[0] <= v <= _INT64[1] else (_BIGINT, str(v))
    if isinstance(value, numbers.Real):  # float and numpy floats; NaN is stored as NULL
        f = float(value)
        return _FLOAT, None if math.isnan(f) else f
    raise TypeError(f"device {s.device!r} tag {s.tag!r}: cannot store a "
                    f"{type(value).__name__} value (bool, int, float, str or None)")


def _sample(r: tuple[Any, ...]) -> StoredSample:
    _id, device, tag, ts_ms, kind, raw, quality, datatype = r
    value: float | int | bool | str | None
    if kind == _NULL:
        value = None
    elif kind == _BOOL:
        value = bool(raw)
    elif kind == _INT:
        value = int(raw)
    elif kind == _FLOAT:
        value = math.nan if raw is None else float(raw)
    elif kind == _BIGINT:
        value = int(str(raw))
    else:
        value = str(raw)
    return StoredSample(device=str(device), tag=str(tag), ts_ms=int(ts_ms), value=value,
                        quality=int(quality), datatype=int(datatype))


def _rollback(conn: sqlite3.Connection) -> None:
    with contextlib.suppress(sqlite3.Error):  # nothing to roll back: the failure ended it
        conn.execute("ROLLBACK")
