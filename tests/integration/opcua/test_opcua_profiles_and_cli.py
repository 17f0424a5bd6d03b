"""Every OPC UA profile in drivers/ served by the simulator and read back by the driver;
browsing the node tree; and ``smartline read --json`` end to end on an opc.tcp line."""

from __future__ import annotations

import asyncio
import json
import math
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from smartline.config import data_dir, load_profile
from smartline.core import Point, Quality
from smartline.drivers.opcua import OpcUaDriver
from smartline.hil.opcua import OpcUaSim

from .conftest import Pki, make_spec

pytestmark = pytest.mark.asyncio(loop_scope="module")

PROFILES = sorted(p for p in Path(data_dir("drivers")).rglob("*.yaml")
                  if load_profile(p).family == "opcua")
PACKML = next(p for p in PROFILES if p.parent.name == "omac")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def packml(pki: Pki) -> AsyncIterator[OpcUaSim]:
    async with OpcUaSim.from_profile(PACKML, users={"op": "pw"}, proxy=False) as sim:
        pki.trust(sim)
        yield sim


async def test_there_is_a_companion_spec_profile() -> None:
    profile = load_profile(PACKML)
    assert profile.name == "omac/packml-opcua" and "30050" in profile.manual.title
    assert "reference.opcfoundation.org" in profile.manual.url


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
async def test_profile_is_served_and_read(path: Path, pki: Pki) -> None:
    profile = load_profile(path)
    async with OpcUaSim.from_profile(profile, allow_none=True, proxy=False) as sim:
        pts = [Point(name, i, point.address) for i, (name, point)
               in enumerate(profile.points.items())]
        async with OpcUaDriver(make_spec(sim.url(), {"security": "none"})) as d:
            result = await d.read(d.plan(pts))
        assert (result.quality == Quality.GOOD).all(), result.reason
        for p in pts:
            hint = profile.points[p.tag].sim.get("value")
            if isinstance(hint, str):
                assert result.texts[p.slot] == hint, p.tag
            elif hint is not None:
                assert math.isclose(float(result.raw[p.slot]), float(hint), rel_tol=1e-6), p.tag


async def test_browse_lists_the_node_tree_with_types_and_access(packml: OpcUaSim,
                                                                pki: Pki) -> None:
    async with OpcUaDriver(make_spec(packml.url(), pki.options(), username="op",
                                     password="pw")) as d:
        found = await d.browse(depth=5)
    assert found.identity["manufacturer"] == "smartline"
    assert str(found.identity["product"]).startswith("OPC UA sim")
    by_name = {p.name: p for p in found.points}
    speed = by_name["Status.CurMachSpeed"]
    assert speed.address == "ns=2;s=PackMLMachine.Status.CurMachSpeed"
    assert (speed.type, speed.access) == ("Float", "r")
    state = by_name["BaseStateMachine.MachineState.ExecuteState.CurrentState"]
    assert state.type == "LocalizedText"
    assert len(found.points) == len(load_profile(PACKML).points)
    shallow = await _browse(packml, pki, 1)
    assert {p.name for p in shallow.points} == {"TagID", "PackMLVersion"} and shallow.notes


async def _browse(sim: OpcUaSim, pki: Pki, depth: int):  # type: ignore[no-untyped-def]
    async with OpcUaDriver(make_spec(sim.url(), pki.options(), username="op",
                                     password="pw")) as d:
        return await d.browse(depth=depth)


async def test_smartline_read_json_on_an_opcua_line(packml: OpcUaSim, pki: Pki,
                                                    tmp_path: Path) -> None:
    line = tmp_path / "line.yaml"
    line.write_text(f"""\
smartline: 1
line: packml-over-opcua
devices:
  filler:
    url: "{packml.url()}"
    profile: omac/packml-opcua
    certificate: {json.dumps(str(pki.certificate))}
    private_key: {json.dumps(str(pki.private_key))}
    trust: {json.dumps(str(pki.trusted))}
    user: {{name: op, password_env: FILLER_PW}}
tags:
  speed: {{device: filler, address: Status.CurMachSpeed}}
  state: {{device: filler, address: BaseStateMachine.MachineState.ExecuteState.CurrentState}}
  blocked: {{device: filler,
            address: "nsu=urn:smartline:packml-machine;s=PackMLMachine.Status.EquipmentBlocked"}}
""", encoding="utf-8")
    env = {**os.environ, "FILLER_PW": "pw", "SMARTLINE_STATE_DIR": str(tmp_path / "state")}
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "smartline"), "read", str(line), "--json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    data = json.loads(out)
    assert data["speed"]["value"] == pytest.approx(118.5)
    assert data["speed"]["quality"] == "good"
    assert data["state"]["value"] == "Execute"
    assert data["blocked"]["value"] is False or data["blocked"]["value"] == 0
