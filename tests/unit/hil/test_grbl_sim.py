"""The simulated GRBL controller on its own (no I/O): bytes in, bytes out, virtual time."""

from __future__ import annotations

import math

import pytest

from smartline.core import VirtualClock
from smartline.hil.grbl import (
    BANNER,
    DEFAULT_SETTINGS,
    PLANNER_BLOCKS,
    RX_BUFFER_SIZE,
    GrblController,
)


def make(**settings: float) -> tuple[GrblController, VirtualClock]:
    clock = VirtualClock()
    g = GrblController(clock, settings={int(k[1:]): v for k, v in settings.items()})
    assert g.take_output() == BANNER
    return g, clock


def say(g: GrblController, text: str) -> list[str]:
    g.receive(text.encode())
    return [ln for ln in g.take_output().decode("ascii", "replace").split("\r\n") if ln]


def run(g: GrblController, clock: VirtualClock, seconds: float) -> None:
    clock.advance_ns(int(seconds * 1e9))
    g.service()


def test_the_receive_ring_holds_127_bytes_and_drops_the_rest() -> None:
    g, _ = make()
    burst = "".join(f"G1X{i}F100\n" for i in range(1, 60))  # far more than the planner takes
    say(g, burst)
    assert g.planner_used() == PLANNER_BLOCKS
    assert g.rx_used() == RX_BUFFER_SIZE - 1
    taken = sum(len(f"G1X{i}F100\n") for i in range(1, PLANNER_BLOCKS + 2))  # 15 + the 16th
    assert g.overflow_bytes == len(burst) - taken - (RX_BUFFER_SIZE - 1)


def test_real_time_bytes_bypass_a_full_ring() -> None:
    g, _ = make()
    say(g, "".join(f"G1X{i}F100\n" for i in range(1, 60)))
    out = say(g, "?")
    assert out[0].startswith("<Run|MPos:")


def test_the_planner_frees_blocks_as_motion_completes() -> None:
    g, clock = make()
    out = say(g, "".join(f"G1X{i}F600\n" for i in range(1, 21)))  # 1 mm at 10 mm/s: 0.1 s each
    assert out.count("ok") == PLANNER_BLOCKS  # 15 planned; the 16th waits for a free block
    run(g, clock, 0.1001)
    assert say(g, "").count("ok") >= 1
    assert g.planner_used() == PLANNER_BLOCKS  # the waiting line took the freed block
    run(g, clock, 5.0)
    assert g.state == "Idle" and g.mpos[0] == 20.0
    assert g.lines_executed.count("G1X20F600") == 1


def test_motion_timing_follows_feed_and_overrides() -> None:
    g, clock = make()
    say(g, "G1X100F6000\n")  # 100 mm at 100 mm/s
    run(g, clock, 0.5)
    assert g.state == "Run" and math.isclose(g._planner[0].position()[0], 50.0, abs_tol=1e-6)
    g.receive(bytes([0x92] * 5))  # feed override 100 % - 5 x 10 % = 50 %
    run(g, clock, 0.5)
    assert math.isclose(g._planner[0].position()[0], 75.0, abs_tol=1e-6)
    run(g, clock, 1.0)
    assert g.state == "Idle" and g.mpos[0] == 100.0
    # rapids use the slowest of $110..$112
    say(g, "G0X0\n")
    run(g, clock, 100 / (500 / 60) - 0.01)
    assert g.state == "Run"
    run(g, clock, 0.02)
    assert g.state == "Idle"


def test_arcs_take_their_length() -> None:
    g, clock = make()
    say(g, "G1X0Y0F600\nG2X20Y0I10J0\n")  # a half circle of radius 10: 31.4 mm, 3.14 s
    run(g, clock, 3.0)
    assert g.state == "Run"
    run(g, clock, 0.2)
    assert g.state == "Idle" and g.mpos[:2] == [20.0, 0.0]
    assert say(g, "G2X5Y5I1J1\n") == ["error:33"]  # the end is not on the circle
    assert say(g, "G2X5Y5\n") == ["error:35"]


def test_dwell_waits_before_its_ok() -> None:
    g, clock = make()
    assert say(g, "G4P0.5\n") == []
    run(g, clock, 0.4)
    assert say(g, "") == []
    run(g, clock, 0.2)
    assert g.take_output() == b"ok\r\n"


def test_settings_defaults_and_writes() -> None:
    g, _ = make()
    lines = say(g, "$$\n")
    assert lines[-1] == "ok" and len(lines) == len(DEFAULT_SETTINGS) + 1
    assert "$110=500.000" in lines and "$10=1" in lines
    assert say(g, "$110=750.5\n") == ["ok"] and g.settings[110] == 750.5
    assert say(g, "$999=1\n") == ["error:3"]
    assert say(g, "$110=-1\n") == ["error:4"]
    assert say(g, "$20=1\n") == ["error:10"]  # soft limits need homing
    say(g, "G1X10F60\n")
    assert say(g, "$110=1\n") == ["error:8"]  # not while moving
    assert say(g, "$I\n")[-1] == "ok"


