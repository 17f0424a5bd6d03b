"""Building blocks of the compiled tick loop: clocks, atomics, a seqlock, an SPSC ring, eventfd.

Everything here is callable from ``@njit(nogil=True, cache=True)`` code, so a task's whole
cycle (wait for the deadline, snapshot inputs, run the program, queue changed outputs, wake
the I/O loop, record timing) can run in one compiled loop that never enters Python
(issue #8, DESIGN §7). See ``docs/decisions/0012-lock-free-image-and-output-ring.md``.

* **Time** — :func:`now_ns` (``CLOCK_MONOTONIC``), :func:`wall_ns` (``CLOCK_REALTIME``),
  :func:`sleep_until_ns` (``clock_nanosleep(TIMER_ABSTIME)`` to ``spin_ns`` before the
  deadline, then a spin on the clock) and :func:`wait_deadline_ns` (the same, in slices,
  watching a stop flag).
* **Atomics** on int64 arrays — :func:`load_acquire_i64`, :func:`store_release_i64`,
  :func:`load_relaxed_i64`, :func:`store_relaxed_i64`, :func:`fetch_add_i64` (seq_cst) —
  and fences :func:`fence_acquire`, :func:`fence_release`, :func:`fence_seq_cst`. They are
  LLVM atomic instructions emitted by numba intrinsics, so LLVM picks the barriers of the
  target (plain moves on x86-64, ``ldar``/``stlr``/``dmb`` on arm64).
* **Seqlock** per device block of the process image — writer :func:`seq_write_begin` /
  :func:`seq_write_end` (or the one-call writers :func:`seq_write_slots` and
  :func:`seq_publish_result`, and the process image's writers over several blocks
  :func:`seq_ingest`, :func:`seq_mark`, :func:`seq_store`), reader :func:`seq_read_copy`
  and :func:`seq_read_gather`.
  The writer never waits; a reader retries, and after ``max_retries`` reports :data:`TORN`.
* **SPSC ring** of output records (:class:`OutputRing`; :func:`ring_push` in the producer,
  :func:`ring_pop_batch` in the consumer) with acquire/release on its two counters.
* **eventfd** — :func:`make_eventfd`, :func:`eventfd_signal` (nopython ``write``),
  :func:`drain_eventfd` and :func:`add_ring_reader` (asyncio ``add_reader`` that drains the
  fd, then the ring).

C functions (``clock_gettime``, ``clock_nanosleep``, ``write``) are called by declaring them
in the LLVM module of the caller (numba ``@intrinsic``); the JIT linker resolves them to the
libc already loaded in the process. No function pointer is baked into the code, so every
function here caches with ``cache=True``.

Linux only, 64-bit (x86-64, arm64): ``struct timespec`` is two 64-bit integers and
``CLOCK_MONOTONIC`` = 1, ``CLOCK_REALTIME`` = 0, ``TIMER_ABSTIME`` = 1 there. :data:`SUPPORTED`
says whether this process is on such a platform; elsewhere the functions fail to link when
first compiled.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import platform
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils as _cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic as _numba_intrinsic
from numpy.typing import DTypeLike, NDArray

from ..core import Quality, ReadResult

__all__ = [
    "CLOCK_MONOTONIC",
    "CLOCK_REALTIME",
    "RING_DEFAULT_CAPACITY",
    "SEQ_MAX_RETRIES",
    "SEQ_STRIDE",
    "STOPPED",
    "SUPPORTED",
    "TIMER_ABSTIME",
    "TORN",
    "ImageArrays",
    "ImageColumns",
    "OutputRing",
    "RecordsCallback",
    "RingArrays",
    "add_ring_reader",
    "aligned_zeros",
    "cpu_relax",
    "drain_eventfd",
    "eventfd_signal",
    "fence_acquire",
    "fence_release",
    "fence_seq_cst",
    "fetch_add_i64",
    "load_acquire_i64",
    "load_relaxed_i64",
    "make_eventfd",
    "now_ns",
    "publish_read_result",
    "ring_drops",
    "ring_pop_batch",
    "ring_push",
    "ring_size",
    "seq_ingest",
    "seq_mark",
    "seq_publish_result",
    "seq_read_begin",
    "seq_read_copy",
    "seq_read_gather",
    "seq_read_retry",
    "seq_store",
    "seq_write",
    "seq_write_begin",
    "seq_write_end",
    "seq_write_slots",
    "seqlock_array",
    "sleep_until_ns",
    "store_relaxed_i64",
    "store_release_i64",
    "wait_deadline_ns",
    "wall_ns",
    "warm_up",
]

# -- platform ------------------------------------------------------------------------------

_MACHINE = platform.machine().lower()
_X86 = _MACHINE in ("x86_64", "amd64")
_ARM64 = _MACHINE in ("aarch64", "arm64")

SUPPORTED: bool = (sys.platform.startswith("linux") and (_X86 or _ARM64)
                   and ctypes.sizeof(ctypes.c_long) == 8)
"""Linux on x86-64 or arm64: the clock ids, ``struct timespec`` and eventfd used here hold."""

CLOCK_REALTIME = 0
CLOCK_MONOTONIC = 1
TIMER_ABSTIME = 1
_EINTR = 4

STOPPED = -1
"""What :func:`wait_deadline_ns` returns when the stop flag was raised."""

TORN = -1
"""What :func:`seq_read_copy` returns when it gave up: the copy may mix two writes."""

SEQ_STRIDE = 16
"""int64 words per seqlock (128 bytes: each block's sequence on its own cache line(s))."""

SEQ_MAX_RETRIES = 10_000
"""Default bound of a reader's attempts (each a sequence check, a copy when even)."""

RING_DEFAULT_CAPACITY = 4096

_BAD = int(Quality.BAD)  # numba freezes module globals
_NS = 1_000_000_000
# bytes: a 64-byte x86 line with its adjacent-line prefetch pair, or a 128-byte arm64 line
_CACHE_LINE = 128

# -- LLVM helpers --------------------------------------------------------------------------

_cg: Any = _cgutils


def _intrinsic(fn: Callable[..., Any]) -> Any:
    """numba's ``@intrinsic``, typed as ``Any`` for mypy (it is called from nopython code)."""
    return _numba_intrinsic(fn)


_I8 = ir.IntType(8)
_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
_TIMESPEC = ir.ArrayType(_I64, 2)  # struct timespec {time_t tv_sec; long tv_nsec;} on LP64


def _c_function(builder: ir.IRBuilder, name: str, ret: ir.Type,
                args: list[ir.Type]) -> ir.Function:
    """Declare the C function ``name`` in the caller's module (resolved by the JIT linker)."""
    fn: ir.Function = _cg.get_or_insert_function(builder.module,
                                                     ir.FunctionType(ret, args), name)
    return fn


def _check_array(arr: Any, what: str, *, writable: bool = False,
                 int64_only: bool = False) -> None:
    if not isinstance(arr, types.Array) or arr.ndim != 1:
        raise TypingError(f"{what}: expected a 1-d numpy array, got {arr}")
    if not arr.aligned:
        raise TypingError(f"{what}: the array must be aligned (atomics need natural alignment)")
    if writable and not arr.mutable:
        raise TypingError(f"{what}: the array is read-only")
    if int64_only and arr.dtype != types.int64:
        raise TypingError(f"{what}: expected an int64 array, got {arr.dtype}")
    if not isinstance(arr.dtype, types.Integer | types.Float):
        raise TypingError(f"{what}: only integer and float arrays, got {arr.dtype}")


def _item_pointer(context: Any, builder: ir.IRBuilder, aryty: Any, ary: Any,
                  idx: Any) -> Any:
    """Pointer to ``ary[idx]`` (bounds-checked: ``IndexError``; no negative indices)."""
    a = context.make_array(aryty)(context, builder, ary)
    return _cg.get_item_pointer(context, builder, aryty, a, [idx],
                                    wraparound=False, boundscheck=True)


# -- intrinsics: C calls -------------------------------------------------------------------

@_intrinsic
def _clock_gettime_ns(typingctx: Any, clock: Any) -> Any:
    """``clock_gettime(clock, &ts)`` as nanoseconds (the timespec lives on the stack)."""
    sig = types.int64(types.int32)

    def codegen(context: Any, builder: ir.IRBuilder, sig: Any, args: Any) -> Any:
        ts = _cg.alloca_once(builder, _TIMESPEC)
        fn = _c_function(builder, "clock_gettime", _I32, [_I32, ts.type])
        builder.call(fn, [args[0], ts])
        sec = builder.load(_cg.gep_inbounds(builder, ts, 0, 0))
        nsec = builder.load(_cg.gep_inbounds(builder, ts, 0, 1))
        return builder.add(builder.mul(sec, ir.Constant(_I64, _NS)), nsec)

    return sig, codegen


@_intrinsic
def _clock_nanosleep_abs(typingctx: Any, clock: Any, t_ns: Any) -> Any:
    """``clock_nanosleep(clock, TIMER_ABSTIME, &ts, NULL)``; returns 0 or the error number."""
    sig = types.int32(types.int32, types.int64)

    def codegen(context: Any, builder: ir.IRBuilder, sig: Any, args: Any) -> Any:
        ts = _cg.alloca_once(builder, _TIMESPEC)
        t = args[1]
        ns = ir.Constant(_I64, _NS)
        builder.store(builder.sdiv(t, ns), _cg.gep_inbounds(builder, ts, 0, 0))
        builder.store(builder.srem(t, ns), _cg.gep_inbounds(builder, ts, 0, 1))
        fn = _c_function(builder, "clock_nanosleep", _I32, [_I32, _I32, ts.type, ts.type])
        return builder.call(fn, [args[0], ir.Constant(_I32, TIMER_ABSTIME), ts,
                                 ir.Constant(ts.type, None)])

    return sig, codegen


@_intrinsic
def _write_u64(typingctx: Any, fd: Any, value: Any) -> Any:
    """``write(fd, &value, 8)`` (the 8-byte buffer lives on the stack); returns its result."""
    sig = types.int64(types.int32, types.uint64)

    def codegen(context: Any, builder: ir.IRBuilder, sig: Any, args: Any) -> Any:
        buf = _cg.alloca_once_value(builder, args[1])
        ptr = builder.bitcast(buf, _I8.as_pointer())
        fn = _c_function(builder, "write", _I64, [_I32, ptr.type, _I64])
        return builder.call(fn, [args[0], ptr, ir.Constant(_I64, 8)])

    return sig, codegen


@_intrinsic
def _cpu_relax(typingctx: Any) -> Any:
    """The spin-wait hint: ``pause`` on x86-64, ``yield`` on arm64 (nothing elsewhere)."""
    sig = types.void()

    def codegen(context: Any, builder: ir.IRBuilder, sig: Any, args: Any) -> Any:
        if _X86:
            builder.call(_c_function(builder, "llvm.x86.sse2.pause", ir.VoidType(), []), [])
        elif _ARM64:
            fn = _c_function(builder, "llvm.aarch64.hint", ir.VoidType(), [_I32])
            builder.call(fn, [ir.Constant(_I32, 1)])  # hint #1 = yield
        return context.get_dummy_value()

    return sig, codegen


# -- intrinsics: atomics -------------------------------------------------------------------

def _atomic_load(ordering: str, *, int64_only: bool) -> Any:
    @_intrinsic
    def load(typingctx: Any, arr: Any, i: Any) -> Any:
        _check_array(arr, f"atomic load ({ordering})", int64_only=int64_only)
        sig = arr.dtype(arr, types.intp)

        def codegen(context: Any, builder: ir.IRBuilder, sig: Any, args: Any) -> Any:
            aryty = sig.args[0]
            ptr = _item_pointer(context, builder, aryty, args[0], args[1])
            lty = context.get_data_type(aryty.dtype)
            return builder.load_atomic(ptr, ordering, aryty.dtype.bitwidth // 8, typ=lty)

        return sig, codegen

    return load


def _atomic_store(ordering: str, *, int64_only: bool) -> Any:
    @_intrinsic
    def store(typingctx: Any, arr: Any, i: Any, v: Any) -> Any:
        _check_array(arr, f"atomic store ({ordering})", writable=True, int64_only=int64_only)
        sig = types.void(arr, types.intp, arr.dtype)

        def codegen(context: Any, builder: ir.IRBuilder, sig: Any, args: Any) -> Any:
            aryty = sig.args[0]
            ptr = _item_pointer(context, builder, aryty, args[0], args[1])
            builder.store_atomic(args[2], ptr, ordering, aryty.dtype.bitwidth // 8)
            return context.get_dummy_value()

        return sig, codegen

    return store


@_intrinsic
def _fetch_add(typingctx: Any, arr: Any, i: Any, v: Any) -> Any:
    _check_array(arr, "fetch_add", writable=True, int64_only=True)
    sig = types.int64(arr, types.intp, types.int64)

    def codegen(context: Any, builder: ir.IRBuilder, sig: Any, args: Any) -> Any:
        ptr = _item_pointer(context, builder, sig.args[0], args[0], args[1])
        return builder.atomic_rmw("add", ptr, args[2], "seq_cst")

    return sig, codegen


def _fence(ordering: str) -> Any:
    @_intrinsic
    def fence(typingctx: Any) -> Any:
        def codegen(context: Any, builder: ir.IRBuilder, sig: Any, args: Any) -> Any:
            builder.fence(ordering)
            return context.get_dummy_value()

        return types.void(), codegen

    return fence


_load_acquire = _atomic_load("acquire", int64_only=True)
_load_relaxed = _atomic_load("monotonic", int64_only=False)  # also data (f8, u1) in seqlocks
_store_release = _atomic_store("release", int64_only=True)
_store_relaxed = _atomic_store("monotonic", int64_only=False)
_fence_acquire = _fence("acquire")
_fence_release = _fence("release")
_fence_seq_cst = _fence("seq_cst")

# -- public: time --------------------------------------------------------------------------


@njit(cache=True, nogil=True)  # type: ignore[misc]
def now_ns() -> int:  # pragma: no cover
    """``clock_gettime(CLOCK_MONOTONIC)`` in ns (the clock of ``time.monotonic_ns``)."""
    return _clock_gettime_ns(CLOCK_MONOTONIC)  # type: ignore[no-any-return]


@njit(cache=True, nogil=True)  # type: ignore[misc]
def wall_ns() -> int:  # pragma: no cover
    """``clock_gettime(CLOCK_REALTIME)`` in ns (the clock of ``time.time_ns``)."""
    return _clock_gettime_ns(CLOCK_REALTIME)  # type: ignore[no-any-return]


@njit(cache=True, nogil=True)  # type: ignore[misc]
def cpu_relax() -> None:  # pragma: no cover
    """Tell the CPU this is a spin-wait (``pause`` / ``yield``)."""
    _cpu_relax()


@njit(cache=True, nogil=True)  # type: ignore[misc]
def sleep_until_ns(deadline_ns: int, spin_ns: int) -> int:  # pragma: no cover
    """Sleep until ``spin_ns`` before the monotonic ``deadline_ns``, then spin to it.

    The sleep is ``clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME)`` (restarted after a
    signal: ``EINTR``); the spin reads the clock until the deadline. Returns the wake time,
    never earlier than ``deadline_ns``.
    """
    now = _clock_gettime_ns(CLOCK_MONOTONIC)
    target = deadline_ns - spin_ns
    if target > now:
        while _clock_nanosleep_abs(CLOCK_MONOTONIC, target) == _EINTR:
            pass
        now = _clock_gettime_ns(CLOCK_MONOTONIC)
    while now < deadline_ns:
        _cpu_relax()
        now = _clock_gettime_ns(CLOCK_MONOTONIC)
    return now  # type: ignore[no-any-return]


@njit(cache=True, nogil=True)  # type: ignore[misc]
def wait_deadline_ns(deadline_ns: int, spin_ns: int, stop: NDArray[np.int64],
                     stop_index: int, slice_ns: int) -> int:  # pragma: no cover
    """:func:`sleep_until_ns`, sleeping at most ``slice_ns`` at a time and checking the stop
    flag ``stop[stop_index]`` (load-acquire, non-zero = stop) before every slice and once
    more at the deadline. Returns the wake time, or :data:`STOPPED`.

    A stop request is noticed within ``slice_ns`` even in a task with a long period.
    """
    while True:
        if _load_acquire(stop, stop_index) != 0:
            return STOPPED
        now = _clock_gettime_ns(CLOCK_MONOTONIC)
        if deadline_ns - spin_ns - now <= slice_ns:
            break
        sleep_until_ns(now + slice_ns, 0)
    now = sleep_until_ns(deadline_ns, spin_ns)
    if _load_acquire(stop, stop_index) != 0:
        return STOPPED
    return now  # type: ignore[no-any-return]


# -- public: atomics -----------------------------------------------------------------------


@njit(cache=True, nogil=True)  # type: ignore[misc]
def load_acquire_i64(arr: NDArray[np.int64], i: int) -> int:  # pragma: no cover
    """``arr[i]`` with acquire ordering (later accesses stay after it)."""
    return _load_acquire(arr, i)  # type: ignore[no-any-return]


@njit(cache=True, nogil=True)  # type: ignore[misc]
def load_relaxed_i64(arr: NDArray[np.int64], i: int) -> int:  # pragma: no cover
    """``arr[i]`` as one atomic load with no ordering (``monotonic`` in LLVM)."""
    return _load_relaxed(arr, i)  # type: ignore[no-any-return]


@njit(cache=True, nogil=True)  # type: ignore[misc]
def store_release_i64(arr: NDArray[np.int64], i: int, v: int) -> None:  # pragma: no cover
    """``arr[i] = v`` with release ordering (earlier accesses stay before it)."""
    _store_release(arr, i, v)


@njit(cache=True, nogil=True)  # type: ignore[misc]
def store_relaxed_i64(arr: NDArray[np.int64], i: int, v: int) -> None:  # pragma: no cover
    """``arr[i] = v`` as one atomic store with no ordering."""
    _store_relaxed(arr, i, v)


@njit(cache=True, nogil=True)  # type: ignore[misc]
def fetch_add_i64(arr: NDArray[np.int64], i: int, v: int) -> int:  # pragma: no cover
    """Atomically add ``v`` to ``arr[i]`` (seq_cst); returns the value before."""
    return _fetch_add(arr, i, v)  # type: ignore[no-any-return]


@njit(cache=True, nogil=True)  # type: ignore[misc]
def fence_acquire() -> None:  # pragma: no cover
    """Loads before the fence are ordered before every access after it."""
    _fence_acquire()


@njit(cache=True, nogil=True)  # type: ignore[misc]
def fence_release() -> None:  # pragma: no cover
    """Accesses before the fence are ordered before every store after it."""
    _fence_release()


@njit(cache=True, nogil=True)  # type: ignore[misc]
def fence_seq_cst() -> None:  # pragma: no cover
    """A full barrier (also orders stores before the fence against loads after it)."""
    _fence_seq_cst()


def aligned_zeros(n: int, dtype: DTypeLike = np.int64,
                  align: int = _CACHE_LINE) -> NDArray[Any]:
    """A zeroed 1-d array of ``n`` items whose data starts on an ``align``-byte boundary."""
    dt = np.dtype(dtype)
    nbytes = max(n, 1) * dt.itemsize
    buf = np.zeros(nbytes + align, np.uint8)
    off = (-buf.ctypes.data) % align
    out: NDArray[Any] = buf[off:off + n * dt.itemsize].view(dt)
    return out


# -- public: seqlock -----------------------------------------------------------------------


def seqlock_array(n_blocks: int) -> NDArray[np.int64]:
    """Zeroed sequence counters for ``n_blocks`` blocks, :data:`SEQ_STRIDE` words apart on a
    cache-line boundary (block ``b`` is ``seq[b * SEQ_STRIDE]``)."""
    return aligned_zeros(n_blocks * SEQ_STRIDE, np.int64)


# keeps the GIL when called from Python: re-taking it on return could stall the open section
@njit(cache=True)  # type: ignore[misc]
def seq_write_begin(seq: NDArray[np.int64], block: int) -> int:  # pragma: no cover
    """Enter the write side of ``block``: its sequence becomes odd. Never waits.

    One writer per block at a time (writers of the same block serialise among
    themselves). The relaxed store of ``seq + 1`` is followed by a release fence, so no
    data store below can become visible before the odd sequence. Returns the odd sequence.
    """
    k = block * SEQ_STRIDE
    s = _load_relaxed(seq, k) + 1
    _store_relaxed(seq, k, s)
    _fence_release()
    return s  # type: ignore[no-any-return]


# keeps the GIL when called from Python: re-taking it on return could stall the open section
@njit(cache=True)  # type: ignore[misc]
def seq_write_end(seq: NDArray[np.int64], block: int) -> None:  # pragma: no cover
    """Leave the write side of ``block``: store-release of the next even sequence."""
    k = block * SEQ_STRIDE
    s = _load_relaxed(seq, k)
    _store_release(seq, k, s + (s & 1))  # odd -> next even (an unmatched end: unchanged)


@contextmanager
def seq_write(seq: NDArray[np.int64], block: int) -> Iterator[None]:
    """``with seq_write(seq, block): ...`` — a write section written in Python.

    Prefer :func:`seq_write_slots` / :func:`seq_publish_result` (one compiled call): a
    Python section can be suspended by a GIL switch or the OS, and readers spin meanwhile
    (then report :data:`TORN`).
    """
    seq_write_begin(seq, block)
    try:
        yield
    finally:
        seq_write_end(seq, block)


@njit(cache=True, nogil=True)  # type: ignore[misc]
def seq_read_begin(seq: NDArray[np.int64], block: int) -> int:  # pragma: no cover
    """Start a read of ``block``: its sequence (load-acquire); odd = a writer is inside."""
    return _load_acquire(seq, block * SEQ_STRIDE)  # type: ignore[no-any-return]


@njit(cache=True, nogil=True)  # type: ignore[misc]
def seq_read_retry(seq: NDArray[np.int64], block: int, s0: int) -> bool:  # pragma: no cover
    """End a read begun with sequence ``s0``: True when the copy must be thrown away.

    An acquire fence orders the copy's loads before the re-load of the sequence.
    """
    _fence_acquire()
    return (s0 & 1) != 0 or _load_relaxed(seq, block * SEQ_STRIDE) != s0  # type: ignore[no-any-return]


@njit(cache=True, nogil=True)  # type: ignore[misc]
def seq_read_copy(  # noqa: PLR0917
        seq: NDArray[np.int64], block: int, src_values: NDArray[np.float64],
        src_quality: NDArray[np.uint8], slots: NDArray[np.intp],
        dst_values: NDArray[np.float64], dst_quality: NDArray[np.uint8],
        max_retries: int = SEQ_MAX_RETRIES) -> int:  # pragma: no cover
    """Copy ``src[slots[i]]`` to ``dst[i]`` consistently with the writers of ``block``.

    Load-acquire the sequence; when it is even, copy (relaxed atomic loads), fence-acquire
    and re-load it: unchanged means no write overlapped the copy. Otherwise try again.
    Returns how many attempts failed (0: the first copy was good), or :data:`TORN` after
    ``max_retries`` failed attempts — a writer that died or stalls inside its section —
    in which case ``dst`` may mix two writes.
    """
    k = block * SEQ_STRIDE
    n = slots.shape[0]
    if dst_values.shape[0] < n or dst_quality.shape[0] < n:
        raise ValueError("seq_read_copy: dst arrays shorter than slots")
    retries = 0
    while True:
        s0 = _load_acquire(seq, k)
        if (s0 & 1) == 0:
            for i in range(n):
                j = slots[i]
                dst_values[i] = _load_relaxed(src_values, j)
                dst_quality[i] = _load_relaxed(src_quality, j)
            _fence_acquire()
            if _load_relaxed(seq, k) == s0:
                return retries
        if retries >= max_retries:
            return TORN
        retries += 1
        _cpu_relax()


@njit(cache=True, nogil=True)  # type: ignore[misc]
def seq_read_gather(  # noqa: PLR0917
        seq: NDArray[np.int64], group_block: NDArray[np.intp],
        group_start: NDArray[np.intp], src_values: NDArray[np.float64],
        src_quality: NDArray[np.uint8], slots: NDArray[np.intp],
        dst_values: NDArray[np.float64], dst_quality: NDArray[np.uint8],
        max_retries: int) -> int:  # pragma: no cover
    """A task's input snapshot across several blocks (the seqlock form of ``gather_inputs``).

    Group ``g`` is ``slots[group_start[g]:group_start[g + 1]]``, all guarded by block
    ``group_block[g]``; each group is copied consistently by :func:`seq_read_copy`.
    BAD values become NaN. A group that stays :data:`TORN` is delivered BAD (NaN).
    Returns the number of torn groups.
    """
    torn = 0
    for g in range(group_block.shape[0]):
        a = group_start[g]
        b = group_start[g + 1]
        dv = dst_values[a:b]
        dq = dst_quality[a:b]
        if seq_read_copy(seq, group_block[g], src_values, src_quality, slots[a:b], dv, dq,
                         max_retries) == TORN:
            torn += 1
            for i in range(b - a):
                dq[i] = _BAD
                dv[i] = np.nan
            continue
        for i in range(b - a):
            if dq[i] >= _BAD:
                dv[i] = np.nan
    return torn


@njit(cache=True, nogil=True)  # type: ignore[misc]
def _check_slots(slots: NDArray[np.intp], limit: int, what: str) -> None:  # pragma: no cover
    """Raise before a write section rather than inside it (which would leave it open)."""
    for i in range(slots.shape[0]):
        j = slots[i]
        if j < 0 or j >= limit:
            raise IndexError(what)


@njit(cache=True)  # type: ignore[misc]  # keeps the GIL: a short call from the I/O thread
def seq_write_slots(  # noqa: PLR0917
        seq: NDArray[np.int64], block: int, slots: NDArray[np.intp],
        values: NDArray[np.float64], quality: NDArray[np.uint8],
        dst_values: NDArray[np.float64],
        dst_quality: NDArray[np.uint8]) -> None:  # pragma: no cover
    """Write ``values[i]``, ``quality[i]`` to slot ``slots[i]`` as one seqlocked section."""
    n = slots.shape[0]
    if values.shape[0] < n or quality.shape[0] < n:
        raise ValueError("seq_write_slots: values or quality shorter than slots")
    _check_slots(slots, min(dst_values.shape[0], dst_quality.shape[0]),
                 "seq_write_slots: slot out of range")
    seq_write_begin(seq, block)
    for i in range(slots.shape[0]):
        j = slots[i]
        _store_relaxed(dst_values, j, values[i])
        _store_relaxed(dst_quality, j, quality[i])
    seq_write_end(seq, block)


@njit(cache=True)  # type: ignore[misc]  # keeps the GIL: a short call from the I/O thread
def seq_publish_result(  # noqa: PLR0917
        seq: NDArray[np.int64], block: int, slots: NDArray[np.intp],
        raw: NDArray[np.float64], quality: NDArray[np.uint8],
        reason: NDArray[np.uint8], received_ns: int,
        source_ns: NDArray[np.int64], gain: NDArray[np.float64],
        offset: NDArray[np.float64], img_value: NDArray[np.float64],
        img_raw: NDArray[np.float64], img_quality: NDArray[np.uint8],
        img_reason: NDArray[np.uint8], img_source_ns: NDArray[np.int64],
        img_received_ns: NDArray[np.int64]) -> None:  # pragma: no cover
    """The numeric part of ``ProcessImage.ingest`` for one block, as one seqlocked section:
    raw, scaled value (``raw * gain + offset``), quality, reason and both timestamps.
    An empty ``source_ns`` means "the receive time stands for the source time"."""
    n = slots.shape[0]
    has_source = source_ns.shape[0] != 0
    if (raw.shape[0] < n or quality.shape[0] < n or reason.shape[0] < n
            or (has_source and source_ns.shape[0] < n)):
        raise ValueError("seq_publish_result: result columns shorter than slots")
    if gain.shape[0] < img_value.shape[0] or offset.shape[0] < img_value.shape[0]:
        raise ValueError("seq_publish_result: gain/offset shorter than the image")
    _check_slots(slots, min(img_value.shape[0], img_raw.shape[0], img_quality.shape[0],
                            img_reason.shape[0], img_source_ns.shape[0],
                            img_received_ns.shape[0]), "seq_publish_result: slot out of range")
    seq_write_begin(seq, block)
    for i in range(slots.shape[0]):
        j = slots[i]
        r = raw[i]
        _store_relaxed(img_raw, j, r)
        _store_relaxed(img_value, j, r * gain[j] + offset[j])
        _store_relaxed(img_quality, j, quality[i])
        _store_relaxed(img_reason, j, reason[i])
        _store_relaxed(img_received_ns, j, received_ns)
        _store_relaxed(img_source_ns, j, source_ns[i] if has_source else received_ns)
    seq_write_end(seq, block)


class ImageColumns(Protocol):
    """The columns :func:`publish_read_result` writes (``ProcessImage`` has them)."""

    value: NDArray[np.float64]
    raw: NDArray[np.float64]
    quality: NDArray[np.uint8]
    reason: NDArray[np.uint8]
    source_ns: NDArray[np.int64]
    received_ns: NDArray[np.int64]
    gain: NDArray[np.float64]
    offset: NDArray[np.float64]


_NO_SOURCE = np.zeros(0, np.int64)


def publish_read_result(seq: NDArray[np.int64], block: int, result: ReadResult,
                        image: ImageColumns) -> None:
    """Publish a driver's :class:`~smartline.core.ReadResult` for one block (its slots must
    all belong to ``block``) in one compiled, seqlocked call. Texts and exact integers are
    not touched: they stay with the image's Python side."""
    if len(result.slots) == 0:
        return
    src = _NO_SOURCE if result.source_ns is None else np.asarray(result.source_ns, np.int64)
    seq_publish_result(seq, block, np.asarray(result.slots, np.intp),
                       np.asarray(result.raw, np.float64), np.asarray(result.quality, np.uint8),
                       np.asarray(result.reason, np.uint8), int(result.received_ns), src,
                       image.gain, image.offset, image.value, image.raw, image.quality,
                       image.reason, image.source_ns, image.received_ns)

# -- public: image writers over several blocks ---------------------------------------------

ImageArrays = tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.uint8],
                    NDArray[np.float64], NDArray[np.float64], NDArray[np.uint8],
                    NDArray[np.uint8], NDArray[np.int64], NDArray[np.int64],
                    NDArray[np.float64], NDArray[np.float64]]
"""``(seq, block_of_slot, opened, value, raw, quality, reason, source_ns, received_ns, gain,
offset)``: a process image as :func:`seq_ingest`, :func:`seq_mark` and :func:`seq_store`
take it. ``block_of_slot[j]`` is the seqlock block of slot ``j``; ``opened`` (one byte per
block, zero between calls) is the writer's scratch."""

_STALE = int(Quality.STALE)
_GOOD = int(Quality.GOOD)


@njit(cache=True)  # type: ignore[misc]
def _check_image(img: ImageArrays, slots: NDArray[np.intp],
                 what: str) -> int:  # pragma: no cover
    """Raise before a write section opens if a slot, its block or a column is out of range.
    Returns the block of ``slots`` when they all have the same one, else -1."""
    block_of_slot = img[1]
    n = block_of_slot.shape[0]
    n_blocks = img[2].shape[0]
    if (n_blocks * SEQ_STRIDE > img[0].shape[0]
            or min(img[3].shape[0], img[4].shape[0], img[5].shape[0], img[6].shape[0],
                   img[7].shape[0], img[8].shape[0], img[9].shape[0], img[10].shape[0]) < n):
        raise ValueError(what)
    one = -2
    for i in range(slots.shape[0]):
        j = slots[i]
        if j < 0 or j >= n:
            raise IndexError(what)
        b = block_of_slot[j]
        if b < 0 or b >= n_blocks:
            raise IndexError(what)
        if one == -2:
            one = b
        elif b != one:
            one = -1
    return one


@njit(cache=True)  # type: ignore[misc]
def _seq_open_blocks(img: ImageArrays, slots: NDArray[np.intp],
                     one: int) -> None:  # pragma: no cover
    """Begin the write section of every block ``slots`` touch (checked by
    :func:`_check_image`, which found them all in block ``one``, or -1: several, which
    are then flagged in ``opened``)."""
    seq, block_of_slot, opened = img[0], img[1], img[2]
    if one >= 0:
        seq_write_begin(seq, one)
        return
    for i in range(slots.shape[0]):
        b = block_of_slot[slots[i]]
        if opened[b] == 0:
            opened[b] = 1
            seq_write_begin(seq, b)


@njit(cache=True)  # type: ignore[misc]
def _seq_close_blocks(img: ImageArrays, slots: NDArray[np.intp],
                      one: int) -> None:  # pragma: no cover
    """End the sections :func:`_seq_open_blocks` began (``one`` as it was given)."""
    seq, block_of_slot, opened = img[0], img[1], img[2]
    if one >= 0:
        seq_write_end(seq, one)
        return
    for i in range(slots.shape[0]):
        b = block_of_slot[slots[i]]
        if opened[b] != 0:
            opened[b] = 0
            seq_write_end(seq, b)


@njit(cache=True)  # type: ignore[misc]  # keeps the GIL: a short call from the I/O thread
def seq_ingest(img: ImageArrays, slots: NDArray[np.intp], raw: NDArray[np.float64],  # noqa: PLR0917
               quality: NDArray[np.uint8], reason: NDArray[np.uint8], received_ns: int,
               source_ns: NDArray[np.int64]) -> None:  # pragma: no cover
    """The numeric part of ``ProcessImage.ingest``: raw, scaled value, quality, reason and
    both timestamps of ``slots``, which may span several blocks. Every block touched is
    written as one section (all of them open together, so a block whose slots are spread
    over the result is still published whole). An empty ``source_ns``: the receive time
    stands for the source time."""
    n = slots.shape[0]
    if n == 0:
        return
    has_source = source_ns.shape[0] != 0
    if (raw.shape[0] < n or quality.shape[0] < n or reason.shape[0] < n
            or (has_source and source_ns.shape[0] < n)):
        raise ValueError("seq_ingest: result columns shorter than slots")
    one = _check_image(img, slots, "seq_ingest: slot or block out of range")
    value, img_raw, img_quality, img_reason = img[3], img[4], img[5], img[6]
    img_source_ns, img_received_ns, gain, offset = img[7], img[8], img[9], img[10]
    _seq_open_blocks(img, slots, one)
    for i in range(n):
        j = slots[i]
        r = raw[i]
        _store_relaxed(img_raw, j, r)
        _store_relaxed(value, j, r * gain[j] + offset[j])
        _store_relaxed(img_quality, j, quality[i])
        _store_relaxed(img_reason, j, reason[i])
        _store_relaxed(img_received_ns, j, received_ns)
        _store_relaxed(img_source_ns, j, source_ns[i] if has_source else received_ns)
    _seq_close_blocks(img, slots, one)


@njit(cache=True)  # type: ignore[misc]  # keeps the GIL: a short call from the I/O thread
def seq_mark(img: ImageArrays, slots: NDArray[np.intp], quality: int, reason: int,
             stale_only: bool) -> None:  # pragma: no cover
    """Set quality and reason of ``slots`` (values kept), one section per block touched.
    ``stale_only``: leave slots worse than STALE (BAD) alone, reason included."""
    n = slots.shape[0]
    if n == 0:
        return
    one = _check_image(img, slots, "seq_mark: slot or block out of range")
    img_quality, img_reason = img[5], img[6]
    q = np.uint8(quality)
    r = np.uint8(reason)
    _seq_open_blocks(img, slots, one)
    for i in range(n):
        j = slots[i]
        if stale_only and img_quality[j] > _STALE:  # only this thread writes it
            continue
        _store_relaxed(img_quality, j, q)
        _store_relaxed(img_reason, j, r)
    _seq_close_blocks(img, slots, one)


@njit(cache=True, error_model="numpy")  # type: ignore[misc]  # keeps the GIL (I/O thread)
def seq_store(img: ImageArrays, slots: NDArray[np.intp], values: NDArray[np.float64],
              timestamp_ns: int) -> None:  # pragma: no cover
    """Engineering ``values`` written by this controller into ``slots`` as GOOD (raw
    computed back through the scale; both timestamps ``timestamp_ns``), one section per
    block touched."""
    n = slots.shape[0]
    if n == 0:
        return
    if values.shape[0] < n:
        raise ValueError("seq_store: values shorter than slots")
    one = _check_image(img, slots, "seq_store: slot or block out of range")
    value, img_raw, img_quality, img_reason = img[3], img[4], img[5], img[6]
    img_source_ns, img_received_ns, gain, offset = img[7], img[8], img[9], img[10]
    good = np.uint8(_GOOD)
    none = np.uint8(0)
    _seq_open_blocks(img, slots, one)
    for i in range(n):
        j = slots[i]
        v = values[i]
        _store_relaxed(value, j, v)
        _store_relaxed(img_raw, j, (v - offset[j]) / gain[j])
        _store_relaxed(img_quality, j, good)
        _store_relaxed(img_reason, j, none)
        _store_relaxed(img_source_ns, j, timestamp_ns)
        _store_relaxed(img_received_ns, j, timestamp_ns)
    _seq_close_blocks(img, slots, one)


# -- public: SPSC ring ---------------------------------------------------------------------

RingArrays = tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64],
                   NDArray[np.int32], NDArray[np.int64]]
