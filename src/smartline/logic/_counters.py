"""IEC 61131-3 counters CTU, CTD and CTUD, each stepping n instances per call.

Count inputs act on their rising edge (the standard's R_EDGE), tracked in ``prev_cu`` /
``prev_cd`` even while reset or load is active, so a count input held through a reset does not
count when the reset is released. CV saturates at the int64 limits instead of wrapping.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from ._common import BoolArray, IntArray, check_count

__all__ = [
    "CtdBank",
    "CtuBank",
    "CtudBank",
    "ctd",
    "ctd_bank",
    "ctd_step",
    "ctu",
    "ctu_bank",
    "ctu_step",
    "ctud",
    "ctud_bank",
    "ctud_step",
]

CV_MAX = np.iinfo(np.int64).max
CV_MIN = np.iinfo(np.int64).min


class CtuBank(NamedTuple):
    """n up-counters. Outputs ``q`` (CV >= PV) and ``cv``; state ``prev_cu``."""

    q: BoolArray
    cv: IntArray
    prev_cu: BoolArray


class CtdBank(NamedTuple):
    """n down-counters. Outputs ``q`` (CV <= 0) and ``cv``; state ``prev_cd``."""

    q: BoolArray
    cv: IntArray
    prev_cd: BoolArray


class CtudBank(NamedTuple):
    """n up/down counters. Outputs ``qu`` (CV >= PV), ``qd`` (CV <= 0), ``cv``; edge state."""

    qu: BoolArray
    qd: BoolArray
    cv: IntArray
    prev_cu: BoolArray
    prev_cd: BoolArray


def ctu_bank(n: int) -> CtuBank:
    """Allocate n up-counters at CV = 0."""
    n = check_count(n)
    return CtuBank(np.zeros(n, np.bool_), np.zeros(n, np.int64), np.zeros(n, np.bool_))


def ctd_bank(n: int) -> CtdBank:
    """Allocate n down-counters at CV = 0 (load them with ``ld`` before counting down)."""
    n = check_count(n)
    return CtdBank(np.zeros(n, np.bool_), np.zeros(n, np.int64), np.zeros(n, np.bool_))


def ctud_bank(n: int) -> CtudBank:
    """Allocate n up/down counters at CV = 0."""
    n = check_count(n)
    return CtudBank(
        np.zeros(n, np.bool_),
        np.zeros(n, np.bool_),
        np.zeros(n, np.int64),
        np.zeros(n, np.bool_),
        np.zeros(n, np.bool_),
    )


@njit(cache=True, nogil=True)  # type: ignore[misc]
def ctu(  # noqa: PLR0917
    cu: BoolArray,
    r: BoolArray,
    pv: IntArray,
    q: BoolArray,
    cv: IntArray,
    prev_cu: BoolArray,
) -> None:
    """Up-counter: R sets CV to 0 (priority), else a rising CU adds 1; Q = CV >= PV."""
    n = cu.shape[0]
    if (
        r.shape[0] != n
        or pv.shape[0] != n
        or q.shape[0] != n
        or cv.shape[0] != n
        or prev_cu.shape[0] != n
    ):
        raise ValueError("ctu: all arrays must have the same length")
    for i in range(n):
        edge = cu[i] and not prev_cu[i]
        prev_cu[i] = cu[i]
        if r[i]:
            cv[i] = 0
        elif edge and cv[i] < CV_MAX:
            cv[i] += 1
        q[i] = cv[i] >= pv[i]


@njit(cache=True, nogil=True)  # type: ignore[misc]
def ctd(  # noqa: PLR0917
    cd: BoolArray,
    ld: BoolArray,
    pv: IntArray,
    q: BoolArray,
    cv: IntArray,
    prev_cd: BoolArray,
) -> None:
    """Down-counter: LD sets CV to PV (priority), else a rising CD subtracts 1; Q = CV <= 0."""
    n = cd.shape[0]
    if (
        ld.shape[0] != n
        or pv.shape[0] != n
        or q.shape[0] != n
        or cv.shape[0] != n
        or prev_cd.shape[0] != n
    ):
        raise ValueError("ctd: all arrays must have the same length")
    for i in range(n):
        edge = cd[i] and not prev_cd[i]
        prev_cd[i] = cd[i]
        if ld[i]:
            cv[i] = pv[i]
        elif edge and cv[i] > CV_MIN:
            cv[i] -= 1
        q[i] = cv[i] <= 0


@njit(cache=True, nogil=True)  # type: ignore[misc]
def ctud(  # noqa: PLR0917
    cu: BoolArray,
    cd: BoolArray,
    r: BoolArray,
    ld: BoolArray,
    pv: IntArray,
    qu: BoolArray,
    qd: BoolArray,
    cv: IntArray,
    prev_cu: BoolArray,
    prev_cd: BoolArray,
) -> None:
    """Up/down counter: R (first) zeroes, LD loads PV; CU and CD edges in one scan cancel."""
    n = cu.shape[0]
    if (
        cd.shape[0] != n
        or r.shape[0] != n
        or ld.shape[0] != n
        or pv.shape[0] != n
        or qu.shape[0] != n
        or qd.shape[0] != n
        or cv.shape[0] != n
        or prev_cu.shape[0] != n
        or prev_cd.shape[0] != n
    ):
        raise ValueError("ctud: all arrays must have the same length")
    for i in range(n):
        up = cu[i] and not prev_cu[i]
        down = cd[i] and not prev_cd[i]
        prev_cu[i] = cu[i]
        prev_cd[i] = cd[i]
        if r[i]:
            cv[i] = 0
        elif ld[i]:
            cv[i] = pv[i]
        elif up and not down:
            if cv[i] < CV_MAX:
                cv[i] += 1
        elif down and not up and cv[i] > CV_MIN:
            cv[i] -= 1
        qu[i] = cv[i] >= pv[i]
        qd[i] = cv[i] <= 0


@njit(cache=True, nogil=True)  # type: ignore[misc]
def ctu_step(bank: CtuBank, cu: BoolArray, r: BoolArray, pv: IntArray) -> None:
    """Step every up-counter of ``bank``."""
    ctu(cu, r, pv, bank.q, bank.cv, bank.prev_cu)


@njit(cache=True, nogil=True)  # type: ignore[misc]
def ctd_step(bank: CtdBank, cd: BoolArray, ld: BoolArray, pv: IntArray) -> None:
    """Step every down-counter of ``bank``."""
    ctd(cd, ld, pv, bank.q, bank.cv, bank.prev_cd)


@njit(cache=True, nogil=True)  # type: ignore[misc]
def ctud_step(  # noqa: PLR0917
    bank: CtudBank, cu: BoolArray, cd: BoolArray, r: BoolArray, ld: BoolArray, pv: IntArray
) -> None:
    """Step every up/down counter of ``bank``."""
    ctud(cu, cd, r, ld, pv, bank.qu, bank.qd, bank.cv, bank.prev_cu, bank.prev_cd)
