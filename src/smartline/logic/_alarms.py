"""Limit alarms HH/H/L/LL with deadband and on-delay, stepping n instances per call.

A high level is *beyond* when x >= its limit and clears when x < limit - deadband; a low level
is beyond when x <= its limit and clears when x > limit + deadband. A level becomes active
only after being beyond for ``delay_ns`` without a break (ISA-18.2 on-delay); it clears at
once. A NaN limit disables its level. A NaN input raises nothing new and clears nothing.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from numba import njit

from ._common import (
    BoolArray,
    FloatArray,
    IntArray,
    Nanoseconds,
    check_count,
    float_array,
    ns_array,
)

__all__ = ["LimitsAlarmBank", "limits_alarm", "limits_alarm_bank", "limits_alarm_step"]

# Columns of the (n, 4) state arrays ``since_ns`` and ``pending``.
HH = 0
H = 1
L = 2
LL = 3


class LimitsAlarmBank(NamedTuple):
    """n four-level limit alarms.

    Tuning: ``hh_limit``, ``h_limit``, ``l_limit``, ``ll_limit`` (NaN disables a level),
    ``deadband`` (engineering units), ``delay_ns`` (on-delay). Outputs (active alarms, also
    state): ``hh``, ``h``, ``l``, ``ll``. State: ``since_ns`` and ``pending``, both (n, 4) with
    columns HH, H, L, LL: when each level last went beyond its limit, and whether it is.
    """

    hh_limit: FloatArray
    h_limit: FloatArray
    l_limit: FloatArray
    ll_limit: FloatArray
    deadband: FloatArray
    delay_ns: IntArray
    hh: BoolArray
    h: BoolArray
    l: BoolArray  # noqa: E741 - the standard's name for the low alarm
    ll: BoolArray
    since_ns: IntArray
    pending: BoolArray


def limits_alarm_bank(
    n: int,
    *,
    hh_limit: npt.ArrayLike = np.nan,
    h_limit: npt.ArrayLike = np.nan,
    l_limit: npt.ArrayLike = np.nan,
    ll_limit: npt.ArrayLike = np.nan,
    deadband: npt.ArrayLike = 0.0,
    delay_s: npt.ArrayLike = 0.0,
) -> LimitsAlarmBank:
    """Allocate n limit alarms, none active; levels left at NaN are disabled."""
    n = check_count(n)
    db = float_array(n, deadband, "deadband")
    if np.any(np.isnan(db)) or np.any(db < 0.0):
        raise ValueError(f"deadband: must be >= 0, got {deadband!r}")
    return LimitsAlarmBank(
        float_array(n, hh_limit, "hh_limit"),
        float_array(n, h_limit, "h_limit"),
        float_array(n, l_limit, "l_limit"),
        float_array(n, ll_limit, "ll_limit"),
        db,
        ns_array(n, delay_s, "delay_s"),
        np.zeros(n, np.bool_),
        np.zeros(n, np.bool_),
        np.zeros(n, np.bool_),
        np.zeros(n, np.bool_),
        np.zeros((n, 4), np.int64),
        np.zeros((n, 4), np.bool_),
    )


@njit(cache=True, nogil=True)  # type: ignore[misc]
def _level(  # noqa: PLR0917
    x: float,
    limit: float,
    high: bool,
    deadband: float,
    delay_ns: int,
    now_ns: Nanoseconds,
    active: bool,
    since_ns: IntArray,
    pending: BoolArray,
    i: int,
    col: int,
) -> bool:
    """The new state of one alarm level of instance i."""
    if math.isnan(limit):
        pending[i, col] = False
        return False
    db = max(deadband, 0.0)
    if high:
        beyond = x >= limit
        clear = x < limit - db
    else:
        beyond = x <= limit
        clear = x > limit + db
    if active:
        pending[i, col] = False
        return not clear
    if not beyond:
        pending[i, col] = False
        return False
    if not pending[i, col]:
        pending[i, col] = True
        since_ns[i, col] = now_ns
    if now_ns - since_ns[i, col] >= delay_ns:
        pending[i, col] = False
        return True
    return False


@njit(cache=True, nogil=True)  # type: ignore[misc]
def limits_alarm(  # noqa: PLR0917
    x: FloatArray,
    now_ns: Nanoseconds,
    hh_limit: FloatArray,
    h_limit: FloatArray,
    l_limit: FloatArray,
    ll_limit: FloatArray,
    deadband: FloatArray,
    delay_ns: IntArray,
    hh: BoolArray,
    h: BoolArray,
    l: BoolArray,  # noqa: E741
    ll: BoolArray,
    since_ns: IntArray,
    pending: BoolArray,
) -> None:
    """Evaluate the HH, H, L and LL levels of n alarms on input x."""
    n = x.shape[0]
    if (
        hh_limit.shape[0] != n
        or h_limit.shape[0] != n
        or l_limit.shape[0] != n
        or ll_limit.shape[0] != n
        or deadband.shape[0] != n
        or delay_ns.shape[0] != n
        or hh.shape[0] != n
        or h.shape[0] != n
        or l.shape[0] != n
        or ll.shape[0] != n
        or since_ns.shape[0] != n
        or pending.shape[0] != n
        or since_ns.shape[1] != 4
        or pending.shape[1] != 4
    ):
        raise ValueError("limits_alarm: arrays must have n rows (and 4 columns for the state)")
    for i in range(n):
        xi = x[i]
        db = deadband[i]
        dl = delay_ns[i]
        hh[i] = _level(xi, hh_limit[i], True, db, dl, now_ns, hh[i], since_ns, pending, i, HH)
        h[i] = _level(xi, h_limit[i], True, db, dl, now_ns, h[i], since_ns, pending, i, H)
        l[i] = _level(xi, l_limit[i], False, db, dl, now_ns, l[i], since_ns, pending, i, L)
        ll[i] = _level(xi, ll_limit[i], False, db, dl, now_ns, ll[i], since_ns, pending, i, LL)


@njit(cache=True, nogil=True)  # type: ignore[misc]
def limits_alarm_step(bank: LimitsAlarmBank, x: FloatArray, now_ns: Nanoseconds) -> None:
    """Step every limit alarm of ``bank``."""
    limits_alarm(
        x,
        now_ns,
        bank.hh_limit,
        bank.h_limit,
        bank.l_limit,
        bank.ll_limit,
        bank.deadband,
        bank.delay_ns,
        bank.hh,
        bank.h,
        bank.l,
        bank.ll,
        bank.since_ns,
        bank.pending,
    )