"""``(header, slot, value, code, cycle)``: what :func:`ring_push` / :func:`ring_pop_batch` take."""

# header words: producer line, consumer line, constant line (each 128 bytes)
_W = 0  # records pushed so far (producer)
_DROPS = 1  # pushes refused because the ring was full (producer)
_R_CACHE = 2  # the producer's last view of _R
_R = 16  # records popped so far (consumer)
_CAP = 32  # capacity (a power of two), constant
_HEADER = 48


@njit(cache=True, nogil=True)  # type: ignore[misc]
def ring_push(ring: RingArrays, slot: int, value: float, code: int,
              cycle: int) -> bool:  # pragma: no cover
    """Producer: append one record; never waits. False (and one more drop counted) when the
    ring is full."""
    hdr = ring[0]
    cap = hdr[_CAP]
    w = hdr[_W]  # only the producer writes it
    if w - hdr[_R_CACHE] >= cap:
        r = _load_acquire(hdr, _R)  # pairs with the consumer's store-release
        hdr[_R_CACHE] = r
        if w - r >= cap:
            _store_relaxed(hdr, _DROPS, hdr[_DROPS] + 1)
            return False
    i = w & (cap - 1)
    ring[1][i] = slot
    ring[2][i] = value
    ring[3][i] = code
    ring[4][i] = cycle
    _store_release(hdr, _W, w + 1)  # the record before the count
    return True


