"""Recipe files: every bad recipe is refused with its located message, the examples and the
test recipes load into the typed model, parameters are validated, lines are found."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import pytest

from smartline.config import KINDS, check_file, load_line
from smartline.core import ConfigError, RecipeError
from smartline.recipes._load import (
    FILE_KINDS,
    RECIPE_FORMAT_KEY,
    find_line_for,
    load_recipe,
    validate_parameters,
)
from smartline.recipes._model import (
    CommandAction,
    Operation,
    Parallel,
    ParamType,
    Phase,
    ProgramAction,
    RestartRule,
    UnitProcedure,
    WaitAction,
    WriteAction,
)
from smartline.recipes._units import load_units

ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT / "tests" / "data" / "recipes"
BAD = sorted((DATA / "bad").glob("*.yaml"))
GOOD = DATA / "good"
LINE = GOOD / "mixer-line.yaml"
ALL_KINDS = {**KINDS, **FILE_KINDS}

_HEADER = re.compile(r"^# at: (\d+):(\d+)\n# path: (.*)\n# expect: (.*)$", re.MULTILINE)


def _expected(path: Path) -> tuple[int, int, str, str]:
    found = _HEADER.search(path.read_text())
    assert found, f"{path.name}: no '# at: / # path: / # expect:' header"
    line, column, key, message = found.groups()
    return int(line), int(column), "" if key == "<root>" else key, message


def _issues(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_recipe(path)
    return [i.format() for i in info.value.issues]


def _write(tmp: Path, text: str, name: str = "r.yaml") -> Path:
    """A recipe in ``tmp`` next to a copy of the test line."""
    shutil.copy(LINE, tmp / "mixer-line.yaml")
    path = tmp / name
    path.write_text(text)
    return path


def test_there_are_at_least_15_bad_recipes() -> None:
    assert len(BAD) >= 15


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_recipe_is_refused_with_a_located_message(path: Path) -> None:
    line, column, key, message = _expected(path)
    with pytest.raises(ConfigError) as info:
        load_recipe(path)
    issues = info.value.issues
    assert len(issues) == 1, [i.format() for i in issues]
    issue = issues[0]
    assert (issue.file, issue.line, issue.column) == (str(path), line, column), issue.format()
    assert issue.path == key
    assert message in issue.message
    # `smartline check` (the CLI merges the kinds) refuses it the same way
    with pytest.raises(ConfigError) as checked:
        check_file(path, kinds=ALL_KINDS)
    assert [i.format() for i in checked.value.issues] == [issue.format()]


# -- the example recipes ------------------------------------------------------------------------

EXAMPLES = ["heat-treat-42crmo4", "bottling-500ml", "cnc-bracket"]


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_recipe_checks_against_its_line(name: str) -> None:
    path = ROOT / "recipes" / f"{name}.yaml"
    summary = check_file(path, kinds=ALL_KINDS)
    assert summary.startswith(f"{path}: recipe {name!r} version ")
    assert find_line_for(path).parent == ROOT / "recipes"


def test_heat_treatment_recipe_model() -> None:
    recipe = load_recipe(ROOT / "recipes" / "heat-treat-42crmo4.yaml")
    assert (recipe.name, recipe.version, recipe.line) == ("heat-treat-42crmo4", "3",
                                                           "heat-treatment")
    assert recipe.on_restart is RestartRule.RESUME
    assert recipe.identity == ()
    assert recipe.parameter("temper_c").default == 200.0
    assert recipe.parameter("temper_c").limits == (100.0, 400.0)
    (temper,) = recipe.procedure
    assert isinstance(temper, UnitProcedure) and temper.unit == ""
    assert [op.name for op in temper.operations if isinstance(op, Operation)] == \
        ["heat", "soak", "cool"]
    heat = temper.operations[0]
    assert isinstance(heat, Operation)
    set_points, reach = heat.phases
    assert isinstance(set_points, Phase) and isinstance(reach, Phase)
    (write,) = set_points.actions
    assert isinstance(write, WriteAction)
    assert [tag for tag, _ in write.values] == ["zone1.sp", "zone2.sp", "zone3.sp"]
    assert reach.until is not None and {"zone1.pv", "band_c"} <= reach.until.names
    assert reach.on_failure.action == "hold"
    cool = temper.operations[2]
    assert isinstance(cool, Operation)
    wait_cool = cool.phases[1]
    assert isinstance(wait_cool, Phase)
    assert (wait_cool.on_failure.action, wait_cool.on_failure.times,
            wait_cool.on_failure.delay_s, wait_cool.on_failure.then) == ("retry", 1, 10.0, "hold")
    raw = (ROOT / "recipes" / "heat-treat-42crmo4.yaml").read_bytes()
    assert recipe.digest == hashlib.sha256(raw).hexdigest()
    assert recipe.extra == {"material": "42CrMo4 (1.7225), EN 10083-3"}


def test_bottling_recipe_runs_one_branch_per_machine() -> None:
    recipe = load_recipe(ROOT / "recipes" / "bottling-500ml.yaml")
    (block,) = recipe.procedure
    assert isinstance(block, Parallel)
    names = [branch[0].name for branch in block.branches if isinstance(branch[0], UnitProcedure)]
    assert names == ["fill", "cap"]
    assert recipe.parameter("bottles").type is ParamType.INT
    assert recipe.version == "1"  # an integer version is kept as text


def test_cnc_recipe_streams_its_program() -> None:
    recipe = load_recipe(ROOT / "recipes" / "cnc-bracket.yaml")
    programs = [a for up in _walk(recipe.procedure) for a in up.actions
                if isinstance(a, ProgramAction)]
    assert [(p.device, p.file) for p in programs] == \
        [("router", ROOT / "recipes" / "programs" / "bracket.nc")]
    assert recipe.version == "1.0"


def _walk(chart: tuple[object, ...]) -> list[Phase]:
    out: list[Phase] = []
    for item in chart:
        if isinstance(item, Parallel):
            for branch in item.branches:
                out += _walk(branch)
        elif isinstance(item, UnitProcedure):
            out += _walk(item.operations)
        elif isinstance(item, Operation):
            out += _walk(item.phases)
        elif isinstance(item, Phase):
            out.append(item)
    return out


# -- the test recipe: every element -----------------------------------------------------------

def test_every_element_of_the_test_recipe() -> None:
    recipe = load_recipe(GOOD / "mix-basic.yaml")
    assert recipe.identity == ("batch.code", "hmi.lot")
    assert recipe.equipment.units == ("mixer",)
    assert [(p.name, p.type) for p in recipe.parameters] == [
        ("level_l", ParamType.NUMBER), ("speed", ParamType.NUMBER), ("mix_s", ParamType.NUMBER),
        ("code", ParamType.STRING), ("pump", ParamType.BOOL), ("rounds", ParamType.INT)]
    assert recipe.parameter("code").choices == ("A1", "B2")
    phases = {p.name: p for p in _walk(recipe.procedure)}
    assert list(phases) == ["pump_on", "wait_level", "pump_off", "speed", "start", "dwell",
                            "stop"]
    assert phases["wait_level"].until is not None
    assert "elapsed_s" in phases["wait_level"].until.names
    (start,) = phases["start"].actions
    assert isinstance(start, CommandAction) and (start.unit, start.command) == ("mixer", "START")
    (dwell,) = phases["dwell"].actions
    assert isinstance(dwell, WaitAction) and dwell.seconds.names == {"mix_s", "rounds"}
    timeout = phases["stop"].timeout_s
    assert timeout is not None and timeout.constant() == 10
    # where each element stands, for messages at run time
    assert (phases["pump_on"].where.line, phases["pump_on"].where.column) == (24, 13)


def test_load_with_a_line_and_units_given() -> None:
    line = load_line(LINE)
    units = load_units(line)
    recipe = load_recipe(GOOD / "mix-basic.yaml", line=line, units=units)
    assert recipe.line == "mixer"


def test_a_line_of_another_name_is_refused(tmp_path: Path) -> None:
    line = load_line(ROOT / "recipes" / "heat-treatment.yaml")
    with pytest.raises(ConfigError) as info:
        load_recipe(GOOD / "mix-basic.yaml", line=line)
    assert "the recipe is for line 'mixer', but" in str(info.value)


# -- several problems, types of tags the device decides --------------------------------------

HEAD = """smartline-recipe: 1
recipe: r
version: 1
line: mixer
"""


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = _write(tmp_path, HEAD + """parameters:
  a: {default: 5, limits: [10, 1]}
