"""The process image: one preallocated slot per tag element (DESIGN §1, §7).

Columns are numpy arrays — ``value`` (scaled, engineering units, f8), ``raw`` (unscaled
wire value, f8), ``quality`` (u1, :class:`~smartline.core.Quality`), ``reason`` (u1,
:class:`~smartline.core.Reason`), ``source_ns`` (i8, wall clock when the device sampled
the value) and ``received_ns`` (i8, wall clock when it arrived). Strings live in
``texts``, integers float64 cannot hold exactly (≥ 2**53) in ``exact``; a tag whose type
the device decides (OPC UA, profile points) may carry either. An array tag fills
consecutive slots. Writers (drivers' results) and
readers (tasks' snapshots) hold one lock for the length of a vectorised copy, so a task
never sees half of a multi-register value or half of an array.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ..core import Point, Quality, ReadResult, Reason
from ..tags import TagSpec

__all__ = ["OutputTracker", "ProcessImage", "Snapshot", "TagValue"]


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
        return out


def iso_ns(ns: int) -> str | None:
    """Wall-clock nanoseconds as ISO-8601 UTC with all nine digits (None for 0)."""
    if not ns:
        return None
    from datetime import UTC, datetime

    seconds, frac = divmod(int(ns), 1_000_000_000)
    base = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{frac:09d}Z"


class Snapshot:
    """Preallocated copy of a set of slots (a task's inputs), refreshed every cycle by
    :func:`~smartline.cycle._kernels.gather_inputs` under the image lock."""

    def __init__(self, slots: Sequence[int] | NDArray[np.intp]) -> None:
        self.slots: NDArray[np.intp] = np.asarray(slots, dtype=np.intp)
        n = len(self.slots)
        self.value: NDArray[np.float64] = np.full(n, np.nan)
        self.quality: NDArray[np.uint8] = np.full(n, Quality.BAD, np.uint8)


class ProcessImage:
    """Values, qualities and timestamps of every tag of a line, in flat numpy columns."""

    def __init__(self, tags: Iterable[TagSpec]) -> None:
        self.tags: dict[str, TagSpec] = {}
        self._first: dict[str, int] = {}
        gains: list[float] = []
        offsets: list[float] = []
        text: list[bool] = []
        untyped: list[bool] = []
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
        size = len(gains)
        self.size = size
        self.gain: NDArray[np.float64] = np.asarray(gains, dtype=np.float64)
        self.offset: NDArray[np.float64] = np.asarray(offsets, dtype=np.float64)
        self.is_text: NDArray[np.bool_] = np.asarray(text, dtype=np.bool_)
        #: slots whose type the device decides: they may carry text instead of a number
        self.untyped: NDArray[np.bool_] = np.asarray(untyped, dtype=np.bool_)
        self.value: NDArray[np.float64] = np.full(size, np.nan)
        self.raw: NDArray[np.float64] = np.full(size, np.nan)
        self.quality: NDArray[np.uint8] = np.full(size, Quality.BAD, np.uint8)
        self.reason: NDArray[np.uint8] = np.full(size, Reason.NOT_READ, np.uint8)
        self.source_ns: NDArray[np.int64] = np.zeros(size, np.int64)
        self.received_ns: NDArray[np.int64] = np.zeros(size, np.int64)
        self.texts: list[str | None] = [None] * size
        #: which slots hold text now (untyped slots switch between text and numbers)
        self.has_text: NDArray[np.bool_] = np.zeros(size, np.bool_)
        self.exact: dict[int, int] = {}
        self.has_exact: NDArray[np.bool_] = np.zeros(size, np.bool_)
        self.lock = threading.Lock()

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

    # -- writers -------------------------------------------------------------------------
    def ingest(self, result: ReadResult) -> None:
        """Scale a driver's raw values into the image in one vectorised pass.

        Polled results and pushed ones land the same way, under the same lock.
        """
        s = result.slots
        if len(s) == 0:
            return
        texts, exact = result.texts, result.exact
        with self.lock:
            self.raw[s] = result.raw
            self.value[s] = result.raw * self.gain[s] + self.offset[s]
            self.quality[s] = result.quality
            self.reason[s] = result.reason
            self.received_ns[s] = result.received_ns
            if result.source_ns is None:
                self.source_ns[s] = result.received_ns
            else:
                self.source_ns[s] = result.source_ns
            if texts or self.has_text[s].any():
                self.has_text[s] = False
                for slot, text in texts.items():
                    self.texts[slot] = text
                    self.has_text[slot] = True
            if exact or self.has_exact[s].any():
                for slot in s[self.has_exact[s]].tolist():
                    self.exact.pop(slot, None)
                self.has_exact[s] = False
                for slot, number in exact.items():
                    self.exact[slot] = number
                    self.has_exact[slot] = True

    def mark(self, slots: NDArray[np.intp], quality: Quality, reason: Reason) -> None:
        """Set quality and reason of slots, keeping their last value (for STALE/UNCERTAIN).

        Marking STALE leaves BAD slots alone, reason included: a value that was never good
        cannot become merely stale, and why it is bad (``not_connected``…) still holds.
        """
        if len(slots) == 0:
            return
        with self.lock:
            if quality is Quality.STALE:
                s = slots[self.quality[slots] <= Quality.STALE]
                self.quality[s] = quality
                self.reason[s] = reason
            else:
                self.quality[slots] = quality
                self.reason[slots] = reason

    def store(self, slots: NDArray[np.intp], values: NDArray[np.float64],
              timestamp_ns: int) -> None:
        """Put engineering values written by this controller (outputs) into the image as GOOD."""
        with self.lock:
            self.value[slots] = values
            self.raw[slots] = (values - self.offset[slots]) / self.gain[slots]
            self.quality[slots] = Quality.GOOD
            self.reason[slots] = Reason.NONE
            self.source_ns[slots] = timestamp_ns
            self.received_ns[slots] = timestamp_ns
            if self.has_exact[slots].any():
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
        value: float | bool | int | str | tuple[float, ...] | None
        if q is Quality.BAD:
            value = None
        elif tag.address.is_text or text is not None:
            value = text
        elif exact is not None:
            value = exact if tag.scale is None else float(exact) * tag.scale.gain \
                + tag.scale.offset
        else:
            value = tag.typed_values(vals)  # type: ignore[assignment]
        return TagValue(name, value, q, r, src, rcv)


class OutputTracker:
    """Change detection for a task's outputs: which slots differ from what was last written.

    A change smaller than a tag's deadband is not a change. Until an output has been
    written once, every value counts as changed.
    """

    def __init__(self, slots: NDArray[np.intp],
                 deadband: NDArray[np.float64] | None = None) -> None:
        self.slots = slots
        n = len(slots)
        self.last: NDArray[np.float64] = np.full(n, np.nan)
        self.deadband: NDArray[np.float64] = (np.zeros(n) if deadband is None
                                              else np.asarray(deadband, np.float64))
        self._mask: NDArray[np.bool_] = np.zeros(n, np.bool_)

    def changed(self, values: NDArray[np.float64]) -> NDArray[np.bool_]:
        """Mask of outputs to write; NaN outputs (not computed) are never written.

        The engine's change detection (:func:`~smartline.cycle._kernels.changed_outputs`);
        the mask is reused by the next call.
        """
        from ._kernels import changed_outputs  # numba: only where outputs are tracked

        changed_outputs(np.asarray(values, np.float64), self.last, self.deadband, self._mask)
        return self._mask

    def commit(self, values: NDArray[np.float64], mask: NDArray[np.bool_]) -> None:
        """Remember values that were written successfully."""
        self.last[mask] = values[mask]

    def forget(self) -> None:
        """Force every output to be written again (after reconnect or safe-state)."""
        self.last[:] = np.nan
