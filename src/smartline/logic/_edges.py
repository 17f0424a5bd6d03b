"""IEC 61131-3 edge detectors R_TRIG and F_TRIG, each stepping n instances per call.

``prev`` holds CLK from the previous scan and starts false, as the standard's initial values
give: R_TRIG fires on the first scan if CLK is already true, F_TRIG never does.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from ._common import BoolArray, check_count

__all__ = [
    "FTrigBank",
    "RTrigBank",
    "f_trig",
    "f_trig_bank",
    "f_trig_step",
    "r_trig",
    "r_trig_bank",
    "r_trig_step",
]


class RTrigBank(NamedTuple):
    """n rising-edge detectors. Output ``q``; state ``prev`` (CLK of the previous scan)."""

    q: BoolArray
    prev: BoolArray


class FTrigBank(NamedTuple):
    """n falling-edge detectors. Output ``q``; state ``prev`` (CLK of the previous scan)."""

    q: BoolArray
    prev: BoolArray


def r_trig_bank(n: int) -> RTrigBank:
    """Allocate n rising-edge detectors."""
    n = check_count(n)
    return RTrigBank(np.zeros(n, np.bool_), np.zeros(n, np.bool_))


def f_trig_bank(n: int) -> FTrigBank:
    """Allocate n falling-edge detectors."""
    n = check_count(n)
    return FTrigBank(np.zeros(n, np.bool_), np.zeros(n, np.bool_))


@njit(cache=True, nogil=True)  # type: ignore[misc]
def r_trig(clk: BoolArray, q: BoolArray, prev: BoolArray) -> None:
    """Rising edge: Q is true for the one scan in which CLK goes from false to true."""
    n = clk.shape[0]
    if q.shape[0] != n or prev.shape[0] != n:
        raise ValueError("r_trig: all arrays must have the same length")
    for i in range(n):
        q[i] = clk[i] and not prev[i]
        prev[i] = clk[i]


@njit(cache=True, nogil=True)  # type: ignore[misc]
def f_trig(clk: BoolArray, q: BoolArray, prev: BoolArray) -> None:
    """Falling edge: Q is true for the one scan in which CLK goes from true to false."""
    n = clk.shape[0]
    if q.shape[0] != n or prev.shape[0] != n:
        raise ValueError("f_trig: all arrays must have the same length")
    for i in range(n):
        q[i] = prev[i] and not clk[i]
        prev[i] = clk[i]


@njit(cache=True, nogil=True)  # type: ignore[misc]
def r_trig_step(bank: RTrigBank, clk: BoolArray) -> None:
    """Step every rising-edge detector of ``bank``."""
    r_trig(clk, bank.q, bank.prev)


@njit(cache=True, nogil=True)  # type: ignore[misc]
def f_trig_step(bank: FTrigBank, clk: BoolArray) -> None:
    """Step every falling-edge detector of ``bank``."""
    f_trig(clk, bank.q, bank.prev)