procedure:
  - unit_procedure: u
    operations:
      - operation: o
        phases:
          - phase: p
            actions: [{write: {tank.level: 1}}, {wait_s: "-1"}]
            until: "tank.temp >"
          - phase: p
""")
    issues = _issues(path)
    assert len(issues) == 5, issues
    assert any(":6:27: parameters.a.limits: limits [10, 1]: the low limit must not exceed"
               in i for i in issues)
    assert any(".write.tank.level: tag 'tank.level' is read-only" in i for i in issues)
    assert any(":13:58: " in i and "a wait must not be negative" in i for i in issues)
    assert any(":14:31: " in i and ".until: expected a value after" in i for i in issues)
    assert any(".phases[1].phase: duplicate phase name 'p'" in i for i in issues)


@pytest.mark.parametrize(("until", "ok"), [
    ("hmi.lot == 'A7'", True),           # an OPC UA node used as text
    ("hmi.lot > 3", True),               # ... or as a number
    ("hmi.lot", True),                   # ... or as a condition
    ("hmi.lot + 'x'", False),            # nothing makes text arithmetic a condition
    ("engraver.state == 'Idle' and engraver.alarm == 0", True),
    ("batch.code > 3", False),           # a string tag is not a number
    ("mixer.state == EXECUTE", True),    # PackTags state of the unit
    ("mixer.produced >= 10", True),
    ("mixer.defective >= 10", False),    # the unit gives no defective count
])
def test_expression_types_against_the_line(tmp_path: Path, until: str, ok: bool) -> None:
    path = _write(tmp_path, HEAD + f"""procedure:
  - unit_procedure: u
    operations: [{{operation: o, phases: [{{phase: p, until: "{until}"}}]}}]
