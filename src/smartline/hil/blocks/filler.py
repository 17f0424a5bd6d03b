"""Filler: one filling valve per instance dosing a volume into each bottle.

A rising ``fill`` with a bottle present opens the valve. The flow rate of that bottle is
``flow_ml_s`` × (1 + ``flow_sigma_pct``/100 · z₁) and the valve, commanded shut when the metered
volume reaches the target (less the nominal volume run in during the closing lag, when
``anticipate``), closes ``close_lag_s`` × (1 + ``lag_sigma_pct``/100 · z₂) later (z seeded
normal draws, one pair per bottle). A rising ``close`` shuts it early (with the same lag).
The volume of each bottle is recorded and counted against ``target_ml`` ± ``tolerance_ml``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from numba import njit

from ._core import BlockBank, BlockType, Event, Param, Signal, frozen, rows
from ._faults import apply_faults
from ._rng import normal

__all__ = ["FILLER", "filler_step"]

PARAMS = frozen(
    target_ml=Param(500.0, "ml", 0.0, 1e6, "volume per bottle"),
    flow_ml_s=Param(100.0, "ml/s", 0.0, 1e6, "nominal flow with the valve open"),
    flow_sigma_pct=Param(1.0, "%", 0.0, 100.0, "bottle-to-bottle spread of the flow"),
    close_lag_s=Param(0.1, "s", 0.0, 60.0, "valve closing lag"),
    lag_sigma_pct=Param(10.0, "%", 0.0, 100.0, "bottle-to-bottle spread of the lag"),
    anticipate=Param(1, "", 0, 1, "1: command the close early by flow × lag", "int"),
    tolerance_ml=Param(5.0, "ml", 0.0, 1e6, "allowed |volume − target|"),
    capacity_ml=Param(550.0, "ml", 0.0, 1e6, "brim volume (more is spilled)"),
)
INPUTS = frozen(
    fill=Signal("", False, "start filling the bottle in place (rising edge)", "bool"),
    close=Signal("", False, "close the valve now (rising edge)", "bool"),
    bottle_present=Signal("", True, "a bottle is under the valve", "bool"),
)
OUTPUTS = frozen(
    volume_ml=Signal("ml", 0.0, "volume in the bottle being filled"),
    last_volume_ml=Signal("ml", 0.0, "volume of the last bottle completed"),
    mean_flow_ml_s=Signal("ml/s", 0.0, "mean flow over the last step"),
    total_l=Signal("l", 0.0, "total dispensed"),
    filling=Signal("", False, "the valve is open", "bool"),
    fill_ok=Signal("", False, "the last bottle is within tolerance", "bool"),
    bottles=Signal("", 0, "bottles completed", "int"),
    underfills=Signal("", 0, "bottles below target − tolerance", "int"),
    overfills=Signal("", 0, "bottles above target + tolerance", "int"),
)
STATES = frozen(
    rate_ml_s=Signal("ml/s", 0.0, "flow of the bottle being filled"),
    lag_s=Signal("s", 0.0, "closing lag of the bottle being filled"),
    open_left_s=Signal("s", 0.0, "time until the valve is shut (inf: no close scheduled)"),
    supply_factor=Signal("", 1.0, "flow multiplier (low supply pressure: < 1)"),
    stuck=Signal("", 0, "valve fault: 0 none, 1 stuck open, 2 stuck closed", "int"),
    fill_prev=Signal("", False, "fill input at the last step", "bool"),
    close_prev=Signal("", False, "close input at the last step", "bool"),
)

_P = rows(PARAMS)
P_TARGET, P_FLOW, P_FLOW_SIGMA = _P["target_ml"], _P["flow_ml_s"], _P["flow_sigma_pct"]
P_LAG, P_LAG_SIGMA, P_ANTICIPATE = _P["close_lag_s"], _P["lag_sigma_pct"], _P["anticipate"]
P_TOL, P_CAPACITY = _P["tolerance_ml"], _P["capacity_ml"]
_IB = rows(INPUTS, "bool")
I_FILL, I_CLOSE, I_BOTTLE = _IB["fill"], _IB["close"], _IB["bottle_present"]
_OF, _OI, _OB = rows(OUTPUTS), rows(OUTPUTS, "int"), rows(OUTPUTS, "bool")
O_VOLUME, O_LAST, O_FLOW, O_TOTAL = (_OF["volume_ml"], _OF["last_volume_ml"], _OF["mean_flow_ml_s"],
                                     _OF["total_l"])
O_FILLING, O_OK = _OB["filling"], _OB["fill_ok"]
O_BOTTLES, O_UNDER, O_OVER = _OI["bottles"], _OI["underfills"], _OI["overfills"]
_SF, _SI, _SB = rows(STATES), rows(STATES, "int"), rows(STATES, "bool")
S_RATE, S_LAG, S_LEFT, S_SUPPLY = (_SF["rate_ml_s"], _SF["lag_s"], _SF["open_left_s"],
                                   _SF["supply_factor"])
S_STUCK, S_FILL_PREV, S_CLOSE_PREV = _SI["stuck"], _SB["fill_prev"], _SB["close_prev"]
STUCK_OPEN = 1
STUCK_CLOSED = 2


@njit(cache=True, nogil=True)  # type: ignore[misc]
def _schedule_close(pf, sf, si, outf, i):  # type: ignore[no-untyped-def]  # pragma: no cover
    """Time until the valve shuts: metered volume to the close point, then the lag."""
    if si[S_STUCK, i] == STUCK_OPEN:
        return math.inf
    close_at = pf[P_TARGET, i]
    if pf[P_ANTICIPATE, i] != 0.0:
        close_at -= pf[P_FLOW, i] * pf[P_LAG, i]
    rate = sf[S_RATE, i]
    if rate <= 0.0:
        return math.inf
    return max(close_at - outf[O_VOLUME, i], 0.0) / rate + sf[S_LAG, i]


@njit(cache=True, nogil=True)  # type: ignore[misc]
def filler_step(pf, inf, inb, outf, outi, outb, sf, si, sb, buf, rng,  # type: ignore[no-untyped-def]  # noqa: PLR0917
                seenf, seeni, seenb, ff, fi, fb, frng, dt_s):  # pragma: no cover
    """Step n valves by ``dt_s``; each bottle's volume is exact whatever the step."""
    for i in range(pf.shape[1]):
        fill_edge = inb[I_FILL, i] and not sb[S_FILL_PREV, i]
        close_edge = inb[I_CLOSE, i] and not sb[S_CLOSE_PREV, i]
        sb[S_FILL_PREV, i] = inb[I_FILL, i]
        sb[S_CLOSE_PREV, i] = inb[I_CLOSE, i]
        filling = outb[O_FILLING, i]
        if fill_edge and not filling and inb[I_BOTTLE, i]:
            z1 = normal(rng, i)
            z2 = normal(rng, i)
            rate = pf[P_FLOW, i] * max(1.0 + pf[P_FLOW_SIGMA, i] / 100.0 * z1, 0.0)
            sf[S_RATE, i] = 0.0 if si[S_STUCK, i] == STUCK_CLOSED else rate * sf[S_SUPPLY, i]
            sf[S_LAG, i] = pf[P_LAG, i] * max(1.0 + pf[P_LAG_SIGMA, i] / 100.0 * z2, 0.0)
            outf[O_VOLUME, i] = 0.0
            sf[S_LEFT, i] = _schedule_close(pf, sf, si, outf, i)
            filling = True
        if filling and close_edge and si[S_STUCK, i] != STUCK_OPEN:
            sf[S_LEFT, i] = min(sf[S_LEFT, i], sf[S_LAG, i])
        poured = 0.0
        if filling:
            run = min(dt_s, sf[S_LEFT, i])
            poured = sf[S_RATE, i] * run
            sf[S_LEFT, i] -= run
            outf[O_VOLUME, i] = min(outf[O_VOLUME, i] + poured, pf[P_CAPACITY, i])
            if sf[S_LEFT, i] <= 0.0:
                filling = False
                vol = outf[O_VOLUME, i]
                outf[O_LAST, i] = vol
                outi[O_BOTTLES, i] += 1
                ok = True
                if vol < pf[P_TARGET, i] - pf[P_TOL, i]:
                    outi[O_UNDER, i] += 1
                    ok = False
                elif vol > pf[P_TARGET, i] + pf[P_TOL, i]:
                    outi[O_OVER, i] += 1
                    ok = False
                outb[O_OK, i] = ok
        outf[O_FLOW, i] = poured / dt_s
        outf[O_TOTAL, i] += poured / 1000.0
        outb[O_FILLING, i] = filling
    apply_faults(outf, outi, outb, seenf, seeni, seenb, ff, fi, fb, frng, dt_s)


