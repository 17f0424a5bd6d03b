"""PID controllers in ISA standard (non-interacting) form, stepping n instances per call.

``u = P + I + D`` with ``P = Kp*e``, ``dI/dt = Kp/Ti * e`` and ``D = -Kp*Td * d(s*PV)/dt``
passed through a first-order filter of time constant ``tf_s``; ``e = s*(SP - PV)`` with
``s = +1`` for reverse action (the default: a heater) and ``-1`` for direct action (a cooler).
The derivative acts on the measurement only, so setpoint steps give no derivative kick.
Anti-windup is back-calculation with tracking time ``tt_s`` or, when ``tt_s`` is 0,
conditional integration (clamping). In manual the integral tracks the manual output, so the
return to auto is bumpless. The sample time is ``now_ns`` minus the instance's previous step;
its first step neither integrates nor differentiates.
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
    bool_array,
    check_count,
    float_array,
)

__all__ = ["PidBank", "pid", "pid_bank", "pid_step"]


class PidBank(NamedTuple):
    """n PID controllers: tuning (per instance), outputs ``out`` and ``limited``, then state.

    Tuning: ``kp`` gain; ``ti_s`` integral time (0 = no integral action); ``td_s`` derivative
    time; ``tf_s`` derivative filter time constant (0 = unfiltered); ``tt_s`` back-calculation
    tracking time (0 = conditional integration); ``out_min``/``out_max`` output limits;
    ``direct_acting`` (output rises with PV). State: ``integral`` (the I term, also the bias
    of a controller without integral action), ``d_term`` (filtered D term), ``prev_pv``,
    ``last_ns`` and ``primed`` (false until the first step; clear it to restart an instance).
    """

    kp: FloatArray
    ti_s: FloatArray
    td_s: FloatArray
    tf_s: FloatArray
    tt_s: FloatArray
    out_min: FloatArray
    out_max: FloatArray
    direct_acting: BoolArray
    out: FloatArray
    limited: BoolArray
    integral: FloatArray
    d_term: FloatArray
    prev_pv: FloatArray
    last_ns: IntArray
    primed: BoolArray


def pid_bank(
    n: int,
    *,
    kp: npt.ArrayLike = 1.0,
    ti_s: npt.ArrayLike = 0.0,
    td_s: npt.ArrayLike = 0.0,
    tf_s: npt.ArrayLike = 0.0,
    tt_s: npt.ArrayLike = 0.0,
    out_min: npt.ArrayLike = 0.0,
    out_max: npt.ArrayLike = 100.0,
    direct_acting: npt.ArrayLike = False,
    bias: npt.ArrayLike = 0.0,
) -> PidBank:
    """Allocate n PID controllers; each setting is a scalar for all or one value per instance.

    ``bias`` is the initial integral term (the output at zero error until integration moves
    it); the output starts at ``bias`` clamped to the limits.
    """
    n = check_count(n)
    times = {
        name: float_array(n, value, name)
        for name, value in (("ti_s", ti_s), ("td_s", td_s), ("tf_s", tf_s), ("tt_s", tt_s))
    }
    for name, arr in times.items():
        if np.any(np.isnan(arr)) or np.any(arr < 0.0):
            raise ValueError(f"{name}: must be >= 0 seconds, got {arr!r}")
    kp_a = float_array(n, kp, "kp")
    lo = float_array(n, out_min, "out_min")
    hi = float_array(n, out_max, "out_max")
    if not np.all(np.isfinite(kp_a)):
        raise ValueError(f"kp: must be finite, got {kp!r}")
    if np.any(np.isnan(lo)) or np.any(np.isnan(hi)) or np.any(lo > hi):
        raise ValueError(f"out_min must be <= out_max, got {out_min!r} > {out_max!r}")
    integral = float_array(n, bias, "bias")
    return PidBank(
        kp=kp_a,
        ti_s=times["ti_s"],
        td_s=times["td_s"],
        tf_s=times["tf_s"],
        tt_s=times["tt_s"],
        out_min=lo,
        out_max=hi,
        direct_acting=bool_array(n, direct_acting, "direct_acting"),
        out=np.minimum(np.maximum(integral, lo), hi),
        limited=np.zeros(n, np.bool_),
        integral=integral,
        d_term=np.zeros(n, np.float64),
        prev_pv=np.zeros(n, np.float64),
        last_ns=np.zeros(n, np.int64),
        primed=np.zeros(n, np.bool_),
    )


@njit(cache=True, nogil=True)  # type: ignore[misc]
def pid(  # noqa: PLR0917
    sp: FloatArray,
    pv: FloatArray,
    auto: BoolArray,
    man_out: FloatArray,
    now_ns: Nanoseconds,
    kp: FloatArray,
    ti_s: FloatArray,
    td_s: FloatArray,
    tf_s: FloatArray,
    tt_s: FloatArray,
    out_min: FloatArray,
    out_max: FloatArray,
    direct_acting: BoolArray,
    out: FloatArray,
    limited: BoolArray,
    integral: FloatArray,
    d_term: FloatArray,
    prev_pv: FloatArray,
    last_ns: IntArray,
    primed: BoolArray,
) -> None:
    """Step n PID controllers; ``out`` holds its last value while SP or PV is not finite in auto.

    In manual (``auto`` false) the output is ``man_out`` clamped to the limits (a non-finite
    ``man_out`` holds the output) and the integral tracks it for a bumpless return to auto.
    """
    n = sp.shape[0]
    if (
        pv.shape[0] != n
        or auto.shape[0] != n
        or man_out.shape[0] != n
        or kp.shape[0] != n
        or ti_s.shape[0] != n
        or td_s.shape[0] != n
        or tf_s.shape[0] != n
        or tt_s.shape[0] != n
        or out_min.shape[0] != n
        or out_max.shape[0] != n
        or direct_acting.shape[0] != n
        or out.shape[0] != n
        or limited.shape[0] != n
        or integral.shape[0] != n
        or d_term.shape[0] != n
        or prev_pv.shape[0] != n
        or last_ns.shape[0] != n
        or primed.shape[0] != n
    ):
        raise ValueError("pid: all arrays must have the same length")
    for i in range(n):
        x = pv[i]
        w = sp[i]
        valid = math.isfinite(x) and math.isfinite(w)
        is_auto = auto[i]
        if is_auto and not valid:
            # hold the output and freeze the state until the signals come back; the time
            # base restarts then, so the outage is not integrated in one step
            primed[i] = False
            continue
        lo = out_min[i]
        hi = out_max[i]
        k = kp[i]
        was_primed = primed[i]
        # Time: a step at the same instant moves nothing on; a clock that went back restarts
        # the time base. Conditional expressions below (not branches) keep the loop fast when
        # instances differ in tuning or saturation.
        dt_ns = now_ns - last_ns[i]
        moving = was_primed & (dt_ns > 0)
        dt = dt_ns * 1e-9 if moving else 0.0
        advance = (not was_primed) | (dt_ns != 0)
        sign = -1.0 if direct_acting[i] else 1.0
        e = sign * (w - x)
        p = k * e
        tf = max(tf_s[i], 0.0)
        kd = k * max(td_s[i], 0.0)
        den = tf + dt
        d_new = (tf * d_term[i] - sign * kd * (x - prev_pv[i])) / (den if den > 0.0 else 1.0)
        d = d_new if moving else (d_term[i] if was_primed else 0.0)
        if is_auto:
            i_old = integral[i]
            ti = ti_s[i]
            i_step = k * e * dt / (ti if ti > 0.0 else 1.0)
            i_new = i_old + (i_step if ti > 0.0 else 0.0)
            u = p + i_new + d
            u_sat = max(min(u, hi), lo)
            excess = u_sat - u
            tt = tt_s[i]
            # back-calculation: bleed the excess out of the integral with time constant tt
            i_back = i_new + excess * min(dt / (tt if tt > 0.0 else 1.0), 1.0)
            # conditional integration: refuse an integration step that deepens saturation
            winds = ((excess < 0.0) & (i_new > i_old)) | ((excess > 0.0) & (i_new < i_old))
            i_clamp = i_old if winds else i_new
            integral[i] = i_back if tt > 0.0 else i_clamp
            out[i] = u_sat
            limited[i] = excess != 0.0
        else:
            m = man_out[i]
            if not math.isfinite(m):
                m = out[i]
            u_sat = max(min(m, hi), lo)
            out[i] = u_sat
            limited[i] = u_sat != m
            if not valid:
                continue  # no measurement: output only, nothing to track
            integral[i] = u_sat - p - d  # tracking: auto resumes from this output
        if advance:
            d_term[i] = d
            prev_pv[i] = x
            last_ns[i] = now_ns
            primed[i] = True


@njit(cache=True, nogil=True)  # type: ignore[misc]
def pid_step(  # noqa: PLR0917
    bank: PidBank,
    sp: FloatArray,
    pv: FloatArray,
    auto: BoolArray,
    man_out: FloatArray,
    now_ns: Nanoseconds,
) -> None:
    """Step every PID controller of ``bank``."""
    pid(
        sp,
        pv,
        auto,
        man_out,
        now_ns,
        bank.kp,
        bank.ti_s,
        bank.td_s,
        bank.tf_s,
        bank.tt_s,
        bank.out_min,
        bank.out_max,
        bank.direct_acting,
        bank.out,
        bank.limited,
        bank.integral,
        bank.d_term,
        bank.prev_pv,
        bank.last_ns,
        bank.primed,
    )
