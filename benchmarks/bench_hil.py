"""HIL in virtual time: plant seconds per wall second for every example line, and block costs.

Each scenario of ``hil_sim/scenarios/`` that has a matching line runs against it in virtual
time, lock-step (:class:`smartline.testing.sim.SimLine`, as the pytest plugin and
``smartline run --sim --virtual`` run it): the line's drivers talk to the simulated devices
over loopback, every cycle of every task runs, the plant steps at the scenario's step. A line
matches a scenario when its name shares the most leading words with the scenario's
(``recipes/bottling-line.yaml`` for ``bottling-line-faults`` or ``bottling``) and every
device of the line is simulated by the scenario; the tank demo runs with
``tests/integration/hil/tank-line.yaml``. Target: ≥ 100× real time for every example line.

The step cost per block per instance is :mod:`bench_blocks`'s measurement (imported, not
repeated here). A bare sleep-and-spin thread, measured in the same run, gives the machine's
timer noise. Only bounds that cannot flake are asserted (every line faster than real time).

Run::

    python -m pytest benchmarks/bench_hil.py -p no:cacheprovider -s
    PYTHONPATH=src python benchmarks/bench_hil.py [PLANT_SECONDS [SCENARIO ...]]

The script's scenario names (``bottling cnc-cell``) measure only those, and skip the block
costs: a quick check of one line after a change.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(Path(__file__).parent) not in sys.path:  # run as a script: bench_blocks next to us
    sys.path.insert(0, str(Path(__file__).parent))
if str(ROOT) not in sys.path:  # numba's cache may hold bench_blocks' kernels compiled under
    sys.path.append(str(ROOT))  # pytest, as benchmarks.bench_blocks

PLANT_S = 120.0  # plant time per line
TANK_LINE = ROOT / "tests" / "integration" / "hil" / "tank-line.yaml"
MIN_SPEEDUP = 2.0  # asserted: every line clearly faster than real time on any machine


@dataclass(frozen=True, slots=True)
class Pair:
    """A scenario and the line that runs against it."""

    scenario: Path
    line: Path

    @property
    def name(self) -> str:
        return self.scenario.stem


def _words_shared(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a.split("-"), b.split("-"), strict=False):
        if x != y:
            break
        n += 1
    return n


def _fits(line: Path, scenario: Path) -> bool:
    """Every device of the line is simulated by the scenario, with the same protocol."""
    from smartline.config import load_line
    from smartline.hil.scenario import Scenario

    try:
        config, sc = load_line(line), Scenario.load(scenario)
    except Exception:  # a file another helper is still writing: not a pair yet
        return False
    return all(n in sc.devices and sc.devices[n].protocol == d.url.scheme
               for n, d in config.devices.items())


def pairs(root: Path = ROOT) -> list[Pair]:
    """Every scenario of hil_sim/scenarios with a matching line (see the module docstring)."""
    tank = root / TANK_LINE.relative_to(ROOT)
    lines = sorted((root / "recipes").glob("*.yaml")) + ([tank] if tank.exists() else [])
    out = []
    for sc in sorted((root / "hil_sim" / "scenarios").glob("*.yaml")):
        scored = [(_words_shared(sc.stem, p.stem) if p != tank else
                   int(sc.stem.startswith("tank-")), p) for p in lines]
        scored = [(n, p) for n, p in scored if n > 0 and _fits(p, sc)]
        if scored:
            out.append(Pair(sc, max(scored, key=lambda x: x[0])[1]))
    return out


@dataclass(frozen=True, slots=True)
class Speed:
    """One line against its scenario: start-up, wall and CPU time for ``plant_s``."""

    pair: Pair
    plant_s: float
    start_s: float
    wall_s: float
    cpu_s: float
    cycles: int
    plant_steps: int
    failed: tuple[str, ...]
    plant_alone_s: float  # wall time of the same plant time without the line

    @property
    def plant_speedup(self) -> float:
        return self.plant_s / self.plant_alone_s

    @property
    def speedup(self) -> float:
        return self.plant_s / self.wall_s


def measure_line(pair: Pair, plant_s: float = PLANT_S) -> Speed:
    """Run ``pair`` for ``plant_s`` of plant time; the figures."""
    from smartline.testing.sim import SimLine

    t0 = time.perf_counter()
    with SimLine(pair.line, pair.scenario) as sim:
        t1 = time.perf_counter()
        c1 = time.process_time()
        sim.run_for(plant_s)
        wall, cpu = time.perf_counter() - t1, time.process_time() - c1
        stats = sim.stats()
        text, failed = sim.expectations_report()
        steps = sim.runner.steps
    bad = tuple(x for x in text.splitlines() if x.startswith("FAIL")) if failed else ()
    return Speed(pair, plant_s, t1 - t0, wall, cpu,
                 sum(t.cycles for t in stats.tasks.values()), steps, bad,
                 plant_alone(pair, plant_s))


def plant_alone(pair: Pair, plant_s: float) -> float:
    """Wall seconds the scenario's plant takes for ``plant_s`` with no line (steps only)."""
    from smartline.testing.sim import start_scenario, stop_scenario

    runner, lt = start_scenario(pair.scenario, virtual=True, trace=False)
    try:
        async def go() -> float:
            t = time.perf_counter()
            runner.run_for(round(plant_s * 1e9))
            return time.perf_counter() - t
        return lt.call(go())
    finally:
        stop_scenario(runner, lt)


