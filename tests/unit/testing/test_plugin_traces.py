"""Tag traces: exact values through the file, located format errors, divergence reports."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from smartline.testing.traces import (
    TagTrace,
    TraceFormatError,
    assert_traces_match,
    compare_traces,
    read_trace,
)


def test_values_are_exact_through_the_file(tmp_path: Path) -> None:
    values = [0.1 + 0.2, 2**63 - 1, -(2**63), 'say "hi"\nnext line, ünïcode', True, None,
              float("nan"), float("-inf"), (1.5, 2.5), b"\x00\xff"]
    tr = TagTrace(["x"], line="l", scenario="s", seed=3)
    for i, v in enumerate(values):
        assert tr.add(i * 10, "x", v, "GOOD" if v is not None else "BAD")
    assert not tr.add(100, "x", b"\x00\xff", "GOOD")  # unchanged: not recorded
    tr.close(200)
    back = read_trace(tr.write(tmp_path / "t.jsonl"))
    got = [r.value for r in back.records]
    assert got[:6] == values[:6] and type(got[1]) is int and got[2] == -(2**63)
    assert math.isnan(got[6]) and got[7] == float("-inf")  # type: ignore[arg-type]
    assert got[8:] == [(1.5, 2.5), b"\x00\xff"]
    assert back.end_ns == 200 and (back.line, back.scenario, back.seed) == ("l", "s", 3)
    assert compare_traces(tr, back).equal


@pytest.mark.parametrize(("text", "where"), [
    ("", "empty file"),
    ('{"smartline-trace": 2, "tags": []}\n', ":1: trace format 2 is not supported"),
    ('{"smartline-trace": 1, "tags": ["a"]}\n{"t_ns": 5, "tag": "b", "value": 1, '
     '"quality": "GOOD"}\n', ":2: tag 'b' is not in the header's tags"),
    ('{"smartline-trace": 1, "tags": ["a"]}\n{"t_ns": 5, "tag": "a", "value": 1, '
     '"quality": "GOOD"}\n{"t_ns": 4, "tag": "a", "value": 2, "quality": "GOOD"}\n',
     ":3: time goes backwards"),
    ('{"smartline-trace": 1, "tags": ["a"]}\nnot json\n', ":2: not JSON"),
])
def test_bad_files_give_located_errors(tmp_path: Path, text: str, where: str) -> None:
    p = tmp_path / "bad.jsonl"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(TraceFormatError, match=f"bad.jsonl{where}" if where[0] == ":"
                       else where):
        read_trace(p)


def _trace(points: list[tuple[int, str, object]], end: int = 10_000) -> TagTrace:
    tr = TagTrace(["a", "b"])
    for t, tag, v in points:
        tr.add(t, tag, v, "GOOD")
    tr.close(end)
    return tr


def test_first_divergence_summary_and_tolerance() -> None:
    a = _trace([(0, "a", 1.0), (0, "b", "x"), (1000, "a", 2.0), (3000, "b", "y")])
    b = _trace([(0, "a", 1.0), (0, "b", "x"), (1000, "a", 2.05), (2000, "b", "z"),
                (2500, "b", "x"), (3000, "b", "y")])
    d = compare_traces(a, b)
    assert not d.equal and d.first is not None
    assert (d.first.t_ns, d.first.tag) == (1000, "a")
    by = {t.tag: t for t in d.tags}
    assert by["a"].duration_ns == 9000 and by["a"].max_abs_diff == pytest.approx(0.05)
    assert (by["b"].first_ns, by["b"].intervals, by["b"].duration_ns) == (2000, 1, 500)
    assert "traces diverge first at 1e-06 s tag a: 2.0 (a) != 2.05 (b)" in d.report()
    # numbers within the tolerance match; text never does
    d2 = compare_traces(a, b, tolerance=0.1)
    assert d2.first is not None and (d2.first.t_ns, d2.first.tag) == (2000, "b")
    assert compare_traces(a, b, tolerance={"a": 0.1}, tags=["a"]).equal
    with pytest.raises(AssertionError, match="tag b: 'x' \\(a\\) != 'z' \\(b\\)"):
        assert_traces_match(a, b, tolerance=0.1)


def test_quality_and_length_differences() -> None:
    a = _trace([(0, "a", 1.0)], end=5000)
    b = TagTrace(["a", "b"])
    b.add(0, "a", 1.0, "GOOD")
    b.add(400, "a", None, "BAD")
    b.close(8000)
    d = compare_traces(a, b)
    assert d.first is not None and d.first.describe() == (
        "at 4e-07 s tag a: 1.0 (a) != None [BAD] (b)")
    assert any("lengths differ" in n for n in d.notes)
    assert d.compared_ns == 5000


def test_smartline_run_records_a_trace(tmp_path: Path) -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[3]
    out = tmp_path / "run.jsonl"
    proc = subprocess.run(
        [sys.executable, "-c", "from smartline.cli import main; main()", "run",
         "tests/integration/hil/tank-line.yaml", "--sim", "hil_sim/scenarios/tank-demo.yaml",
         "--virtual", "--duration", "5",
         "--record", str(out)], cwd=root, capture_output=True, text=True, timeout=120,
        check=False)
    assert "tag trace" in proc.stderr, proc.stderr
    tr = read_trace(out)
    assert (tr.line, tr.scenario, tr.seed) == ("tank-watch", "tank-demo", 7)
    assert tr.tags == ["plc.inlet_valve", "plc.level", "plc.pump_fault"]
    level = [v for _, v, q in tr.values("plc.level") if q == "GOOD"]
    assert level[0] == 0.4 and level == sorted(level) and len(level) > 20  # filling
    assert tr.end_ns is not None and 4.8e9 <= tr.end_ns <= 5e9
