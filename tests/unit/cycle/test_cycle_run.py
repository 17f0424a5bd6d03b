"""``smartline run``'s implementation: exit codes, stats file, live view, clean stop on SIGINT."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from smartline.run import render_stats, run_line

LINE = """\
smartline: 1
line: run-test
devices:
  plc: {{url: "memory://run-test?persist=1"}}
tags:
  level: {{device: plc, address: level}}
  valve: {{device: plc, address: "valve:bool", access: rw, safe: false}}
tasks:
  fast: {{period_ms: 10, program: "logic.py:{fn}", inputs: [level], outputs: [valve]{extra}}}
"""

LOGIC = """\
import time

from smartline.cycle import program


@program(inputs=["level"], outputs=["valve"])
def fill(now_ns, inputs, outputs, state):
    outputs[0] = 1.0 if inputs[0] < 50.0 else 0.0


@program(inputs=["level"], outputs=["valve"])
def broken(now_ns, inputs, outputs, state):
    outputs[0] = inputs.nope


@program(inputs=["level"], outputs=["valve"], jit=False)
def slow(now_ns, inputs, outputs, state):
    time.sleep(0.03)
    outputs[0] = 1.0


_n = [0]


@program(inputs=["level"], outputs=["valve"], jit=False)
def stuck(now_ns, inputs, outputs, state):
    _n[0] += 1
    outputs[0] = 1.0
    if _n[0] > 3:
        time.sleep(30)  # stuck: stopping takes long
