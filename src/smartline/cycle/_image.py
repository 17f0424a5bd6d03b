"""The process image: one preallocated slot per tag element (DESIGN §1, §7).

Columns are numpy arrays — ``value`` (scaled, engineering units, f8), ``raw`` (unscaled
wire value, f8), ``quality`` (u1, :class:`~smartline.core.Quality`), ``reason`` (u1,
:class:`~smartline.core.Reason`), ``source_ns`` (i8, wall clock when the device sampled
the value) and ``received_ns`` (i8, wall clock when it arrived). Strings live in
``texts``, integers float64 cannot hold exactly (≥ 2**53) in ``exact``; a tag whose type
the device decides (OPC UA, profile points) may carry either. An array tag fills
consecutive slots.

**Blocks.** Every slot belongs to the block of its tag's device (``blocks``: device →
block, ``block_of_slot``), and each block has a sequence lock in ``seq`` (ADR 0012). The
I/O loop thread is the single writer: ``ingest``, ``mark`` and ``store`` come from it, and
another thread that must write hands the write to it. A writer never waits for a reader:
once the image is lock-free (:meth:`ProcessImage.enable_lock_free`, done by
:meth:`~ProcessImage.input_groups`), every write of the numeric columns is one compiled
call that publishes each block it touches as one seqlocked section, so a compiled tick
reading with :func:`~smartline.cycle._rt.seq_read_gather` never sees half of a
multi-register value, an array or a device's result, and never takes a lock. Writers
also hold ``lock`` (which makes a stray writer on another thread wait rather than
corrupt a sequence), and so do the Python readers (:meth:`~ProcessImage.get`, ``texts``,
``exact``). Until the image is lock-free — a command that only reads or writes tags — the
writes are plain numpy under ``lock`` and numba is never imported.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from ..core import Point, Quality, ReadResult, Reason
from ..tags import TagSpec

if TYPE_CHECKING:
    from ._rt import ImageArrays

__all__ = ["InputGather", "ProcessImage", "Snapshot", "TagValue"]

_SEQ_STRIDE = 16  # _rt.SEQ_STRIDE (checked when the image goes lock-free)
_CACHE_LINE = 128  # _rt's alignment of sequence counters
_NO_SOURCE = np.zeros(0, np.int64)


def _seqlock_zeros(n_blocks: int) -> NDArray[np.int64]:
    """``_rt.seqlock_array(n_blocks)`` without importing numba: zeroed counters
    ``_SEQ_STRIDE`` words apart, starting on a cache line."""
    nbytes = n_blocks * _SEQ_STRIDE * 8
    buf = np.zeros(nbytes + _CACHE_LINE, np.uint8)
    off = (-buf.ctypes.data) % _CACHE_LINE
    out: NDArray[np.int64] = buf[off:off + nbytes].view(np.int64)
    return out


@dataclass(frozen=True, slots=True)
class TagValue:
    """One tag's current value as the outside world sees it.

    ``source_ns`` is when the device sampled it (the receive time for devices that give
    none), ``received_ns`` when it arrived; both wall clock, 0 for never.
    """

    name: str
    value: float | bool | int | str | tuple[float, ...] | None
    quality: Quality
    reason: Reason
    source_ns: int
    received_ns: int
    note: str | None = None  # why it is not GOOD, in words, where the device said more

    @property
    def timestamp_ns(self) -> int:
        """The value's time: when the device sampled it."""
        return self.source_ns

    def as_json(self) -> dict[str, object]:
        """``{"value", "quality", "timestamp", "received"}`` (ISO-8601 UTC, nanoseconds)
        as ``smartline read --json`` prints; ``timestamp`` is the source time."""
        out: dict[str, object] = {"value": self.value, "quality": self.quality.label,
                                  "timestamp": iso_ns(self.source_ns),
                                  "received": iso_ns(self.received_ns)}
        if self.reason is not Reason.NONE:
            out["reason"] = self.reason.label
        if self.note and self.quality is not Quality.GOOD:
            out["note"] = self.note
        return out


