"""TON, TOF and TP against the IEC 61131-3 timing diagrams (1 ms scans unless stated)."""

from __future__ import annotations

import numpy as np
import pytest

from smartline.logic import tof, tof_bank, ton, ton_bank, ton_step, tp, tp_bank

MS = 1_000_000


def run(kernel, bank, ins, pt_ms, times_ms=None):
    """Step one instance through ``ins`` at ``times_ms`` (default 0, 1, 2 ...); Q and ET (ms)."""
    pt = np.array([pt_ms * MS], np.int64)
    times_ms = range(len(ins)) if times_ms is None else times_ms
    qs, ets = [], []
    for t, v in zip(times_ms, ins, strict=True):
        kernel(np.array([bool(v)]), pt, int(t * MS), *bank)
        qs.append(int(bank.q[0]))
        ets.append(int(bank.et_ns[0]) / MS)
    return qs, ets


def test_ton_diagram(jit):
    ins = [0, 1, 1, 1, 1, 1, 0, 1, 1, 0]
    qs, ets = run(jit(ton), ton_bank(1), ins, pt_ms=3)
    assert qs == [0, 0, 0, 0, 1, 1, 0, 0, 0, 0]
    assert ets == [0, 0, 1, 2, 3, 3, 0, 0, 1, 0]


def test_ton_rises_at_first_scan_at_or_after_pt(jit):
    # scans at irregular times: IN rises at 0, PT = 10 ms; 9.9 ms is not enough, 12 ms is
    qs, ets = run(jit(ton), ton_bank(1), [1, 1, 1, 1], pt_ms=10, times_ms=[0, 5, 9.9, 12])
    assert qs == [0, 0, 0, 1]
    assert ets == [0, 5, 9.9, 10]


def test_ton_zero_and_negative_preset_follow_in(jit):
    for pt_ms in (0, -5):
        qs, ets = run(jit(ton), ton_bank(1), [0, 1, 1, 0, 1], pt_ms=pt_ms)
        assert qs == [0, 1, 1, 0, 1]
        assert ets == [0, 0, 0, 0, 0]


def test_ton_done_latches_while_in_stays_true(jit):
    kernel = jit(ton)
    bank = ton_bank(1)
    on = np.array([True])
    kernel(on, np.array([2 * MS]), 0, *bank)
    kernel(on, np.array([2 * MS]), 2 * MS, *bank)
    assert bank.q[0]
    kernel(on, np.array([50 * MS]), 3 * MS, *bank)  # preset raised after Q came on
    assert bank.q[0]
    assert bank.et_ns[0] == 50 * MS


def test_tof_diagram(jit):
    ins = [0, 1, 1, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0]
    qs, ets = run(jit(tof), tof_bank(1), ins, pt_ms=3)
    assert qs == [0, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 0]
    assert ets == [0, 0, 0, 0, 1, 2, 3, 3, 0, 0, 0, 0, 1, 2, 3]


def test_tof_expired_stays_off_when_preset_is_raised(jit):
    kernel = jit(tof)
    bank = tof_bank(1)
    kernel(np.array([True]), np.array([2 * MS]), 0, *bank)
    kernel(np.array([False]), np.array([2 * MS]), 1 * MS, *bank)
    kernel(np.array([False]), np.array([2 * MS]), 3 * MS, *bank)
    assert not bank.q[0]
    kernel(np.array([False]), np.array([60 * MS]), 4 * MS, *bank)
    assert not bank.q[0]


def test_tof_zero_preset_follows_in(jit):
    qs, _ = run(jit(tof), tof_bank(1), [0, 1, 0, 1, 0], pt_ms=0)
    assert qs == [0, 1, 0, 1, 0]


def test_tp_diagram(jit):
    ins = [0, 1, 0, 1, 1, 1, 1, 0, 1, 1, 0, 0, 0]
    qs, ets = run(jit(tp), tp_bank(1), ins, pt_ms=3)
    assert qs == [0, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 0, 0]
    assert ets == [0, 0, 1, 2, 3, 3, 3, 0, 0, 1, 2, 0, 0]


def test_tp_pulse_is_exactly_pt_and_not_retriggerable(jit):
    kernel = jit(tp)
    bank = tp_bank(1)
    pt = np.array([10 * MS])
    high = []
    for t in range(
        40
    ):  # IN toggles every ms: only the first edge and the first after the pulse count
        kernel(np.array([t % 2 == 0]), pt, t * MS, *bank)
        high.append(bool(bank.q[0]))
    assert high[:10] == [True] * 10
    assert high[10] is False
    starts = [t for t in range(1, 40) if high[t] and not high[t - 1]]
    assert starts == [12, 24, 36]  # the next rising edge after each pulse has ended
    assert all(sum(high[s : s + 11]) == 10 for s in starts[:-1])


def test_tp_first_scan_with_in_true_starts_a_pulse(jit):
    qs, _ = run(jit(tp), tp_bank(1), [1, 1, 1], pt_ms=2)
    assert qs == [1, 1, 0]


def test_timer_presets_per_instance(jit):
    bank = ton_bank(3)
    pt = np.array([1, 2, 3], np.int64) * MS
    on = np.ones(3, np.bool_)
    seen = []
    for t in range(5):
        jit(ton)(on, pt, t * MS, *bank)
        seen.append(bank.q.astype(int).tolist())
    assert seen == [[0, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 1], [1, 1, 1]]


def test_step_wrapper_matches_kernel():
    a, b = ton_bank(2), ton_bank(2)
    pt = np.array([2 * MS, 5 * MS])
    for t, v in enumerate([0, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1]):
        x = np.array([bool(v), not v])
        ton(x, pt, t * MS, *a)
        ton_step(b, x, pt, t * MS)
        for fa, fb in zip(a, b, strict=True):
            np.testing.assert_array_equal(fa, fb)


@pytest.mark.parametrize("factory", [ton_bank, tof_bank, tp_bank])
def test_bank_shapes_and_dtypes(factory):
    bank = factory(4)
    assert bank.q.dtype == np.bool_
    assert bank.et_ns.dtype == np.int64
    assert all(a.shape == (4,) for a in bank)
    with pytest.raises(ValueError, match=">= 0"):
        factory(-1)
