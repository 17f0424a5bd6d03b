"""``smartline check/read/write/browse`` on a line with the MT-SICS scale, as a user runs
them (subprocesses), against the simulated scale on a pty."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from smartline.hil.serial import SerialInstrumentSim

SMARTLINE = Path(sys.executable).parent / "smartline"

LINE = """\
smartline: 1
line: weighing
devices:
  scale: {{url: "serial://{port}?baudrate=9600", profile: mettler-toledo/mt-sics, timeout_ms: 1000}}
tags:
  weight: {{device: scale, address: weight, unit: g}}
  stable: {{device: scale, address: stable}}
  sn: {{device: scale, address: serial_number}}
  tare: {{device: scale, address: tare_weight, access: rw, unit: g, limits: [0, 500]}}
tasks:
  acquire: {{period_ms: 200, tags: [weight, stable, sn, tare]}}
"""


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NUMBA_DISABLE_JIT": os.environ.get("NUMBA_DISABLE_JIT", "0")}
    return subprocess.run([str(SMARTLINE), *args], capture_output=True, text=True, timeout=60,
                          env=env, check=False)


def test_read_write_and_browse_the_scale(scale_sim: SerialInstrumentSim, tmp_path: Path
                                         ) -> None:
    line = tmp_path / "line.yaml"
    line.write_text(LINE.format(port=scale_sim.pty_path), encoding="utf-8")
    checked = run("check", str(line))
    assert checked.returncode == 0, checked.stderr
    scale_sim.set("weight", 412.5)
    got = run("read", str(line), "--json")
    assert got.returncode == 0, got.stderr
    data = json.loads(got.stdout)
    assert data["weight"]["value"] == 412.5 and data["weight"]["quality"] == "good"
    assert data["sn"]["value"] == "B207696838"
    assert data["stable"]["value"] in (1, 1.0, True)
    wrote = run("write", str(line), "tare=12.5")
    assert wrote.returncode == 0, wrote.stderr
    assert scale_sim.instrument.writes["tare_weight"] == 12.5
    scale_sim.instrument.fault("error", command="stable_weight", text="S +")
    got = run("read", str(line), "weight", "--json")
    data = json.loads(got.stdout)
    assert data["weight"]["quality"] == "bad"
    assert "S +: overload" in json.dumps(data)
    browsed = run("browse", f"serial://{scale_sim.pty_path}", "--profile",
                  "mettler-toledo/mt-sics", "--json")
    assert browsed.returncode == 0, browsed.stderr
    result = json.loads(browsed.stdout)
    assert result["identity"]["serial_number"] == "B207696838"
    assert "weight" in json.dumps(result["points"])
