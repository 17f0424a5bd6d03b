"""The compiled cycle loop: cached per program across processes, the same phases in Python
for jit=False programs, and the tick's thread never holds the GIL while it runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from smartline.cycle import Engine, RealtimeOptions, TaskSpec, program

NO_RT = RealtimeOptions(priority=None, timer_slack_ns=None, switch_interval_s=None)

LOOP_SCRIPT = textwrap.dedent("""\
    import json, sys
    sys.path.insert(0, sys.argv[1])
    from smartline.core import VirtualClock
    from smartline.cycle import Engine, TaskSpec
    from smartline.line import Line
    import looped
    line = Line.load(sys.argv[1] + "/line.yaml", clock=VirtualClock())
    eng = Engine(line.image, [TaskSpec("t", 1, program=looped.prog)], io=line.io,
                 clock=line.clock)
    eng.prepare()
    c = eng.tasks["t"].cycle
    print(json.dumps({"hit": c.cache_hit, "seconds": c.compile_s}))
""")

LINE = textwrap.dedent("""\
    smartline: 1
    line: looped
    devices:
      m: {url: "memory://m"}
    tags:
      a: {device: m, address: a}
      o: {device: m, address: o, access: rw}
""")

LOOPED = textwrap.dedent("""\
    from smartline.cycle import program

    @program(inputs=["a"], outputs=["o"])
    def prog(now_ns, inputs, outputs, state):
        outputs[0] = inputs[0] * 3.0 + 1.0
""")


def test_the_loop_compiled_for_a_program_is_loaded_from_the_cache_by_the_next_process(
        tmp_path: Path) -> None:
    (tmp_path / "looped.py").write_text(LOOPED, encoding="utf-8")
    (tmp_path / "line.yaml").write_text(LINE, encoding="utf-8")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")}

    def run() -> dict[str, object]:
        out = subprocess.run([sys.executable, "-c", LOOP_SCRIPT, str(tmp_path)], env=env,
                             capture_output=True, text=True, timeout=300, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]

    first, second = run(), run()
    assert first["hit"] is False and second["hit"] is True
    assert float(second["seconds"]) < float(first["seconds"])  # type: ignore[arg-type]


def test_a_python_program_runs_the_same_phases_and_says_so(make_engine, bus, run) -> None:
    seen: list[float] = []

    @program(inputs=["a"], outputs=["out1"], jit=False)
    def prog(now_ns, inputs, outputs, state):  # type: ignore[no-untyped-def]
        seen.append(float(inputs[0]))
        outputs[0] = inputs[0] + 1.0

    line, eng = make_engine(TaskSpec("t", 10, program=prog))
    bus(line)["a"] = 41.0
    st = run(eng, cycles=5)
    t = st["t"]
    assert t.realtime["loop"]["mode"] == "python"
    assert seen == [41.0] * 5 and t.cycles == 5
    assert t.io.writes == 1 and t["lateness"].count == 5 and t["outputs"].count == 5


def test_a_compiled_task_says_so(make_engine, bus, run) -> None:
    @program(inputs=["a"], outputs=["out1"])
    def prog(now_ns, inputs, outputs, state):  # type: ignore[no-untyped-def]
        outputs[0] = inputs[0] + 1.0

    line, eng = make_engine(TaskSpec("t", 10, program=prog), TaskSpec("acq", 10, tags=("b",)))
    st = run(eng, cycles=3)
    assert st["t"].realtime["loop"]["mode"] == "compiled"
    assert st["acq"].realtime["loop"]["mode"] == "compiled"  # no program: the same loop
    assert bus(line)["out1"] == 0.0  # the safe value, after 1.0 was written


def test_the_tick_never_holds_the_gil_while_it_runs(line_file: Path) -> None:
    """A Python thread keeps running at full speed while a 1 ms compiled task ticks."""
    from smartline.core import MonotonicClock
    from smartline.line import Line

    @program(inputs=["a"], outputs=["out1"])
    def prog(now_ns, inputs, outputs, state):  # type: ignore[no-untyped-def]
        outputs[0] = inputs[0]

    line = Line.load(line_file, clock=MonotonicClock())
    eng = Engine(line.image, [TaskSpec("t", 1, program=prog)], io=line.io,
                 realtime=RealtimeOptions(priority=None, timer_slack_ns=None,
                                          switch_interval_s=0.005, spin_ns=900_000))
    counts = {"python": 0}
    stop = threading.Event()

    def busy() -> None:
        while not stop.is_set():
            counts["python"] += 1

    def count_alone() -> int:
        counts["python"] = 0
        th = threading.Thread(target=busy)
        th.start()
        time.sleep(0.3)
        stop.set()
        th.join()
        stop.clear()
        return counts["python"]

    alone = count_alone()
    import asyncio

    async def main() -> int:
        run = asyncio.ensure_future(eng.run(duration_s=1.0))
        await asyncio.sleep(0.3)  # running: the tick spins 0.9 ms of every 1 ms
        n = await asyncio.to_thread(count_alone)
        await run
        return n

    during = asyncio.run(main())
    # a spinning tick that held the GIL would leave the Python thread almost nothing;
    # on 2 CPUs it keeps a large share (generous: shared CI machines)
    assert during > alone * 0.2, (alone, during)
    assert eng.tasks["t"].cycles > 500
