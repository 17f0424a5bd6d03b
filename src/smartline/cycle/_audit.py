"""The audit trail: every write attempt, one JSON object per line, hash-chained.

Each record carries ``prev`` (the hash of the record before it; 64 zeros for the first)
and ``hash``, the SHA-256 of the record's canonical JSON without its ``hash`` key. An
edited record no longer matches its hash; a deleted or inserted one breaks the ``prev``
links after it. Deleting records at the end leaves a valid shorter chain, so the file
keeps a *head* beside it (``FILE.head``: record count and last hash, replaced atomically
after every fsync'd batch) and :func:`verify_audit` compares the two. Someone who can
rewrite both files and recompute every hash can forge the trail: ship the head (or the
records) to another machine — the north-bound publisher does — for protection against
that.
"""

from __future__ import annotations

import atexit
import fcntl
import hashlib
import json
import logging
import math
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["GENESIS", "AuditVerdict", "JsonlAudit", "audit_json", "verify_audit"]

log = logging.getLogger(__name__)

GENESIS = "0" * 64
"""``prev`` of the first record of a chain."""


def audit_json(entry: Mapping[str, object]) -> str:
    """An audit entry as one line of valid JSON (NaN and infinities become strings)."""
    return json.dumps(_jsonable(entry), default=str, sort_keys=True, allow_nan=False)


def _jsonable(v: object) -> object:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float):
        return v if math.isfinite(v) else repr(v)
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple | np.ndarray):
        return [_jsonable(x) for x in v]
    return v


