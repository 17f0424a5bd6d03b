"""The pytest plugin end to end: small test files run by pytester against the tank demo.

One pytester run (one subprocess: the plugin loads through its pytest11 entry point, with
``--strict-markers``) holds every case; the outer tests check which passed and which failed,
and with what message.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[3]
SCENARIO = ROOT / "hil_sim" / "scenarios" / "tank-demo.yaml"

# a level controller: the inlet opens fully below the set point and closes above it
CONTROL = '''\
from smartline.cycle import program

SP = {sp}


@program(inputs=["plc.level"], outputs=["plc.inlet_valve"], jit=False)
def control(now_ns, inputs, outputs, state):
    outputs[0] = 100.0 if inputs[0] < SP else 0.0
'''

LINE = '''\
smartline: 1
line: tank-control
devices:
  plc: {{url: "modbus+tcp://127.0.0.1:15021?unit=1", profile: generic/tank-io,
        points: [level, inlet_valve, pump_fault], timeout_ms: 200}}
tasks:
  control: {{period_ms: 100, program: "{program}:control"}}
'''

# the tank demo with an expectation the level controller breaks (it fills above 0.5 m)
BAD_SCENARIO = SCENARIO.read_text(encoding="utf-8").replace(
    "expect:\n", "expect:\n  - {signal: tank.level_m, stays: {min: 0.0, max: 0.5}}\n"
    "  - {tag: plc.level, reaches: {min: 5.0, max: 6.0}, within: 3s}\n")

CASES = '''
import json
from pathlib import Path

import pytest

from smartline.testing.traces import assert_traces_match, compare_traces, read_trace

SCENARIO = {scenario!r}
HERE = Path(__file__).parent


@pytest.mark.cycle_budget(task="control", overruns=0, cycles=100, p99_ms=1000, max_ms=1000)
def test_budget_within(smartline_line):
    sim = smartline_line("line.yaml", SCENARIO)
    sim.run_for(10)
    assert sim.stats().tasks["control"].cycles == 100
    assert sim.time_s == 10
    assert 0.6 < sim.tags["plc.level"] < 0.9


@pytest.mark.cycle_budget(task="control", cycles=500)
def test_budget_broken(smartline_line):
    smartline_line("line.yaml", SCENARIO).run_for(10)


@pytest.mark.cycle_budget(task="nosuch", overruns=0)
def test_budget_unknown_task(smartline_line):
    smartline_line("line.yaml", SCENARIO).run_for(1)


@pytest.mark.cycle_budget(overruns=0)
def test_budget_without_a_line():
    pass


def test_expectation_fails(smartline_line):
    smartline_line("line.yaml", "bad-scenario.yaml").run_for(5)


def test_expectation_pending_is_not_a_failure(smartline_line):
    sim = smartline_line("line.yaml", SCENARIO)
    sim.run_for(5)    # "reaches ... within 120s" is not decided after 5 s
    text, failed = sim.expectations_report()
    assert not failed and "PENDING point plc.level" in text


def test_failure_shows_expectations(smartline_line):
    sim = smartline_line("line.yaml", SCENARIO, check_expectations=False)
    sim.run_for(2)
    assert sim.tags["plc.level"] > 5, "the test's own assertion"


def test_record_golden(smartline_line, tag_trace):
    sim = smartline_line("line.yaml", SCENARIO)
    tag_trace(sim, ["plc.level", "plc.inlet_valve"], path=HERE / "golden.jsonl")
    sim.run_for(20)


def test_replay_matches_golden(smartline_line, tag_trace):
    sim = smartline_line("line.yaml", SCENARIO)
    rec = tag_trace(sim, ["plc.level", "plc.inlet_valve"])
    sim.run_for(10)
    sim.run_for(10)   # in two steps: the same trace as one run of 20 s
    rec.close(sim.time_ns)
    assert_traces_match(HERE / "golden.jsonl", rec)


def test_modified_program_diverges(smartline_line, tag_trace):
    sim = smartline_line("line_b.yaml", SCENARIO)
    rec = tag_trace(sim, ["plc.level", "plc.inlet_valve"])
    sim.run_for(20)
    rec.close(sim.time_ns)
    diff = compare_traces(HERE / "golden.jsonl", rec)
    (HERE / "diff.json").write_text(json.dumps({{
        "t_ns": diff.first.t_ns, "tag": diff.first.tag, "report": diff.report()}}))
    assert_traces_match(HERE / "golden.jsonl", rec)


def test_tag_trace_of_the_last_line(smartline_line, tag_trace):
    sim = smartline_line("line.yaml", SCENARIO)
    rec = tag_trace()
    sim.run_for(1)
    assert rec.tags == ["plc.inlet_valve", "plc.level", "plc.pump_fault"]
    assert rec.values("plc.inlet_valve")[-1][1:] == (100.0, "GOOD")


@pytest.mark.asyncio
async def test_async_test(smartline_line):
    sim = smartline_line("line.yaml", SCENARIO)
    sim.run_for(2)
    assert sim.tags["plc.inlet_valve"] == 100.0


def test_scenario_real_time(smartline_scenario):
    import time

    runner = smartline_scenario(SCENARIO, virtual=False)
    deadline = time.monotonic() + 10
    while runner.time_ns < 100_000_000 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert runner.time_ns >= 100_000_000


def test_scenario_fixture(smartline_scenario):
    runner = smartline_scenario(SCENARIO)
    url = runner.urls()["plc"]
    (HERE / "url.txt").write_text(url)
    runner.run_for(5_000_000_000)
    assert runner.time_ns == 5_000_000_000
    assert all(r.ok is not False for r in runner.results()[1:])
'''


@pytest.fixture(scope="module")
def store() -> dict[str, tuple[str, Path]]:
    """Holds the one run of CASES for every test of this module."""
    return {}


def _run(pytester: pytest.Pytester, store: dict[str, tuple[str, Path]]) -> tuple[str, Path]:
    """Write the cases and run them once (kept in ``store`` for the module's tests)."""
    if "run" in store:
        return store["run"]
    d = pytester.path
    (d / "ctl.py").write_text(CONTROL.format(sp=0.8), encoding="utf-8")
    (d / "ctl_b.py").write_text(CONTROL.format(sp=0.6), encoding="utf-8")
    (d / "line.yaml").write_text(LINE.format(program="ctl.py"), encoding="utf-8")
    (d / "line_b.yaml").write_text(LINE.format(program="ctl_b.py"), encoding="utf-8")
    (d / "bad-scenario.yaml").write_text(BAD_SCENARIO, encoding="utf-8")
    pytester.makepyfile(test_cases=CASES.format(scenario=str(SCENARIO)))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--strict-markers",
                                           "-p", "no:randomly", "-rA")
    store["run"] = (str(result.stdout), d)
    return store["run"]


