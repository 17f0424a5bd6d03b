"""The out-of-tree driver example as a user meets it: a package installed with pip, found
by smartline through its entry point, its grammar checked by ``smartline check``, and its
devices read and written by ``smartline read`` / ``smartline write`` against the vendor's
simulator running as its own process."""

from __future__ import annotations

import importlib.metadata
import json
import math
import select
import shutil
import signal
import socket
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import acme_tally
import pytest
from acme_tally.address import TallyAddress
from acme_tally.driver import TallyDriver
from acme_tally.family import TallyOptions

from smartline.config import find_profile, load_line, load_profile
from smartline.core import ENTRY_POINT_GROUP, ConfigError, DriverRegistry
from smartline.tags import DataType, parse_address

ROOT = Path(__file__).resolve().parents[3]
PACKAGE = ROOT / "examples" / "vendor-driver"
EXAMPLE_LINE = PACKAGE / "line.yaml"
PROFILE = Path(acme_tally.__file__).parent / "profiles" / "acme" / "tally-4.yaml"


# -- the plug-in -------------------------------------------------------------------------------

def test_the_registry_finds_the_acme_family_through_its_entry_point(
        acme_dist: importlib.metadata.Distribution) -> None:
    entry = [ep for ep in acme_dist.entry_points if ep.group == ENTRY_POINT_GROUP]
    assert [(ep.name, ep.value) for ep in entry] == [("acme", "acme_tally.family:FAMILY")]

    registry = DriverRegistry()
    family = registry.families["acme"]
    assert family.package == "acme-tally"
    assert family.requires == "acme-tally"
    assert not [p for p in registry.problems if p.plugin == "acme"]
    info = registry.info("acme+tcp")
    assert info.family is family
    assert info.scheme.default_port == 7878
    assert family.options is TallyOptions
    assert family.option_names == ("station", "max_batch", "subscribe")
    assert registry.load("acme+tcp") is TallyDriver
    # smartline's own grammar lookup reaches the plug-in's grammar
    address = parse_address("acme", "ch7:BOOL", registry=registry)
    assert isinstance(address, TallyAddress)
    assert address.canonical() == "CH7:bool"


def test_an_unknown_scheme_lists_the_plug_in_scheme() -> None:
    registry = DriverRegistry()
    with pytest.raises(ImportError, match=r"acme\+tcp"):
        registry.info("acme+udp")


def test_the_profile_ships_in_the_package_and_is_found_without_profile_paths() -> None:
    assert find_profile("acme/tally-4", []) == PROFILE
    profile = load_profile(PROFILE)
    assert profile.family == "acme"
    assert profile.defaults == {"timeout_ms": 500, "max_batch": 8}
    status = profile.points["status"]
    assert not status.address.writable_area
    assert status.bits[2] == "jam"
    assert profile.points["recipe"].address.text_rule == (64, "utf-8")


def test_a_line_names_the_package_to_install_when_the_family_is_missing() -> None:
    bare = DriverRegistry(use_entry_points=False)  # as if acme-tally were not installed
    with pytest.raises(ConfigError) as info:
        load_line(EXAMPLE_LINE, registry=bare)
    (url,) = [i for i in info.value.issues if i.path == "devices.counter.url"]
    assert "pip install 'acme-tally>=0.1'" in url.message
    assert (url.line, url.column) == (15, 11)