def _digest(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def _chained(entry: Mapping[str, object], prev: str) -> tuple[str, str]:
    """The record's line and hash, chained to ``prev``."""
    record = dict(_jsonable(entry))  # type: ignore[call-overload]
    record.pop("hash", None)
    record["prev"] = prev
    h = _digest(json.dumps(record, sort_keys=True, allow_nan=False, default=str))
    record["hash"] = h
    return json.dumps(record, sort_keys=True, allow_nan=False, default=str), h


def _head_path(path: Path) -> Path:
    return path.with_name(path.name + ".head")


def _last_line(path: Path) -> str:
    """The file's last non-empty line ('' for an empty or missing file)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            block = 4096
            data = b""
            pos = size
            while pos > 0:
                step = min(block, pos)
                pos -= step
                f.seek(pos)
                data = f.read(step) + data
                lines = data.rstrip(b"\n").split(b"\n")
                if len(lines) > 1 or pos == 0:
                    return lines[-1].decode("utf-8", "replace")
    except FileNotFoundError:
        return ""
    return ""


class JsonlAudit:
    """Appends hash-chained records to a file, fsync'd: the audit must survive a crash.

    The file is opened (its directory created) at construction, so a path that cannot be
    written raises ``OSError`` before any write is sent. An existing file is continued:
    the chain goes on from its last record. :meth:`record` never blocks on the disk: a
    writer thread appends and fsyncs what has been recorded, in batches, then replaces
    the head file. :meth:`flush` waits until everything recorded so far is on disk and
    raises the writer's ``OSError``, if any; :meth:`close` flushes and closes (also at
    interpreter exit).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")
        self._pending: list[dict[str, object]] = []
        self._cond = threading.Condition()
        self._recorded = 0  # lines handed to record()
        self._synced = 0  # lines written and fsync'd
        self._error: OSError | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._writer, daemon=True,
                                        name="smartline-audit")
        self._thread.start()
        atexit.register(self.close)

    def _resume(self) -> tuple[str, int]:
        """The chain's last hash and record count, from the head file or the records
        (read under the file lock: another process may have appended since)."""
        last = _last_line(self.path)
        if not last:
            return GENESIS, 0
        try:
            h = json.loads(last).get("hash")
        except (ValueError, AttributeError):
            h = None
        if not isinstance(h, str):  # a record from before the chain: chain onto its text
            h = _digest(last)
        head = _read_head(self.path)
        if head is not None and head[1] == h:
            return h, head[0]
        with self.path.open("rb") as f:
            count = sum(1 for raw in f if raw.strip())
        return h, count

    def record(self, entry: Mapping[str, object]) -> None:
        with self._cond:
            if self._closed:
                raise ValueError(f"audit log {self.path} is closed")
            self._pending.append(dict(_jsonable(entry)))  # type: ignore[call-overload]
            self._recorded += 1
            self._cond.notify_all()

    def flush(self, timeout_s: float | None = None) -> None:
        """Wait until every entry recorded so far is fsync'd; raise the writer's OSError."""
        with self._cond:
            target = self._recorded
            self._cond.wait_for(lambda: self._synced >= target or self._error is not None,
                                timeout_s)
            if self._error is not None:
                raise self._error
            if self._synced < target:
                raise TimeoutError(f"audit log {self.path}: not written within {timeout_s} s")

    def close(self) -> None:
        """Flush and close (idempotent)."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        self._thread.join()
        atexit.unregister(self.close)
        self._file.close()
        if self._error is not None:
            raise self._error

    def _writer(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._pending) or self._closed)
                batch, self._pending = self._pending, []
                if not batch and self._closed:
                    return
            try:
                if self._error is None:
                    self._append(batch)
            except OSError as exc:
                log.error("audit log %s: %s", self.path, exc)
                with self._cond:
                    self._error = exc
            with self._cond:
                self._synced += len(batch)
                self._cond.notify_all()


    def _append(self, batch: list[dict[str, object]]) -> None:
        """Chain ``batch`` onto the file's last record and append it, under an exclusive
        lock of the file: several processes (a running line, ``smartline write``) may
        share one trail, and each batch links to whatever record is last on disk."""
        fd = self._file.fileno()
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            prev, count = self._resume()
            lines = []
            for entry in batch:
                line, prev = _chained(entry, prev)
                lines.append(line)
            self._file.write("".join(f"{x}\n" for x in lines))
            self._file.flush()
            os.fsync(fd)
            _write_head(self.path, count + len(lines), prev)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)


def _write_head(path: Path, count: int, last: str) -> None:
    head = _head_path(path)
    tmp = head.with_name(head.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(json.dumps({"records": count, "hash": last}) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, head)


def _read_head(path: Path) -> tuple[int, str] | None:
    try:
        data = json.loads(_head_path(path).read_text(encoding="utf-8"))
        return int(data["records"]), str(data["hash"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


@dataclass(frozen=True, slots=True)
class AuditVerdict:
    """What :func:`verify_audit` found: ``ok`` when the chain and the head agree."""

    path: Path
    records: int
    problems: tuple[str, ...] = field(default_factory=tuple)
    unchained: int = 0  # records from before the chain (no hash), at the start

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_audit(path: str | os.PathLike[str], *, max_problems: int = 20) -> AuditVerdict:
    """Check every record's hash and link, and the head; ``OSError`` if unreadable."""
    p = Path(path)
    problems: list[str] = []
    prev: str | None = None
    records = unchained = 0
    last_text = ""
    with p.open("r", encoding="utf-8", errors="replace") as f:
        for n, raw in enumerate(f, start=1):
            text = raw.rstrip("\n")
            if not text.strip():
                continue
            records += 1
            try:
                rec = json.loads(text)
                if not isinstance(rec, dict):
                    raise ValueError("not an object")
            except ValueError:
                problems.append(f"{p}:{n}: not a JSON record (edited or damaged)")
                prev = _digest(text)
                continue
            h = rec.get("hash")
            if h is None and prev is None:  # records from before the chain, at the start
                unchained += 1
                last_text = text
                continue
            if h is None:
                problems.append(f"{p}:{n}: record without a hash inside the chain "
                                "(inserted or edited)")
                prev = _digest(text)
                continue
            expect_prev = prev if prev is not None else (
                _digest(last_text) if unchained else GENESIS)
            body = {k: v for k, v in rec.items() if k != "hash"}
            if _digest(json.dumps(body, sort_keys=True, allow_nan=False, default=str)) != h:
                problems.append(f"{p}:{n}: record does not match its hash (edited)")
            if rec.get("prev") != expect_prev:
                problems.append(f"{p}:{n}: does not follow the record before it (a record "
                                "was deleted, inserted or reordered before this line)")
            prev = str(h)
            if len(problems) >= max_problems:
                problems.append(f"… stopped after {max_problems} problems")
                break
    head = _read_head(p)
    if head is None:
        if _head_path(p).exists():
            problems.append(f"{_head_path(p)}: unreadable head")
    else:
        count, last = head
        if records < count:
            problems.append(f"{p}: {count - records} record(s) missing at the end: the head "
                            f"says {count} records, the file has {records} (truncated)")
        elif prev is not None and records == count and prev != last:
            problems.append(f"{p}: the last record is not the one the head names "
                            "(the end of the file was replaced)")
    return AuditVerdict(p, records, tuple(problems), unchained)
