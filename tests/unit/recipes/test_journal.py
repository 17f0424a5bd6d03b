"""The batch journal: SQLite WAL records, seq continuity, exports, version immutability."""

from __future__ import annotations

import csv
import enum
import io
import json
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from smartline.core import ClosedError, RecipeError, VirtualClock
from smartline.recipes._journal import (
    CSV_HEADER,
    SCHEMA_VERSION,
    BatchEvent,
    BatchJournal,
    default_journal_path,
    iso_utc,
)

EPOCH_NS = 1_767_225_600_000_000_000  # VirtualClock's wall epoch: 2026-01-01T00:00:00Z
DIGEST_A = "a" * 64
DIGEST_B = "b" * 64


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def journal(tmp_path: Path, clock: VirtualClock):
    j = BatchJournal(tmp_path / "state" / "batches.db", clock=clock)
    yield j
    j.close()


def begin(j: BatchJournal, *, line: str = "heat", recipe: str = "heat-treat",
          version: str = "3", digest: str = DIGEST_A, **params: object) -> str:
    return j.begin(line=line, recipe=recipe, version=version, digest=digest, product="shafts",
                   source="test", parameters=params or {"soak_temp": 200.0}, on_restart="abort")


def test_a_batch_from_begin_to_end(journal: BatchJournal, clock: VirtualClock):
    batch = begin(journal, soak_temp=np.float64(210.0), parts=np.int32(4))
    assert batch == "heat-20260101T000000-1"
    clock.advance_ns(1_500_000_000)
    journal.record(batch, "state", "procedure", {"from": "IDLE", "to": "RUNNING"})
    journal.record(batch, "write", "zone1.sp", {"value": 210.0, "outcome": "ok", "detail": ""},
                   plant_ns=7)
    clock.advance_ns(1_000_000_000)
    assert [b.id for b in journal.unfinished("heat")] == [batch]
    journal.end(batch, "COMPLETE")
    journal.flush()

    events = journal.events(batch)
    assert [(e.seq, e.kind, e.subject) for e in events] == [
        (0, "batch", "start"), (1, "state", "procedure"), (2, "write", "zone1.sp"),
        (3, "batch", "end")]
    assert events[0].data == {
        "recipe": "heat-treat", "version": "3", "digest": DIGEST_A, "product": "shafts",
        "source": "test", "parameters": {"soak_temp": 210.0, "parts": 4},
        "on_restart": "abort"}
    assert events[1] == BatchEvent(batch, 1, EPOCH_NS + 1_500_000_000, 1_500_000_000, "state",
                                   "procedure", {"from": "IDLE", "to": "RUNNING"})
    assert events[2].plant_ns == 7  # the given plant time wins over the clock's
    assert events[3].data == {"state": "COMPLETE"}
    assert events[3].wall_ns == EPOCH_NS + 2_500_000_000

    summary = journal.batch(batch)
    assert summary.state == "COMPLETE"
    assert summary.started_ns == EPOCH_NS
    assert summary.ended_ns == EPOCH_NS + 2_500_000_000
    assert summary.parameters == {"soak_temp": 210.0, "parts": 4}
    assert (summary.recipe, summary.version, summary.digest, summary.product,
            summary.on_restart, summary.events) == ("heat-treat", "3", DIGEST_A, "shafts",
                                                    "abort", 4)
    assert journal.unfinished("heat") == []
    assert journal.batches() == [summary]


def test_state_events_set_the_batch_state(journal: BatchJournal):
    batch = begin(journal)
    assert journal.batch(batch).state == "RUNNING"
    journal.record(batch, "state", "procedure", {"from": "RUNNING", "to": "HELD"})
    assert journal.batch(batch).state == "HELD"  # reads see this journal's own records
    journal.record(batch, "alarm", "engine", {"message": "phase timed out"})
    assert journal.batch(batch).state == "HELD"


