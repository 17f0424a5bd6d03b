"""The process image: one preallocated slot per tag element (DESIGN §1, §7).

Columns are numpy arrays — ``value`` (scaled, engineering units, f8), ``raw`` (unscaled
wire value, f8), ``quality`` (u1, :class:`~smartline.core.Quality`), ``reason`` (u1,
:class:`~smartline.core.Reason`) and ``timestamp_ns`` (i8, wall clock of the read). Strings
live in ``texts``. An array tag fills consecutive slots. Writers (drivers' results) and
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
    """One tag's current value as the outside world sees it."""

    name: str
    value: float | bool | int | str | tuple[float, ...] | None
    quality: Quality
    reason: Reason
    timestamp_ns: int

    def as_json(self) -> dict[str, object]:
        """``{"value", "quality", "timestamp"}`` (ISO-8601 UTC) as ``smartline read`` prints."""
        from datetime import UTC, datetime

        ts = (datetime.fromtimestamp(self.timestamp_ns / 1e9, tz=UTC)
              .isoformat(timespec="microseconds").replace("+00:00", "Z")
              if self.timestamp_ns else None)
        out: dict[str, object] = {"value": self.value, "quality": self.quality.label,
                                  "timestamp": ts}
        if self.reason is not Reason.NONE:
            out["reason"] = self.reason.label
        return out


class Snapshot:
    """Preallocated copy of a set of slots, refreshed by :meth:`ProcessImage.snapshot_into`."""

    def __init__(self, slots: Sequence[int] | NDArray[np.intp]) -> None:
        self.slots: NDArray[np.intp] = np.asarray(slots, dtype=np.intp)
        n = len(self.slots)
        self.value: NDArray[np.float64] = np.full(n, np.nan)
        self.quality: NDArray[np.uint8] = np.full(n, Quality.BAD, np.uint8)
        self.timestamp_ns: NDArray[np.int64] = np.zeros(n, np.int64)


class ProcessImage:
    """Values, qualities and timestamps of every tag of a line, in flat numpy columns."""

    def __init__(self, tags: Iterable[TagSpec]) -> None:
        self.tags: dict[str, TagSpec] = {}
        self._first: dict[str, int] = {}
        gains: list[float] = []
        offsets: list[float] = []
        text: list[bool] = []
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
        size = len(gains)
        self.size = size
        self.gain: NDArray[np.float64] = np.asarray(gains, dtype=np.float64)
        self.offset: NDArray[np.float64] = np.asarray(offsets, dtype=np.float64)
        self.is_text: NDArray[np.bool_] = np.asarray(text, dtype=np.bool_)
        self.value: NDArray[np.float64] = np.full(size, np.nan)
        self.raw: NDArray[np.float64] = np.full(size, np.nan)
        self.quality: NDArray[np.uint8] = np.full(size, Quality.BAD, np.uint8)
        self.reason: NDArray[np.uint8] = np.full(size, Reason.NOT_READ, np.uint8)
        self.timestamp_ns: NDArray[np.int64] = np.zeros(size, np.int64)
        self.texts: list[str | None] = [None] * size
        self.lock = threading.Lock()
        self.updates = 0  # number of ingests; lets readers notice change cheaply

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
        """Scale a driver's raw values into the image in one vectorised pass."""
        s = result.slots
        if len(s) == 0:
            return
        with self.lock:
            self.raw[s] = result.raw
            self.value[s] = result.raw * self.gain[s] + self.offset[s]
            self.quality[s] = result.quality
            self.reason[s] = result.reason
            self.timestamp_ns[s] = result.timestamp_ns
            for slot, text in result.texts.items():
                self.texts[slot] = text
            self.updates += 1

    def mark(self, slots: NDArray[np.intp], quality: Quality, reason: Reason) -> None:
        """Set quality and reason of slots, keeping their last value (for STALE/UNCERTAIN)."""
        if len(slots) == 0:
            return
        with self.lock:
            if quality is Quality.STALE:
                # a value that was never good cannot become merely stale
                good = self.quality[slots] <= Quality.STALE
                s = slots[good]
                self.quality[s] = quality
                self.reason[s] = reason
                bad = slots[~good]
                self.reason[bad] = reason
            else:
                self.quality[slots] = quality
                self.reason[slots] = reason
            self.updates += 1

    def store(self, slots: NDArray[np.intp], values: NDArray[np.float64],
              timestamp_ns: int) -> None:
        """Put engineering values written by this controller (outputs) into the image as GOOD."""
        with self.lock:
            self.value[slots] = values
            self.raw[slots] = (values - self.offset[slots]) / self.gain[slots]
            self.quality[slots] = Quality.GOOD
            self.reason[slots] = Reason.NONE
            self.timestamp_ns[slots] = timestamp_ns
            self.updates += 1

    # -- readers -------------------------------------------------------------------------
    def snapshot_into(self, snap: Snapshot) -> None:
        """Copy the snapshot's slots under the lock: a consistent view for one cycle."""
        s = snap.slots
        with self.lock:
            np.take(self.value, s, out=snap.value)
            np.take(self.quality, s, out=snap.quality)
            np.take(self.timestamp_ns, s, out=snap.timestamp_ns)

    def get(self, name: str) -> TagValue:
        """The tag's current value, typed for people (bool, int, float, str, tuple for arrays)."""
        tag = self.tags.get(name)
        if tag is None:
            raise KeyError(f"unknown tag {name!r}")
        first = self._first[name]
        n = tag.address.elements
        with self.lock:
            q = Quality(int(self.quality[first:first + n].max()))
            r = Reason(int(self.reason[first:first + n].max()))
            ts = int(self.timestamp_ns[first:first + n].max())
            vals = self.value[first:first + n].copy()
            text = self.texts[first]
        value: float | bool | int | str | tuple[float, ...] | None
        if q is Quality.BAD:
            value = None
        elif tag.address.is_text:
            value = text
        else:
            py = [_typed(tag, float(v)) for v in vals]
            value = tuple(py) if _is_array(tag) else py[0]  # type: ignore[assignment]
        return TagValue(name, value, q, r, ts)


def _is_array(tag: TagSpec) -> bool:
    return getattr(tag.address, "count", None) is not None


def _typed(tag: TagSpec, v: float) -> float | int | bool:
    dt = tag.address.dtype  # type: ignore[union-attr]
    if dt.value == "bool":
        return bool(v)
    if dt.is_integer and tag.scale is None and np.isfinite(v):
        return int(v)
    return v


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
        """Mask of outputs to write; NaN outputs (not computed) are never written."""
        m = self._mask
        with np.errstate(invalid="ignore"):
            np.greater(np.abs(values - self.last), self.deadband, out=m)
        m |= np.isnan(self.last) & ~np.isnan(values)
        return m

    def commit(self, values: NDArray[np.float64], mask: NDArray[np.bool_]) -> None:
        """Remember values that were written successfully."""
        self.last[mask] = values[mask]

    def forget(self) -> None:
        """Force every output to be written again (after reconnect or safe-state)."""
        self.last[:] = np.nan
