"""Linear scaling between raw wire values and engineering units: ``eng = raw * gain + offset``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, overload

import numpy as np
from numpy.typing import NDArray

__all__ = ["Scale"]


@dataclass(frozen=True, slots=True)
class Scale:
    """A linear, invertible scale. ``raw_range``/``eng_range`` are kept when built from ranges.

    ``to_eng`` and ``to_raw`` take a float or a numpy array (vectorised, no Python loop).
    """

    gain: float = 1.0
    offset: float = 0.0
    raw_range: tuple[float, float] | None = None
    eng_range: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if not math.isfinite(self.gain) or self.gain == 0:
            raise ValueError(f"scale gain {self.gain!r} must be a finite number other than 0 "
                             "(the scale must be invertible)")
        if not math.isfinite(self.offset):
            raise ValueError(f"scale offset {self.offset!r} must be a finite number")
        if (self.raw_range is None) != (self.eng_range is None):
            raise ValueError("scale ranges come in pairs: give both raw and eng, or neither")

    @classmethod
    def from_ranges(cls, raw: tuple[float, float], eng: tuple[float, float]) -> Scale:
        """The scale mapping ``raw[0]→eng[0]`` and ``raw[1]→eng[1]`` (either may be descending)."""
        r0, r1 = (float(x) for x in raw)
        e0, e1 = (float(x) for x in eng)
        if not all(math.isfinite(x) for x in (r0, r1, e0, e1)):
            raise ValueError(f"scale ranges must be finite numbers, found raw {list(raw)} "
                             f"eng {list(eng)}")
        if r0 == r1:
            raise ValueError(f"scale raw range [{r0:g}, {r1:g}] is empty: expected two "
                             "different raw values")
        if e0 == e1:
            raise ValueError(f"scale eng range [{e0:g}, {e1:g}] is empty: expected two "
                             "different engineering values")
        gain = (e1 - e0) / (r1 - r0)
        return cls(gain=gain, offset=e0 - r0 * gain, raw_range=(r0, r1), eng_range=(e0, e1))

    @overload
    def to_eng(self, x: float) -> float: ...

    @overload
    def to_eng(self, x: NDArray[Any]) -> NDArray[np.float64]: ...

    def to_eng(self, x: float | NDArray[Any]) -> float | NDArray[np.float64]:
        """Raw → engineering units."""
        if isinstance(x, np.ndarray):
            return np.asarray(x, dtype=np.float64) * self.gain + self.offset
        return float(x) * self.gain + self.offset

    @overload
    def to_raw(self, x: float) -> float: ...

    @overload
    def to_raw(self, x: NDArray[Any]) -> NDArray[np.float64]: ...

    def to_raw(self, x: float | NDArray[Any]) -> float | NDArray[np.float64]:
        """Engineering units → raw (not rounded; integer wire types round at ``check_write``)."""
        if isinstance(x, np.ndarray):
            return (np.asarray(x, dtype=np.float64) - self.offset) / self.gain
        return (float(x) - self.offset) / self.gain

    def eng_span(self, lo: float, hi: float) -> tuple[float, float]:
        """The engineering interval that raw ``[lo, hi]`` maps to, low end first."""
        a, b = self.to_eng(float(lo)), self.to_eng(float(hi))
        return (a, b) if a <= b else (b, a)