def iso_ns(ns: int) -> str | None:
    """Wall-clock nanoseconds as ISO-8601 UTC with all nine digits (None for 0)."""
    if not ns:
        return None
    from datetime import UTC, datetime

    seconds, frac = divmod(int(ns), 1_000_000_000)
    base = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{frac:09d}Z"


@dataclass(frozen=True, eq=False, slots=True)
class InputGather:
    """How a reader copies a set of slots (a task's inputs) out of the image lock-free.

    ``slots`` keep the caller's order; group ``g`` is ``slots[group_start[g]:
    group_start[g + 1]]``, a run of consecutive slots of block ``group_block[g]``, copied
    as one consistent read of that block. A compiled loop passes, in this order,
    ``seq, group_block, group_start, src_values, src_quality, slots, dst_values,
    dst_quality, max_retries`` to :func:`~smartline.cycle._rt.seq_read_gather`
    (:meth:`gather_args`); ``dst_*`` are the reader's own arrays of ``len(slots)``, in the
    same order as ``slots`` — so the copy lands straight in a program's ``inputs``, with
    no scratch buffer and no permutation pass. ``whole_blocks`` is False when a block's
    slots are spread over several runs (inputs declared interleaved across devices):
    each run (so every tag, arrays included) is then consistent on its own, but two runs
    of one block may come from different writes.
    """

    seq: NDArray[np.int64]
    group_block: NDArray[np.intp]
    group_start: NDArray[np.intp]
    src_values: NDArray[np.float64]
    src_quality: NDArray[np.uint8]
    slots: NDArray[np.intp]
    max_retries: int
    whole_blocks: bool

    def gather_args(self, dst_values: NDArray[np.float64], dst_quality: NDArray[np.uint8]
                    ) -> tuple[Any, ...]:
        """The arguments of ``seq_read_gather`` for copying into ``dst_*``."""
        return (self.seq, self.group_block, self.group_start, self.src_values,
                self.src_quality, self.slots, dst_values, dst_quality, self.max_retries)

    def gather(self, inputs_value: NDArray[np.float64],
               inputs_quality: NDArray[np.uint8]) -> int:
        """Copy the slots' values and qualities into ``inputs_*`` (BAD and torn values
        become NaN); returns how many groups stayed torn after ``max_retries``."""
        n = self.slots.shape[0]
        if inputs_value.shape[0] != n or inputs_quality.shape[0] != n:
            raise ValueError(f"gather: expected arrays of {n} inputs")
        from ._rt import seq_read_gather

        return int(seq_read_gather(*self.gather_args(inputs_value, inputs_quality)))


class Snapshot:
    """Preallocated copy of a set of slots (a task's inputs), refreshed every cycle through
    the image's sequence locks by :meth:`refresh` (no lock taken)."""

    def __init__(self, slots: Sequence[int] | NDArray[np.intp]) -> None:
        self.slots: NDArray[np.intp] = np.asarray(slots, dtype=np.intp)
        n = len(self.slots)
        self.value: NDArray[np.float64] = np.full(n, np.nan)
        self.quality: NDArray[np.uint8] = np.full(n, Quality.BAD, np.uint8)
        self._groups: InputGather | None = None

    def refresh(self, image: ProcessImage) -> int:
        """Copy the slots out of ``image`` (BAD values as NaN); returns the torn groups."""
        g = self._groups
        if g is None or g.src_values is not image.value:
            g = self._groups = image.input_groups(self.slots)
        return g.gather(self.value, self.quality)


def _c(a: Any, dtype: type[Any]) -> Any:
    """``a`` as a contiguous array of ``dtype`` (itself when it is one already)."""
    return np.ascontiguousarray(a, dtype=dtype)


