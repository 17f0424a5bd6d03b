"""The compiled tick loop's building blocks (cycle/_rt.py): clocks, atomics, seqlock, ring, eventfd.

Timing assertions use generous bounds only (a sleep may be late by < 50 ms on a shared VM,
never early). The concurrency tests run real threads in nopython mode with the GIL
released, and assert only what must always hold (no torn copy accepted, every record
exactly once and in order, no lost wake-up).
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from numba import njit
from numba.core.errors import TypingError
from numpy.typing import NDArray

from smartline.core import Quality, ReadResult, Reason
from smartline.cycle import _rt
from smartline.cycle._image import ProcessImage
from smartline.cycle._rt import (
    STOPPED,
    TORN,
    OutputRing,
    add_ring_reader,
    cpu_relax,
    drain_eventfd,
    eventfd_signal,
    fetch_add_i64,
    load_acquire_i64,
    make_eventfd,
    now_ns,
    ring_push,
    seq_read_copy,
    seq_read_gather,
    seq_write,
    seq_write_begin,
    seq_write_end,
    seq_write_slots,
    sleep_until_ns,
    store_release_i64,
    wait_deadline_ns,
    wall_ns,
)
from smartline.tags import Scale, TagSpec, parse_address

pytestmark = pytest.mark.skipif(not _rt.SUPPORTED, reason="Linux x86-64/arm64 only")

MS = 1_000_000
LATE_BOUND_NS = 50 * MS  # generous: shared CI machines stall for milliseconds


# -- nopython helpers (compiled with nogil=True, cache=True like the real loop) --------------


@njit(cache=True, nogil=True)
def _sleep_for(delay_ns):  # type: ignore[no-untyped-def]
    return sleep_until_ns(now_ns() + delay_ns, 0)


@njit(cache=True)
def _sleep_for_holding_gil(delay_ns):  # type: ignore[no-untyped-def]
    return sleep_until_ns(now_ns() + delay_ns, 0)


@njit(cache=True, nogil=True)
def _clock_steps(n):  # type: ignore[no-untyped-def]
    """Smallest difference between successive now_ns() readings."""
    prev = now_ns()
    smallest = 1 << 62
    for _ in range(n):
        t = now_ns()
        smallest = min(smallest, t - prev)
        prev = t
    return smallest


@njit(cache=True, nogil=True)
def _add_many(arr, n):  # type: ignore[no-untyped-def]
    for _ in range(n):
        fetch_add_i64(arr, 0, 1)


@njit(cache=True, nogil=True)
def _hammer_read(seq, values, quality, slots, flags, min_reads, max_retries,  # type: ignore[no-untyped-def]
                 out):
    """Copy blocks until the writer is done (``flags[16]``) and ``min_reads`` copies are made.

    Every block is written as ``width`` equal values ``k`` with quality ``k % 4``, ``k``
    rising. Counts into ``out``: reads, mixed (accepted copies that are not all equal),
    torn, retries, backwards (a block's value went down), reads while the writer ran.
    """
    n_blocks = slots.shape[0]
    width = slots.shape[1]
    dv = np.empty(width)
    dq = np.empty(width, np.uint8)
    last = np.full(n_blocks, -1.0)
    reads = 0
    mixed = 0
    torn = 0
    retries = 0
    backwards = 0
    concurrent = 0
    store_release_i64(flags, 0, 1)  # started
    while True:
        done = load_acquire_i64(flags, 16)
        if done != 0 and reads >= min_reads:
            break
        b = reads % n_blocks
        r = seq_read_copy(seq, b, values, quality, slots[b], dv, dq, max_retries)
        reads += 1
        if done == 0:
            concurrent += 1
        if r == TORN:
            torn += 1
            continue
        retries += r
        k = dv[0]
        for i in range(width):
            if dv[i] != k or dq[i] != np.uint8(np.int64(k) % 4):
                mixed += 1
                break
        if k < last[b]:
            backwards += 1
        last[b] = k
    out[0] = reads
    out[1] = mixed
    out[2] = torn
    out[3] = retries
    out[4] = backwards
    out[5] = concurrent


@njit(cache=True, nogil=True)
def _hammer_write(seq, values, quality, slots, flags, n):  # type: ignore[no-untyped-def]
    """The numba writer: ``n`` block writes of ``width`` equal values."""
    while load_acquire_i64(flags, 0) == 0:  # wait for the reader
        cpu_relax()
    width = slots.shape[1]
    vals = np.empty(width)
    q = np.empty(width, np.uint8)
    for k in range(1, n + 1):
        for i in range(width):
            vals[i] = k
            q[i] = k % 4
        seq_write_slots(seq, k % slots.shape[0], slots[k % slots.shape[0]], vals, q, values,
                        quality)


@njit(cache=True, nogil=True)
def _busy_read(seq, values, quality, slots, flags):  # type: ignore[no-untyped-def]
    """Read block 0 as fast as possible until ``flags[16]`` is raised; returns the count."""
    dv = np.empty(slots.shape[1])
    dq = np.empty(slots.shape[1], np.uint8)
    n = 0
    store_release_i64(flags, 0, 1)
    while load_acquire_i64(flags, 16) == 0:
        seq_read_copy(seq, 0, values, quality, slots[0], dv, dq, 1 << 40)
        n += 1
    return n


@njit(cache=True, nogil=True)
def _produce(ring, n, fd, every):  # type: ignore[no-untyped-def]
    """Push records 0..n-1 (slot k % 1000, value k / 2, code k % 3, cycle k), retrying while
    the ring is full; signal the eventfd every ``every`` records, when the ring is full and
    at the end. Returns the number of refused pushes."""
    refused = 0
    for k in range(n):
        in_row = 0
        while not ring_push(ring, k % 1000, k * 0.5, k % 3, k):
            if in_row == 0:
                eventfd_signal(fd)  # make sure the consumer is awake
            in_row += 1
            refused += 1
            cpu_relax()
        if k % every == every - 1:
            eventfd_signal(fd)
    eventfd_signal(fd)
    return refused


def _block_image(n_blocks: int = 4, width: int = 8) -> tuple[
        NDArray[np.int64], NDArray[np.float64], NDArray[np.uint8], NDArray[np.intp]]:
    seq = _rt.seqlock_array(n_blocks)
    values = np.zeros(n_blocks * width)
    quality = np.zeros(n_blocks * width, np.uint8)
    slots = np.arange(n_blocks * width, dtype=np.intp).reshape(n_blocks, width)
    return seq, values, quality, slots


# -- time ------------------------------------------------------------------------------------


def test_now_ns_reads_the_monotonic_clock() -> None:
    now_ns()
    a = time.monotonic_ns()
    b = now_ns()
    c = time.monotonic_ns()
    assert a <= b <= c
    assert _clock_steps(10_000) >= 0  # never goes backwards


def test_wall_ns_reads_the_realtime_clock() -> None:
    wall_ns()
    a = time.time_ns()
    b = wall_ns()
    c = time.time_ns()
    assert a <= b <= c


@pytest.mark.parametrize("spin_ns", [0, 200_000])
@pytest.mark.parametrize("delay_ns", [1 * MS, 5 * MS, 20 * MS])
def test_sleep_until_ns_is_never_early_and_not_very_late(delay_ns: int, spin_ns: int) -> None:
    sleep_until_ns(0, 0)
    deadline = time.monotonic_ns() + delay_ns
    woke = sleep_until_ns(deadline, spin_ns)
    after = time.monotonic_ns()
    assert deadline <= woke <= after
    assert woke - deadline < LATE_BOUND_NS


def test_sleep_until_a_past_deadline_returns_at_once() -> None:
    t = time.monotonic_ns()
    assert sleep_until_ns(t - 10 * MS, 0) >= t
    assert sleep_until_ns(-5, 1_000) >= t  # no negative timespec reaches the kernel


def test_sleep_until_ns_sleeps_on_after_a_signal() -> None:
    """clock_nanosleep returns EINTR when a signal arrives; the sleep goes on to the deadline."""
    seen: list[int] = []
    old = signal.signal(signal.SIGUSR1, lambda *_: seen.append(1))
    main = threading.get_ident()
    killer = threading.Timer(0.02, signal.pthread_kill, (main, signal.SIGUSR1))
    try:
        deadline = time.monotonic_ns() + 150 * MS
        killer.start()
        woke = sleep_until_ns(deadline, 0)
    finally:
        killer.join()
        signal.signal(signal.SIGUSR1, old)
    assert seen == [1]
    assert woke >= deadline


def test_wait_deadline_ns_reaches_the_deadline_or_stops() -> None:
    flags = _rt.aligned_zeros(1)
    wait_deadline_ns(0, 0, flags, 0, MS)  # compile outside the timed part
    deadline = time.monotonic_ns() + 20 * MS
    woke = wait_deadline_ns(deadline, 1 * MS, flags, 0, 5 * MS)
    assert woke >= deadline
    assert woke - deadline < LATE_BOUND_NS

    result: list[int] = []
    t = threading.Thread(target=lambda: result.append(
        wait_deadline_ns(time.monotonic_ns() + 60_000 * MS, 0, flags, 0, 5 * MS)))
    t.start()
    time.sleep(0.05)
    store_release_i64(flags, 0, 1)
    t.join(10)
    assert not t.is_alive()
    assert result == [STOPPED]
    assert wait_deadline_ns(0, 0, flags, 0, MS) == STOPPED


def test_nopython_sleep_releases_the_gil() -> None:
    """A pure-Python thread keeps counting during a 200 ms sleep in nogil code, and (the
    control) hardly at all during the same sleep in code that keeps the GIL."""
    _sleep_for(0)
    _sleep_for_holding_gil(0)
    counter = [0]
    stop = threading.Event()

    def count() -> None:
        while not stop.is_set():
            counter[0] += 1

    t = threading.Thread(target=count)
    t.start()
    try:
        time.sleep(0.02)
        c0 = counter[0]
        _sleep_for(200 * MS)
        released = counter[0] - c0
        c0 = counter[0]
        _sleep_for_holding_gil(200 * MS)
        held = counter[0] - c0
    finally:
        stop.set()
        t.join()
    assert released > 10_000
    assert released > 4 * held


def test_everything_loads_from_the_cache_in_a_new_process(tmp_path: Path) -> None:
    """Every function compiles with cache=True and a second process only loads them."""
    script = textwrap.dedent("""
        import json
        from numba.core.registry import CPUDispatcher
        from smartline.cycle import _rt
        _rt.warm_up()
        print(json.dumps({n: [sum(f.stats.cache_hits.values()),
                              sum(f.stats.cache_misses.values())]
                          for n, f in vars(_rt).items() if isinstance(f, CPUDispatcher)}))
    """)
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    runs = []
    for _ in range(2):
        p = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                           text=True, timeout=300, check=True)
        assert "cannot cache" not in p.stderr.lower(), p.stderr
        runs.append(json.loads(p.stdout.strip().splitlines()[-1]))
    first, second = runs
    assert len(first) >= 25
    assert all(misses > 0 for _, misses in first.values()), first
    assert all(misses == 0 for _, misses in second.values()), second
    # functions only ever called from other compiled functions are linked into their callers
    public = {n for n in second if not n.startswith("_")}
    assert all(second[n][0] > 0 for n in public), second


# -- atomics ---------------------------------------------------------------------------------


def test_atomic_loads_stores_and_fetch_add() -> None:
    a = _rt.aligned_zeros(4)
    store_release_i64(a, 2, 41)
    assert load_acquire_i64(a, 2) == 41
    assert _rt.load_relaxed_i64(a, 2) == 41
    _rt.store_relaxed_i64(a, 1, -7)
    assert a.tolist() == [0, -7, 41, 0]
    assert fetch_add_i64(a, 2, 1) == 41
    assert a[2] == 42
    _rt.fence_acquire()
    _rt.fence_release()
    _rt.fence_seq_cst()


def test_fetch_add_from_two_threads_loses_no_update() -> None:
    a = _rt.aligned_zeros(1)
    _add_many(a, 1)
    a[0] = 0
    n = 1_000_000
    threads = [threading.Thread(target=_add_many, args=(a, n)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert a[0] == 2 * n


def test_atomics_reject_wrong_arrays_and_indices() -> None:
    with pytest.raises(TypingError):
        load_acquire_i64(np.zeros(2), 0)
    ro = np.zeros(2, np.int64)
    ro.flags.writeable = False
    with pytest.raises(TypingError):
        store_release_i64(ro, 0, 1)
    a = np.zeros(2, np.int64)
    with pytest.raises(IndexError):
        load_acquire_i64(a, 2)
    with pytest.raises(IndexError):
        store_release_i64(a, -1, 1)


def test_aligned_zeros_start_on_the_boundary() -> None:
    for dtype in (np.int64, np.float64, np.int32, np.uint8):
        a = _rt.aligned_zeros(5, dtype)
        assert a.ctypes.data % 128 == 0
        assert a.shape == (5,)
        assert a.dtype == dtype
        assert not a.any()


# -- seqlock ---------------------------------------------------------------------------------


def test_seq_read_copy_copies_the_slots() -> None:
    seq, values, quality, _ = _block_image()
    values[:] = np.arange(32) * 1.5
    quality[:] = np.arange(32) % 4
    dv = np.zeros(3)
    dq = np.zeros(3, np.uint8)
    pick = np.array([9, 12, 15], np.intp)
    assert seq_read_copy(seq, 1, values, quality, pick, dv, dq) == 0
    assert dv.tolist() == [13.5, 18.0, 22.5]
    assert dq.tolist() == [1, 0, 3]


def test_writer_sections_move_the_sequence() -> None:
    seq, values, quality, slots = _block_image(2)
    assert seq_write_begin(seq, 1) == 1
    assert seq[_rt.SEQ_STRIDE] == 1
    seq_write_end(seq, 1)
    assert seq[_rt.SEQ_STRIDE] == 2
    seq_write_end(seq, 1)  # unmatched: no change
    assert seq[_rt.SEQ_STRIDE] == 2
    with seq_write(seq, 0):
        assert _rt.seq_read_begin(seq, 0) % 2 == 1
        values[slots[0]] = 3.0
    assert seq[0] == 2
    s0 = _rt.seq_read_begin(seq, 0)
    assert not _rt.seq_read_retry(seq, 0, s0)
    seq_write_slots(seq, 0, slots[0], np.full(8, 4.0), np.zeros(8, np.uint8), values, quality)
    assert _rt.seq_read_retry(seq, 0, s0)
    assert seq[0] == 4
    assert values[:8].tolist() == [4.0] * 8


def test_bad_arguments_raise_before_a_write_section_opens() -> None:
    seq, values, quality, slots = _block_image()
    with pytest.raises(IndexError):
        seq_write_slots(seq, 0, np.array([0, 99], np.intp), np.zeros(2), np.zeros(2, np.uint8),
                        values, quality)
    with pytest.raises(ValueError, match="shorter"):
        seq_write_slots(seq, 0, slots[0], np.zeros(2), np.zeros(8, np.uint8), values, quality)
    assert seq[0] == 0  # no section was left open
    assert not values.any()
    with pytest.raises(ValueError, match="shorter"):
        seq_read_copy(seq, 0, values, quality, slots[0], np.zeros(2), np.zeros(8, np.uint8))


def test_a_writer_that_died_inside_its_section_gives_torn_not_a_hang() -> None:
    seq, values, quality, slots = _block_image()
    dv = np.zeros(8)
    dq = np.zeros(8, np.uint8)
    seq_write_begin(seq, 2)  # ... and never ends
    assert seq_read_copy(seq, 2, values, quality, slots[2], dv, dq, 1000) == TORN
    assert seq_read_copy(seq, 1, values, quality, slots[1], dv, dq, 1000) == 0  # other block
    seq_write_end(seq, 2)
    assert seq_read_copy(seq, 2, values, quality, slots[2], dv, dq, 1000) == 0


def _python_njit_writer(seq: NDArray[np.int64], values: NDArray[np.float64],
                        quality: NDArray[np.uint8], slots: NDArray[np.intp],
                        flags: NDArray[np.int64], n: int) -> None:
    while load_acquire_i64(flags, 0) == 0:
        time.sleep(0.0001)
    vals = np.empty(slots.shape[1])
    q = np.empty(slots.shape[1], np.uint8)
    nb = slots.shape[0]
    for k in range(1, n + 1):
        vals.fill(k)
        q.fill(k % 4)
        seq_write_slots(seq, k % nb, slots[k % nb], vals, q, values, quality)


def _python_section_writer(seq: NDArray[np.int64], values: NDArray[np.float64],
                           quality: NDArray[np.uint8], slots: NDArray[np.intp],
                           flags: NDArray[np.int64], n: int) -> None:
    while load_acquire_i64(flags, 0) == 0:
        time.sleep(0.0001)
    nb = slots.shape[0]
    for k in range(1, n + 1):
        s = slots[k % nb]
        with seq_write(seq, k % nb):
            values[s] = k
            quality[s] = k % 4


WRITERS = {
    "numba": (_hammer_write, 2_000_000),
    "python-calls-njit-writer": (_python_njit_writer, 40_000),
    "python-section": (_python_section_writer, 20_000),
}


@pytest.mark.parametrize("writer", list(WRITERS))
def test_seqlock_reader_never_accepts_a_mixed_block(writer: str) -> None:
    write, n = WRITERS[writer]
    seq, values, quality, slots = _block_image()
    flags = _rt.aligned_zeros(32)
    out = np.zeros(6, np.int64)
    # compile first so both threads start together
    _hammer_read(seq, values, quality, slots, _rt.aligned_zeros(32) + 1, 0, 10, out.copy())
    _hammer_write(seq, values.copy(), quality.copy(), slots, _rt.aligned_zeros(32) + 1, 1)
    seq[:] = 0
    reader = threading.Thread(target=_hammer_read,
                              args=(seq, values, quality, slots, flags, 5_000, 10_000_000, out))
    writer_thread = threading.Thread(target=write, args=(seq, values, quality, slots, flags, n))
    reader.start()
    writer_thread.start()
    writer_thread.join(120)
    store_release_i64(flags, 16, 1)
    reader.join(120)
    assert not reader.is_alive()
    assert not writer_thread.is_alive()
    reads, mixed, torn, retries, backwards, concurrent = out.tolist()
    print(f"{writer}: reads={reads} concurrent={concurrent} retries={retries} torn={torn}")
    assert reads >= 5_000
    assert concurrent > 0
    assert mixed == 0
    assert backwards == 0
    assert torn * 10 <= reads
    assert values.reshape(4, 8).max() == n  # the writer finished every write


def test_the_writer_is_not_slowed_down_much_by_a_busy_reader() -> None:
    """The writer never waits for readers: with a reader spinning on the same block its
    throughput stays within a (generous) factor of its throughput alone."""
    seq, values, quality, slots = _block_image()
    vals = np.ones(8)
    q = np.zeros(8, np.uint8)
    n = 20_000

    def write() -> float:
        t = time.perf_counter()
        for _ in range(n):
            seq_write_slots(seq, 0, slots[0], vals, q, values, quality)
        return time.perf_counter() - t

    _busy_read(seq, values, quality, slots, _rt.aligned_zeros(32) + 1)
    write()
    alone = min(write() for _ in range(3))
    flags = _rt.aligned_zeros(32)
    reads: list[int] = []
    reader = threading.Thread(target=lambda: reads.append(
        _busy_read(seq, values, quality, slots, flags)))
    reader.start()
    try:
        while load_acquire_i64(flags, 0) == 0:
            time.sleep(0.0001)
        busy = min(write() for _ in range(3))
    finally:
        store_release_i64(flags, 16, 1)
        reader.join(60)
    print(f"writer alone {alone / n * 1e9:.0f} ns/write, with a busy reader "
          f"{busy / n * 1e9:.0f} ns/write, reader made {reads[0]} copies")
    assert reads[0] > 0
    assert busy < 20 * alone + 0.5


def test_seq_read_gather_snapshots_groups_of_blocks() -> None:
    seq, values, quality, _ = _block_image(3, 4)
    values[:] = np.arange(12, dtype=np.float64)
    quality[5] = Quality.BAD
    quality[9] = Quality.STALE
    # task inputs: slots 1, 5 (block 1 is 4..7) ... grouped per block
    pick = np.array([1, 3, 5, 6, 9], np.intp)
    group_block = np.array([0, 1, 2], np.intp)
    group_start = np.array([0, 2, 4, 5], np.intp)
    dv = np.zeros(5)
    dq = np.zeros(5, np.uint8)
    assert seq_read_gather(seq, group_block, group_start, values, quality, pick, dv, dq, 100) == 0
    assert np.array_equal(dv, [1, 3, np.nan, 6, 9], equal_nan=True)
    assert dq.tolist() == [0, 0, Quality.BAD, 0, Quality.STALE]
    seq_write_begin(seq, 2)  # block 2's writer stalls
    assert seq_read_gather(seq, group_block, group_start, values, quality, pick, dv, dq, 100) == 1
    assert np.array_equal(dv, [1, 3, np.nan, 6, np.nan], equal_nan=True)
    assert dq.tolist() == [0, 0, Quality.BAD, 0, Quality.BAD]


def _image() -> ProcessImage:
    tags = [TagSpec("a", "plc", parse_address("memory", "a")),
            TagSpec("b", "plc", parse_address("memory", "b"), scale=Scale(2.0, 1.0)),
            TagSpec("arr", "plc", parse_address("memory", "arr:float64[3]"),
                    scale=Scale(0.5, -1.0))]
    return ProcessImage(tags)


@pytest.mark.parametrize("with_source", [False, True])
def test_publish_read_result_matches_process_image_ingest(with_source: bool) -> None:
    slots = np.array([1, 2, 3, 4], np.intp)
    result = ReadResult(slots=slots, raw=np.array([10.0, 4.0, np.nan, 8.0]),
                        quality=np.array([0, 1, 3, 0], np.uint8),
                        reason=np.array([0, 0, int(Reason.NOT_READ), 0], np.uint8),
                        received_ns=1_700_000_000_000_000_000,
                        source_ns=np.array([1, 2, 3, 4], np.int64) if with_source else None)
    ref, img = _image(), _image()
    ref.ingest(result)
    seq = _rt.seqlock_array(1)
    _rt.publish_read_result(seq, 0, result, img)
    assert seq[0] == 2
    for col in ("value", "raw", "quality", "reason", "source_ns", "received_ns"):
        assert np.array_equal(getattr(img, col), getattr(ref, col), equal_nan=True), col
    _rt.publish_read_result(seq, 0, ReadResult.failed(np.zeros(0, np.intp), Reason.NOT_READ, 0),
                            img)
    assert seq[0] == 2  # nothing to publish: no section


def test_publish_read_result_takes_any_columns() -> None:
    n = 4
    cols = SimpleNamespace(value=np.zeros(n), raw=np.zeros(n), quality=np.zeros(n, np.uint8),
                           reason=np.zeros(n, np.uint8), source_ns=np.zeros(n, np.int64),
                           received_ns=np.zeros(n, np.int64), gain=np.full(n, 10.0),
                           offset=np.ones(n))
    result = ReadResult(slots=np.array([3], np.intp), raw=np.array([2.0]),
                        quality=np.zeros(1, np.uint8), reason=np.zeros(1, np.uint8),
                        received_ns=5)
    _rt.publish_read_result(_rt.seqlock_array(1), 0, result, cols)  # type: ignore[arg-type]
    assert cols.value.tolist() == [0, 0, 0, 21.0]
    assert cols.source_ns.tolist() == [0, 0, 0, 5]


# -- ring ------------------------------------------------------------------------------------


def test_ring_capacity_is_a_power_of_two() -> None:
    assert OutputRing(1).capacity == 1
    assert OutputRing(1000).capacity == 1024
    assert OutputRing(1024).capacity == 1024
    with pytest.raises(ValueError, match="capacity"):
        OutputRing(0)
    r = OutputRing(8)
    hdr = r.header
    assert hdr.ctypes.data % 128 == 0
    # producer, consumer and constant words on separate 128-byte lines
    assert {_rt._W, _rt._DROPS, _rt._R_CACHE} < set(range(16))
    assert 16 <= _rt._R < 32
    assert _rt._CAP >= 32


def test_ring_pushes_and_pops_in_order_across_the_wrap() -> None:
    ring = OutputRing(8, batch=3)
    expected: list[int] = []
    got: list[tuple[int, float, int, int]] = []
    k = 0
    for _ in range(20):
        for _ in range(5):
            assert ring_push(ring.arrays, k, k / 4, k % 5, 100 + k)
            expected.append(k)
            k += 1
        assert len(ring) == 5
        while n := ring.pop():
            got.extend(zip(ring.out_slot[:n].tolist(), ring.out_value[:n].tolist(),
                           ring.out_code[:n].tolist(), ring.out_cycle[:n].tolist(),
                           strict=True))
        assert len(ring) == 0
    assert got == [(k, k / 4, k % 5, 100 + k) for k in expected]
    assert ring.drops == 0


def test_a_full_ring_refuses_and_counts_drops() -> None:
    ring = OutputRing(16)
    for k in range(16):
        assert ring_push(ring.arrays, k, 0.0, 0, k)
    for _ in range(5):
        assert not ring_push(ring.arrays, 99, 0.0, 0, 99)
    assert ring.drops == 5
    assert len(ring) == 16
    assert ring.pop() == 16
    assert ring.out_cycle[:16].tolist() == list(range(16))  # the refused ones never entered
    assert ring_push(ring.arrays, 1, 0.0, 0, 16)
    assert ring.drops == 5


def test_a_numba_producer_and_a_python_consumer_move_a_million_records() -> None:
    n = 1_000_000
    ring = OutputRing(1024, batch=1024)
    fd = make_eventfd()
    _produce(OutputRing(4).arrays, 1, fd, 1)  # compile
    drain_eventfd(fd)
    got = {name: np.full(n, -1, dtype) for name, dtype in
           (("slot", np.int64), ("value", np.float64), ("code", np.int32),
            ("cycle", np.int64))}
    refused: list[int] = []
    producer = threading.Thread(target=lambda: refused.append(_produce(ring.arrays, n, fd, 64)))
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    pos = 0
    wakeups = 0
    producer.start()
    try:
        give_up = time.monotonic() + 120
        while pos < n and time.monotonic() < give_up:
            if not poller.poll(100):
                continue
            wakeups += 1
            drain_eventfd(fd)
            while m := ring.pop():
                assert pos + m <= n
                got["slot"][pos:pos + m] = ring.out_slot[:m]
                got["value"][pos:pos + m] = ring.out_value[:m]
                got["code"][pos:pos + m] = ring.out_code[:m]
                got["cycle"][pos:pos + m] = ring.out_cycle[:m]
                pos += m
    finally:
        producer.join(120)
        os.close(fd)
    k = np.arange(n)
    assert pos == n
    assert np.array_equal(got["cycle"], k)  # each exactly once, in order
    assert np.array_equal(got["slot"], k % 1000)
    assert np.array_equal(got["value"], k * 0.5)
    assert np.array_equal(got["code"], k % 3)
    assert ring.pop() == 0
    assert ring.drops == refused[0]  # every refused push was counted
    print(f"1e6 records: {wakeups} wake-ups, {refused[0]} pushes refused (ring full)")


# -- eventfd ---------------------------------------------------------------------------------


def test_eventfd_signal_makes_the_fd_readable_and_drain_resets_it() -> None:
    fd = make_eventfd()
    try:
        assert drain_eventfd(fd) == 0
        assert select.select([fd], [], [], 0)[0] == []
        assert eventfd_signal(fd) == 8
        assert eventfd_signal(fd) == 8
        assert select.select([fd], [], [], 0)[0] == [fd]
        assert drain_eventfd(fd) == 2
        assert select.select([fd], [], [], 0)[0] == []
        os.eventfd_write(fd, 0xFFFF_FFFF_FFFF_FFFE)  # the largest count: saturated
        assert eventfd_signal(fd) == -1  # EAGAIN: not blocked, the wake-up is pending anyway
        assert select.select([fd], [], [], 0)[0] == [fd]
    finally:
        os.close(fd)


async def test_eventfd_wakes_an_asyncio_reader_that_drains_the_ring() -> None:
    loop = asyncio.get_running_loop()
    ring = OutputRing(64, batch=16)
    fd = make_eventfd()
    _produce(OutputRing(4).arrays, 1, fd, 1)  # compile
    drain_eventfd(fd)
    got: list[int] = []
    threads: set[int] = set()
    done = asyncio.Event()

    def on_records(slot: NDArray[np.int64], value: NDArray[np.float64],
                   code: NDArray[np.int32], cycle: NDArray[np.int64]) -> None:
        threads.add(threading.get_ident())
        got.extend(cycle.tolist())
        if len(got) >= 500:
            done.set()

    remove = add_ring_reader(loop, fd, ring, on_records)
    producer = threading.Thread(target=_produce, args=(ring.arrays, 500, fd, 7))
    try:
        producer.start()
        await asyncio.wait_for(done.wait(), 30)
    finally:
        producer.join(30)
        remove()
        os.close(fd)
    assert got == list(range(500))
    assert threads == {threading.get_ident()}  # popped on the loop's thread
