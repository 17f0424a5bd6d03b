"""Array type aliases and the bank factories' argument checks (plain Python, never jitted).

Nothing here is called from a kernel: numba's cache does not notice when a function in another
file changes, so every kernel lives in the same module as everything it calls.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "BoolArray",
    "FloatArray",
    "Int8Array",
    "IntArray",
    "Nanoseconds",
    "bool_array",
    "check_count",
    "float_array",
    "ns_array",
]

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]
Int8Array = npt.NDArray[np.int8]
FloatArray = npt.NDArray[np.float64]
Nanoseconds = int | np.int64
"""A time in integer nanoseconds from the caller's clock (``Clock.now_ns()``)."""


def check_count(n: int) -> int:
    """Return ``n`` as an int after checking it is a non-negative instance count."""
    n = operator.index(n)
    if n < 0:
        raise ValueError(f"instance count must be >= 0, got {n}")
    return n


def _filled(n: int, value: npt.ArrayLike, dtype: type[Any], name: str) -> npt.NDArray[Any]:
    out = np.empty(n, dtype=dtype)
    try:
        out[...] = value
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{name}: expected a scalar or {n} values, got {value!r}") from exc
    return out


def float_array(n: int, value: npt.ArrayLike, name: str) -> FloatArray:
    """A new float64 array of length ``n`` holding ``value`` (a scalar or one per instance)."""
    return _filled(n, value, np.float64, name)


def bool_array(n: int, value: npt.ArrayLike, name: str) -> BoolArray:
    """A new bool array of length ``n`` holding ``value`` (a scalar or one per instance)."""
    return _filled(n, value, np.bool_, name)


def ns_array(n: int, seconds: npt.ArrayLike, name: str) -> IntArray:
    """Seconds (a scalar or one per instance) as int64 nanoseconds; refuses negatives and NaN."""
    s = float_array(n, seconds, name)
    if not np.all(np.isfinite(s)) or np.any(s < 0.0):
        raise ValueError(f"{name}: must be finite and >= 0 seconds, got {seconds!r}")
    return np.rint(s * 1e9).astype(np.int64)
