"""Plant blocks: step cost per block per instance, and plant seconds per wall second at 1 ms.

Every block type of ``smartline.hil.blocks`` is stepped at n = 1, 100 and 10,000 instances with
inputs that keep it busy (belts running with arrivals, valves open, drives at speed, fills and
caps toggled, CNCs in auto cycle), through ``BlockBank.step`` (dispatch included). Baselines
measured in the same run:

* ``empty`` — an njit kernel with the same 18 array arguments whose loop writes one value per
  instance: what the uniform calling convention and the Python call cost by themselves;
* ``thermal_step`` — the pre-existing first-order kernel of ``smartline.hil.plants``
  (5 arrays), called directly.

Run::

    PYTHONPATH=src python benchmarks/bench_blocks.py                 # the table
    python -m pytest benchmarks/bench_blocks.py -p no:cacheprovider -s

Only bounds that cannot flake are asserted (a step of one instance well under 1 ms, so a
single bank runs faster than real time at a 1 ms step on any machine).
"""

from __future__ import annotations

import timeit
from collections.abc import Callable
from typing import Any

import numpy as np
from numba import njit

from smartline.hil.blocks import BLOCK_TYPES, BlockBank, make_bank
from smartline.hil.plants import thermal_step

SIZES = (1, 100, 10_000)
DT_S = 1e-3
WORK = 200_000  # instance-steps per measurement
REPEAT = 5

ACTIVE: dict[str, dict[str, float | bool]] = {
    "conveyor": {"run": True, "infeed_per_min": 120.0},
    "tank": {"inflow_valve_pct": 60.0, "outflow_valve_pct": 40.0, "pump_run": True},
    "oven": {"power_pct": 70.0},
    "motor": {"run": True, "ref_hz": 50.0, "load_pct": 80.0},
    "filler": {"fill": True},
    "capper": {"cap": True},
    "cnc": {"auto_cycle": True, "cycle_start": True},
}


@njit(cache=True, nogil=True)
def empty_kernel(pf, inf, inb, outf, outi, outb, sf, si, sb, buf, rng,  # type: ignore[no-untyped-def]
                 seenf, seeni, seenb, ff, fi, fb, frng, dt_s):
    for i in range(pf.shape[1]):
        seenf[0, i] = dt_s


def busy_bank(name: str, n: int) -> BlockBank:
    bank = make_bank(name, n, seed=1)
    for signal, value in ACTIVE[name].items():
        bank.set_input(signal, None, value)
    bank.warm_up()
    for _ in range(50):  # leave the start-up transient
        bank.step(0.01)
    return bank


def bound(fn: Any, *args: Any) -> Callable[[], object]:
    """``fn(*args)`` as a no-argument callable for timeit."""
    return lambda: fn(*args)


def best_ns(fn: Callable[[], object], calls: int) -> float:
    """Best of REPEAT runs of ``calls`` calls, in ns per call."""
    fn()
    return min(timeit.repeat(fn, number=calls, repeat=REPEAT)) / calls * 1e9


def measure() -> dict[str, dict[int, float]]:
    """ns per call of one step of n instances, for each block and the baselines."""
    out: dict[str, dict[int, float]] = {"empty": {}, "thermal_step": {}}
    for n in SIZES:
        calls = max(20, WORK // n)
        ref = busy_bank("oven", n)
        args = ref.kernel_args
        out["empty"][n] = best_ns(bound(empty_kernel, *args, DT_S), calls)
        t, u = np.full(n, 20.0), np.full(n, 50.0)
        amb, gain, tau = np.full(n, 20.0), np.full(n, 800.0), np.full(n, 60.0)
        out["thermal_step"][n] = best_ns(bound(thermal_step, t, u, amb, gain, tau, DT_S), calls)
        for name in BLOCK_TYPES:
            bank = busy_bank(name, n)
            out.setdefault(name, {})[n] = best_ns(bound(bank.step, DT_S), calls)
    return out


def table(results: dict[str, dict[int, float]]) -> str:
    """Markdown: ns per instance per step, ratio to the empty kernel, plant s per wall s."""
    head = ("| block | " + " | ".join(f"n={n:,} ns/inst" for n in SIZES)
            + " | n=10,000 × empty | plant s / wall s at 1 ms (n=1 / n=10,000) |")
    lines = [head, "|" + "---|" * (len(SIZES) + 3)]
    big = SIZES[-1]
    for name, per_n in results.items():
        cells = [f"{per_n[n] / n:,.1f}" for n in SIZES]
        ratio = per_n[big] / results["empty"][big]
        speed = f"{DT_S * 1e9 / per_n[1]:,.0f}× / {DT_S * 1e9 / per_n[big]:,.1f}×"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {ratio:,.1f} | {speed} |")
    return "\n".join(lines)


def test_block_step_costs() -> None:
    results = measure()
    print()
    print(table(results))
    for name in BLOCK_TYPES:
        assert results[name][1] < 1e6  # one instance: far below a 1 ms step
        assert results[name][SIZES[-1]] / SIZES[-1] < 1e5  # < 100 µs per instance


if __name__ == "__main__":
    print(table(measure()))
