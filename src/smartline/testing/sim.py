"""A scenario, or a line against a scenario, driven from synchronous test code.

The simulated devices, the drivers and the cycle engine live on an asyncio loop in a
thread of their own (:class:`LoopThread`), so a plain ``def test_...`` drives them and an
``async def`` test does not share (or block) their loop.

:class:`SimLine` runs a line in virtual time, lock-step with its scenario: the engine's
``on_advance`` hook steps the plant, follows the tag expectations, samples the trace
recorders, and *pauses* the line (the loop thread waits) when the requested plant time is
reached. Between :meth:`SimLine.run_for` calls line and plant are frozen, so the test reads
the image and the statistics at a well-defined time.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import threading
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from ..cycle import Engine, EngineStats, TagValue
    from ..hil.scenario import ExpectResult, ExpectTracker, Scenario, ScenarioRunner
    from ..line import Line
    from .traces import TagTrace

__all__ = ["ExpectationsFailedError", "LoopThread", "SimLine", "expectations_report",
           "start_scenario"]

T = TypeVar("T")
log = logging.getLogger(__name__)

_CALL_TIMEOUT_S = 120.0  # a cold start compiles the plant model and the cycle loops


class ExpectationsFailedError(AssertionError):
    """A scenario expectation failed; the message lists every expectation."""


class LoopThread:
    """An asyncio event loop running in a daemon thread; :meth:`call` runs a coroutine on it."""

    def __init__(self, name: str = "smartline-sim") -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._main, name=name, daemon=True)
        self.thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call(self, coro: Coroutine[Any, Any, T], timeout_s: float | None = _CALL_TIMEOUT_S) -> T:
        """Run ``coro`` on the loop and wait for its result (its exception is raised here)."""
        return self.submit(coro).result(timeout_s)

    def close(self) -> None:
        """Stop the loop and join the thread."""
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10.0)
        if not self.thread.is_alive():
            self.loop.close()


def start_scenario(path: str | os.PathLike[str] | Scenario, *, virtual: bool = True,
                   trace: bool = True) -> tuple[ScenarioRunner, LoopThread]:
    """Start a scenario's devices in a loop thread; the runner and the thread.

    Virtual time: the plant moves only when told (``runner.run_for(ns)``/``advance_to``);
    real time: it steps on its own. Stop with :func:`stop_scenario`.
    """
    from ..core import VirtualClock
    from ..hil.scenario import Scenario, ScenarioRunner

    scenario = path if isinstance(path, Scenario) else Scenario.load(path)
    lt = LoopThread(f"smartline-scenario-{scenario.name}")
    try:
        async def go() -> ScenarioRunner:
            r = ScenarioRunner(scenario, clock=VirtualClock() if virtual else None,
                               trace=trace)
            await r.start()
            return r
        runner = lt.call(go())
    except BaseException:
        lt.close()
        raise
    return runner, lt


def stop_scenario(runner: ScenarioRunner, lt: LoopThread) -> None:
    """Stop every device of the runner (ports free afterwards) and the loop thread."""
    try:
        lt.call(runner.stop(), 30.0)
    finally:
        lt.close()


@dataclass(frozen=True, slots=True)
class ExpectationState:
    """An expectation's result and whether it is decided (its window closed in the run)."""

    result: ExpectResult
    decided: bool


def expectations_report(results: Sequence[ExpectResult], end_ns: int) -> tuple[str, bool]:
    """The expectations as lines (PASS / FAIL / PENDING), and whether one decided failed.

    PENDING: the run ended before the expectation's window closed (``within 120s`` after a
    10 s run), so it neither passed nor failed yet.
    """
    lines, failed = [], False
    for r in results:
        x = r.expectation
        pending = r.ok is False and (end_ns < x.start_ns or (
            x.end_ns is not None and end_ns < x.end_ns and x.check != "stays"))
        if pending:
            lines.append(f"PENDING {x.describe()}: {r.detail}")
        elif r.ok is False:
            failed = True
            lines.append(r.line())
        else:
            lines.append(r.line())
    return "\n".join(lines), failed


