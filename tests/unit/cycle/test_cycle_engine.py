"""The cycle engine under a virtual clock: deadlines, policies, watchdog, safe outputs."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from smartline.core import CycleOverrunError, Quality, VirtualClock
from smartline.cycle import Engine, ProgramError, TaskSpec, program

MS = 1_000_000


def copy_prog(jit: bool = True):  # type: ignore[no-untyped-def]
    @program(inputs=["a"], outputs=["out1"], jit=jit)
    def prog(now_ns, inputs, outputs, state):  # type: ignore[no-untyped-def]
        outputs[0] = inputs[0] * 2.0

    return prog


def slow_prog(clock: VirtualClock, cost_ns: dict[int, int], outputs_: tuple[str, ...] = ("out1",)):
    """A plain-Python program that 'takes' cost_ns[cycle] of virtual time (default 1 ms)."""
    calls = {"n": 0}

    @program(inputs=["a"], outputs=list(outputs_), jit=False)
    def prog(now_ns, inputs, outputs, state):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        clock.advance_ns(cost_ns.get(calls["n"], 1 * MS))
        outputs[0] = 1.0

    return prog, calls


def test_runs_cycles_at_absolute_deadlines(make_engine, bus, run) -> None:
    deadlines: list[int] = []

    @program(inputs=["a"], outputs=["out1"], jit=False)
    def prog(now_ns, inputs, outputs, state):  # type: ignore[no-untyped-def]
        deadlines.append(now_ns)
        outputs[0] = inputs[0] + 1

    clock = VirtualClock(start_ns=1_000)
    line, eng = make_engine(TaskSpec("t", 10, program=prog), clock=clock)
    bus(line).update(a=3.0)
    st = run(eng, cycles=50)
    assert deadlines == [1_000 + k * 10 * MS for k in range(50)]
    t = st["t"]
    assert (t.cycles, t.overruns, t.skipped, t.state) == (50, 0, 0, "stopped")
    assert t["lateness"].max_ns == 0 and t["lateness"].count == 50
    assert t.io.reads == 50 and t.io.requests == 50 and t.read_requests_planned == 1
    # written once (then unchanged), and driven safe at stop
    assert t.io.writes == 1
    assert bus(line)["out1"] == 0.0
    assert line.image.get("out1").value == 4.0 or bus(line)["out1"] == 0.0


def test_compiled_program_and_output_reaches_device(make_engine, bus, run) -> None:
    values: list[float] = []

    def hook(now_ns: int) -> None:
        values.append(float(bus(line).get("out1", np.nan)))  # type: ignore[arg-type]

    line, eng = make_engine(TaskSpec("t", 5, program=copy_prog()), on_advance=[hook])
    bus(line).update(a=21.0)
    run(eng, cycles=3)
    assert values[1:] == [42.0, 42.0]  # written by cycle 1, seen before cycle 2
    assert eng.tasks["t"].program is not None and eng.tasks["t"].program.jitted


def test_cycles_count_the_fastest_task_and_deadlines_interleave(make_engine, run) -> None:
    order: list[tuple[str, int]] = []

    def rec(name: str):  # type: ignore[no-untyped-def]
        @program(jit=False)
        def p(now_ns, inputs, outputs, state):  # type: ignore[no-untyped-def]
            order.append((name, now_ns // MS))

        return p

    _, eng = make_engine(TaskSpec("slow", 30, program=rec("slow")),
                         TaskSpec("fast", 10, program=rec("fast")))
    st = run(eng, cycles=6)
    assert st["fast"].cycles == 6 and st["slow"].cycles == 2
    assert order == [("slow", 0), ("fast", 0), ("fast", 10), ("fast", 20), ("slow", 30),
                     ("fast", 30), ("fast", 40), ("fast", 50)]


def test_duration_in_virtual_time(make_engine, run) -> None:
    clock = VirtualClock()
    _, eng = make_engine(TaskSpec("t", 10, program=copy_prog(False)), clock=clock)
    st = run(eng, duration_s=1.0)
    assert st["t"].cycles == 100
    assert st.elapsed_s == pytest.approx(0.99)


def test_skip_policy_drops_missed_deadlines(make_engine, run) -> None:
    clock = VirtualClock()
    # cycle 3 takes 25 ms: deadlines 30 and 40 pass, cycle 4 runs at 50
    prog, _ = slow_prog(clock, {3: 25 * MS})
    starts: list[int] = []
    _, eng = make_engine(TaskSpec("t", 10, program=prog), clock=clock,
                         on_advance=[lambda now: starts.append(now // MS)])
    st = run(eng, cycles=6)
    assert starts == [0, 10, 20, 50, 60, 70]
    t = st["t"]
    assert (t.overruns, t.skipped, t.max_overruns_in_row) == (1, 2, 1)
    assert t["cycle"].max_ns == 25 * MS
    assert t["lateness"].max_ns == 0


def test_skip_policy_deadline_equal_to_end_is_not_skipped(make_engine, run) -> None:
    clock = VirtualClock()
    prog, _ = slow_prog(clock, {2: 20 * MS})  # cycle 2 (at 10) ends exactly at 30
    starts: list[int] = []
    _, eng = make_engine(TaskSpec("t", 10, program=prog), clock=clock,
                         on_advance=[lambda now: starts.append(now // MS)])
    st = run(eng, cycles=4)
    assert starts == [0, 10, 30, 40]
    assert (st["t"].overruns, st["t"].skipped) == (1, 1)


def test_catch_up_runs_missed_cycles_back_to_back(make_engine, run) -> None:
    clock = VirtualClock()
    prog, _ = slow_prog(clock, {3: 25 * MS})
    deadlines: list[int] = []
    starts: list[int] = []

    inner = prog.py_func

    @program(inputs=["a"], outputs=["out1"], jit=False)
    def spy(now_ns, inputs, outputs, state):  # type: ignore[no-untyped-def]
        deadlines.append(now_ns // MS)
        starts.append(clock.now_ns() // MS)
        inner(now_ns, inputs, outputs, state)

    _, eng = make_engine(TaskSpec("t", 10, program=spy, overrun="catch_up"), clock=clock)
    st = run(eng, cycles=8)
    assert deadlines == [0, 10, 20, 30, 40, 50, 60, 70]
    # the cycle at 20 ends at 45: 30 and 40 run late, back to back; 50 is on time again
    assert starts == [0, 10, 20, 45, 46, 50, 60, 70]
    t = st["t"]
    assert t.skipped == 0
    assert t.overruns == 2  # the cycle at 20 ends after 30, the one at 30 after 40
    assert t.max_overruns_in_row == 2
    assert t["lateness"].max_ns == 15 * MS


def test_fault_policy_stops_line_outputs_safe_and_raises(make_engine, bus, run, caplog) -> None:
    clock = VirtualClock()
    prog, calls = slow_prog(clock, {4: 12 * MS})
    @program(outputs=["out2"])
    def other(now_ns, inputs, outputs, state):  # type: ignore[no-untyped-def]
        outputs[0] = 7.0

    line, eng = make_engine(TaskSpec("t", 10, program=prog, overrun="fault"),
                            TaskSpec("other", 20, program=other), clock=clock)
    with caplog.at_level(logging.ERROR), pytest.raises(CycleOverrunError, match="task 't'"):
        run(eng, cycles=100)
    assert calls["n"] == 4
    st = eng.stats()
    assert st["t"].state == "faulted" and st["t"].fault is not None
    assert "overrun" in st["t"].fault
    assert st["other"].state == "stopped"
    assert bus(line)["out1"] == 0.0 and bus(line)["out2"] == 5.0  # safe, every task
    assert [a.kind for a in st.alarms] == ["overrun"]
    assert any("overrun alarm" in r.getMessage() for r in caplog.records)
    assert st.faulted


@pytest.mark.parametrize(("sensitivity", "costs", "trips_at"), [
    (1, {3: 11 * MS}, 3),                       # one cycle longer than the time
    (3, {2: 11 * MS, 3: 11 * MS, 4: 11 * MS}, 4),  # three in a row
    (3, {2: 11 * MS, 3: 11 * MS, 5: 11 * MS, 6: 11 * MS}, None),  # never three in a row
    (3, {2: 31 * MS}, 2),                       # a single cycle longer than time × sensitivity
])
def test_watchdog_time_and_sensitivity(make_engine, bus, run, sensitivity, costs,
                                       trips_at) -> None:
    clock = VirtualClock()
    prog, calls = slow_prog(clock, costs)
    line, eng = make_engine(TaskSpec("t", 40, program=prog, watchdog_time_ms=10,
                                     watchdog_sensitivity=sensitivity), clock=clock)
    if trips_at is None:
        st = run(eng, cycles=8)
        assert not st["t"].watchdog_tripped
        return
    with pytest.raises(CycleOverrunError, match="watchdog"):
        run(eng, cycles=8)
    assert calls["n"] == trips_at
    st = eng.stats()
    assert st["t"].watchdog_tripped and st["t"].state == "faulted"
    assert st.alarms[0].kind == "watchdog"
    assert bus(line)["out1"] == 0.0


def test_outputs_go_safe_on_stop_and_without_safe_value_are_kept(make_engine, bus, run,
                                                                  caplog) -> None:
    @program(outputs=["out1", "out2", "flag", "count", "outarr", "nosafe"])
    def prog(now_ns, inputs, outputs, state):  # type: ignore[no-untyped-def]
        outputs[0] = 7.0
        outputs[1] = 8.0
        outputs[2] = 1.0
        outputs[3] = 12.0
        outputs[4:8] = 3.0
        outputs[8] = 9.0

    with caplog.at_level(logging.WARNING):
        line, eng = make_engine(TaskSpec("t", 10, program=prog))
        run(eng, cycles=2)
    assert "nosafe" in caplog.text  # warned: no safe value
    b = bus(line)
    assert b["out1"] == 0.0 and b["out2"] == 5.0 and b["flag"] == 0.0 and b["count"] == 0.0
    assert b["outarr"] == [3.0, 3.0, 3.0, 3.0]  # arrays cannot have a safe value (config)
    assert b["nosafe"] == 9.0


def test_deadband_and_unchanged_outputs_are_not_rewritten(make_engine, bus, run) -> None:
    seq = [1.0, 1.2, 1.4, 1.6, 2.0, 2.0, np.nan]
    k = {"i": 0}

    @program(outputs=["out2"], jit=False)
    def prog(now_ns, inputs, outputs, state):  # type: ignore[no-untyped-def]
        outputs[0] = seq[k["i"]]
        k["i"] += 1

    written: list[float] = []
    line, eng = make_engine(TaskSpec("t", 10, program=prog),
                            on_advance=[lambda now: written.append(bus(line).get("out2"))])
    st = run(eng, cycles=len(seq))
    # deadband 0.5 against the last *written* value: 1.0, then 1.6; 2.0 is within 0.5 of it
    assert st["t"].io.writes == 2
    assert written[1:] == [1.0, 1.0, 1.0, 1.6, 1.6, 1.6]


def test_refused_output_is_counted_and_others_still_written(make_engine, bus, run,
                                                            caplog) -> None:
    @program(outputs=["out1", "out2"])
    def prog(now_ns, inputs, outputs, state):  # type: ignore[no-untyped-def]
        outputs[0] = 3.0
        outputs[1] = 99.0 + (now_ns >= 20_000_000)  # outside limits [0, 10]; changes once

    line, eng = make_engine(TaskSpec("t", 10, program=prog))
    seen: list[object] = []
    eng.on_advance = (lambda now: seen.append(bus(line).get("out1")),)
    with caplog.at_level(logging.WARNING):
        st = run(eng, cycles=4)
    # a refusal is counted (and audited, and alarmed the first time) when the program
    # produces a value to write: 99 at the first cycle, 100 at the third
    assert st["t"].io.writes_refused == 2
    assert seen[1:] == [3.0, 3.0, 3.0]
    assert "outside limits" in caplog.text
    assert bus(line)["out2"] == 5.0  # never written but its safe value, at stop


def test_bad_inputs_are_nan_and_stale_keep_value(make_engine, bus, run) -> None:
    got: list[float] = []

    @program(inputs=["a"], outputs=["out1"], jit=False)
    def prog(now_ns, inputs, outputs, state):  # type: ignore[no-untyped-def]
        got.append(inputs[0])
        outputs[0] = 1.0

    line, eng = make_engine(TaskSpec("t", 10, program=prog))
    bus(line)["a"] = "garbage"  # a text where a number belongs: BAD (decode error)
    run(eng, cycles=2)
    assert all(np.isnan(g) for g in got)
    assert eng.tasks["t"].input_quality[0] == Quality.BAD


def test_program_state_persists_and_is_fresh_per_engine(make_engine, run) -> None:
    import numpy as np

    def init():  # type: ignore[no-untyped-def]
        return (np.zeros(1),)

    @program(outputs=["out1"], init=init)
    def counter(now_ns, inputs, outputs, state):  # type: ignore[no-untyped-def]
        state[0][0] += 1.0
        outputs[0] = state[0][0]

    _, eng = make_engine(TaskSpec("t", 10, program=counter))
    run(eng, cycles=5)
    assert eng.tasks["t"].program_state[0][0] == 5.0  # type: ignore[index]
    assert eng.tasks["t"].outputs[0] == 5.0


def test_program_exception_faults_with_program_error(make_engine, bus, run) -> None:
    @program(inputs=["arr"], outputs=["out1"])
    def bad(now_ns, inputs, outputs, state):  # type: ignore[no-untyped-def]
        if now_ns >= 20_000_000:
            raise ValueError("boom")
        outputs[0] = 1.0

    line, eng = make_engine(TaskSpec("t", 10, program=bad))
    with pytest.raises(ProgramError, match="boom"):
        run(eng, cycles=10)
    st = eng.stats()
    assert st["t"].cycles == 2 and st.alarms[0].kind == "program"
    assert bus(line)["out1"] == 0.0


@pytest.mark.parametrize(("spec_kw", "match"), [
    ({"inputs": ("a", "b")}, "inputs of the task and of program .* differ: the task names b"),
    ({"outputs": ("out2",)}, "the program declares out1 but the task does not"),
])
def test_config_names_must_match_program(make_engine, spec_kw, match) -> None:
    _, eng = make_engine(TaskSpec("t", 10, program=copy_prog(), **spec_kw))
    with pytest.raises(ProgramError, match=match) as ei:
        eng.prepare()
    assert ei.value.task == "t"
    assert ei.value.file is not None and ei.value.file.endswith("test_cycle_engine.py")


def test_undeclared_program_is_bound_by_the_task(make_engine, bus, run) -> None:
    def plain(now_ns, inputs, outputs, state):  # type: ignore[no-untyped-def]
        outputs[0] = inputs[0] + inputs[1]

    from smartline.cycle import Program

    line, eng = make_engine(TaskSpec("t", 10, program=Program(plain, jit=False),
                                     inputs=("a", "b"), outputs=("out1",)))
    bus(line).update(a=1.0, b=2.0)
    seen: list[object] = []
    eng.on_advance = (lambda now: seen.append(bus(line).get("out1")),)
    run(eng, cycles=2)
    assert seen[1] == 3.0
    assert eng.tasks["t"].input_names == ("a", "b")


@pytest.mark.parametrize(("outputs", "match"), [
    (["ro"], "read-only"),
    (["nope"], "unknown tag"),
])
def test_bad_outputs_are_refused_at_prepare(make_engine, outputs, match) -> None:
    @program(outputs=outputs)
    def p(now_ns, inputs, outputs, state):  # type: ignore[no-untyped-def]
        pass

    _, eng = make_engine(TaskSpec("t", 10, program=p))
    with pytest.raises(ProgramError, match=match):
        eng.prepare()


def test_an_output_belongs_to_one_task(make_engine) -> None:
    _, eng = make_engine(TaskSpec("t1", 10, program=copy_prog()),
                         TaskSpec("t2", 20, program=copy_prog()))
    with pytest.raises(ProgramError, match="written by tasks 't1' and 't2'"):
        eng.prepare()


def test_duplicate_task_names_and_bad_period() -> None:
    from smartline.cycle import ProcessImage

    with pytest.raises(ValueError, match="duplicate task"):
        Engine(ProcessImage([]), [TaskSpec("x", 1), TaskSpec("x", 2)])
    with pytest.raises(ValueError, match="period_ms must be > 0"):
        TaskSpec("x", 0)


def test_acquisition_only_task_reads_every_cycle(make_engine, bus, run) -> None:
    line, eng = make_engine(TaskSpec("acq", 100, tags=("a", "far")))
    bus(line).update(a=1.5)
    bus(line, "slow").update(far=2.5)
    st = run(eng, cycles=4)
    assert st["acq"].io.reads == 8  # two devices, each once a cycle
    assert st["acq"].read_requests_planned == 2
    assert line.image.get("far").value == 2.5


def test_stats_json_schema(make_engine, run, tmp_path) -> None:
    import json

    _, eng = make_engine(TaskSpec("t", 10, program=copy_prog(), watchdog_time_ms=10))
    run(eng, cycles=5)
    path = eng.stats(hdr=True).write_json(tmp_path / "s" / "stats.json")
    d = json.loads(path.read_text())
    assert d["schema"] == "smartline.cycle-stats/1"
    assert d["clock"] == "virtual" and d["line"] == "cycle-test"
    t = d["tasks"]["t"]
    assert set(t["timing"]) == {"cycle", "lateness", "inputs", "logic", "outputs"}
    assert set(t["timing"]["cycle"]) == {"count", "min_us", "mean_us", "p50_us", "p99_us",
                                         "p99_9_us", "max_us"}
    assert t["watchdog"] == {"time_ms": 10.0, "sensitivity": 1, "tripped": False}
    assert t["cycles"] == 5 and t["io"]["read_requests_planned"] == 1
    from hdrh.histogram import HdrHistogram

    assert HdrHistogram.decode(t["hdr"]["cycle"]).get_total_count() == 5
    assert "plc" in d["devices"]


def test_stop_before_run_and_run_twice(make_engine, run) -> None:
    _, eng = make_engine(TaskSpec("t", 10, program=copy_prog()))
    eng.stop()
    st = run(eng, cycles=5)
    assert st["t"].cycles == 0 and st["t"].state == "stopped"
    with pytest.raises(RuntimeError, match="runs once"):
        run(eng, cycles=5)
