"""The Sparkplug store-and-forward buffer: order, ids, sent rows, the size budget and its two
overflow policies, reopening, a concurrent reader, and what survives a crash."""

from __future__ import annotations

import logging
import math
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from smartline.core import ClosedError, SmartlineError
from smartline.northbound.sparkplug._store import (
    MIN_STORE_BYTES,
    SampleStore,
    StoredSample,
)

MB = 1024 * 1024


def _s(i: int, device: str = "filler", tag: str = "level") -> StoredSample:
    return StoredSample(device=device, tag=tag, ts_ms=1_700_000_000_000 + i, value=float(i),
                        quality=0, datatype=10)


def _values(store: SampleStore) -> list[float]:
    return [s.value for _, s in store.unsent(10**9)]  # type: ignore[misc]


def test_add_returns_increasing_ids_and_unsent_is_oldest_first(tmp_path: Path):
    with SampleStore(tmp_path, max_bytes=MB) as store:
        a = store.add([_s(0), _s(1), _s(2)])
        b = store.add([_s(3)])
        assert a == sorted(a) and len(set(a)) == 3 and b[0] > a[-1]
        got = store.unsent(10)
        assert [i for i, _ in got] == a + b
        assert [s for _, s in got] == [_s(0), _s(1), _s(2), _s(3)]
        assert store.unsent(2) == got[:2]
        assert store.unsent(0) == []
        assert store.backlog() == 4
        assert store.add([]) == []
    assert (tmp_path / "buffer.db").exists()


def test_values_round_trip_with_their_types(tmp_path: Path):
    values: list[float | int | bool | str | None] = [
        True, False, 0, -1, 2**63 - 1, -(2**63), 2**64 - 1, 1.5, -0.0, math.inf, "", "é ✓",
        None, np.int16(-7), np.float32(0.25), np.uint64(2**64 - 2)]  # type: ignore[list-item]
    samples = [StoredSample("d", f"t{i}", i, v, i % 3, 1 + i % 12) for i, v in enumerate(values)]
    with SampleStore(tmp_path, max_bytes=MB) as store:
        store.add(samples)
        back = [s for _, s in store.unsent(100)]
    for orig, got in zip(samples, back, strict=True):
        assert (got.device, got.tag, got.ts_ms, got.quality, got.datatype) == \
            (orig.device, orig.tag, orig.ts_ms, orig.quality, orig.datatype)
        assert got.value == orig.value and type(got.value) is type(
            orig.value.item() if isinstance(orig.value, np.generic) else orig.value)
    nan = StoredSample("d", "nan", 1, math.nan, 0, 10)
    with SampleStore(tmp_path, max_bytes=MB) as store:
        store.add([nan])
        got_nan = store.unsent(100)[-1][1].value
        assert isinstance(got_nan, float) and math.isnan(got_nan)


def test_unstorable_value_is_refused_naming_the_tag_and_nothing_is_stored(tmp_path: Path):
    with SampleStore(tmp_path, max_bytes=MB) as store:
        bad = StoredSample("d", "blob", 1, b"\x00", 0, 17)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"device 'd' tag 'blob'.*bytes"):
            store.add([_s(1), bad])
        assert store.backlog() == 0 and store.unsent(10) == []


def test_mark_sent_deletes_rows_and_ignores_unknown_ids(tmp_path: Path):
    with SampleStore(tmp_path, max_bytes=MB) as store:
        ids = store.add([_s(i) for i in range(10)])
        store.mark_sent([*ids[:3], ids[5]])
        assert [i for i, _ in store.unsent(100)] == ids[3:5] + ids[6:]
        assert store.backlog() == 6
        store.mark_sent([ids[0], 99999])  # already sent, never existed: ignored
        assert store.backlog() == 6
        store.mark_sent([])
        store.mark_sent(ids)
        assert store.backlog() == 0 and store.unsent(10) == []
        st = store.stats()
        assert (st.rows, st.backlog, st.oldest_unsent_ms, st.dropped) == (0, 0, None, 0)
        more = store.add([_s(100)])
        assert more[0] > ids[-1]  # ids are never reused (AUTOINCREMENT)


