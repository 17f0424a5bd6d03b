"""Properties every block shares: API shape, independent instances, steps, checks, no allocation."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from numba import njit

import smartline.logic as sl

MS = 1_000_000


def bools(rng, n, p=0.5):
    return rng.random(n) < p


def with_nans(rng, x, p=0.05):
    x = x.copy()
    x[rng.random(x.shape[0]) < p] = math.nan
    return x


@dataclass(frozen=True)
class Spec:
    """One block: a bank with varied per-instance tuning and random inputs in kernel order."""

    name: str
    kernel: Any
    step: Any
    make: Callable[[int, np.random.Generator], tuple]
    inputs: Callable[[np.random.Generator, int, int], tuple]

    def __str__(self) -> str:
        return self.name


def timer_inputs(rng, n, t):
    return bools(rng, n, 0.6), (np.arange(n, dtype=np.int64) % 4 + 1) * 2 * MS, t


SPECS = [
    Spec("ton", sl.ton, sl.ton_step, lambda n, rng: sl.ton_bank(n), timer_inputs),
    Spec("tof", sl.tof, sl.tof_step, lambda n, rng: sl.tof_bank(n), timer_inputs),
    Spec("tp", sl.tp, sl.tp_step, lambda n, rng: sl.tp_bank(n), timer_inputs),
    Spec(
        "ctu",
        sl.ctu,
        sl.ctu_step,
        lambda n, rng: sl.ctu_bank(n),
        lambda rng, n, t: (bools(rng, n), bools(rng, n, 0.1), np.arange(n, dtype=np.int64)),
    ),
    Spec(
        "ctd",
        sl.ctd,
        sl.ctd_step,
        lambda n, rng: sl.ctd_bank(n),
        lambda rng, n, t: (bools(rng, n), bools(rng, n, 0.1), np.arange(n, dtype=np.int64)),
    ),
    Spec(
        "ctud",
        sl.ctud,
        sl.ctud_step,
        lambda n, rng: sl.ctud_bank(n),
        lambda rng, n, t: (
            bools(rng, n),
            bools(rng, n),
            bools(rng, n, 0.05),
            bools(rng, n, 0.05),
            np.arange(n, dtype=np.int64),
        ),
    ),
    Spec(
        "r_trig",
        sl.r_trig,
        sl.r_trig_step,
        lambda n, rng: sl.r_trig_bank(n),
        lambda rng, n, t: (bools(rng, n),),
    ),
    Spec(
        "f_trig",
        sl.f_trig,
        sl.f_trig_step,
        lambda n, rng: sl.f_trig_bank(n),
        lambda rng, n, t: (bools(rng, n),),
    ),
    Spec(
        "sr",
        sl.sr,
        sl.sr_step,
        lambda n, rng: sl.sr_bank(n),
        lambda rng, n, t: (bools(rng, n, 0.2), bools(rng, n, 0.2)),
    ),
    Spec(
        "rs",
        sl.rs,
        sl.rs_step,
        lambda n, rng: sl.rs_bank(n),
        lambda rng, n, t: (bools(rng, n, 0.2), bools(rng, n, 0.2)),
    ),
    Spec(
        "pid",
        sl.pid,
        sl.pid_step,
        lambda n, rng: sl.pid_bank(
            n,
            kp=rng.uniform(0.2, 3.0, n),
            ti_s=rng.choice([0.0, 0.01, 0.5], n),
            td_s=rng.choice([0.0, 0.002], n),
            tf_s=rng.choice([0.0, 0.001], n),
            tt_s=rng.choice([0.0, 0.005], n),
            out_min=rng.uniform(-20.0, 0.0, n),
            out_max=rng.uniform(0.0, 20.0, n),
            direct_acting=bools(rng, n),
        ),
        lambda rng, n, t: (
            rng.normal(0.0, 5.0, n),
            with_nans(rng, rng.normal(0.0, 5.0, n)),
            bools(rng, n, 0.85),
            with_nans(rng, rng.uniform(-30.0, 30.0, n)),
            t,
        ),
    ),
    Spec(
        "ramp",
        sl.ramp,
        sl.ramp_step,
        lambda n, rng: sl.ramp_bank(
            n, rise_per_s=rng.uniform(0.0, 2000.0, n), fall_per_s=rng.uniform(0.0, 500.0, n)
        ),
        lambda rng, n, t: (with_nans(rng, rng.normal(0.0, 3.0, n)), t),
    ),
    Spec(
        "lag",
        sl.lag,
        sl.lag_step,
        lambda n, rng: sl.lag_bank(n, tau_s=rng.choice([0.0, 0.001, 0.01], n)),
        lambda rng, n, t: (with_nans(rng, rng.normal(0.0, 3.0, n)), t),
    ),
    Spec(
        "moving_average",
        sl.moving_average,
        sl.moving_average_step,
        lambda n, rng: sl.moving_average_bank(n, window=5),
        lambda rng, n, t: (with_nans(rng, rng.normal(0.0, 3.0, n), 0.02),),
    ),
    Spec(
        "hysteresis",
        sl.hysteresis,
        sl.hysteresis_step,
        lambda n, rng: sl.hysteresis_bank(
            n, on_at=rng.uniform(-2.0, 2.0, n), off_at=rng.uniform(-2.0, 2.0, n)
        ),
        lambda rng, n, t: (with_nans(rng, rng.normal(0.0, 2.0, n)),),
    ),
    Spec(
        "limits_alarm",
        sl.limits_alarm,
        sl.limits_alarm_step,
        lambda n, rng: sl.limits_alarm_bank(
            n,
            hh_limit=rng.choice([math.nan, 4.0], n),
            h_limit=rng.uniform(1.0, 3.0, n),
            l_limit=rng.uniform(-3.0, -1.0, n),
            ll_limit=-4.0,
            deadband=rng.uniform(0.0, 1.0, n),
            delay_s=rng.choice([0.0, 0.002, 0.005], n),
        ),
        lambda rng, n, t: (with_nans(rng, rng.normal(0.0, 3.0, n)), t),
    ),
]
SPEC_IDS = [s.name for s in SPECS]


def row(bank, i):
    """Instance i of ``bank`` as a bank of one (copies, 2-D state included)."""
    return type(bank)(*(a[i : i + 1].copy() for a in bank))


def row_args(args, i):
    return tuple(a[i : i + 1] if isinstance(a, np.ndarray) else a for a in args)


def run_steps(spec, n, steps, seed):
    """Yield (t_ns, inputs) for ``steps`` scans at irregular 0.5-3 ms intervals."""
    rng = np.random.default_rng(seed)
    t = 1_000 * MS
    for _ in range(steps):
        t += int(rng.integers(MS // 2, 3 * MS))
        yield spec.inputs(rng, n, t)


def test_public_api_is_complete_and_regular():
    blocks = {s.name for s in SPECS}
    names = set(sl.__all__)
    for block in blocks:
        assert {block, f"{block}_bank", f"{block}_step"} <= names
    assert len([n for n in names if n.endswith("Bank")]) == len(blocks)
    assert "warm_up" in names


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_kernel_takes_the_bank_fields_last_and_step_takes_the_bank_first(spec):
    bank = spec.make(2, np.random.default_rng(0))
    kernel_params = list(inspect.signature(spec.kernel.py_func).parameters)
    step_params = list(inspect.signature(spec.step.py_func).parameters)
    inputs = kernel_params[: len(kernel_params) - len(bank)]
    assert kernel_params[len(inputs) :] == list(bank._fields)
    assert step_params == ["bank", *inputs]
    assert all(a.shape[0] == 2 for a in bank)
    assert all(a.flags.c_contiguous for a in bank)


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_instances_are_independent(jit, spec):
    """Stepping n instances at once equals stepping each alone with only its own inputs."""
    n = 6
    bank = spec.make(n, np.random.default_rng(1))
    singles = [row(bank, i) for i in range(n)]
    kernel = jit(spec.kernel)
    for args in run_steps(spec, n, steps=50, seed=2):
        kernel(*args, *bank)
        for i, single in enumerate(singles):
            kernel(*row_args(args, i), *single)
        for i, single in enumerate(singles):
            for name, a, b in zip(bank._fields, bank, single, strict=True):
                np.testing.assert_array_equal(a[i], b[0], err_msg=f"{spec}.{name}[{i}]")


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_step_equals_kernel(jit, spec):
    n = 5
    a = spec.make(n, np.random.default_rng(3))
    b = type(a)(*(x.copy() for x in a))
    step = jit(spec.step)
    for args in run_steps(spec, n, steps=30, seed=4):
        spec.kernel(*args, *a)
        step(b, *args)
    for name, x, y in zip(a._fields, a, b, strict=True):
        np.testing.assert_array_equal(x, y, err_msg=f"{spec}.{name}")


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_mismatched_lengths_are_refused(jit, spec):
    bank = spec.make(3, np.random.default_rng(5))
    args = next(run_steps(spec, 2, steps=1, seed=6))
    with pytest.raises(ValueError, match=r"same length|n rows"):
        jit(spec.kernel)(*args, *bank)


def test_zero_instances_is_fine():
    for spec in SPECS:
        bank = spec.make(0, np.random.default_rng(0))
        args = next(run_steps(spec, 0, steps=1, seed=0))
        spec.step(bank, *args)


# -- allocation ---------------------------------------------------------------------------------


@njit
def repeat(fn, args, times):
    for _ in range(times):
        fn(*args)


@njit
def allocates(x):
    tmp = np.empty(3)
    x[0] = tmp.shape[0]


@pytest.fixture
def nrt_allocations():
    """A function returning numba's count of NRT allocations so far (stats on for this test)."""
    from numba.core.runtime import _nrt_python, rtsys

    was_enabled = _nrt_python.memsys_stats_enabled()
    _nrt_python.memsys_enable_stats()
    try:
        yield lambda: rtsys.get_allocation_stats().alloc
    finally:
        if not was_enabled:
            _nrt_python.memsys_disable_stats()


