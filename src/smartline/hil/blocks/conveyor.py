"""Conveyor: a belt carrying discrete items past up to four photo-eyes to its discharge end.

Items are the positions of their leading edges (m from the infeed end) in a fixed-capacity
ring per conveyor, front item first. They move with the belt, queue nose to tail when the
discharge is blocked, and leave (counted as discharged) when the leading edge passes the end.
A photo-eye at ``eyeK_m`` (negative: not fitted) is blocked while an item's body
``(x − item_length_m, x]`` covers it and counts its rising edges. A jam stops the belt and
raises the load torque, which a plant file wires to a motor block's ``load_pct``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from numba import njit

from ._core import BlockBank, BlockType, Event, Param, Signal, frozen, rows
from ._faults import apply_faults

__all__ = ["CONVEYOR", "EYES", "conveyor_step"]

EYES = 4
"""Photo-eyes per conveyor (``eye1`` … ``eye4``); unfitted ones have a negative position."""

SIZES = frozen(capacity=Param(64, "items", 1, 1_000_000, "ring capacity per conveyor", "int"))
PARAMS = frozen(
    length_m=Param(5.0, "m", 0.01, 1e4, "belt length, infeed to discharge"),
    speed_m_s=Param(0.5, "m/s", 0.0, 100.0, "belt speed when `run` is on (no speed input)"),
    speed_scale=Param(1.0, "m/s per unit", 0.0, 1e6,
                      "belt speed per unit of the `speed` input (e.g. m/s per Hz)"),
    item_length_m=Param(0.08, "m", 0.001, 100.0, "item length along the belt"),
    min_gap_m=Param(0.02, "m", 0.0, 100.0, "free belt the infeed needs behind the last item"),
    eye1_m=Param(0.1, "m", -1.0, 1e4, "photo-eye 1 position (negative: not fitted)"),
    eye2_m=Param(4.9, "m", -1.0, 1e4, "photo-eye 2 position (negative: not fitted)"),
    eye3_m=Param(-1.0, "m", -1.0, 1e4, "photo-eye 3 position (negative: not fitted)"),
    eye4_m=Param(-1.0, "m", -1.0, 1e4, "photo-eye 4 position (negative: not fitted)"),
    base_load_pct=Param(20.0, "%", 0.0, 1000.0, "load torque of the empty belt"),
    item_load_pct=Param(1.0, "%", 0.0, 1000.0, "load torque added per item on the belt"),
    jam_load_pct=Param(250.0, "%", 0.0, 1000.0, "load torque while jammed"),
)
INPUTS = frozen(
    run=Signal("", False, "run the belt at speed_m_s (used when `speed` is NaN)", "bool"),
    speed=Signal("unit", math.nan, "belt drive speed (× speed_scale → m/s; NaN: use `run`)"),
    infeed=Signal("", False, "one item offered at the infeed (rising edge)", "bool"),
    infeed_per_min=Signal("1/min", 0.0, "items offered at the infeed per minute"),
    discharge_blocked=Signal("", False, "the next machine refuses items: they queue", "bool"),
)
OUTPUTS = frozen(
    belt_speed_m_s=Signal("m/s", 0.0, "belt speed"),
    load_pct=Signal("%", 0.0, "load torque for a coupled motor, % of its rated torque"),
    **{f"eye{k}_blocked": Signal("", False, f"photo-eye {k} sees an item", "bool")
       for k in range(1, EYES + 1)},
    **{f"eye{k}_count": Signal("", 0, f"rising edges of photo-eye {k}", "int")
       for k in range(1, EYES + 1)},
    items=Signal("", 0, "items on the belt", "int"),
    injected=Signal("", 0, "items that entered the belt", "int"),
    discharged=Signal("", 0, "items that left at the discharge end", "int"),
    infeed_blocked=Signal("", False, "an item waits at the infeed for room", "bool"),
    jammed=Signal("", False, "the belt is jammed", "bool"),
)
STATES = frozen(
    arrival=Signal("", 0.0, "progress toward the next rate arrival (1: due)"),
    head=Signal("", 0, "ring slot of the front item", "int"),
    pending=Signal("", 0, "items offered by edges or `inject` and not yet on the belt", "int"),
    infeed_prev=Signal("", False, "infeed input at the last step", "bool"),
    jam=Signal("", False, "jammed by the `jam` event", "bool"),
)

_P = rows(PARAMS)
P_LENGTH, P_SPEED, P_SCALE = _P["length_m"], _P["speed_m_s"], _P["speed_scale"]
P_ITEM, P_GAP = _P["item_length_m"], _P["min_gap_m"]
P_EYE = (_P["eye1_m"], _P["eye2_m"], _P["eye3_m"], _P["eye4_m"])
P_BASE, P_PER_ITEM, P_JAM = _P["base_load_pct"], _P["item_load_pct"], _P["jam_load_pct"]
_IF, _IB = rows(INPUTS), rows(INPUTS, "bool")
I_SPEED, I_RATE = _IF["speed"], _IF["infeed_per_min"]
I_RUN, I_INFEED, I_BLOCKED = _IB["run"], _IB["infeed"], _IB["discharge_blocked"]
_OF, _OI, _OB = rows(OUTPUTS), rows(OUTPUTS, "int"), rows(OUTPUTS, "bool")
O_SPEED, O_LOAD = _OF["belt_speed_m_s"], _OF["load_pct"]
O_EYE = (_OB["eye1_blocked"], _OB["eye2_blocked"], _OB["eye3_blocked"], _OB["eye4_blocked"])
O_COUNT = (_OI["eye1_count"], _OI["eye2_count"], _OI["eye3_count"], _OI["eye4_count"])
O_ITEMS, O_INJECTED, O_DISCHARGED = _OI["items"], _OI["injected"], _OI["discharged"]
O_INFEED_BLOCKED, O_JAMMED = _OB["infeed_blocked"], _OB["jammed"]
_SF, _SI, _SB = rows(STATES), rows(STATES, "int"), rows(STATES, "bool")
S_ARRIVAL, S_HEAD, S_PENDING = _SF["arrival"], _SI["head"], _SI["pending"]
S_INFEED_PREV, S_JAM = _SB["infeed_prev"], _SB["jam"]
_EPS = 1e-12


@njit(cache=True, nogil=True)  # type: ignore[misc]
def _cross(pf, outi, i, x0, x1, pred_x0, pred_x1, length):  # type: ignore[no-untyped-def]  # noqa: PLR0917  # pragma: no cover
    """Count the photo-eyes whose beam the leading edge moving x0 → x1 breaks (from clear)."""
    item = pf[P_ITEM, i]
    for k in range(EYES):
        e = pf[P_EYE[k], i]
        if e < 0.0 or e > length or not x0 < e <= x1:
            continue
        # where the item ahead was when this one reached the eye: a rising edge needs a gap
        pred = min(pred_x0 + (e - x0), pred_x1)
        if pred - item > e + _EPS:
            outi[O_COUNT[k], i] += 1


@njit(cache=True, nogil=True)  # type: ignore[misc]
def conveyor_step(pf, inf, inb, outf, outi, outb, sf, si, sb, buf, rng,  # type: ignore[no-untyped-def]  # noqa: PLR0917
                  seenf, seeni, seenb, ff, fi, fb, frng, dt_s):  # pragma: no cover
    """Step n conveyors by ``dt_s`` (exact for a speed held over the step, see the docs)."""
    cap = buf.shape[1]
    for i in range(pf.shape[1]):
        length = pf[P_LENGTH, i]
        item = pf[P_ITEM, i]
        s = inf[I_SPEED, i]
        if math.isfinite(s):
            v = max(s * pf[P_SCALE, i], 0.0)
        else:
            v = pf[P_SPEED, i] if inb[I_RUN, i] else 0.0
        jammed = sb[S_JAM, i]
        if jammed:
            v = 0.0
        if inb[I_INFEED, i] and not sb[S_INFEED_PREV, i]:
            si[S_PENDING, i] += 1
        sb[S_INFEED_PREV, i] = inb[I_INFEED, i]
        d = v * dt_s
        head = si[S_HEAD, i]
        count = outi[O_ITEMS, i]
        blocked_out = inb[I_BLOCKED, i]
        # 1. move the items, front first; a queued item stops one item length behind the next
        pred_x0 = math.inf
        pred_x1 = math.inf
        for j in range(count):
            slot = (head + j) % cap
            x0 = buf[i, slot]
            limit = pred_x1 - item
            if j == 0:
                limit = length if blocked_out else math.inf
            x1 = max(min(x0 + d, limit), x0)
            _cross(pf, outi, i, x0, x1, pred_x0, pred_x1, length)
            buf[i, slot] = x1
            pred_x0 = x0
            pred_x1 = x1
        # 2. items whose leading edge passed the end leave
        while count > 0 and buf[i, head] > length:
            head = (head + 1) % cap
            count -= 1
            outi[O_DISCHARGED, i] += 1
        if count == 0:
            pred_x0 = math.inf
            pred_x1 = math.inf
        # 3. arrivals: offered items (at the start of the step), then the rate, each placed
        # where it is at the end of the step; one waits at the infeed while there is no room
        waiting = False
        t = 0.0
        rate_s = inf[I_RATE, i] / 60.0
        if not rate_s > 0.0 or not math.isfinite(rate_s):
            rate_s = 0.0
        for _ in range(cap + 1):
            if si[S_PENDING, i] > 0:
                t_arr = 0.0
                from_rate = False
            elif rate_s > 0.0:
                t_arr = t + (1.0 - sf[S_ARRIVAL, i]) / rate_s
                from_rate = True
                if t_arr > dt_s:
                    sf[S_ARRIVAL, i] += rate_s * (dt_s - t)
                    break
            else:
                break
            t_arr = max(t_arr, t)
            room = count < cap and (count == 0 or min(pred_x0 + v * t_arr, pred_x1) - item
                                    >= pf[P_GAP, i] - _EPS)
            if not room:
                waiting = True
                if from_rate:
                    sf[S_ARRIVAL, i] = 1.0
                break
            x1 = v * (dt_s - t_arr)
            if count > 0:
                x1 = min(x1, pred_x1 - item)
            x1 = max(x1, 0.0)
            _cross(pf, outi, i, -v * t_arr - 1e-9, x1, pred_x0 if count > 0 else math.inf,
                   pred_x1 if count > 0 else math.inf, length)
            buf[i, (head + count) % cap] = x1
            count += 1
            outi[O_INJECTED, i] += 1
            pred_x0 = -v * t_arr  # where it would have been at t = 0 on the moving belt
            pred_x1 = x1
            t = t_arr
            if from_rate:
                sf[S_ARRIVAL, i] = 0.0
            else:
                si[S_PENDING, i] -= 1
        if rate_s == 0.0 and sf[S_ARRIVAL, i] > 1.0:
            sf[S_ARRIVAL, i] = 1.0
        si[S_HEAD, i] = head
        outi[O_ITEMS, i] = count
        # 4. photo-eyes see the bodies now on the belt
        for k in range(EYES):
            e = pf[P_EYE[k], i]
            seen = False
            if e >= 0.0:
                for j in range(count):
                    x = buf[i, (head + j) % cap]
                    if x - item < e <= x:
                        seen = True
                        break
                    if x - item < e:
                        break  # items behind are further back still
            outb[O_EYE[k], i] = seen
        outf[O_SPEED, i] = v
        outf[O_LOAD, i] = pf[P_JAM, i] if jammed else pf[P_BASE, i] + pf[P_PER_ITEM, i] * count
        outb[O_INFEED_BLOCKED, i] = waiting
        outb[O_JAMMED, i] = jammed
    apply_faults(outf, outi, outb, seenf, seeni, seenb, ff, fi, fb, frng, dt_s)


def _jam(bank: BlockBank, i: int, args: Mapping[str, Any]) -> None:
    bank.state("jam")[i] = True
    bank.true_output("jammed")[i] = True
    bank.true_output("belt_speed_m_s")[i] = 0.0
    bank.true_output("load_pct")[i] = bank.param("jam_load_pct")[i]


def _clear_jam(bank: BlockBank, i: int, args: Mapping[str, Any]) -> None:
    bank.state("jam")[i] = False
    bank.true_output("jammed")[i] = False


def _inject(bank: BlockBank, i: int, args: Mapping[str, Any]) -> None:
    bank.state("pending")[i] += int(args["count"])


def _clear(bank: BlockBank, i: int, args: Mapping[str, Any]) -> None:
    bank.true_output("items")[i] = 0
    bank.state("pending")[i] = 0
    for k in range(1, EYES + 1):
        bank.true_output(f"eye{k}_blocked")[i] = False


def _capacity(sizes: Mapping[str, int]) -> int:
    return sizes["capacity"]


CONVEYOR = BlockType(
    name="conveyor",
    description="belt conveyor with discrete items, photo-eyes, discharge and jams",
    params=PARAMS, inputs=INPUTS, outputs=OUTPUTS, states=STATES, sizes=SIZES,
    events=frozen(
        jam=Event("the belt jams: items stop, the load torque rises to jam_load_pct", _jam),
        clear_jam=Event("the jam is cleared", _clear_jam),
        inject=Event("items put on the infeed (enter as room allows)", _inject,
                     frozen(count=Param(1, "items", 1, 1e6, "how many", "int"))),
        clear=Event("the belt is cleared of items by hand", _clear),
    ),
    kernel=conveyor_step,
    buffer_len=_capacity,
    discretisation="exact for a belt speed held over the step: items move v·dt, queue at "
                   "their exact stop positions, rate arrivals enter at their exact times and "
                   "every beam crossing inside the step is counted (any dt)",
)
