"""``smartline recipe run | history | export`` as a user runs them, against the example lines'
simulated plants in virtual time (a process each, a journal and an audit trail in tmp)."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def _smartline(*args: str, tmp: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SMARTLINE_AUDIT": str(tmp / "audit.jsonl"),
           "SMARTLINE_STATE_DIR": str(tmp / "state")}
    return subprocess.run([sys.executable, "-m", "smartline.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def bottling_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    tmp = tmp_path_factory.mktemp("bottling")
    r = _smartline("recipe", "run", "recipes/bottling-line.yaml", "recipes/bottling-500ml.yaml",
                   "--sim", "hil_sim/scenarios/bottling.yaml", "--virtual", "--no-live",
                   "--journal", str(tmp / "b.db"), tmp=tmp)
    return tmp, r.stderr + f"\nexit {r.returncode}"


def test_the_bottling_recipe_completes_on_its_line(bottling_run: tuple[Path, str]) -> None:
    _, out = bottling_run
    assert out.endswith("exit 0"), out
    assert "(bottling-500ml version 1): COMPLETE" in out


def test_history_and_export_show_the_batch_record(bottling_run: tuple[Path, str]) -> None:
    tmp, _ = bottling_run
    r = _smartline("recipe", "history", "--json", "--journal", str(tmp / "b.db"), tmp=tmp)
    assert r.returncode == 0, r.stderr
    (batch,) = json.loads(r.stdout)
    assert batch["recipe"] == "bottling-500ml" and batch["state"] == "COMPLETE"
    r = _smartline("recipe", "export", batch["id"], "--format", "csv",
                   "--journal", str(tmp / "b.db"), tmp=tmp)
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [int(x["seq"]) for x in rows] == list(range(len(rows)))
    kinds = {x["kind"] for x in rows}
    assert {"batch", "parameter", "state", "phase", "write"} <= kinds
    writes = [x for x in rows if x["kind"] == "write"]
    assert writes and all(json.loads(x["data"])["outcome"] == "ok" for x in writes)
    assert rows[-1]["kind"] == "batch" and json.loads(rows[-1]["data"]) == {"state": "COMPLETE"}
    # every write the recipe made is in the audit trail too, and the trail is intact
    audit = [json.loads(x) for x in (tmp / "audit.jsonl").read_text().splitlines()]
    assert {x["tag"] for x in audit if x["source"].startswith("recipe:")} >= {
        x["subject"] for x in writes}
    r = _smartline("audit", "verify", str(tmp / "audit.jsonl"), tmp=tmp)
    assert r.returncode == 0, r.stderr


def test_bad_parameters_are_refused_before_anything_runs(tmp_path: Path) -> None:
    r = _smartline("recipe", "run", "recipes/heat-treatment.yaml",
                   "recipes/heat-treat-42crmo4.yaml", "-p", "temper_c=9000", "-p", "nope=1",
                   "--journal", str(tmp_path / "b.db"), tmp=tmp_path, timeout=60)
    assert r.returncode == 2
    assert "unknown parameter(s) nope" in r.stderr
    r = _smartline("recipe", "run", "recipes/heat-treatment.yaml",
                   "recipes/heat-treat-42crmo4.yaml", "-p", "temper_c=9000",
                   "--journal", str(tmp_path / "b.db"), tmp=tmp_path, timeout=60)
    assert r.returncode == 2
    assert "temper_c" in r.stderr and "9000" in r.stderr
    assert not (tmp_path / "b.db").exists() or "batch" not in r.stderr


def test_history_and_export_refuse_a_file_that_is_no_journal(tmp_path: Path) -> None:
    garbage = tmp_path / "b.db"
    garbage.write_bytes(b"not a database at all " * 50)
    for args in (("history",), ("export", "B-1")):
        r = _smartline("recipe", *args, "--journal", str(garbage), tmp=tmp_path, timeout=60)
        assert r.returncode == 2, r.stderr
        assert f"batch journal {garbage}: not an SQLite database" in r.stderr
        assert "Traceback" not in r.stderr


def test_a_used_recipe_version_is_immutable(tmp_path: Path) -> None:
    shutil.copy(ROOT / "recipes" / "heat-treatment.yaml", tmp_path / "heat-treatment.yaml")
    recipe = tmp_path / "heat-treat-42crmo4.yaml"
    shutil.copy(ROOT / "recipes" / "heat-treat-42crmo4.yaml", recipe)
    args = ("recipe", "run", str(tmp_path / "heat-treatment.yaml"), str(recipe), "--sim",
            str(ROOT / "hil_sim" / "scenarios" / "heat-treatment.yaml"), "--virtual",
            "--no-live", "--journal", str(tmp_path / "b.db"))
    r = _smartline(*args, tmp=tmp_path)
    assert r.returncode == 0, r.stderr
    recipe.write_text(recipe.read_text() + "\n# edited after use, same version\n")
    r = _smartline(*args, tmp=tmp_path)
    assert r.returncode == 2
    assert "heat-treat-42crmo4" in r.stderr and "version" in r.stderr
