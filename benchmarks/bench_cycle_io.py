"""Cycle with device I/O (issue #8): a 1 ms task while the same process polls Modbus devices.

A 1 ms task runs the heat-treatment demo's PID program (``smartline.demo.furnace``: three
PID loops with the over-temperature interlock, 6 inputs, 3 outputs) and, separately, a
10k-tag program (``_cycle_io_programs.tags10k``: 10,000 inputs, 10 outputs). Its inputs
and outputs are on a ``memory://`` device and the inputs are acquired once by a slow task,
so the task itself does no wire I/O; the heaters are written when they change (deadband
0.1 %, as in the demo), ~85 batches a second. Scenarios, each a fresh line built from a
YAML file in a temp dir and run through the public API (``Line.load``,
``Engine.from_config``, ``EngineStats``):

(a) the task alone;
(b) the task while the same process polls 50 simulated Modbus/TCP devices (4 holding
    registers each, one request) every 10 ms — a second task of the same engine; the
    devices are served by ``python -m smartline.hil.modbus`` in another process;
(c) a naive ``asyncio.sleep`` 1 ms loop running the same kernel, alone and under the
    same I/O load (the polling engine shares its event loop).

Baseline (the VM is shared and noisy; its own timer limit moves from ~150 µs to over 1 ms
p99 from one minute to the next): a bare sleep-and-spin Python thread — ``time.sleep`` to
200 µs before each absolute 1 ms deadline, then a spin; timer slack 1 ns and SCHED_FIFO 50
where allowed, as the engine's tick threads ask for — running the same work (copy the
inputs, call the same compiled kernel). It is timed right before and right after each
group of scenarios under the same conditions (alone, or with the I/O load running), and
every figure is reported against it. Lateness = start − absolute deadline; cycle time =
end − start; all loops use the ``skip`` overrun policy (the engine's default).

    pytest benchmarks/bench_cycle_io.py --benchmark-enable -p no:cacheprovider -s
    python benchmarks/bench_cycle_io.py [--label "after (compiled loop, issue #8)"]
    BENCH_IO_SECONDS=3 python benchmarks/bench_cycle_io.py      # shorter scenarios

Writes the "Cycle with device I/O (issue #8)" section of ``benchmarks/RESULTS.md``: one
block per ``--label`` (``BENCH_IO_LABEL``), so a re-run under a new label keeps the
earlier blocks (a re-run under the same label replaces its block); ``BENCH_IO_NOTE`` adds a
sentence to the block (what was measured, e.g. which engine). Targets are printed as
PASS/MISS, never asserted: shared CI machines vary by 3x between runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import ctypes.util
import gc
import json
import math
import os
import platform
import re
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from _support import RESULTS, modbus_servers, write_section
from smartline.cycle import Engine, EngineStats, RealtimeOptions, SeriesStats, load_program
from smartline.line import Line

PERIOD_NS = 1_000_000  # the task under test: 1 ms
SPIN_NS = 200_000  # the baseline sleeps to this much before a deadline, then spins
DEVICES = 50
REGISTERS = 4  # holding registers polled per device: one request each
IO_PERIOD_MS = 10
ONCE_MS = 3_600_000  # the slow task that acquires the program's inputs (once, at start)
ZONES_SP = (150.0, 180.0, 200.0)  # the demo's set points
ZONES_PV = (148.0, 175.0, 190.0)  # below them: the PID outputs ramp (a write every ~12 ms)
N10K = 10_000
OUT10K = 10
SECONDS = float(os.environ.get("BENCH_IO_SECONDS", "6"))
TARGET_NS = 50_000
TARGET_RATIO = 2.0
# ratios divide by the baseline's figure, but by no less than this: below it the baseline
# shows the clock's resolution (a spinning thread starts within 0.1-1 µs), not the VM's noise
RATIO_FLOOR_NS = 10_000
LABEL = os.environ.get("BENCH_IO_LABEL", "latest run")
NOTE = os.environ.get("BENCH_IO_NOTE", "")  # a sentence added to this run's block
PROGRAMS = Path(__file__).with_name("_cycle_io_programs.py")
SECTION = "cycle-io"
TITLE = "## Cycle with device I/O (issue #8)"
COMMAND = "pytest benchmarks/bench_cycle_io.py --benchmark-enable -p no:cacheprovider -s"

Work = Callable[[int], None]


# -- figures ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Figures:
    """p50/p99/p99.9/max of one series, ns."""

    count: int
    p50: float
    p99: float
    p999: float
    max: float

    @classmethod
    def of_samples(cls, ns: NDArray[np.int64]) -> Figures:
        if len(ns) == 0:
            return cls(0, math.nan, math.nan, math.nan, math.nan)
        p = np.percentile(ns, [50, 99, 99.9], method="inverted_cdf")
        return cls(len(ns), float(p[0]), float(p[1]), float(p[2]), float(ns.max()))

    @classmethod
    def of_series(cls, s: SeriesStats) -> Figures:
        """From the engine's statistics (the only place that knows their field names)."""
        return cls(s.count, s.p50_ns, s.p99_ns, s.p99_9_ns, s.max_ns)


