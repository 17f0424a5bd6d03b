"""CTU, CTD and CTUD: edge counting, reset/load priority, outputs and CV limits."""

from __future__ import annotations

import numpy as np

from smartline.logic import ctd, ctd_bank, ctu, ctu_bank, ctud, ctud_bank

I64 = np.iinfo(np.int64)


def b(v):
    return np.array([bool(v)])


def i(v):
    return np.array([v], np.int64)


def test_ctu_counts_rising_edges_only(jit):
    kernel, bank = jit(ctu), ctu_bank(1)
    cvs, qs = [], []
    for cu in [1, 1, 0, 1, 0, 0, 1, 1, 1, 0, 1]:
        kernel(b(cu), b(0), i(3), *bank)
        cvs.append(int(bank.cv[0]))
        qs.append(int(bank.q[0]))
    assert cvs == [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 4]
    assert qs == [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1]


def test_ctu_reset_has_priority_and_held_cu_does_not_count_on_release(jit):
    kernel, bank = jit(ctu), ctu_bank(1)
    kernel(b(1), b(0), i(5), *bank)
    assert bank.cv[0] == 1
    kernel(b(0), b(1), i(5), *bank)
    kernel(b(1), b(1), i(5), *bank)  # edge while reset: reset wins
    assert bank.cv[0] == 0
    kernel(b(1), b(0), i(5), *bank)  # CU still high after reset released: no edge
    assert bank.cv[0] == 0
    kernel(b(0), b(0), i(5), *bank)
    kernel(b(1), b(0), i(5), *bank)
    assert bank.cv[0] == 1


def test_ctu_q_with_zero_preset_and_saturation(jit):
    kernel, bank = jit(ctu), ctu_bank(1)
    kernel(b(0), b(0), i(0), *bank)
    assert bank.q[0]  # CV 0 >= PV 0
    bank.cv[0] = I64.max - 1
    for cu in [1, 0, 1, 0, 1]:
        kernel(b(cu), b(0), i(10), *bank)
    assert bank.cv[0] == I64.max


def test_ctd_load_priority_counting_and_q(jit):
    kernel, bank = jit(ctd), ctd_bank(1)
    kernel(b(0), b(1), i(2), *bank)
    assert (bank.cv[0], bank.q[0]) == (2, False)
    kernel(b(1), b(1), i(2), *bank)  # edge while loading: load wins
    assert bank.cv[0] == 2
    seen = []
    for cd in [0, 1, 0, 1, 0, 1]:
        kernel(b(cd), b(0), i(2), *bank)
        seen.append((int(bank.cv[0]), bool(bank.q[0])))
    assert seen == [(2, False), (1, False), (1, False), (0, True), (0, True), (-1, True)]


def test_ctd_saturates_at_int64_min(jit):
    kernel, bank = jit(ctd), ctd_bank(1)
    bank.cv[0] = I64.min + 1
    for cd in [1, 0, 1, 0, 1]:
        kernel(b(cd), b(0), i(0), *bank)
    assert bank.cv[0] == I64.min


def test_ctud_priorities_and_outputs(jit):
    kernel, bank = jit(ctud), ctud_bank(1)

    def step(cu, cd, r, ld, pv=3):
        kernel(b(cu), b(cd), b(r), b(ld), i(pv), *bank)
        return int(bank.cv[0]), int(bank.qu[0]), int(bank.qd[0])

    assert step(0, 0, 0, 0) == (0, 0, 1)
    assert step(1, 0, 0, 0) == (1, 0, 0)
    assert step(0, 0, 0, 0) == (1, 0, 0)
    assert step(1, 1, 0, 0) == (1, 0, 0)  # both edges in one scan cancel
    assert step(0, 0, 0, 0) == (1, 0, 0)
    assert step(1, 0, 0, 0) == (2, 0, 0)
    assert step(0, 0, 0, 0) == (2, 0, 0)
    assert step(1, 0, 0, 0) == (3, 1, 0)
    assert step(0, 1, 0, 0) == (2, 0, 0)
    assert step(0, 0, 0, 1) == (3, 1, 0)  # load
    assert step(0, 0, 1, 1) == (0, 0, 1)  # reset beats load
    assert step(0, 1, 0, 0) == (-1, 0, 1)
    assert step(0, 0, 0, 0) == (-1, 0, 1)
    assert step(0, 1, 0, 0) == (-2, 0, 1)


def test_ctud_limits(jit):
    kernel, bank = jit(ctud), ctud_bank(2)
    bank.cv[:] = [I64.max, I64.min]
    f = np.zeros(2, np.bool_)
    t = np.ones(2, np.bool_)
    kernel(np.array([True, False]), np.array([False, True]), f, f, np.zeros(2, np.int64), *bank)
    assert bank.cv.tolist() == [I64.max, I64.min]
    assert bank.qu.tolist() == [True, False]
    assert bank.qd.tolist() == [False, True]
    kernel(f, f, t, f, np.zeros(2, np.int64), *bank)
    assert bank.cv.tolist() == [0, 0]
