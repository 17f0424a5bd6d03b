"""Micro-benchmarks of the compiled tick loop's building blocks (cycle/_rt.py).

Each figure is measured inside a compiled loop (no Python per operation) unless it says
"from Python"; it is the best of 5 runs, divided by the operations per run.

    pytest benchmarks/bench_rt.py -p no:cacheprovider -s
    PYTHONPATH=src python benchmarks/bench_rt.py

Nothing asserts a time: shared CI machines vary by 3x between runs.
"""

from __future__ import annotations

import os
import threading
import time
import timeit
from collections.abc import Callable

import numpy as np
from numba import njit

from smartline.cycle import _rt
from smartline.cycle._rt import (
    OutputRing,
    eventfd_signal,
    load_acquire_i64,
    now_ns,
    ring_pop_batch,
    ring_push,
    seq_read_copy,
    seq_write_slots,
    store_release_i64,
    wall_ns,
)


@njit(cache=True, nogil=True)
def _now_loop(n):  # type: ignore[no-untyped-def]
    s = 0
    for _ in range(n):
        s += now_ns()
    return s


@njit(cache=True, nogil=True)
def _wall_loop(n):  # type: ignore[no-untyped-def]
    s = 0
    for _ in range(n):
        s += wall_ns()
    return s


@njit(cache=True, nogil=True)
def _read_loop(seq, values, quality, slots, dv, dq, n):  # type: ignore[no-untyped-def]
    r = 0
    for _ in range(n):
        r += seq_read_copy(seq, 0, values, quality, slots, dv, dq, 1000)
    return r


@njit(cache=True, nogil=True)
def _plain_gather_loop(values, quality, slots, dv, dq, n):  # type: ignore[no-untyped-def]
    """The same copy without the seqlock and with plain loads (the baseline)."""
    for _ in range(n):
        for i in range(slots.shape[0]):
            j = slots[i]
            dv[i] = values[j]
            dq[i] = quality[j]


@njit(cache=True, nogil=True)
def _write_loop(seq, slots, vals, q, values, quality, n):  # type: ignore[no-untyped-def]
    for _ in range(n):
        seq_write_slots(seq, 0, slots, vals, q, values, quality)


@njit(cache=True, nogil=True)
def _push_pop_loop(ring, out_slot, out_value, out_code, out_cycle, n):  # type: ignore[no-untyped-def]
    """Push a batch of 64, pop it; n times. Returns records moved."""
    moved = 0
    for k in range(n):
        for i in range(64):
            ring_push(ring, i, 1.0, 0, k)
        moved += ring_pop_batch(ring, out_slot, out_value, out_code, out_cycle)
    return moved


@njit(cache=True, nogil=True)
def _push_only_loop(ring, n):  # type: ignore[no-untyped-def]
    for k in range(n):
        ring_push(ring, k, 1.0, 0, k)


@njit(cache=True, nogil=True)
def _signal_loop(fd, n):  # type: ignore[no-untyped-def]
    for _ in range(n):
        eventfd_signal(fd)


@njit(cache=True, nogil=True)
def _torn_loop(seq, values, quality, slots, dv, dq, retries):  # type: ignore[no-untyped-def]
    return seq_read_copy(seq, 0, values, quality, slots, dv, dq, retries)


@njit(cache=True, nogil=True)
def _contended_read(seq, values, quality, slots, dv, dq, flags):  # type: ignore[no-untyped-def]
    n = 0
    retries = 0
    t0 = now_ns()
    store_release_i64(flags, 0, 1)
    while load_acquire_i64(flags, 16) == 0:
        retries += seq_read_copy(seq, 0, values, quality, slots, dv, dq, 1 << 40)
        n += 1
    return n, retries, now_ns() - t0


def _best_ns(fn: Callable[[], object], ops: int, repeat: int = 5) -> float:
    fn()
    return min(timeit.repeat(fn, number=1, repeat=repeat)) / ops * 1e9


