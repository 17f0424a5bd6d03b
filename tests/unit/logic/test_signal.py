"""Ramp, first-order lag, moving average and hysteresis switch."""

from __future__ import annotations

import math

import numpy as np
import pytest

from smartline.logic import (
    hysteresis,
    hysteresis_bank,
    lag,
    lag_bank,
    moving_average,
    moving_average_bank,
    ramp,
    ramp_bank,
)

MS = 1_000_000


def f(v):
    return np.array([v], np.float64)


# -- ramp ---------------------------------------------------------------------------------------


def test_ramp_starts_at_first_input_then_limits_rate_exactly(jit):
    kernel, bank = jit(ramp), ramp_bank(1, rise_per_s=2.0, fall_per_s=5.0)
    kernel(f(0.0), 0, *bank)
    assert bank.y[0] == 0.0
    ys = []
    for k in range(1, 61):  # 100 ms steps towards 10 at 2 /s: 0.2 per step, 5 s to get there
        kernel(f(10.0), k * 100 * MS, *bank)
        ys.append(float(bank.y[0]))
    np.testing.assert_allclose(ys[:49], 0.2 * np.arange(1, 50), rtol=1e-12)
    assert ys[49:] == [10.0] * 11  # lands on the target exactly, no overshoot
    assert not bank.ramping[0]
    t0 = 60 * 100 * MS
    for k in range(1, 21):  # falls at 5 /s: 0.5 per step, 2 s to 0
        kernel(f(0.0), t0 + k * 100 * MS, *bank)
        assert bank.ramping[0] == (k < 20)
    assert bank.y[0] == 0.0


def test_ramp_partial_last_step_and_irregular_scans(jit):
    kernel, bank = jit(ramp), ramp_bank(1, rise_per_s=1.0)
    kernel(f(0.0), 0, *bank)
    kernel(f(0.25), 100 * MS, *bank)  # within reach: 0.1 per 100 ms, so moves 0.1
    assert bank.y[0] == pytest.approx(0.1)
    kernel(f(0.25), 350 * MS, *bank)  # 250 ms later: 0.25 allowed, reaches 0.25
    assert bank.y[0] == 0.25
    assert not bank.ramping[0]


def test_ramp_infinite_rate_passes_and_zero_rate_holds(jit):
    kernel = jit(ramp)
    free = ramp_bank(1, rise_per_s=math.inf)
    frozen = ramp_bank(1, rise_per_s=0.0)
    for bank in (free, frozen):
        kernel(f(1.0), 0, *bank)
        kernel(f(7.0), MS, *bank)
    assert free.y[0] == 7.0
    assert frozen.y[0] == 1.0
    assert frozen.ramping[0]


def test_ramp_nan_input_holds_and_time_keeps_counting(jit):
    kernel, bank = jit(ramp), ramp_bank(1, rise_per_s=1.0)
    kernel(f(0.0), 0, *bank)
    kernel(f(math.nan), 500 * MS, *bank)
    assert bank.y[0] == 0.0
    kernel(f(10.0), 1000 * MS, *bank)  # 1 s since the last good step: moves by 1
    assert bank.y[0] == pytest.approx(1.0)


# -- lag ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("step_ms", [1, 10, 130])
def test_lag_reaches_63_2_percent_at_tau(jit, step_ms):
    kernel, bank = jit(lag), lag_bank(1, tau_s=2.6)
    kernel(f(0.0), 0, *bank)
    t = 0
    while t < 2600:
        t = min(t + step_ms, 2600)
        kernel(f(1.0), t * MS, *bank)
    assert bank.y[0] == pytest.approx(1.0 - math.exp(-1.0), abs=1e-12)  # 0.632..., any step
    for _ in range(50):
        t += 260
        kernel(f(1.0), t * MS, *bank)
    assert bank.y[0] == pytest.approx(1.0 - math.exp(-6.0), abs=1e-12)


def test_lag_starts_at_input_zero_tau_passes_and_nan_holds(jit):
    kernel = jit(lag)
    bank = lag_bank(2, tau_s=[1.0, 0.0])
    kernel(np.array([5.0, 5.0]), 0, *bank)
    assert bank.y.tolist() == [5.0, 5.0]
    kernel(np.array([math.nan, 3.0]), MS, *bank)
    assert bank.y.tolist() == [5.0, 3.0]
    kernel(np.array([7.0, 7.0]), MS, *bank)  # same instant: only the pass-through moves
    assert bank.y[1] == 7.0
    assert bank.y[0] == pytest.approx(5.0 + 2.0 * -math.expm1(-0.001), abs=1e-15)
    kernel(np.array([9.0, 9.0]), MS, *bank)
    assert bank.y[0] == pytest.approx(5.0 + 2.0 * -math.expm1(-0.001), abs=1e-15)
    assert bank.y[1] == 9.0


