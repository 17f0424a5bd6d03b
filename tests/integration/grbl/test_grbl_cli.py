"""``smartline cnc send`` as a user runs it (a subprocess) against the simulator on a pty."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from grbl_support import program_text

from smartline.core import MonotonicClock
from smartline.hil.grbl import GrblController, GrblSim

LINE = """\
smartline: 1
line: shop
devices:
  mill: {{url: "grbl://{port}", timeout_ms: 2000}}
  plc: {{url: "memory://cnc-cli-plc"}}
tags:
  mill_state: {{device: mill, address: state}}
  lamp: {{device: plc, address: "lamp:bool", access: rw}}
"""


def sl(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "smartline.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, "NUMBA_DISABLE_JIT": "0"})


@pytest.fixture
def shop(sim: GrblSim, tmp_path: Path) -> Iterator[tuple[GrblSim, Path]]:
    line = tmp_path / "shop.yaml"
    line.write_text(LINE.format(port=sim.port))
    yield sim, line


def test_send_streams_a_job(shop, tmp_path: Path) -> None:
    sim, line = shop
    job = tmp_path / "part.nc"
    job.write_text(program_text(40))
    r = sl("cnc", "send", line, "mill", job)
    assert r.returncode == 0, r.stderr
    assert "44 lines streamed" in r.stderr and "(counting)" in r.stderr
    assert sum(t.startswith("G1X") for t in sim.controller.lines_executed) == 40
    r = sl("cnc", "send", line, "mill", job, "--mode", "send-response", "--check")
    assert r.returncode == 0, r.stderr
    assert "send-response, check mode" in r.stderr
    r = sl("read", line, "mill_state", "--json")  # the same device through the line's I/O
    assert r.returncode == 0, r.stderr
    assert '"value": "Idle"' in r.stdout


def test_send_reports_an_error_with_its_file_line(shop, tmp_path: Path) -> None:
    _sim, line = shop
    job = tmp_path / "part.nc"
    job.write_text("G21\nG1 F500\nG1 X1\nG1 X2 G7\nG1 X3\n")
    r = sl("cnc", "send", line, "mill", job)
    assert r.returncode == 1
    assert f"{job}:4: G1X2G7: error:20 (unsupported or invalid G-code command)" in r.stderr


def test_send_reports_an_alarm_with_its_file_line(shop, tmp_path: Path) -> None:
    sim, line = shop
    sim.faults.alarm_on, sim.faults.alarm_code = "X7", 1
    job = tmp_path / "part.nc"
    job.write_text("G21\nG1 F500\nG1 X1\nG1 X7\nG1 X3\n")
    r = sl("cnc", "send", line, "mill", job)
    assert r.returncode == 1
    assert f"{job}:4: G1X7: ALARM:1 (hard limit triggered" in r.stderr


def test_bad_input_exits_2(shop, tmp_path: Path) -> None:
    sim, line = shop
    job = tmp_path / "part.nc"
    job.write_text("G21\n" + "G1" + " X1.2345" * 12 + "\n")
    r = sl("cnc", "send", line, "mill", job)
    assert r.returncode == 2 and f"{job}:2:1: gcode: line is" in r.stderr
    good = tmp_path / "good.nc"
    good.write_text("G0 X1\n")
    r = sl("cnc", "send", line, "lathe", good)
    assert r.returncode == 2 and "unknown device 'lathe'; devices: mill, plc" in r.stderr
    r = sl("cnc", "send", line, "plc", good)
    assert r.returncode == 2 and "not a GRBL controller" in r.stderr
    r = sl("cnc", "send", line, "mill", tmp_path / "missing.nc")
    assert r.returncode == 2 and "cannot read" in r.stderr
    assert sim.controller.lines_received == 0  # nothing was sent


def test_ctrl_c_does_the_safe_stop(tmp_path: Path) -> None:
    with GrblSim(GrblController(MonotonicClock())) as sim:
        line = tmp_path / "shop.yaml"
        line.write_text(LINE.format(port=sim.port))
        job = tmp_path / "slow.nc"
        job.write_text("G21\nG1 F600\n" + "".join(f"G1 X{i * 10}\n" for i in range(1, 30)))
        proc = subprocess.Popen([sys.executable, "-m", "smartline.cli", "cnc", "send",
                                 str(line), "mill", str(job)], stderr=subprocess.PIPE,
                                text=True)
        deadline = time.monotonic() + 30
        while sim.controller.state != "Run" and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 1, err
        assert "cancelled" in err and "safe stop" in err
        assert sim.controller.resets == 1 and sim.controller.state == "Idle"


async def test_the_simulator_runs_as_a_process() -> None:
    import json

    from grbl_support import driver as make_driver
    from grbl_support import points

    proc = subprocess.Popen([sys.executable, "-m", "smartline.hil.grbl", "--tcp", "--fast",
                             "--set", "10=3"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = json.loads(proc.stdout.readline())["url"]
        assert url.startswith("grbl://socket://127.0.0.1:")

        class Remote:  # what driver() needs of a simulator
            pass

        remote = Remote()
        remote.url = url  # type: ignore[attr-defined]
        async with make_driver(remote) as d:  # type: ignore[arg-type]
            r = await d.read(d.plan(points("state", "buffer.rx")))
            assert r.texts[0] == "Idle" and float(r.raw[1]) == 128.0
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
