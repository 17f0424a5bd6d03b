"""Motor/drive block: ramps against accel × t, current, I²t trip time, stall, power loss."""

from __future__ import annotations

import math

import pytest

from smartline.hil.blocks import BlockBank, DriveFault, make_bank


def run(bank: BlockBank, seconds: float, dt_s: float) -> None:
    steps = int(seconds / dt_s + 1e-9)
    for _ in range(steps):
        bank.step(dt_s)
    if seconds - steps * dt_s > 1e-12:
        bank.step(seconds - steps * dt_s)


@pytest.mark.parametrize("dt", [0.001, 0.1])
def test_ramp_reaches_the_reference_at_accel_times_t(dt: float) -> None:
    bank = make_bank("motor", 1, {"accel_s": 5.0, "decel_s": 10.0, "rated_hz": 50.0,
                                  "rated_rpm": 1500.0})
    bank.set_input("run", 0, True)
    bank.set_input("ref_hz", 0, 40.0)
    run(bank, 2.0, dt)
    assert bank.output("speed_hz")[0] == pytest.approx(20.0, rel=1e-9)  # 10 Hz/s × 2 s
    assert bank.output("speed_rpm")[0] == pytest.approx(600.0, rel=1e-9)
    assert bank.output("running")[0] and not bank.output("at_speed")[0]
    run(bank, 2.0, dt)
    assert bank.output("speed_hz")[0] == pytest.approx(40.0)
    assert bank.output("at_speed")[0]
    assert bank.output("status_word")[0] == 1 | 2 | 4 | 256
    bank.set_input("run", 0, False)  # ramp stop at the decel rate, 5 Hz/s
    run(bank, 3.0, dt)
    assert bank.output("speed_hz")[0] == pytest.approx(25.0, rel=1e-9)
    assert not bank.output("running")[0]
    run(bank, 5.0, dt)
    assert bank.output("speed_hz")[0] == 0.0 and bank.output("current_a")[0] == 0.0


def test_reverse_reference_limit_and_rpm_reference() -> None:
    bank = make_bank("motor", 1, {"accel_s": 0.0, "decel_s": 0.0, "max_hz": 55.0,
                                  "rated_rpm": 1500.0})
    bank.set_input("run", 0, True)
    bank.set_input("ref_hz", 0, -80.0)
    bank.step(0.01)
    assert bank.output("speed_hz")[0] == -55.0
    bank.set_input("ref_rpm", 0, 900.0)
    bank.step(0.01)
    assert bank.output("speed_hz")[0] == pytest.approx(30.0)
    assert bank.output("speed_rpm")[0] == pytest.approx(900.0)


def test_current_follows_the_load_torque() -> None:
    bank = make_bank("motor", 3, {"accel_s": 0.0, "friction_pct": 0.0, "rated_current_a": 12.0,
                                  "no_load_current_pct": 40.0})
    bank.set_input("run", None, True)
    bank.set_input("ref_hz", None, 50.0)
    bank.input("load_pct")[:] = [0.0, 100.0, 50.0]
    bank.step(0.01)
    cur = bank.output("current_a")
    assert cur[0] == pytest.approx(0.4 * 12.0)
    assert cur[1] == pytest.approx(12.0)
    assert cur[2] == pytest.approx(12.0 * math.sqrt(0.16 + 0.84 * 0.25))
    assert bank.output("torque_pct").tolist() == [0.0, 100.0, 50.0]


def test_trip_time_at_150_pct_load_matches_the_thermal_model() -> None:
    tau, m, limit = 120.0, 0.35, 1.15
    bank = make_bank("motor", 1, {"accel_s": 0.0, "friction_pct": 0.0, "thermal_tau_s": tau,
                                  "no_load_current_pct": 100 * m, "overload_pct": 100 * limit,
                                  "current_limit_pct": 200.0})
    bank.set_input("run", 0, True)
    bank.set_input("ref_hz", 0, 50.0)
    bank.set_input("load_pct", 0, 150.0)
    x2 = m * m + (1 - m * m) * 1.5**2
    t_trip = -tau * math.log(1 - limit**2 / x2)
    dt = 0.01
    t = 0.0
    while not bank.output("fault")[0] and t < 10 * tau:
        bank.step(dt)
        t += dt
    assert t == pytest.approx(t_trip, abs=dt + 1e-9)
    assert bank.output("fault_code")[0] == DriveFault.MOTOR_OVERLOAD
    assert bank.output("status_word")[0] == 1 | 8
    assert not bank.output("running")[0] and bank.output("current_a")[0] == 0.0
    # a reset is refused until the motor has cooled to 80 % of the trip level
    bank.set_input("reset", 0, True)
    bank.step(dt)
    assert bank.output("fault")[0]
    bank.set_input("reset", 0, False)
    run(bank, tau * math.log(1 / 0.8) + 1.0, 0.5)
    bank.set_input("reset", 0, True)
    bank.step(dt)
    assert not bank.output("fault")[0] and bank.output("fault_code")[0] == 0
    assert bank.output("running")[0]


def test_load_beyond_the_current_limit_stalls_and_trips() -> None:
    bank = make_bank("motor", 1, {"accel_s": 0.0, "decel_s": 5.0, "stall_s": 3.0,
                                  "thermal_tau_s": 1e5})
    bank.set_input("run", 0, True)
    bank.set_input("ref_hz", 0, 50.0)
    bank.step(0.01)
    bank.set_input("load_pct", 0, 400.0)
    run(bank, 2.0, 0.01)
    assert bank.output("speed_hz")[0] == pytest.approx(30.0)
    assert bank.output("current_a")[0] == pytest.approx(15.0)  # at the 150 % limit
    run(bank, 1.05, 0.01)
    assert bank.output("fault_code")[0] == DriveFault.MOTOR_STALL


def test_power_loss_coasts_and_trip_event() -> None:
    bank = make_bank("motor", 2, {"accel_s": 0.0, "coast_s": 10.0})
    bank.set_input("run", None, True)
    bank.set_input("ref_hz", None, 50.0)
    bank.step(0.1)
    bank.event("power_loss", 0)
    bank.event("trip", 1, code=4210)
    assert bank.output("fault_code").tolist() == [3220, 4210]
    assert not bank.output("ready")[0]
    run(bank, 2.0, 0.1)
    assert bank.output("speed_hz").tolist() == pytest.approx([40.0, 40.0])
    bank.set_input("reset", None, True)
    bank.step(0.1)
    assert bank.output("fault").tolist() == [True, False]  # no mains: no reset
    bank.event("power_restore", 0)
    bank.set_input("reset", None, False)
    bank.step(0.1)
    bank.set_input("reset", None, True)
    bank.step(0.1)
    assert bank.output("fault").tolist() == [False, False]
