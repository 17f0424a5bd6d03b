"""IEC 61131-3 timers TON, TOF and TP, each stepping n instances per call.

Time is the caller's ``now_ns`` (int64 ns); presets ``pt_ns`` are int64 ns per instance, and a
negative preset counts as zero. Each timer is a small state machine in an int8 ``phase`` array,
so an output never re-fires because a preset was changed while it is running.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from ._common import BoolArray, Int8Array, IntArray, Nanoseconds, check_count

__all__ = [
    "TofBank",
    "TonBank",
    "TpBank",
    "tof",
    "tof_bank",
    "tof_step",
    "ton",
    "ton_bank",
    "ton_step",
    "tp",
    "tp_bank",
    "tp_step",
]

# Values of ``phase`` (numba freezes module globals into the compiled code).
IDLE = 0  # IN false (TON, TP) or never switched on (TOF)
TIMING = 1  # ET is running
DONE = 2  # ET reached PT and holds there
ON = 3  # TOF only: IN is true


class TonBank(NamedTuple):
    """n on-delay timers. Outputs ``q`` and ``et_ns``; state ``start_ns`` and ``phase``."""

    q: BoolArray
    et_ns: IntArray
    start_ns: IntArray
    phase: Int8Array


class TofBank(NamedTuple):
    """n off-delay timers. Outputs ``q`` and ``et_ns``; state ``start_ns`` and ``phase``."""

    q: BoolArray
    et_ns: IntArray
    start_ns: IntArray
    phase: Int8Array


class TpBank(NamedTuple):
    """n pulse timers. Outputs ``q`` and ``et_ns``; state ``start_ns`` and ``phase``."""

    q: BoolArray
    et_ns: IntArray
    start_ns: IntArray
    phase: Int8Array


def ton_bank(n: int) -> TonBank:
    """Allocate n on-delay timers, all idle."""
    n = check_count(n)
    return TonBank(
        np.zeros(n, np.bool_), np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int8)
    )


def tof_bank(n: int) -> TofBank:
    """Allocate n off-delay timers, all idle (Q false)."""
    n = check_count(n)
    return TofBank(
        np.zeros(n, np.bool_), np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int8)
    )


def tp_bank(n: int) -> TpBank:
    """Allocate n pulse timers, all idle."""
    n = check_count(n)
    return TpBank(
        np.zeros(n, np.bool_), np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int8)
    )


@njit(cache=True, nogil=True)  # type: ignore[misc]
def ton(  # noqa: PLR0917
    in_: BoolArray,
    pt_ns: IntArray,
    now_ns: Nanoseconds,
    q: BoolArray,
    et_ns: IntArray,
    start_ns: IntArray,
    phase: Int8Array,
) -> None:
    """On-delay: Q rises once IN has been true for PT; ET counts up to PT; IN false resets."""
    n = in_.shape[0]
    if (
        pt_ns.shape[0] != n
        or q.shape[0] != n
        or et_ns.shape[0] != n
        or start_ns.shape[0] != n
        or phase.shape[0] != n
    ):
        raise ValueError("ton: all arrays must have the same length")
    for i in range(n):
        if not in_[i]:
            phase[i] = IDLE
            q[i] = False
            et_ns[i] = 0
            continue
        pt = max(pt_ns[i], 0)
        if phase[i] == IDLE:
            phase[i] = TIMING
            start_ns[i] = now_ns
        if phase[i] == TIMING:
            elapsed = max(now_ns - start_ns[i], 0)
            if elapsed < pt:
                q[i] = False
                et_ns[i] = elapsed
                continue
            phase[i] = DONE
        q[i] = True
        et_ns[i] = pt


@njit(cache=True, nogil=True)  # type: ignore[misc]
def tof(  # noqa: PLR0917
    in_: BoolArray,
    pt_ns: IntArray,
    now_ns: Nanoseconds,
    q: BoolArray,
    et_ns: IntArray,
    start_ns: IntArray,
    phase: Int8Array,
) -> None:
    """Off-delay: Q follows IN up at once and stays true for PT after IN falls."""
    n = in_.shape[0]
    if (
        pt_ns.shape[0] != n
        or q.shape[0] != n
        or et_ns.shape[0] != n
        or start_ns.shape[0] != n
        or phase.shape[0] != n
    ):
        raise ValueError("tof: all arrays must have the same length")
    for i in range(n):
        if in_[i]:
            phase[i] = ON
            q[i] = True
            et_ns[i] = 0
            continue
        pt = max(pt_ns[i], 0)
        if phase[i] == ON:
            phase[i] = TIMING
            start_ns[i] = now_ns
        if phase[i] == TIMING:
            elapsed = max(now_ns - start_ns[i], 0)
            if elapsed < pt:
                q[i] = True
                et_ns[i] = elapsed
                continue
            phase[i] = DONE
        q[i] = False
        et_ns[i] = pt if phase[i] == DONE else 0


@njit(cache=True, nogil=True)  # type: ignore[misc]
def tp(  # noqa: PLR0917
    in_: BoolArray,
    pt_ns: IntArray,
    now_ns: Nanoseconds,
    q: BoolArray,
    et_ns: IntArray,
    start_ns: IntArray,
    phase: Int8Array,
) -> None:
    """Pulse: a rising IN starts a pulse of exactly PT; IN is ignored while the pulse runs."""
    n = in_.shape[0]
    if (
        pt_ns.shape[0] != n
        or q.shape[0] != n
        or et_ns.shape[0] != n
        or start_ns.shape[0] != n
        or phase.shape[0] != n
    ):
        raise ValueError("tp: all arrays must have the same length")
    for i in range(n):
        pt = max(pt_ns[i], 0)
        if phase[i] == IDLE and in_[i]:
            phase[i] = TIMING
            start_ns[i] = now_ns
        if phase[i] == TIMING:
            elapsed = max(now_ns - start_ns[i], 0)
            if elapsed < pt:
                q[i] = True
                et_ns[i] = elapsed
                continue
            phase[i] = DONE
        q[i] = False
        if phase[i] == DONE and in_[i]:
            et_ns[i] = pt
        else:
            phase[i] = IDLE
            et_ns[i] = 0


@njit(cache=True, nogil=True)  # type: ignore[misc]
def ton_step(bank: TonBank, in_: BoolArray, pt_ns: IntArray, now_ns: Nanoseconds) -> None:
    """Step every on-delay timer of ``bank``."""
    ton(in_, pt_ns, now_ns, bank.q, bank.et_ns, bank.start_ns, bank.phase)


@njit(cache=True, nogil=True)  # type: ignore[misc]
def tof_step(bank: TofBank, in_: BoolArray, pt_ns: IntArray, now_ns: Nanoseconds) -> None:
    """Step every off-delay timer of ``bank``."""
    tof(in_, pt_ns, now_ns, bank.q, bank.et_ns, bank.start_ns, bank.phase)


@njit(cache=True, nogil=True)  # type: ignore[misc]
def tp_step(bank: TpBank, in_: BoolArray, pt_ns: IntArray, now_ns: Nanoseconds) -> None:
    """Step every pulse timer of ``bank``."""
    tp(in_, pt_ns, now_ns, bank.q, bank.et_ns, bank.start_ns, bank.phase)
