"""Plant and scenario files: the shipped examples check, and every kind of mistake is reported
with its file, line, column and key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from smartline.config import KINDS
from smartline.config import check_file as check_any
from smartline.core import ConfigError
from smartline.hil.scenario import Scenario, load_plant, parse_duration_ns

ROOT = Path(__file__).resolve().parents[3]
SCENARIOS = ROOT / "hil_sim" / "scenarios"
PLANTS = ROOT / "hil_sim" / "plants"

PLANT = """\
smartline-plant: 1
name: p
blocks:
  tank: {type: tank, params: {area_m2: 0.05}}
  pump: {type: motor}
links:
  - {from: pump.running, to: tank.pump_run}
wiring:
  plc.level: tank.level_m
  plc.inlet_valve: tank.inflow_valve_pct
"""

SCENARIO = """\
smartline-scenario: 1
name: s
plant: p
devices:
  plc: {protocol: modbus+tcp, profile: generic/tank-io}
"""


def check_file(path: object) -> str:
    """``smartline check``'s view: line files, profiles and the simulator's own kinds."""
    from smartline.hil.scenario import FILE_KINDS

    return check_any(path, kinds={**KINDS, **FILE_KINDS})  # type: ignore[arg-type]


def _write(tmp: Path, plant: str, scenario: str) -> Path:
    (tmp / "plants").mkdir(exist_ok=True)
    (tmp / "scenarios").mkdir(exist_ok=True)
    (tmp / "plants" / "p.yaml").write_text(plant)
    path = tmp / "scenarios" / "s.yaml"
    path.write_text(scenario)
    return path


def _issues(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        check_file(path)
    return [i.format() for i in info.value.issues]


@pytest.mark.parametrize(("text", "ns"), [
    ("500ms", 500_000_000), ("30s", 30_000_000_000), ("2min", 120_000_000_000),
    ("1.5h", 5_400_000_000_000), ("0.25 s", 250_000_000), ("0s", 0)])
def test_durations(text: str, ns: int) -> None:
    assert parse_duration_ns(text) == ns


@pytest.mark.parametrize("text", ["30", "2x", "-1s", "1 day", "", "s", 30, None, "2y"])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError, match="expected a time with a unit"):
        parse_duration_ns(text)


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.yaml")) + sorted(PLANTS.glob("*.yaml")),
                         ids=lambda p: p.name)
def test_shipped_files_check(path: Path) -> None:
    summary = check_file(path)
    assert summary.startswith(f"{path}: ")
    assert ("scenario" in summary) == (path.parent == SCENARIOS)


def test_scenario_loads_into_checked_objects() -> None:
    s = Scenario.load(SCENARIOS / "tank-demo-faults.yaml")
    assert s.step_ns == 10_000_000 and s.seed == 7
    assert s.plant.name == "tank-demo" and set(s.plant.blocks) == {"tank", "pump"}
    assert [e.at_ns for e in s.timeline] == sorted(e.at_ns for e in s.timeline)
    down = s.timeline[0]
    assert (down.kind, down.target, down.what, down.for_ns) == ("device", "plc", "down", 5 * 10**9)
    wires = {(w.device, w.point): w for w in s.plant.wiring}
    assert wires[("plc", "level")].to_device
    assert not wires[("plc", "inlet_valve")].to_device
    assert [x.subject for x in s.expect] == ["point", "alarm", "point", "tag"]


def test_plant_errors_are_located(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("""\
smartline-plant: 1
name: p
blocks:
  tank: {type: tank, params: {area_m2: -1, bogus: 2}}
  pump: {type: pumpx}
  m: {type: motor}
links:
  - {from: m.speed_hz, to: m.nope}
wiring:
  plc.level: tank.no_such_signal
""")
    issues = _issues(path)
    assert f"{path}:4:40: blocks.tank.params.area_m2: tank parameter 'area_m2' must be within " \
           "[1e-06, 1e+06] m², found -1" in issues
    assert any(i.startswith(f"{path}:4:44: blocks.tank.params.bogus: tank has no parameter "
                            "'bogus'") for i in issues)
    assert any(i.startswith(f"{path}:5:16: blocks.pump.type: unknown block type 'pumpx'; "
                            "expected one of conveyor, tank") for i in issues)
    assert any(i.startswith(f"{path}:8:28: links[0].to: block m (motor) has no input 'nope'")
               for i in issues)
    with pytest.raises(ConfigError):
        load_plant(path)


def test_wiring_checked_against_the_device_profiles(tmp_path: Path) -> None:
    path = _write(tmp_path, PLANT + "  plc.nopoint: tank.level_pct\n  dev2.x: tank.volume_m3\n",
                  SCENARIO)
    issues = _issues(path)
    plant = tmp_path / "plants" / "p.yaml"
    assert any(i.startswith(f"{plant}:11:3: wiring.plc.nopoint: device plc (profile "
                            "generic/tank-io) has no point 'nopoint'; expected one of level,")
               for i in issues)
    assert any(i.startswith(f"{plant}:12:3: wiring.dev2.x: no device 'dev2' in scenario s")
               for i in issues)


def test_an_input_is_fed_once(tmp_path: Path) -> None:
    path = _write(tmp_path, PLANT + "  plc.outlet_valve: tank.pump_run\n", SCENARIO)
    issues = _issues(path)
    assert any("wiring.plc.outlet_valve: input tank.pump_run is already fed by link "
               "pump.running" in i for i in issues)


def test_scenario_errors_are_located(tmp_path: Path) -> None:
    path = _write(tmp_path, PLANT, SCENARIO.replace("devices:\n", """\
