"""Capper block: the torque curve, the seeded peak distribution, cross-threads and rejects."""

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


def cap_all(bank: BlockBank, caps: int, dt_s: float = 0.1) -> list[np.ndarray]:
    peaks = []
    for _ in range(caps):
        bank.set_input("cap", None, True)
        run(bank, 0.7, dt_s)
        bank.set_input("cap", None, False)
        bank.step(dt_s)
        peaks.append(bank.output("last_peak_nm").copy())
    return peaks


@pytest.mark.parametrize("dt", [0.001, 0.05])
def test_torque_curve_rises_holds_and_counts(dt: float) -> None:
    bank = make_bank("capper", 1, {"peak_sigma_nm": 0.0, "rise_s": 0.4, "plateau_s": 0.2})
    bank.set_input("cap", 0, True)
    run(bank, 0.2, dt)
    assert bank.output("torque_nm")[0] == pytest.approx(1.0)  # half way up the half cosine
    assert bank.output("capping")[0]
    run(bank, 0.3, dt)
    assert bank.output("torque_nm")[0] == pytest.approx(2.0)
    run(bank, 0.15, dt)
    assert bank.output("torque_nm")[0] == 0.0 and not bank.output("capping")[0]
    assert bank.output("caps")[0] == 1 and bank.output("last_peak_nm")[0] == 2.0
    assert not bank.output("reject")[0]
    run(bank, 1.0, dt)  # the input stays on: no second cap without a new edge
    assert bank.output("caps")[0] == 1


def test_peak_distribution_and_reject_rate() -> None:
    heads, caps, sigma = 100, 30, 0.1
    bank = make_bank("capper", heads, {"peak_sigma_nm": sigma, "min_nm": 1.8, "max_nm": 2.2},
                     seed=3)
    peaks = np.concatenate(cap_all(bank, caps))
    assert peaks.mean() == pytest.approx(2.0, abs=4 * sigma / math.sqrt(peaks.size))
    assert peaks.std() == pytest.approx(sigma, rel=0.08)
    rejects = int(bank.output("rejects").sum())
    assert rejects == int(np.sum((peaks < 1.8) | (peaks > 2.2)))
    assert rejects / peaks.size == pytest.approx(math.erfc(2 / math.sqrt(2)), abs=0.015)
    assert int(bank.output("caps").sum()) == heads * caps


def test_cross_thread_event_gives_a_high_or_low_peak_and_a_reject() -> None:
    bank = make_bank("capper", 2, {"peak_sigma_nm": 0.0})
    bank.event("cross_thread", 0, count=2, high=1)
    bank.event("cross_thread", 1, high=0)
    first, second, third = cap_all(bank, 3)
    assert first.tolist() == pytest.approx([3.0, 0.8])
    assert second.tolist() == pytest.approx([3.0, 2.0])
    assert third.tolist() == pytest.approx([2.0, 2.0])
    assert bank.output("rejects").tolist() == [2, 1]
    assert bank.output("cross_threads").tolist() == [2, 1]


def test_random_cross_threads_at_their_rate() -> None:
    bank = make_bank("capper", 200, {"cross_thread_rate": 0.1, "peak_sigma_nm": 0.0}, seed=9)
    cap_all(bank, 20)
    share = bank.output("cross_threads").sum() / 4000
    assert share == pytest.approx(0.1, abs=0.02)
    assert bank.output("rejects").sum() == bank.output("cross_threads").sum()
