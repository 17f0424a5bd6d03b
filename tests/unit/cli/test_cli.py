"""The smartline command: check, read, write, --version, --help — run as a real process."""

import json
import sqlite3
import textwrap

import pytest
from cli_support import sl

LINE = """\
smartline: 1
line: cli-test
devices:
  plc: {url: "memory://cli-plc?persist=1"}
tags:
  level:    {device: plc, address: "level", unit: mm}
  speed_sp: {device: plc, address: "speed", access: rw, unit: rpm, limits: [0, 100], safe: 0}
  run:      {device: plc, address: "run:bool", access: rw}
  count:    {device: plc, address: "count:int16", access: rw}
  speeds:   {device: plc, address: "speeds:float64[3]"}
tasks:
  slow: {period_ms: 100, tags: [level, speed_sp]}
"""


@pytest.fixture
def line(tmp_path):
    p = tmp_path / "line.yaml"
    p.write_text(LINE)
    return p


def test_version_and_help_for_every_command(env):
    r = sl("--version", env=env)
    assert r.returncode == 0 and "smartline" in r.stdout
    for cmd in ("check", "read", "write", "run", "demo"):
        r = sl(cmd, "--help", env=env)
        assert r.returncode == 0 and "Usage:" in r.stdout, cmd


def test_check_accepts_a_good_file_with_a_summary(line, env):
    r = sl("check", line, env=env)
    assert r.returncode == 0, r.stderr
    assert "1 device, 5 tags, 1 task" in r.stdout


def test_check_reports_every_problem_located_and_exits_2(tmp_path, env):
    bad = tmp_path / "bad.yaml"
    bad.write_text(LINE.replace('"speed", access', '"speed:float99", access')
                   .replace("period_ms: 100", "period_ms: 0"))
    r = sl("check", bad, env=env)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 2, r.stderr
    assert lines[0].startswith(f"{bad}:7:") and "tags.speed_sp.address" in lines[0]
    assert lines[1].startswith(f"{bad}:12:") and "tasks.slow.period_ms" in lines[1]
    assert "Traceback" not in r.stderr


def test_check_never_prints_a_traceback_for_garbage(tmp_path, env):
    for content in (b"\x00\xff\xfe garbage", b"smartline: [", b"- a\n- b\n", b""):
        f = tmp_path / "g.yaml"
        f.write_bytes(content)
        r = sl("check", f, env=env)
        assert r.returncode == 2 and "Traceback" not in r.stderr and str(f) in r.stderr


def test_write_then_read_round_trip_with_json(line, env, tmp_path):
    r = sl("write", line, "speed_sp=55.5", "run=true", "count=-3", env=env)
    assert r.returncode == 0, r.stderr
    r = sl("read", line, "speed_sp", "run", "count", "level", "speeds", "--json", env=env)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["speed_sp"]["value"] == 55.5 and data["speed_sp"]["quality"] == "good"
    assert data["run"]["value"] is True
    assert data["count"]["value"] == -3
    assert data["level"]["value"] == 0.0
    assert data["speeds"]["value"] == [0.0, 0.0, 0.0]
    assert data["level"]["timestamp"].endswith("Z")
    audit = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert {(a["tag"], a["outcome"]) for a in audit} == {
        ("speed_sp", "ok"), ("run", "ok"), ("count", "ok")}


def test_read_json_gives_exact_integers_text_and_both_timestamps(tmp_path, env):
    line = tmp_path / "exact.yaml"
    line.write_text(textwrap.dedent("""\
        smartline: 1
        line: exact
        devices:
          plc: {url: "memory://exact-plc?persist=1"}
        tags:
          big:  {device: plc, address: "big:uint64", access: rw}
          neg:  {device: plc, address: "neg:int64", access: rw}
          name: {device: plc, address: "name:string<16>", access: rw}
        """))
    r = sl("write", line, f"big={2**64 - 1}", f"neg={-(2**63) + 1}", "name=batch-7/A",
           env=env)
    assert r.returncode == 0, r.stderr
    r = sl("read", line, "--json", env=env)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["big"]["value"] == 2**64 - 1  # not 1.8446744073709552e+19
    assert data["neg"]["value"] == -(2**63) + 1
    assert data["name"]["value"] == "batch-7/A"
    for tag in data.values():
        assert tag["timestamp"].endswith("Z") and tag["received"].endswith("Z")
        assert tag["timestamp"] <= tag["received"]  # sampled no later than it arrived