@njit(cache=True)  # type: ignore[misc]  # keeps the GIL: a short call from the I/O thread
def ring_pop_batch(ring: RingArrays, out_slot: NDArray[np.int64],
                   out_value: NDArray[np.float64], out_code: NDArray[np.int32],
                   out_cycle: NDArray[np.int64]) -> int:  # pragma: no cover
    """Consumer: move up to ``len(out_slot)`` records, oldest first, into the ``out`` arrays;
    returns how many."""
    hdr = ring[0]
    cap = hdr[_CAP]
    r = hdr[_R]  # only the consumer writes it
    w = _load_acquire(hdr, _W)  # pairs with the producer's store-release
    n = min(w - r, out_slot.shape[0], out_value.shape[0], out_code.shape[0],
            out_cycle.shape[0])
    for k in range(n):
        i = (r + k) & (cap - 1)
        out_slot[k] = ring[1][i]
        out_value[k] = ring[2][i]
        out_code[k] = ring[3][i]
        out_cycle[k] = ring[4][i]
    _store_release(hdr, _R, r + n)  # the copies before the space is handed back
    return n  # type: ignore[no-any-return]


@njit(cache=True, nogil=True)  # type: ignore[misc]
def ring_drops(ring: RingArrays) -> int:  # pragma: no cover
    """Pushes refused so far because the ring was full."""
    return _load_relaxed(ring[0], _DROPS)  # type: ignore[no-any-return]