def test_ids_are_unique_and_history_is_newest_first(journal: BatchJournal, clock: VirtualClock):
    first = begin(journal)
    second = begin(journal)  # same second: the counter tells them apart
    other = begin(journal, line="pack", version="4")
    clock.advance_ns(61_000_000_000)
    third = begin(journal)
    assert (first, second, third) == ("heat-20260101T000000-1", "heat-20260101T000000-2",
                                      "heat-20260101T000101-1")
    assert other == "pack-20260101T000000-1"
    assert [b.id for b in journal.batches()] == [third, other, second, first]
    assert [b.id for b in journal.batches(line="heat")] == [third, second, first]
    assert [b.id for b in journal.batches(line="heat", limit=2)] == [third, second]
    assert journal.batches(line="nowhere") == []
    assert [b.id for b in journal.unfinished("heat")] == [first, second, third]
    with pytest.raises(KeyError, match="no batch 'nope'"):
        journal.batch("nope")
    with pytest.raises(KeyError, match="no batch 'nope'"):
        journal.events("nope")


def test_seq_has_no_gaps_under_four_threads(journal: BatchJournal):
    batch = begin(journal)
    per_thread = 400
    start = threading.Barrier(4)

    def writer(t: int) -> None:
        start.wait()
        for i in range(per_thread):
            journal.record(batch, "write", f"t{t}", {"i": i})

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    journal.flush(timeout_s=10)
    events = journal.events(batch)
    assert [e.seq for e in events] == list(range(1 + 4 * per_thread))
    for t in range(4):  # each thread's records in the order it made them
        assert [e.data["i"] for e in events if e.subject == f"t{t}"] == list(range(per_thread))
    assert journal.batch(batch).events == 1 + 4 * per_thread


def test_record_never_waits_for_the_disk_and_flush_waits_for_the_commit(
        journal: BatchJournal, tmp_path: Path):
    batch = begin(journal)
    blocker = sqlite3.connect(journal.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock: no commit can happen
    try:
        t0 = time.perf_counter()
        for i in range(200):
            journal.record(batch, "parameter", f"p{i}", {"value": i, "unit": "s"})
        assert time.perf_counter() - t0 < 0.5
        with pytest.raises(TimeoutError, match="not committed"):
            journal.flush(timeout_s=0.2)
        reader = BatchJournal(journal.path, read_only=True)
        assert reader.batch(batch).events == 1  # nothing of the burst committed yet
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    journal.flush(timeout_s=10)
    assert reader.batch(batch).events == 201
    assert [e.seq for e in reader.events(batch)] == list(range(201))


def test_exports_parse_back_to_the_record(journal: BatchJournal, clock: VirtualClock):
    batch = begin(journal)
    clock.advance_ns(250_000_000)
    journal.record(batch, "identity", "scanner.lot", {"value": "L-42, \"quoted\"",
                                                      "fields": {"gtin": "0401"}})
    clock.advance_ns(1_000_123_456)
    journal.record(batch, "command", "filler", {"command": "START", "source": "recipe",
                                                "accepted": True, "reason": ""})
    journal.end(batch, "STOPPED")
    events = journal.events(batch)

    out = io.StringIO()
    journal.export_json(batch, out)
    doc = json.loads(out.getvalue())
    assert set(doc) == {"batch", "events"}
    head = doc["batch"]
    summary = journal.batch(batch)
    for name in ("id", "line", "recipe", "version", "digest", "product", "state", "started_ns",
                 "ended_ns", "on_restart", "events"):
        assert head[name] == getattr(summary, name), name
    assert head["parameters"] == summary.parameters
    assert head["source"] == "test"
    assert head["started"] == "2026-01-01T00:00:00.000000Z"
    assert [BatchEvent(batch, e["seq"], e["wall_ns"], e["plant_ns"], e["kind"], e["subject"],
                       e["data"]) for e in doc["events"]] == events
    assert doc["events"][2]["wall_time"] == "2026-01-01T00:00:01.250123Z"

    out = io.StringIO()
    journal.export_csv(batch, out)
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert tuple(rows[0]) == CSV_HEADER == ("seq", "wall_time", "plant_time_s", "kind",
                                             "subject", "data")
    assert len(rows) == 1 + len(events)
    for row, e in zip(rows[1:], events, strict=True):
        assert int(row[0]) == e.seq
        assert row[1] == iso_utc(e.wall_ns)
        assert row[1].endswith("Z")
        assert round(float(row[2]) * 1e9) == e.plant_ns
        assert (row[3], row[4]) == (e.kind, e.subject)
        assert json.loads(row[5]) == e.data
        assert " " not in row[5].replace("L-42, ", "")  # compact JSON
    assert rows[3][2] == "1.250123456"


def test_a_used_recipe_version_is_immutable(journal: BatchJournal):
    journal.check_version("heat-treat", "3", DIGEST_A)  # never used: fine
    batch = begin(journal)
    journal.check_version("heat-treat", "3", DIGEST_A)  # same file again: fine
    journal.check_version("heat-treat", "4", DIGEST_B)  # a new version: fine
    with pytest.raises(RecipeError) as info:
        journal.check_version("heat-treat", "3", DIGEST_B)
    message = str(info.value)
    assert batch in message
    assert "a" * 12 in message and "b" * 12 in message
    assert "a" * 13 not in message
    assert "immutable" in message
    with pytest.raises(RecipeError, match=batch):  # begin refuses it as well
        begin(journal, digest=DIGEST_B)
    assert len(journal.batches()) == 1


def test_an_unknown_schema_version_is_refused(tmp_path: Path):
    path = tmp_path / "future.db"
    with BatchJournal(path):
        pass
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 7")
    conn.close()
    for read_only in (False, True):
        with pytest.raises(RecipeError, match=r"schema version 7 is not supported .*version 1"):
            BatchJournal(path, read_only=read_only)

    foreign = tmp_path / "foreign.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE t (x)")
    conn.close()
    with pytest.raises(RecipeError, match="not a smartline batch journal"):
        BatchJournal(foreign)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is no database at all" * 100)
    with pytest.raises(RecipeError, match=r"garbage\.db"):
        BatchJournal(garbage)