def allocations_per_call(count, fn, args):
    """NRT allocations made by ``fn(*args)`` itself (boxing at the boundary cancels out)."""
    repeat(fn, args, 1)  # compile first
    before = count()
    repeat(fn, args, 1)
    once = count() - before
    before = count()
    repeat(fn, args, 101)
    many = count() - before
    return (many - once) / 100


def test_allocation_probe_detects_allocation(nrt_allocations):
    assert allocations_per_call(nrt_allocations, allocates, (np.zeros(3),)) == 1


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_steps_and_their_kernels_do_not_allocate(spec, nrt_allocations):
    """Each step compiles its kernel into itself, so this covers the kernel too."""
    n = 64
    bank = spec.make(n, np.random.default_rng(7))
    for args in run_steps(spec, n, steps=2, seed=8):
        assert allocations_per_call(nrt_allocations, spec.step, (bank, *args)) == 0


# -- composition inside a user's njit program ---------------------------------------------------


@njit(nogil=True)
def tank_program(
    level, now_ns, pump_ok, pt_ns, sp, man, auto, preset, alarms, delay, ctrl, valve, runs
):
    """A small user program: level alarms, a PID in auto unless HH, a ramped valve, a counter."""
    sl.limits_alarm_step(alarms, level, now_ns)
    sl.ton_step(delay, pump_ok, pt_ns, now_ns)
    for i in range(level.shape[0]):
        auto[i] = not alarms.hh[i]
    sl.pid_step(ctrl, sp, level, auto, man, now_ns)
    sl.ramp_step(valve, ctrl.out, now_ns)
    sl.ctu_step(runs, delay.q, alarms.ll, preset)


