"""R_TRIG and F_TRIG: one-scan pulses and the standard's initial values."""

from __future__ import annotations

import numpy as np

from smartline.logic import f_trig, f_trig_bank, r_trig, r_trig_bank

CLK = [1, 1, 0, 0, 1, 0, 1, 1, 1, 0]


def run(kernel, bank, clk):
    out = []
    for v in clk:
        kernel(np.array([bool(v)]), *bank)
        out.append(int(bank.q[0]))
    return out


def test_r_trig_one_scan_on_each_rising_edge(jit):
    # CLK already true on the first scan counts as a rising edge (M starts false)
    assert run(jit(r_trig), r_trig_bank(1), CLK) == [1, 0, 0, 0, 1, 0, 1, 0, 0, 0]


def test_f_trig_one_scan_on_each_falling_edge(jit):
    assert run(jit(f_trig), f_trig_bank(1), CLK) == [0, 0, 1, 0, 0, 1, 0, 0, 0, 1]


def test_f_trig_does_not_fire_on_first_scan_with_clk_false(jit):
    assert run(jit(f_trig), f_trig_bank(1), [0, 0, 1, 0]) == [0, 0, 0, 1]


def test_edge_instances_are_independent(jit):
    bank = r_trig_bank(3)
    jit(r_trig)(np.array([True, False, True]), *bank)
    assert bank.q.tolist() == [True, False, True]
    jit(r_trig)(np.array([True, True, False]), *bank)
    assert bank.q.tolist() == [False, True, False]