def test_the_wheel_carries_the_profile_and_the_entry_point(tmp_path: Path) -> None:
    src = tmp_path / "src-copy"
    shutil.copytree(PACKAGE, src, ignore=shutil.ignore_patterns(
        "build", "dist", "*.egg-info", "__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(tmp_path / "dist"), str(src)],
                   check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("acme_tally-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "acme_tally/profiles/acme/tally-4.yaml" in names
    assert "acme_tally/py.typed" in names
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[smartline.drivers]" in text
    assert "acme = acme_tally.family:FAMILY" in text


# -- smartline check ---------------------------------------------------------------------------

def run_cli(cmd: Path, *args: str, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(cmd), *args], capture_output=True, text=True, timeout=60,
                          env=env, check=False)


def test_check_passes_the_example_line(smartline_cmd: Path) -> None:
    done = run_cli(smartline_cmd, "check", str(EXAMPLE_LINE))
    assert done.returncode == 0, done.stderr
    assert "line 'tally-demo': 1 device, 8 tags, 1 task" in done.stdout
    config = load_line(EXAMPLE_LINE)
    counter = config.devices["counter"]
    options = counter.options
    assert isinstance(options, TallyOptions)
    assert (options.station, options.max_batch, options.subscribe) == (1, 8, True)
    assert counter.timeout_s == pytest.approx(0.3)  # the device's key beats the profile's 500
    assert config.tags["rejects"].address == TallyAddress(9, DataType.INT64)
    assert config.tags["batch_target"].limits == (1, 5000)  # the line's, over the profile's


def test_check_passes_the_shipped_profile(smartline_cmd: Path) -> None:
    done = run_cli(smartline_cmd, "check", str(PROFILE))
    assert done.returncode == 0, done.stderr
    assert "profile 'acme/tally-4' (acme): 10 points" in done.stdout


BAD_LINE = """\
smartline: 1
line: tally-bad
devices:
  counter: {url: "acme+tcp://127.0.0.1:7878?station=1", profile: acme/tally-4}
  other: {url: "acme+tcp://127.0.0.1?station=100", max_batch: 0}
  plain: {url: "acme+tcp://127.0.0.1?station=2"}
tags:
  good: {device: plain, address: "CH3:u64"}
  bad: {device: plain, address: "CH12:f32"}
  worse: {device: plain, address: "CH007"}
  status: {device: plain, address: ST, access: rw}
  named: {device: counter, address: "CH4:int"}
"""


def test_check_reports_the_plug_in_grammar_errors_located(smartline_cmd: Path,
                                                          tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_LINE, encoding="utf-8")
    lines = BAD_LINE.splitlines()

    def at(row: int, needle: str) -> str:
        return f"{path}:{row}:{lines[row - 1].index(needle) + 1}"

    done = run_cli(smartline_cmd, "check", str(path))
    assert done.returncode == 2
    errors = done.stderr.splitlines()
    assert f"{at(9, 'f32')}: tags.bad.address: unknown type 'f32': expected f64, i64, u64, " \
           "bool or text in 'CH12:f32'" in errors
    assert f"{at(10, '007')}: tags.worse.address: channel 007: write it without leading " \
           "zeros (CH7) in 'CH007'" in errors
    assert f"{at(5, 'station=100')}: devices.other.url: URL parameter station='100': " \
           "expected an integer 1..99" in errors
    assert any(e.startswith(f"{at(5, '0}')}: devices.other.max_batch: must be at least 1")
               for e in errors), errors
    assert any(e.startswith(f"{path}:11:") and "tags.status.access" in e for e in errors), \
        errors
    # on a device with a profile, an address is a point's name or else in the grammar
    assert any(e.startswith(f"{path}:12:") and "tags.named.address" in e
               and "unknown type 'int'" in e for e in errors), errors
    assert not any("tags.good" in e for e in errors)
    assert len(errors) == 6, errors


# -- smartline read / write against the simulator in its own process ---------------------------

@pytest.fixture
def sim_url() -> Iterator[str]:
    """``python -m acme_tally.sim --port 0``: its URL, read from the JSON line it prints."""
    proc = subprocess.Popen([sys.executable, "-m", "acme_tally.sim", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready, "the simulator printed nothing within 30 s"
        info = json.loads(proc.stdout.readline())
        assert info["device"] == "tally"
        yield info["url"]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, f"the simulator did not stop cleanly on SIGTERM: {err}"


@pytest.fixture
def line_file(tmp_path: Path, sim_url: str) -> Path:
    """The example line, pointed at the running simulator."""
    port = urlsplit(sim_url).port
    text = EXAMPLE_LINE.read_text(encoding="utf-8")
    assert "127.0.0.1:7878" in text
    path = tmp_path / "line.yaml"
    path.write_text(text.replace("127.0.0.1:7878", f"127.0.0.1:{port}"), encoding="utf-8")
    return path


def station_read(url: str, *items: str) -> dict[str, str]:
    """Ask the simulator directly (a raw socket, no smartline code): item → value text."""
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        stream = sock.makefile("rb")
        assert stream.readline().startswith(b"HELLO ACME-TALLY/1 ")
        sock.sendall(f"RD 1 {' '.join(items)}\r\n".encode())
        reply = stream.readline().decode("ascii").rstrip("\r\n")
    assert reply.startswith("OK "), reply
    out = {}
    for entry in reply[3:].split(" "):
        item, _, rest = entry.partition("=")
        out[item] = rest.rpartition("@")[0]
    return out


def test_write_then_read_through_the_cli(smartline_cmd: Path, line_file: Path, sim_url: str,
                                         audit_env: dict[str, str]) -> None:
    done = run_cli(smartline_cmd, "write", str(line_file), "batch_target=500",
                   'recipe="Cola 0,5l — süß"', "running=true", "lane1=18446744073709551615",
                   env=audit_env)
    assert done.returncode == 0, done.stderr
    seen = station_read(sim_url, "CH6", "CH8", "CH7", "CH1")
    assert seen["CH6"] == "500"
    assert unquote(seen["CH8"]) == "Cola 0,5l — süß"
    assert seen["CH8"] == "Cola%200%2C5l%20%E2%80%94%20s%C3%BC%C3%9F"
    assert seen["CH7"] == "1"
    assert seen["CH1"] == "18446744073709551615"

    done = run_cli(smartline_cmd, "read", str(line_file), "--json", env=audit_env)
    assert done.returncode == 0, done.stderr
    values = json.loads(done.stdout)
    assert set(values) == {"lane1", "lane2", "rate", "batch_target", "running", "recipe",
                           "rejects", "counter.status"}
    assert all(v["quality"] == "good" and v["timestamp"] for v in values.values()), values
    assert values["batch_target"]["value"] == 500
    assert values["recipe"]["value"] == "Cola 0,5l — süß"
    assert values["running"]["value"] is True
    assert values["lane1"]["value"] == 2**64 - 1  # exact, not float64's 1.8446744073709552e19
    assert values["rate"]["value"] == 0.0
    assert values["counter.status"]["value"] == 1

    audit = [json.loads(x) for x in Path(audit_env["SMARTLINE_AUDIT"]).read_text().splitlines()]
    assert {(a["tag"], a["outcome"]) for a in audit} >= {("batch_target", "ok"),
                                                         ("lane1", "ok")}


def test_a_refused_write_leaves_the_station_untouched(smartline_cmd: Path, line_file: Path,
                                                      sim_url: str,
                                                      audit_env: dict[str, str]) -> None:
    before = station_read(sim_url, "CH6", "CH7", "ST")
    # beyond the line's limits [1, 5000] (the profile allows 1000000): nothing is written,
    # not even the valid running=true in the same command
    done = run_cli(smartline_cmd, "write", str(line_file), "batch_target=6000",
                   "running=true", env=audit_env)
    assert done.returncode == 2
    assert "batch_target" in done.stderr and "limits" in done.stderr
    done = run_cli(smartline_cmd, "write", str(line_file), "counter.status=3", env=audit_env)
    assert done.returncode == 2
    assert "read-only" in done.stderr
    assert station_read(sim_url, "CH6", "CH7", "ST") == before


def test_a_station_that_is_down_fails_the_read_with_bad_quality(
        smartline_cmd: Path, tmp_path: Path, audit_env: dict[str, str]) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = tmp_path / "down.yaml"
    path.write_text(EXAMPLE_LINE.read_text(encoding="utf-8").replace(
        "127.0.0.1:7878", f"127.0.0.1:{port}"), encoding="utf-8")
    done = run_cli(smartline_cmd, "read", str(path), "--json", "rate", env=audit_env)
    assert done.returncode == 1
    assert "counter" in done.stderr
    rate = json.loads(done.stdout)["rate"]
    assert rate["quality"] == "bad"
    assert rate["value"] is None or math.isnan(rate["value"])


@pytest.mark.parametrize("subscribe", [True, False])
def test_a_running_line_takes_the_stations_values_by_push_or_by_polling(
        smartline_cmd: Path, line_file: Path, tmp_path: Path, audit_env: dict[str, str],
        subscribe: bool) -> None:
    if not subscribe:
        text = line_file.read_text(encoding="utf-8")
        line_file.write_text(text.replace("    timeout_ms: 300\n",
                                          "    timeout_ms: 300\n    subscribe: false\n"),
                             encoding="utf-8")
    stats = tmp_path / "stats.json"
    done = run_cli(smartline_cmd, "run", str(line_file), "--cycles", "10", "--stats",
                   str(stats), "--no-live", env=audit_env)
    assert done.returncode == 0, done.stderr
    report = json.loads(stats.read_text(encoding="utf-8"))
    io = report["tasks"]["acquire"]["io"]
    counter = report["devices"]["counter"]
    assert counter["failures"] == 0 and counter["connects"] == 1
    assert counter["batch"] == 8  # the profile's max_batch (the simulator allows 32)
    if subscribe:  # every tag of the task is pushed: the station is never polled
        assert io["pushed_tags"] == 5 and io["reads"] == 0
        assert counter["subscriptions"] == 1 and counter["pushes"] >= 1
        assert counter["reads"] == 0
    else:
        assert io["pushed_tags"] == 0 and io["reads"] >= 10
        assert counter["subscriptions"] == 0 and counter["reads"] >= 10