# -- moving average ---------------------------------------------------------------------------


def test_moving_average_fill_up_and_window(jit):
    kernel, bank = jit(moving_average), moving_average_bank(1, window=4)
    assert math.isnan(bank.y[0])
    ys = []
    for x in [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 10.0]:
        kernel(f(x), *bank)
        ys.append(float(bank.y[0]))
    assert ys == [1.0, 1.5, 2.0, 2.5, 3.5, 4.5, 6.25]


def test_moving_average_is_exact_over_long_runs(jit):
    rng = np.random.default_rng(7)
    xs = 1e8 + rng.normal(0.0, 1.0, 3000)  # a large offset exposes running-sum drift
    window = 16
    kernel, bank = jit(moving_average), moving_average_bank(1, window=window)
    for k, x in enumerate(xs):
        kernel(f(x), *bank)
        expected = xs[max(0, k - window + 1) : k + 1].mean()
        assert abs(bank.y[0] - expected) < 1e-7, k  # 1e-15 relative to the offset


def test_moving_average_non_finite_sample_leaves_after_one_window(jit):
    kernel, bank = jit(moving_average), moving_average_bank(1, window=3)
    ys = []
    for x in [1.0, 1.0, 1.0, math.nan, 2.0, 2.0, 2.0, math.inf, 3.0, 3.0, 3.0]:
        kernel(f(x), *bank)
        ys.append(float(bank.y[0]))
    assert ys[:3] == [1.0, 1.0, 1.0]
    assert all(math.isnan(y) for y in ys[3:6])
    assert ys[6] == 2.0
    assert all(math.isnan(y) for y in ys[7:10])
    assert ys[10] == 3.0


def test_moving_average_window_of_one_is_the_input(jit):
    kernel, bank = jit(moving_average), moving_average_bank(2, window=1)
    for x in [3.0, -1.0, 8.5]:
        kernel(np.array([x, -x]), *bank)
        assert bank.y.tolist() == [x, -x]


def test_moving_average_bank_validation():
    with pytest.raises(ValueError, match="window"):
        moving_average_bank(2, window=0)
    assert moving_average_bank(3, window=5).buf.shape == (3, 5)


# -- hysteresis ---------------------------------------------------------------------------------


def run_hysteresis(kernel, bank, xs):
    out = []
    for x in xs:
        kernel(f(x), *bank)
        out.append(int(bank.q[0]))
    return out


def test_hysteresis_rising_switch(jit):
    bank = hysteresis_bank(1, on_at=30.0, off_at=25.0)  # a fan
    xs = [20, 29.9, 30, 31, 27, 25.1, 25, 24, 28, 30]
    assert run_hysteresis(jit(hysteresis), bank, xs) == [0, 0, 1, 1, 1, 1, 0, 0, 0, 1]


def test_hysteresis_falling_switch(jit):
    bank = hysteresis_bank(1, on_at=18.0, off_at=21.0)  # a heater
    xs = [22, 19, 18, 17, 20, 20.9, 21, 25, 19]
    assert run_hysteresis(jit(hysteresis), bank, xs) == [0, 0, 1, 1, 1, 1, 0, 0, 0]


def test_hysteresis_without_band_and_nan_holds(jit):
    bank = hysteresis_bank(1, on_at=5.0, off_at=5.0)
    xs = [4.0, 5.0, math.nan, 4.999, math.nan, 6.0]
    assert run_hysteresis(jit(hysteresis), bank, xs) == [0, 1, 1, 0, 0, 1]


def test_signal_factory_validation():
    with pytest.raises(ValueError, match="rise_per_s"):
        ramp_bank(1, rise_per_s=-1.0)
    with pytest.raises(ValueError, match="tau_s"):
        lag_bank(1, tau_s=math.nan)
    assert ramp_bank(2, rise_per_s=[1.0, 2.0]).fall_per_s.tolist() == [1.0, 2.0]