class SimLine:
    """A line run against a scenario in virtual time, lock-step; drive it with :meth:`run_for`.

    Attributes once started: :attr:`line`, :attr:`engine`, :attr:`runner`, :attr:`config`,
    :attr:`scenario`. ``tags[name]`` is a tag's value now; :meth:`tag` its full
    :class:`~smartline.cycle.TagValue`; :meth:`stats` the engine's statistics.
    """

    def __init__(self, line_path: str | os.PathLike[str], scenario: str | os.PathLike[str], *,
                 profile_paths: Sequence[Path] = (), urls: Mapping[str, str] | None = None,
                 trace: bool = False) -> None:
        from ..config import load_line
        from ..hil.scenario import Scenario

        self.path = Path(line_path)
        self.config = load_line(line_path, profile_paths=profile_paths)
        self.scenario: Scenario = Scenario.load(scenario)
        self._extra_urls = dict(urls or {})
        self._trace = trace
        #: the pytest plugin checks the expectations after the test unless this is False
        self.check_expectations = True
        self.recorders: list[TagTrace] = []
        self._cv = threading.Condition()
        self._target_ns = 0
        self._paused_at: int | None = None
        self._origin_ns: int | None = None
        self._stopping = False
        self._lt: LoopThread | None = None
        self._run: concurrent.futures.Future[Any] | None = None
        self._tags: ExpectTracker | None = None
        self.runner: ScenarioRunner
        self.line: Line
        self.engine: Engine
        self.tags = _TagView(self)

    # -- life ------------------------------------------------------------------------------
    def start(self) -> SimLine:
        """Start the scenario's devices and the line; return at plant time 0, paused."""
        problems = _mapping_problems(self)
        if problems:
            from ..core import ConfigError, ConfigIssue
            raise ConfigError([ConfigIssue(str(self.path), "devices", p) for p in problems])
        self._lt = LoopThread(f"smartline-line-{self.config.name}")
        try:
            self._lt.call(self._start())
            self._run = self._lt.submit(self._drive())
            self._run.add_done_callback(lambda _f: self._wake())
            self._wait_paused()
        except BaseException:
            self.stop()
            raise
        return self

    async def _start(self) -> None:
        from ..core import VirtualClock
        from ..hil.scenario import ExpectTracker, ScenarioRunner
        from ..run import build_engine, with_device_urls

        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
        clock = VirtualClock()
        self.runner = ScenarioRunner(self.scenario, clock=clock, trace=self._trace)
        await self.runner.start()
        urls = {**self.runner.urls(), **self._extra_urls}
        cfg = with_device_urls(self.config, {n: urls[n] for n in self.config.devices
                                             if n in urls})
        self._tags = ExpectTracker(self.runner.tag_expectations())
        self.line, self.engine = build_engine(cfg, clock=clock, on_advance=[self._advance])
        try:
            await asyncio.to_thread(self.engine.prepare)
        except BaseException:
            await self.line.close()
            raise

    async def _drive(self) -> None:
        try:
            await self.engine.run()
        finally:
            await self.line.close()

    def stop(self) -> None:
        """Stop the line (outputs go safe), the devices and the loop thread; idempotent."""
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        lt, self._lt = self._lt, None
        if lt is None:
            return
        try:
            if self._run is not None:
                self.engine.stop()
                with contextlib.suppress(Exception):
                    self._run.result(30.0)
            if hasattr(self, "runner"):
                with contextlib.suppress(Exception):
                    lt.call(self.runner.stop(), 30.0)
        finally:
            lt.close()
        for rec in self.recorders:
            if rec.end_ns is None:
                rec.close(self.time_ns)

    def __enter__(self) -> SimLine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- time ------------------------------------------------------------------------------
    def _advance(self, now_ns: int) -> None:
        """The engine's ``on_advance`` (on the loop thread): step, track, record, pause."""
        if self._origin_ns is None:
            self._origin_ns = now_ns
        t = now_ns - self._origin_ns
        with self._cv:
            if self._stopping:
                return
        self.runner.advance_to(now_ns)
        if self._tags is not None and self._tags.items:
            self._tags.update(self.runner.time_ns, self._expect_read)
        for rec in self.recorders:
            rec.sample(t, self.line.image.get)
        with self._cv:
            if t < self._target_ns or self._stopping:
                return
            self._paused_at = t
            self._cv.notify_all()
            while not self._stopping and t >= self._target_ns:
                self._cv.wait()
            self._paused_at = None

    def _expect_read(self, x: Any) -> tuple[object, bool]:
        from ..core import Quality

        v = self.line.image.get(x.name)
        return v.value, v.quality == Quality.GOOD

    def _wake(self) -> None:
        with self._cv:
            self._cv.notify_all()

    def _wait_paused(self, timeout_s: float | None = None) -> None:
        with self._cv:
            while True:
                if self._paused_at is not None and self._paused_at >= self._target_ns:
                    return
                run = self._run
                if run is not None and run.done():
                    break
                if not self._cv.wait(timeout_s if timeout_s is not None else 1.0) and \
                        timeout_s is not None:
                    raise TimeoutError(f"line {self.config.name} did not reach "
                                       f"{self._target_ns / 1e9:g} s of plant time within "
                                       f"{timeout_s:g} s")
        assert self._run is not None
        exc = self._run.exception()
        if exc is not None:
            raise exc
        raise RuntimeError(f"line {self.config.name} stopped at {self.time_s:g} s")

    def run_for(self, seconds: float, *, timeout_s: float | None = None) -> SimLine:
        """Run line and plant for ``seconds`` more of plant time (every cycle due before then).

        A task fault (overrun, watchdog, program error) raises here. ``timeout_s``: wall
        time allowed (default: none).
        """
        if self._lt is None:
            raise RuntimeError("the line is not running (start() it, or it was stopped)")
        if seconds < 0:
            raise ValueError("seconds must be >= 0")
        with self._cv:
            self._target_ns += round(seconds * 1e9)
            self._cv.notify_all()
        self._wait_paused(timeout_s)
        return self

    def run_until(self, seconds: float, *, timeout_s: float | None = None) -> SimLine:
        """Run until ``seconds`` of plant time since the start."""
        return self.run_for(max(0.0, seconds - self._target_ns / 1e9), timeout_s=timeout_s)

    @property
    def time_ns(self) -> int:
        """Time since the line started (virtual): where it is paused now."""
        return self._paused_at if self._paused_at is not None else self._target_ns

    @property
    def time_s(self) -> float:
        return self.time_ns / 1e9

    # -- what the test reads ---------------------------------------------------------------
    def tag(self, name: str) -> TagValue:
        """The tag's value, quality, reason and timestamps now."""
        return self.line.image.get(name)

    def stats(self) -> EngineStats:
        """The engine's statistics so far (cycle-time figures are 0 in virtual time)."""
        return self.engine.stats()

    def results(self) -> list[ExpectResult]:
        """Every expectation of the scenario (plant and tags) as of now, in file order."""
        tags = self._tags.results(self.runner.time_ns) if self._tags is not None else []
        return sorted([*self.runner.results(), *tags], key=lambda r: r.expectation.index)

    def expectations_report(self) -> tuple[str, bool]:
        """:func:`expectations_report` of :meth:`results` at the plant time reached."""
        return expectations_report(self.results(), self.runner.time_ns)

    def assert_expectations(self) -> None:
        """Fail if an expectation whose window closed failed; the message lists them all."""
        __tracebackhide__ = True
        text, failed = self.expectations_report()
        if failed:
            raise ExpectationsFailedError(
                f"scenario {self.scenario.name}: expectation failed at {self.time_s:g} s of "
                f"plant time:\n{text}")

    def record(self, tags: Sequence[str] | None = None) -> TagTrace:
        """A recorder of ``tags`` (default: every tag of the line), sampled every cycle from
        now on; the header names the line, the scenario and its seed."""
        from .traces import TagTrace

        names = list(tags) if tags is not None else sorted(self.config.tags)
        unknown = [n for n in names if n not in self.config.tags]
        if unknown:
            raise KeyError(f"line {self.config.name} has no tag(s) {', '.join(unknown)}")
        rec = TagTrace(names, line=self.config.name, scenario=self.scenario.name,
                       seed=self.scenario.seed, clock="virtual")
        if self._lt is not None and self._paused_at is not None:
            rec.sample(self._paused_at, self.line.image.get)
        self.recorders.append(rec)
        return rec


class _TagView(Mapping[str, Any]):
    """``sim.tags[name]``: the tag's value now (None while BAD)."""

    def __init__(self, sim: SimLine) -> None:
        self._sim = sim

    def __getitem__(self, name: str) -> Any:
        if name not in self._sim.config.tags:
            raise KeyError(name)
        return self._sim.line.image.get(name).value

    def __iter__(self) -> Any:
        return iter(self._sim.config.tags)

    def __len__(self) -> int:
        return len(self._sim.config.tags)


def _mapping_problems(sim: SimLine) -> list[str]:
    """Why the line's devices cannot all be served by the scenario (empty: they can)."""
    out = []
    for name, dev in sim.config.devices.items():
        if name in sim._extra_urls:
            continue
        spec = sim.scenario.devices.get(name)
        if spec is None:
            out.append(f"device {name} is not simulated by scenario {sim.scenario.name}")
        elif spec.protocol != dev.url.scheme:
            out.append(f"device {name} is {dev.url.scheme} in the line, but scenario "
                       f"{sim.scenario.name} simulates it as {spec.protocol}")
    return out
