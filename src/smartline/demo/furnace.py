"""The demo's control program: three PID loops of a heat-treatment furnace, with interlock.

Each zone has an Omron E5CC for its temperature and set point (read every cycle) and one
channel of a thyristor power controller for its heater (written when it changes). A PID
per zone (``smartline.logic``) computes the heater power; a deviation alarm per zone
switches its heater off while the zone is more than ``OVERTEMP_C`` above its set point for
``OVERTEMP_DELAY_S``. A zone whose temperature is BAD (NaN: sensor or controller down) has
its heater off too: heating blind is not safe.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from smartline.cycle import program
from smartline.logic import (
    LimitsAlarmBank,
    PidBank,
    limits_alarm_bank,
    limits_alarm_step,
    pid_bank,
    pid_step,
)

__all__ = ["INPUTS", "OUTPUTS", "ZONES", "FurnaceState", "furnace", "furnace_state"]

ZONES = 3
INPUTS = [f"zone{i}.pv" for i in range(1, ZONES + 1)] + [
    f"zone{i}.sp" for i in range(1, ZONES + 1)]
OUTPUTS = [f"heater{i}" for i in range(1, ZONES + 1)]

# tuned on the simulated zones (first order, 4 degC per %, tau 8..12 s): within 2 degC of a
# 130..180 degC step in 6..10 s, overshoot under 1 degC
KP = 2.0  # % power per degC
TI_S = 4.0
OVERTEMP_C = 25.0
OVERTEMP_DELAY_S = 0.5


class FurnaceState(NamedTuple):
    """Function-block banks and work arrays of the furnace program (one element per zone)."""

    pid: PidBank
    overtemp: LimitsAlarmBank
    pv: npt.NDArray[np.float64]
    sp: npt.NDArray[np.float64]
    deviation: npt.NDArray[np.float64]
    auto: npt.NDArray[np.bool_]
    manual_out: npt.NDArray[np.float64]


def furnace_state() -> FurnaceState:
    """Fresh state: PIDs in auto at zero output, no alarm active."""
    return FurnaceState(
        pid=pid_bank(ZONES, kp=KP, ti_s=TI_S, out_min=0.0, out_max=100.0),
        overtemp=limits_alarm_bank(ZONES, h_limit=OVERTEMP_C, deadband=2.0,
                                   delay_s=OVERTEMP_DELAY_S),
        pv=np.zeros(ZONES), sp=np.zeros(ZONES), deviation=np.zeros(ZONES),
        auto=np.ones(ZONES, np.bool_), manual_out=np.zeros(ZONES),
    )


@program(inputs=INPUTS, outputs=OUTPUTS, init=furnace_state)
def furnace(now_ns, inputs, outputs, state):  # type: ignore[no-untyped-def]
    """PID per zone; heater off while the zone is too hot or its temperature is BAD (NaN)."""
    n = state.pv.shape[0]
    for i in range(n):
        state.pv[i] = inputs[i]
        state.sp[i] = inputs[n + i]
        state.deviation[i] = inputs[i] - inputs[n + i]
    pid_step(state.pid, state.sp, state.pv, state.auto, state.manual_out, now_ns)
    limits_alarm_step(state.overtemp, state.deviation, now_ns)
    for i in range(n):
        outputs[i] = (0.0 if state.overtemp.h[i] or not math.isfinite(inputs[i])
                      else state.pid.out[i])