@pytest.mark.parametrize(
    ("assignment", "reason"),
    [
        ("speed_sp=500", "limits"),
        ("level=3", "read-only"),
        ("speed_sp=fast", "number"),
        ("count=1.5", "integer"),
        ("count=40000", "int16"),
        ("nope=1", "unknown tag"),
    ],
)
def test_refused_write_exits_2_with_reason_and_writes_nothing(line, env, tmp_path, assignment,
                                                              reason):
    assert sl("write", line, "speed_sp=10", env=env).returncode == 0
    r = sl("write", line, "speed_sp=20", assignment, env=env)
    assert r.returncode == 2
    assert reason in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    data = json.loads(sl("read", line, "speed_sp", "--json", env=env).stdout)
    assert data["speed_sp"]["value"] == 10  # the valid half of the write was not sent either
    audit = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert any(a["outcome"] == "refused" for a in audit)


def test_read_unknown_tag_exits_2(line, env):
    r = sl("read", line, "nope", env=env)
    assert r.returncode == 2 and "unknown tag" in r.stderr


def test_read_table_output(line, env):
    r = sl("read", line, env=env)
    assert r.returncode == 0, r.stderr
    assert "speed_sp" in r.stdout and "good" in r.stdout and "rpm" in r.stdout


def test_read_of_an_unreachable_device_reports_bad_and_exits_1(tmp_path, env):
    p = tmp_path / "down.yaml"
    p.write_text(textwrap.dedent("""\
        smartline: 1
        line: down
        devices:
          plc: {url: "modbus+tcp://127.0.0.1:1?unit=1", timeout_ms: 300}
        tags:
          t: {device: plc, address: "hr:0"}
        """))
    r = sl("read", p, "--json", env=env)
    assert r.returncode == 1, r.stderr
    assert json.loads(r.stdout)["t"]["quality"] == "bad"
    assert "plc" in r.stderr and "Traceback" not in r.stderr


def test_an_unwritable_audit_log_refuses_the_write_before_sending(line, env, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    r = sl("write", line, "speed_sp=33", "--audit", blocker / "audit.jsonl", env=env)
    assert r.returncode == 2, r.stderr
    assert "audit log" in r.stderr and "Traceback" not in r.stderr
    data = json.loads(sl("read", line, "speed_sp", "--json", env=env).stdout)
    assert data["speed_sp"]["value"] != 33


def test_write_only_tags_are_left_out_of_a_read_and_refused_by_name(tmp_path, env):
    p = tmp_path / "line.yaml"
    p.write_text(LINE.replace("tasks:", '  reset:    {device: plc, address: "reset:bool", '
                                        'access: w}\ntasks:'))
    r = sl("read", p, "--json", env=env)
    assert r.returncode == 0, r.stderr
    assert "reset" not in json.loads(r.stdout) and "level" in json.loads(r.stdout)
    r = sl("read", p, "reset", env=env)
    assert r.returncode == 2
    assert "write-only tag(s) (access w) cannot be read: reset" in r.stderr


@pytest.mark.parametrize("content", [b"not a database at all " * 50, None])
def test_report_refuses_a_history_that_is_not_one_and_exits_2(line, env, tmp_path, content):
    history = tmp_path / "history.db"
    if content is not None:
        history.write_bytes(content)
    else:  # an SQLite file of something else
        with sqlite3.connect(history) as conn:
            conn.execute("CREATE TABLE orders (id)")
    r = sl("report", line, "--history", history, env=env)
    assert r.returncode == 2, r.stderr
    assert f"line history {history}" in r.stderr and "give another --history" in r.stderr
    assert "Traceback" not in r.stderr