def _outcome(out: str, name: str) -> str:
    for line in out.splitlines():
        if line.startswith(("PASSED ", "FAILED ", "ERROR ")) and f"::{name}" in line:
            return line.split()[0]
    raise AssertionError(f"{name} not in the summary:\n{out}")


def _section(out: str, name: str) -> str:
    """The failure section of one test in pytest's output."""
    start = out.index(f"_ {name} _")
    rest = out[start + 1:]
    end = min((i for i in (rest.find("\n____"), rest.find("\n====")) if i >= 0),
              default=len(rest))
    return rest[:end]


@pytest.fixture
def cases(pytester: pytest.Pytester, store: dict[str, tuple[str, Path]]) -> tuple[str, Path]:
    return _run(pytester, store)


def test_budget_marker_passes_and_fails_naming_task_and_figure(
        cases: tuple[str, Path]) -> None:
    out, _ = cases
    assert _outcome(out, "test_budget_within") == "PASSED"
    assert _outcome(out, "test_budget_broken") == "FAILED"
    assert "line tank-control: task control: ran 100 cycles < 500" in _section(
        out, "test_budget_broken")
    assert _outcome(out, "test_budget_unknown_task") == "FAILED"
    assert "no task 'nosuch'; tasks: control" in _section(out, "test_budget_unknown_task")
    assert _outcome(out, "test_budget_without_a_line") == "FAILED"
    assert "the test ran no line" in _section(out, "test_budget_without_a_line")


