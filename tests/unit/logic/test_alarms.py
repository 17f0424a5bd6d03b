"""HH/H/L/LL limit alarms: limits, deadband, on-delay, disabled levels, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from smartline.logic import limits_alarm, limits_alarm_bank

MS = 1_000_000


def run(kernel, bank, xs, times_ms=None):
    """Step one instance; the active levels after each sample as strings like 'H HH'."""
    times_ms = range(len(xs)) if times_ms is None else times_ms
    out = []
    for t, x in zip(times_ms, xs, strict=True):
        kernel(np.array([x], np.float64), int(t * MS), *bank)
        out.append(" ".join(n for n in ("LL", "L", "H", "HH") if getattr(bank, n.lower())[0]))
    return out


def test_four_levels_without_delay_or_deadband(jit):
    bank = limits_alarm_bank(1, hh_limit=90.0, h_limit=80.0, l_limit=20.0, ll_limit=10.0)
    xs = [50, 80, 89.9, 90, 95, 80, 79.9, 20.1, 20, 10, 5, 20, 20.1]
    assert run(jit(limits_alarm), bank, xs) == [
        "", "H", "H", "H HH", "H HH", "H", "", "", "L", "LL L", "LL L", "L", "",
    ]  # fmt: skip


def test_deadband_delays_clearing(jit):
    bank = limits_alarm_bank(1, h_limit=80.0, l_limit=20.0, deadband=2.0)
    xs = [81, 79, 78.1, 78, 77.9, 80, 19, 21, 21.9, 22, 22.1]
    assert run(jit(limits_alarm), bank, xs) == [
        "H", "H", "H", "H", "", "H", "L", "L", "L", "L", "",
    ]  # fmt: skip


def test_on_delay_needs_an_unbroken_violation(jit):
    bank = limits_alarm_bank(1, h_limit=80.0, deadband=1.0, delay_s=0.005)
    # beyond at 0..3 ms (too short), back below at 4, beyond again from 5: active at 10
    xs = [85, 85, 85, 85, 70, 85, 85, 85, 85, 85, 85, 79.5, 78.9]
    assert run(jit(limits_alarm), bank, xs) == [""] * 10 + ["H", "H", ""]


def test_on_delay_restarts_when_x_leaves_the_limit_but_not_the_deadband(jit):
    bank = limits_alarm_bank(1, h_limit=80.0, deadband=5.0, delay_s=0.003)
    # 79 is within the deadband, but an alarm that is not yet active is not held by it
    xs = [81, 81, 79, 81, 81, 81, 81]
    assert run(jit(limits_alarm), bank, xs) == ["", "", "", "", "", "", "H"]


def test_delay_with_irregular_scans(jit):
    bank = limits_alarm_bank(1, ll_limit=0.0, delay_s=1.0)
    out = run(jit(limits_alarm), bank, [-1, -1, -1, -1], times_ms=[0, 400, 999.999, 1000])
    assert out == ["", "", "", "LL"]


def test_nan_limit_disables_a_level_even_when_active(jit):
    bank = limits_alarm_bank(1, h_limit=80.0)
    kernel = jit(limits_alarm)
    assert run(kernel, bank, [90]) == ["H"]
    bank.h_limit[0] = math.nan
    assert run(kernel, bank, [90, 1000]) == ["", ""]


def test_nan_input_raises_nothing_and_clears_nothing(jit):
    bank = limits_alarm_bank(2, h_limit=80.0, l_limit=20.0)
    kernel = jit(limits_alarm)
    kernel(np.array([90.0, 50.0]), 0, *bank)
    kernel(np.array([math.nan, math.nan]), MS, *bank)
    assert bank.h.tolist() == [True, False]
    assert bank.l.tolist() == [False, False]


def test_factory_validation():
    with pytest.raises(ValueError, match="deadband"):
        limits_alarm_bank(1, deadband=-1.0)
    with pytest.raises(ValueError, match="delay_s"):
        limits_alarm_bank(1, delay_s=-0.1)
    bank = limits_alarm_bank(2, hh_limit=[1.0, 2.0], delay_s=0.25)
    assert bank.delay_ns.tolist() == [250 * MS] * 2
    assert bank.since_ns.shape == (2, 4)
    assert math.isnan(bank.h_limit[0])
