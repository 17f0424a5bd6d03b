"""CNC machine: a program cycle milling a rectangular pocket, spindle, tool wear and alarms.

A cycle is ``handling_s`` of part change (at home, ``safe_z_mm`` up) then ``passes`` laps of
the ``width_mm`` × ``height_mm`` rectangle at ``feed_mm_min`` × override, each ``step_down_mm``
deeper down to ``depth_mm``. Tool wear is the cutting time over ``tool_life_s``; the spindle
load is ``cut_load_pct`` × (1 + ``wear_load_gain`` × wear) while cutting. Execution states
(:class:`CncExecution`) and alarms (:class:`CncAlarm`) are integer codes, chosen to map onto
MTConnect's Execution and onto GRBL's states.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from enum import IntEnum
from typing import Any

from numba import njit

from ._core import BlockBank, BlockType, Event, Param, Signal, frozen, rows
from ._faults import apply_faults

__all__ = ["CNC", "CncAlarm", "CncExecution", "cnc_step", "cnc_timing"]


class CncExecution(IntEnum):
    """The ``execution`` output (MTConnect Execution: READY ACTIVE FEED_HOLD STOPPED
    PROGRAM_COMPLETED)."""

    READY = 0
    ACTIVE = 1
    FEED_HOLD = 2
    STOPPED = 3
    COMPLETED = 4


class CncAlarm(IntEnum):
    """The ``alarm`` output, by rising severity (the most severe active alarm is shown)."""

    NONE = 0
    TOOL_WORN = 1  # tool life used up: the running cycle ends, no new one starts
    SPINDLE_OVERLOAD = 2  # load above overload_pct: program stopped
    TOOL_BROKEN = 3  # the `tool_break` event: stopped until a tool change
    EMERGENCY_STOP = 4  # the `e_stop` event: stopped, spindle off at once


PARAMS = frozen(
    width_mm=Param(100.0, "mm", 0.001, 1e5, "pocket size along X"),
    height_mm=Param(60.0, "mm", 0.001, 1e5, "pocket size along Y"),
    depth_mm=Param(4.0, "mm", 0.001, 1e4, "pocket depth"),
    step_down_mm=Param(1.0, "mm", 0.001, 1e4, "depth per pass"),
    feed_mm_min=Param(1200.0, "mm/min", 0.001, 1e6, "programmed feed"),
    handling_s=Param(20.0, "s", 0.0, 1e5, "part change time per cycle"),
    safe_z_mm=Param(5.0, "mm", -1e4, 1e4, "Z while not cutting"),
    spindle_rpm=Param(8000.0, "rpm", 0.0, 1e6, "programmed spindle speed"),
    spindle_accel_rpm_s=Param(4000.0, "rpm/s", 0.0, 1e7, "spindle ramp (0: immediate)"),
    idle_load_pct=Param(5.0, "%", 0.0, 1000.0, "spindle load turning in air"),
    cut_load_pct=Param(40.0, "%", 0.0, 1000.0, "spindle load cutting with a new tool"),
    wear_load_gain=Param(0.5, "", 0.0, 100.0, "load × (1 + gain × wear fraction)"),
    tool_life_s=Param(3600.0, "s", 0.001, 1e9, "cutting time a tool lasts"),
    overload_pct=Param(120.0, "%", 0.0, 1000.0, "spindle load that stops the program"),
)
INPUTS = frozen(
    cycle_start=Signal("", False, "cycle start / resume (rising edge)", "bool"),
    feed_hold=Signal("", False, "feed hold while on", "bool"),
    stop=Signal("", False, "program stop (rising edge; cycle start resumes)", "bool"),
    reset=Signal("", False, "reset: back to READY, clears alarms whose cause is gone "
                 "(rising edge)", "bool"),
    auto_cycle=Signal("", False, "start the next part when one completes (bar feeder)",
                      "bool"),
    feed_override_pct=Signal("%", 100.0, "feed override (0..200)"),
    spindle_override_pct=Signal("%", 100.0, "spindle speed override (0..200)"),
)
OUTPUTS = frozen(
    x_mm=Signal("mm", 0.0, "X position"),
    y_mm=Signal("mm", 0.0, "Y position"),
    z_mm=Signal("mm", 0.0, "Z position"),
    spindle_speed_rpm=Signal("rpm", 0.0, "spindle speed"),
    spindle_load_pct=Signal("%", 0.0, "spindle load"),
    tool_wear_pct=Signal("%", 0.0, "tool life used"),
    cycle_time_s=Signal("s", 0.0, "programmed cycle time at 100 % feed"),
    cycle_elapsed_s=Signal("s", 0.0, "time into the current cycle"),
    progress_pct=Signal("%", 0.0, "program progress"),
    cutting_time_s=Signal("s", 0.0, "cutting time of the current tool"),
    execution=Signal("", 0, "CncExecution code", "int"),
    part_count=Signal("", 0, "parts completed", "int"),
    alarm=Signal("", 0, "CncAlarm code (0: none)", "int"),
    alarm_active=Signal("", False, "an alarm is active", "bool"),
    cutting=Signal("", False, "the tool is in the material", "bool"),
)
STATES = frozen(
    program_s=Signal("s", 0.0, "position in the program, in seconds at 100 % feed"),
    broken=Signal("", False, "the tool is broken", "bool"),
    start_prev=Signal("", False, "cycle_start at the last step", "bool"),
    stop_prev=Signal("", False, "stop at the last step", "bool"),
    reset_prev=Signal("", False, "reset at the last step", "bool"),
)

_P = rows(PARAMS)
P_W, P_H, P_DEPTH, P_STEP = _P["width_mm"], _P["height_mm"], _P["depth_mm"], _P["step_down_mm"]
P_FEED, P_HANDLING, P_SAFE_Z = _P["feed_mm_min"], _P["handling_s"], _P["safe_z_mm"]
P_RPM, P_RPM_ACC = _P["spindle_rpm"], _P["spindle_accel_rpm_s"]
P_IDLE, P_CUT, P_GAIN = _P["idle_load_pct"], _P["cut_load_pct"], _P["wear_load_gain"]
P_LIFE, P_OVERLOAD = _P["tool_life_s"], _P["overload_pct"]
_IF, _IB = rows(INPUTS), rows(INPUTS, "bool")
I_OVR, I_SPINDLE_OVR = _IF["feed_override_pct"], _IF["spindle_override_pct"]
I_START, I_HOLD, I_STOP, I_RESET, I_AUTO = (_IB["cycle_start"], _IB["feed_hold"], _IB["stop"],
                                            _IB["reset"], _IB["auto_cycle"])
_OF, _OI, _OB = rows(OUTPUTS), rows(OUTPUTS, "int"), rows(OUTPUTS, "bool")
O_X, O_Y, O_Z = _OF["x_mm"], _OF["y_mm"], _OF["z_mm"]
O_RPM, O_LOAD, O_WEAR = _OF["spindle_speed_rpm"], _OF["spindle_load_pct"], _OF["tool_wear_pct"]
O_CYCLE, O_ELAPSED, O_PROGRESS = _OF["cycle_time_s"], _OF["cycle_elapsed_s"], _OF["progress_pct"]
O_CUT_TIME = _OF["cutting_time_s"]
O_EXEC, O_PARTS, O_ALARM = _OI["execution"], _OI["part_count"], _OI["alarm"]
O_ALARM_ACTIVE, O_CUTTING = _OB["alarm_active"], _OB["cutting"]
_SF, _SB = rows(STATES), rows(STATES, "bool")
S_PROG = _SF["program_s"]
S_BROKEN, S_START_PREV, S_STOP_PREV, S_RESET_PREV = (_SB["broken"], _SB["start_prev"],
                                                     _SB["stop_prev"], _SB["reset_prev"])
READY, ACTIVE, FEED_HOLD, STOPPED, COMPLETED = (int(e) for e in CncExecution)
WORN, OVERLOAD, BROKEN, ESTOP = (int(a) for a in list(CncAlarm)[1:])


@njit(cache=True, nogil=True)  # type: ignore[misc]
def _passes(depth: float, step: float) -> int:  # pragma: no cover
    return max(1, math.ceil(depth / step - 1e-9))


@njit(cache=True, nogil=True)  # type: ignore[misc]
def cnc_step(pf, inf, inb, outf, outi, outb, sf, si, sb, buf, rng,  # type: ignore[no-untyped-def]  # noqa: PLR0917
             seenf, seeni, seenb, ff, fi, fb, frng, dt_s):  # pragma: no cover
    """Step n machines by ``dt_s``: program time, parts and wear are exact for a feed
    override held over the step; alarms are checked at the end of the step."""
    for i in range(pf.shape[1]):
        w = pf[P_W, i]
        h = pf[P_H, i]
        perimeter = 2.0 * (w + h)
        feed_s = pf[P_FEED, i] / 60.0
        passes = _passes(pf[P_DEPTH, i], pf[P_STEP, i])
        lap_s = perimeter / feed_s
        handling = pf[P_HANDLING, i]
        cycle = handling + passes * lap_s
        start = inb[I_START, i] and not sb[S_START_PREV, i]
        stop = inb[I_STOP, i] and not sb[S_STOP_PREV, i]
        reset = inb[I_RESET, i] and not sb[S_RESET_PREV, i]
        sb[S_START_PREV, i] = inb[I_START, i]
        sb[S_STOP_PREV, i] = inb[I_STOP, i]
        sb[S_RESET_PREV, i] = inb[I_RESET, i]
        exe = outi[O_EXEC, i]
        alarm = outi[O_ALARM, i]
        cut_total = outf[O_CUT_TIME, i]
        life = pf[P_LIFE, i]
        if reset:
            alarm = BROKEN if sb[S_BROKEN, i] else 0
            exe = READY
            sf[S_PROG, i] = 0.0
            outf[O_ELAPSED, i] = 0.0
        if cut_total >= life and alarm < WORN:
            alarm = WORN
        if stop and exe in (ACTIVE, FEED_HOLD):
            exe = STOPPED
        if start and alarm < OVERLOAD:
            if exe == STOPPED:
                exe = ACTIVE
            elif exe in (READY, COMPLETED) and alarm == 0:
                exe = ACTIVE
                sf[S_PROG, i] = 0.0
                outf[O_ELAPSED, i] = 0.0
        if exe == ACTIVE and inb[I_HOLD, i]:
            exe = FEED_HOLD
        elif exe == FEED_HOLD and not inb[I_HOLD, i]:
            exe = ACTIVE
        ovr = inf[I_OVR, i]
        ovr = min(max(ovr, 0.0), 200.0) / 100.0 if math.isfinite(ovr) else 1.0
        cut_step = 0.0
        left = dt_s
        p = sf[S_PROG, i]
        if exe == ACTIVE:
            for _ in range(1000):
                if left <= 0.0:
                    break
                if p < handling:
                    d = min(left, handling - p)
                    p += d
                    left -= d
                    outf[O_ELAPSED, i] += d
                    continue
                if ovr <= 0.0:
                    outf[O_ELAPSED, i] += left
                    break
                d = min(left, (cycle - p) / ovr)
                p += d * ovr
                left -= d
                cut_step += d
                outf[O_ELAPSED, i] += d
                if p >= cycle * (1.0 - 1e-12):
                    outi[O_PARTS, i] += 1
                    if inb[I_AUTO, i] and cut_total + cut_step < life:
                        p = 0.0
                        outf[O_ELAPSED, i] = 0.0
                    else:
                        p = cycle
                        exe = COMPLETED
                        break
            sf[S_PROG, i] = p
        cut_total += cut_step
        wear = cut_total / life
        if cut_total >= life and alarm < WORN:
            alarm = WORN
        cutting = exe == ACTIVE and handling <= p < cycle
        # spindle: on while a program runs (held or not), ramped
        sovr = inf[I_SPINDLE_OVR, i]
        sovr = min(max(sovr, 0.0), 200.0) / 100.0 if math.isfinite(sovr) else 1.0
        target = pf[P_RPM, i] * sovr if exe in (ACTIVE, FEED_HOLD) else 0.0
        rpm = outf[O_RPM, i]
        ramp = pf[P_RPM_ACC, i] * dt_s if pf[P_RPM_ACC, i] > 0.0 else math.inf
        rpm = min(target, rpm + ramp) if target > rpm else max(target, rpm - ramp)
        load = 0.0
        if rpm > 0.0:
            load = pf[P_IDLE, i]
            if cutting:
                load = pf[P_CUT, i] * (1.0 + pf[P_GAIN, i] * wear)
        if load > pf[P_OVERLOAD, i] and alarm < OVERLOAD:
            alarm = OVERLOAD
            exe = STOPPED
            cutting = False
        # axes: where the program is
        x = 0.0
        y = 0.0
        z = pf[P_SAFE_Z, i]
        if handling <= p < cycle:
            q = (p - handling) / lap_s
            lap = min(int(q), passes - 1)
            s = (q - lap) * perimeter
            z = -min((lap + 1) * pf[P_STEP, i], pf[P_DEPTH, i])
            if s < w:
                x = s
            elif s < w + h:
                x = w
                y = s - w
            elif s < 2.0 * w + h:
                x = w - (s - w - h)
                y = h
            else:
                y = h - (s - 2.0 * w - h)
        outf[O_X, i] = x
        outf[O_Y, i] = y
        outf[O_Z, i] = z
        outf[O_RPM, i] = rpm
        outf[O_LOAD, i] = load
        outf[O_WEAR, i] = 100.0 * wear
        outf[O_CYCLE, i] = cycle
        outf[O_PROGRESS, i] = 100.0 * p / cycle if cycle > 0.0 else 0.0
        outf[O_CUT_TIME, i] = cut_total
        outi[O_EXEC, i] = exe
        outi[O_ALARM, i] = alarm
        outb[O_ALARM_ACTIVE, i] = alarm != 0
        outb[O_CUTTING, i] = cutting
    apply_faults(outf, outi, outb, seenf, seeni, seenb, ff, fi, fb, frng, dt_s)


def cnc_timing(bank: BlockBank) -> tuple[Any, Any]:
    """(cycle time at 100 % feed, cutting time per cycle) of every machine, in s."""
    pf = {name: bank.param(name) for name in bank.type.params}
    passes = [_passes.py_func(d, s) for d, s in zip(pf["depth_mm"], pf["step_down_mm"],
                                                     strict=True)]
    cut = [p * 2.0 * (w + h) / (f / 60.0) for p, w, h, f in
           zip(passes, pf["width_mm"], pf["height_mm"], pf["feed_mm_min"], strict=True)]
    return [c + hd for c, hd in zip(cut, pf["handling_s"], strict=True)], cut


def _init(bank: BlockBank) -> None:
    bank.true_output("z_mm")[:] = bank.param("safe_z_mm")
    bank.true_output("cycle_time_s")[:] = cnc_timing(bank)[0]


def _alarm(bank: BlockBank, i: int, code: int) -> None:
    out = bank.true_output("alarm")
    out[i] = max(int(out[i]), code)
    bank.true_output("alarm_active")[i] = True
    if bank.true_output("execution")[i] in (ACTIVE, FEED_HOLD):
        bank.true_output("execution")[i] = STOPPED
    bank.true_output("cutting")[i] = False


def _tool_break(bank: BlockBank, i: int, args: Mapping[str, Any]) -> None:
    bank.state("broken")[i] = True
    _alarm(bank, i, BROKEN)


def _e_stop(bank: BlockBank, i: int, args: Mapping[str, Any]) -> None:
    _alarm(bank, i, ESTOP)
    bank.true_output("spindle_speed_rpm")[i] = 0.0
    bank.true_output("spindle_load_pct")[i] = 0.0


def _tool_change(bank: BlockBank, i: int, args: Mapping[str, Any]) -> None:
    bank.state("broken")[i] = False
    bank.true_output("cutting_time_s")[i] = 0.0
    bank.true_output("tool_wear_pct")[i] = 0.0
    alarm = bank.true_output("alarm")
    if alarm[i] in (WORN, BROKEN):
        alarm[i] = 0
        bank.true_output("alarm_active")[i] = False


def _set_wear(bank: BlockBank, i: int, args: Mapping[str, Any]) -> None:
    life = bank.param("tool_life_s")[i]
    bank.true_output("cutting_time_s")[i] = life * args["pct"] / 100.0
    bank.true_output("tool_wear_pct")[i] = args["pct"]


CNC = BlockType(
    name="cnc",
    description="CNC mill: pocket program cycle, spindle load, tool wear, parts, alarms",
    params=PARAMS, inputs=INPUTS, outputs=OUTPUTS, states=STATES,
    events=frozen(
        tool_break=Event("the tool breaks: alarm, program stopped until a tool change",
                         _tool_break),
        tool_change=Event("a new tool: wear zero, tool alarms cleared", _tool_change),
        e_stop=Event("emergency stop: alarm, program stopped, spindle off", _e_stop),
        set_wear=Event("the tool has this wear already (initial state)", _set_wear,
                       frozen(pct=Param(0.0, "%", 0.0, 1e4, "tool life used"))),
    ),
    kernel=cnc_step,
    init=_init,
    discretisation="exact for a feed override held over the step: program time, part "
                   "count, cutting time and wear advance piecewise through the phases; "
                   "alarms (wear, overload) are checked at the end of each step",
)
