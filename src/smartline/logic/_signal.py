"""Signal blocks: ramp (rate limiter), first-order lag, moving average and hysteresis switch.

Each steps n instances per call. A non-finite input (NaN from a bad sensor) holds the ramp's
and the lag's output rather than poisoning their state; the moving average reports NaN while
such a sample is inside its window and recovers exactly once it has left.
"""

from __future__ import annotations

import math
import operator
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from numba import njit

from ._common import BoolArray, FloatArray, IntArray, Nanoseconds, check_count, float_array

__all__ = [
    "HysteresisBank",
    "LagBank",
    "MovingAverageBank",
    "RampBank",
    "hysteresis",
    "hysteresis_bank",
    "hysteresis_step",
    "lag",
    "lag_bank",
    "lag_step",
    "moving_average",
    "moving_average_bank",
    "moving_average_step",
    "ramp",
    "ramp_bank",
    "ramp_step",
]


SNAP = 1e-12  # the ramp lands on x when within this relative distance of it


class RampBank(NamedTuple):
    """n rate limiters. Tuning ``rise_per_s``/``fall_per_s`` (units per second, inf = no limit);
    output ``y`` and ``ramping`` (y has not reached x); state ``last_ns``, ``primed``.
    """

    rise_per_s: FloatArray
    fall_per_s: FloatArray
    y: FloatArray
    ramping: BoolArray
    last_ns: IntArray
    primed: BoolArray


class LagBank(NamedTuple):
    """n first-order lags (PT1). Tuning ``tau_s``; output ``y``; state ``last_ns``, ``primed``."""

    tau_s: FloatArray
    y: FloatArray
    last_ns: IntArray
    primed: BoolArray


class MovingAverageBank(NamedTuple):
    """n moving averages over the last ``window`` samples. Output ``y``.

    State: ring buffer ``buf`` (n x window), next slot ``idx``, ``n_samples`` held, running
    ``total``, this lap's sum ``fresh`` (replaces ``total`` once per lap, so rounding never
    accumulates) and ``bad``, the number of non-finite samples in the window.
    """

    y: FloatArray
    buf: FloatArray
    idx: IntArray
    n_samples: IntArray
    total: FloatArray
    fresh: FloatArray
    bad: IntArray


class HysteresisBank(NamedTuple):
    """n on/off switches. Tuning ``on_at``/``off_at`` (switching points); output/state ``q``."""

    on_at: FloatArray
    off_at: FloatArray
    q: BoolArray


def ramp_bank(
    n: int, *, rise_per_s: npt.ArrayLike, fall_per_s: npt.ArrayLike | None = None
) -> RampBank:
    """Allocate n rate limiters; ``fall_per_s`` defaults to ``rise_per_s``.

    An instance starts at its first input; to start elsewhere set ``y`` and ``primed`` first.
    """
    n = check_count(n)
    rise = float_array(n, rise_per_s, "rise_per_s")
    fall = float_array(n, rise_per_s if fall_per_s is None else fall_per_s, "fall_per_s")
    for name, arr in (("rise_per_s", rise), ("fall_per_s", fall)):
        if np.any(np.isnan(arr)) or np.any(arr < 0.0):
            raise ValueError(f"{name}: must be >= 0 (inf for no limit), got {arr!r}")
    return RampBank(
        rise,
        fall,
        np.zeros(n, np.float64),
        np.zeros(n, np.bool_),
        np.zeros(n, np.int64),
        np.zeros(n, np.bool_),
    )


def lag_bank(n: int, *, tau_s: npt.ArrayLike) -> LagBank:
    """Allocate n first-order lags with time constant ``tau_s`` (0 passes the input through).

    An instance starts at its first input, so switching a lag in causes no start-up transient.
    """
    n = check_count(n)
    tau = float_array(n, tau_s, "tau_s")
    if np.any(np.isnan(tau)) or np.any(tau < 0.0):
        raise ValueError(f"tau_s: must be >= 0 seconds, got {tau_s!r}")
    return LagBank(tau, np.zeros(n, np.float64), np.zeros(n, np.int64), np.zeros(n, np.bool_))


