"""A whole line over Modbus: several devices on one RS-485 port and one TCP device, read and
written through ``Line`` and the ``smartline`` command, against pymodbus servers on loopback."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from smartline.config import data_dir
from smartline.core import Quality, Reason
from smartline.hil.modbus import ModbusDeviceSim, ModbusServerSim
from smartline.line import Line

E5CC = data_dir("drivers") / "omron" / "e5cc.yaml"
SDM630 = data_dir("drivers") / "eastron" / "sdm630.yaml"


def line_file(tmp_path: Path, rtu_url: str, tcp_url: str) -> Path:
    base = rtu_url.partition("&unit=")[0]
    p = tmp_path / "oven.yaml"
    p.write_text(f"""\
smartline: 1
line: oven-line
devices:
  zone1: {{url: "{base}&unit=1", profile: omron/e5cc, timeout_ms: 500}}
  zone2: {{url: "{base}&unit=2", profile: omron/e5cc, timeout_ms: 500}}
  meter: {{url: "{tcp_url}", timeout_ms: 300}}
tags:
  t1:  {{device: zone1, address: pv}}
  t2:  {{device: zone2, address: pv}}
  sp1: {{device: zone1, address: sp}}
  sp2: {{device: zone2, address: sp}}
  kw:  {{device: meter, address: "ir:12:float32", unit: W}}
tasks:
  scan: {{period_ms: 100, tags: [t1, t2, kw]}}
""")
    return p


async def test_two_units_share_one_serial_port_and_a_tcp_device_reads_alongside(tmp_path):
    z1 = ModbusDeviceSim.from_profile(E5CC, unit=1)
    z2 = ModbusDeviceSim.from_profile(E5CC, unit=2)
    meter = ModbusDeviceSim.from_profile(SDM630, unit=1)
    meter.set_registers("ir", 12, [0x4248, 0x0000])  # 50.0 as IEEE-754 float32, big-endian
    async with ModbusServerSim([z1, z2], transport="rtu") as rtu, \
            ModbusServerSim(meter, transport="tcp") as tcp:
        z1.set("pv", 181.5)
        z2.set("pv", -12.3)
        async with Line.load(line_file(tmp_path, rtu.url(1), tcp.url(1))) as line:
            values = await line.read()
            assert values["t1"].value == pytest.approx(181.5)
            assert values["t2"].value == pytest.approx(-12.3)
            assert values["kw"].value == pytest.approx(50.0)
            assert all(v.quality is Quality.GOOD for v in values.values())
            # both units went through one pooled serial link
            assert line.io.drivers["zone1"].link is line.io.drivers["zone2"].link

            await line.write({"sp1": 150.0, "sp2": 90.5})
            assert z1.get("sp") == pytest.approx(150.0)
            assert z2.get("sp") == pytest.approx(90.5)

            # one unit stops answering: only its tags go bad, the rest keep their quality
            z2.faults.no_answer = True
            values = await line.read(["t1", "t2", "kw"])
            assert values["t1"].quality is Quality.GOOD
            assert values["kw"].quality is Quality.GOOD
            assert values["t2"].quality is Quality.BAD
            assert values["t2"].reason is Reason.TIMEOUT


def sl(*args: object, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "smartline.cli", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=60, check=False)


async def test_smartline_read_and_write_against_a_simulated_controller(tmp_path):
    env = dict(os.environ, SMARTLINE_AUDIT=str(tmp_path / "audit.jsonl"))
    z1 = ModbusDeviceSim.from_profile(E5CC, unit=1)
    z2 = ModbusDeviceSim.from_profile(E5CC, unit=2)
    meter = ModbusDeviceSim.from_profile(SDM630, unit=1)
    meter.set_registers("ir", 12, [0x4248, 0x0000])
    async with ModbusServerSim([z1, z2], transport="rtuovertcp") as gw, \
            ModbusServerSim(meter, transport="tcp") as tcp:
        f = line_file(tmp_path, gw.url(1).replace("?unit=1", "?x=1"), tcp.url(1))
        f.write_text(f.read_text().replace("?x=1&unit=", "?unit="))
        import asyncio

        r = await asyncio.to_thread(sl, "write", f, "sp1=123.4", env=env)
        assert r.returncode == 0, r.stderr
        assert z1.get("sp") == pytest.approx(123.4)
        r = await asyncio.to_thread(sl, "write", f, "sp1=9999", env=env)
        assert r.returncode == 2 and "limits" in r.stderr
        assert z1.get("sp") == pytest.approx(123.4)
        r = await asyncio.to_thread(sl, "read", f, "sp1", "t1", "kw", "--json", env=env)
        assert r.returncode == 0, r.stderr
        data = json.loads(r.stdout)
        assert data["sp1"]["value"] == pytest.approx(123.4)
        assert data["kw"]["value"] == pytest.approx(50.0)
        assert data["t1"]["quality"] == "good"