def _stuck(bank: BlockBank, i: int, args: Mapping[str, Any]) -> None:
    mode = STUCK_OPEN if args["open"] else STUCK_CLOSED
    bank.state("stuck")[i] = mode
    if mode == STUCK_OPEN:
        bank.state("open_left_s")[i] = math.inf
    elif bank.true_output("filling")[i]:
        bank.state("rate_ml_s")[i] = 0.0
        bank.state("open_left_s")[i] = math.inf


def _free(bank: BlockBank, i: int, args: Mapping[str, Any]) -> None:
    was = int(bank.state("stuck")[i])
    bank.state("stuck")[i] = 0
    if was and bank.true_output("filling")[i]:
        if was == STUCK_CLOSED:
            bank.state("rate_ml_s")[i] = (bank.param("flow_ml_s")[i]
                                          * bank.state("supply_factor")[i])
        bank.state("open_left_s")[i] = _schedule_close(  # type: ignore[no-untyped-call]
            bank.pf, bank.sf, bank.si, bank.outf, i)


def _supply(bank: BlockBank, i: int, args: Mapping[str, Any]) -> None:
    bank.state("supply_factor")[i] = args["factor"]


FILLER = BlockType(
    name="filler",
    description="filling valve: per-bottle dosing with seeded noise, under/overfill counts",
    params=PARAMS, inputs=INPUTS, outputs=OUTPUTS, states=STATES,
    events=frozen(
        valve_stuck=Event("the valve sticks open (overfill, spill) or closed (no flow)", _stuck,
                          frozen(open=Param(1, "", 0, 1, "1: stuck open, 0: stuck closed",
                                            "int"))),
        valve_free=Event("the valve works again (an open fill closes on schedule)", _free),
        supply_pressure=Event("product supply pressure changes the flow of the next bottles",
                              _supply, frozen(factor=Param(1.0, "", 0.0, 10.0, "flow ×"))),
    ),
    kernel=filler_step,
    discretisation="exact: each bottle's flow and closing time are drawn when its fill "
                   "starts and the valve shuts at its exact time inside a step, so volumes do "
                   "not depend on dt",
)
