"""CNC block: part count = elapsed / cycle time, the pocket path, wear → alarms, states."""

from __future__ import annotations

import pytest

from smartline.hil.blocks import BlockBank, CncAlarm, CncExecution, make_bank
from smartline.hil.blocks.cnc import cnc_timing

# 2 s handling + 4 laps of a 100 × 60 mm rectangle (320 mm) at 20 mm/s = 66 s a part
SPEC = {"handling_s": 2.0, "width_mm": 100.0, "height_mm": 60.0, "depth_mm": 4.0,
        "step_down_mm": 1.0, "feed_mm_min": 1200.0}


def run(bank: BlockBank, seconds: float, dt_s: float) -> None:
    steps = int(seconds / dt_s + 1e-9)
    for _ in range(steps):
        bank.step(dt_s)
    if seconds - steps * dt_s > 1e-12:
        bank.step(seconds - steps * dt_s)


def start(bank: BlockBank, dt_s: float = 0.01) -> None:
    bank.set_input("cycle_start", None, True)
    bank.step(dt_s)
    bank.set_input("cycle_start", None, False)
    bank.step(1e-6)


def test_cycle_time_and_part_count_in_auto_cycle() -> None:
    results = []
    for dt in (0.001, 0.1, 0.7):
        bank = make_bank("cnc", 2, {**SPEC, "tool_life_s": 1e6})
        assert bank.output("cycle_time_s").tolist() == [66.0, 66.0]
        assert cnc_timing(bank)[1] == [64.0, 64.0]
        bank.set_input("auto_cycle", None, True)
        bank.set_input("feed_override_pct", 1, 200.0)  # cutting at twice the feed: 34 s
        bank.set_input("cycle_start", None, True)
        run(bank, 700.0 if dt > 0.001 else 140.0, dt)
        results.append(bank)
        seconds = bank.time_s
        assert bank.output("part_count").tolist() == [int(seconds // 66), int(seconds // 34)]
        assert bank.output("execution").tolist() == [CncExecution.ACTIVE] * 2
    # the same program position whatever the step
    a, b = results[1], results[2]
    for name in ("x_mm", "y_mm", "z_mm", "cycle_elapsed_s", "cutting_time_s"):
        assert a.output(name).tolist() == pytest.approx(b.output(name).tolist(), rel=1e-9,
                                                        abs=1e-9), name


def test_axes_follow_the_pocket_path() -> None:
    bank = make_bank("cnc", 1, SPEC)
    assert bank.output("z_mm")[0] == 5.0  # safe Z at rest
    bank.set_input("cycle_start", 0, True)
    run(bank, 1.0, 0.1)
    assert (bank.output("x_mm")[0], bank.output("z_mm")[0]) == (0.0, 5.0)  # part change
    assert not bank.output("cutting")[0]
    run(bank, 5.0, 0.1)  # 4 s into pass 1: 80 mm along X
    assert [bank.output(a)[0] for a in ("x_mm", "y_mm", "z_mm")] == pytest.approx(
        [80.0, 0.0, -1.0])
    assert bank.output("cutting")[0]
    run(bank, 38.0, 0.1)  # 10 s into pass 3, 200 mm along: the top edge, going back
    assert [bank.output(a)[0] for a in ("x_mm", "y_mm", "z_mm")] == pytest.approx(
        [60.0, 60.0, -3.0])
    run(bank, 30.0, 0.1)  # done at 66 s: no auto cycle
    assert bank.output("execution")[0] == CncExecution.COMPLETED
    assert bank.output("part_count")[0] == 1
    assert bank.output("z_mm")[0] == 5.0 and bank.output("spindle_speed_rpm")[0] == 0.0


def test_spindle_ramps_and_feed_hold_freezes_the_program() -> None:
    bank = make_bank("cnc", 1, {**SPEC, "spindle_rpm": 8000.0, "spindle_accel_rpm_s": 4000.0})
    start(bank)
    run(bank, 0.99, 0.01)
    assert bank.output("spindle_speed_rpm")[0] == pytest.approx(4000.0)
    run(bank, 5.0, 0.01)
    x = float(bank.output("x_mm")[0])
    assert x == pytest.approx(80.0)
    assert bank.output("spindle_load_pct")[0] == pytest.approx(40.0, rel=0.05)
    bank.set_input("feed_hold", 0, True)
    run(bank, 5.0, 0.01)
    assert bank.output("execution")[0] == CncExecution.FEED_HOLD
    assert bank.output("x_mm")[0] == x and bank.output("spindle_speed_rpm")[0] == 8000.0
    assert bank.output("spindle_load_pct")[0] == 5.0
    bank.set_input("spindle_override_pct", 0, 50.0)
    run(bank, 2.0, 0.01)
    assert bank.output("spindle_speed_rpm")[0] == pytest.approx(4000.0)
    bank.set_input("feed_hold", 0, False)
    bank.step(0.5)
    assert bank.output("execution")[0] == CncExecution.ACTIVE
    assert bank.output("x_mm")[0] == pytest.approx(x + 10.0)


def test_tool_wear_raises_the_worn_alarm_and_blocks_the_next_cycle() -> None:
    bank = make_bank("cnc", 1, {**SPEC, "tool_life_s": 100.0})
    bank.set_input("auto_cycle", 0, True)
    start(bank, 0.5)
    run(bank, 99.0, 0.5)  # cutting time 64 + 33 s < 100 s
    assert bank.output("alarm")[0] == CncAlarm.NONE
    run(bank, 5.0, 0.5)  # the life runs out 36 s into the second part's cutting
    assert bank.output("alarm")[0] == CncAlarm.TOOL_WORN and bank.output("alarm_active")[0]
    assert bank.output("tool_wear_pct")[0] >= 100.0
    assert bank.output("execution")[0] == CncExecution.ACTIVE  # the part is finished first
    run(bank, 40.0, 0.5)
    assert bank.output("execution")[0] == CncExecution.COMPLETED
    assert bank.output("part_count")[0] == 2
    start(bank)
    assert bank.output("execution")[0] == CncExecution.COMPLETED  # refused: tool worn
    bank.event("tool_change", 0)
    assert bank.output("alarm")[0] == 0 and bank.output("tool_wear_pct")[0] == 0.0
    start(bank)
    assert bank.output("execution")[0] == CncExecution.ACTIVE


def test_wear_raises_the_load_until_the_spindle_overloads() -> None:
    # load = 40 % × (1 + 4 × wear) passes 120 % at half the tool life (50 s of cutting)
    bank = make_bank("cnc", 1, {**SPEC, "tool_life_s": 100.0, "wear_load_gain": 4.0,
                                "handling_s": 0.0})
    start(bank, 0.1)
    run(bank, 49.8, 0.1)
    assert bank.output("spindle_load_pct")[0] == pytest.approx(40 * (1 + 4 * 0.499), rel=1e-6)
    assert bank.output("alarm")[0] == 0
    run(bank, 0.3, 0.1)
    assert bank.output("alarm")[0] == CncAlarm.SPINDLE_OVERLOAD
    assert bank.output("execution")[0] == CncExecution.STOPPED
    start(bank)
    assert bank.output("execution")[0] == CncExecution.STOPPED  # refused while in alarm
    bank.set_input("reset", 0, True)
    bank.step(0.1)
    assert bank.output("execution")[0] == CncExecution.READY
    assert bank.output("alarm")[0] == 0 and bank.output("progress_pct")[0] == 0.0


def test_stop_resume_tool_break_and_e_stop() -> None:
    bank = make_bank("cnc", 2, SPEC)
    start(bank)
    run(bank, 10.0, 0.1)
    bank.set_input("stop", 0, True)
    bank.step(0.1)
    assert bank.output("execution")[0] == CncExecution.STOPPED
    progress = float(bank.output("progress_pct")[0])
    run(bank, 5.0, 0.1)
    assert bank.output("progress_pct")[0] == progress
    bank.set_input("stop", 0, False)
    start(bank, 0.1)
    assert bank.output("execution")[0] == CncExecution.ACTIVE
    assert bank.output("progress_pct")[0] > progress  # resumed, not restarted
    bank.event("tool_break", 0)
    bank.event("e_stop", 1)
    assert bank.output("alarm").tolist() == [CncAlarm.TOOL_BROKEN, CncAlarm.EMERGENCY_STOP]
    assert bank.output("execution").tolist() == [CncExecution.STOPPED] * 2
    assert bank.output("spindle_speed_rpm")[1] == 0.0
    bank.set_input("reset", None, True)
    bank.step(0.1)
    assert bank.output("alarm").tolist() == [CncAlarm.TOOL_BROKEN, 0]  # broken until changed
    bank.event("tool_change", 0)
    assert bank.output("alarm").tolist() == [0, 0]