def measure() -> dict[str, float]:
    _rt.warm_up()
    out: dict[str, float] = {}
    n = 1_000_000
    out["now_ns() in nopython"] = _best_ns(lambda: _now_loop(n), n)
    out["wall_ns() in nopython"] = _best_ns(lambda: _wall_loop(n), n)
    out["time.monotonic_ns() from Python"] = _best_ns(
        lambda: [time.monotonic_ns() for _ in range(100_000)], 100_000)
    out["now_ns() from Python"] = _best_ns(lambda: [now_ns() for _ in range(100_000)], 100_000)

    for size in (10, 10_000):
        seq = _rt.seqlock_array(1)
        values = np.random.rand(size * 2)
        quality = np.zeros(size * 2, np.uint8)
        slots = np.arange(0, size * 2, 2, dtype=np.intp)
        dv = np.zeros(size)
        dq = np.zeros(size, np.uint8)
        reps = max(10, 2_000_000 // size)
        out[f"seq_read_copy, {size} slots"] = _best_ns(
            lambda: _read_loop(seq, values, quality, slots, dv, dq, reps), reps)  # noqa: B023
        out[f"plain gather (no seqlock), {size} slots"] = _best_ns(
            lambda: _plain_gather_loop(values, quality, slots, dv, dq, reps), reps)  # noqa: B023
        vals = np.random.rand(size)
        out[f"seq_write_slots, {size} slots"] = _best_ns(
            lambda: _write_loop(seq, slots, vals, dq, values, quality, reps), reps)  # noqa: B023

    ring = OutputRing(1024, batch=64)
    out["ring_push + ring_pop_batch, per record (batches of 64)"] = _best_ns(
        lambda: _push_pop_loop(ring.arrays, ring.out_slot, ring.out_value, ring.out_code,
                               ring.out_cycle, 10_000), 640_000)
    big = OutputRing(1 << 20)
    out["ring_push alone (ring never full)"] = _best_ns(
        lambda: (_push_only_loop(big.arrays, 1 << 19), big.header.__setitem__(16, big.header[0])),
        1 << 19)
    out["ring.pop() from Python, empty ring"] = _best_ns(
        lambda: [ring.pop() for _ in range(10_000)], 10_000)

    fd = _rt.make_eventfd()
    try:
        out["eventfd_signal (write syscall)"] = _best_ns(lambda: _signal_loop(fd, 100_000),
                                                         100_000)
    finally:
        os.close(fd)

    seq = _rt.seqlock_array(1)
    values = np.zeros(8)
    quality = np.zeros(8, np.uint8)
    slots = np.arange(8, dtype=np.intp)
    dv = np.zeros(8)
    dq = np.zeros(8, np.uint8)
    _rt.seq_write_begin(seq, 0)  # a writer that never ends its section
    out["one failed attempt while a writer is inside (spin)"] = _best_ns(
        lambda: _torn_loop(seq, values, quality, slots, dv, dq, 100_000), 100_000)
    _rt.seq_write_end(seq, 0)

    # a reader against a writer in another thread (both nopython, GIL released)
    flags = _rt.aligned_zeros(32)
    res: list[tuple[int, int, int]] = []
    reader = threading.Thread(target=lambda: res.append(
        _contended_read(seq, values, quality, slots, dv, dq, flags)))
    reader.start()
    while load_acquire_i64(flags, 0) == 0:
        time.sleep(0.0001)
    vals = np.ones(8)
    t = time.perf_counter()
    _write_loop(seq, slots, vals, dq, values, quality, 2_000_000)
    write_ns = (time.perf_counter() - t) / 2_000_000 * 1e9
    store_release_i64(flags, 16, 1)
    reader.join()
    reads, retries, elapsed = res[0]
    out["8-slot write with a reader spinning on the block"] = write_ns
    out["8-slot read with a writer hammering the block"] = elapsed / reads
    out["  retries per read in that race"] = retries / reads
    return out


def report(results: dict[str, float]) -> str:
    lines = ["| operation | ns |", "|---|---|"]
    lines += [f"| {k} | {v:,.1f} |" for k, v in results.items()]
    return "\n".join(lines)


def test_bench_rt() -> None:
    print()
    print(report(measure()))


if __name__ == "__main__":
    print(report(measure()))
