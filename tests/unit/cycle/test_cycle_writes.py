"""Writes of the engine: audited through LineIO, refusals alarmed, the written value stored,
and the audit file itself (opened up front, valid JSON, fsync'd off the loop)."""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from smartline.core import MonotonicClock, Quality, Reason, VirtualClock
from smartline.cycle import Engine, JsonlAudit, RealtimeOptions, TaskSpec, program
from smartline.line import Line

NO_RT = RealtimeOptions(priority=None, timer_slack_ns=None, switch_interval_s=None)


class ListAudit:
    def __init__(self) -> None:
        self.entries: list[dict[str, object]] = []

    def record(self, entry: object) -> None:
        self.entries.append(dict(entry))  # type: ignore[call-overload]


def outcomes(audit: ListAudit, tag: str) -> list[tuple[object, object]]:
    return [(e["source"], e["outcome"]) for e in audit.entries if e["tag"] == tag]


def test_program_writes_are_audited_on_change_of_outcome_and_safe_writes_always(
        make_engine, bus, run) -> None:
    @program(inputs=["a"], outputs=["out1", "out2"], jit=False)
    def prog(now_ns, inputs, outputs, state):  # type: ignore[no-untyped-def]
        outputs[0] = now_ns / 1e6  # changes every cycle: written every cycle
        outputs[1] = 20.0 if inputs[0] > 0 else 3.0  # out of limits [0, 10] while a > 0

    line, eng = make_engine(TaskSpec("t", 10, program=prog))
    audit = ListAudit()
    line.io.audit = audit
    alarms: list[object] = []
    eng.on_alarm = alarms.append
    bus(line)["a"] = 1.0
    st = run(eng, cycles=30)
    t = st["t"]
    # out2's value (20) never changes: refused once, when the program first produced it
    assert t.io.writes == 30 and t.io.writes_refused == 1
    # 30 successful writes of out1: one entry (the first); then the safe write at stop
    assert outcomes(audit, "out1") == [("task t", "ok"), ("safe (task t)", "ok")]
    # out2 refused: audited once, one io alarm
    assert outcomes(audit, "out2") == [("task t", "refused"), ("safe (task t)", "ok")]
    refused = next(e for e in audit.entries if e["outcome"] == "refused")
    assert refused["value"] == 20.0 and "limits" in str(refused["detail"])
    io_alarms = [a for a in alarms if a.kind == "io"]  # type: ignore[attr-defined]
    assert len(io_alarms) == 1 and "out2" in io_alarms[0].message  # type: ignore[attr-defined]


def _runs(values: list[float]) -> list[float]:
    """The values of a sequence where they change (the writes the loop sends)."""
    return [v for i, v in enumerate(values) if i == 0 or v != values[i - 1]]