def moving_average_bank(n: int, *, window: int) -> MovingAverageBank:
    """Allocate n moving averages over the last ``window`` samples (a ring buffer per instance).

    Until ``window`` samples have arrived, ``y`` is the mean of those so far.
    """
    n = check_count(n)
    window = operator.index(window)
    if window < 1:
        raise ValueError(f"window: must be >= 1 sample, got {window}")
    return MovingAverageBank(
        np.full(n, np.nan),
        np.zeros((n, window), np.float64),
        np.zeros(n, np.int64),
        np.zeros(n, np.int64),
        np.zeros(n, np.float64),
        np.zeros(n, np.float64),
        np.zeros(n, np.int64),
    )


def hysteresis_bank(n: int, *, on_at: npt.ArrayLike, off_at: npt.ArrayLike) -> HysteresisBank:
    """Allocate n on/off switches, all off.

    ``on_at > off_at`` switches on rising (a cooling fan: on at 30, off at 25); ``on_at <
    off_at`` switches on falling (a heater: on at 18, off at 21). The band is their difference.
    """
    n = check_count(n)
    on = float_array(n, on_at, "on_at")
    off = float_array(n, off_at, "off_at")
    return HysteresisBank(on, off, np.zeros(n, np.bool_))


@njit(cache=True, nogil=True)  # type: ignore[misc]
def ramp(  # noqa: PLR0917
    x: FloatArray,
    now_ns: Nanoseconds,
    rise_per_s: FloatArray,
    fall_per_s: FloatArray,
    y: FloatArray,
    ramping: BoolArray,
    last_ns: IntArray,
    primed: BoolArray,
) -> None:
    """Move y towards x by at most rate x elapsed time; reach x exactly, never overshoot."""
    n = x.shape[0]
    if (
        rise_per_s.shape[0] != n
        or fall_per_s.shape[0] != n
        or y.shape[0] != n
        or ramping.shape[0] != n
        or last_ns.shape[0] != n
        or primed.shape[0] != n
    ):
        raise ValueError("ramp: all arrays must have the same length")
    for i in range(n):
        xi = x[i]
        if not math.isfinite(xi):
            continue  # hold y; the elapsed time still counts when x comes back
        if not primed[i]:
            y[i] = xi
            ramping[i] = False
            last_ns[i] = now_ns
            primed[i] = True
            continue
        dt = max(now_ns - last_ns[i], 0) * 1e-9
        last_ns[i] = now_ns
        yi = y[i]
        diff = xi - yi
        snap = SNAP * (abs(xi) + abs(yi))  # rounding in y's running sum must not cost a scan
        if diff > 0.0:
            limit = max(rise_per_s[i], 0.0) * dt
            if diff > limit + snap:
                y[i] = yi + limit
                ramping[i] = True
                continue
        elif diff < 0.0:
            limit = max(fall_per_s[i], 0.0) * dt
            if -diff > limit + snap:
                y[i] = yi - limit
                ramping[i] = True
                continue
        y[i] = xi
        ramping[i] = False


@njit(cache=True, nogil=True)  # type: ignore[misc]
def lag(  # noqa: PLR0917
    x: FloatArray,
    now_ns: Nanoseconds,
    tau_s: FloatArray,
    y: FloatArray,
    last_ns: IntArray,
    primed: BoolArray,
) -> None:
    """First-order lag dy/dt = (x - y) / tau, discretised exactly for x held over each step."""
    n = x.shape[0]
    if tau_s.shape[0] != n or y.shape[0] != n or last_ns.shape[0] != n or primed.shape[0] != n:
        raise ValueError("lag: all arrays must have the same length")
    for i in range(n):
        xi = x[i]
        if not math.isfinite(xi):
            continue
        if not primed[i]:
            y[i] = xi
            last_ns[i] = now_ns
            primed[i] = True
            continue
        dt_ns = now_ns - last_ns[i]
        last_ns[i] = now_ns
        tau = tau_s[i]
        if not tau > 0.0:
            y[i] = xi
        elif dt_ns > 0:
            y[i] += (xi - y[i]) * -math.expm1(-(dt_ns * 1e-9) / tau)