def timer_noise_us(samples: int = 200) -> tuple[float, float]:
    """Median and p99 overshoot (µs) of a 1 ms sleep-and-spin wait in a bare thread."""
    over: list[float] = []

    def spin() -> None:
        for _ in range(samples):
            deadline = time.perf_counter() + 0.001
            time.sleep(0.0008)
            while time.perf_counter() < deadline:
                pass
            over.append((time.perf_counter() - deadline) * 1e6)

    th = threading.Thread(target=spin, name="timer-noise")
    th.start()
    th.join()
    over.sort()
    return over[len(over) // 2], over[min(len(over) - 1, int(len(over) * 0.99))]


def table(speeds: list[Speed], noise: tuple[float, float]) -> str:
    """Markdown: one row per line, then the timer-noise reference."""
    rows = ["| scenario | line | plant s | start s | wall s | CPU s | cycles | plant steps | "
            "plant s / wall s | target 100× | plant alone: s / wall s |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in speeds:
        rows.append(
            f"| {s.pair.name} | {s.pair.line.relative_to(ROOT)} | {s.plant_s:g} | "
            f"{s.start_s:.2f} | {s.wall_s:.3f} | {s.cpu_s:.3f} | {s.cycles:,} | "
            f"{s.plant_steps:,} | {s.speedup:,.0f}× | {'met' if s.speedup >= 100 else 'MISSED'} | "
            f"{s.plant_speedup:,.0f}× |")
    for sp in speeds:
        rows += [f"\n{sp.pair.name}: expectation failed at {sp.plant_s:g} s: {f}"
                 for f in sp.failed]
    rows.append(f"\ntimer noise (bare thread, 1 ms sleep-and-spin): median {noise[0]:.1f} µs, "
                f"p99 {noise[1]:.1f} µs")
    return "\n".join(rows)


def run(plant_s: float = PLANT_S, only: tuple[str, ...] = ()
        ) -> tuple[list[Speed], tuple[float, float]]:
    """Every pair (or the scenarios named in ``only``) and the machine's timer noise."""
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    noise = timer_noise_us()
    return [measure_line(p, plant_s) for p in pairs() if not only or p.name in only], noise


def test_hil_plant_seconds_per_wall_second() -> None:
    speeds, noise = run()
    print()
    print(table(speeds, noise))
    assert speeds, "no scenario with a matching line"
    for s in speeds:  # a bound that cannot flake: the 100× target is reported, not asserted
        assert s.speedup > MIN_SPEEDUP, f"{s.pair.name}: {s.speedup:.1f}× real time"


def test_block_step_costs_per_instance() -> None:
    from bench_blocks import SIZES, measure
    from bench_blocks import table as blocks_table
    from smartline.hil.blocks import BLOCK_TYPES

    results = measure()
    print()
    print(blocks_table(results))
    for name in BLOCK_TYPES:
        assert results[name][SIZES[-1]] / SIZES[-1] < 1e5  # < 100 µs per instance


if __name__ == "__main__":
    from bench_blocks import measure
    from bench_blocks import table as blocks_table

    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else PLANT_S
    names = tuple(sys.argv[2:])
    print(table(*run(seconds, names)))
    if not names:
        print()
        print(blocks_table(measure()))
