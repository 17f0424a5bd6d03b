"""Oven block: FOPDT step response with its dead time, dt-independence, coupling, events."""

from __future__ import annotations

import math

import pytest

from smartline.hil.blocks import BlockBank, make_bank


def run(bank: BlockBank, seconds: float, dt_s: float) -> None:
    steps = int(seconds / dt_s + 1e-9)
    for _ in range(steps):
        bank.step(dt_s)
    if seconds - steps * dt_s > 1e-12:
        bank.step(seconds - steps * dt_s)


def fopdt(t: float, *, amb: float, gain: float, u: float, tau: float, theta: float) -> float:
    return amb if t <= theta else amb + gain * u / 100 * (1 - math.exp(-(t - theta) / tau))


@pytest.mark.parametrize("dt", [0.001, 0.037, 0.1, 1.0])
def test_step_response_has_its_dead_time_and_time_constant(dt: float) -> None:
    spec = {"ambient_c": 20.0, "gain_c": 400.0, "tau_s": 10.0, "dead_time_s": 3.0}
    bank = make_bank("oven", 1, spec)
    bank.set_input("power_pct", 0, 50.0)
    t = 0.0
    for mark in (2.9, 3.0, 8.0, 30.0):
        run(bank, mark - t, dt)
        t = mark
        expect = fopdt(t, amb=20.0, gain=400.0, u=50.0, tau=10.0, theta=3.0)
        assert bank.output("temperature_c")[0] == pytest.approx(expect, rel=1e-9, abs=1e-9), t
    assert bank.output("delayed_power_pct")[0] == pytest.approx(50.0)


def test_a_pulse_gives_the_same_trace_at_1ms_and_100ms() -> None:
    traces = []
    for dt in (0.001, 0.1):
        bank = make_bank("oven", 2, {"tau_s": [5.0, 20.0], "dead_time_s": [1.5, 4.0]})
        bank.set_input("power_pct", None, 100.0)
        run(bank, 2.0, dt)
        bank.set_input("power_pct", None, 30.0)
        run(bank, 6.0, dt)
        bank.set_input("power_pct", None, 0.0)
        run(bank, 12.0, dt)
        traces.append(bank.output("temperature_c").copy())
    # exact discretisation: agreement to rounding (stated: 1e-9 relative)
    assert traces[0].tolist() == pytest.approx(traces[1].tolist(), rel=1e-9)
    assert traces[0][0] > 20.0


def test_power_is_clamped_and_nan_is_off() -> None:
    bank = make_bank("oven", 3, {"tau_s": 0.0, "dead_time_s": 0.0, "gain_c": 100.0})
    bank.input("power_pct")[:] = [150.0, -20.0, math.nan]
    bank.step(0.01)
    assert bank.output("temperature_c").tolist() == [120.0, 20.0, 20.0]


def test_coupled_zones_settle_at_the_coupled_steady_state() -> None:
    # T1 = a + g·u1 + c(T2 − a), T2 = a + g·u2 + c(T1 − a)
    bank = make_bank("oven", 2, {"neighbour": [1, 0], "coupling": 0.2, "dead_time_s": 0.5,
                                 "tau_s": 5.0, "gain_c": 300.0})
    bank.input("power_pct")[:] = [100.0, 0.0]
    run(bank, 200.0, 0.05)
    r1, r2 = 300.0, 0.0
    d1 = (r1 + 0.2 * r2) / (1 - 0.04)
    d2 = r2 + 0.2 * d1
    temps = bank.output("temperature_c")
    assert temps[0] == pytest.approx(20 + d1, rel=1e-6)
    assert temps[1] == pytest.approx(20 + d2, rel=1e-6)


def test_heater_and_door_events() -> None:
    bank = make_bank("oven", 2, {"tau_s": 1.0, "dead_time_s": 0.0, "gain_c": 100.0})
    bank.set_input("power_pct", None, 100.0)
    bank.event("heater_fail", 0, remaining=0.5)
    bank.event("door_open", 1, tau_factor=0.5, ambient_offset_c=-10.0)
    run(bank, 30.0, 0.1)
    assert bank.output("temperature_c").tolist() == pytest.approx([70.0, 110.0])
    bank.event("heater_repair", 0)
    bank.event("door_close", 1)
    bank.event("set_temperature", 0, temperature_c=500.0)
    assert bank.output("temperature_c")[0] == 500.0
    run(bank, 60.0, 0.5)
    assert bank.output("temperature_c").tolist() == pytest.approx([120.0, 120.0])


def test_long_dead_time_uses_coarser_slots() -> None:
    bank = make_bank("oven", 1, {"dead_time_s": 100.0, "tau_s": 0.0, "delay_slots": 50})
    assert bank.buf.shape == (1, 50)
    bank.set_input("power_pct", 0, 100.0)
    run(bank, 99.0, 1.0)
    assert bank.output("temperature_c")[0] == 20.0
    run(bank, 1.0, 1.0)  # at exactly the dead time the heat has not arrived yet
    assert bank.output("temperature_c")[0] == 20.0
    assert bank.output("delayed_power_pct")[0] == 100.0  # but acts from now on
    run(bank, 1.0, 1.0)
    assert bank.output("temperature_c")[0] == pytest.approx(820.0)
