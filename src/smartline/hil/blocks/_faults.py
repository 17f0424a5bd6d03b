"""The sensor fault layer every block kernel ends with: what the devices see of the outputs.

A kernel writes its *true* outputs; :func:`apply_faults` copies them to the *seen* arrays the
devices read, applying per output and per instance: stuck at a value, a gaussian noise of a
given sigma, a constant offset and a drift that grows at a rate per second (float outputs);
stuck and offset (integer outputs); stuck (bool outputs). Layout of the fault arrays:

* ``ff[F_*, k, i]`` float64, ``F_STUCK`` (0/1) ``F_VALUE`` ``F_SIGMA`` ``F_OFFSET``
  ``F_DRIFT_RATE`` ``F_DRIFT`` (the drift accumulated so far);
* ``fi[I_*, k, i]`` int64, ``I_STUCK`` (0/1) ``I_VALUE`` ``I_OFFSET``;
* ``fb[B_*, k, i]`` bool, ``B_STUCK`` ``B_VALUE``;
* ``frng`` one xorshift state per float output and instance, flat (``k * n + i``).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

from ._rng import normal

__all__ = ["B_FIELDS", "B_STUCK", "B_VALUE", "F_DRIFT", "F_DRIFT_RATE", "F_FIELDS", "F_OFFSET",
           "F_SIGMA", "F_STUCK", "F_VALUE", "I_FIELDS", "I_OFFSET", "I_STUCK", "I_VALUE",
           "apply_faults"]

F_STUCK, F_VALUE, F_SIGMA, F_OFFSET, F_DRIFT_RATE, F_DRIFT = range(6)
F_FIELDS = 6
I_STUCK, I_VALUE, I_OFFSET = range(3)
I_FIELDS = 3
B_STUCK, B_VALUE = range(2)
B_FIELDS = 2

F8 = npt.NDArray[np.float64]
I8 = npt.NDArray[np.int64]
B1 = npt.NDArray[np.bool_]
U8 = npt.NDArray[np.uint64]


@njit(cache=True, nogil=True)  # type: ignore[misc]
def apply_faults(  # noqa: PLR0917
    outf: F8, outi: I8, outb: B1, seenf: F8, seeni: I8, seenb: B1,
    ff: F8, fi: I8, fb: B1, frng: U8, dt_s: float,
) -> None:  # pragma: no cover
    """Copy the true outputs to the seen ones through each output's faults (see the module)."""
    n = outf.shape[1]
    for k in range(outf.shape[0]):
        for i in range(n):
            if ff[F_DRIFT_RATE, k, i] != 0.0:
                ff[F_DRIFT, k, i] += ff[F_DRIFT_RATE, k, i] * dt_s
            if ff[F_STUCK, k, i] != 0.0:
                seenf[k, i] = ff[F_VALUE, k, i]
                continue
            v = outf[k, i] + ff[F_OFFSET, k, i] + ff[F_DRIFT, k, i]
            if ff[F_SIGMA, k, i] > 0.0:
                v += ff[F_SIGMA, k, i] * normal(frng, k * n + i)
            seenf[k, i] = v
    for k in range(outi.shape[0]):
        for i in range(outi.shape[1]):
            if fi[I_STUCK, k, i] != 0:
                seeni[k, i] = fi[I_VALUE, k, i]
            else:
                seeni[k, i] = outi[k, i] + fi[I_OFFSET, k, i]
    for k in range(outb.shape[0]):
        for i in range(outb.shape[1]):
            seenb[k, i] = fb[B_VALUE, k, i] if fb[B_STUCK, k, i] else outb[k, i]