initial: {tank.level_m: 1, plc.zzz: 2, tank.area_m2: -3}
timeline:
  - {at: 3s, device: plc, fault: latency}
  - {at: 1min, device: plc, fault: melt}
  - {at: 2s, signal: tank.level_m, fault: stuck}
  - {at: 1s, block: pump, event: explode}
  - {at: 1s, device: nobody, fault: down}
  - {at: 1s, signal: tank.overflow, fault: noise, sigma: 1}
  - {at: 1s, block: pump, event: trip, for: 2s}
  - {at: 1s, set: tank.nothing, value: 1}
  - {at: 1s, device: plc, fault: down, sigma: 2}
expect:
  - {point: tank.level_m, reaches: {min: 1}, within: 10s}
  - {signal: tank.level_m, goes: bad}
  - {alarm: tank.overflow, between: [10s, 5s]}
devices:
  sc: {protocol: serial, profile: generic/tank-io}
  x: {protocol: bacnet, profile: generic/tank-io}
"""))
    issues = "\n".join(_issues(path))
    f = str(path)
    for expected in [
        f"{f}:4:11: initial.tank.level_m: block tank (tank) has no param or input or state "
        "'level_m'",
        f"{f}:4:28: initial.plc.zzz: device plc (profile generic/tank-io) has no point 'zzz'",
        f"{f}:4:54: initial.tank.area_m2: tank parameter 'area_m2' must be within",
        f"{f}:6:5: timeline[0]: fault latency needs 'ms'",
        f"{f}:7:36: timeline[1].fault: the modbus simulator of device plc cannot play fault "
        "'melt'; it plays corrupt, disconnect, down, exception, garbage, latency, no_answer",
        f"{f}:8:5: timeline[2]: sensor fault stuck needs 'value'",
        f"{f}:9:34: timeline[3].event: block pump (motor) needs 'event': one of trip,",
        f"{f}:10:22: timeline[4].device: no device 'nobody' in this scenario",
        f"{f}:11:44: timeline[5].fault: output tank.overflow is bool: sensor fault noise "
        "applies to float outputs only",
        f"{f}:12:40: timeline[6].for: a block event happens once",
        f"{f}:13:19: timeline[7].set: block tank (tank) has no param or input or state "
        "'nothing'",
        f"{f}:14:40: timeline[8].sigma: device fault down takes no 'sigma'",
        f"{f}:16:13: expect[0].point: no device 'tank' in this scenario",
        f"{f}:17:28: expect[1].goes: 'goes: bad/good' is about a line tag's quality",
        f"{f}:18:37: expect[2].between: the window ends before it starts",
        f"{f}:20:35: devices.sc.profile: profile generic/tank-io is a modbus profile; protocol "
        "serial serves serial profiles",
        f"{f}:21:17: devices.x.protocol: unknown protocol 'bacnet'",
    ]:
        assert expected in issues, f"missing {expected!r} in:\n{issues}"


def test_fault_a_device_kind_cannot_play(tmp_path: Path) -> None:
    path = _write(tmp_path, PLANT, SCENARIO + """\
  scale: {protocol: serial, profile: mettler-toledo/mt-sics}
timeline:
  - {at: 1s, device: scale, fault: exception}
""")
    issues = _issues(path)
    assert any(i.startswith(f"{path}:8:36: timeline[0].fault: the serial simulator of device "
                            "scale cannot play fault 'exception'; it plays corrupt, down, "
                            "latency, no_answer") for i in issues)


def test_bad_times_and_missing_plant(tmp_path: Path) -> None:
    path = _write(tmp_path, PLANT, SCENARIO + "timeline:\n  - {at: 30, device: plc, fault: down}"
                                              "\n")
    assert _issues(path) == [f"{path}:7:10: timeline[0].at: expected a time with a unit like "
                             "'30s', '500ms', '2min' or '1h', found 30"]
    path.write_text(SCENARIO.replace("plant: p", "plant: nowhere"))
    [issue] = _issues(path)
    assert issue.startswith(f"{path}:3:8: plant: plant 'nowhere' not found")


def test_missing_format_key_is_recognised(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO.replace("smartline-scenario: 1\n", ""))
    [issue] = _issues(path)
    assert "missing format version: a scenario file starts with 'smartline-scenario: 1'" in issue
