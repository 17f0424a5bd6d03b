"""PID: action, limits, anti-windup, bumpless transfer, derivative on measurement and filter."""

from __future__ import annotations

import math

import numpy as np
import pytest

from smartline.logic import pid, pid_bank

MS = 1_000_000
DT_NS = 100 * MS  # 100 ms sample time
DT = 0.1


class Loop:
    """One PID instance stepped every 100 ms, with an optional first-order plant."""

    def __init__(self, kernel, **tuning):
        self.kernel = kernel
        self.bank = pid_bank(1, **tuning)
        self.t_ns = 0

    def step(self, sp, pv, auto=True, man=0.0, dt_ns=DT_NS):
        self.kernel(
            np.array([sp], np.float64),
            np.array([pv], np.float64),
            np.array([auto]),
            np.array([man], np.float64),
            self.t_ns,
            *self.bank,
        )
        self.t_ns += dt_ns
        return float(self.bank.out[0])

    @property
    def integral(self):
        return float(self.bank.integral[0])

    @property
    def d_term(self):
        return float(self.bank.d_term[0])


def plant_step(y, u, gain=1.0, tau_s=2.0, dt=DT):
    """First-order plant dy/dt = (gain * u - y) / tau, exact for u held over dt."""
    return y + (gain * u - y) * -math.expm1(-dt / tau_s)


def test_first_step_is_proportional_only(jit):
    loop = Loop(jit(pid), kp=2.0, ti_s=1.0, td_s=1.0, bias=10.0)
    assert loop.bank.out[0] == 10.0
    assert loop.step(sp=5.0, pv=3.0) == 14.0  # bias + kp * e, no I step, no D kick
    assert loop.integral == 10.0
    assert loop.d_term == 0.0


@pytest.mark.parametrize(("direct", "sign"), [(False, 1.0), (True, -1.0)])
def test_action_direction_and_exact_pi_ramp(jit, direct, sign):
    loop = Loop(jit(pid), kp=2.0, ti_s=4.0, out_min=-1e3, out_max=1e3, direct_acting=direct)
    outs = [loop.step(sp=10.0, pv=9.0) for _ in range(5)]
    # e = +1 (reverse) or -1 (direct); u_k = kp * e * (1 + k * dt / ti)
    expected = [sign * 2.0 * (1 + k * DT / 4.0) for k in range(5)]
    np.testing.assert_allclose(outs, expected, rtol=1e-12)


@pytest.mark.parametrize("direct", [False, True])
def test_closed_loop_settles_on_setpoint(jit, direct):
    gain = -1.0 if direct else 1.0  # a cooler needs direct action
    loop = Loop(jit(pid), kp=1.5, ti_s=2.0, out_min=-100.0, out_max=100.0, direct_acting=direct)
    y = 0.0
    for _ in range(400):  # 40 s, 20 plant time constants
        u = loop.step(sp=5.0, pv=y)
        y = plant_step(y, u, gain=gain)
    assert abs(y - 5.0) < 1e-6
    assert abs(u - gain * 5.0) < 1e-5


def test_output_limits_hold_and_flag(jit):
    loop = Loop(jit(pid), kp=10.0, ti_s=1.0, out_min=-5.0, out_max=5.0)
    for _ in range(50):
        assert loop.step(sp=100.0, pv=0.0) == 5.0
        assert loop.bank.limited[0]
    for _ in range(50):
        assert loop.step(sp=-100.0, pv=0.0) == -5.0
        assert loop.bank.limited[0]
    loop.step(sp=0.0, pv=0.0)
    assert -5.0 < loop.bank.out[0] < 5.0
    assert not loop.bank.limited[0]


@pytest.mark.parametrize("tt_s", [0.0, 1.0], ids=["conditional", "back-calculation"])
def test_anti_windup_recovery_does_not_depend_on_saturation_time(jit, tt_s):
    """The actuator cannot reach SP = 50 (max output 10); then SP drops to a reachable 5."""

    def recovery_steps(saturated_s):
        loop = Loop(jit(pid), kp=1.0, ti_s=1.0, tt_s=tt_s, out_min=0.0, out_max=10.0)
        y = 0.0
        for _ in range(int(saturated_s / DT)):
            u = loop.step(sp=50.0, pv=y)
            y = plant_step(y, u)
            assert loop.integral <= 10.0 + 1e-9  # never winds up beyond the limit
        assert u == 10.0
        for k in range(1000):
            u = loop.step(sp=5.0, pv=y)
            y = plant_step(y, u)
            if abs(y - 5.0) < 0.05:
                return k
        pytest.fail("did not recover")

    short, long = recovery_steps(20.0), recovery_steps(200.0)
    assert short == long
    assert short < 100  # settles within 10 s (5 plant time constants)


