"""The cycle engine: fixed-period tasks over the process image (DESIGN §7).

A task's cycle ``k`` is due at the absolute deadline ``t_k = t0 + k·period``. Each task
runs one compiled loop (:mod:`._loop`) in its own thread, entered once and left once: it
waits for the deadline, snapshots its inputs from the image (a seqlock per device block,
never a lock the I/O thread holds), runs the program, checks and scales changed outputs
and hands them to the I/O loop through a ring and an eventfd, records its timing, applies
the overrun policy and the watchdog — without entering Python, so device I/O in the same
process cannot delay the tick.

The I/O loop (the asyncio loop that awaits :meth:`Engine.run`) does the rest:

* **acquisition** (:mod:`._acquire`) — it starts each task's reads ``io_deadline`` before
  every deadline by itself and marks a device's tags STALE at the deadline if its read has
  not landed; a 1 ms task never blocks on a 2 ms Modbus round trip;
* **outputs** (:mod:`._outputs`) — it drains the rings, writes (at most one batch per task
  in flight, the latest values), confirms, audits refusals and raises alarms;
* **faults** — a loop that stops for an overrun (``fault`` policy) or its watchdog, a
  program that raises, or a cycle that never ends (caught by the watchdog monitor from the
  loop's heartbeat) stops the line with every output driven to its ``safe`` value.

Under a :class:`~smartline.core.VirtualClock` every task runs as a discrete-event
simulation on the event loop: the same compiled cycle, one deadline at a time, with the
task's reads awaited before it and its writes after it (I/O takes no virtual time), so
runs are deterministic and faster than real time.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import os
import sys
import threading
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..core import (
    Clock,
    CycleOverrunError,
    MonotonicClock,
    Point,
    SmartlineError,
    VirtualClock,
)
from . import _loop, _rt
from ._image import ProcessImage
from ._program import ProgramError
from ._scheduler import RealtimeOptions, apply_realtime
from ._stats import Alarm, EngineStats
from ._task import Task, TaskSpec
from ._watchdog import WatchdogMonitor

if TYPE_CHECKING:
    from ..config import LineConfig
    from ._io import LineIO

__all__ = ["Engine", "Service", "Task", "TaskSpec"]

log = logging.getLogger(__name__)

_START_DELAY_NS = 5_000_000  # first deadline after start, so every thread is up in time
_SAFE_TIMEOUT_S = 5.0  # bound on driving outputs safe at stop
_YIELD_EVERY = 16  # virtual time: cycles between turns of the event loop
_THREAD_PREFIX = "smartline-task-"
_JOIN_MIN_S = 1.0  # at stop, a tick thread gets max(this, _JOIN_PERIODS periods) to end
_JOIN_PERIODS = 10


@dataclass(frozen=True, slots=True)
class Service:
    """Python work the I/O loop runs at a fixed period beside the tasks (the recipe engine,
    PackML units): ``step(now_ns)`` must never wait on a device (start writes as tasks).

    In real time it runs on the I/O loop at absolute deadlines (a late step skips the
    deadlines it missed); in virtual time it is an event of the engine's schedule, awaited
    in deadline order with the tasks, so a run is repeatable.
    """

    name: str
    period_ns: int
    step: Callable[[int], Awaitable[None]]


class Engine:
    """Runs a line's tasks over its process image.

    ``await engine.run(cycles=N)`` (or ``duration_s``) runs until then, or until
    :meth:`stop`, or until a task faults (overrun under the ``fault`` policy, watchdog, a
    program error): then every task stops, every output goes to its ``safe`` value, and
    ``run`` raises :class:`~smartline.core.CycleOverrunError` (or ``ProgramError``).
    ``cycles`` counts cycles of the fastest task.
    """

    def __init__(self, image: ProcessImage, tasks: Iterable[TaskSpec], *,
                 io: LineIO | None = None, clock: Clock | None = None,
                 realtime: RealtimeOptions | None = None, line: str = "",
                 on_alarm: Callable[[Alarm], None] | None = None,
                 on_advance: Sequence[Callable[[int], None]] = ()) -> None:
        self.image = image
        self.io = io
        self.clock: Clock = clock if clock is not None else (
            io.clock if io is not None else MonotonicClock())
        self.virtual = isinstance(self.clock, VirtualClock)
        self.now_ns: Callable[[], int] = self.clock.now_ns
        self.realtime = realtime if realtime is not None else RealtimeOptions()
        self.line = line or (io.config.name if io is not None else "")
        self.on_alarm = on_alarm
        self.on_advance = tuple(on_advance)
        self.services: list[Service] = []
        specs = list(tasks)
        names = [s.name for s in specs]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"duplicate task name(s): {', '.join(dup)}")
        #: wakes the I/O loop when a task pushed outputs (one for every task's ring)
        self.efd = _rt.make_eventfd()
        self.tasks: dict[str, Task] = {s.name: Task(s, self) for s in specs}
        self.alarms: list[Alarm] = []
        self.points: dict[str, Point] = {}  # output tag -> Point, filled by prepare()
        self._prepared = False
        self._ran = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._stopped_async: asyncio.Event | None = None
        self._safe_done: dict[str, asyncio.Future[None]] = {}
        self._loop_thread: threading.Thread | None = None
        self._started_ns = 0
        self._started_wall = 0
        self._elapsed_ns = 0
        self._cycle_budget: int | None = None
        self._reference: Task | None = None
        self._error: BaseException | None = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            os.close(self.efd)

    @classmethod
    def from_config(cls, config: LineConfig, image: ProcessImage, io: LineIO | None = None,
                    *, clock: Clock | None = None, realtime: RealtimeOptions | None = None,
                    on_alarm: Callable[[Alarm], None] | None = None,
                    on_advance: Sequence[Callable[[int], None]] = ()) -> Engine:
        """An engine for the tasks of a loaded line file (programs are imported here)."""
        specs = [TaskSpec.from_config(t) for t in config.tasks.values()]
        return cls(image, specs, io=io, clock=clock, realtime=realtime, line=config.name,
                   on_alarm=on_alarm, on_advance=on_advance)

    # -- set-up --------------------------------------------------------------------------
    def prepare(self) -> None:
        """Bind and compile every task (idempotent); ``run`` calls it if you did not."""
        if self._prepared:
            return
        _rt.warm_up()
        for t in self.tasks.values():
            others = frozenset(n for o in self.tasks.values() if o is not t for n in o.spec.tags)
            t.prepare(self.image, self.io, others)
        outs = [n for t in self.tasks.values() for n in t.output_names]
        self.points = {p.tag: p for p in self.image.points(dict.fromkeys(outs))}
        owners: dict[str, str] = {}
        for t in self.tasks.values():
            for n in t.output_names:
                if n in owners:
                    raise ProgramError(f"output {n!r} is written by tasks {owners[n]!r} and "
                                       f"{t.name!r}; an output belongs to one task")
                owners[n] = t.name
        self._prepared = True

    # -- faults --------------------------------------------------------------------------
    def alarm(self, task: Task, kind: str, message: str) -> None:
        a = Alarm(self.clock.wall_ns(), task.name, kind, message)
        self.alarms.append(a)
        log.error("task %s: %s alarm: %s", task.name, kind, message)
        if self.on_alarm is not None:
            try:
                self.on_alarm(a)
            except Exception:
                log.exception("alarm callback failed")

    def request_safe(self, task: Task) -> None:
        """Drive ``task``'s outputs safe now, from any thread (the watchdog's reaction)."""
        loop = self._loop
        if loop is None or self.io is None or loop.is_closed():
            return
        if threading.current_thread() is self._loop_thread:
            loop.create_task(self._drive_safe(task))
            return
        asyncio.run_coroutine_threadsafe(self._drive_safe(task), loop)

    def request_stop(self) -> None:
        """Stop every task at its next wake-up (thread-safe, idempotent)."""
        self._stop.set()
        for t in self.tasks.values():
            if t.cycle is not None:
                t.cycle.request_stop()
        loop, ev = self._loop, self._stopped_async
        if loop is not None and ev is not None and not loop.is_closed():
            loop.call_soon_threadsafe(ev.set)

    def stop(self) -> None:
        """Ask :meth:`run` to end: tasks stop, outputs go safe. Thread-safe."""
        self.request_stop()

    async def _drive_safe(self, task: Task) -> None:
        """On the loop: latch the task's outputs and write their safe values (once; a second
        call waits for the first)."""
        fut = self._safe_done.get(task.name)
        if fut is None:
            fut = asyncio.ensure_future(self._write_safe(task))
            self._safe_done[task.name] = fut
        await asyncio.shield(fut)

    async def _write_safe(self, task: Task) -> None:
        values = task.latch_safe()
        if not values or self.io is None:
            return
        if task.output_side is not None:  # the batch may fail or hang: safe goes anyway
            await task.output_side.wait_idle(_SAFE_TIMEOUT_S)
        try:
            await asyncio.wait_for(self.io.write(values, source=f"safe (task {task.name})"),
                                   _SAFE_TIMEOUT_S)
        except (SmartlineError, TimeoutError) as exc:
            self.alarm(task, "io", f"could not drive outputs safe: {exc}")
        else:
            log.info("task %s: outputs driven safe: %s", task.name, values)
            task.forget_outputs()

    # -- the I/O loop's side -------------------------------------------------------------
    def _on_outputs(self) -> None:
        """The eventfd is readable: drain every task's ring and start their writes."""
        _rt.drain_eventfd(self.efd)
        for t in self.tasks.values():
            side = t.output_side
            if side is not None and side.drain():
                side.pump()

    def add_service(self, name: str, period_ns: int,
                    step: Callable[[int], Awaitable[None]]) -> Service:
        """Run ``step(now_ns)`` every ``period_ns`` while the engine runs (see
        :class:`Service`); add before :meth:`run`."""
        if period_ns <= 0:
            raise ValueError("a service needs a positive period")
        if self._ran:
            raise RuntimeError("add services before the engine runs")
        service = Service(name, period_ns, step)
        self.services.append(service)
        return service

    async def _step_service(self, service: Service, now_ns: int) -> None:
        """One step; a failing service is an alarm and keeps running, the line its cycle."""
        try:
            await service.step(now_ns)
        except Exception as exc:
            log.exception("service %s failed; it keeps running", service.name)
            self.alarms.append(Alarm(self.clock.wall_ns(), "", "service",
                                     f"service {service.name}: {exc!r}"))

    async def _run_service(self, service: Service, t0: int) -> None:
        """Real time: ``service.step`` at ``t0 + k·period`` until the engine stops."""
        assert self._stopped_async is not None
        k = 0
        while not self._stopped_async.is_set():
            deadline = t0 + k * service.period_ns
            now = _rt.now_ns()
            if now < deadline:
                await asyncio.sleep((deadline - now) / 1e9)
                if self._stopped_async.is_set():
                    return
            await self._step_service(service, self.now_ns())
            k = max(k + 1, (_rt.now_ns() - t0) // service.period_ns + 1)

    # -- running -------------------------------------------------------------------------
    async def run(self, *, cycles: int | None = None,
                  duration_s: float | None = None) -> EngineStats:
        """Run the tasks; returns their statistics (see the class docstring for faults)."""
        if cycles is not None and cycles < 1:
            raise ValueError("cycles must be >= 1")
        if self._ran:
            raise RuntimeError("an engine runs once; build a new one to run again")
        self._ran = True
        await asyncio.to_thread(self.prepare)
        self._loop = loop = asyncio.get_running_loop()
        self._loop_thread = threading.current_thread()
        self._stopped_async = asyncio.Event()
        if self._stop.is_set():  # stop() came while preparing
            self.request_stop()
        tasks = list(self.tasks.values())
        self._reference = min(tasks, key=lambda t: t.period_ns) if tasks else None
        self._cycle_budget = cycles
        if self.io is not None:
            await self._prime()
        old_switch = sys.getswitchinterval()
        if not self.virtual and self.realtime.switch_interval_s is not None:
            sys.setswitchinterval(self.realtime.switch_interval_s)
        monitor = WatchdogMonitor(list(tasks), _rt.now_ns) if not self.virtual else None
        self._started_wall = self.clock.wall_ns()
        start = self.now_ns()
        self._started_ns = start
        for t in tasks:
            t.state = "running"
        threads: list[threading.Thread] = []
        acquisitions: list[asyncio.Task[None]] = []
        if not self.virtual:
            loop.add_reader(self.efd, self._on_outputs)
        try:
            if self.virtual:
                end_ns = start + round(duration_s * 1e9) if duration_s is not None else None
                await self._run_virtual(start, end_ns)
            else:
                t0 = _rt.now_ns() + _START_DELAY_NS
                for t in tasks:
                    acq = t.acquisition
                    if acq is not None and acq.reads:
                        acquisitions.append(asyncio.ensure_future(
                            acq.run(t0, _rt.now_ns, self._stopped_async)))
                threads += [threading.Thread(target=self._run_thread, args=(t, t0),
                                             daemon=True, name=_THREAD_PREFIX + t.name)
                            for t in tasks]
                acquisitions += [asyncio.ensure_future(self._run_service(s, t0))
                                 for s in self.services]
            for th in threads:
                th.start()
            if monitor is not None:
                monitor.start()
            if threads:
                try:
                    if duration_s is not None and not self.virtual:
                        await asyncio.wait_for(self._stopped_async.wait(), duration_s)
                    else:
                        await self._stopped_async.wait()
                except TimeoutError:
                    pass
        finally:
            self.request_stop()
            if monitor is not None:
                monitor.stop()
            await asyncio.shield(self._shutdown(threads, tasks, acquisitions))
            if not self.virtual:
                loop.remove_reader(self.efd)
            sys.setswitchinterval(old_switch)
        if self._error is not None:
            raise self._error
        faulted = [t for t in tasks if t.state == "faulted"]
        if faulted:
            t = faulted[0]
            if t.fault is not None and t.fault.startswith("program"):
                raise ProgramError(t.fault, task=t.name)
            raise CycleOverrunError(f"task {t.name!r} faulted: {t.fault}")
        return self.stats()

    async def _prime(self) -> None:
        """Connect, subscribe the pushed tags, and read every task's polled tags once so
        the first cycle sees values."""
        assert self.io is not None
        await self.io.connect()
        await self.io.start_push()
        acqs = [t.acquisition for t in self.tasks.values() if t.acquisition is not None]
        if acqs:  # priming reads are not counted as the tasks' own
            await asyncio.gather(*(a.read_all(count=False) for a in acqs))

    async def _shutdown(self, threads: list[threading.Thread], tasks: list[Task],
                        acquisitions: list[asyncio.Task[None]]) -> None:
        for th in threads:
            task = self.tasks[th.name.removeprefix(_THREAD_PREFIX)]
            timeout = max(_JOIN_MIN_S, _JOIN_PERIODS * task.period_ns / 1e9)
            await asyncio.to_thread(th.join, timeout)
            if th.is_alive():  # a program looping for ever: the daemon thread is left behind
                self.alarm(task, "watchdog", f"tick thread did not stop within {timeout:g} s "
                           "(the program may be looping); left running")
        for a in acquisitions:
            a.cancel()
        for a in acquisitions:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await a
        self._elapsed_ns = self.now_ns() - self._started_ns
        for t in tasks:
            if t.state == "running":
                t.state = "stopped"
        # outputs the loops pushed last, then the safe values of every task not already safe
        for t in tasks:
            side = t.output_side
            if side is not None and not side.latched:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(side.flush(), _SAFE_TIMEOUT_S)
        for t in tasks:
            if t.state != "idle":
                await self._drive_safe(t)
        # reads still in flight: let them end (they are bounded by the drivers' timeouts)
        for t in tasks:
            if t.acquisition is not None:
                await t.acquisition.wait_landed(_SAFE_TIMEOUT_S)

    def _budget_for(self, task: Task) -> int:
        """Cycles ``task`` may run (0: unlimited): the budget counts the fastest task."""
        return (self._cycle_budget or 0) if task is self._reference else 0

    def _run_thread(self, task: Task, t0: int) -> None:
        task.realtime = apply_realtime(self.realtime)
        try:
            code = task.run_thread(t0, self._budget_for(task))
            if code in (_loop.EXIT_OVERRUN, _loop.EXIT_WATCHDOG_HANG, _loop.EXIT_WATCHDOG_ROW):
                task.trip_exit(code)
            elif code == _loop.EXIT_BUDGET:
                self.request_stop()
        except Exception as exc:  # the program raised (numba propagates it): fault the line
            assert task.cycle is not None
            task.cycle.ctl[_loop.C_CYCLE_START] = 0
            task.trip_program(exc)
        except BaseException as exc:  # a bug in the engine: stop the line, report it
            log.exception("task %s: tick thread failed", task.name)
            self._error = exc
            task.state = "faulted"
            task.fault = f"internal: {exc!r}"
            self.request_stop()

    async def _run_virtual(self, start: int, end_ns: int | None) -> None:
        """Discrete-event simulation on the event loop: the earliest deadline runs next.

        A task's reads are awaited before its cycle and its writes after it (no thread
        hand-off); the loop gets a turn at least every ``_YIELD_EVERY`` cycles so signals,
        simulators and live views keep running.
        """
        clock = self.clock
        assert isinstance(clock, VirtualClock)
        due: list[Task | Service] = [*self.tasks.values(), *self.services]
        heap: list[tuple[int, int, Task | Service]] = [
            (start, i, t) for i, t in enumerate(due)]
        heapq.heapify(heap)
        n = 0
        try:
            while heap and not self._stop.is_set():
                deadline, i, task = heapq.heappop(heap)
                if end_ns is not None and deadline >= end_ns:
                    break
                clock.sleep_until_ns(deadline)
                for fn in self.on_advance:
                    fn(self.now_ns())
                if isinstance(task, Service):  # after the tasks due at the same time
                    await self._step_service(task, deadline)
                    heapq.heappush(heap, (deadline + task.period_ns, i, task))
                    continue
                if task.acquisition is not None:
                    await task.acquisition.read_all()
                nxt = task.step_virtual(deadline, clock.cell)
                if task.output_side is not None:
                    await task.output_side.flush()
                if nxt is None:
                    break
                budget = self._budget_for(task)
                if budget and task.cycles >= budget:
                    break
                heapq.heappush(heap, (nxt, i, task))
                n += 1
                if n % _YIELD_EVERY == 0:
                    await asyncio.sleep(0)
        finally:
            self.request_stop()

    def stats(self, *, hdr: bool = False) -> EngineStats:
        """Statistics of every task so far (safe to call while running, from any thread)."""
        elapsed = self._elapsed_ns or (self.now_ns() - self._started_ns if self._started_ns
                                       else 0)
        clock = ("virtual" if self.virtual else "monotonic"
                 if isinstance(self.clock, MonotonicClock) else type(self.clock).__name__)
        return EngineStats(
            line=self.line, clock=clock, started_ns=self._started_wall,
            elapsed_s=elapsed / 1e9,
            tasks={n: t.stats(hdr=hdr) for n, t in self.tasks.items()},
            alarms=tuple(self.alarms),
            devices=self.io.health() if self.io is not None else {})

    def run_blocking(self, *, cycles: int | None = None,
                     duration_s: float | None = None) -> EngineStats:
        """``asyncio.run(self.run(...))`` for scripts without an event loop."""
        return asyncio.run(self.run(cycles=cycles, duration_s=duration_s))
