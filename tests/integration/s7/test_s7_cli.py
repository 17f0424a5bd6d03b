"""``smartline check/read/write`` on a line with an ``s7://`` device, as a user runs them
(subprocesses), against the simulated filler PLC."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from smartline.config import data_dir
from smartline.hil.s7 import S7PlcSim, S7ServerSim

PROFILE = data_dir("drivers") / "siemens" / "s7-1200-filler.yaml"
SMARTLINE = Path(sys.executable).parent / "smartline"

LINE = """\
smartline: 1
line: bottling
devices:
  filler:
    url: "s7://127.0.0.1:{port}?rack=0&slot=1"
    profile: siemens/s7-1200-filler
    points: [status.state_current, admin.prod_processed_count, cpu.state]
    timeout_ms: 1000
tags:
  volume: {{device: filler, address: filler.volume_setpoint}}
  product: {{device: filler, address: filler.product}}
  speed: {{device: filler, address: command.mach_speed}}
  running: {{device: filler, address: "Q0.0", access: rw}}
  estop_ok: {{device: filler, address: "I0.0"}}
  total: {{device: filler, address: "DB12.DBD0:DINT", unit: bottles}}
tasks:
  acquire: {{period_ms: 100, tags: [volume, product, speed, running, estop_ok, total]}}
"""


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SMARTLINE), *args], capture_output=True, text=True, timeout=60,
                          env=env, check=False)


@pytest.fixture
async def sim() -> AsyncIterator[tuple[S7ServerSim, S7PlcSim]]:
    plc = S7PlcSim.from_profile(PROFILE)
    async with S7ServerSim(plc, pdu_max=240) as server:
        yield server, plc


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "SMARTLINE_AUDIT": str(tmp_path / "audit.jsonl")}


async def test_read_and_write_through_the_cli(sim, tmp_path: Path, env) -> None:
    server, plc = sim
    line = tmp_path / "line.yaml"
    line.write_text(LINE.format(port=server.port), encoding="utf-8")
    done = run("check", str(line), env=env)
    assert done.returncode == 0, done.stderr + done.stdout

    done = run("write", str(line), "volume=750", 'product="Cola 0,5l süß"', "speed=450",
               "running=true", env=env)
    assert done.returncode == 0, done.stderr + done.stdout
    assert plc.get("filler.volume_setpoint") == 750.0
    assert plc.get("filler.product") == "Cola 0,5l süß"
    assert plc.get("command.mach_speed") == 450.0
    assert plc.get("io.infeed_running") is True

    done = run("read", str(line), "--json", env=env)
    assert done.returncode == 0, done.stderr + done.stdout
    values = json.loads(done.stdout)
    assert all(v["quality"] == "good" for v in values.values()), values
    assert values["volume"]["value"] == 750.0
    assert values["product"]["value"] == "Cola 0,5l süß"
    assert values["running"]["value"] is True
    assert values["estop_ok"]["value"] is True
    assert values["total"]["value"] == 125000
    assert values["filler.cpu.state"]["value"] == 8  # RUN (the profile's enum names it)

    # the input image is the PLC's: refused before anything is sent
    before = plc.writes
    done = run("write", str(line), "estop_ok=false", env=env)
    assert done.returncode != 0
    assert plc.writes == before
    audit = [json.loads(x) for x in Path(env["SMARTLINE_AUDIT"]).read_text().splitlines()]
    assert {(a["tag"], a["outcome"]) for a in audit} >= {("volume", "ok"), ("product", "ok")}


def test_check_locates_rack_slot_with_tsaps(tmp_path: Path) -> None:
    line = tmp_path / "line.yaml"
    line.write_text(LINE.format(port=1102).replace("?rack=0&slot=1",
                                                   "?rack=0&remote_tsap=0x0101"),
                    encoding="utf-8")
    done = run("check", str(line), env=dict(os.environ))
    assert done.returncode != 0
    assert "either by rack/slot or by local_tsap/remote_tsap" in done.stdout + done.stderr
