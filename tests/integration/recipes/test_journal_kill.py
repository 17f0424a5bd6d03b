"""kill -9 mid-batch loses no committed record; a second process reads while the first writes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from smartline.recipes._journal import BatchJournal

# The writer: begins a batch, records events in a loop; after each flush() prints how many
# events (seq 1..n) are committed. Nothing stops it but SIGKILL.
WRITER = """
import sys
from smartline.recipes._journal import BatchJournal

journal = BatchJournal(sys.argv[1])
batch = journal.begin(line="heat", recipe="heat-treat", version="3", digest="c" * 64,
                      product="shafts", source="kill-test", parameters={"soak_temp": 200},
                      on_restart="abort")
print(batch, flush=True)
n = 0
while True:
    for _ in range(1 + n % 7):
        n += 1
        journal.record(batch, "write", "zone1.sp", {"value": n, "outcome": "ok", "detail": ""})
    journal.flush()
    print(n, flush=True)
"""


def _counted_then_killed(path: Path, lines: int) -> tuple[str, int, int]:
    """Run the writer, read ``lines`` counts, SIGKILL it; (batch, last count, events seen
    by a read-only journal of this process while the writer was running)."""
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        batch = proc.stdout.readline().strip()
        assert batch.startswith("heat-"), proc.stderr.read() if proc.stderr else ""
        reader = BatchJournal(path, read_only=True)  # a second process reading meanwhile
        seen = 0
        counted = 0
        for i in range(lines):
            counted = int(proc.stdout.readline())
            if i == lines // 2:
                events = reader.events(batch)
                assert [e.seq for e in events] == list(range(len(events)))
                seen = len(events) - 1
                assert seen >= counted
                assert reader.unfinished("heat")[0].id == batch
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    return batch, counted, seen


@pytest.mark.parametrize("run", range(3))
def test_kill_9_loses_no_committed_record(tmp_path: Path, run: int):
    path = tmp_path / "batches.db"
    batch, counted, seen = _counted_then_killed(path, lines=30 + 20 * run)
    assert counted >= 30 and seen > 0

    for read_only in (True, False):  # after the crash: a reader, then a writer reopening
        with BatchJournal(path, read_only=read_only) as journal:
            events = journal.events(batch)
            assert [e.seq for e in events] == list(range(len(events)))  # no gaps
            assert events[0].subject == "start"
            values = [e.data["value"] for e in events[1:]]
            assert values == list(range(1, len(values) + 1))  # in order
            assert len(values) >= counted  # every event counted as committed is there
            summary = journal.batch(batch)
            assert summary.ended_ns is None
            assert summary.events == len(events)
            assert [b.id for b in journal.unfinished("heat")] == [batch]

    with BatchJournal(path) as journal:  # the batch can be closed after the restart
        journal.record(batch, "batch", "aborted-at-restart", {"reason": "on_restart: abort"})
        journal.end(batch, "ABORTED")
    with BatchJournal(path, read_only=True) as journal:
        events = journal.events(batch)
        assert [e.seq for e in events] == list(range(len(events)))
        assert [e.subject for e in events[-2:]] == ["aborted-at-restart", "end"]
