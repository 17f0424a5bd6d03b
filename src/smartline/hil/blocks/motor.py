"""Motor and drive: a VFD-fed induction motor with ramps, current, I²t overload and faults.

Speed follows the reference at the ramp rates (``rated_hz`` per ``accel_s``/``decel_s``), the
way a drive's ramp generator does; current follows the torque drawn; a thermal image of the
motor trips the drive (fault 7122) when the current stays too high; a load beyond the current
limit stalls the motor (7121). Fault codes follow the ABB ACS580 firmware manual's numbering
(:class:`DriveFault`); ``status_word`` is loosely after the ABB Drives profile.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from enum import IntEnum
from typing import Any

from numba import njit

from ._core import BlockBank, BlockType, Event, Param, Signal, frozen, rows
from ._faults import apply_faults

__all__ = ["MOTOR", "DriveFault", "motor_step"]


class DriveFault(IntEnum):
    """The ``fault_code`` output (ACS580-style numbers)."""

    NONE = 0
    OVERCURRENT = 2310
    DC_UNDERVOLTAGE = 3220  # power loss
    MOTOR_STALL = 7121
    MOTOR_OVERLOAD = 7122  # the I²t thermal image reached its limit
    EXTERNAL = 9081  # a trip from outside (the ``trip`` event)


INF = math.inf
PARAMS = frozen(
    rated_hz=Param(50.0, "Hz", 1.0, 1000.0, "motor nominal frequency"),
    max_hz=Param(60.0, "Hz", 1.0, 1000.0, "reference limit (both directions)"),
    rated_rpm=Param(1450.0, "rpm", 1.0, 100000.0, "shaft speed at rated_hz"),
    accel_s=Param(5.0, "s", 0.0, 3600.0, "ramp time from 0 to rated_hz (0: immediate)"),
    decel_s=Param(5.0, "s", 0.0, 3600.0, "ramp time from rated_hz to 0 (0: immediate)"),
    coast_s=Param(10.0, "s", 0.0, 3600.0, "free coast from rated_hz to 0 when not driven"),
    rated_current_a=Param(10.0, "A", 0.001, 1e5, "motor nominal current"),
    no_load_current_pct=Param(35.0, "%", 0.0, 99.0, "magnetising current, % of rated"),
    friction_pct=Param(5.0, "%", 0.0, 1000.0, "torque lost to friction while turning"),
    accel_torque_pct=Param(30.0, "%", 0.0, 1000.0, "extra torque while accelerating"),
    current_limit_pct=Param(150.0, "%", 10.0, 1000.0, "drive current limit, % of rated"),
    thermal_tau_s=Param(300.0, "s", 0.1, 1e6, "motor thermal time constant"),
    overload_pct=Param(115.0, "%", 50.0, 500.0, "current the motor bears continuously"),
    reset_level_pct=Param(80.0, "%", 0.0, 100.0, "thermal load below which a trip resets"),
    stall_s=Param(20.0, "s", 0.0, 3600.0, "time at the current limit before a stall trip"),
    at_speed_band_hz=Param(0.5, "Hz", 0.0, 100.0, "|speed − reference| counted as at speed"),
)
INPUTS = frozen(
    run=Signal("", False, "run command (level)", "bool"),
    ref_hz=Signal("Hz", 0.0, "speed reference (negative: reverse)"),
    ref_rpm=Signal("rpm", math.nan, "speed reference in rpm; when a number it replaces ref_hz"),
    load_pct=Signal("%", 0.0, "load torque of the driven machine, % of rated torque"),
    reset=Signal("", False, "fault reset (rising edge)", "bool"),
)
OUTPUTS = frozen(
    speed_hz=Signal("Hz", 0.0, "output frequency"),
    speed_rpm=Signal("rpm", 0.0, "shaft speed"),
    current_a=Signal("A", 0.0, "motor current"),
    torque_pct=Signal("%", 0.0, "motor torque, % of rated"),
    thermal_pct=Signal("%", 0.0, "thermal load, % of the trip level"),
    running=Signal("", False, "modulating on a run command", "bool"),
    at_speed=Signal("", False, "running and within at_speed_band_hz of the reference", "bool"),
    ready=Signal("", True, "powered and not faulted", "bool"),
    fault=Signal("", False, "tripped", "bool"),
    fault_code=Signal("", 0, "DriveFault code of the trip (0: none)", "int"),
    status_word=Signal("", 3, "bits 0 ready to switch on, 1 ready to run, 2 running, "
                       "3 tripped, 8 at speed", "int"),
)
STATES = frozen(
    thermal=Signal("", 0.0, "I²t image: 1.0 is the heat of rated current held for ever"),
    stall_time_s=Signal("s", 0.0, "time spent at the current limit"),
    powered=Signal("", True, "mains present", "bool"),
    reset_prev=Signal("", False, "reset input at the last step", "bool"),
)

_P = rows(PARAMS)
P_RATED_HZ, P_MAX_HZ, P_RATED_RPM = _P["rated_hz"], _P["max_hz"], _P["rated_rpm"]
P_ACCEL, P_DECEL, P_COAST = _P["accel_s"], _P["decel_s"], _P["coast_s"]
P_I_RATED, P_I0 = _P["rated_current_a"], _P["no_load_current_pct"]
P_FRICTION, P_ACC_TORQUE = _P["friction_pct"], _P["accel_torque_pct"]
P_I_LIMIT, P_TAU = _P["current_limit_pct"], _P["thermal_tau_s"]
P_OVERLOAD, P_RESET_LEVEL = _P["overload_pct"], _P["reset_level_pct"]
P_STALL, P_BAND = _P["stall_s"], _P["at_speed_band_hz"]
_IF, _IB = rows(INPUTS), rows(INPUTS, "bool")
I_REF, I_REF_RPM, I_LOAD = _IF["ref_hz"], _IF["ref_rpm"], _IF["load_pct"]
I_RUN, I_RESET = _IB["run"], _IB["reset"]
_OF, _OI, _OB = rows(OUTPUTS), rows(OUTPUTS, "int"), rows(OUTPUTS, "bool")
O_SPEED, O_RPM = _OF["speed_hz"], _OF["speed_rpm"]
O_CURRENT, O_TORQUE = _OF["current_a"], _OF["torque_pct"]
O_THERMAL, O_CODE, O_STATUS = _OF["thermal_pct"], _OI["fault_code"], _OI["status_word"]
O_RUNNING, O_AT_SPEED, O_READY, O_FAULT = (_OB["running"], _OB["at_speed"], _OB["ready"],
                                           _OB["fault"])
_SF, _SB = rows(STATES), rows(STATES, "bool")
S_THERMAL, S_STALL, S_POWERED, S_RESET_PREV = (_SF["thermal"], _SF["stall_time_s"],
                                               _SB["powered"], _SB["reset_prev"])
CODE_STALL = int(DriveFault.MOTOR_STALL)
CODE_OVERLOAD = int(DriveFault.MOTOR_OVERLOAD)


@njit(cache=True, nogil=True)  # type: ignore[misc]
def _toward(x: float, target: float, up: float, down: float) -> float:  # pragma: no cover
    """Move ``x`` toward ``target`` by at most ``up`` (growing |x|) or ``down`` (shrinking)."""
    if target == x:
        return x
    grow = abs(target) > abs(x) and (x == 0.0 or (target > 0.0) == (x > 0.0))
    step = up if grow else down
    if target > x:
        return min(target, x + step)
    return max(target, x - step)


@njit(cache=True, nogil=True)  # type: ignore[misc]
def motor_step(pf, inf, inb, outf, outi, outb, sf, si, sb, buf, rng,  # type: ignore[no-untyped-def]  # noqa: PLR0917
               seenf, seeni, seenb, ff, fi, fb, frng, dt_s):  # pragma: no cover
    """Step n drives by ``dt_s`` (ramps exact; the I²t image exact for the end-of-step current)."""
    for i in range(pf.shape[1]):
        rated = pf[P_RATED_HZ, i]
        faulted = outb[O_FAULT, i]
        powered = sb[S_POWERED, i]
        theta_trip = (pf[P_OVERLOAD, i] / 100.0) ** 2
        if inb[I_RESET, i] and not sb[S_RESET_PREV, i] and faulted and powered \
                and sf[S_THERMAL, i] <= pf[P_RESET_LEVEL, i] / 100.0 * theta_trip:
            faulted = False
            outi[O_CODE, i] = 0
            sf[S_STALL, i] = 0.0
        sb[S_RESET_PREV, i] = inb[I_RESET, i]
        running = powered and not faulted and inb[I_RUN, i]
        ref = inf[I_REF, i]
        if math.isfinite(inf[I_REF_RPM, i]):
            ref = inf[I_REF_RPM, i] * rated / pf[P_RATED_RPM, i]
        if not math.isfinite(ref):
            ref = 0.0
        ref = min(max(ref, -pf[P_MAX_HZ, i]), pf[P_MAX_HZ, i])
        f = outf[O_SPEED, i]
        m = pf[P_I0, i] / 100.0
        x_lim = pf[P_I_LIMIT, i] / 100.0
        t_max = 100.0 * math.sqrt(max(x_lim * x_lim - m * m, 0.0) / (1.0 - m * m))
        load = inf[I_LOAD, i]
        if not math.isfinite(load):
            load = 0.0
        t_load = abs(load) + pf[P_FRICTION, i]
        acc = rated / pf[P_ACCEL, i] * dt_s if pf[P_ACCEL, i] > 0.0 else math.inf
        dec = rated / pf[P_DECEL, i] * dt_s if pf[P_DECEL, i] > 0.0 else math.inf
        coast = rated / pf[P_COAST, i] * dt_s if pf[P_COAST, i] > 0.0 else math.inf
        torque = 0.0
        x = 0.0
        if running:
            if t_load > t_max:  # beyond the current limit: the motor is pulled down
                f = _toward(f, 0.0, dec, dec)
                torque = t_max
                sf[S_STALL, i] += dt_s
                if sf[S_STALL, i] >= pf[P_STALL, i]:
                    faulted = True
                    outi[O_CODE, i] = CODE_STALL
            else:
                sf[S_STALL, i] = 0.0
                f_new = _toward(f, ref, acc, dec)
                torque = t_load
                if f_new != ref and abs(f_new) > abs(f):
                    torque = min(t_load + pf[P_ACC_TORQUE, i], t_max)
                f = f_new
            if not faulted:
                x = math.sqrt(m * m + (1.0 - m * m) * (torque / 100.0) ** 2)
        else:
            sf[S_STALL, i] = 0.0
            if powered and not faulted:
                f = _toward(f, 0.0, dec, dec)  # ramp stop, still magnetised
                if f != 0.0:
                    x = m
            else:
                f = _toward(f, 0.0, coast, coast)
        if faulted:
            torque = 0.0
            x = 0.0
        a = math.exp(-dt_s / pf[P_TAU, i])
        sf[S_THERMAL, i] = x * x + (sf[S_THERMAL, i] - x * x) * a
        if sf[S_THERMAL, i] >= theta_trip and not faulted:
            faulted = True
            outi[O_CODE, i] = CODE_OVERLOAD
        running = running and not faulted
        outf[O_SPEED, i] = f
        outf[O_RPM, i] = f * pf[P_RATED_RPM, i] / rated
        outf[O_CURRENT, i] = 0.0 if faulted else x * pf[P_I_RATED, i]
        outf[O_TORQUE, i] = torque if running else 0.0
        outf[O_THERMAL, i] = 100.0 * sf[S_THERMAL, i] / theta_trip
        at_speed = running and abs(f - ref) <= pf[P_BAND, i]
        outb[O_RUNNING, i] = running
        outb[O_AT_SPEED, i] = at_speed
        outb[O_FAULT, i] = faulted
        outb[O_READY, i] = powered and not faulted
        outi[O_STATUS, i] = ((1 if powered else 0) | (2 if powered and not faulted else 0)
                             | (4 if running else 0) | (8 if faulted else 0)
                             | (256 if at_speed else 0))
    apply_faults(outf, outi, outb, seenf, seeni, seenb, ff, fi, fb, frng, dt_s)


def _trip(bank: BlockBank, i: int, args: Mapping[str, Any]) -> None:
    bank.true_output("fault")[i] = True
    bank.true_output("fault_code")[i] = int(args["code"])
    bank.true_output("ready")[i] = False
    bank.true_output("running")[i] = False


def _power_loss(bank: BlockBank, i: int, args: Mapping[str, Any]) -> None:
    bank.state("powered")[i] = False
    if not bank.true_output("fault")[i]:
        _trip(bank, i, {"code": int(DriveFault.DC_UNDERVOLTAGE)})


def _power_restore(bank: BlockBank, i: int, args: Mapping[str, Any]) -> None:
    bank.state("powered")[i] = True


MOTOR = BlockType(
    name="motor",
    description="variable-frequency drive and induction motor: ramps, current, I²t trip",
    params=PARAMS, inputs=INPUTS, outputs=OUTPUTS, states=STATES,
    events=frozen(
        trip=Event("trip the drive with a fault code (external fault by default)", _trip,
                   frozen(code=Param(float(DriveFault.EXTERNAL), "", 1.0, 65535.0,
                                     "fault code", "int"))),
        power_loss=Event("mains lost: fault 3220, the motor coasts", _power_loss),
        power_restore=Event("mains back (the fault stays until reset)", _power_restore),
    ),
    kernel=motor_step,
    discretisation="exact: ramps are piecewise linear in time; the I²t image is the exact "
                   "exponential for the current at the end of the step (trip time known to dt)",
)
