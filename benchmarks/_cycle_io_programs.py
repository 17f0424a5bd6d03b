"""The 10k-tag program of ``bench_cycle_io.py``, in its own file so that the line file can
name it (``"…/_cycle_io_programs.py:tags10k"``) and numba caches it at a stable path.

No declared tag names: the line file's task lists its 10,000 inputs and its outputs.
"""

from __future__ import annotations


def tags10k(now_ns, inputs, outputs, state):  # type: ignore[no-untyped-def]
    """Output ``j`` is the mean of every ``len(outputs)``-th input from ``j``: each input is
    read once per cycle; the outputs are steady, so nothing is written after the first cycle."""
    n_out = outputs.shape[0]
    n_in = inputs.shape[0]
    for j in range(n_out):
        s = 0.0
        k = 0
        for i in range(j, n_in, n_out):
            s += inputs[i]
            k += 1
        outputs[j] = s / max(k, 1)
