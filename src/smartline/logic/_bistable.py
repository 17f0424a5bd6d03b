"""IEC 61131-3 bistables SR (set dominant) and RS (reset dominant), n instances per call.

The latched output ``q1`` is both output and state: it starts false, and a caller may preset it
(for example from retained memory) before the first step.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from ._common import BoolArray, check_count

__all__ = ["RsBank", "SrBank", "rs", "rs_bank", "rs_step", "sr", "sr_bank", "sr_step"]


class SrBank(NamedTuple):
    """n set-dominant flip-flops. Output and state ``q1``."""

    q1: BoolArray


class RsBank(NamedTuple):
    """n reset-dominant flip-flops. Output and state ``q1``."""

    q1: BoolArray


def sr_bank(n: int) -> SrBank:
    """Allocate n set-dominant flip-flops, all reset."""
    return SrBank(np.zeros(check_count(n), np.bool_))


def rs_bank(n: int) -> RsBank:
    """Allocate n reset-dominant flip-flops, all reset."""
    return RsBank(np.zeros(check_count(n), np.bool_))


@njit(cache=True, nogil=True)  # type: ignore[misc]
def sr(s1: BoolArray, r: BoolArray, q1: BoolArray) -> None:
    """Set dominant: Q1 := S1 OR (NOT R AND Q1)."""
    n = s1.shape[0]
    if r.shape[0] != n or q1.shape[0] != n:
        raise ValueError("sr: all arrays must have the same length")
    for i in range(n):
        q1[i] = s1[i] or (q1[i] and not r[i])


@njit(cache=True, nogil=True)  # type: ignore[misc]
def rs(s: BoolArray, r1: BoolArray, q1: BoolArray) -> None:
    """Reset dominant: Q1 := NOT R1 AND (S OR Q1)."""
    n = s.shape[0]
    if r1.shape[0] != n or q1.shape[0] != n:
        raise ValueError("rs: all arrays must have the same length")
    for i in range(n):
        q1[i] = not r1[i] and (s[i] or q1[i])


@njit(cache=True, nogil=True)  # type: ignore[misc]
def sr_step(bank: SrBank, s1: BoolArray, r: BoolArray) -> None:
    """Step every set-dominant flip-flop of ``bank``."""
    sr(s1, r, bank.q1)


@njit(cache=True, nogil=True)  # type: ignore[misc]
def rs_step(bank: RsBank, s: BoolArray, r1: BoolArray) -> None:
    """Step every reset-dominant flip-flop of ``bank``."""
    rs(s, r1, bank.q1)