def test_errors_of_the_parser() -> None:
    g, _ = make()
    assert say(g, "X" * 90 + "\n") == ["error:11"]
    assert say(g, "G1X1\n") == ["error:22"]  # no feed yet
    assert say(g, "1G0\n") == ["error:1"]
    assert say(g, "G0X1.2.3\n") == ["error:2"]
    assert say(g, "G0G1X1\n") == ["error:21"]
    assert say(g, "G0X1X2\n") == ["error:25"]
    assert say(g, "G7X1\n") == ["error:20"]
    assert say(g, "(comment only)\n") == ["ok"]
    assert say(g, "\n") == ["ok"]
    assert say(g, "g0 x1 (lower case) ; and a comment\n") == ["ok"]


def test_status_reports_follow_dollar_ten_and_refresh_counters() -> None:
    g, _ = make()
    first = say(g, "?")[0]
    assert first == "<Idle|MPos:0.000,0.000,0.000|FS:0,0|WCO:0.000,0.000,0.000>"
    assert "Ov:100,100,100" in say(g, "?")[0]
    say(g, "$10=2\n")
    st = say(g, "?")[0]
    assert st.startswith("<Idle|WPos:") and "|Bf:15,128|" in st
    say(g, "G92X5\n")
    assert "WCO:-5.000,0.000,0.000" in say(g, "?")[0]  # a change is reported at once
    say(g, "$13=1\n")
    assert "WPos:0.1969," in say(g, "?")[0]  # inches, four decimals


def test_feed_hold_decelerates_then_holds_and_resumes() -> None:
    g, clock = make()
    say(g, "G1X100F6000\n")
    run(g, clock, 0.2)
    g.receive(b"!")
    assert say(g, "?")[0].startswith("<Hold:1|")
    run(g, clock, 0.06)
    assert say(g, "?")[0].startswith("<Hold:0|")
    x = g.mpos[0]
    run(g, clock, 1.0)
    assert g.mpos[0] == x
    g.receive(b"~")
    assert g.state == "Run"
    run(g, clock, 2.0)
    assert g.mpos[0] == 100.0


def test_reset_in_motion_raises_alarm_3_and_the_banner() -> None:
    g, clock = make()
    say(g, "G1X100F6000\n")
    run(g, clock, 0.2)
    out = g.take_output() + (g.receive(b"\x18") or b"") + g.take_output()
    assert b"ALARM:3" in out and BANNER in out and g.state == "Alarm"
    assert say(g, "G0X0\n") == ["error:9"]
    assert say(g, "$X\n") == ["[MSG:Caution: Unlocked]", "ok"] and g.state == "Idle"
    assert 0 < g.mpos[0] < 100  # position kept where the reset stopped it


def test_soft_limits_raise_a_critical_alarm() -> None:
    g, _clock = make(s22=1)
    say(g, "$X\n")
    assert say(g, "$20=1\n") == ["ok"]
    assert say(g, "G0X-10\n") == ["ok"]
    assert say(g, "G0X5\n") == ["ALARM:2", "[MSG:Reset to continue]"]
    assert say(g, "?G0X-1\n") == []  # nothing until a reset, not even reports
    g.receive(b"\x18")
    out = g.take_output()
    assert BANNER in out and g.state == "Alarm"


def test_homing_and_check_mode() -> None:
    g, clock = make()
    assert say(g, "$H\n") == ["error:5"]
    say(g, "$22=1\n")
    say(g, "G0X-5\n")
    run(g, clock, 1.0)
    assert say(g, "$H\n") == []
    assert say(g, "?") == []  # no reports while homing
    run(g, clock, 0.3)
    assert g.take_output() == b"ok\r\n" and g.mpos == [0.0, 0.0, 0.0]
    assert say(g, "$C\n") == ["[MSG:Enabled]", "ok"]
    assert say(g, "G1X-10F100\nG4P100\n") == ["ok", "ok"]  # parsed, not run
    assert g.mpos == [0.0, 0.0, 0.0] and g.planner_used() == 0
    out = say(g, "$C\n")
    assert out[:2] == ["[MSG:Disabled]", "ok"] and "Grbl 1.1h ['$' for help]" in out


def test_program_pause_waits_for_cycle_start() -> None:
    g, _clock = make()
    assert say(g, "M0\n") == []
    assert g.state == "Hold"
    g.receive(b"~")
    assert g.take_output() == b"ok\r\n" and g.state == "Idle"


@pytest.mark.parametrize("faulty", ["silent", "garbage"])
def test_faults(faulty: str) -> None:
    g, _ = make()
    setattr(g.faults, faulty, True)
    out = say(g, "?G0X1\n")
    assert out == [] if faulty == "silent" else all("garbage" in ln for ln in out)


def test_an_alarm_injected_at_a_line() -> None:
    g, _ = make()
    g.faults.alarm_at_line, g.faults.alarm_code = 3, 5
    assert say(g, "G21\nG0X1\nG0X2\nG0X3\n") == ["ok", "ok", "ALARM:5", "error:9",
                                                      "error:9"]
    assert g.state == "Alarm" and g.alarm == 5 and not g.critical
