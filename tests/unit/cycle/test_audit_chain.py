"""The audit trail's hash chain: an edited, deleted, inserted or truncated record is found."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from smartline.cycle import JsonlAudit
from smartline.cycle._audit import GENESIS, verify_audit


def _trail(path: Path, n: int) -> None:
    a = JsonlAudit(path)
    for i in range(n):
        a.record({"tag": f"t{i}", "value": i * 1.5, "outcome": "ok", "user": "op"})
    a.close()


def test_an_untouched_trail_verifies_and_links_every_record(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _trail(path, 5)
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    assert rows[0]["prev"] == GENESIS
    assert all(b["prev"] == a["hash"] for a, b in itertools.pairwise(rows))
    v = verify_audit(path)
    assert v.ok and v.records == 5, v.problems


def test_a_trail_is_continued_across_opens(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _trail(path, 3)
    _trail(path, 2)
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    assert rows[3]["prev"] == rows[2]["hash"]
    v = verify_audit(path)
    assert v.ok and v.records == 5
    assert json.loads((tmp_path / "audit.jsonl.head").read_text()) == {
        "records": 5, "hash": rows[-1]["hash"]}


def test_an_edited_value_is_found_on_its_line(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _trail(path, 4)
    lines = path.read_text().splitlines()
    lines[1] = lines[1].replace('"value": 1.5', '"value": 99.0')
    path.write_text("\n".join(lines) + "\n")
    v = verify_audit(path)
    assert not v.ok
    assert any(":2: record does not match its hash (edited)" in p for p in v.problems)


def test_a_deleted_record_breaks_the_link_of_the_next(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _trail(path, 4)
    lines = path.read_text().splitlines()
    del lines[1]
    path.write_text("\n".join(lines) + "\n")
    v = verify_audit(path)
    assert any(":2: does not follow the record before it" in p for p in v.problems)
    assert any("1 record(s) missing" in p for p in v.problems)


def test_a_truncated_end_is_found_through_the_head(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _trail(path, 4)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:2]) + "\n")
    v = verify_audit(path)
    assert any("2 record(s) missing at the end" in p for p in v.problems)


def test_a_recomputed_forgery_of_the_last_record_is_found_through_the_head(
        tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _trail(path, 3)
    lines = path.read_text().splitlines()
    rec = json.loads(lines[-1])
    rec["value"] = 7.0
    from smartline.cycle._audit import _chained
    forged, _ = _chained({k: v for k, v in rec.items() if k not in ("prev", "hash")},
                         rec["prev"])
    lines[-1] = forged
    path.write_text("\n".join(lines) + "\n")
    v = verify_audit(path)
    assert any("the end of the file was replaced" in p for p in v.problems)


def test_records_from_before_the_chain_are_counted_and_chained_onto(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text('{"tag": "old", "value": 1}\n')
    _trail(path, 2)
    v = verify_audit(path)
    assert v.ok and v.unchained == 1 and v.records == 3


@pytest.mark.parametrize(("edit", "code"), [(False, 0), (True, 1)])
def test_cli_audit_verify(tmp_path: Path, edit: bool, code: int) -> None:
    path = tmp_path / "audit.jsonl"
    _trail(path, 3)
    if edit:
        path.write_text(path.read_text().replace('"op"', '"intruder"', 1))
    r = subprocess.run([sys.executable, "-m", "smartline.cli", "audit", "verify", str(path)],
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == code, r.stderr
    if edit:
        assert ":1: record does not match its hash" in r.stderr
    else:
        assert "3 records" in r.stdout


def test_processes_sharing_a_trail_keep_one_chain(tmp_path: Path) -> None:
    """A running line and `smartline write` append to the same file: each batch is
    chained onto whatever record is last on disk, under a file lock."""
    path = tmp_path / "audit.jsonl"
    script = (
        "import sys\n"
        "from smartline.cycle import JsonlAudit\n"
        "a = JsonlAudit(sys.argv[1])\n"
        "for i in range(150):\n"
        "    a.record({'tag': sys.argv[2] + str(i), 'value': i})\n"
        "    a.flush() if i % 7 == 0 else None\n"
        "a.close()\n")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(path), name])
             for name in ("a", "b", "c")]
    for p in procs:
        assert p.wait(timeout=60) == 0
    v = verify_audit(path)
    assert v.ok, v.problems
    assert v.records == 450


def test_a_run_whose_trail_cannot_be_opened_does_not_start(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    line = Path(__file__).resolve().parents[3] / "recipes" / "example-line.yaml"
    r = subprocess.run([sys.executable, "-m", "smartline.cli", "run", str(line), "--cycles",
                        "2", "--no-live", "--no-history", "--audit",
                        str(blocker / "audit.jsonl")],
                       capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 2, r.stderr
    assert "cannot open" in r.stderr and "Traceback" not in r.stderr
    assert "cycles" not in r.stderr  # no task ran
