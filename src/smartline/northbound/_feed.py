"""Report by exception: which tags changed since the last look, by each tag's deadband.

The Sparkplug edge node and the OPC UA server look at the process image at their own
period (never on the tick's path). A numeric tag counts as changed when its value moved
by more than its ``deadband`` (engineering units; any change when it has none) from the
value last reported, a text tag when its text differs, any tag when its quality changed
(GOOD, UNCERTAIN, STALE, BAD). The comparison is one vectorised pass over the image's
columns; only changed tags are read out, as :class:`~smartline.cycle.TagValue`.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from numpy.typing import NDArray

from ..cycle import ProcessImage, TagValue

__all__ = ["TagFeed"]


class TagFeed:
    """Changes of ``tags`` (default: every tag of the image) since the last call."""

    def __init__(self, image: ProcessImage, tags: Iterable[str] | None = None) -> None:
        self.image = image
        names = list(tags) if tags is not None else list(image.tags)
        self.tags = names
        slots: list[int] = []
        owner: list[int] = []
        band: list[float] = []
        for i, name in enumerate(names):
            spec = image.tags[name]
            first = image.slot(name)
            n = spec.address.elements
            slots.extend(range(first, first + n))
            owner.extend([i] * n)
            band.extend([float(spec.deadband or 0.0)] * n)
        self._slots: NDArray[np.intp] = np.asarray(slots, dtype=np.intp)
        self._owner: NDArray[np.intp] = np.asarray(owner, dtype=np.intp)
        self._band: NDArray[np.float64] = np.asarray(band, dtype=np.float64)
        self._value: NDArray[np.float64] = np.full(len(slots), np.nan)
        self._quality: NDArray[np.uint8] = np.full(len(slots), 255, np.uint8)  # never seen
        self._text: list[str | None] = [None] * len(slots)
        self._text_pos = [k for k, s in enumerate(slots) if image.is_text[s] or image.untyped[s]]

    def snapshot(self) -> list[TagValue]:
        """Every tag now (for a birth certificate); what later changes are measured from."""
        self._take(np.arange(len(self._slots)))
        return [self.image.get(n) for n in self.tags]

    def changes(self) -> list[TagValue]:
        """The tags that changed since the last :meth:`snapshot` or :meth:`changes`."""
        img = self.image
        with img.lock:
            value = img.value[self._slots]
            quality = img.quality[self._slots]
            texts = [img.texts[self._slots[k]] if img.has_text[self._slots[k]] else None
                     for k in self._text_pos]
        moved = np.abs(value - self._value) > self._band
        appeared = np.isnan(value) != np.isnan(self._value)
        changed = moved | appeared | (quality != self._quality)
        for k, text in zip(self._text_pos, texts, strict=True):
            if text != self._text[k]:
                changed[k] = True
        positions = np.flatnonzero(changed)
        if positions.size == 0:
            return []
        owners = np.unique(self._owner[positions])
        # a tag reports all its elements: take every slot of the changed tags
        self._take(np.flatnonzero(np.isin(self._owner, owners)))
        return [img.get(self.tags[i]) for i in owners.tolist()]

    def _take(self, positions: NDArray[np.intp]) -> None:
        img = self.image
        with img.lock:
            s = self._slots[positions]
            self._value[positions] = img.value[s]
            self._quality[positions] = img.quality[s]
            for k in positions.tolist():
                slot = int(self._slots[k])
                self._text[k] = img.texts[slot] if img.has_text[slot] else None
