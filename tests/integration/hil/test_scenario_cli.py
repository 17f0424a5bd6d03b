"""``smartline sim`` as a real process, and ``smartline run LINE --sim SCENARIO`` in virtual and
real time: endpoints, a client read, SIGTERM, ports free again, expectations and exit codes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pymodbus.client import ModbusTcpClient

from smartline.run import run_line_sim

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent
LINE = HERE / "tank-line.yaml"
DEMO = ROOT / "hil_sim" / "scenarios" / "tank-demo.yaml"
FAULTS = ROOT / "hil_sim" / "scenarios" / "tank-demo-faults.yaml"
ENV = {**os.environ, "NUMBA_CACHE_DIR": str(ROOT / ".numba_cache")}


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV, cwd=ROOT)


def _endpoint(proc: subprocess.Popen[str]) -> dict[str, str]:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, f"the simulator exited: {proc.stderr.read() if proc.stderr else ''}"
    item = json.loads(line)
    assert set(item) == {"device", "url"}
    return {str(k): str(v) for k, v in item.items()}


def _port(url: str) -> int:
    return int(url.split("://", 1)[1].split("?", 1)[0].rsplit(":", 1)[1])


@pytest.mark.parametrize("command", [("smartline.cli", "sim"), ("smartline.hil.scenario",)],
                         ids=["smartline-sim", "python-m"])
def test_sim_serves_until_sigterm_and_frees_its_ports(command: tuple[str, ...]) -> None:
    proc = _start(*command, str(DEMO))
    try:
        ep = _endpoint(proc)
        assert ep["device"] == "plc"
        assert ep["url"].startswith("modbus+tcp://127.0.0.1:") and ep["url"].endswith("?unit=1")
        port = _port(ep["url"])
        client = ModbusTcpClient("127.0.0.1", port=port, timeout=2)
        assert client.connect()
        first = client.read_input_registers(0, count=1, device_id=1).registers[0]
        time.sleep(0.3)
        second = client.read_input_registers(0, count=1, device_id=1).registers[0]
        client.close()
        assert 390 <= first < second < 700  # the tank fills in real time
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    results = [json.loads(line) for line in out.splitlines()]
    assert [r["index"] for r in results] == [0, 1]
    assert results[0]["ok"] is False and "not yet when the run ended" in results[0]["detail"]
    assert results[1]["ok"] is True
    assert proc.returncode == 1  # an expectation failed: it had not been reached yet
    with socket.socket() as s:  # the port is free again
        s.bind(("127.0.0.1", port))


def test_sim_bad_file_exits_2_with_located_errors(tmp_path: Path) -> None:
    bad = tmp_path / "s.yaml"
    bad.write_text(DEMO.read_text().replace("plant: tank-demo", f"plant: {ROOT}/hil_sim/"
                                            "plants/tank-demo.yaml"))
    bad.write_text(bad.read_text().replace("  plc.outlet_valve: 100\n",
                                           "  plc.outlet_valve: 100\n  plc.nope: 1\n"))
    proc = subprocess.run([sys.executable, "-m", "smartline.cli", "sim", str(bad)],
                          check=False, capture_output=True, text=True,
                          env=ENV, cwd=ROOT, timeout=60)
    assert proc.returncode == 2
    assert f"{bad}:19:3: initial.plc.nope: device plc (profile generic/tank-io) has no point " \
           "'nope'" in proc.stderr
    assert proc.stdout == ""


def test_run_sim_virtual_line_sees_the_faults(capsys: pytest.CaptureFixture[str]) -> None:
    t0 = time.perf_counter()
    code = run_line_sim(LINE, FAULTS, virtual=True, duration_s=150.0, live=False)
    wall = time.perf_counter() - t0
    err = capsys.readouterr().err
    assert code == 0, err
    assert "expect: PASS tag plc.level goes bad between 30s and 36s: at 30." in err
    assert "expect: PASS alarm pump.fault between 0s and 95s: at 90.01s" in err
    assert "150 s of plant time (virtual)" in err or "149.9 s of plant time" in err
    assert wall < 30


def test_run_sim_virtual_600_s(capsys: pytest.CaptureFixture[str]) -> None:
    t0 = time.perf_counter()
    code = run_line_sim(LINE, DEMO, virtual=True, duration_s=600.0, live=False)
    wall = time.perf_counter() - t0
    err = capsys.readouterr().err
    assert code == 0, err
    assert "expect: PASS point plc.level reaches [1.1, 1.3] between 0s and 120s: at " in err
    assert "task monitor: stopped, 6000 cycles" in err
    assert wall < 20  # 600 s of plant


def test_run_sim_reports_a_failed_expectation(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(DEMO.read_text().replace(
        "plant: tank-demo", f"plant: {ROOT}/hil_sim/plants/tank-demo.yaml").replace(
        "reaches: {min: 1.1, max: 1.3}, within: 120s", "reaches: {min: 1.5}, within: 20s"))
    code = run_line_sim(LINE, scenario, virtual=True, duration_s=30.0, live=False)
    err = capsys.readouterr().err
    assert code == 1
    assert "expect: FAIL point plc.level reaches [1.5, inf] between 0s and 20s: never" in err


def test_run_sim_device_missing_from_the_scenario_is_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = tmp_path / "line.yaml"
    line.write_text(LINE.read_text().replace("  plc: {", "  other: {url: \"modbus+tcp://127.0."
                                             "0.1:15022?unit=1\", profile: generic/tank-io}\n"
                                             "  plc: {"))
    code = run_line_sim(line, DEMO, virtual=True, duration_s=1.0, live=False)
    err = capsys.readouterr().err
    assert code == 2
    assert f"{line}: device other is not simulated by scenario tank-demo" in err
    assert "it simulates plc" in err


def test_run_sim_other_protocol_is_exit_2(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(DEMO.read_text().replace(
        "plant: tank-demo", f"plant: {ROOT}/hil_sim/plants/tank-demo.yaml").replace(
        "protocol: modbus+tcp", "protocol: modbus+rtuovertcp"))
    assert run_line_sim(LINE, scenario, virtual=True, duration_s=1.0, live=False) == 2
    assert ("device plc is modbus+tcp in the line, but scenario tank-demo simulates it as "
            "modbus+rtuovertcp") in capsys.readouterr().err


def test_run_sim_real_time_cli() -> None:
    proc = subprocess.run([sys.executable, "-m", "smartline.cli", "run", str(LINE), "--sim",
                           str(DEMO), "--duration", "1.5", "--no-live"],
                          check=False, capture_output=True, text=True,
                          env=ENV, cwd=ROOT, timeout=120)
    assert proc.returncode == 1, proc.stderr  # 1.5 s is too short to reach the level
    assert "expect: FAIL point plc.level reaches [1.1, 1.3] between 0s and 120s: not yet " \
           "when the run ended" in proc.stderr
    assert "expect: PASS signal tank.level_m stays [0, 1.9]" in proc.stderr
    assert "task monitor: stopped" in proc.stderr


def test_run_virtual_needs_sim_and_a_duration() -> None:
    for args, message in ((["--virtual", "--duration", "1"], "--virtual needs --sim"),
                          (["--sim", str(DEMO), "--virtual"], "give --duration or --cycles")):
        proc = subprocess.run([sys.executable, "-m", "smartline.cli", "run", str(LINE), *args],
                              check=False, capture_output=True, text=True,
                              env=ENV, cwd=ROOT, timeout=60)
        assert proc.returncode == 2 and message in proc.stderr