def test_a_failed_expectation_fails_the_test_and_lists_them(cases: tuple[str, Path]) -> None:
    out, _ = cases
    assert _outcome(out, "test_expectation_fails") == "FAILED"
    sec = _section(out, "test_expectation_fails")
    assert "FAIL signal tank.level_m stays [0, 0.5]" in sec
    assert "left the range at" in sec
    assert "FAIL tag plc.level reaches [5, 6] between 0s and 3s: never" in sec
    assert "PENDING point plc.level reaches [1.1, 1.3]" in sec  # the others, listed too
    assert _outcome(out, "test_expectation_pending_is_not_a_failure") == "PASSED"


def test_a_failing_test_reports_the_expectations(cases: tuple[str, Path]) -> None:
    out, _ = cases
    assert _outcome(out, "test_failure_shows_expectations") == "FAILED"
    sec = _section(out, "test_failure_shows_expectations")
    assert "the test's own assertion" in sec
    assert "smartline scenario tank-demo expectations at 2 s" in sec
    assert "PASS signal tank.level_m stays [0, 1.9]" in sec


def test_record_then_replay_is_equal(cases: tuple[str, Path]) -> None:
    from smartline.testing.traces import read_trace

    out, d = cases
    assert _outcome(out, "test_record_golden") == "PASSED"
    assert _outcome(out, "test_replay_matches_golden") == "PASSED"
    golden = read_trace(d / "golden.jsonl")
    head = json.loads((d / "golden.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert head == {"smartline-trace": 1, "line": "tank-control", "scenario": "tank-demo",
                    "seed": 7, "clock": "virtual", "tags": ["plc.level", "plc.inlet_valve"]}
    assert golden.end_ns == 20_000_000_000
    assert golden.values("plc.inlet_valve")[:2] == [(0, None, "BAD"),
                                                     (100_000_000, 100.0, "GOOD")]


def test_a_modified_program_diverges_at_the_right_time_and_tag(
        cases: tuple[str, Path]) -> None:
    from smartline.testing.traces import read_trace

    out, d = cases
    assert _outcome(out, "test_modified_program_diverges") == "FAILED"
    diff = json.loads((d / "diff.json").read_text(encoding="utf-8"))
    golden = read_trace(d / "golden.jsonl")
    # program b (set point 0.6) closes the inlet in the first cycle that reads level >= 0.6;
    # a record at t shows the image after the cycles due before t: that level and that
    # written valve show in the same sample
    crossing = next(t for t, v, _ in golden.values("plc.level")
                    if isinstance(v, float) and v >= 0.6)
    assert diff["tag"] == "plc.inlet_valve"
    assert diff["t_ns"] == crossing
    sec = _section(out, "test_modified_program_diverges")
    assert (f"traces diverge first at {diff['t_ns'] / 1e9:g} s tag plc.inlet_valve: "
            "100.0 (a) != 0.0 (b)") in sec
    assert "plc.level: differs" in sec


def test_recorder_of_the_last_line_and_an_async_test(cases: tuple[str, Path]) -> None:
    out, _ = cases
    assert _outcome(out, "test_tag_trace_of_the_last_line") == "PASSED"
    assert _outcome(out, "test_async_test") == "PASSED"


def test_scenario_fixture_frees_its_ports(cases: tuple[str, Path]) -> None:
    out, d = cases
    assert _outcome(out, "test_scenario_fixture") == "PASSED"
    assert _outcome(out, "test_scenario_real_time") == "PASSED"
    url = (d / "url.txt").read_text(encoding="utf-8")
    port = int(url.rsplit(":", 1)[1].split("?")[0].split("/")[0])
    with socket.socket() as s:  # stopped at teardown: the port binds again
        s.bind(("127.0.0.1", port))