def test_discrete_program_outputs_are_audited_on_every_write_with_old_and_new(
        tmp_path: Path, line_file, run) -> None:
    p = tmp_path / "audited.yaml"
    extra = '  level: {device: plc, address: "level", access: rw, safe: 0, audit: changes}\n'
    p.write_text(line_file.read_text().replace("tasks:\n", extra + "tasks:\n"),
                 encoding="utf-8")
    clock = VirtualClock()
    line = Line.load(p, clock=clock)
    assert [line.config.tags[t].audit_each_write for t in ("flag", "count", "out1", "level")] \
        == [True, True, False, True]

    def flag(k: int) -> float:
        return 1.0 if (k // 3) % 2 else 0.0  # a command: toggles every 3 cycles

    def count(k: int) -> float:
        return float(k // 5)  # a step number

    def level(k: int) -> float:
        return 0.5 * (k // 10)  # an analog setpoint, declared audit: changes

    cycles = [0]

    @program(outputs=["flag", "count", "out1", "level"], jit=False)
    def prog(now_ns, inputs, outputs, state):  # type: ignore[no-untyped-def]
        k = cycles[0]
        cycles[0] += 1
        outputs[0], outputs[1], outputs[3] = flag(k), count(k), level(k)
        outputs[2] = float(k)  # analog, moves every cycle: audited when the outcome changes

    audit = ListAudit()
    line.io.audit = audit
    eng = Engine(line.image, [TaskSpec("t", 10, program=prog)], io=line.io, clock=clock,
                 realtime=NO_RT)
    run(eng, cycles=30)

    def written(tag: str) -> list[dict[str, object]]:
        return [e for e in audit.entries if e["tag"] == tag and e["source"] == "task t"]

    for tag, f in (("flag", flag), ("count", count), ("level", level)):
        entries = written(tag)
        assert [e["value"] for e in entries] == _runs([f(k) for k in range(30)]), tag
        assert {e["outcome"] for e in entries} == {"ok"}
        # each entry names the value it replaced: the one the previous write stored
        assert [e["old"] for e in entries[1:]] == [e["value"] for e in entries[:-1]], tag
    assert [e["outcome"] for e in written("out1")] == ["ok"]  # 30 writes, one entry


def test_failed_program_writes_are_audited_once_per_failure_streak(make_engine, bus,
                                                                    run) -> None:
    @program(outputs=["out1"], jit=False)
    def prog(now_ns, inputs, outputs, state):  # type: ignore[no-untyped-def]
        outputs[0] = now_ns / 1e6

    line, eng = make_engine(TaskSpec("t", 10, program=prog))
    audit = ListAudit()
    line.io.audit = audit
    drv = line.io.driver("plc")
    real_write = drv.write
    calls = {"n": 0}

    async def flaky(items):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if 5 <= calls["n"] < 15:
            raise RuntimeError("link down")
        await real_write(items)

    drv.write = flaky  # type: ignore[method-assign]
    st = run(eng, cycles=30)
    assert st["t"].io.write_errors == 10
    assert [o for _, o in outcomes(audit, "out1")] == ["ok", "failed", "ok", "ok"]
    failed = next(e for e in audit.entries if e["outcome"] == "failed")
    assert "link down" in str(failed["detail"])


def test_confirmed_output_stores_the_value_actually_written(tmp_path: Path, line_file,
                                                            run) -> None:
    p = tmp_path / "scaled.yaml"
    scaled = '  scaled: {device: plc, address: "scaled:int16", access: rw, scale: {gain: 0.5}}\n'
    text = line_file.read_text().replace("tasks:\n", scaled + "tasks:\n")
    p.write_text(text, encoding="utf-8")
    clock = VirtualClock()
    line = Line.load(p, clock=clock)

    @program(outputs=["scaled"], jit=False)
    def prog(now_ns, inputs, outputs, state):  # type: ignore[no-untyped-def]
        outputs[0] = 1.3  # raw 2.6 → 3 on the wire → 1.5 engineering

    seen: list[object] = []

    @program(inputs=["scaled"], jit=False)
    def watch(now_ns, inputs, outputs, state):  # type: ignore[no-untyped-def]
        seen.append(float(inputs[0]))

    eng = Engine(line.image, [TaskSpec("t", 10, program=prog),
                              TaskSpec("w", 10, program=watch)],
                 io=line.io, clock=clock, realtime=NO_RT)
    run(eng, cycles=5)
    assert line.io.driver("plc").bus.values["scaled"] == 3  # type: ignore[attr-defined]
    assert 1.5 in seen and 1.3 not in seen
    assert line.image.get("scaled").value == 1.5


def test_driver_bug_on_read_is_logged_rate_limited(make_engine, run, caplog) -> None:
    @program(inputs=["a"], outputs=["out1"], jit=False)
    def prog(now_ns, inputs, outputs, state):  # type: ignore[no-untyped-def]
        outputs[0] = 1.0

    line, eng = make_engine(TaskSpec("t", 10, program=prog))
    drv = line.io.driver("plc")
    real_read = drv.read
    calls = {"n": 0}

    async def broken(plan):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:  # the engine's priming read
            return await real_read(plan)
        raise RuntimeError("driver bug")

    drv.read = broken  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, logger="smartline.cycle._engine"):
        st = run(eng, cycles=50)
    assert st["t"].io.failed_reads >= 50
    hits = [r for r in caplog.records if "driver bug" in r.getMessage()]
    assert len(hits) == 1 and hits[0].exc_info is not None
    assert line.image.get("a").reason is Reason.LINK_BROKEN


def test_stale_marking_keeps_the_reason_a_down_device_gives(make_engine) -> None:
    line, _ = make_engine()
    img = line.image
    slots = img.slots(["a"])
    img.mark(slots, Quality.BAD, Reason.NOT_CONNECTED)
    img.mark(slots, Quality.STALE, Reason.DEADLINE)
    assert img.get("a").quality is Quality.BAD and img.get("a").reason is Reason.NOT_CONNECTED


def test_endless_program_does_not_hang_the_stop(make_engine, run) -> None:
    release = threading.Event()
    entered = threading.Event()

    @program(outputs=["out1"], jit=False)
    def loops(now_ns, inputs, outputs, state):  # type: ignore[no-untyped-def]
        outputs[0] = 1.0
        entered.set()
        while not release.is_set():  # an endless loop until the test ends
            time.sleep(0.001)

    line, eng = make_engine(TaskSpec("t", 10, program=loops), clock=MonotonicClock())
    result: dict[str, object] = {}

    def go() -> None:
        try:
            result["stats"] = run(eng, duration_s=0.3)
        except BaseException as exc:
            result["error"] = exc

    runner = threading.Thread(target=go, daemon=True)
    try:
        runner.start()
        runner.join(15)
        assert not runner.is_alive(), "Engine.run hung on a looping program"
        assert entered.is_set()
        assert any(a.kind == "watchdog" and "tick thread did not stop" in a.message
                   for a in eng.alarms)
        assert line.io.driver("plc").bus.values["out1"] == 0.0  # still driven safe
    finally:
        release.set()
        runner.join(5)


# -- the audit file --------------------------------------------------------------------

def test_jsonl_audit_opens_its_file_up_front(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OSError):
        JsonlAudit(blocker / "audit.jsonl")  # parent is a file: fails before any write
    a = JsonlAudit(tmp_path / "deep" / "dir" / "audit.jsonl")  # directories are created
    try:
        assert (tmp_path / "deep" / "dir" / "audit.jsonl").exists()
    finally:
        a.close()


def test_jsonl_audit_writes_valid_json_off_the_caller(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    a = JsonlAudit(path)
    a.record({"tag": "x", "value": math.nan, "raw": (1.0, math.inf), "n": np.float64(2.5)})
    a.record({"tag": "y", "value": -math.inf})
    a.flush()
    lines = path.read_text().splitlines()
    rows = [json.loads(x, parse_constant=lambda c: pytest.fail(f"not JSON: {c}"))
            for x in lines]
    chain = {k: rows[0].pop(k) for k in ("prev", "hash")}
    assert rows[0] == {"tag": "x", "value": "nan", "raw": [1.0, "inf"], "n": 2.5}
    assert chain["prev"] == "0" * 64 and rows[1]["prev"] == chain["hash"]
    assert rows[1]["value"] == "-inf"
    a.close()
    a.close()  # idempotent


async def test_line_write_is_audited_and_on_disk_when_it_returns(tmp_path: Path,
                                                                  line_file) -> None:
    path = tmp_path / "audit.jsonl"
    line = Line.load(line_file, audit=JsonlAudit(path))
    async with line:
        await line.write({"out1": 2.0})
        rows = [json.loads(x) for x in path.read_text().splitlines()]  # on disk already
    assert [(r["tag"], r["outcome"], r["source"]) for r in rows] == [("out1", "ok", "user")]
