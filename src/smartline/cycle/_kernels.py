"""Small numba kernels of the cycle itself: input gathering and output change detection.

They run once per cycle on whole arrays and never allocate. They keep the GIL
(``nogil=False``): they take a few µs, and releasing the GIL on entry would let another
thread take it and make the tick wait for it back on exit.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import NDArray

__all__ = ["changed_outputs", "gather_inputs", "warm_up"]

_BAD = 3  # Quality.BAD (numba freezes module globals)


@njit(cache=True)  # type: ignore[misc]
def gather_inputs(value: NDArray[np.float64], quality: NDArray[np.uint8],
                  slots: NDArray[np.intp], out_value: NDArray[np.float64],
                  out_quality: NDArray[np.uint8]) -> int:  # pragma: no cover
    """Copy the slots' values and qualities out of the image (the caller holds its lock);
    BAD values become NaN. Returns how many were BAD."""
    n = 0
    for i in range(slots.shape[0]):
        j = slots[i]
        q = quality[j]
        out_quality[i] = q
        if q >= _BAD:
            out_value[i] = np.nan
            n += 1
        else:
            out_value[i] = value[j]
    return n


@njit(cache=True)  # type: ignore[misc]
def changed_outputs(values: NDArray[np.float64], last: NDArray[np.float64],
                    deadband: NDArray[np.float64],
                    mask: NDArray[np.bool_]) -> int:  # pragma: no cover
    """Mark outputs to write: not NaN, and never written or moved by more than the deadband."""
    n = 0
    for i in range(values.shape[0]):
        v = values[i]
        # NaN (not computed) is never written; a never-written output (last NaN) always is
        m = (v == v) and not (abs(v - last[i]) <= deadband[i])  # noqa: PLR0124
        mask[i] = m
        n += m
    return n


def warm_up() -> None:
    """Compile (or load from cache) the kernels for the engine's array types."""
    f = np.zeros(1)
    q = np.zeros(1, np.uint8)
    gather_inputs(f, q, np.zeros(1, np.intp), f.copy(), q.copy())
    changed_outputs(f, f, f, np.zeros(1, np.bool_))