""")
    if ok:
        assert load_recipe(path).procedure
    else:
        assert len(_issues(path)) == 1


def test_a_multi_line_expression_error_points_at_its_value(tmp_path: Path) -> None:
    path = _write(tmp_path, HEAD + """procedure:
  - unit_procedure: u
    operations:
      - operation: o
        phases:
          - phase: p
            until: >-
              tank.level > 3
              and tank.lvl < 5
""")
    (issue,) = _issues(path)
    assert ":13:19: procedure[0].operations[0].phases[0].until: unknown name 'tank.lvl'" in issue


def test_writes_to_untyped_and_packtags_tags(tmp_path: Path) -> None:
    path = _write(tmp_path, HEAD + """equipment: {units: [mixer]}
procedure:
  - unit_procedure: u
    unit: mixer
    operations:
      - operation: o
        phases:
          - phase: p
            actions:
              - write: {hmi.message: "'hello'", mixer.command: 2, batch.code: "'B2'"}
""")
    recipe = load_recipe(path)
    (phase,) = _walk(recipe.procedure)
    (write,) = phase.actions
    assert isinstance(write, WriteAction)
    assert [t for t, _ in write.values] == ["hmi.message", "mixer.command", "batch.code"]


def test_a_packtags_command_outside_its_limits_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, HEAD + """procedure:
  - unit_procedure: u
    operations:
      - operation: o
        phases:
          - phase: p
            actions: [{write: {mixer.command: 11}}]
""")
    (issue,) = _issues(path)
    assert "tag 'mixer.command' would refuse 11: value 11 outside limits [0, 10]" in issue


def test_a_bad_program_is_reported_in_its_own_file(tmp_path: Path) -> None:
    (tmp_path / "bad.nc").write_text("G21\nG1 X10 (never closed\nM30\n")
    path = _write(tmp_path, HEAD + """procedure:
  - unit_procedure: u
    operations:
      - operation: o
        phases:
          - phase: p
            actions: [{start_program: {device: engraver, file: bad.nc}}]
""")
    issues = _issues(path)
    assert any(i.startswith(f"{tmp_path / 'bad.nc'}:2:1: gcode: unbalanced '('")
               for i in issues), issues
    assert any("start_program.file: program bad.nc has errors" in i for i in issues)


def test_nested_parallel_blocks_and_branch_units(tmp_path: Path) -> None:
    shutil.copy(GOOD / "mix-basic.yaml", tmp_path / "x.yaml")
    path = _write(tmp_path, HEAD + """equipment: {units: [mixer]}
procedure:
  - parallel:
      - - unit_procedure: a
          operations: [{operation: o, phases: [{phase: p}]}]
      - - parallel:
            - - unit_procedure: b
                unit: mixer
                operations: [{operation: o, phases: [{phase: p}]}]
            - - unit_procedure: c
                operations: [{operation: o, phases: [{phase: p}]}]
""")
    recipe = load_recipe(path)
    (outer,) = recipe.procedure
    assert isinstance(outer, Parallel) and len(outer.branches) == 2
    inner = outer.branches[1][0]
    assert isinstance(inner, Parallel)
    assert [b[0].name for b in inner.branches if isinstance(b[0], UnitProcedure)] == ["b", "c"]


def test_a_parallel_block_needs_two_branches(tmp_path: Path) -> None:
    path = _write(tmp_path, HEAD + """procedure:
  - parallel:
      - - unit_procedure: a
          operations: [{operation: o, phases: [{phase: p}]}]