def test_without_integral_action_there_is_nothing_to_wind_up(jit):
    loop = Loop(jit(pid), kp=2.0, ti_s=0.0, out_max=10.0, bias=1.0)
    for _ in range(100):
        loop.step(sp=100.0, pv=0.0)
    assert loop.integral == 1.0
    assert loop.step(sp=1.0, pv=1.0) == 1.0


def test_bumpless_manual_to_auto(jit):
    loop = Loop(jit(pid), kp=2.0, ti_s=5.0, td_s=0.5, tf_s=0.1)
    pvs = np.linspace(40.0, 41.0, 30)
    for pv in pvs:  # manual at 42 % while PV drifts and SP is away from PV
        assert loop.step(sp=50.0, pv=pv, auto=False, man=42.0) == 42.0
    d_before = loop.d_term
    first_auto = loop.step(sp=50.0, pv=pvs[-1], auto=True)
    e = 50.0 - pvs[-1]
    # only one integration step and the D filter's own decay change the output
    expected = 42.0 + 2.0 * e * DT / 5.0 + (loop.d_term - d_before)
    assert first_auto == pytest.approx(expected, abs=1e-12)
    assert abs(first_auto - 42.0) < 0.6  # versus P = kp * e = 18 without tracking


def test_bumpless_manual_to_auto_without_d(jit):
    loop = Loop(jit(pid), kp=2.0, ti_s=5.0)
    for _ in range(10):
        loop.step(sp=50.0, pv=40.0, auto=False, man=42.0)
    assert loop.step(sp=50.0, pv=40.0) == pytest.approx(42.0 + 2.0 * 10.0 * DT / 5.0, abs=1e-12)


def test_auto_to_manual_is_bumpless_when_manual_value_tracks_output(jit):
    loop = Loop(jit(pid), kp=1.0, ti_s=2.0)
    for _ in range(20):
        out = loop.step(sp=30.0, pv=20.0)
    assert loop.step(sp=30.0, pv=20.0, auto=False, man=out) == out


def test_manual_output_is_clamped_and_nan_holds(jit):
    loop = Loop(jit(pid), out_min=0.0, out_max=100.0)
    assert loop.step(sp=0.0, pv=0.0, auto=False, man=150.0) == 100.0
    assert loop.bank.limited[0]
    assert loop.step(sp=0.0, pv=0.0, auto=False, man=-5.0) == 0.0
    assert loop.step(sp=0.0, pv=0.0, auto=False, man=33.0) == 33.0
    assert loop.step(sp=0.0, pv=0.0, auto=False, man=math.nan) == 33.0
    assert loop.step(sp=0.0, pv=math.nan, auto=False, man=12.0) == 12.0  # no PV: output only


def test_setpoint_step_gives_no_derivative_kick(jit):
    loop = Loop(jit(pid), kp=1.0, td_s=1.0, out_min=-1e6, out_max=1e6)
    assert loop.step(sp=0.0, pv=0.0) == 0.0
    assert loop.step(sp=0.0, pv=0.0) == 0.0
    assert loop.step(sp=10.0, pv=0.0) == 10.0  # P only: kp * 10
    assert loop.d_term == 0.0


def test_pv_step_gives_derivative_on_measurement(jit):
    loop = Loop(jit(pid), kp=2.0, td_s=1.0, out_min=-1e6, out_max=1e6)
    loop.step(sp=0.0, pv=0.0)
    out = loop.step(sp=0.0, pv=1.0)
    d = -2.0 * 1.0 * 1.0 / DT  # -kp * td * dpv / dt
    assert loop.d_term == pytest.approx(d)
    assert out == pytest.approx(-2.0 + d)
    loop.step(sp=0.0, pv=1.0)
    assert loop.d_term == 0.0  # unfiltered: one sample only


