"""Tank block: Torricelli draining against its closed form, flows, pump, overflow, mixing."""

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


def test_torricelli_drain_matches_the_closed_form_at_any_dt() -> None:
    # A·dh/dt = −k·u·√h  →  √h(t) = √h0 − k·u·t/(2A); empty at T = 2A√h0/(k·u)
    area, k, u, h0 = 1.5, 0.004, 0.8, 1.8
    t_empty = 2 * area * math.sqrt(h0) / (k * u)
    for dt in (0.001, 0.1, 1.0):
        bank = make_bank("tank", 1, {"area_m2": area, "outflow_k": k, "initial_level_m": h0,
                                     "height_m": 2.0})
        bank.set_input("outflow_valve_pct", 0, 100 * u)
        run(bank, 100.0, dt)
        expect = (math.sqrt(h0) - k * u * 100.0 / (2 * area)) ** 2
        assert bank.output("level_m")[0] == pytest.approx(expect, rel=1e-9)
        if dt == 1.0:
            run(bank, math.floor(t_empty) - 100.0 - 1.0, dt)
            assert bank.output("level_m")[0] > 0.0
            run(bank, 2.0, dt)
            assert bank.output("level_m")[0] == 0.0
            assert bank.output("outflow_m3_s")[0] >= 0.0


def test_cylinder_area_inflow_overflow_and_flows() -> None:
    bank = make_bank("tank", 1, {"diameter_m": 2.0, "height_m": 1.0, "initial_level_m": 0.0,
                                 "inflow_max_m3_s": 0.1})
    area = math.pi
    bank.set_input("inflow_valve_pct", 0, 50.0)
    run(bank, 20.0, 0.1)
    assert bank.output("volume_m3")[0] == pytest.approx(1.0)
    assert bank.output("level_m")[0] == pytest.approx(1.0 / area)
    assert bank.output("inflow_m3_s")[0] == pytest.approx(0.05)
    assert not bank.output("overflow")[0]
    run(bank, 60.0, 1.0)  # 3.0 m³ in, π m³ fits
    assert bank.output("level_m")[0] == pytest.approx(1.0)
    assert bank.output("level_pct")[0] == pytest.approx(100.0)
    assert bank.output("overflow")[0]
    assert bank.state("spilled_m3")[0] == pytest.approx(4.0 - area)


def test_pump_empties_to_suction_then_runs_dry() -> None:
    bank = make_bank("tank", 1, {"initial_level_m": 1.0, "pump_m3_s": 0.01,
                                 "suction_level_m": 0.1})
    bank.set_input("pump_run", 0, True)
    run(bank, 50.0, 0.05)
    assert bank.output("level_m")[0] == pytest.approx(0.5)
    assert bank.output("outflow_m3_s")[0] == pytest.approx(0.01)
    assert bank.output("pump_running")[0] and not bank.output("dry_run")[0]
    run(bank, 100.0, 1.0)  # reaches suction at 90 s
    assert bank.output("level_m")[0] == pytest.approx(0.1)
    assert bank.output("dry_run")[0]
    # inflow below the pump's flow: the pump takes it all at suction level
    bank.set_input("inflow_valve_pct", 0, 50.0)
    run(bank, 10.0, 0.5)
    assert bank.output("level_m")[0] == pytest.approx(0.1)
    assert bank.output("outflow_m3_s")[0] == pytest.approx(0.005)
    bank.event("pump_fail", 0)
    run(bank, 10.0, 0.5)
    assert not bank.output("pump_running")[0]
    assert bank.output("level_m")[0] == pytest.approx(0.15)


def test_inflow_against_gravity_settles_and_agrees_across_dt() -> None:
    # steady state where q_in = k·u·√h  →  h* = (q_in / k·u)²
    levels = []
    for dt in (0.001, 0.1, 1.0):
        bank = make_bank("tank", 1, {"initial_level_m": 0.0, "inflow_max_m3_s": 0.004,
                                     "outflow_k": 0.005, "area_m2": 0.5})
        bank.set_input("inflow_valve_pct", 0, 100.0)
        bank.set_input("outflow_valve_pct", 0, 100.0)
        run(bank, 60.0, dt)
        levels.append(bank.output("level_m")[0])
        if dt == 1.0:
            run(bank, 3000.0, dt)
            assert bank.output("level_m")[0] == pytest.approx((0.004 / 0.005) ** 2, rel=1e-6)
    # Strang splitting in sub-steps of 50 ms: second order, stated tolerance 1e-4 relative
    assert levels[1] == pytest.approx(levels[0], rel=1e-4)
    assert levels[2] == pytest.approx(levels[0], rel=1e-4)


def test_mixing_temperature_is_the_volume_weighted_mean() -> None:
    bank = make_bank("tank", 1, {"initial_level_m": 0.5, "initial_temp_c": 20.0,
                                 "inflow_max_m3_s": 0.01})
    bank.set_input("inflow_temp_c", 0, 80.0)
    bank.set_input("inflow_valve_pct", 0, 100.0)
    run(bank, 50.0, 0.3)
    assert bank.output("temperature_c")[0] == pytest.approx((0.5 * 20 + 0.5 * 80) / 1.0)


def test_valve_and_leak_events() -> None:
    bank = make_bank("tank", 2, {"initial_level_m": 1.0})
    bank.event("stuck_outflow", 0, pct=100.0)
    bank.event("leak", 1, m3_s=0.002)
    run(bank, 10.0, 0.1)
    assert bank.output("level_m")[0] < 1.0
    assert bank.output("level_m")[1] == pytest.approx(0.98)
    bank.event("free_valves", 0)
    bank.event("leak", 1, m3_s=0.0)
    before = bank.output("level_m").copy()
    run(bank, 10.0, 0.1)
    assert bank.output("level_m").tolist() == before.tolist()
    bank.event("set_level", 1, level_m=1.5)
    assert bank.output("level_m")[1] == 1.5 and bank.state("volume")[1] == 1.5
    with pytest.raises(ValueError, match=r"tank: parameter 'stuck_inflow.pct' must be within "
                                         r"\[0, 100\] %"):
        bank.event("stuck_inflow", 0, pct=120.0)