"""


def make(tmp_path: Path, fn: str = "fill", extra: str = "") -> Path:
    (tmp_path / "logic.py").write_text(LOGIC, encoding="utf-8")
    p = tmp_path / "line.yaml"
    p.write_text(LINE.format(fn=fn, extra=extra), encoding="utf-8")
    return p


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "state"
    monkeypatch.setenv("SMARTLINE_STATE_DIR", str(d))
    return d


def memory(state_dir: Path) -> dict[str, object]:
    return json.loads((state_dir / "memory" / "run-test.json").read_text())  # type: ignore[no-any-return]


def start_line_until_valve_open(line: Path, state_dir: Path) -> subprocess.Popen[str]:
    """``run_line(line)`` in a child process, once its program has written the valve (1.0)."""
    code = ("import sys\nfrom smartline.run import run_line\n"
            f"sys.exit(run_line({str(line)!r}, live=False))\n")
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if memory(state_dir).get("valve") == 1.0:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("the line never ran")
    return proc


def test_runs_writes_stats_and_leaves_outputs_safe(tmp_path: Path, state_dir: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    stats = tmp_path / "out" / "stats.json"
    assert run_line(make(tmp_path), cycles=20, stats_path=stats, live=False) == 0
    d = json.loads(stats.read_text())
    assert d["schema"] == "smartline.cycle-stats/1"
    assert d["tasks"]["fast"]["cycles"] == 20
    assert "cycle" in d["tasks"]["fast"]["hdr"]
    assert memory(state_dir)["valve"] == 0.0  # safe (false) after the run
    err = capsys.readouterr().err
    assert "task fast: stopped, 20 cycles" in err


def test_compile_error_exits_2_with_file_and_line(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert run_line(make(tmp_path, "broken"), cycles=5, live=False) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'logic.py'}:13: " in err
    assert "Traceback" not in err


def test_bad_line_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("smartline: 1\nline: x\ntasks:\n  t: {period_ms: -1}\n", encoding="utf-8")
    assert run_line(p, cycles=5, live=False) == 2
    assert "bad.yaml:" in capsys.readouterr().err


def test_fault_policy_exits_1_and_stats_are_written(tmp_path: Path, state_dir: Path) -> None:
    stats = tmp_path / "stats.json"
    code = run_line(make(tmp_path, "slow", ", overrun: fault"), cycles=50, stats_path=stats,
                    live=False)
    assert code == 1
    d = json.loads(stats.read_text())
    assert d["tasks"]["fast"]["state"] == "faulted"
    assert d["alarms"][0]["kind"] == "overrun"
    assert memory(state_dir)["valve"] == 0.0


def test_live_view_renders(tmp_path: Path) -> None:
    from rich.console import Console

    from smartline.core import VirtualClock

    stats_file = tmp_path / "s.json"
    assert run_line(make(tmp_path), cycles=5, live=False, stats_path=stats_file,
                    clock=VirtualClock()) == 0
    from smartline.cycle import EngineStats, IoCounters, SeriesStats, TaskStats

    d = json.loads(stats_file.read_text())["tasks"]["fast"]
    t = TaskStats(name="fast", period_ns=10_000_000, overrun_policy="skip", state="faulted",
                  cycles=d["cycles"], overruns=0, skipped=0, max_overruns_in_row=0,
                  timing={k: SeriesStats.from_dict(v) for k, v in d["timing"].items()},
                  io=IoCounters(), watchdog_tripped=True)
    con = Console(file=io.StringIO(), width=200, record=True)
    con.print(render_stats(EngineStats("run-test", "virtual", 0, 0.05, {"fast": t},
                                       devices={"plc": {"connected": True, "reads": 5}})))
    text = con.export_text()
    assert "fast" in text and "watchdog" in text and "plc" in text


def test_sigint_stops_cleanly_with_outputs_safe(tmp_path: Path, state_dir: Path) -> None:
    line = make(tmp_path)
    (state_dir / "memory").mkdir(parents=True)
    (state_dir / "memory" / "run-test.json").write_text('{"level": 10.0}')
    proc = start_line_until_valve_open(line, state_dir)  # the program opened the valve
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert memory(state_dir)["valve"] == 0.0
    assert "task fast: stopped" in err


def test_unknown_program_names_the_line_file_entry(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    p = make(tmp_path, "missing")
    assert run_line(p, cycles=5, live=False) == 2
    err = capsys.readouterr().err
    assert f"{p}: tasks.fast.program: " in err and "Traceback" not in err


def test_unwritable_stats_file_is_an_error_after_the_line_closed(
        tmp_path: Path, state_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert run_line(make(tmp_path), cycles=5, live=False,
                    stats_path=blocker / "stats.json") == 1
    err = capsys.readouterr().err
    assert "cannot write the statistics" in err and "task fast: stopped" in err
    assert memory(state_dir)["valve"] == 0.0  # outputs safe, devices closed first


def test_demo_simulator_that_never_starts_is_an_error_not_a_traceback(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import smartline.run as run_mod

    async def never(proc, devices):  # type: ignore[no-untyped-def]
        raise TimeoutError

    monkeypatch.setattr(run_mod, "_await_sim", never)
    assert run_mod.run_demo(cycles=5, live=False) == 1
    assert "did not start" in capsys.readouterr().err


def test_demo_without_the_modbus_extra_names_the_extra(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import builtins

    import smartline.run as run_mod

    real_import = builtins.__import__

    def no_pymodbus(name, *args, **kwargs):  # type: ignore[no-untyped-def]
        if name == "pymodbus" or name.startswith("pymodbus."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    for mod in [m for m in sys.modules if m.startswith(("pymodbus", "smartline.drivers.modbus"))]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setattr(builtins, "__import__", no_pymodbus)
    assert run_mod.run_demo(cycles=5, live=False) == 2
    err = capsys.readouterr().err
    assert "pip install 'smartline[modbus]'" in err and "Traceback" not in err


def test_second_sigint_aborts_with_130_and_no_traceback(tmp_path: Path,
                                                        state_dir: Path) -> None:
    line = make(tmp_path, "stuck")
    proc = start_line_until_valve_open(line, state_dir)  # the program wrote the valve
    time.sleep(0.1)  # the program is stuck now
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "aborted" in err and "Traceback" not in err
