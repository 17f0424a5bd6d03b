"""Function blocks per cycle: numba kernels versus numpy-vectorised versus a pure-Python loop.

10,000 PID controllers and 10,000 TON timers are stepped once per call, all three ways, in the
same run. The numpy and pure-Python versions below implement the same semantics as the kernels
(``test_references_agree`` checks that), so the ratios compare like with like. The pure-Python
version works on lists, its fastest form; indexing numpy arrays from Python is 4x slower still.

    pytest benchmarks/bench_logic.py --benchmark-enable      # pytest-benchmark, ratios printed
    PYTHONPATH=src python benchmarks/bench_logic.py          # a markdown table of the ratios

Nothing here asserts a time: shared CI machines vary by 3x between runs.
"""

from __future__ import annotations

import contextlib
import math
import timeit
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

import smartline.logic as sl

N = 10_000
MS = 1_000_000
PATTERNS = 16  # input sets cycled through, so timers and controllers keep changing state
IMPLS = ("numba", "numpy", "python")
BLOCKS = ("pid", "ton")

Cycle = Callable[[], None]

# -- the numpy-vectorised references --------------------------------------------------------


def pid_numpy(b: sl.PidBank, sp: Any, pv: Any, auto: Any, man: Any, now_ns: int) -> None:
    """The PID kernel's semantics with whole-array numpy operations (temporaries allowed)."""
    valid = np.isfinite(sp) & np.isfinite(pv)
    act = valid | ~auto
    dt_ns = now_ns - b.last_ns
    dt = np.where(b.primed & (dt_ns > 0), dt_ns * 1e-9, 0.0)
    advance = ~b.primed | (dt_ns != 0)
    sign = np.where(b.direct_acting, -1.0, 1.0)
    e = sign * (sp - pv)
    p = b.kp * e
    tf = np.maximum(b.tf_s, 0.0)
    kd = b.kp * np.maximum(b.td_s, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        d_new = (tf * b.d_term - sign * kd * (pv - b.prev_pv)) / (tf + dt)
        d = np.where(b.primed, np.where(dt > 0.0, d_new, b.d_term), 0.0)
        has_i = (dt > 0.0) & (b.ti_s > 0.0)
        i_old = b.integral
        i_new = np.where(has_i, i_old + b.kp * e * dt / b.ti_s, i_old)
        u = p + i_new + d
        u_sat = np.maximum(np.minimum(u, b.out_max), b.out_min)
        sat = u_sat != u
        back = sat & (b.tt_s > 0.0) & (dt > 0.0)
        i_back = i_new + (u_sat - u) * np.minimum(dt / b.tt_s, 1.0)
    clamp = (
        sat & ~(b.tt_s > 0.0) & (((u > u_sat) & (i_new > i_old)) | ((u < u_sat) & (i_new < i_old)))
    )
    i_auto = np.where(back, i_back, np.where(clamp, i_old, i_new))
    m = np.where(np.isfinite(man), man, b.out)
    m_sat = np.maximum(np.minimum(m, b.out_max), b.out_min)
    i_man = np.where(valid, m_sat - p - d, i_old)
    np.copyto(b.limited, np.where(auto, sat, m_sat != m), where=act)
    np.copyto(b.out, np.where(auto, u_sat, m_sat), where=act)
    np.copyto(b.integral, np.where(auto, i_auto, i_man), where=act)
    moved = valid & advance
    np.copyto(b.d_term, d, where=moved)
    np.copyto(b.prev_pv, pv, where=moved)
    np.copyto(b.last_ns, now_ns, where=moved)
    b.primed[moved] = True
    b.primed[~valid & auto] = False  # signals lost in auto: re-prime when they return


def ton_numpy(b: sl.TonBank, in_: Any, pt_ns: Any, now_ns: int) -> None:
    """The TON kernel's semantics with whole-array numpy operations."""
    pt = np.maximum(pt_ns, 0)
    np.copyto(b.start_ns, now_ns, where=in_ & (b.phase == 0))
    elapsed = np.maximum(now_ns - b.start_ns, 0)
    done = in_ & ((b.phase == 2) | (elapsed >= pt))
    b.phase[:] = np.where(in_, np.where(done, 2, 1), 0)
    b.q[:] = done
    b.et_ns[:] = np.where(done, pt, np.where(in_, elapsed, 0))


# -- the pure-Python references (lists, one instance at a time) ------------------------------


class PyPid:
    """PID state and tuning as Python lists, stepped by a plain loop."""

    def __init__(self, b: sl.PidBank) -> None:
        self.f = {name: getattr(b, name).tolist() for name in b._fields}

    def step(
        self, sp: list[float], pv: list[float], auto: list[bool], man: list[float], now_ns: int
    ) -> None:
        f = self.f
        kp, ti_s, td_s, tf_s, tt_s = f["kp"], f["ti_s"], f["td_s"], f["tf_s"], f["tt_s"]
        lo_a, hi_a, direct = f["out_min"], f["out_max"], f["direct_acting"]
        out, limited, integral, d_term = f["out"], f["limited"], f["integral"], f["d_term"]
        prev_pv, last_ns, primed = f["prev_pv"], f["last_ns"], f["primed"]
        isfinite = math.isfinite
        for i in range(len(sp)):
            x = pv[i]
            w = sp[i]
            valid = isfinite(x) and isfinite(w)
            lo = lo_a[i]
            hi = hi_a[i]
            if not valid and auto[i]:
                primed[i] = False
                continue
            k = kp[i]
            dt = 0.0
            advance = True
            if primed[i]:
                dt_ns = now_ns - last_ns[i]
                if dt_ns > 0:
                    dt = dt_ns * 1e-9
                elif dt_ns == 0:
                    advance = False
            sign = -1.0 if direct[i] else 1.0
            e = sign * (w - x)
            p = k * e
            d = 0.0
            if primed[i]:
                d = d_term[i]
                if dt > 0.0:
                    tf = max(tf_s[i], 0.0)
                    d = (tf * d_term[i] - sign * k * max(td_s[i], 0.0) * (x - prev_pv[i])) / (
                        tf + dt
                    )
            if auto[i]:
                i_old = integral[i]
                i_new = i_old
                ti = ti_s[i]
                if dt > 0.0 and ti > 0.0:
                    i_new = i_old + k * e * dt / ti
                u = p + i_new + d
                u_sat = max(min(u, hi), lo)
                if u_sat != u:
                    tt = tt_s[i]
                    if tt > 0.0:
                        if dt > 0.0:
                            i_new += (u_sat - u) * min(dt / tt, 1.0)
                    elif (u > u_sat and i_new > i_old) or (u < u_sat and i_new < i_old):
                        i_new = i_old
                integral[i] = i_new
                out[i] = u_sat
                limited[i] = u_sat != u
            else:
                m = man[i]
                if not isfinite(m):
                    m = out[i]
                u_sat = max(min(m, hi), lo)
                out[i] = u_sat
                limited[i] = u_sat != m
                if not valid:
                    continue
                integral[i] = u_sat - p - d
            if advance:
                d_term[i] = d
                prev_pv[i] = x
                last_ns[i] = now_ns
                primed[i] = True


class PyTon:
    """TON state as Python lists, stepped by a plain loop."""

    def __init__(self, b: sl.TonBank) -> None:
        self.f = {name: getattr(b, name).tolist() for name in b._fields}

    def step(self, in_: list[bool], pt_ns: list[int], now_ns: int) -> None:
        q, et, start, phase = self.f["q"], self.f["et_ns"], self.f["start_ns"], self.f["phase"]
        for i in range(len(in_)):
            if not in_[i]:
                phase[i] = 0
                q[i] = False
                et[i] = 0
                continue
            pt = max(pt_ns[i], 0)
            if phase[i] == 0:
                phase[i] = 1
                start[i] = now_ns
            if phase[i] == 1:
                elapsed = max(now_ns - start[i], 0)
                if elapsed < pt:
                    q[i] = False
                    et[i] = elapsed
                    continue
                phase[i] = 2
            q[i] = True
            et[i] = pt


# -- one cycle of each block, each way ------------------------------------------------------


def pid_inputs(n: int, seed: int = 1) -> list[tuple[Any, Any, Any, Any]]:
    """PATTERNS input sets: SP, PV (a few NaN), auto (a few in manual) and manual value."""
    rng = np.random.default_rng(seed)
    sets = []
    for _ in range(PATTERNS):
        pv = rng.normal(50.0, 10.0, n)
        pv[rng.random(n) < 0.01] = math.nan
        sets.append((rng.normal(50.0, 10.0, n), pv, rng.random(n) < 0.95, rng.uniform(0, 100, n)))
    return sets


def as_lists(s: tuple[Any, Any, Any, Any]) -> tuple[list[Any], list[Any], list[Any], list[Any]]:
    """One PID input set as Python lists, for the pure-Python reference."""
    return s[0].tolist(), s[1].tolist(), s[2].tolist(), s[3].tolist()


def pid_bank_for(n: int, seed: int = 0) -> sl.PidBank:
    """Varied tuning, so every branch of the controller is taken."""
    rng = np.random.default_rng(seed)
    return sl.pid_bank(
        n,
        kp=rng.uniform(0.5, 3.0, n),
        ti_s=rng.choice([0.0, 0.05, 2.0], n),
        td_s=rng.choice([0.0, 0.01], n),
        tf_s=rng.choice([0.0, 0.005], n),
        tt_s=rng.choice([0.0, 0.02], n),
        out_min=0.0,
        out_max=100.0,
        direct_acting=rng.random(n) < 0.3,
    )


def ton_inputs(n: int, seed: int = 2) -> list[tuple[Any, Any]]:
    rng = np.random.default_rng(seed)
    pt = rng.integers(1, 20, n).astype(np.int64) * MS
    return [(rng.random(n) < 0.8, pt) for _ in range(PATTERNS)]


def make_cycle(block: str, impl: str, n: int = N) -> Cycle:
    """A function stepping all n instances of ``block`` once per call, 1 ms later each time."""
    clock = iter(range(0, 1 << 62, MS))
    pattern = iter(range(1 << 62))
    if block == "pid":
        bank = pid_bank_for(n)
        sets = pid_inputs(n)
        if impl == "numba":
            return lambda: sl.pid_step(bank, *sets[next(pattern) % PATTERNS], next(clock))
        if impl == "numpy":
            return lambda: pid_numpy(bank, *sets[next(pattern) % PATTERNS], next(clock))
        py = PyPid(bank)
        lists = [as_lists(s) for s in sets]
        return lambda: py.step(*lists[next(pattern) % PATTERNS], next(clock))
    if block == "ton":
        tbank = sl.ton_bank(n)
        tsets = ton_inputs(n)
        if impl == "numba":
            return lambda: sl.ton_step(tbank, *tsets[next(pattern) % PATTERNS], next(clock))
        if impl == "numpy":
            return lambda: ton_numpy(tbank, *tsets[next(pattern) % PATTERNS], next(clock))
        pyt = PyTon(tbank)
        tlists = [(a.tolist(), b.tolist()) for a, b in tsets]
        return lambda: pyt.step(*tlists[next(pattern) % PATTERNS], next(clock))
    raise ValueError(f"unknown block {block!r}")


def check_references(n: int = 2_000, cycles: int = 40) -> None:
    """Raise AssertionError unless numba, numpy and pure Python give the same states."""
    sl.warm_up()
    nb, npb = pid_bank_for(n), pid_bank_for(n)
    py = PyPid(pid_bank_for(n))
    tb, tnp = sl.ton_bank(n), sl.ton_bank(n)
    tpy = PyTon(sl.ton_bank(n))
    psets, tsets = pid_inputs(n), ton_inputs(n)
    for k in range(cycles):
        now = 1_000 * MS + k * MS * (1 + k % 3)
        args = psets[k % PATTERNS]
        sl.pid_step(nb, *args, now)
        pid_numpy(npb, *args, now)
        py.step(*as_lists(args), now)
        targs = tsets[k % PATTERNS]
        sl.ton_step(tb, *targs, now)
        ton_numpy(tnp, *targs, now)
        tpy.step(targs[0].tolist(), targs[1].tolist(), now)
    for name, a, b in zip(nb._fields, list[Any](nb), list[Any](npb), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, err_msg=f"numpy pid.{name}")
        np.testing.assert_allclose(a, py.f[name], rtol=1e-12, atol=1e-12, err_msg=f"py {name}")
    for name, a, b in zip(tb._fields, list[Any](tb), list[Any](tnp), strict=True):
        np.testing.assert_array_equal(a, b, err_msg=f"numpy ton.{name}")
        np.testing.assert_array_equal(a, tpy.f[name], err_msg=f"python ton.{name}")


def markdown_table(times_s: dict[tuple[str, str], float], n: int = N) -> str:
    """Per-cycle times of each block and implementation as a markdown table with ratios."""
    lines = [
        f"| block ({n:,} instances, one cycle) | numba | numpy | pure Python "
        "| Python / numba | numpy / numba |",
        "|---|---|---|---|---|---|",
    ]
    for block in BLOCKS:
        t = {impl: times_s.get((block, impl)) for impl in IMPLS}
        if any(v is None for v in t.values()):
            continue
        nb, npy, py = t["numba"], t["numpy"], t["python"]
        assert nb is not None and npy is not None and py is not None
        lines.append(
            f"| {block.upper()} | {nb * 1e6:,.1f} µs | {npy * 1e6:,.1f} µs | {py * 1e6:,.0f} µs "
            f"| **{py / nb:,.0f}x** | {npy / nb:,.1f}x |"
        )
    return "\n".join(lines)


def ratio_table(n: int = N, repeat: int = 7, min_time_s: float = 0.2) -> str:
    """Time every block each way with timeit (best of ``repeat``) and return the table."""
    sl.warm_up()
    times: dict[tuple[str, str], float] = {}
    for block in BLOCKS:
        for impl in IMPLS:
            cycle = make_cycle(block, impl, n)
            cycle()
            per_call = timeit.Timer(cycle).timeit(number=1)
            number = max(1, int(min_time_s / max(per_call, 1e-9)))
            best = min(timeit.repeat(cycle, number=number, repeat=repeat))
            times[(block, impl)] = best / number
    return markdown_table(times, n)


# -- pytest-benchmark ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def timings(request: pytest.FixtureRequest) -> Iterator[dict[tuple[str, str], float]]:
    """Collects each benchmark's best time; prints the ratio table when the module is done."""
    found: dict[tuple[str, str], float] = {}
    yield found
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return
    text = (
        markdown_table(found)
        if found
        else ("bench_logic: no timings (benchmarks disabled); run with --benchmark-enable")
    )
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        reporter.write_line("")
        for line in text.splitlines():
            reporter.write_line(line)


def test_references_agree() -> None:
    check_references()


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("block", BLOCKS)
def test_cycle(
    benchmark: Any, timings: dict[tuple[str, str], float], block: str, impl: str
) -> None:
    sl.warm_up()
    cycle = make_cycle(block, impl)
    cycle()
    benchmark.group = f"{block}-{N}"
    benchmark(cycle)
    stats = getattr(benchmark, "stats", None)
    if stats is not None:
        timings[(block, impl)] = stats.stats.min


if __name__ == "__main__":
    check_references()
    print(ratio_table())