@njit(cache=True, nogil=True)  # type: ignore[misc]
def ring_size(ring: RingArrays) -> int:  # pragma: no cover
    """Records waiting (a snapshot; exact only on the producer's or the consumer's thread)."""
    hdr = ring[0]
    r = _load_acquire(hdr, _R)
    return _load_acquire(hdr, _W) - r  # type: ignore[no-any-return]


class OutputRing:
    """A single-producer single-consumer ring of output records, in preallocated arrays.

    The producer (a task's compiled loop) calls :func:`ring_push` on :attr:`arrays`; the
    consumer (the I/O thread) calls :meth:`pop`, which fills the ``out_*`` arrays.
    ``capacity`` is rounded up to a power of two.
    """

    def __init__(self, capacity: int = RING_DEFAULT_CAPACITY, batch: int = 1024) -> None:
        if capacity < 1 or batch < 1:
            raise ValueError("capacity and batch must be >= 1")
        cap = 1 << (capacity - 1).bit_length()
        self.capacity = cap
        self.header: NDArray[np.int64] = aligned_zeros(_HEADER, np.int64)
        self.header[_CAP] = cap
        self.slot: NDArray[np.int64] = aligned_zeros(cap, np.int64)
        self.value: NDArray[np.float64] = aligned_zeros(cap, np.float64)
        self.code: NDArray[np.int32] = aligned_zeros(cap, np.int32)
        self.cycle: NDArray[np.int64] = aligned_zeros(cap, np.int64)
        self.arrays: RingArrays = (self.header, self.slot, self.value, self.code, self.cycle)
        self.out_slot: NDArray[np.int64] = np.zeros(batch, np.int64)
        self.out_value: NDArray[np.float64] = np.zeros(batch, np.float64)
        self.out_code: NDArray[np.int32] = np.zeros(batch, np.int32)
        self.out_cycle: NDArray[np.int64] = np.zeros(batch, np.int64)

    def pop(self) -> int:
        """Move up to ``batch`` records into ``out_*[:n]``; returns ``n``."""
        return int(ring_pop_batch(self.arrays, self.out_slot, self.out_value, self.out_code,
                                  self.out_cycle))

    @property
    def drops(self) -> int:
        return int(ring_drops(self.arrays))

    def __len__(self) -> int:
        return int(ring_size(self.arrays))