def test_stats(tmp_path: Path):
    with SampleStore(tmp_path, max_bytes=2 * MB) as store:
        store.add([_s(5), _s(6)])
        st = store.stats()
        assert (st.rows, st.backlog, st.max_bytes, st.dropped) == (2, 2, 2 * MB, 0)
        assert st.oldest_unsent_ms == _s(5).ts_ms
        assert 0 < st.bytes < 2 * MB


def test_reopen_after_close_keeps_unsent_rows_ids_and_dropped(tmp_path: Path):
    store = SampleStore(tmp_path, max_bytes=MB)
    ids = store.add([_s(i) for i in range(5)])
    store.mark_sent(ids[:2])
    store.close()
    store.close()  # idempotent
    with pytest.raises(ClosedError):
        store.add([_s(9)])
    with pytest.raises(ClosedError):
        store.unsent(1)
    with SampleStore(tmp_path, max_bytes=MB) as again:
        assert [i for i, _ in again.unsent(10)] == ids[2:]
        assert again.backlog() == 3
        assert again.add([_s(9)])[0] > ids[-1]
    assert not (tmp_path / "buffer.db-wal").exists() or \
        (tmp_path / "buffer.db-wal").stat().st_size == 0  # checkpointed at close


def test_a_second_store_on_the_same_folder_is_refused_while_the_first_is_open(tmp_path: Path):
    first = SampleStore(tmp_path, max_bytes=MB)
    try:
        with pytest.raises(SmartlineError, match="in use by another process"):
            SampleStore(tmp_path, max_bytes=MB)
    finally:
        first.close()
    SampleStore(tmp_path, max_bytes=MB).close()  # free again


def test_bad_arguments_and_foreign_files_are_refused_clearly(tmp_path: Path):
    with pytest.raises(ValueError, match="overflow must be one of drop-oldest, drop-newest"):
        SampleStore(tmp_path, max_bytes=MB, overflow="drop-all")
    with pytest.raises(ValueError, match=f"below the minimum {MIN_STORE_BYTES}"):
        SampleStore(tmp_path, max_bytes=1000)
    other = tmp_path / "other"
    other.mkdir()
    with sqlite3.connect(other / "buffer.db") as conn:
        conn.execute("CREATE TABLE x (a)")
    with pytest.raises(SmartlineError, match=r"not a smartline sample store.*tables x"):
        SampleStore(other, max_bytes=MB)
    (other / "buffer.db").write_bytes(b"not a database at all" * 100)
    with pytest.raises(SmartlineError, match=r"buffer\.db"):
        SampleStore(other, max_bytes=MB)


def _fill(store: SampleStore, n: int, batch: int = 200, tag: str = "level") -> list[int]:
    ids: list[int] = []
    for start in range(0, n, batch):
        ids += store.add([_s(i, tag=tag) for i in range(start, min(n, start + batch))])
    return ids


def test_drop_oldest_keeps_the_newest_within_the_budget(tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture):
    budget = 256 * 1024
    with caplog.at_level(logging.WARNING), \
            SampleStore(tmp_path, max_bytes=budget, overflow="drop-oldest") as store:
        _fill(store, 20_000)
        st = store.stats()
        assert st.dropped > 0 and st.rows + st.dropped == 20_000
        assert st.bytes <= budget
        vals = _values(store)
        assert vals == [float(i) for i in range(st.dropped, 20_000)]  # a contiguous tail
        assert st.oldest_unsent_ms == _s(st.dropped).ts_ms
        full = [r for r in caplog.records if "is full" in r.getMessage()]
        assert len(full) == 1  # one warning per episode, not one per add
        assert "oldest unsent" in full[0].getMessage()
        # draining ends the episode: the end is logged with how many were dropped
        store.mark_sent([i for i, _ in store.unsent(10**9)])
        over = [r for r in caplog.records if "overflow over" in r.getMessage()]
        assert len(over) == 1 and f"{st.dropped} samples dropped" in over[0].getMessage()
        # a second episode warns again
        _fill(store, 20_000)
        assert len([r for r in caplog.records if "is full" in r.getMessage()]) == 2
        dropped_total = store.stats().dropped
    with SampleStore(tmp_path, max_bytes=budget) as again:
        assert again.stats().dropped == dropped_total  # persisted


