"""PackML units over legacy machines (the line file's ``units:`` section): loading with
located errors, the PackTags the line gains, and the runtime over in-memory machines."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from pathlib import Path

import pytest

from smartline.config import LineConfig, load_line
from smartline.core import (
    ConfigError,
    MonotonicClock,
    Quality,
    RecipeError,
    VirtualClock,
    WriteRefusedError,
)
from smartline.drivers.families.memory import MemoryOptions
from smartline.drivers.memory import MemoryDriver
from smartline.line import Line
from smartline.recipes._units import (
    UNIT_TAG_TYPES,
    UNITS_DEVICE,
    UnitCommand,
    UnitRuntime,
    Units,
    load_units,
    packtag_types,
    tag_expr_type,
    with_units,
)
from smartline.recipes.expr import ExprType
from smartline.recipes.packml import DEFAULT_MODES, Command, State
from smartline.tags import Access, DataType, MemoryAddress

ROOT = Path(__file__).resolve().parents[3]

LINE = """\
smartline: 1
line: t
devices:
  m: {url: "memory://t-machine"}
  ua: {url: "opc.tcp://127.0.0.1:4840"}
tags:
  m.running: {device: m, address: "running:bool"}
  m.ready: {device: m, address: "ready:bool"}
  m.fault: {device: m, address: "fault:bool"}
  m.count: {device: m, address: count}
  m.alarm: {device: m, address: "alarm:uint16"}
  m.start: {device: m, address: "start:bool", access: rw}
  m.stop: {device: m, address: "stop:bool", access: rw}
  m.enable: {device: m, address: "enable:bool", access: rw}
  m.speed_sp: {device: m, address: speed_sp, access: rw, limits: [10, 100]}
  m.job: {device: m, address: "job:uint16", access: rw, limits: [0, 99]}
  ua.mode: {device: ua, address: "ns=2;s=Mode"}
  ua.count: {device: ua, address: "ns=2;s=Count"}
"""

UNITS = """\
units:
  filler:
    description: a filler
    modes:
      cleaning: {number: 4, states: [STOPPED, IDLE, STARTING, EXECUTE, STOPPING, ABORTING,
                                     ABORTED, CLEARING, RESETTING, COMPLETING, COMPLETE]}
    state:
      ABORTED: "m.fault"
      EXECUTE: "m.running"
      IDLE: "m.ready and not m.running"
    commands:
      START: {write: {m.start: true}, pulse_ms: 500}
      STOP: {write: {m.stop: true}, pulse_ms: 500}
      ABORT: {write: {m.enable: false}}
      RESET: {write: {m.job: 3}}
    packtags:
      produced: m.count
      stop_reason: m.alarm
      speed_setpoint: m.speed_sp