def test_derivative_filter_is_first_order(jit):
    tf = 0.5
    loop = Loop(jit(pid), kp=2.0, td_s=1.0, tf_s=tf, out_min=-1e6, out_max=1e6)
    loop.step(sp=0.0, pv=0.0)
    loop.step(sp=0.0, pv=1.0)
    d = [loop.d_term]
    for _ in range(10):
        loop.step(sp=0.0, pv=1.0)
        d.append(loop.d_term)
    # backward Euler of kp*td*s/(1 + tf*s): first sample kp*td*dpv/(tf + dt), then decay
    assert d[0] == pytest.approx(-2.0 / (tf + DT))
    np.testing.assert_allclose(d[1:], d[0] * (tf / (tf + DT)) ** np.arange(1, 11), rtol=1e-12)
    assert abs(d[0]) < 2.0 / DT  # smaller than the unfiltered kick


def test_same_timestamp_neither_integrates_nor_differentiates(jit):
    loop = Loop(jit(pid), kp=1.0, ti_s=1.0, td_s=1.0, out_min=-100.0, out_max=100.0)
    loop.step(sp=0.0, pv=0.0, dt_ns=0)
    assert loop.step(sp=1.0, pv=0.0, dt_ns=0) == 1.0  # same instant: P only
    assert loop.step(sp=1.0, pv=3.0, dt_ns=0) == -2.0
    assert loop.integral == 0.0
    assert loop.d_term == 0.0
    loop.t_ns = DT_NS
    loop.step(sp=1.0, pv=3.0)  # time moved on: the PV change is differentiated now
    assert loop.d_term == pytest.approx(-3.0 / DT)


def test_clock_going_back_restarts_time_base(jit):
    loop = Loop(jit(pid), kp=1.0, ti_s=1.0, td_s=1.0, out_min=-100.0, out_max=100.0)
    loop.t_ns = 10 * DT_NS
    loop.step(sp=0.0, pv=0.0)
    loop.t_ns = 5 * DT_NS  # earlier than the last step: no I, no D, new time base
    assert loop.step(sp=1.0, pv=5.0) == -4.0
    assert (loop.integral, loop.d_term) == (0.0, 0.0)
    loop.step(sp=1.0, pv=5.0)  # one normal step later
    assert loop.integral == pytest.approx(-4.0 * DT)
    assert loop.d_term == 0.0


def test_nan_measurement_in_auto_holds_output_and_state(jit):
    loop = Loop(jit(pid), kp=1.0, ti_s=1.0, td_s=0.5)
    for _ in range(5):
        held = loop.step(sp=10.0, pv=8.0)
    state = [a.copy() for a in loop.bank]
    for _ in range(3):
        assert loop.step(sp=10.0, pv=math.nan) == held
        assert loop.step(sp=math.inf, pv=8.0) == held
    for name, a, b in zip(loop.bank._fields, loop.bank, state, strict=True):
        if name == "primed":
            assert not a[0]  # the time base restarts when the signals come back
        else:
            np.testing.assert_array_equal(a, b)
    assert math.isfinite(loop.step(sp=10.0, pv=8.0))


def test_an_input_outage_is_not_integrated_when_the_signal_returns(jit):
    loop = Loop(jit(pid), kp=2.0, ti_s=4.0, out_min=0.0, out_max=100.0)
    for _ in range(20):
        before = loop.step(sp=60.0, pv=55.0)
    for _ in range(600):  # 60 s without a measurement
        assert loop.step(sp=60.0, pv=math.nan) == before
    after = loop.step(sp=60.0, pv=55.0)
    # proportional 10 plus the integral held from before the outage: no 60-s integration jump
    assert after == pytest.approx(before, abs=1.0)
    assert after < 100.0


def test_clearing_primed_restarts_an_instance(jit):
    loop = Loop(jit(pid), kp=1.0, td_s=1.0, out_min=-1e3, out_max=1e3)
    loop.step(sp=0.0, pv=0.0)
    loop.bank.primed[0] = False
    assert loop.step(sp=0.0, pv=50.0) == -50.0  # no derivative kick from the jump
    assert loop.d_term == 0.0


def test_factory_validation():
    with pytest.raises(ValueError, match="out_min"):
        pid_bank(2, out_min=10.0, out_max=0.0)
    with pytest.raises(ValueError, match="ti_s"):
        pid_bank(2, ti_s=-1.0)
    with pytest.raises(ValueError, match="kp"):
        pid_bank(2, kp=math.nan)
    with pytest.raises(ValueError, match="3 values"):
        pid_bank(3, kp=[1.0, 2.0])
    bank = pid_bank(3, kp=[1.0, 2.0, 3.0], bias=200.0)
    assert bank.kp.tolist() == [1.0, 2.0, 3.0]
    assert bank.out.tolist() == [100.0] * 3  # bias clamped to the limits