""")
    (issue,) = _issues(path)
    assert ":7:7: procedure[0].parallel: a parallel block needs at least two branches" in issue


def test_without_a_usable_line_only_the_recipe_itself_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(HEAD.replace("line: mixer", "line: nowhere") + """procedure:
  - unit_procedure: u
    operations: [{operation: o, phases: [{phase: p, until: "any.tag > 1"}]}]
""")
    (issue,) = _issues(path)  # the unknown tag is not reported: the line is unknown
    assert "line: no line file for line 'nowhere'" in issue


# -- finding the line -------------------------------------------------------------------------

def test_find_line_by_name_and_by_line_file(tmp_path: Path) -> None:
    path = _write(tmp_path, HEAD + "procedure: []\n")
    (tmp_path / "other.yaml").write_text("smartline: 1\nline: other\n")
    assert find_line_for(path) == tmp_path / "mixer-line.yaml"
    sub = tmp_path / "sub"
    sub.mkdir()
    moved = sub / "r.yaml"
    moved.write_text(HEAD + "line_file: ../mixer-line.yaml\nprocedure: []\n")
    assert find_line_for(moved) == sub / ".." / "mixer-line.yaml"
    gone = sub / "g.yaml"
    gone.write_text(HEAD + "line_file: nothing.yaml\nprocedure: []\n")
    with pytest.raises(ConfigError, match=r"g.yaml:5:12: line_file: line file 'nothing.yaml' "
                                          r"not found"):
        find_line_for(gone)


# -- parameters -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mix() -> object:
    return load_recipe(GOOD / "mix-basic.yaml")


def test_parameters_default_and_given_as_text(mix: object) -> None:
    from smartline.recipes._model import Recipe

    assert isinstance(mix, Recipe)
    values = validate_parameters(mix, {"level_l": "250.5", "rounds": "4", "pump": "false",
                                       "code": "B2"})
    assert values == {"level_l": 250.5, "speed": 900.0, "mix_s": 5.0, "code": "B2",
                      "pump": False, "rounds": 4}
    assert validate_parameters(mix, {"rounds": 7, "level_l": 10})["rounds"] == 7


def test_every_bad_parameter_is_named(mix: object) -> None:
    from smartline.recipes._model import Recipe

    assert isinstance(mix, Recipe)
    with pytest.raises(RecipeError) as info:
        validate_parameters(mix, {"levl_l": 1, "speed": 2000, "rounds": "2.5", "code": "C3",
                                  "pump": "maybe", "mix_s": "soon"})
    text = str(info.value)
    assert text.startswith("recipe 'mix-basic' version 2: bad parameters: ")
    for part in ("levl_l: unknown parameter (did you mean 'level_l'?)",
                 "speed: 2000 rpm is outside the limits [0, 1500] rpm",
                 "rounds: expected an integer, found string '2.5'",
                 "code: 'C3' is not one of the choices 'A1', 'B2'",
                 "pump: expected true or false, found string 'maybe'",
                 "mix_s: expected a number, found string 'soon'"):
        assert part in text


def test_a_parameter_without_default_must_be_given(tmp_path: Path) -> None:
    path = _write(tmp_path, HEAD + """parameters:
  lot: {type: string}
procedure:
  - unit_procedure: u
    operations: [{operation: o, phases: [{phase: p}]}]
""")
    recipe = load_recipe(path)
    with pytest.raises(RecipeError, match="lot: missing"):
        validate_parameters(recipe, {})
    assert validate_parameters(recipe, {"lot": "L1"}) == {"lot": "L1"}


# -- smartline check --------------------------------------------------------------------------

def test_check_line_file_counts_its_units() -> None:
    summary = check_file(LINE, kinds=ALL_KINDS)
    assert summary.startswith(f"{LINE}: line 'mixer': 3 devices, ")
    assert summary.endswith(", 1 unit")
    assert check_file(ROOT / "recipes" / "heat-treatment.yaml", kinds=ALL_KINDS).endswith(
        "2 tasks")


def test_check_line_file_with_bad_units(tmp_path: Path) -> None:
    text = LINE.read_text().replace('ABORTED: "mixer.fault"', 'ABORTED: "mixer.falt"')
    path = tmp_path / "line.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"mixer\.falt"):
        check_file(path, kinds=ALL_KINDS)
    check_file(path)  # the config layer alone does not read the units


def test_a_recipe_without_its_format_key_is_told_from_a_line_file(tmp_path: Path) -> None:
    path = _write(tmp_path, HEAD.replace(f"{RECIPE_FORMAT_KEY}: 1\n", "") + "procedure: []\n")
    with pytest.raises(ConfigError, match="missing format version: a recipe file starts with"):
        check_file(path, kinds=ALL_KINDS)


# -- more mistakes, each reported once where it stands ----------------------------------------

ONE_PHASE = """procedure:
  - unit_procedure: u
    operations: [{operation: o, phases: [{phase: p, %s}]}]
