"""Compile or load every kernel before the first cycle, so no JIT latency lands inside one."""

from __future__ import annotations

import numpy as np

from ._alarms import limits_alarm, limits_alarm_bank, limits_alarm_step
from ._bistable import rs, rs_bank, rs_step, sr, sr_bank, sr_step
from ._counters import ctd, ctd_bank, ctd_step, ctu, ctu_bank, ctu_step, ctud, ctud_bank, ctud_step
from ._edges import f_trig, f_trig_bank, f_trig_step, r_trig, r_trig_bank, r_trig_step
from ._pid import pid, pid_bank, pid_step
from ._signal import (
    hysteresis,
    hysteresis_bank,
    hysteresis_step,
    lag,
    lag_bank,
    lag_step,
    moving_average,
    moving_average_bank,
    moving_average_step,
    ramp,
    ramp_bank,
    ramp_step,
)
from ._timers import tof, tof_bank, tof_step, ton, ton_bank, ton_step, tp, tp_bank, tp_step

__all__ = ["warm_up"]


def warm_up() -> None:
    """Compile (or load from numba's cache) each block's kernel and step for the bank dtypes.

    Both the kernel and its ``*_step`` are warmed for one-dimensional C-contiguous arrays and
    an ``int`` ``now_ns``; other argument types compile on their first call.
    """
    b = np.zeros(1, np.bool_)
    i = np.zeros(1, np.int64)
    f = np.zeros(1, np.float64)
    now = 0
    on = ton_bank(1)
    ton_step(on, b, i, now)
    ton(b, i, now, *on)
    off = tof_bank(1)
    tof_step(off, b, i, now)
    tof(b, i, now, *off)
    pulse = tp_bank(1)
    tp_step(pulse, b, i, now)
    tp(b, i, now, *pulse)
    cu = ctu_bank(1)
    ctu_step(cu, b, b, i)
    ctu(b, b, i, *cu)
    cd = ctd_bank(1)
    ctd_step(cd, b, b, i)
    ctd(b, b, i, *cd)
    cud = ctud_bank(1)
    ctud_step(cud, b, b, b, b, i)
    ctud(b, b, b, b, i, *cud)
    rt = r_trig_bank(1)
    r_trig_step(rt, b)
    r_trig(b, *rt)
    ft = f_trig_bank(1)
    f_trig_step(ft, b)
    f_trig(b, *ft)
    srb = sr_bank(1)
    sr_step(srb, b, b)
    sr(b, b, *srb)
    rsb = rs_bank(1)
    rs_step(rsb, b, b)
    rs(b, b, *rsb)
    pb = pid_bank(1)
    pid_step(pb, f, f, b, f, now)
    pid(f, f, b, f, now, *pb)
    rb = ramp_bank(1, rise_per_s=1.0)
    ramp_step(rb, f, now)
    ramp(f, now, *rb)
    lb = lag_bank(1, tau_s=1.0)
    lag_step(lb, f, now)
    lag(f, now, *lb)
    mb = moving_average_bank(1, window=2)
    moving_average_step(mb, f)
    moving_average(f, *mb)
    hb = hysteresis_bank(1, on_at=1.0, off_at=0.0)
    hysteresis_step(hb, f)
    hysteresis(f, *hb)
    ab = limits_alarm_bank(1)
    limits_alarm_step(ab, f, now)
    limits_alarm(f, now, *ab)