def test_drop_newest_refuses_new_rows_and_keeps_the_old_ones(tmp_path: Path):
    budget = 256 * 1024
    with SampleStore(tmp_path, max_bytes=budget, overflow="drop-newest") as store:
        ids = _fill(store, 20_000)
        st = store.stats()
        assert st.dropped > 0 and len(ids) == st.rows == 20_000 - st.dropped
        assert _values(store) == [float(i) for i in range(st.rows)]  # the head is kept
        assert st.bytes <= budget
        refused = store.add([_s(99_999)])  # still full: the new sample gets no id
        assert refused == [] and store.stats().dropped == st.dropped + 1
        kept = store.stats().rows
        store.mark_sent([i for i, _ in store.unsent(kept // 2)])
        assert len(store.add([_s(123_456)])) == 1  # room again
        assert _values(store)[-1] == 123_456.0


def test_drop_oldest_with_one_batch_larger_than_the_budget_keeps_its_newest(tmp_path: Path):
    with SampleStore(tmp_path, max_bytes=MIN_STORE_BYTES) as store:
        ids = store.add([_s(i) for i in range(5000)])
        st = store.stats()
        assert 0 < len(ids) == st.rows < 5000 and st.dropped == 5000 - st.rows
        assert _values(store)[-1] == 4999.0


def test_a_concurrent_reader_sees_only_whole_committed_batches(tmp_path: Path):
    """A reader on its own connection (as `smartline status` would be) reads while the node
    writes: it sees whole batches in order, never a half-committed one (WAL)."""
    batch = 50
    with SampleStore(tmp_path, max_bytes=8 * MB) as store:
        store.add([_s(0)])
        store.mark_sent([i for i, _ in store.unsent(1)])
        stop = threading.Event()
        seen: list[int] = []
        errors: list[BaseException] = []

        def read() -> None:
            try:
                uri = f"file:{tmp_path / 'buffer.db'}?mode=ro"
                with sqlite3.connect(uri, uri=True, timeout=10) as conn:
                    while not stop.is_set():
                        rows = conn.execute("SELECT value FROM samples ORDER BY id").fetchall()
                        vals = [int(r[0]) for r in rows]
                        assert vals == list(range(len(vals))), vals[:5]
                        assert len(vals) % batch == 0
                        seen.append(len(vals))
            except BaseException as exc:  # reported in the test thread
                errors.append(exc)

        reader = threading.Thread(target=read)
        reader.start()
        try:
            for k in range(40):
                store.add([StoredSample("d", "n", j, k * batch + j, 0, 4) for j in range(batch)])
        finally:
            stop.set()
            reader.join(10)
        assert not errors, errors[0]
        assert len(seen) > 2 and seen == sorted(seen)
        assert store.backlog() == 40 * batch


def test_the_store_is_usable_from_worker_threads(tmp_path: Path):
    with SampleStore(tmp_path, max_bytes=8 * MB) as store:
        def work(k: int) -> None:
            for j in range(20):
                ids = store.add([_s(k * 1000 + j, tag=f"t{k}")])
                assert len(ids) == 1
        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        rows = store.unsent(1000)
        assert len(rows) == store.backlog() == 80
        for k in range(4):  # each thread's samples in its own order
            mine = [s.ts_ms for _, s in rows if s.tag == f"t{k}"]
            assert mine == sorted(mine) and len(mine) == 20


WRITER = """
import sys
from pathlib import Path
from smartline.northbound.sparkplug._store import SampleStore, StoredSample
store = SampleStore(Path(sys.argv[1]), max_bytes=8 * 1024 * 1024)
n = 0
while True:
    store.add([StoredSample("d", "n", n + j, n + j, 0, 4) for j in range(7)])
    n += 7
    print(n, flush=True)
"""


def test_kill_9_keeps_every_committed_row(tmp_path: Path):
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        counted = 0
        for _ in range(40):
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else ""
            counted = int(line)
        proc.kill()  # SIGKILL
    finally:
        proc.kill()
        proc.wait(10)
        for f in (proc.stdout, proc.stderr):
            if f:
                f.close()
    with SampleStore(tmp_path, max_bytes=8 * MB) as store:  # the dead writer's lock is gone
        vals = [s.value for _, s in store.unsent(10**6)]
        assert len(vals) >= counted
        assert vals == list(range(len(vals)))  # committed prefix, in order, no gap
        assert len(vals) % 7 == 0  # whole batches only