"""


@pytest.mark.parametrize(("body", "expected"), [
    ("procedure: {a: 1}\n", ["5:12: procedure: expected a list, found a mapping"]),
    ("procedure:\n  - unit_procedure: u\n    operations:\n"
     "      - {operation: o, phases: [{phase: p}]}\n      - {operation: o, phases: [{phase: p}]}\n",
     ["9:21: procedure[0].operations[1].operation: duplicate operation name 'o' in unit "
      "procedure 'u' (first on line 8)"]),
    (ONE_PHASE % "actions: [{write: {pump.on: true}, wait_s: 1}]",
     ["7:88: procedure[0].operations[0].phases[0].actions[0].wait_s: one action per list "
      "item, found write and wait_s"]),
    (ONE_PHASE % "on_failure: {retry: {times: 0, then: go}}",
     ["7:81: procedure[0].operations[0].phases[0].on_failure.retry.times: must be at least 1",
      "7:90: procedure[0].operations[0].phases[0].on_failure.retry.then: expected 'hold' or "
      "'abort', found string 'go'"]),
    (ONE_PHASE % "on_failure: later",
     ["7:65: procedure[0].operations[0].phases[0].on_failure: expected hold, abort or "
      "{retry: "]),
    (ONE_PHASE % "actions: [{command: {unit: mixer, command: state_complete}}]",
     ["7:96: procedure[0].operations[0].phases[0].actions[0].command.command: unknown PackML "
      "command 'state_complete'"]),
    (ONE_PHASE % "untill: 'true', actions: [{wait_s: -1}]",
     ["7:53: procedure[0].operations[0].phases[0].untill: unknown key 'untill' (did you "
      "mean 'until'?)",
      "7:88: procedure[0].operations[0].phases[0].actions[0].wait_s: a wait must not be "
      "negative"]),
    ("identity: [nope, 3, tank.level, tank.level]\n" + ONE_PHASE % "until: 'true'",
     ["5:12: identity[0]: unknown tag 'nope'", "5:18: identity[1]: expected a tag name",
      "5:33: identity[3]: 'tank.level' is listed twice"]),
    ("parameters:\n  and: {default: 1}\n  b: {type: bool, limits: [0, 1]}\n"
     "  d: {type: int, default: 1.5}\n  f: {type: string, default: Z, choices: [A]}\n"
     + ONE_PHASE % "until: 'true'",
     ["6:3: parameters.and: 'and' is a reserved word of the expression language",
      "7:27: parameters.b.limits: limits apply to number and int parameters",
      "8:27: parameters.d.default: expected an integer, found number 1.5",
      "9:30: parameters.f.default: the default 'Z' is not one of the choices 'A'"]),
    ("equipment: {units: [mixr], devices: [plc, plc], tags: [tank.lvl]}\n"
     + ONE_PHASE % "until: 'true'",
     ["5:21: equipment.units[0]: unknown unit 'mixr' (did you mean 'mixer'?)",
      "5:43: equipment.devices[1]: 'plc' is listed twice",
      "5:56: equipment.tags[0]: unknown tag 'tank.lvl' (did you mean 'tank.level'?)"]),
    (ONE_PHASE % "actions: [{write: {batch.code: 'tank.level'}}]",
     ["7:85: procedure[0].operations[0].phases[0].actions[0].write.batch.code: tag "
      "'batch.code' takes a text value: "]),
])
def test_each_mistake_once_where_it_stands(tmp_path: Path, body: str,
                                           expected: list[str]) -> None:
    path = _write(tmp_path, HEAD + body)
    issues = [i.removeprefix(f"{path}:") for i in _issues(path)]
    assert len(issues) == len(expected), issues
    for issue, want in zip(issues, expected, strict=True):
        assert issue.startswith(want), (issue, want)


def test_line_summary_without_units_is_the_config_layers() -> None:
    line = ROOT / "recipes" / "heat-treatment.yaml"  # a line without units
    assert check_file(line, kinds=ALL_KINDS) == check_file(line)