class ProcessImage:
    """Values, qualities and timestamps of every tag of a line, in flat numpy columns,
    with a sequence lock per device block."""

    def __init__(self, tags: Iterable[TagSpec]) -> None:
        self.tags: dict[str, TagSpec] = {}
        self._first: dict[str, int] = {}
        #: device → block (blocks numbered in the order devices first appear)
        self.blocks: dict[str, int] = {}
        gains: list[float] = []
        offsets: list[float] = []
        text: list[bool] = []
        untyped: list[bool] = []
        block_ids: list[int] = []
        for tag in tags:
            if tag.name in self.tags:
                raise ValueError(f"duplicate tag {tag.name!r}")
            self.tags[tag.name] = tag
            self._first[tag.name] = len(gains)
            n = tag.address.elements
            g, o = (tag.scale.gain, tag.scale.offset) if tag.scale is not None else (1.0, 0.0)
            gains.extend([g] * n)
            offsets.extend([o] * n)
            text.extend([tag.address.is_text] * n)
            untyped.extend([tag.dtype is None] * n)
            block_ids.extend([self.blocks.setdefault(tag.device, len(self.blocks))] * n)
        size = len(gains)
        self.size = size
        self.gain: NDArray[np.float64] = np.asarray(gains, dtype=np.float64)
        self.offset: NDArray[np.float64] = np.asarray(offsets, dtype=np.float64)
        self.is_text: NDArray[np.bool_] = np.asarray(text, dtype=np.bool_)
        #: slots whose type the device decides: they may carry text instead of a number
        self.untyped: NDArray[np.bool_] = np.asarray(untyped, dtype=np.bool_)
        #: the block (device) of every slot
        self.block_of_slot: NDArray[np.int64] = np.asarray(block_ids, dtype=np.int64)
        #: one sequence counter per block (``_rt.seqlock_array`` layout)
        self.seq: NDArray[np.int64] = _seqlock_zeros(len(self.blocks))
        self.value: NDArray[np.float64] = np.full(size, np.nan)
        self.raw: NDArray[np.float64] = np.full(size, np.nan)
        self.quality: NDArray[np.uint8] = np.full(size, Quality.BAD, np.uint8)
        self.reason: NDArray[np.uint8] = np.full(size, Reason.NOT_READ, np.uint8)
        self.source_ns: NDArray[np.int64] = np.zeros(size, np.int64)
        self.received_ns: NDArray[np.int64] = np.zeros(size, np.int64)
        self.texts: list[str | None] = [None] * size
        #: which slots hold text now (untyped slots switch between text and numbers)
        self.has_text: NDArray[np.bool_] = np.zeros(size, np.bool_)
        #: untyped slots whose last value was a truth value (shown as True/False)
        self.is_bool: NDArray[np.bool_] = np.zeros(size, np.bool_)
        self.exact: dict[int, int] = {}
        #: why a slot is not GOOD, in words, where its driver said more than the reason
        self.notes: dict[int, str] = {}
        self.has_note: NDArray[np.bool_] = np.zeros(size, np.bool_)
        self.has_exact: NDArray[np.bool_] = np.zeros(size, np.bool_)
        #: taken by writers and Python readers; never by a compiled tick
        self.lock = threading.Lock()
        self._any_text = False  # has any slot ever held text / an exact integer?
        self._any_bool = False  # … or a truth value of an untyped slot?
        self._any_exact = False
        self._arrays: ImageArrays | None = None  # set once lock-free
        self._seq_ingest: Callable[..., None] | None = None
        self._seq_mark: Callable[..., None] | None = None
        self._seq_store: Callable[..., None] | None = None

    # -- lookup --------------------------------------------------------------------------
    def slot(self, name: str) -> int:
        """First slot of a tag; ``KeyError`` names the unknown tag."""
        try:
            return self._first[name]
        except KeyError:
            raise KeyError(f"unknown tag {name!r}") from None

    def slots(self, names: Iterable[str]) -> NDArray[np.intp]:
        """Every slot of the named tags, in order (arrays expand to their elements)."""
        out: list[int] = []
        for n in names:
            first = self.slot(n)
            out.extend(range(first, first + self.tags[n].address.elements))
        return np.asarray(out, dtype=np.intp)

    def points(self, names: Iterable[str]) -> list[Point]:
        """Driver-facing points for the named tags."""
        return [Point(n, self.slot(n), self.tags[n].address) for n in names]

    # -- lock-free readers ---------------------------------------------------------------
    @property
    def lock_free(self) -> bool:
        """Whether writes go through the sequence locks (see :meth:`enable_lock_free`)."""
        return self._arrays is not None

    def enable_lock_free(self) -> None:
        """From now on publish every write through the blocks' sequence locks, so readers
        may copy without the lock. Loads (or compiles) the compiled writers here rather
        than on the I/O thread's next write. Idempotent; there is no way back."""
        if self._arrays is not None:
            return
        from . import _rt

        if _rt.SEQ_STRIDE != _SEQ_STRIDE:  # pragma: no cover - the two layouts must agree
            raise RuntimeError("_image and _rt disagree on the seqlock layout")
        arrays: ImageArrays = (self.seq, self.block_of_slot,
                               np.zeros(len(self.blocks), np.uint8), self.value, self.raw,
                               self.quality, self.reason, self.source_ns, self.received_ns,
                               self.gain, self.offset)
        none = np.zeros(0, np.intp)
        u1 = np.zeros(0, np.uint8)
        f8 = np.zeros(0, np.float64)
        _rt.seq_ingest(arrays, none, f8, u1, u1, 0, _NO_SOURCE)
        _rt.seq_mark(arrays, none, int(Quality.STALE), int(Reason.NONE), True)
        _rt.seq_store(arrays, none, f8, 0)
        _rt.seq_read_gather(self.seq, none, np.zeros(1, np.intp), self.value, self.quality,
                            none, f8, u1, 1)
        with self.lock:  # a write in progress ends before the switch
            self._seq_ingest = _rt.seq_ingest
            self._seq_mark = _rt.seq_mark
            self._seq_store = _rt.seq_store
            self._arrays = arrays

    def input_groups(self, slots: Sequence[int] | NDArray[np.intp],
                     max_retries: int | None = None) -> InputGather:
        """How to copy ``slots`` (in this order) lock-free: runs of consecutive slots of one
        block, each read consistently. Makes the image lock-free."""
        self.enable_lock_free()
        from ._rt import SEQ_MAX_RETRIES

        s = np.array(slots, dtype=np.intp)  # a private copy
        n = len(s)
        if n and (s.min() < 0 or s.max() >= self.size):
            raise IndexError(f"input_groups: slots outside 0..{self.size - 1}")
        b = self.block_of_slot[s].astype(np.intp)
        starts = np.flatnonzero(np.concatenate(([n > 0], b[1:] != b[:-1]))).astype(np.intp)
        group_block = np.ascontiguousarray(b[starts])
        group_start = np.append(starts, n).astype(np.intp)
        return InputGather(self.seq, group_block, group_start, self.value, self.quality, s,
                           SEQ_MAX_RETRIES if max_retries is None else int(max_retries),
                           len(set(group_block.tolist())) == len(group_block))

    # -- writers (the I/O loop thread) ---------------------------------------------------
    def ingest(self, result: ReadResult) -> None:
        """Scale a driver's raw values into the image in one vectorised pass.

        Polled results and pushed ones land the same way. Every block the result touches
        is published whole, as one section.
        """
        s = result.slots
        if len(s) == 0:
            return
        texts, exact = result.texts, result.exact
        with self.lock:
            if self._seq_ingest is not None:
                self._seq_ingest(
                    self._arrays, _c(s, np.intp), _c(result.raw, np.float64),
                    _c(result.quality, np.uint8), _c(result.reason, np.uint8),
                    int(result.received_ns),
                    _NO_SOURCE if result.source_ns is None else _c(result.source_ns, np.int64))
            else:
                self.raw[s] = result.raw
                self.value[s] = result.raw * self.gain[s] + self.offset[s]
                self.quality[s] = result.quality
                self.reason[s] = result.reason
                self.received_ns[s] = result.received_ns
                if result.source_ns is None:
                    self.source_ns[s] = result.received_ns
                else:
                    self.source_ns[s] = result.source_ns
            if texts or (self._any_text and self.has_text[s].any()):
                self.has_text[s] = False
                for slot, text in texts.items():
                    self.texts[slot] = text
                    self.has_text[slot] = True
                    self._any_text = True
            if result.bools or (self._any_bool and self.is_bool[s].any()):
                self.is_bool[s] = False
                if result.bools:
                    self.is_bool[list(result.bools)] = True
                    self._any_bool = True
            if self.notes and self.has_note[s].any():  # a value read again: its words go
                for slot in s[self.has_note[s]].tolist():
                    self.notes.pop(slot, None)
                self.has_note[s] = False
            if result.notes:
                self._note(result.notes)
            if exact or (self._any_exact and self.has_exact[s].any()):
                self._drop_exact(s)
                for slot, number in exact.items():
                    self.exact[slot] = number
                    self.has_exact[slot] = True
                    self._any_exact = True

    def _note(self, notes: Mapping[int, str]) -> None:
        """Keep ``notes`` by slot (the caller holds the lock)."""
        self.notes.update(notes)
        self.has_note[list(notes)] = True

    def mark(self, slots: NDArray[np.intp], quality: Quality, reason: Reason,
             note: str | None = None) -> None:
        """Set quality and reason of slots, keeping their last value (for STALE/UNCERTAIN);
        ``note`` says why in words (the error's message).

        Marking STALE leaves BAD slots alone, reason included: a value that was never good
        cannot become merely stale, and why it is bad (``not_connected``…) still holds.
        """
        if len(slots) == 0:
            return
        stale = quality is Quality.STALE
        with self.lock:
            if note and not stale:
                self._note(dict.fromkeys(slots.tolist(), note))
            if self._seq_mark is not None:
                self._seq_mark(self._arrays, _c(slots, np.intp), int(quality), int(reason),
                               stale)
            elif stale:
                s = slots[self.quality[slots] <= Quality.STALE]
                self.quality[s] = quality
                self.reason[s] = reason
            else:
                self.quality[slots] = quality
                self.reason[slots] = reason

    def store(self, slots: NDArray[np.intp], values: NDArray[np.float64],
              timestamp_ns: int) -> None:
        """Put engineering values written by this controller (outputs) into the image as GOOD."""
        if len(slots) == 0:
            return
        with self.lock:
            if self._seq_store is not None:
                s = _c(slots, np.intp)
                v = _c(values, np.float64)
                if v.shape != s.shape:
                    v = np.ascontiguousarray(np.broadcast_to(v, s.shape))
                self._seq_store(self._arrays, s, v, int(timestamp_ns))
            else:
                self.value[slots] = values
                self.raw[slots] = (values - self.offset[slots]) / self.gain[slots]
                self.quality[slots] = Quality.GOOD
                self.reason[slots] = Reason.NONE
                self.source_ns[slots] = timestamp_ns
                self.received_ns[slots] = timestamp_ns
            if self._any_exact and self.has_exact[slots].any():
                self._drop_exact(slots)

    def _drop_exact(self, slots: NDArray[np.intp]) -> None:
        """Forget the exact integers of ``slots`` (the caller holds the lock)."""
        for slot in slots[self.has_exact[slots]].tolist():
            self.exact.pop(slot, None)
        self.has_exact[slots] = False

    # -- readers -------------------------------------------------------------------------

    def get(self, name: str) -> TagValue:
        """The tag's current value, typed for people: bool, int (exact for 64-bit
        integers), float, str for text, a tuple for arrays; None while BAD."""
        tag = self.tags.get(name)
        if tag is None:
            raise KeyError(f"unknown tag {name!r}")
        first = self._first[name]
        n = tag.address.elements
        with self.lock:
            q = Quality(int(self.quality[first:first + n].max()))
            r = Reason(int(self.reason[first:first + n].max()))
            src = int(self.source_ns[first:first + n].max())
            rcv = int(self.received_ns[first:first + n].max())
            vals = self.value[first:first + n].copy()
            text = self.texts[first] if self.has_text[first] else None
            exact = self.exact.get(first) if n == 1 and self.has_exact[first] else None
            note = self.notes.get(first)
            truth = bool(self.is_bool[first]) and self.untyped[first] and tag.scale is None
        value: float | bool | int | str | tuple[float, ...] | None
        if q is Quality.BAD:
            value = None
        elif tag.address.is_text or text is not None:
            value = text
        elif exact is not None:
            value = exact if tag.scale is None else float(exact) * tag.scale.gain \
                + tag.scale.offset
        elif truth and n == 1:
            value = bool(vals[0])
        else:
            value = tag.typed_values(vals)  # type: ignore[assignment]
        return TagValue(name, value, q, r, src, rcv, note if q is not Quality.GOOD else None)


