"""``smartline browse URL`` run as a real process: YAML that ``smartline check`` accepts,
--json, exit codes for bad URLs, unknown schemes and silent devices, and a Modbus device
served by the simulator."""

import asyncio
import json
import os
import sys

import pytest
import yaml
from cli_support import sl

from smartline.browse import render_yaml, tag_names
from smartline.core import BrowsedPoint, BrowseResult
from smartline.hil.modbus import ModbusDeviceSim, ModbusServerSim


async def asl(*args, env):
    """The CLI as a process while this test's event loop keeps serving a simulator."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "smartline.cli", *map(str, args), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
def memory(tmp_path, env):
    """A persisted memory device holding a number, a list and a text."""
    folder = tmp_path / "state" / "memory"
    folder.mkdir(parents=True)
    (folder / "cell.json").write_text(json.dumps(
        {"level": 3.5, "speeds": [1.0, 2.0, 3.0], "recipe": "A" * 20, "count": 7}))
    return "memory://cell?persist=1"


def test_memory_browse_is_a_line_file_that_passes_check(memory, env, tmp_path):
    r = sl("browse", memory, env=env)
    assert r.returncode == 0, r.stderr
    assert "# identity:" in r.stdout and "persisted: true" in r.stdout
    doc = yaml.safe_load(r.stdout)
    assert doc["smartline"] == 1 and doc["devices"]["device"]["url"] == memory
    tags = doc["tags"]
    assert tags["level"]["address"] == "level"
    assert tags["speeds"]["address"] == "speeds:float64[3]"
    assert tags["recipe"]["address"] == "recipe:string<24>"  # 20 bytes, rounded up to 8
    assert tags["count"] == {"device": "device", "address": "count", "access": "rw"}
    line = tmp_path / "browsed.yaml"
    line.write_text(r.stdout)
    c = sl("check", line, env=env)
    assert c.returncode == 0, c.stderr
    assert "1 device, 4 tags" in c.stdout
    # … and the tags read back what the device holds
    rd = sl("read", line, "level", "recipe", "--json", env=env)
    assert rd.returncode == 0, rd.stderr
    values = json.loads(rd.stdout)
    assert values["level"]["value"] == 3.5 and values["recipe"]["value"] == "A" * 20


def test_memory_browse_json(memory, env):
    r = sl("browse", memory, "--json", env=env)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["url"] == memory
    assert doc["identity"]["bus"] == "cell" and doc["identity"]["persisted"] is True
    assert {p["name"]: p["address"] for p in doc["points"]} == {
        "count": "count", "level": "level", "recipe": "recipe:string<24>",
        "speeds": "speeds:float64[3]"}
    assert doc["notes"] == []


def test_an_empty_device_still_gives_a_valid_line_file(env, tmp_path):
    r = sl("browse", "memory://nothing", env=env)
    assert r.returncode == 0, r.stderr
    assert "holds no values" in r.stdout
    line = tmp_path / "empty.yaml"
    line.write_text(r.stdout)
    assert sl("check", line, env=env).returncode == 0


@pytest.mark.parametrize(("url", "message"), [
    ("not-a-url", "expected a URL"),
    ("modbus+tcp://127.0.0.1:502?unit=999", "unit"),
    ("modbus+tcp://127.0.0.1:502?colour=red", "unknown URL parameter 'colour'"),
    ("nosuch://127.0.0.1", "unknown URL scheme 'nosuch'"),
])
def test_bad_urls_and_unknown_schemes_exit_2(url, message, env):
    r = sl("browse", url, env=env)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert message in r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""


def test_a_device_that_does_not_answer_exits_1(env):
    from smartline.hil.modbus import free_port

    r = sl("browse", f"modbus+tcp://127.0.0.1:{free_port()}?unit=1", "--timeout-ms", "300",
           env=env)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "cannot connect" in r.stderr and "Traceback" not in r.stderr


async def test_modbus_browse_shows_identity_and_answering_ranges(env, tmp_path):
    dev = ModbusDeviceSim(3, {"speed": "hr:0:uint16[20]", "temp": "ir:100:float32[2]",
                              "run": "co:0:bool[8]"},
                          identification={"VendorName": "ACME", "ProductCode": "FX-100",
                                          "MajorMinorRevision": "2.1", "ModelName": "FX"})
    async with ModbusServerSim(dev) as sim:
        code, out, err = await asl("browse", sim.url(3), env=env)
        assert code == 0, err
        assert "#   VendorName: ACME" in out and "#   ProductCode: FX-100" in out
        doc = yaml.safe_load(out)
        assert {n: t["address"] for n, t in doc["tags"].items()} == {
            "hr_0_19": "hr:0:uint16[20]", "ir_100_103": "ir:100:uint16[4]",
            "co_0_7": "co:0:bool[8]"}
        line = tmp_path / "modbus.yaml"
        line.write_text(out)
        code, _, err = await asl("check", line, env=env)
        assert code == 0, err

        code, out, err = await asl("browse", sim.url(3), "--json", "--max-requests", "5",
                                   env=env)
        assert code == 0, err
        doc = json.loads(out)
        assert doc["identity"]["ModelName"] == "FX"
        assert any("stopped after 5 requests" in n for n in doc["notes"])
        assert dev.stats.requests <= 200


def test_tag_names_are_made_valid_and_unique():
    pts = [BrowsedPoint("Line 1.Temp", "a"), BrowsedPoint("Line 1.Temp", "b"),
           BrowsedPoint("3rd", "c"), BrowsedPoint("", "d"), BrowsedPoint("a..b", "e")]
    assert tag_names(pts) == ["Line_1.Temp", "Line_1.Temp_2", "_3rd", "point", "a._.b"]


def test_render_yaml_quotes_with_pyyaml():
    result = BrowseResult(identity={"vendor": "O'Neil: #1\nline two"},
                          points=(BrowsedPoint("x", 'ns=2;s=Quote"d: #x', "rw", "Double",
                                               "°C", "a: b # c"),),
                          notes=("note: with # hash",))
    text = render_yaml("opc.tcp://h:4840", result)
    doc = yaml.safe_load(text)
    assert doc["tags"]["x"] == {"device": "device", "address": 'ns=2;s=Quote"d: #x',
                                "access": "rw", "unit": "°C", "description": "a: b # c"}
    assert all(line.startswith("#") for line in text.splitlines()[:5])


def test_a_missing_extra_is_named_and_exits_2(tmp_path, env):
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / "pymodbus.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'pymodbus'\", name='pymodbus')\n")
    env["PYTHONPATH"] = os.pathsep.join([str(blocked), env.get("PYTHONPATH", "")])
    r = sl("browse", "modbus+tcp://127.0.0.1:502?unit=1", env=env)
    assert r.returncode == 2, r.stderr
    assert "pip install 'smartline[modbus]'" in r.stderr and "Traceback" not in r.stderr


def test_parse_option_takes_yaml_scalars_of_top_level_keys():
    from smartline.browse import parse_option

    assert parse_option("security=none") == ("security", "none")
    assert parse_option("deadband=0.5") == ("deadband", 0.5)
    assert parse_option("subscribe=false") == ("subscribe", False)
    assert parse_option("trust=/a=b") == ("trust", "/a=b")
    for bad, message in [("security", "KEY=VALUE"), ("user.name=op", "top-level"),
                         ("security={policy: x}", "scalar"), ("url=x", "argument")]:
        with pytest.raises(ValueError, match=message):
            parse_option(bad)


def test_render_yaml_writes_the_options_into_the_device():
    text = render_yaml("opc.tcp://h:4840", BrowseResult(identity={}, points=()),
                       options={"security": "none", "deadband": 0.5})
    assert yaml.safe_load(text)["devices"]["device"] == {
        "url": "opc.tcp://h:4840", "security": "none", "deadband": 0.5}


async def test_opcua_browse_of_a_none_only_server_needs_security_none(env, tmp_path):
    from smartline.hil.opcua import OpcUaSim, SimVariable

    variables = [SimVariable("Filler.Speed", "ns=2;s=Filler.Speed", 12.5, "Double", True),
                 SimVariable("Filler.Count", "ns=2;s=Filler.Count", 7, "UInt32")]
    async with OpcUaSim(variables, policies=(), allow_none=True, proxy=False) as sim:
        code, out, err = await asl("browse", sim.url(), env=env)  # no option: refused
        assert code in (1, 2), (out, err)
        assert "security" in err and "Traceback" not in err and out == ""

        code, out, err = await asl("browse", sim.url(), "--option", "security=none", env=env)
        assert code == 0, err
        doc = yaml.safe_load(out)
        assert doc["devices"]["device"] == {"url": sim.url(), "security": "none"}
        tags = {t["address"]: t for t in doc["tags"].values()}
        assert tags["ns=2;s=Filler.Speed"]["access"] == "rw"
        assert "ns=2;s=Filler.Count" in tags
        line = tmp_path / "opcua.yaml"
        line.write_text(out)
        code, _, err = await asl("check", line, env=env)
        assert code == 0, err
        code, rout, err = await asl("read", line, "--json", env=env)
        assert code == 0, err
        values = json.loads(rout)
        assert sorted(v["value"] for v in values.values()) == [7, 12.5]

        code, out, err = await asl("browse", sim.url(), "--option", "security", env=env)
        assert code == 2 and "KEY=VALUE" in err and "Traceback" not in err


@pytest.mark.parametrize(("profile", "message"), [
    ("acme/nothing-here", "device profile 'acme/nothing-here' not found"),
    ("Bad Name", "profile name 'Bad Name': expected 'vendor/model'"),
    ("abb/acs580", "profile 'abb/acs580' describes modbus devices, not memory://"),
])
def test_a_profile_that_is_missing_or_does_not_fit_exits_2(profile, message, env):
    r = sl("browse", "memory://m", "--profile", profile, env=env)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr
