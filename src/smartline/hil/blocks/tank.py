"""Tank: a vessel filled through an inlet valve, emptied by gravity through an outlet valve
(Torricelli: flow ∝ √level) and by a pump, with overflow and dry-run flags and mixing temperature.

Level is volume over area (``area_m2``, or a cylinder of ``diameter_m``). The inlet gives
``inflow_max_m3_s`` × valve %; the outlet ``outflow_k`` × valve % × √level; the pump
``pump_m3_s`` while it runs and the level is above ``suction_level_m`` (below: dry run); an
external ``draw_m3_s`` (a filler) and a ``leak`` take liquid while there is some. Inflow at
``inflow_temp_c`` mixes perfectly with the content.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from numba import njit

from ._core import BlockBank, BlockType, Event, Param, Signal, frozen, rows
from ._faults import apply_faults

__all__ = ["TANK", "tank_area", "tank_step"]

PARAMS = frozen(
    area_m2=Param(1.0, "m²", 1e-6, 1e6, "cross-section (when diameter_m is 0)"),
    diameter_m=Param(0.0, "m", 0.0, 1e3, "cylinder diameter (0: use area_m2)"),
    height_m=Param(2.0, "m", 1e-3, 1e3, "height to the overflow"),
    initial_level_m=Param(0.5, "m", 0.0, 1e3, "level at start"),
    initial_temp_c=Param(20.0, "°C", -100.0, 1000.0, "content temperature at start"),
    inflow_max_m3_s=Param(0.01, "m³/s", 0.0, 1e3, "inflow with the inlet valve 100 % open"),
    outflow_k=Param(0.005, "m³/s/√m", 0.0, 1e3,
                    "gravity outflow at 100 % open per √(level in m) (Torricelli)"),
    pump_m3_s=Param(0.005, "m³/s", 0.0, 1e3, "pump flow while running above suction"),
    suction_level_m=Param(0.05, "m", 0.0, 1e3, "level below which the pump runs dry"),
    max_substep_s=Param(0.05, "s", 1e-4, 10.0, "longest internal step (split scheme)"),
)
INPUTS = frozen(
    inflow_valve_pct=Signal("%", 0.0, "inlet valve opening (0..100)"),
    outflow_valve_pct=Signal("%", 0.0, "outlet (gravity) valve opening (0..100)"),
    pump_run=Signal("", False, "pump run command", "bool"),
    inflow_temp_c=Signal("°C", 20.0, "temperature of the inflow"),
    draw_m3_s=Signal("m³/s", 0.0, "liquid taken by a downstream machine while available"),
)
OUTPUTS = frozen(
    level_m=Signal("m", 0.0, "liquid level"),
    level_pct=Signal("%", 0.0, "level, % of height_m"),
    volume_m3=Signal("m³", 0.0, "liquid volume"),
    inflow_m3_s=Signal("m³/s", 0.0, "mean inflow over the last step"),
    outflow_m3_s=Signal("m³/s", 0.0, "mean outflow (gravity, pump, draw, leak) over the step"),
    temperature_c=Signal("°C", 20.0, "content temperature"),
    overflow=Signal("", False, "the tank overflowed during the last step", "bool"),
    dry_run=Signal("", False, "the pump runs at or below its suction level", "bool"),
    pump_running=Signal("", False, "the pump runs", "bool"),
)
STATES = frozen(
    volume=Signal("m³", 0.0, "liquid volume"),
    temp=Signal("°C", 20.0, "content temperature"),
    inflow_stuck_pct=Signal("%", math.nan, "inlet valve stuck at (NaN: free)"),
    outflow_stuck_pct=Signal("%", math.nan, "outlet valve stuck at (NaN: free)"),
    leak_m3_s=Signal("m³/s", 0.0, "leak flow while there is liquid"),
    spilled_m3=Signal("m³", 0.0, "volume lost over the top so far"),
    pump_failed=Signal("", False, "the pump does not run (the `pump_fail` event)", "bool"),
)

_P = rows(PARAMS)
P_AREA, P_DIAM, P_HEIGHT = _P["area_m2"], _P["diameter_m"], _P["height_m"]
P_QIN, P_K, P_PUMP = _P["inflow_max_m3_s"], _P["outflow_k"], _P["pump_m3_s"]
P_SUCTION, P_SUB = _P["suction_level_m"], _P["max_substep_s"]
_IF, _IB = rows(INPUTS), rows(INPUTS, "bool")
I_VIN, I_VOUT, I_TIN, I_DRAW = (_IF["inflow_valve_pct"], _IF["outflow_valve_pct"],
                                _IF["inflow_temp_c"], _IF["draw_m3_s"])
I_PUMP = _IB["pump_run"]
_OF, _OB = rows(OUTPUTS), rows(OUTPUTS, "bool")
O_LEVEL, O_PCT, O_VOL = _OF["level_m"], _OF["level_pct"], _OF["volume_m3"]
O_QIN, O_QOUT, O_TEMP = _OF["inflow_m3_s"], _OF["outflow_m3_s"], _OF["temperature_c"]
O_OVERFLOW, O_DRY, O_PUMPING = _OB["overflow"], _OB["dry_run"], _OB["pump_running"]
_SF, _SB = rows(STATES), rows(STATES, "bool")
S_VOL, S_TEMP, S_IN_STUCK, S_OUT_STUCK = (_SF["volume"], _SF["temp"], _SF["inflow_stuck_pct"],
                                          _SF["outflow_stuck_pct"])
S_LEAK, S_SPILLED, S_PUMP_FAILED = _SF["leak_m3_s"], _SF["spilled_m3"], _SB["pump_failed"]


@njit(cache=True, nogil=True)  # type: ignore[misc]
def _pct(u: float, stuck: float) -> float:  # pragma: no cover
    if math.isfinite(stuck):
        u = stuck
    if not math.isfinite(u):
        return 0.0
    return min(max(u, 0.0), 100.0) / 100.0


@njit(cache=True, nogil=True)  # type: ignore[misc]
def _constant_flows(v: float, q_in: float, q_pump: float, q_draw: float, v_suction: float,  # noqa: PLR0917
                    tau: float) -> float:  # pragma: no cover
    """Volume after ``tau`` s of the constant flows, exact: the pump only above suction (at
    suction it takes what comes in), the draw only while there is liquid."""
    if q_pump > 0.0:
        if v > v_suction:
            net = q_in - q_pump - q_draw
            v1 = v + net * tau
            if v1 < v_suction:  # reaches suction after t1, then runs at suction or dry
                t1 = (v - v_suction) / -net
                rest = q_in - q_draw
                v1 = v_suction if rest >= 0.0 else v_suction + rest * (tau - t1)
        else:
            rest = q_in - q_draw
            if rest > 0.0:
                t1 = (v_suction - v) / rest
                if t1 >= tau:
                    v1 = v + rest * tau
                else:
                    net = q_in - q_pump - q_draw
                    v1 = v_suction + max(net, 0.0) * (tau - t1)
            else:
                v1 = v + rest * tau
    else:
        v1 = v + (q_in - q_draw) * tau
    return max(v1, 0.0)


@njit(cache=True, nogil=True)  # type: ignore[misc]
def tank_step(pf, inf, inb, outf, outi, outb, sf, si, sb, buf, rng,  # type: ignore[no-untyped-def]  # noqa: PLR0917
              seenf, seeni, seenb, ff, fi, fb, frng, dt_s):  # pragma: no cover
    """Step n tanks by ``dt_s``: Strang splitting of the constant flows (exact, piecewise) and
    the Torricelli outflow (exact in √level), in sub-steps of at most ``max_substep_s``."""
    for i in range(pf.shape[1]):
        d = pf[P_DIAM, i]
        area = 0.25 * math.pi * d * d if d > 0.0 else pf[P_AREA, i]
        v_max = area * pf[P_HEIGHT, i]
        v_suction = area * pf[P_SUCTION, i]
        q_in = pf[P_QIN, i] * _pct(inf[I_VIN, i], sf[S_IN_STUCK, i])
        k_out = pf[P_K, i] * _pct(inf[I_VOUT, i], sf[S_OUT_STUCK, i])
        pumping = inb[I_PUMP, i] and not sb[S_PUMP_FAILED, i]
        q_pump = pf[P_PUMP, i] if pumping else 0.0
        q_draw = inf[I_DRAW, i]
        q_draw = max(q_draw, 0.0) if math.isfinite(q_draw) else 0.0
        q_draw += max(sf[S_LEAK, i], 0.0)
        t_in = inf[I_TIN, i]
        if not math.isfinite(t_in):
            t_in = sf[S_TEMP, i]
        v = sf[S_VOL, i]
        v0 = v
        temp = sf[S_TEMP, i]
        spilled = 0.0
        nsub = max(1, math.ceil(dt_s / pf[P_SUB, i] - 1e-9))
        h = dt_s / nsub
        for _ in range(nsub):
            for half in range(2):
                v = _constant_flows(v, q_in, q_pump, q_draw, v_suction, 0.5 * h)
                added = q_in * 0.5 * h
                kept = v - added
                if v > 0.0 and added > 0.0:
                    temp = (max(kept, 0.0) * temp + added * t_in) / (max(kept, 0.0) + added)
                if v > v_max:
                    spilled += v - v_max
                    v = v_max
                if half == 0 and k_out > 0.0 and v > 0.0:
                    s = math.sqrt(v / area) - k_out * h / (2.0 * area)
                    v = area * s * s if s > 0.0 else 0.0
        sf[S_VOL, i] = v
        sf[S_TEMP, i] = temp
        sf[S_SPILLED, i] += spilled
        level = v / area
        outf[O_LEVEL, i] = level
        outf[O_PCT, i] = 100.0 * level / pf[P_HEIGHT, i]
        outf[O_VOL, i] = v
        outf[O_QIN, i] = q_in
        outf[O_QOUT, i] = max((v0 + q_in * dt_s - spilled - v) / dt_s, 0.0)
        outf[O_TEMP, i] = temp
        outb[O_OVERFLOW, i] = spilled > 0.0
        outb[O_DRY, i] = pumping and v <= v_suction * (1.0 + 1e-9)
        outb[O_PUMPING, i] = pumping
    apply_faults(outf, outi, outb, seenf, seeni, seenb, ff, fi, fb, frng, dt_s)


def tank_area(bank: BlockBank) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Each tank's cross-section in m² (from its diameter when given)."""
    d = bank.param("diameter_m")
    return np.where(d > 0.0, 0.25 * np.pi * d * d, bank.param("area_m2"))


def _set_level(bank: BlockBank, i: int | slice, level: Any) -> None:
    area = tank_area(bank)[i]
    height = bank.param("height_m")[i]
    lv = np.minimum(level, height)
    bank.state("volume")[i] = area * lv
    bank.true_output("volume_m3")[i] = area * lv
    bank.true_output("level_m")[i] = lv
    bank.true_output("level_pct")[i] = 100.0 * lv / height


def _init(bank: BlockBank) -> None:
    _set_level(bank, slice(None), bank.param("initial_level_m"))
    bank.state("temp")[:] = bank.param("initial_temp_c")
    bank.true_output("temperature_c")[:] = bank.param("initial_temp_c")


def _event_set_level(bank: BlockBank, i: int, args: Mapping[str, Any]) -> None:
    _set_level(bank, i, args["level_m"])


def _setter(state: str, arg: str | None, value: Any = None) -> Any:
    def apply(bank: BlockBank, i: int, args: Mapping[str, Any]) -> None:
        bank.state(state)[i] = args[arg] if arg is not None else value
    return apply


def _free(bank: BlockBank, i: int, args: Mapping[str, Any]) -> None:
    bank.state("inflow_stuck_pct")[i] = math.nan
    bank.state("outflow_stuck_pct")[i] = math.nan


_PCT = Param(0.0, "%", 0.0, 100.0, "valve opening it sticks at")

TANK = BlockType(
    name="tank",
    description="tank with inlet valve, gravity outlet valve, pump, overflow and dry run",
    params=PARAMS, inputs=INPUTS, outputs=OUTPUTS, states=STATES,
    events=frozen(
        stuck_inflow=Event("the inlet valve sticks", _setter("inflow_stuck_pct", "pct"),
                           frozen(pct=_PCT)),
        stuck_outflow=Event("the outlet valve sticks", _setter("outflow_stuck_pct", "pct"),
                            frozen(pct=_PCT)),
        free_valves=Event("both valves follow their commands again", _free),
        pump_fail=Event("the pump stops and will not run", _setter("pump_failed", None, True)),
        pump_repair=Event("the pump runs on command again",
                          _setter("pump_failed", None, False)),
        leak=Event("a leak takes a flow while there is liquid (0: stops)",
                   _setter("leak_m3_s", "m3_s"),
                   frozen(m3_s=Param(0.001, "m³/s", 0.0, 1e3, "leak flow"))),
        set_level=Event("the level is set (initial state of a scenario)", _event_set_level,
                        frozen(level_m=Param(0.0, "m", 0.0, 1e3, "new level"))),
    ),
    kernel=tank_step,
    init=_init,
    discretisation="Strang splitting per sub-step of at most max_substep_s: the constant "
                   "flows are integrated exactly (piecewise linear, pump cut at suction) and "
                   "the gravity outflow exactly (√level falls linearly); exact when only one "
                   "of the two acts, second order otherwise; mixing temperature is a stable "
                   "convex update",
)