@njit(cache=True, nogil=True)  # type: ignore[misc]
def moving_average(  # noqa: PLR0917
    x: FloatArray,
    y: FloatArray,
    buf: FloatArray,
    idx: IntArray,
    n_samples: IntArray,
    total: FloatArray,
    fresh: FloatArray,
    bad: IntArray,
) -> None:
    """Append x to each ring buffer and set y to the mean of the last ``window`` samples."""
    n = x.shape[0]
    window = buf.shape[1]
    if (
        y.shape[0] != n
        or buf.shape[0] != n
        or idx.shape[0] != n
        or n_samples.shape[0] != n
        or total.shape[0] != n
        or fresh.shape[0] != n
        or bad.shape[0] != n
    ):
        raise ValueError("moving_average: all arrays must have the same length")
    if window < 1:
        raise ValueError("moving_average: the window must hold at least one sample")
    for i in range(n):
        k = idx[i]
        if n_samples[i] >= window:
            old = buf[i, k]
            if math.isfinite(old):
                total[i] -= old
            else:
                bad[i] -= 1
        else:
            n_samples[i] += 1
        xi = x[i]
        buf[i, k] = xi
        if math.isfinite(xi):
            total[i] += xi
            fresh[i] += xi
        else:
            bad[i] += 1
        k += 1
        if k >= window:
            k = 0
            total[i] = fresh[i]  # the buffer now holds exactly this lap's samples
            fresh[i] = 0.0
        idx[i] = k
        y[i] = math.nan if bad[i] > 0 else total[i] / n_samples[i]


@njit(cache=True, nogil=True)  # type: ignore[misc]
def hysteresis(x: FloatArray, on_at: FloatArray, off_at: FloatArray, q: BoolArray) -> None:
    """Q switches on when x reaches ``on_at`` and off when it reaches ``off_at``; NaN holds Q."""
    n = x.shape[0]
    if on_at.shape[0] != n or off_at.shape[0] != n or q.shape[0] != n:
        raise ValueError("hysteresis: all arrays must have the same length")
    for i in range(n):
        xi = x[i]
        on = on_at[i]
        off = off_at[i]
        if on >= off:
            if xi >= on:
                q[i] = True
            elif xi <= off:
                q[i] = False
        elif xi <= on:
            q[i] = True
        elif xi >= off:
            q[i] = False


@njit(cache=True, nogil=True)  # type: ignore[misc]
def ramp_step(bank: RampBank, x: FloatArray, now_ns: Nanoseconds) -> None:
    """Step every rate limiter of ``bank``."""
    ramp(
        x, now_ns, bank.rise_per_s, bank.fall_per_s, bank.y, bank.ramping, bank.last_ns, bank.primed
    )


@njit(cache=True, nogil=True)  # type: ignore[misc]
def lag_step(bank: LagBank, x: FloatArray, now_ns: Nanoseconds) -> None:
    """Step every first-order lag of ``bank``."""
    lag(x, now_ns, bank.tau_s, bank.y, bank.last_ns, bank.primed)


@njit(cache=True, nogil=True)  # type: ignore[misc]
def moving_average_step(bank: MovingAverageBank, x: FloatArray) -> None:
    """Step every moving average of ``bank``."""
    moving_average(x, bank.y, bank.buf, bank.idx, bank.n_samples, bank.total, bank.fresh, bank.bad)


@njit(cache=True, nogil=True)  # type: ignore[misc]
def hysteresis_step(bank: HysteresisBank, x: FloatArray) -> None:
    """Step every on/off switch of ``bank``."""
    hysteresis(x, bank.on_at, bank.off_at, bank.q)