# -- public: eventfd -----------------------------------------------------------------------


def make_eventfd() -> int:
    """A non-blocking, close-on-exec eventfd with counter 0 (close it with ``os.close``)."""
    return os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)


@njit(cache=True, nogil=True)  # type: ignore[misc]
def eventfd_signal(fd: int) -> int:  # pragma: no cover
    """Add 1 to the eventfd counter (``write(fd, &one, 8)``), making the fd readable.

    Returns 8, or -1 when ``write`` failed — ``EAGAIN`` means the counter is saturated, so
    a wake-up is already pending, and is not an error for a waker.
    """
    return _write_u64(fd, np.uint64(1))  # type: ignore[no-any-return]


def drain_eventfd(fd: int) -> int:
    """Read (reset) the counter of a non-blocking eventfd; 0 when it was not signalled."""
    try:
        return os.eventfd_read(fd)
    except BlockingIOError:
        return 0


RecordsCallback = Callable[[NDArray[np.int64], NDArray[np.float64], NDArray[np.int32],
                            NDArray[np.int64]], None]


def add_ring_reader(loop: asyncio.AbstractEventLoop, fd: int, ring: OutputRing,
                    on_records: RecordsCallback) -> Callable[[], None]:
    """Drain ``ring`` on ``loop`` whenever the eventfd ``fd`` is signalled.

    The callback first drains the eventfd and then pops until the ring is empty, calling
    ``on_records(slot, value, code, cycle)`` with views of :class:`OutputRing`'s ``out_*``
    arrays (valid during the call). In that order no wake-up is lost: a push that lands
    after the last pop also signals after the drain, so the fd is readable again.
    Returns a function that removes the reader.
    """

    def readable() -> None:
        drain_eventfd(fd)
        while True:
            n = ring.pop()
            if n == 0:
                return
            on_records(ring.out_slot[:n], ring.out_value[:n], ring.out_code[:n],
                       ring.out_cycle[:n])

    loop.add_reader(fd, readable)

    def remove() -> None:
        loop.remove_reader(fd)

    return remove


