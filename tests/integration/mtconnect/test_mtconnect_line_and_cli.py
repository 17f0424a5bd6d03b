"""The user's view: a line file with an ``mtconnect+http://`` device (read, and pushed
values landing in the process image), and ``smartline browse`` / ``check`` / ``read`` as
commands, against the simulated agent."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

from smartline.core import Quality
from smartline.hil.mtconnect import MtConnectAgentSim
from smartline.line import Line

SMARTLINE = Path(sys.executable).parent / "smartline"

LINE = """\
smartline: 1
line: machining
devices:
  vmc:
    url: "{url}"
    timeout_ms: 1000
    interval_ms: 0
    heartbeat_ms: 200
tags:
  program: {{device: vmc, address: program}}
  parts: {{device: vmc, address: PartCount, unit: parts}}
  x: {{device: vmc, address: d1_xpos, unit: mm}}
  alarm: {{device: vmc, address: system}}
  alarms: {{device: vmc, address: system.active}}
"""


async def run(*args: str) -> tuple[int, str, str]:
    """The CLI as its own process; the event loop (and the agent on it) keeps running."""
    env = {**os.environ, "NUMBA_CACHE_DIR": os.environ.get("NUMBA_CACHE_DIR", "")}
    proc = await asyncio.create_subprocess_exec(
        str(SMARTLINE), *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_a_line_reads_and_subscribes(sim: MtConnectAgentSim, tmp_path: Path) -> None:
    path = tmp_path / "line.yaml"
    path.write_text(LINE.format(url=sim.url()), encoding="utf-8")
    sim.raise_alarm("E5", "Coolant low", level="Warning")
    async with Line.load(path) as line:
        got = await line.read()
        assert got["program"].value == "O1001" and got["program"].quality == Quality.GOOD
        assert got["parts"].value == 0 and got["alarm"].value == "warning"
        assert got["alarms"].value == "warning E5: Coolant low"
        assert isinstance(got["x"].value, float)
        # pushed: the tags leave the plans, values arrive by themselves
        group = line.io.group(list(line.config.tags), push=True)
        assert set(group.pushed["vmc"]) == set(line.config.tags)
        assert await line.io.start_push() == 1
        sim.set("program", "O1234")
        sim.clear_alarm()
        deadline = time.monotonic() + 3
        while line.image.get("program").value != "O1234" or \
                line.image.get("alarm").value != "normal":
            assert time.monotonic() < deadline, "pushed values did not reach the image"
            await asyncio.sleep(0.02)
        assert line.image.get("alarms").value == ""


async def test_browse_check_and_read_as_commands(sim: MtConnectAgentSim, tmp_path: Path) -> None:
    code, out, err = await run("browse", sim.url())
    assert code == 0, err
    assert "address: Xact" in out and "address: PartCount" in out
    assert "address: system.active" in out and "unit: REVOLUTION/MINUTE" in out
    assert "VMC-3Axis" in out  # the identity comment
    browsed = tmp_path / "browsed.yaml"
    browsed.write_text(out, encoding="utf-8")
    code, out, err = await run("check", str(browsed))
    assert code == 0, out + err
    code, out, err = await run("browse", sim.url(), "--json")
    assert code == 0, err
    data = json.loads(out)
    by_address = {p["address"]: p for p in data["points"]}
    assert by_address["Sspeed"]["type"] == "SAMPLE ROTARY_VELOCITY/ACTUAL"
    assert by_address["execution"]["access"] == "r"
    path = tmp_path / "line.yaml"
    path.write_text(LINE.format(url=sim.url()), encoding="utf-8")
    code, out, err = await run("read", str(path), "--json")
    assert code == 0, out + err
    values = json.loads(out)
    assert values["program"]["value"] == "O1001"


async def test_browse_of_an_agent_that_is_not_there() -> None:
    code, _out, err = await run("browse", "mtconnect+http://127.0.0.1:9/VMC", "--timeout-ms",
                               "300")
    assert code == 1
    assert "refused" in err or "connect" in err.lower()
