"""Pushed values in the cycle: a task whose tags its device pushes issues no reads, the
values land in the image between cycles, go STALE when the link breaks and resume."""

from __future__ import annotations

import asyncio
from pathlib import Path

from smartline.core import MonotonicClock, Quality, Reason, VirtualClock
from smartline.cycle import Engine, RealtimeOptions, TaskSpec, program
from smartline.line import Line

MS = 1_000_000
NO_RT = RealtimeOptions(priority=None, timer_slack_ns=None, switch_interval_s=None)

LINE = """\
smartline: 1
line: push-test
devices:
  plc: {url: "memory://plc?push=1", retry: {backoff_initial_ms: 20, backoff_max_ms: 50}}
  poll: {url: "memory://poll"}
tags:
  a: {device: plc, address: "a"}
  n: {device: plc, address: "n:int64"}
  c: {device: poll, address: "c"}
tasks:
  t: {period_ms: 10, tags: [a, n]}
"""


def _line(tmp_path: Path, clock: object) -> Line:
    p = tmp_path / "line.yaml"
    p.write_text(LINE, encoding="utf-8")
    return Line.load(p, clock=clock)  # type: ignore[arg-type]


def test_a_task_whose_tags_are_all_pushed_issues_no_reads(tmp_path: Path) -> None:
    clock = VirtualClock(start_ns=0)
    line = _line(tmp_path, clock)
    seen: list[float] = []

    @program(inputs=["a"], jit=False)
    def watch(now_ns, inputs, outputs, state):  # type: ignore[no-untyped-def]
        seen.append(float(inputs[0]))

    bus = line.io.driver("plc").bus  # type: ignore[attr-defined]

    def device_changes(now_ns: int) -> None:  # the device's own value moves with time
        bus.set("a", now_ns / MS)
        bus.set("n", 2 ** 62 + now_ns // MS)

    eng = Engine(line.image, [TaskSpec("t", 10, tags=("a", "n"), inputs=("a",), program=watch)],
                 io=line.io, clock=clock, realtime=NO_RT, on_advance=[device_changes])
    stats = asyncio.run(eng.run(cycles=30))
    t = stats["t"]
    assert t.cycles == 30
    assert (t.io.reads, t.io.requests, t.read_requests_planned) == (0, 0, 0)
    assert t.pushed_tags == 2
    assert line.io.pushed_tags == {"plc": ("a", "n")}
    assert line.io.driver("plc").health.reads == 0
    # each cycle saw the value the device had pushed before it: never older, never torn
    assert seen[5:] == sorted(seen[5:]) and seen[-1] >= 280.0
    n = line.image.get("n")
    assert isinstance(n.value, int) and n.value >= 2 ** 62  # exact, not through float64
    assert n.quality is Quality.GOOD and n.source_ns > 0 and n.received_ns >= n.source_ns


def test_pushed_tags_go_stale_when_the_link_breaks_and_resume(tmp_path: Path) -> None:
    clock = MonotonicClock()
    line = _line(tmp_path, clock)
    bus = line.io.driver("plc").bus  # type: ignore[attr-defined]
    states: list[tuple[Quality, Reason, float | None]] = []

    async def main() -> None:
        eng = Engine(line.image, [TaskSpec("t", 10, tags=("a",))], io=line.io, clock=clock,
                     realtime=NO_RT)
        run = asyncio.ensure_future(eng.run(duration_s=1.2))
        for k in range(110):
            await asyncio.sleep(0.01)
            bus.set("a", float(k))
            if k == 30:
                bus.kick()  # the device drops every connection
            v = line.image.get("a")
            states.append((v.quality, v.reason, v.value))  # type: ignore[arg-type]
        await run

    asyncio.run(main())
    qualities = [q for q, _, _ in states]
    stale = [i for i, (q, r, _) in enumerate(states)
             if q is Quality.STALE and r is Reason.SUBSCRIPTION_LOST]
    assert stale, "the pushed tag never went STALE when the link broke"
    assert Quality.GOOD in qualities[:stale[0]], "no pushed value before the break"
    after = qualities[stale[-1] + 1:]
    assert after and all(q is Quality.GOOD for q in after), "pushes did not resume"
    assert states[-1][2] is not None and states[-1][2] >= 100.0
    health = line.io.driver("plc").health
    assert health.resubscribes >= 1 and health.reads == 0