def test_a_new_file_gets_the_schema_version_and_wal(journal: BatchJournal):
    conn = sqlite3.connect(journal.path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_a_closed_journal_refuses_records(journal: BatchJournal):
    batch = begin(journal)
    journal.record(batch, "alarm", "engine", {"message": "last words"})
    journal.close()
    journal.close()  # idempotent
    with pytest.raises(ClosedError, match=r"batches.db is closed: cannot record alarm"):
        journal.record(batch, "alarm", "engine", {"message": "too late"})
    with pytest.raises(ClosedError, match="closed"):
        journal.end(batch, "ABORTED")
    with pytest.raises(ClosedError, match="closed"):
        begin(journal)
    journal.flush()  # nothing pending: fine
    assert journal.batch(batch).events == 2  # close() committed what was queued


def test_refused_records_are_reported_not_lost_silently(journal: BatchJournal,
                                                         clock: VirtualClock):
    batch = begin(journal)
    journal.record("ghost-batch", "write", "x", {"value": 1})
    journal.record(batch, "write", "x", {"value": 2})
    with pytest.raises(RecipeError, match="'ghost-batch' refused: no such batch"):
        journal.flush()
    journal.flush()  # reported once
    assert [e.seq for e in journal.events(batch)] == [0, 1]

    with pytest.raises(RecipeError, match="unknown event kind 'bogus'"):
        journal.record(batch, "bogus", "x")
    journal.end(batch, "ABORTED")
    with pytest.raises(RecipeError, match="has ended"):
        journal.record(batch, "write", "x", {"value": 3})
    with pytest.raises(RecipeError, match="already ended"):
        journal.end(batch, "ABORTED")
    # a batch ended by another journal (process) is refused by the writer, once the end
    # is committed (end() only queues it: without this flush the other writer may win)
    journal.flush()
    other = BatchJournal(journal.path, clock=clock)
    other.record(batch, "write", "x", {"value": 4})
    with pytest.raises(RecipeError, match="refused: the batch has ended"):
        other.close()
    assert journal.batch(batch).events == 3


def test_an_unfinished_batch_continues_after_a_restart(tmp_path: Path, clock: VirtualClock):
    path = tmp_path / "batches.db"
    with BatchJournal(path, clock=clock) as first:
        batch = begin(first)
        first.record(batch, "phase", "heat/ramp/reach", {"event": "start", "reason": ""})
    with BatchJournal(path, clock=clock) as second:
        [unfinished] = second.unfinished("heat")
        assert unfinished.id == batch
        second.record(batch, "batch", "resumed", {"reason": "on_restart: resume"})
        second.end(batch, "ABORTED")
    with BatchJournal(path, read_only=True) as reader:
        assert [(e.seq, e.subject) for e in reader.events(batch)] == [
            (0, "start"), (1, "heat/ramp/reach"), (2, "resumed"), (3, "end")]
        assert reader.unfinished("heat") == []


class Colour(enum.IntEnum):
    RED = 1


def test_event_data_is_plain_sorted_json(journal: BatchJournal):
    batch = begin(journal)
    journal.record(batch, "write", "x", {
        "z": np.float32(0.5), "a": np.bool_(True), "arr": np.arange(3, dtype=np.int16),
        "nan": float("nan"), "inf": float("-inf"), "enum": Colour.RED, "set": {3, 1, 2},
        "raw": b"\x01\xff", "tuple": (1, "two"), 7: None})
    journal.flush()
    stored = sqlite3.connect(journal.path).execute(
        "SELECT data FROM events WHERE seq = 1").fetchone()[0]
    assert stored == ('{"7":null,"a":true,"arr":[0,1,2],"enum":"RED","inf":"-inf",'
                      '"nan":"nan","raw":"01ff","set":[1,2,3],"tuple":[1,"two"],"z":0.5}')
    assert journal.events(batch)[1].data["arr"] == [0, 1, 2]


def test_read_only_journals_create_nothing_and_refuse_writes(tmp_path: Path):
    path = tmp_path / "none" / "batches.db"
    reader = BatchJournal(path, read_only=True)
    assert reader.batches() == []
    assert reader.unfinished("heat") == []
    reader.check_version("r", "1", DIGEST_A)
    with pytest.raises(KeyError):
        reader.events("x")
    with pytest.raises(RecipeError, match="read-only: cannot record"):
        reader.record("x", "alarm", "engine")
    with pytest.raises(RecipeError, match="read-only"):
        begin(reader)
    assert not path.parent.exists()


def test_default_journal_path(tmp_path: Path):
    assert default_journal_path({"SMARTLINE_STATE_DIR": str(tmp_path)}) == \
        tmp_path / "batches.db"
    assert default_journal_path({}) == \
        Path.home() / ".local" / "state" / "smartline" / "batches.db"


def test_begin_needs_the_identity_of_the_recipe(journal: BatchJournal):
    with pytest.raises(RecipeError, match="non-empty digest"):
        begin(journal, digest="")


def test_a_commit_that_keeps_failing_is_raised_and_stops_the_journal(
        tmp_path: Path, clock: VirtualClock, monkeypatch: pytest.MonkeyPatch):
    from smartline.recipes import _journal

    monkeypatch.setattr(_journal, "_BUSY_TIMEOUT_S", 0.05)
    journal = BatchJournal(tmp_path / "batches.db", clock=clock)
    batch = begin(journal)
    blocker = sqlite3.connect(journal.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # held past every retry of the writer
    try:
        journal.record(batch, "write", "x", {"value": 1})
        journal.record(batch, "write", "x", {"value": 2})
        with pytest.raises(RecipeError, match=r"commit failed, \d records lost: database is lo"):
            journal.flush(timeout_s=10)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    with pytest.raises(RecipeError, match=r"cannot write any more .*commit failed"):
        journal.record(batch, "write", "x", {"value": 3})
    with pytest.raises(RecipeError, match="cannot write any more"):
        begin(journal)
    journal.close()  # the failure was raised already
    assert journal.batch(batch).events == 1


def test_two_writers_on_one_file_keep_seq_continuous(journal: BatchJournal, clock: VirtualClock):
    batch = begin(journal)
    other = BatchJournal(journal.path, clock=clock)  # its own connection and writer thread
    for i in range(50):
        (journal if i % 2 else other).record(batch, "write", "x", {"i": i})
        if i % 10 == 9:
            journal.flush()
            other.flush()
    other.close()
    events = journal.events(batch)
    assert [e.seq for e in events] == list(range(51))
    assert sorted(e.data["i"] for e in events[1:]) == list(range(50))
