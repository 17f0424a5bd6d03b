"""Capper: one capping head per instance, with its torque curve, cap count and reject flag.

A rising ``cap`` with a bottle present starts a cap: the torque rises as a half cosine to the
cap's peak over ``rise_s``, holds it for ``plateau_s``, then drops to zero and the cap is
counted. Each cap's peak is ``peak_nm`` + ``peak_sigma_nm`` · z (a seeded normal draw). A
cross-threaded cap (``cross_thread`` event, or at random with ``cross_thread_rate``) peaks at
``cross_low_factor`` (stripped) or ``cross_high_factor`` (binding) times that. A peak outside
``[min_nm, max_nm]`` rejects the bottle.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from numba import njit

from ._core import BlockBank, BlockType, Event, Param, Signal, frozen, rows
from ._faults import apply_faults
from ._rng import normal, uniform

__all__ = ["CAPPER", "capper_step"]

PARAMS = frozen(
    peak_nm=Param(2.0, "N·m", 0.0, 1e4, "application torque (mean peak)"),
    peak_sigma_nm=Param(0.05, "N·m", 0.0, 1e4, "cap-to-cap spread of the peak"),
    rise_s=Param(0.4, "s", 0.0, 60.0, "time to reach the peak"),
    plateau_s=Param(0.2, "s", 0.0, 60.0, "time held at the peak"),
    min_nm=Param(1.8, "N·m", 0.0, 1e4, "lowest good peak"),
    max_nm=Param(2.2, "N·m", 0.0, 1e4, "highest good peak"),
    cross_thread_rate=Param(0.0, "", 0.0, 1.0, "probability that a cap cross-threads"),
    cross_low_factor=Param(0.4, "", 0.0, 10.0, "peak × for a stripped cross-thread"),
    cross_high_factor=Param(1.5, "", 0.0, 10.0, "peak × for a binding cross-thread"),
)
INPUTS = frozen(
    cap=Signal("", False, "start capping (rising edge)", "bool"),
    bottle_present=Signal("", True, "a bottle is in the head", "bool"),
)
OUTPUTS = frozen(
    torque_nm=Signal("N·m", 0.0, "torque now"),
    last_peak_nm=Signal("N·m", 0.0, "peak torque of the last cap"),
    capping=Signal("", False, "a cap is being applied", "bool"),
    reject=Signal("", False, "the last cap's peak was outside [min_nm, max_nm]", "bool"),
    caps=Signal("", 0, "caps applied", "int"),
    rejects=Signal("", 0, "caps rejected", "int"),
    cross_threads=Signal("", 0, "caps that cross-threaded (plant truth)", "int"),
)
STATES = frozen(
    cap_time_s=Signal("s", 0.0, "time into the current cap"),
    cap_peak_nm=Signal("N·m", 0.0, "peak of the current cap"),
    forced=Signal("", 0, "next caps to cross-thread (the event)", "int"),
    forced_high=Signal("", False, "those are binding (else stripped)", "bool"),
    cap_prev=Signal("", False, "cap input at the last step", "bool"),
)

_P = rows(PARAMS)
P_PEAK, P_SIGMA = _P["peak_nm"], _P["peak_sigma_nm"]
P_RISE, P_PLATEAU = _P["rise_s"], _P["plateau_s"]
P_MIN, P_MAX, P_RATE = _P["min_nm"], _P["max_nm"], _P["cross_thread_rate"]
P_LOW, P_HIGH = _P["cross_low_factor"], _P["cross_high_factor"]
_IB = rows(INPUTS, "bool")
I_CAP, I_BOTTLE = _IB["cap"], _IB["bottle_present"]
_OF, _OI, _OB = rows(OUTPUTS), rows(OUTPUTS, "int"), rows(OUTPUTS, "bool")
O_TORQUE, O_PEAK = _OF["torque_nm"], _OF["last_peak_nm"]
O_CAPPING, O_REJECT = _OB["capping"], _OB["reject"]
O_CAPS, O_REJECTS, O_CROSS = _OI["caps"], _OI["rejects"], _OI["cross_threads"]
_SF, _SI, _SB = rows(STATES), rows(STATES, "int"), rows(STATES, "bool")
S_T, S_PEAK, S_FORCED, S_HIGH, S_PREV = (_SF["cap_time_s"], _SF["cap_peak_nm"], _SI["forced"],
                                         _SB["forced_high"], _SB["cap_prev"])


@njit(cache=True, nogil=True)  # type: ignore[misc]
def capper_step(pf, inf, inb, outf, outi, outb, sf, si, sb, buf, rng,  # type: ignore[no-untyped-def]  # noqa: PLR0917
                seenf, seeni, seenb, ff, fi, fb, frng, dt_s):  # pragma: no cover
    """Step n heads by ``dt_s``; peaks and counts are exact whatever the step."""
    for i in range(pf.shape[1]):
        edge = inb[I_CAP, i] and not sb[S_PREV, i]
        sb[S_PREV, i] = inb[I_CAP, i]
        capping = outb[O_CAPPING, i]
        if edge and not capping and inb[I_BOTTLE, i]:
            peak = max(pf[P_PEAK, i] + pf[P_SIGMA, i] * normal(rng, i), 0.0)
            draw = uniform(rng, i)
            side = uniform(rng, i)
            cross = False
            high = side < 0.5
            if si[S_FORCED, i] > 0:
                si[S_FORCED, i] -= 1
                cross = True
                high = sb[S_HIGH, i]
            elif draw <= pf[P_RATE, i]:
                cross = True
            if cross:
                peak *= pf[P_HIGH, i] if high else pf[P_LOW, i]
                outi[O_CROSS, i] += 1
            sf[S_PEAK, i] = peak
            sf[S_T, i] = 0.0
            capping = True
        torque = 0.0
        if capping:
            t = sf[S_T, i] + dt_s
            sf[S_T, i] = t
            rise = pf[P_RISE, i]
            peak = sf[S_PEAK, i]
            if t >= rise + pf[P_PLATEAU, i]:
                capping = False
                outf[O_PEAK, i] = peak
                outi[O_CAPS, i] += 1
                reject = not pf[P_MIN, i] <= peak <= pf[P_MAX, i]
                outb[O_REJECT, i] = reject
                if reject:
                    outi[O_REJECTS, i] += 1
            elif t < rise:
                torque = peak * 0.5 * (1.0 - math.cos(math.pi * t / rise))
            else:
                torque = peak
        outf[O_TORQUE, i] = torque
        outb[O_CAPPING, i] = capping
    apply_faults(outf, outi, outb, seenf, seeni, seenb, ff, fi, fb, frng, dt_s)


def _cross(bank: BlockBank, i: int, args: Mapping[str, Any]) -> None:
    bank.state("forced")[i] += int(args["count"])
    bank.state("forced_high")[i] = bool(args["high"])


CAPPER = BlockType(
    name="capper",
    description="capping head: torque curve per cap with seeded noise, cross-threads, rejects",
    params=PARAMS, inputs=INPUTS, outputs=OUTPUTS, states=STATES,
    events=frozen(
        cross_thread=Event("the next caps cross-thread (high: binding peak, else stripped)",
                           _cross,
                           frozen(count=Param(1, "caps", 1, 1e6, "how many", "int"),
                                  high=Param(1, "", 0, 1, "1: high peak, 0: low peak",
                                             "int"))),
    ),
    kernel=capper_step,
    discretisation="exact: the curve is a closed form of the time into the cap and each peak "
                   "is drawn when its cap starts, so peaks and counts do not depend on dt",
)