def test_blocks_compose_inside_njit(nrt_allocations):
    n = 4
    banks = (
        sl.limits_alarm_bank(n, hh_limit=90.0, ll_limit=5.0),
        sl.ton_bank(n),
        sl.pid_bank(n, kp=2.0, ti_s=10.0),
        sl.ramp_bank(n, rise_per_s=20.0),
        sl.ctu_bank(n),
    )
    twins = tuple(type(b)(*(a.copy() for a in b)) for b in banks)
    pt = np.full(n, 50 * MS, np.int64)
    sp, man = np.full(n, 50.0), np.zeros(n)
    auto, preset = np.zeros(n, np.bool_), np.full(n, 3, np.int64)
    for k in range(200):
        t = k * 10 * MS
        level = np.array([40.0, 95.0, 2.0, 50.0]) + np.sin(k / 7.0)
        ok = np.full(n, k % 30 < 20)
        args = (level, t, ok, pt, sp, man, auto, preset, *banks)
        tank_program(*args)
        alarms, delay, ctrl, valve, runs = twins
        sl.limits_alarm_step(alarms, level, t)
        sl.ton_step(delay, ok, pt, t)
        sl.pid_step(ctrl, sp, level, ~alarms.hh, man, t)
        sl.ramp_step(valve, ctrl.out, t)
        sl.ctu_step(runs, delay.q, alarms.ll, preset)
    for bank, twin in zip(banks, twins, strict=True):
        for a, b in zip(bank, twin, strict=True):
            np.testing.assert_array_equal(a, b)
    assert banks[4].cv.tolist() == [7, 7, 0, 7]  # 7 pump runs; LL holds instance 2 in reset
    assert allocations_per_call(nrt_allocations, tank_program, args) == 0


def test_warm_up_runs():
    sl.warm_up()
