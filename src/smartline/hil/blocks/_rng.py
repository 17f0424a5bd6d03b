"""Seeded random numbers for plant kernels: one xorshift64 state per stream, in a uint64 array.

No global generator: each block instance (and each faulted output) owns its state, so a bank's
trace depends only on its seed, and drawing for one instance never shifts another's sequence.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from numba import njit

__all__ = ["normal", "seed_states", "uniform"]

_S13 = np.uint64(13)
_S7 = np.uint64(7)
_S17 = np.uint64(17)
_S11 = np.uint64(11)
_TWO_M53 = 2.0 ** -53
_MASK = (1 << 64) - 1


@njit(cache=True, nogil=True)  # type: ignore[misc]
def uniform(state: npt.NDArray[np.uint64], k: int) -> float:  # pragma: no cover
    """Next draw of stream ``k`` (Marsaglia xorshift64), uniform on (0, 1]."""
    x = state[k]
    x ^= x << _S13
    x ^= x >> _S7
    x ^= x << _S17
    state[k] = x
    return (float(x >> _S11) + 1.0) * _TWO_M53


@njit(cache=True, nogil=True)  # type: ignore[misc]
def normal(state: npt.NDArray[np.uint64], k: int) -> float:  # pragma: no cover
    """Next standard normal draw of stream ``k`` (Box–Muller, two uniforms per draw)."""
    u1 = uniform(state, k)
    u2 = uniform(state, k)
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    z = x
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def seed_states(seed: int, stream: int, count: int) -> npt.NDArray[np.uint64]:
    """``count`` independent non-zero xorshift states for ``(seed, stream)`` (splitmix64)."""
    out = np.empty(count, np.uint64)
    base = _splitmix64((seed & _MASK) ^ _splitmix64(stream))
    for k in range(count):
        s = _splitmix64(base ^ _splitmix64(k + 1))
        out[k] = s if s else 0x9E3779B97F4A7C15
    return out
