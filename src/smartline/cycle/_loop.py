"""The compiled cycle: one numba loop per task that never enters Python (DESIGN §7, #8).

:func:`cycle_once` is one cycle — snapshot the inputs from the image (seqlock per device
block), run the program, detect changed outputs (deadband), check each changed output
against its tag's rules (prepared as arrays when the line loads) and scale it to raw,
push accepted outputs and refusal codes into the task's single-producer ring, wake the
I/O loop through its eventfd, record lateness, cycle and phase times. :func:`run_loop`
wraps it for a task's thread: wait for the absolute deadline (``clock_nanosleep``
``TIMER_ABSTIME`` and a short spin), run the cycle, check the watchdog, apply the overrun
policy, watch the stop flag and the cycle budget — entered once when the task starts and
left once when it stops. Under virtual time the engine calls :func:`cycle_once` itself,
one deadline at a time, so both run the same compiled cycle.

The task's program is passed in as a first-class function of a fixed signature
(``FunctionType``), so the loop compiled for a program's argument types is cached on disk
like any ``cache=True`` function. A ``jit=False`` program runs the same phases in Python
(:func:`cycle_once`'s ``py_func``).

Shared with other threads through the ``ctl`` int64 array (atomic loads and stores):
the stop flag and the outputs-latched flag (written by Python), the running cycle's start
and a heartbeat (read by the watchdog monitor), the counters (read by statistics).
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import NDArray

from ._rt import (
    _CAP,
    _R,
    _W,
    STOPPED,
    eventfd_signal,
    load_acquire_i64,
    now_ns,
    ring_push,
    seq_read_gather,
    store_relaxed_i64,
    store_release_i64,
    wait_deadline_ns,
)
from ._stats import _record

__all__ = [
    "CTL_LEN",
    "C_CYCLES",
    "C_CYCLE_START",
    "C_EXIT",
    "C_FAULT_A",
    "C_FAULT_B",
    "C_HEARTBEAT",
    "C_LAST_START",
    "C_LATCHED",
    "C_MAX_IN_ROW",
    "C_OVERRUNS",
    "C_PUSHED",
    "C_REFUSED",
    "C_RING_FULL",
    "C_SKIPPED",
    "C_STOP",
    "C_TORN",
    "EXIT_BUDGET",
    "EXIT_OVERRUN",
    "EXIT_RUNNING",
    "EXIT_STOPPED",
    "EXIT_WATCHDOG_HANG",
    "EXIT_WATCHDOG_ROW",
    "KIND_BOOL",
    "KIND_FLOAT",
    "KIND_FLOAT32",
    "KIND_INT",
    "POLICY_CATCH_UP",
    "POLICY_FAULT",
    "POLICY_SKIP",
    "RC_LIMITS",
    "RC_NOT_FINITE",
    "RC_NOT_WHOLE",
    "RC_OK",
    "RC_RANGE",
    "RC_READ_ONLY",
    "after_cycle",
    "check_output",
    "cycle_once",
    "no_program",
    "run_loop",
]

# -- the ctl array (int64; Python and the monitor on one side, the loop on the other) -------
C_STOP = 0  # Python → loop: non-zero asks the loop to return
C_LATCHED = 1  # Python → loop: outputs are safe; push nothing more
C_HEARTBEAT = 16  # loop → monitor: cycles started (its own cache line)
C_CYCLE_START = 17  # loop → monitor: start of the running cycle (monotonic ns), 0 between
C_CYCLES = 32  # loop → statistics: cycles completed
C_OVERRUNS = 33
C_SKIPPED = 34
C_IN_ROW = 35  # overruns in a row now
C_MAX_IN_ROW = 36
C_EXIT = 37  # why run_loop returned (EXIT_*)
C_FAULT_A = 38  # fault detail: the cycle's time (watchdog) or lateness past the deadline
C_FAULT_B = 39  # fault detail: cycles in a row (watchdog) or the cycle number (overrun)
C_TORN = 40  # input groups delivered BAD because a writer held them too long
C_RING_FULL = 41  # output pushes that found the ring full (retried next cycle)
C_REFUSED = 42  # outputs refused by their tag's rules
C_PUSHED = 43  # output tags handed to the I/O loop
C_WD_IN_ROW = 44  # cycles in a row over the watchdog time
C_DEADLINE = 45  # the next deadline (where a stopped loop would resume)
C_LAST_START = 46  # start of the last cycle (monotonic or virtual ns)
CTL_LEN = 48

EXIT_RUNNING = 0
EXIT_STOPPED = 1
EXIT_BUDGET = 2
EXIT_OVERRUN = 3
EXIT_WATCHDOG_ROW = 4
EXIT_WATCHDOG_HANG = 5

POLICY_SKIP = 0
POLICY_CATCH_UP = 1
POLICY_FAULT = 2

# -- output rules (per output element) ------------------------------------------------------
KIND_FLOAT = 0  # float64, or a type the device decides
KIND_FLOAT32 = 1
KIND_INT = 2
KIND_BOOL = 3

RC_OK = 0
RC_READ_ONLY = 1
RC_NOT_FINITE = 2
RC_LIMITS = 3
RC_NOT_WHOLE = 4  # an unscaled integer output that is not a whole number
RC_RANGE = 5  # the raw value does not fit the wire type

# timing series, as in _stats.SERIES (numba freezes module globals)
_CYCLE, _LATENESS, _INPUTS, _LOGIC, _OUTPUTS = 0, 1, 2, 3, 4


@njit(cache=True, nogil=True)  # type: ignore[misc]
def no_program(now_ns: int, inputs: NDArray[np.float64], outputs: NDArray[np.float64],
               state: tuple[()]) -> None:  # pragma: no cover
    """The program of a task without one (acquisition only)."""
    return None


@njit(cache=True, nogil=True)  # type: ignore[misc]
def check_output(v: float, kind: int, scaled: int, lo: float, hi: float, gain: float,  # noqa: PLR0917
                 offset: float, rlo: float, rhi: float) -> tuple[int, float]:  # pragma: no cover
    """An output's engineering value → (refusal code, raw value), as ``TagSpec.check_write``
    decides for a value the program computed (NaN is handled by the caller)."""
    if kind == KIND_BOOL:
        return RC_OK, 1.0 if v != 0.0 else 0.0
    if v - v != 0.0:  # inf (NaN never gets here)
        return RC_NOT_FINITE, 0.0
    if v < lo or v > hi:
        return RC_LIMITS, 0.0
    raw = v
    if scaled:
        raw = (v - offset) / gain
        if raw - raw != 0.0:
            return RC_RANGE, 0.0
        if kind == KIND_INT:
            raw = np.rint(raw)  # ties to even, as Python's round()
    elif kind == KIND_INT and raw != np.floor(raw):
        return RC_NOT_WHOLE, 0.0
    if raw < rlo or raw > rhi:
        return RC_RANGE, 0.0
    return RC_OK, raw


@njit(cache=True, nogil=True)  # type: ignore[misc]
def _ring_space(ring: tuple) -> int:  # type: ignore[type-arg]  # pragma: no cover
    hdr = ring[0]
    return hdr[_CAP] - (hdr[_W] - load_acquire_i64(hdr, _R))  # type: ignore[no-any-return]


@njit(cache=True, nogil=True)  # type: ignore[misc]
def _now(virtual: bool, vclock: NDArray[np.int64]) -> int:  # pragma: no cover
    if virtual:
        return vclock[0]  # type: ignore[no-any-return]
    return now_ns()  # type: ignore[no-any-return]


@njit(cache=True, nogil=True)  # type: ignore[misc]
def _outputs_phase(cycle: int, ctl: NDArray[np.int64], out: tuple,  # type: ignore[type-arg]  # noqa: PLR0917
                   rules: tuple, ring: tuple, efd: int) -> None:  # type: ignore[type-arg]  # pragma: no cover
    """Changed outputs → checked, scaled, pushed (whole tags only), then one wake-up."""
    outputs, last, deadband, retry, tag_start, tag_stop, raw = out
    writable, kind, scaled, lo, hi, gain, offset, rlo, rhi = rules
    if load_acquire_i64(ctl, C_LATCHED) != 0:
        return
    pushed = 0
    for t in range(tag_start.shape[0]):
        a = tag_start[t]
        b = tag_stop[t]
        changed = False
        nan = False
        for i in range(a, b):
            v = outputs[i]
            if v != v:  # noqa: PLR0124  # NaN: not computed, never written
                nan = True
                continue
            if load_acquire_i64(retry, i) != 0 or not abs(v - last[i]) <= deadband[i]:
                changed = True
        if not changed or (nan and b - a == 1):
            continue
        code = RC_OK
        if writable[a] == 0:
            code = RC_READ_ONLY
        elif nan:  # an array output with elements not computed
            code = RC_NOT_FINITE
        else:
            for i in range(a, b):
                c, r = check_output(outputs[i], kind[i], scaled[i], lo[i], hi[i], gain[i],
                                    offset[i], rlo[i], rhi[i])
                if c != RC_OK:
                    code = c
                    break
                raw[i] = r
        if code != RC_OK:
            if _ring_space(ring) < 1:
                store_relaxed_i64(ctl, C_RING_FULL, ctl[C_RING_FULL] + 1)
                continue
            ring_push(ring, a, outputs[a], code, cycle)
            store_relaxed_i64(ctl, C_REFUSED, ctl[C_REFUSED] + 1)
        else:
            if _ring_space(ring) < b - a:  # a tag goes whole or not at all
                store_relaxed_i64(ctl, C_RING_FULL, ctl[C_RING_FULL] + 1)
                continue
            for i in range(a, b):
                ring_push(ring, i, raw[i], RC_OK, cycle)
            store_relaxed_i64(ctl, C_PUSHED, ctl[C_PUSHED] + 1)
        for i in range(a, b):
            last[i] = outputs[i]
            if retry[i] != 0:
                store_release_i64(retry, i, 0)
        pushed += 1
    if pushed and efd >= 0:
        eventfd_signal(efd)


@njit(cache=True, nogil=True)  # type: ignore[misc]
def cycle_once(fn, state, deadline: int, cycle: int,  # type: ignore[no-untyped-def]  # noqa: PLR0917
               ctl: NDArray[np.int64], vclock: NDArray[np.int64], virtual: bool,
               inp: tuple, out: tuple, rules: tuple,  # type: ignore[type-arg]
               rec: tuple, ring: tuple, efd: int) -> int:  # type: ignore[type-arg]  # pragma: no cover
    """One cycle scheduled at ``deadline`` (cycle number ``cycle``); returns its end time."""
    seq, src_value, src_quality, group_block, group_start, in_slots, inputs, in_quality, \
        max_retries = inp
    outputs = out[0]
    counts, summary, values, params = rec
    start = _now(virtual, vclock)
    store_relaxed_i64(ctl, C_LAST_START, start)
    store_release_i64(ctl, C_CYCLE_START, start)
    store_relaxed_i64(ctl, C_HEARTBEAT, ctl[C_HEARTBEAT] + 1)
    values[_LATENESS] = start - deadline if start > deadline else 0
    if group_block.shape[0] > 0:
        torn = seq_read_gather(seq, group_block, group_start, src_value, src_quality,
                               in_slots, inputs, in_quality, max_retries)
        if torn:
            store_relaxed_i64(ctl, C_TORN, ctl[C_TORN] + torn)
    t_in = _now(virtual, vclock)
    values[_INPUTS] = t_in - start
    fn(deadline, inputs, outputs, state)
    t_logic = _now(virtual, vclock)
    values[_LOGIC] = t_logic - t_in
    if outputs.shape[0] > 0:
        _outputs_phase(cycle, ctl, out, rules, ring, efd)
    end = _now(virtual, vclock)
    values[_OUTPUTS] = end - t_logic
    values[_CYCLE] = end - start
    _record(counts, summary, values, params)
    store_release_i64(ctl, C_CYCLE_START, 0)
    return end


@njit(cache=True, nogil=True)  # type: ignore[misc]
def after_cycle(ctl: NDArray[np.int64], deadline: int, period: int, start: int, end: int,  # noqa: PLR0917
                policy: int, wd_time: int, wd_sens: int) -> int:  # pragma: no cover
    """Account a finished cycle: watchdog, overrun policy, counters. Returns the next
    deadline, or -1 with ``ctl[C_EXIT]`` set when the task must stop."""
    cycles = ctl[C_CYCLES] + 1
    store_relaxed_i64(ctl, C_CYCLES, cycles)
    if wd_time > 0:
        cycle_ns = end - start
        in_row = ctl[C_WD_IN_ROW] + 1 if cycle_ns > wd_time else 0
        store_relaxed_i64(ctl, C_WD_IN_ROW, in_row)
        if cycle_ns > wd_time * wd_sens:
            store_relaxed_i64(ctl, C_FAULT_A, cycle_ns)
            store_release_i64(ctl, C_EXIT, EXIT_WATCHDOG_HANG)
            return -1
        if in_row >= wd_sens:
            store_relaxed_i64(ctl, C_FAULT_A, cycle_ns)
            store_relaxed_i64(ctl, C_FAULT_B, in_row)
            store_release_i64(ctl, C_EXIT, EXIT_WATCHDOG_ROW)
            return -1
    nxt = deadline + period
    if end <= nxt:
        store_relaxed_i64(ctl, C_IN_ROW, 0)
        store_relaxed_i64(ctl, C_DEADLINE, nxt)
        return nxt
    store_relaxed_i64(ctl, C_OVERRUNS, ctl[C_OVERRUNS] + 1)
    in_row = ctl[C_IN_ROW] + 1
    store_relaxed_i64(ctl, C_IN_ROW, in_row)
    if in_row > ctl[C_MAX_IN_ROW]:
        store_relaxed_i64(ctl, C_MAX_IN_ROW, in_row)
    if policy == POLICY_FAULT:
        store_relaxed_i64(ctl, C_FAULT_A, end - nxt)
        store_relaxed_i64(ctl, C_FAULT_B, cycles)
        store_release_i64(ctl, C_EXIT, EXIT_OVERRUN)
        return -1
    if policy == POLICY_SKIP:
        missed = -(-(end - nxt) // period)  # ceil
        store_relaxed_i64(ctl, C_SKIPPED, ctl[C_SKIPPED] + missed)
        nxt += missed * period
    store_relaxed_i64(ctl, C_DEADLINE, nxt)
    return nxt


@njit(cache=True, nogil=True)  # type: ignore[misc]
def run_loop(fn, state, t0: int, period: int, spin: int,  # type: ignore[no-untyped-def]  # noqa: PLR0917
             slice_ns: int, policy: int, wd_time: int, wd_sens: int,
             budget: int, ctl: NDArray[np.int64], vclock: NDArray[np.int64],
             inp: tuple, out: tuple, rules: tuple,  # type: ignore[type-arg]
             rec: tuple, ring: tuple, efd: int) -> int:  # type: ignore[type-arg]  # pragma: no cover
    """A task's whole life in its thread: cycles at ``t0 + k·period`` until stopped, the
    budget of cycles is used, or a fault (overrun under the fault policy, watchdog).
    Returns why it stopped (``EXIT_*``, also in ``ctl[C_EXIT]``)."""
    deadline = t0
    k = 0
    while True:
        if wait_deadline_ns(deadline, spin, ctl, C_STOP, slice_ns) == STOPPED:
            store_release_i64(ctl, C_EXIT, EXIT_STOPPED)
            return EXIT_STOPPED
        end = cycle_once(fn, state, deadline, k, ctl, vclock, False, inp, out, rules, rec,
                         ring, efd)
        k += 1
        nxt = after_cycle(ctl, deadline, period, ctl[C_LAST_START], end, policy, wd_time,
                          wd_sens)
        if nxt < 0:
            return ctl[C_EXIT]  # type: ignore[no-any-return]
        if budget > 0 and ctl[C_CYCLES] >= budget:
            store_release_i64(ctl, C_EXIT, EXIT_BUDGET)
            return EXIT_BUDGET
        deadline = nxt