"""


def _config(tmp_path: Path, units: str = UNITS, line: str = LINE) -> LineConfig:
    path = tmp_path / "line.yaml"
    path.write_text(line + units)
    return load_line(path)


def _problems(tmp_path: Path, units: str, line: str = LINE) -> list[str]:
    """Every issue of the section, as ``LINE:COL: key.path: message`` (file name cut)."""
    config = _config(tmp_path, units, line)
    with pytest.raises(ConfigError) as info:
        load_units(config)
    out = []
    for issue in info.value.issues:
        assert issue.file == str(config.source)
        out.append(f"{issue.line}:{issue.column}: {issue.path}: {issue.message}")
    return out


def _unit(body: str) -> str:
    return "units:\n  u:\n" + "".join(f"    {x}\n" for x in body.splitlines())


# -- loading -------------------------------------------------------------------------------

def test_a_unit_loads_with_its_rules_commands_modes_and_packtags(tmp_path: Path) -> None:
    units = load_units(_config(tmp_path))
    assert units.names == ("filler",)
    u = units["filler"]
    assert u.description == "a filler"
    assert u.mode is DEFAULT_MODES["production"]
    assert [s for s, _ in u.state_rules] == [State.ABORTED, State.EXECUTE, State.IDLE]
    assert u.state_rules[2][1].text == "m.ready and not m.running"
    assert u.commands[Command.START] == UnitCommand((("m.start", True),), 500)
    assert u.commands[Command.START].resets() == (("m.start", False),)
    assert u.commands[Command.ABORT] == UnitCommand((("m.enable", False),), None)
    assert u.commands[Command.RESET].resets() == (("m.job", 0),)
    cleaning = u.modes["cleaning"]
    assert cleaning.number == 4 and State.HOLDING not in cleaning.states
    assert set(u.modes) == {"production", "maintenance", "manual", "cleaning"}
    assert dict(u.packtags) == {"produced": "m.count", "stop_reason": "m.alarm",
                                "speed_setpoint": "m.speed_sp"}


def test_a_line_without_units_has_none(tmp_path: Path) -> None:
    config = _config(tmp_path, units="")
    units = load_units(config)
    assert units.names == ()
    assert with_units(config, units) is config


def test_the_initial_mode_by_name_or_number(tmp_path: Path) -> None:
    by_name = load_units(_config(tmp_path, UNITS.replace("    description: a filler\n",
                                                         "    mode: Cleaning\n")))
    assert by_name["filler"].mode.name == "cleaning"
    by_number = load_units(_config(tmp_path, UNITS.replace("    description: a filler\n",
                                                           "    mode: 2\n")))
    assert by_number["filler"].mode.name == "maintenance"


def test_tags_whose_type_the_device_decides_fit_any_use(tmp_path: Path) -> None:
    """An OPC UA node may be text or a number: the condition decides."""
    units = load_units(_config(tmp_path, _unit(
        'state: {EXECUTE: "ua.mode == \'AUTO\' and ua.count > 3", STOPPED: "true"}')))
    assert units["u"].state_rules[0][0] is State.EXECUTE
    problems = _problems(tmp_path, _unit('state: {EXECUTE: "ua.mode + 1 == \'AUTO\'"}'))
    assert len(problems) == 1 and "units.u.state.EXECUTE" in problems[0]


BAD: list[tuple[str, str, str]] = [
    # (units section, expected "LINE:COL: key.path: message" fragment (a regex), id)
    (_unit('state: {EXECUTING: "m.running"}'),
     r"^21:13: units\.u\.state\.EXECUTING: unknown PackML state 'EXECUTING' "
     r"\(did you mean EXECUTE\?\)", "unknown-state"),
    (_unit('state: {EXECUTE: "m.running and"}'),
     r"^21:33: units\.u\.state\.EXECUTE: expected a value after 'and'",
     "syntax-error-located"),
    (_unit('state: {EXECUTE: "m.count"}'),
     r"^21:23: units\.u\.state\.EXECUTE: expected a condition .*found a number: write "
     r"'m\.count != 0'",
     "not-a-truth-value"),
    (_unit('state: {EXECUTE: "m.runing or m.fault"}'),
     r"^21:23: units\.u\.state\.EXECUTE: unknown name 'm\.runing' \(did you mean "
     r"'m\.running'\?\)",
     "unknown-tag-in-condition"),
    (_unit('state: {EXECUTE: 3}'),
     r"^21:22: units\.u\.state\.EXECUTE: expected a condition .* found integer 3",
     "condition-not-text"),
    (_unit('state: {EXECUTE: "m.running", execute: "m.ready"}'),
     r"^21:35: units\.u\.state\.execute: state EXECUTE has a rule already", "duplicate-state"),
    (_unit("description: no rules"),
     r"^20:3: units\.u: missing required key 'state'", "no-state-rules"),
    (_unit('state: {STOPPED: "true"}\ncommands: {STRAT: {write: {m.start: true}}}'),
     r"^22:16: units\.u\.commands\.STRAT: unknown PackML command 'STRAT' "
     r"\(did you mean START\?\)", "unknown-command"),
    (_unit('state: {STOPPED: "true"}\ncommands: {SC: {write: {m.start: true}}}'),
     r"^22:16: units\.u\.commands\.SC: unknown PackML command 'SC'",
     "state-complete-is-no-command"),
    (_unit('state: {STOPPED: "true"}\ncommands: {START: {write: {m.running: true}}}'),
     r"^22:32: units\.u\.commands\.START\.write\.m\.running: tag 'm\.running' is read-only",
     "write-read-only"),
    (_unit('state: {STOPPED: "true"}\ncommands: {START: {write: {m.strat: true}}}'),
     r"^22:32: units\.u\.commands\.START\.write\.m\.strat: unknown tag 'm\.strat' \(did you "
     r"mean 'm\.start'\?\)", "write-unknown-tag"),
    (_unit('state: {STOPPED: "true"}\ncommands: {START: {write: {m.speed_sp: 150}}}'),
     r"^22:44: units\.u\.commands\.START\.write\.m\.speed_sp: cannot write 150 .*outside "
     r"limits \[10, 100\]", "write-outside-limits"),
    (_unit('state: {STOPPED: "true"}\ncommands: {START: {write: {m.start: 2.5}}}'),
     r"units\.u\.commands\.START\.write\.m\.start: cannot write 2\.5", "write-wrong-type"),
    (_unit('state: {STOPPED: "true"}\ncommands: {START: {write: {m.start: true}, pulse_ms: 0}}'),
     r"^22:58: units\.u\.commands\.START\.pulse_ms: must be greater than 0", "pulse-not-positive"),
    (_unit('state: {STOPPED: "true"}\n'
           'commands: {START: {write: {m.speed_sp: 50}, pulse_ms: 100}}'),
     r"units\.u\.commands\.START\.write\.m\.speed_sp: the pulse ends by writing 0, which is "
     r"refused: .*outside limits", "pulse-reset-refused"),
    (_unit('state: {STOPPED: "true"}\ncommands: {START: {write: {}}}'),
     r"units\.u\.commands\.START\.write: ", "no-writes"),
    (_unit('mode: cleanin\nstate: {STOPPED: "true"}\n'
           'modes: {cleaning: {number: 4, states: [STOPPED, ABORTING, ABORTED, CLEARING]}}'),
     r"^21:11: units\.u\.mode: unknown mode 'cleanin' \(did you mean 'cleaning'\?\)",
     "unknown-mode"),
    (_unit('mode: 9\nstate: {STOPPED: "true"}'),
     r"^21:11: units\.u\.mode: no mode number 9", "unknown-mode-number"),
    (_unit('state: {STOPPED: "true"}\nmodes: {cip: {number: 2, states: [STOPPED]}}'),
     r"units\.u\.modes\.cip\.number: must be at least 4", "mode-number-of-the-standard"),
    (_unit('state: {STOPPED: "true"}\n'
           'modes: {a: {number: 5, states: [STOPPED, ABORTING, ABORTED, CLEARING]},'
           ' b: {number: 5, states: [STOPPED, ABORTING, ABORTED, CLEARING]}}'),
     r"units\.u\.modes\.b\.number: mode number 5 is taken by mode 'a'", "mode-number-twice"),
    (_unit('state: {STOPPED: "true"}\nmodes: {cip: {number: 4, states: [IDLE, EXECUTE]}}'),
     r"units\.u\.modes\.cip\.states: must enable STOPPED", "mode-without-initial-state"),
    (_unit('state: {STOPPED: "true"}\nmodes: {cip: {number: 4, states: [STOPPED, RUNNING]}}'),
     r"units\.u\.modes\.cip\.states\[1\]: unknown PackML state 'RUNNING'", "mode-state-unknown"),
    (_unit('state: {STOPPED: "true"}\nmodes: {Production: {number: 4, states: [STOPPED]}}'),
     r"units\.u\.modes\.Production: mode 'Production' is already a mode", "mode-name-taken"),
    (_unit('state: {STOPPED: "true"}\npacktags: {produced: m.cont}'),
     r"^22:26: units\.u\.packtags\.produced: unknown tag 'm\.cont' \(did you mean "
     r"'m\.count'\?\)", "packtags-unknown-tag"),
    (_unit('state: {STOPPED: "true"}\npacktags: {sped: m.count}'),
     r"units\.u\.packtags\.sped: unknown key 'sped' \(did you mean 'speed'\?\)",
     "packtags-unknown-key"),
    (_unit('state: {STOPPED: "true"}\npacktags: {speed_setpoint: m.count}'),
     r"units\.u\.packtags\.speed_setpoint: tag 'm\.count' is read-only", "setpoint-read-only"),
    (_unit('state: {STOPPED: "true"}\npacktags: {speed: ua.mode, produced: m.fault}'),
     r"units\.u\.packtags\.produced: tag 'm\.fault' is not a number", "packtags-not-a-number"),
    (_unit('state: {STOPPED: "true"}\nspeed: 3'),
     r"units\.u\.speed: unknown key 'speed'", "unknown-unit-key"),
    ('units:\n  2nd: {state: {STOPPED: "true"}}\n',
     r"^20:3: units\.2nd: string '2nd' is not a valid unit name", "bad-unit-name"),
    ('units:\n  u: [STOPPED]\n',
     r"^20:6: units\.u: expected the unit's settings", "unit-not-a-mapping"),
]


@pytest.mark.parametrize(("units", "expected"), [(u, e) for u, e, _ in BAD],
                         ids=[i for _, _, i in BAD])
def test_bad_units_are_rejected_with_a_located_message(tmp_path: Path, units: str,
                                                       expected: str) -> None:
    problems = _problems(tmp_path, units)
    assert any(re.search(expected, p) for p in problems), problems


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    problems = _problems(tmp_path, _unit(
        'state: {EXECUTING: "m.running", IDLE: "m.ready +"}\n'
        'commands: {START: {write: {m.running: true}}, STOP: {write: {m.stop: 1.5}}}'))
    assert len(problems) == 4, problems


def test_a_command_must_not_write_a_tasks_output(tmp_path: Path) -> None:
    line = LINE + ("tasks:\n  control: {period_ms: 100, program: 'pkg.mod:fn', "
                   "outputs: [m.enable]}\n")
    problems = _problems(tmp_path, _unit('state: {STOPPED: "true"}\n'
                                         'commands: {ABORT: {write: {m.enable: false}}}'), line)
    assert problems == ["24:32: units.u.commands.ABORT.write.m.enable: tag 'm.enable' is an "
                        "output of task 'control': its program sets it every cycle and would "
                        "undo the command"]


def test_a_unit_whose_packtags_collide_with_the_lines_tags(tmp_path: Path) -> None:
    """A unit named like a device is fine until one of its PackTags is a tag already."""
    line = LINE + "  m.state: {device: m, address: state}\n"
    problems = _problems(tmp_path, 'units:\n  m: {state: {STOPPED: "true"}}\n', line)
    assert problems == ["21:3: units.m: unit 'm' would add PackTags tag 'm.state', but the line "
                        "already has it (on device 'm'): rename the unit"]
    fine = load_units(_config(tmp_path, 'units:\n  m: {state: {STOPPED: "true"}}\n'))
    assert fine.names == ("m",)
    clash = _problems(tmp_path, 'units:\n  ua: {state: {STOPPED: "true"}}\n')
    assert clash == ["20:3: units.ua: unit 'ua' would add PackTags tag 'ua.mode', but the line "
                     "already has it (on device 'ua'): rename the unit"]


def test_a_device_named_packml_is_refused(tmp_path: Path) -> None:
    line = LINE.replace("devices:\n", 'devices:\n  packml: {url: "memory://x"}\n')
    problems = _problems(tmp_path, _unit('state: {STOPPED: "true"}'), line)
    assert problems == ["4:3: devices.packml: the device name 'packml' is taken by the units' "
                        "PackTags device: rename this device"]


def test_the_example_lines_units(tmp_path: Path) -> None:
    bottling = load_units(load_line(ROOT / "recipes" / "bottling-line.yaml"))
    assert bottling.names == ("capper", "conveyor", "filler")
    assert len(bottling["capper"].state_rules) == 17
    cnc = load_units(load_line(ROOT / "recipes" / "cnc-cell.yaml"))
    assert cnc.names == ("mill", "tender")
    assert set(cnc["tender"].commands) == {Command.START, Command.STOP, Command.ABORT,
                                           Command.CLEAR, Command.RESET}
    assert dict(cnc["mill"].commands) == {}


def test_the_reference_page_names_every_key() -> None:
    from smartline.config._common import model_keys
    from smartline.recipes._units import (
        PACKTAG_SOURCES,
        _CommandModel,
        _ModeModel,
        _PackTagsModel,
        _UnitModel,
    )

    page = (ROOT / "docs" / "reference" / "units.md").read_text()
    keys = {k for m in (_UnitModel, _ModeModel, _CommandModel, _PackTagsModel)
            for k in model_keys(m)} | set(PACKTAG_SOURCES)
    assert sorted(k for k in keys if f"`{k}`" not in page) == []


# -- the PackTags the line gains -------------------------------------------------------------

def test_with_units_adds_the_packml_device_and_the_packtags(tmp_path: Path) -> None:
    config = _config(tmp_path)
    units = load_units(config)
    full = with_units(config, units)
    device = full.devices[UNITS_DEVICE]
    assert str(device.url) == "memory://t-packml?push=1"
    assert isinstance(device.options, MemoryOptions) and device.options.push
    added = {n: t for n, t in full.tags.items() if n not in config.tags}
    assert set(added) == {"filler.state", "filler.mode", "filler.command", "filler.produced",
                          "filler.stop_reason"}
    assert all(t.device == UNITS_DEVICE for t in added.values())
    assert added["filler.state"].address == MemoryAddress("filler.state", DataType.UINT8)
    assert added["filler.state"].access is Access.R
    command = added["filler.command"]
    assert command.access is Access.RW and command.limits == (0, 10)
    assert command.address == MemoryAddress("filler.command", DataType.UINT8)
    assert added["filler.produced"].address == MemoryAddress("filler.produced")
    with pytest.raises(WriteRefusedError):
        command.check_write(11)
    assert packtag_types(units) == {"filler.state": ExprType.STATE,
                                    "filler.mode": ExprType.NUMBER,
                                    "filler.command": ExprType.NUMBER,
                                    "filler.produced": ExprType.NUMBER,
                                    "filler.stop_reason": ExprType.NUMBER}
    assert UNIT_TAG_TYPES["state"] is ExprType.STATE
    assert tag_expr_type(config.tags["m.running"]) is ExprType.BOOL
    assert tag_expr_type(config.tags["m.count"]) is ExprType.NUMBER
    assert tag_expr_type(config.tags["ua.mode"]) is None
    with pytest.raises(ConfigError, match=r"filler\.state"):
        with_units(full, units)  # the tags are there already


# -- the runtime ---------------------------------------------------------------------------

class _Audit:
    def __init__(self) -> None:
        self.entries: list[Mapping[str, object]] = []

    def record(self, entry: Mapping[str, object]) -> None:
        self.entries.append(dict(entry))


class _Rig:
    """A line whose machine is an in-memory device the test plays, with its units."""

    def __init__(self, config: LineConfig) -> None:
        self.clock = VirtualClock()
        self.units: Units = load_units(config)
        self.audit = _Audit()
        self.line = Line(with_units(config, self.units), clock=self.clock, audit=self.audit)
        self.events: list[tuple[str, str, dict[str, object]]] = []
        self.rt = UnitRuntime(self.units, self.line, clock=self.clock,
                              on_event=lambda k, u, d: self.events.append((k, u, dict(d))))
        driver = self.line.io.driver("m")
        assert isinstance(driver, MemoryDriver)
        self.machine = driver.bus

    async def cycle(self, ms: int = 100) -> None:
        """Time passes; one step; what it started (reads, writes) ends."""
        self.clock.advance_ns(ms * 1_000_000)
        await self.rt.step(self.clock.now_ns())
        await self.rt.drain()

    async def settle(self) -> None:
        """Two cycles: the first reads the machine, the second derives from what it read."""
        await self.cycle()
        await self.cycle()

    def value(self, tag: str) -> object:
        return self.line.image.get(tag).value

    def written(self, tag: str) -> list[tuple[object, str, str]]:
        return [(e["value"], str(e["outcome"]), str(e["source"])) for e in self.audit.entries
                if e["tag"] == tag]


@pytest.fixture
async def rig(tmp_path: Path) -> object:
    r = _Rig(_config(tmp_path))
    yield r
    await r.rt.aclose()
    await r.line.close()


async def test_the_state_follows_the_machine_and_reaches_the_image_by_push(rig: _Rig) -> None:
    assert rig.rt.state("filler") is State.STOPPED  # before any rule held
    await rig.settle()
    assert rig.rt.state("filler") is State.STOPPED  # nothing holds: all signals false
    rig.machine.set("ready", 1)
    await rig.settle()
    assert rig.rt.state("filler") is State.IDLE
    rig.machine.set("running", 1)
    await rig.settle()
    assert rig.rt.state("filler") is State.EXECUTE
    rig.machine.set("fault", 1)
    await rig.settle()
    assert rig.rt.state("filler") is State.ABORTED
    assert [(e[0], e[1], e[2]["from"], e[2]["to"]) for e in rig.events] == [
        ("unit", "filler", "STOPPED", "IDLE"), ("unit", "filler", "IDLE", "EXECUTE"),
        ("unit", "filler", "EXECUTE", "ABORTED")]
    state = rig.line.image.get("filler.state")  # pushed by the packml memory device
    assert state.value == int(State.ABORTED) and state.quality is Quality.GOOD
    assert rig.value("filler.mode") == 1
    assert "filler.state" in rig.line.io.pushed_tags[UNITS_DEVICE]


async def test_a_rule_over_tags_that_are_not_good_does_not_hold(rig: _Rig) -> None:
    rig.machine.set("running", 1)
    await rig.settle()
    assert rig.rt.state("filler") is State.EXECUTE
    rig.machine.garbage = True  # the machine answers rubbish: its tags go BAD
    rig.machine.set("running", 0)
    rig.machine.set("ready", 1)
    await rig.settle()
    assert rig.line.image.get("m.ready").quality is Quality.BAD
    assert rig.rt.state("filler") is State.EXECUTE  # no rule holds: the state stays


async def test_packtags_are_mirrored_from_their_sources(rig: _Rig) -> None:
    rig.machine.set("count", 42)
    rig.machine.set("alarm", 7)
    await rig.settle()
    assert rig.value("filler.produced") == 42.0
    assert rig.value("filler.stop_reason") == 7.0


async def test_a_pulse_command_writes_then_releases_after_pulse_ms(rig: _Rig) -> None:
    rig.machine.set("ready", 1)
    await rig.settle()
    rig.rt.command("filler", Command.START, source="test")
    await rig.rt.drain()
    assert rig.machine.values["start"] == 1.0
    assert rig.written("m.start") == [(True, "ok", "unit:filler/test")]
    await rig.cycle(300)  # 300 ms of 500: still held
    assert rig.machine.values["start"] == 1.0
    await rig.cycle(300)
    assert rig.machine.values["start"] == 0.0
    assert rig.written("m.start")[-1] == (False, "ok", "unit:filler/test")
    assert rig.events[-1] == ("command", "filler", {
        "command": "START", "source": "test", "state": "IDLE", "mode": "production",
        "accepted": True, "reason": ""})


async def test_a_level_command_stays(rig: _Rig) -> None:
    rig.machine.set("enable", 1)
    rig.rt.command("filler", Command.ABORT, source="test")
    for _ in range(20):
        await rig.cycle(100)
    assert rig.machine.values["enable"] == 0.0
    assert rig.written("m.enable") == [(False, "ok", "unit:filler/test")]


async def test_a_command_the_state_refuses_writes_nothing(rig: _Rig) -> None:
    rig.machine.set("running", 1)
    await rig.settle()
    with pytest.raises(RecipeError, match="command START refused: a unit in state EXECUTE"):
        rig.rt.command("filler", Command.START, source="test")
    await rig.cycle()
    assert rig.written("m.start") == []
    kind, unit, data = rig.events[-1]
    assert (kind, unit, data["command"], data["accepted"]) == ("command", "filler", "START",
                                                               False)
    assert "EXECUTE" in str(data["reason"])


async def test_a_command_the_unit_has_no_writes_for_is_refused(rig: _Rig) -> None:
    rig.machine.set("running", 1)
    await rig.settle()
    with pytest.raises(RecipeError, match="unit 'filler' has no writes for HOLD"):
        rig.rt.command("filler", Command.HOLD, source="test")
    with pytest.raises(RecipeError, match="unknown unit 'filer'"):
        rig.rt.command("filer", Command.HOLD, source="test")


async def test_modes_change_only_where_allowed_and_restrict_commands(rig: _Rig) -> None:
    rig.machine.set("running", 1)
    await rig.settle()
    with pytest.raises(RecipeError, match="mode changes only in"):
        rig.rt.set_mode("filler", "maintenance", source="test")
    rig.machine.set("running", 0)
    rig.machine.set("ready", 1)
    await rig.settle()
    rig.rt.set_mode("filler", "Cleaning", source="test")
    assert rig.rt.mode("filler").name == "cleaning"
    await rig.cycle()
    assert rig.value("filler.mode") == 4
    with pytest.raises(RecipeError, match="no mode 'drying'"):
        rig.rt.set_mode("filler", "drying", source="test")
    rig.machine.set("running", 1)
    rig.machine.set("ready", 0)
    await rig.settle()
    # cleaning leaves out HOLDING: Hold is refused by the mode, not by the state
    with pytest.raises(RecipeError, match="mode cleaning"):
        rig.rt.command("filler", Command.HOLD, source="test")


async def test_a_command_number_written_to_the_command_tag_is_taken(rig: _Rig) -> None:
    rig.machine.set("ready", 1)
    await rig.settle()
    await rig.line.io.write({"filler.command": int(Command.START)}, source="hmi")
    assert rig.value("filler.command") == 2
    await rig.cycle()
    assert rig.value("filler.command") == 0  # taken: back to 0
    assert rig.machine.values["start"] == 1.0
    assert rig.written("m.start") == [(True, "ok", "unit:filler/tag:filler.command")]
    assert rig.written("filler.command") == [(2, "ok", "hmi")]  # the request is audited too
    # a refused one (Start in EXECUTE) is reported and also taken
    rig.machine.set("running", 1)
    await rig.settle()
    await rig.line.io.write({"filler.command": int(Command.START)}, source="hmi")
    await rig.cycle()
    assert rig.value("filler.command") == 0
    assert rig.events[-1][2]["accepted"] is False
    with pytest.raises(WriteRefusedError):  # no such command: refused by the write guard
        await rig.line.io.write({"filler.command": 11}, source="hmi")


async def test_closing_ends_pending_pulses(rig: _Rig) -> None:
    rig.machine.set("ready", 1)
    await rig.settle()
    rig.rt.command("filler", Command.START, source="test")
    await rig.rt.aclose()
    assert rig.machine.values["start"] == 0.0
    await rig.rt.step(rig.clock.now_ns())  # closed: does nothing
    assert [v for v, _, _ in rig.written("m.start")] == [True, False]
    with pytest.raises(RecipeError, match="closed"):
        rig.rt.command("filler", Command.STOP, source="test")


async def test_the_runtime_needs_the_line_with_its_packtags(tmp_path: Path) -> None:
    config = _config(tmp_path)
    line = Line(config, clock=VirtualClock())
    with pytest.raises(RecipeError, match="with_units"):
        UnitRuntime(load_units(config), line, clock=line.clock)
    await line.close()


async def test_a_slow_machine_never_holds_up_a_step_in_real_time(rig: _Rig) -> None:
    """Reads of condition tags and command writes run as tasks: in real time a step returns
    at once; in virtual time (lock-step) it waits for them, so runs repeat exactly."""
    rig.machine.set("ready", 1)
    await rig.settle()
    rig.machine.latency_s = 0.2  # every exchange with the machine takes 200 ms of wall time
    loop = asyncio.get_running_loop()
    virtual = rig.rt.clock
    rig.rt.clock = MonotonicClock()  # a line in real time
    t0 = loop.time()
    rig.rt.command("filler", Command.START, source="test")
    await rig.rt.step(rig.rt.clock.now_ns())
    assert loop.time() - t0 < 0.1
    await rig.rt.drain()
    assert rig.machine.values["start"] == 1.0
    rig.rt.clock = virtual  # lock-step: the write lands within the step
    rig.rt.command("filler", Command.STOP, source="test")
    t0 = loop.time()
    await rig.rt.step(virtual.now_ns())
    assert loop.time() - t0 >= 0.15
    assert not rig.rt.pending()