@dataclass(slots=True)
class Row:
    """One measured loop: a baseline, the engine's task, or the naive asyncio loop."""

    label: str
    lateness: Figures
    cycle: Figures
    cycles: int
    overruns: int
    halves: tuple[float, float] | None = None  # baseline: lateness p99 before / after
    info: dict[str, Any] = field(default_factory=dict)
    cpu: Cpu | None = None
    gc_pauses: list[int] = field(default_factory=list)  # this process's full collections, ns


@dataclass(frozen=True, slots=True)
class Cpu:
    """CPU use while a loop ran: this process and the simulator (fractions of one CPU,
    precise), the whole machine (fraction of all CPUs busy, from ``/proc/stat``: sampled at
    the kernel's tick, so it can miss a thread that spins in step with a 1 ms period)."""

    process: float
    simulator: float
    machine: float

    @staticmethod
    def mean(a: Cpu | None, b: Cpu | None) -> Cpu | None:
        if a is None or b is None:
            return a or b
        return Cpu((a.process + b.process) / 2, (a.simulator + b.simulator) / 2,
                   (a.machine + b.machine) / 2)


class Watch:
    """CPU use (:class:`Cpu`) and this process's full (generation 2) garbage collections
    while a loop is measured: a collection holds the GIL for all its length."""

    def __init__(self) -> None:
        self.cpu: Cpu | None = None
        self.pauses: list[int] = []
        self._t = 0
        self._start: tuple[float, float, float, tuple[int, int] | None] | None = None

    def __enter__(self) -> Watch:
        self._start = (time.monotonic(), time.process_time(), _simulator_cpu_s(), _cpu_times())
        gc.callbacks.append(self._gc)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._gc)
        assert self._start is not None
        w0, p0, s0, c0 = self._start
        wall, c1 = time.monotonic() - w0, _cpu_times()
        machine = math.nan
        if c0 is not None and c1 is not None and c1[0] > c0[0]:
            machine = 1 - (c1[1] - c0[1]) / (c1[0] - c0[0])
        self.cpu = Cpu((time.process_time() - p0) / wall, (_simulator_cpu_s() - s0) / wall,
                       machine)

    def _gc(self, phase: str, info: dict[str, int]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            self._t = time.perf_counter_ns()
        elif self._t:
            self.pauses.append(time.perf_counter_ns() - self._t)

    def apply(self, row: Row) -> Row:
        row.cpu, row.gc_pauses = self.cpu, self.pauses
        return row


def _simulator_cpu_s() -> float:
    """CPU seconds used so far by the child processes serving the simulated devices."""
    total = 0.0
    try:
        pids: set[str] = set()
        for tid in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{tid}/children", encoding="ascii") as f:
                pids.update(f.read().split())
        for pid in pids:
            with open(f"/proc/{pid}/cmdline", "rb") as fb:
                if b"smartline.hil.modbus" not in fb.read():
                    continue
            with open(f"/proc/{pid}/stat", encoding="ascii") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return math.nan
    return total


def _cpu_times() -> tuple[int, int] | None:
    """(total, idle + iowait) jiffies of all CPUs, or None off Linux."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return None
    return sum(v[:8]), v[3] + v[4]


@dataclass(slots=True)
class Samples:
    """Lateness and cycle time of a loop timed in Python (baseline, naive asyncio)."""

    lateness: NDArray[np.int64]
    cycle: NDArray[np.int64]
    overruns: int
    realtime: dict[str, object]
    cpu: Cpu | None = None
    gc_pauses: list[int] = field(default_factory=list)

    def row(self, label: str) -> Row:
        return Row(label, Figures.of_samples(self.lateness), Figures.of_samples(self.cycle),
                   len(self.lateness), self.overruns, info={"realtime": self.realtime},
                   cpu=self.cpu, gc_pauses=self.gc_pauses)


def merge(label: str, a: Samples, b: Samples) -> Row:
    """The baseline of a group: its segments before and after, together."""
    both = Samples(np.concatenate([a.lateness, b.lateness]), np.concatenate([a.cycle, b.cycle]),
                   a.overruns + b.overruns, a.realtime, Cpu.mean(a.cpu, b.cpu),
                   a.gc_pauses + b.gc_pauses)
    row = both.row(label)
    row.halves = (Figures.of_samples(a.lateness).p99, Figures.of_samples(b.lateness).p99)
    return row


# -- the line files -----------------------------------------------------------------------
def _entry(name: str, value: dict[str, Any]) -> str:
    """``  name: {flow mapping}`` (JSON is YAML's flow style)."""
    return f"  {name}: {json.dumps(value, ensure_ascii=False)}"


def line_yaml(workload: str | None, io_urls: Sequence[str]) -> str:
    """A line: ``workload`` (``pid``, ``10k`` or None) on a memory device, plus a 10 ms task
    polling ``io_urls`` (Modbus/TCP) when given."""
    devices = [_entry("plant", {"url": "memory://bench-cycle-io", "timeout_ms": 100})]
    tags: list[str] = []
    tasks: list[str] = []
    io_tags: list[str] = []
    for k, url in enumerate(io_urls):
        dev = f"io{k:02d}"
        devices.append(_entry(dev, {"url": url, "timeout_ms": 200}))
        for r in range(REGISTERS):
            io_tags.append(f"{dev}.r{r}")
            tags.append(_entry(f"{dev}.r{r}", {"device": dev, "address": f"hr:{r}:uint16"}))
    if workload == "pid":
        zones = range(1, len(ZONES_SP) + 1)
        ins = [f"zone{i}.pv" for i in zones] + [f"zone{i}.sp" for i in zones]
        tags += [_entry(n, {"device": "plant", "address": n, "access": "rw"}) for n in ins]
        tags += [_entry(f"heater{i}", {"device": "plant", "address": f"heater{i}",
                                       "access": "rw", "unit": "%", "limits": [0, 100],
                                       "safe": 0, "deadband": 0.1}) for i in zones]
        tasks += [_entry("control", {"period_ms": 1, "overrun": "skip",
                                     "program": "smartline.demo.furnace:furnace"}),
                  _entry("monitor", {"period_ms": ONCE_MS, "tags": ins})]
    elif workload == "10k":
        ins = [f"m{k}" for k in range(N10K)]
        outs = [f"o{j}" for j in range(OUT10K)]
        tags += [_entry(n, {"device": "plant", "address": n}) for n in ins]
        tags += [_entry(n, {"device": "plant", "address": n, "access": "rw", "safe": 0})
                 for n in outs]
        tasks += [_entry("control", {"period_ms": 1, "overrun": "skip",
                                     "program": f"{PROGRAMS}:tags10k", "inputs": ins,
                                     "outputs": outs}),
                  _entry("monitor", {"period_ms": ONCE_MS, "tags": ins})]
    if io_urls:
        tasks.append(_entry("acquire", {"period_ms": IO_PERIOD_MS, "tags": io_tags}))
    return "\n".join(["smartline: 1", "line: bench-cycle-io", "devices:", *devices,
                      "tags:", *tags, "tasks:", *tasks]) + "\n"


# -- the work of one cycle, for the Python-timed loops ------------------------------------
def pid_work() -> Work:
    """Copy the 6 inputs from an "image", run the demo's furnace kernel (as the task does)."""
    from smartline.demo.furnace import furnace

    image = np.array(ZONES_PV + ZONES_SP)
    inputs = np.zeros(len(image))
    outputs = np.full(len(ZONES_SP), np.nan)
    state = furnace.new_state()
    furnace.compile(len(inputs), len(outputs), state)
    kernel = furnace.kernel

    def work(deadline_ns: int) -> None:
        np.copyto(inputs, image)
        kernel(deadline_ns, inputs, outputs, state)

    work(time.monotonic_ns())
    return work


def tags10k_work() -> Work:
    prog = load_program(f"{PROGRAMS}:tags10k")
    image = np.random.default_rng(8).random(N10K + OUT10K)
    slots = np.arange(N10K)
    inputs = np.zeros(N10K)
    outputs = np.full(OUT10K, np.nan)
    prog.compile(N10K, OUT10K, ())
    kernel = prog.kernel

    def work(deadline_ns: int) -> None:
        np.take(image, slots, out=inputs)
        kernel(deadline_ns, inputs, outputs, ())

    work(time.monotonic_ns())
    return work


# -- the baseline: a bare sleep-and-spin Python thread ------------------------------------
def _realtime() -> dict[str, object]:
    """Timer slack 1 ns and SCHED_FIFO 50 for the calling thread, where allowed (what the
    engine's tick threads ask for); returns what it got."""
    got: dict[str, object] = {"sched": "other", "priority": 0, "timer_slack_ns": None}
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            if libc.prctl(29, ctypes.c_ulong(1), 0, 0, 0) == 0:  # PR_SET_TIMERSLACK
                got["timer_slack_ns"] = int(libc.prctl(30, 0, 0, 0, 0))
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(50))
        got["sched"], got["priority"] = "fifo", 50
    return got


def _next(deadline: int, end: int) -> tuple[int, int]:
    """The skip policy: the first deadline not passed at ``end``; (deadline, overrun 0/1)."""
    nxt = deadline + PERIOD_NS
    if end <= nxt:
        return nxt, 0
    return nxt + -(-(end - nxt) // PERIOD_NS) * PERIOD_NS, 1


def _spin_loop(seconds: float, work: Work, out: list[Samples]) -> None:
    realtime = _realtime()
    now = time.monotonic_ns
    n = int(seconds * 1e9 / PERIOD_NS) + 1
    lat = np.zeros(n, np.int64)
    cyc = np.zeros(n, np.int64)
    overruns = 0
    deadline = now() + 10 * PERIOD_NS
    for k in range(n):
        remaining = deadline - now()
        if remaining > SPIN_NS:
            time.sleep((remaining - SPIN_NS) / 1e9)
        while now() < deadline:
            pass
        start = now()
        work(deadline)
        end = now()
        lat[k] = start - deadline
        cyc[k] = end - start
        deadline, o = _next(deadline, end)
        overruns += o
    out.append(Samples(lat, cyc, overruns, realtime))


async def sleep_and_spin(seconds: float, work: Work) -> Samples:
    """The baseline in its own thread (not an executor's: SCHED_FIFO sticks to a thread)."""
    out: list[Samples] = []
    th = threading.Thread(target=_spin_loop, args=(seconds, work, out), daemon=True,
                          name="bench-sleep-and-spin")
    with Watch() as w:
        th.start()
        await asyncio.to_thread(th.join)
    s = out[0]
    s.cpu, s.gc_pauses = w.cpu, w.pauses
    return s


# -- (c) the naive asyncio loop -----------------------------------------------------------
async def naive_asyncio(seconds: float, work: Work) -> Samples:
    with Watch() as w:
        s = await _naive_loop(seconds, work)
    s.cpu, s.gc_pauses = w.cpu, w.pauses
    return s


async def _naive_loop(seconds: float, work: Work) -> Samples:
    now = time.monotonic_ns
    n = int(seconds * 1e9 / PERIOD_NS) + 1
    lat = np.zeros(n, np.int64)
    cyc = np.zeros(n, np.int64)
    overruns = 0
    deadline = now() + 10 * PERIOD_NS
    stop = deadline + round(seconds * 1e9)
    k = 0
    while deadline < stop and k < n:
        await asyncio.sleep(max(deadline - now(), 0) / 1e9)
        start = now()
        work(deadline)
        end = now()
        lat[k] = max(start - deadline, 0)
        cyc[k] = end - start
        k += 1
        deadline, o = _next(deadline, end)
        overruns += o
    return Samples(lat[:k], cyc[:k], overruns, {"sched": "asyncio loop"})


# -- the engine ---------------------------------------------------------------------------
def _check(st: EngineStats, what: str) -> None:
    assert not st.faulted, f"{what}: a task faulted: {[a.as_dict() for a in st.alarms]}"
    bad = [a for a in st.alarms if a.kind != "io"]
    assert not bad, f"{what}: alarms {[a.as_dict() for a in bad]}"


async def run_engine(path: Path, seconds: float, label: str,
                     setup: dict[str, float] | None = None) -> Row:
    """Run the line at ``path`` for ``seconds``; the row of its 1 ms task ``control``."""
    line = Line.load(path)
    try:
        if setup:
            await line.write(setup)
        engine = Engine.from_config(line.config, line.image, line.io, realtime=RealtimeOptions())
        with Watch() as w:
            st = await engine.run(duration_s=seconds)
    finally:
        await line.close()
    _check(st, label)
    t = st["control"]
    row = Row(label, Figures.of_series(t["lateness"]), Figures.of_series(t["cycle"]), t.cycles,
              t.overruns, info={"realtime": dict(t.realtime), "elapsed_s": st.elapsed_s,
                                "writes": t.io.writes, "skipped": t.skipped})
    w.apply(row)
    assert t.cycles > 0.2 * seconds * 1e9 / PERIOD_NS, f"{label}: only {t.cycles} cycles"
    assert t["lateness"].count > 0 and t["cycle"].count > 0
    if "acquire" in st.tasks:
        row.info["io"] = io_figures(st)
    return row


def io_figures(st: EngineStats) -> dict[str, float]:
    """What the 10 ms polling task did: the devices' own request counters where the driver
    reports them, else the task's."""
    a = st["acquire"]
    by_device = sum(int(str(d.get("requests", 0))) for n, d in st.devices.items()
                    if n.startswith("io"))
    requests = by_device or a.io.requests
    assert requests > 0, "no Modbus request was made"
    return {"reads": a.io.reads, "requests": requests, "reads_late": a.io.reads_late,
            "failed_reads": a.io.failed_reads, "requests_per_s": requests / st.elapsed_s,
            "lateness_p99": a["lateness"].p99_ns}


@contextlib.asynccontextmanager
async def io_load(path: Path, out: list[dict[str, float]]) -> AsyncIterator[None]:
    """The I/O load alone: an engine whose only task polls the Modbus devices every 10 ms,
    on this event loop; its I/O figures are appended to ``out`` at the end."""
    line = Line.load(path)
    try:
        engine = Engine.from_config(line.config, line.image, line.io, realtime=RealtimeOptions())
        run = asyncio.ensure_future(engine.run())
        while engine.stats()["acquire"].cycles < 20:  # connected and polling
            if run.done():
                await run
                raise AssertionError("the I/O load stopped before it started")
            await asyncio.sleep(0.01)
        try:
            yield
        finally:
            engine.stop()
            st = await run
        _check(st, "I/O load")
        out.append(io_figures(st))
    finally:
        await line.close()


# -- the scenarios ------------------------------------------------------------------------
@dataclass(slots=True)
class Block:
    """The rows of one program, in the order they are reported."""

    title: str
    rows: dict[str, Row] = field(default_factory=dict)
    io: list[dict[str, float]] = field(default_factory=list)


async def run_block(workload: str, work: Work, paths: dict[str, Path], seconds: float,
                    base_s: float) -> Block:
    title = ("PID program (heat-treatment demo: 3 PID loops + interlock, 6 inputs, 3 outputs)"
             if workload == "pid" else f"{N10K:,}-tag program ({N10K:,} inputs, {OUT10K} outputs)")
    setup = dict(zip([f"zone{i}.pv" for i in range(1, 4)] + [f"zone{i}.sp" for i in range(1, 4)],
                     ZONES_PV + ZONES_SP, strict=True)) if workload == "pid" else None
    pid = workload == "pid"
    rows: dict[str, Row] = {}
    io: list[dict[str, float]] = []
    print(f"\n{workload}: alone", flush=True)
    before = await sleep_and_spin(base_s, work)
    a = await run_engine(paths[workload], seconds, "(a) smartline task, alone", setup)
    c = (await naive_asyncio(seconds, work)).row("(c) naive `asyncio.sleep` loop, alone") \
        if pid else None
    after = await sleep_and_spin(base_s, work)
    rows["base"] = merge("sleep-and-spin thread, alone (baseline)", before, after)
    rows["a"] = a
    if c is not None:
        rows["c"] = c
    print(f"{workload}: under the I/O load", flush=True)
    async with io_load(paths["io"], io):
        before = await sleep_and_spin(base_s, work)
    b = await run_engine(paths[f"{workload}_io"], seconds,
                         "(b) smartline task, under the I/O load", setup)
    io.append(b.info["io"])
    c = None
    async with io_load(paths["io"], io):
        if pid:
            c = (await naive_asyncio(seconds, work)).row(
                "(c) naive `asyncio.sleep` loop, under the I/O load")
        after = await sleep_and_spin(base_s, work)
    rows["base_io"] = merge("sleep-and-spin thread, under the I/O load (baseline)", before,
                            after)
    rows["b"] = b
    if c is not None:
        rows["c_io"] = c
    return Block(title, rows, io)


async def measure(seconds: float = SECONDS) -> dict[str, Any]:
    load0 = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-cycle-io-") as tmp, \
            modbus_servers(DEVICES, REGISTERS * 2, 10.0) as urls:
        assert len(urls) == DEVICES
        d = Path(tmp)
        paths = {"pid": d / "pid.yaml", "pid_io": d / "pid_io.yaml", "10k": d / "10k.yaml",
                 "10k_io": d / "10k_io.yaml", "io": d / "io.yaml"}
        for key, p in paths.items():
            workload = None if key == "io" else key.removesuffix("_io")
            p.write_text(line_yaml(workload, urls if key.endswith("io") else ()),
                         encoding="utf-8")
        pid = await run_block("pid", pid_work(), paths, seconds, seconds / 2)
        k10 = await run_block("10k", tags10k_work(), paths, seconds * 2 / 3, seconds / 2)
    load1 = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    return {"pid": pid, "10k": k10, "load": (load0, load1),
            "wall_s": time.monotonic() - t0, "seconds": seconds}


# -- the report ---------------------------------------------------------------------------
def _us(ns: float) -> str:
    if math.isnan(ns):
        return "—"
    return f"{ns / 1e3:,.0f} µs" if ns >= 10_000 else f"{ns / 1e3:,.1f} µs"


def _x(r: float) -> str:
    if math.isnan(r) or math.isinf(r):
        return "—"
    return f"{r:,.1f}×" if r >= 10 else f"{r:.2f}×" if r >= 0.1 else f"{r:.2g}×"


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else math.nan


def _vs_base(a: float, base: float) -> float:
    return _ratio(a, max(base, RATIO_FLOOR_NS))


def _pct(x: float) -> str:
    return "—" if math.isnan(x) else f"{x:.0%}"


def _cpu(r: Row) -> str:
    """The two CPU cells of a row."""
    c = r.cpu
    if c is None:
        return "— | —"
    return f"{_pct(c.process)} / {_pct(c.simulator)} | {_pct(c.machine)}"


def _gcs(r: Row) -> str:
    return f"{len(r.gc_pauses)} (≤ {_us(max(r.gc_pauses))})" if r.gc_pauses else "0"


def _verdict(ok: bool) -> str:
    return "**PASS**" if ok else "**MISS**"


def _table(b: Block) -> list[str]:
    out = [f"**{b.title}**", "",
           "| 1 ms loop | cycles | lateness p50 | p99 | p99.9 | max | cycle p99 | overruns | "
           "lateness p99 ÷ baseline | cycle p99 ÷ baseline | CPU: process / simulator | "
           "machine busy | full GCs |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for key, r in b.rows.items():
        base = b.rows["base_io" if key in ("base_io", "b", "c_io") else "base"]
        p99 = f"**{_us(r.lateness.p99)}**"
        if r.halves is not None:
            p99 += f" ({_us(r.halves[0])} / {_us(r.halves[1])})"
        ratios = ("1 (baseline) | 1 (baseline)" if r is base else
                  f"{_x(_vs_base(r.lateness.p99, base.lateness.p99))} | "
                  f"{_x(_vs_base(r.cycle.p99, base.cycle.p99))}")
        out.append(
            f"| {r.label} | {r.cycles:,} | {_us(r.lateness.p50)} | {p99} | {_us(r.lateness.p999)}"
            f" | {_us(r.lateness.max)} | {_us(r.cycle.p99)} | {r.overruns:,} | {ratios} | "
            f"{_cpu(r)} | {_gcs(r)} |")
    return out


def targets(b: Block) -> list[tuple[str, str, bool]]:
    """(what, figure, met) for the issue's targets, on block ``b``'s (b) row."""
    a, bb, base = b.rows["a"], b.rows["b"], b.rows["base"]
    lat, cyc = bb.lateness.p99, bb.cycle.p99
    rl, rc = _ratio(lat, a.lateness.p99), _ratio(cyc, a.cycle.p99)
    return [
        ("lateness p99 ≤ 50 µs under the I/O load", _us(lat), lat <= TARGET_NS),
        ("cycle-time p99 ≤ 50 µs under the I/O load", _us(cyc), cyc <= TARGET_NS),
        ("lateness p99 under the I/O load ≤ 2× alone (b ÷ a)",
         f"{_x(rl)} ({_us(lat)} vs {_us(a.lateness.p99)}; ÷ the baseline alone: "
         f"{_x(_vs_base(lat, base.lateness.p99))})", rl <= TARGET_RATIO),
        ("cycle-time p99 under the I/O load ≤ 2× alone (b ÷ a)",
         f"{_x(rc)} ({_us(cyc)} vs {_us(a.cycle.p99)})", rc <= TARGET_RATIO),
    ]


def _io_line(b: Block) -> str:
    rates = [x["requests_per_s"] for x in b.io]
    late = sum(x["reads_late"] for x in b.io)
    reads = sum(x["reads"] for x in b.io)
    failed = sum(x["failed_reads"] for x in b.io)
    poll_p99 = max(x["lateness_p99"] for x in b.io)
    asked = DEVICES * 1000 // IO_PERIOD_MS
    return (f"I/O load: {DEVICES} Modbus/TCP devices × {REGISTERS} holding registers every "
            f"{IO_PERIOD_MS} ms (a 10 ms task of the same engine; {asked:,} requests/s asked),"
            f" served by another process: {min(rates):,.0f}–{max(rates):,.0f} requests/s done"
            f" in the three I/O phases of this group; {late:,} of {reads:,} device reads had "
            f"not landed by their cycle's deadline, {failed:,} failed; the polling task's own "
            f"lateness p99 up to {_us(poll_p99)}.")


def run_block_text(res: dict[str, Any], label: str) -> str:
    pid: Block = res["pid"]
    k10: Block = res["10k"]
    a_rt = pid.rows["a"].info["realtime"]
    b_rt = pid.rows["base"].info["realtime"]
    load0, load1 = res["load"]
    lines = [
        f"<!-- {SECTION}-run:{label}:begin -->",
        f"### {label}",
        "",
        f"{date.today().isoformat()} · {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, numba {_version('numba')}, pymodbus "
        f"{_version('pymodbus')}; 1-minute load average {load0:.1f} at the start, {load1:.1f} at "
        f"the end; {res['seconds']:g} s per scenario ({res['seconds'] * 2 / 3:g} s for 10k tags),"
        f" {res['seconds'] / 2:g} s per baseline segment; whole run {res['wall_s']:.0f} s. Tick "
        f"thread: scheduler {a_rt.get('sched')}, priority {a_rt.get('priority')}, timer slack "
        f"{a_rt.get('timer_slack_ns')} ns; baseline thread: {b_rt.get('sched')}, "
        f"{b_rt.get('priority')}, {b_rt.get('timer_slack_ns')} ns." + (f" {NOTE}" if NOTE else ""),
        "",
    ]
    for b in (pid, k10):
        lines += [*_table(b), "", _io_line(b), ""]
    pauses = [p for b in (pid, k10) for k, r in b.rows.items() if k in ("base_io", "b", "c_io")
              for p in r.gc_pauses]
    if pauses:
        med = float(np.median(pauses))
        lines += [f"Full (generation 2) garbage collections of this process while the rows "
                  f"under the I/O load were measured: {len(pauses)}, median {_us(med)}, longest "
                  f"{_us(max(pauses))}. A collection holds the GIL for its whole length: any "
                  "thread that needs the GIL waits it out.", ""]
    lines += ["Targets (PID program):", ""]
    for what, fig, ok in targets(pid):
        lines.append(f"* {what}: {fig} — {_verdict(ok)}")
    base_p99 = pid.rows["base"].lateness.p99
    if base_p99 > TARGET_NS:
        lines.append(f"* note: the bare sleep-and-spin thread alone had a lateness p99 of "
                     f"{_us(base_p99)} in this run, above the 50 µs target: the VM's own timer "
                     "limit; read the ratios.")
    ka, kb, kbase = k10.rows["a"], k10.rows["b"], k10.rows["base"]
    lines += ["", f"10k-tag program, for comparison (no target): under the I/O load lateness "
              f"p99 {_us(kb.lateness.p99)}, cycle-time p99 {_us(kb.cycle.p99)}; b ÷ a "
              f"{_x(_ratio(kb.lateness.p99, ka.lateness.p99))} (lateness p99), "
              f"{_x(_ratio(kb.cycle.p99, ka.cycle.p99))} (cycle p99); lateness p99 ÷ the "
              f"baseline alone {_x(_vs_base(kb.lateness.p99, kbase.lateness.p99))}.", "",
              f"<!-- {SECTION}-run:{label}:end -->"]
    return "\n".join(lines)


HEADER = f"""{TITLE}

`{COMMAND}`
(or `python benchmarks/bench_cycle_io.py --label "…"`). A 1 ms task runs the heat-treatment
demo's PID program (`smartline.demo.furnace`) and, separately, a 10k-tag program, on a
`memory://` device (inputs acquired once by a slow task, so the task does no wire I/O; heater
outputs written on change, deadband 0.1 %): **(a)** alone; **(b)** while a 10 ms task of the
same engine polls {DEVICES} Modbus/TCP devices served by another process
(`python -m smartline.hil.modbus`); **(c)** a naive `asyncio.sleep` loop running the same
kernel, alone and sharing its event loop with the same I/O load.

**Baseline**: a bare sleep-and-spin Python thread (sleep to 200 µs before each absolute
deadline, then spin; timer slack 1 ns and SCHED_FIFO 50 where allowed) doing the same work
(copy the inputs, call the same kernel), timed right before and right after each group under
the same conditions — alone, or with the same I/O load running; its p99 cell shows (before /
after). Each row is divided by the baseline of its own conditions, by no less than 10 µs
(below that a spinning thread's lateness is the clock's resolution, not the VM's noise).
*CPU*: this process's and the simulator process's CPU time while the loop ran, in % of one
CPU; *machine busy*: all CPUs, from `/proc/stat` (other users of the VM included; sampled at
the kernel tick, so a thread spinning in step with the 1 ms period may not show); *full
GCs*: this process's generation-2 collections during the loop, and the longest.

Lateness = start − absolute deadline; cycle time = end − start (inputs + logic + outputs);
overrun policy `skip` everywhere. Targets (issue #8): under the I/O load, lateness p99 ≤ 50 µs
and cycle-time p99 ≤ 50 µs for the PID program, i.e. within 2× of (a). Each run is one block
under its label (`--label`, or `BENCH_IO_LABEL` under pytest); a run under a new label keeps
the earlier blocks.
"""


def report(res: dict[str, Any], label: str) -> str:
    """The whole section: the header, earlier runs under other labels, this run."""
    runs: list[tuple[str, str]] = []
    old = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else ""
    begin, end = f"<!-- {SECTION}:begin -->", f"<!-- {SECTION}:end -->"
    if begin in old and end in old:
        body = old.split(begin, 1)[1].split(end, 1)[0]
        pat = re.compile(rf"<!-- {SECTION}-run:(.+?):begin -->.*?<!-- {SECTION}-run:\1:end -->",
                         re.S)
        runs = [(m.group(1), m.group(0)) for m in pat.finditer(body)]
    new = run_block_text(res, label)
    if any(lbl == label for lbl, _ in runs):
        runs = [(lbl, new if lbl == label else text) for lbl, text in runs]
    else:
        runs.append((label, new))
    return HEADER + "\n" + "\n\n".join(text for _, text in runs) + "\n"


def _version(mod: str) -> str:
    try:
        return str(__import__(mod).__version__)
    except Exception:
        return "?"


def run_and_report(label: str = LABEL, seconds: float = SECONDS) -> dict[str, Any]:
    res = asyncio.run(measure(seconds))
    text = report(res, label)
    print("\n" + run_block_text(res, label))
    write_section(SECTION, text, after="cycle")
    return res


# -- pytest and the command line ----------------------------------------------------------
@pytest.mark.timeout(600)
def test_cycle_io(request: pytest.FixtureRequest) -> None:
    opt = request.config.getoption
    if opt("benchmark_disable", default=False) and not opt("benchmark_enable", default=False):
        pytest.skip("benchmark: run with --benchmark-enable")
    res = run_and_report()
    for b in (res["pid"], res["10k"]):
        assert set(b.rows) >= {"base", "a", "base_io", "b"}
        assert all(r.lateness.count > 0 and r.cycle.count > 0 for r in b.rows.values())
        assert b.rows["a"].info.get("writes", 0) > 0  # the program's outputs left the task


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--label", default=LABEL, help="this run's block in RESULTS.md")
    parser.add_argument("--seconds", type=float, default=SECONDS, help="per scenario")
    args = parser.parse_args(argv)
    run_and_report(args.label, args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
