"""Filler block: dosed volumes, seeded noise against tolerance, commands and valve faults."""

from __future__ import annotations

import math

import numpy as np
import pytest

from smartline.hil.blocks import BlockBank, make_bank


def run(bank: BlockBank, seconds: float, dt_s: float) -> None:
    steps = int(seconds / dt_s + 1e-9)
    for _ in range(steps):
        bank.step(dt_s)
    if seconds - steps * dt_s > 1e-12:
        bank.step(seconds - steps * dt_s)


def fill_one(bank: BlockBank, seconds: float, dt_s: float) -> None:
    bank.set_input("fill", None, True)
    run(bank, seconds, dt_s)
    bank.set_input("fill", None, False)
    bank.step(dt_s)


@pytest.mark.parametrize("dt", [0.001, 0.037, 0.5])
def test_noiseless_fill_hits_the_target_at_any_dt(dt: float) -> None:
    bank = make_bank("filler", 2, {"flow_sigma_pct": 0.0, "lag_sigma_pct": 0.0,
                                   "anticipate": [1, 0]})
    bank.set_input("fill", None, True)
    run(bank, 3.0, dt)
    assert bank.output("filling").tolist() == [True, True]
    assert bank.output("volume_ml")[0] == pytest.approx(300.0, rel=1e-9)
    assert bank.output("mean_flow_ml_s")[0] == pytest.approx(100.0)
    run(bank, 3.0, dt)
    assert bank.output("filling").tolist() == [False, False]
    # anticipating the 0.1 s lag closes on target; without, 10 ml (flow × lag) over
    assert bank.output("last_volume_ml").tolist() == pytest.approx([500.0, 510.0], rel=1e-9)
    assert bank.output("bottles").tolist() == [1, 1]
    assert bank.output("overfills").tolist() == [0, 1]
    assert bank.output("fill_ok").tolist() == [True, False]
    assert bank.output("total_l").tolist() == pytest.approx([0.5, 0.51])


def test_volumes_over_many_bottles_follow_the_seeded_noise() -> None:
    heads, bottles = 100, 20
    flow, lag, a, b, tol = 100.0, 0.2, 0.03, 0.2, 5.0
    bank = make_bank("filler", heads, {"flow_ml_s": flow, "close_lag_s": lag,
                                       "flow_sigma_pct": 100 * a, "lag_sigma_pct": 100 * b,
                                       "tolerance_ml": tol}, seed=11)
    volumes = []
    for _ in range(bottles):
        fill_one(bank, 6.5, 0.1)
        volumes.append(bank.output("last_volume_ml").copy())
    v = np.concatenate(volumes)
    # error = flow·lag·(a·z1 + b·z2 + a·b·z1·z2): mean 0, sigma flow·lag·√(a² + b² + a²b²)
    sigma = flow * lag * math.sqrt(a * a + b * b + a * a * b * b)
    assert v.mean() == pytest.approx(500.0, abs=4 * sigma / math.sqrt(v.size))
    assert v.std() == pytest.approx(sigma, rel=0.08)
    out = int(bank.output("underfills").sum() + bank.output("overfills").sum())
    assert int(bank.output("bottles").sum()) == heads * bottles
    assert out == int(np.sum(np.abs(v - 500.0) > tol))
    expect = math.erfc(tol / sigma / math.sqrt(2))  # two-sided normal tail
    assert out / v.size == pytest.approx(expect, abs=0.03)


def test_close_command_and_missing_bottle() -> None:
    bank = make_bank("filler", 2, {"flow_sigma_pct": 0.0, "lag_sigma_pct": 0.0})
    bank.set_input("bottle_present", 1, False)
    bank.set_input("fill", None, True)
    run(bank, 2.0, 0.01)
    bank.set_input("close", 0, True)
    run(bank, 1.0, 0.01)
    assert bank.output("last_volume_ml")[0] == pytest.approx(210.0)  # 2 s + 0.1 s lag
    assert bank.output("underfills").tolist() == [1, 0]
    assert bank.output("bottles").tolist() == [1, 0]
    assert not bank.output("filling")[1]


def test_stuck_valves() -> None:
    bank = make_bank("filler", 2, {"flow_sigma_pct": 0.0, "lag_sigma_pct": 0.0})
    bank.event("valve_stuck", 0, open=1)
    bank.event("valve_stuck", 1, open=0)
    fill_one(bank, 10.0, 0.05)
    assert bank.output("filling").tolist() == [True, True]
    assert bank.output("volume_ml").tolist() == pytest.approx([550.0, 0.0])  # brim, nothing
    bank.set_input("close", None, True)
    run(bank, 1.0, 0.05)
    assert bank.output("filling").tolist() == [True, False]  # stuck open ignores close
    assert bank.output("underfills")[1] == 1
    bank.event("valve_free", 0)
    run(bank, 0.2, 0.05)
    assert not bank.output("filling")[0]
    assert bank.output("overfills")[0] == 1
    bank.event("supply_pressure", 1, factor=0.5)
    bank.event("valve_free", 1)
    bank.set_input("close", None, False)
    fill_one(bank, 2.0, 0.05)
    assert bank.output("volume_ml")[1] == pytest.approx(102.5)  # 2.05 s at half flow