# -- warm-up -------------------------------------------------------------------------------


def warm_up() -> None:
    """Compile (or load from the cache) every function here for the engine's array types."""
    now_ns()
    wall_ns()
    cpu_relax()
    sleep_until_ns(0, 0)
    flags = aligned_zeros(1, np.int64)
    wait_deadline_ns(0, 0, flags, 0, 1_000_000)
    load_acquire_i64(flags, 0)
    load_relaxed_i64(flags, 0)
    store_release_i64(flags, 0, 0)
    store_relaxed_i64(flags, 0, 0)
    fetch_add_i64(flags, 0, 0)
    fence_acquire()
    fence_release()
    fence_seq_cst()
    seq = seqlock_array(1)
    f = np.zeros(1)
    q = np.zeros(1, np.uint8)
    i8 = np.zeros(1, np.int64)
    s = np.zeros(1, np.intp)
    seq_write_begin(seq, 0)
    seq_write_end(seq, 0)
    seq_read_begin(seq, 0)
    seq_read_retry(seq, 0, 0)
    seq_read_copy(seq, 0, f, q, s, f.copy(), q.copy())
    seq_read_copy(seq, 0, f, q, s, f.copy(), q.copy(), 1)
    seq_read_gather(seq, s, np.array([0, 1], np.intp), f, q, s, f.copy(), q.copy(), 1)
    seq_write_slots(seq, 0, s, f, q, f.copy(), q.copy())
    seq_publish_result(seq, 0, s, f, q, q, 0, i8, f, f, f.copy(), f.copy(), q.copy(),
                       q.copy(), i8.copy(), i8.copy())
    img: ImageArrays = (seq, i8.copy(), q.copy(), f.copy(), f.copy(), q.copy(), q.copy(),
                        i8.copy(), i8.copy(), np.ones(1), f.copy())
    seq_ingest(img, s, f, q, q, 0, np.zeros(0, np.int64))
    seq_mark(img, s, _STALE, 0, True)
    seq_store(img, s, f, 0)
    ring = OutputRing(1, 1)
    ring_push(ring.arrays, 0, 0.0, 0, 0)
    ring.pop()
    _ = ring.drops, len(ring)
    fd = make_eventfd()
    try:
        eventfd_signal(fd)
    finally:
        os.close(fd)
