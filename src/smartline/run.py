"""What ``smartline run`` and ``smartline demo`` do: run a line's tasks with live statistics.

:func:`run_line` and :func:`run_demo` return the process exit code (0 success, 1 runtime
failure such as a task fault, 2 bad input such as an invalid line file or a program that
does not compile, 130 aborted by a second signal). SIGINT and SIGTERM stop the line
cleanly: every task stops and every output goes to its ``safe`` value before the function
returns; a second signal cancels whatever is still waiting. The statistics file, when
asked for, is written on every exit (after the devices are closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from .config import LineConfig
from .core import (
    Clock,
    ConfigError,
    CycleOverrunError,
    DriverNotAvailableError,
    SmartlineError,
    parse_url,
)
from .cycle import Alarm, ProgramError
from .tags import default_registry

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

    from .cycle import Engine, EngineStats, JsonlAudit
    from .hil.scenario import Expectation, ExpectResult, ExpectTracker, Scenario
    from .line import Line
    from .northbound.report import LineHistory
    from .recipes._units import UnitRuntime, Units

__all__ = ["Attach", "Hooks", "LineServices", "build_engine", "line_units", "run_demo",
           "run_engine", "run_line", "run_line_sim", "sim_device_urls", "with_device_urls"]

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2
EXIT_ABORTED = 130  # a second signal: stopped without waiting (as a shell reports SIGINT)
_REFRESH_S = 0.25
_SIM_START_S = 60.0  # a cold start compiles the plant model
UNITS_PERIOD_NS = 100_000_000  # PackML units: states derived and commands taken every 100 ms
NORTHBOUND_PERIOD_NS = 100_000_000  # the OPC UA server's look at the image
HISTORY_PERIOD_NS = 1_000_000_000  # the history recorder (KPIs, the report)

@dataclasses.dataclass(slots=True)
class Hooks:
    """What an :data:`Attach` wants awaited around the run: ``start`` after the programs are
    compiled and before the tasks run (never raising: a part that cannot start is left
    out and said), ``close`` after the engine stopped, before the devices close."""

    start: list[Callable[[], Awaitable[None]]] = dataclasses.field(default_factory=list)
    close: list[Callable[[], Awaitable[None]]] = dataclasses.field(default_factory=list)


Attach = Callable[["Line", "Engine"], "Hooks | Callable[[], Awaitable[None]] | None"]
"""Adds services to a built engine before it runs (PackML units, north-bound, the recipe
executor); returns its :class:`Hooks` (or just what to await once the engine stopped)."""

_INTERNAL_SCHEMES = frozenset({"memory"})  # devices without a wire: never simulated


def line_units(config: LineConfig) -> tuple[LineConfig, Units | None]:
    """The line with the PackTags tags of its PackML units (its ``units:`` section), and
    the units; the line unchanged and None when it has no units. ``ConfigError`` for a bad
    section."""
    if not _has_section(config, "units"):  # most lines have none: no recipe engine then
        return config, None
    from .recipes._units import load_units, with_units

    units = load_units(config)
    if not units.units:
        return config, None
    return with_units(config, units), units


def _has_section(config: LineConfig, key: str) -> bool:
    """Whether the line file has a top-level ``key:`` (cheap: most lines have none, and
    then the layers that read the section are not even imported)."""
    import re

    try:
        text = config.source.read_text(encoding="utf-8")
    except OSError:
        return False
    return re.search(rf"^{key}\s*:", text, re.MULTILINE) is not None


class LineServices:
    """What runs beside a line's tasks, as services of its engine: the PackML units'
    state machines, the north-bound publishers (Sparkplug B edge node, OPC UA server)
    and the history recorder of ``smartline report``.

    :meth:`attach` is an :data:`Attach`. A north-bound part that fails to start (a broker
    down is not a failure: it buffers) is logged and raised as an engine alarm, and the
    line keeps its cycle without it.
    """

    def __init__(self, config: LineConfig, units: Units | None, *,
                 history_path: Path | None = None, record_history: bool = False,
                 audit_path: Path | None = None) -> None:
        self.config = config
        self.units = units
        self.audit_path = audit_path
        if history_path is None and record_history:
            from .northbound.report import default_history_path

            history_path = default_history_path(config.name)
        self.history_path = history_path
        self.northbound = None
        if _has_section(config, "northbound"):
            from .northbound._config import load_northbound

            nb = load_northbound(config)  # ConfigError: the caller reports it
            self.northbound = None if nb.empty else nb
            _needs(nb.sparkplug is not None, ("aiomqtt", "google.protobuf"), "mqtt",
                   "the Sparkplug edge node (northbound.sparkplug)")
            _needs(nb.opcua is not None, ("asyncua",), "opcua",
                   "the OPC UA server (northbound.opcua)")
        self.unit_runtime: UnitRuntime | None = None
        self.parts: list[object] = []
        # opened now, before anything runs: a trail or history that cannot be written is
        # bad input (exit 2), never a traceback, and no write goes out unaudited
        self._audit: JsonlAudit | None = None
        self._history: LineHistory | None = None
        try:
            if audit_path is not None:
                from .cycle import JsonlAudit

                self._audit = JsonlAudit(audit_path)
            if history_path is not None:
                from .northbound.report import LineHistory

                self._history = LineHistory(history_path)
        except OSError as exc:
            raise SmartlineError(f"cannot open {exc.filename or audit_path}: "
                                 f"{exc.strerror or exc}") from exc

    def attach(self, line: Line, engine: Engine) -> Hooks:
        closers: list[Callable[[], Awaitable[None]]] = []
        starts: list[Callable[[], Awaitable[None]]] = []
        audit = self._audit
        if audit is not None and line.io.audit is None:
            line.io.audit = audit

            async def close_audit() -> None:
                await asyncio.to_thread(audit.close)
            closers.append(close_audit)
        if self.units is not None:
            from .recipes._units import UnitRuntime

            rt = UnitRuntime(self.units, line, clock=line.clock)
            self.unit_runtime = rt
            engine.add_service("units", UNITS_PERIOD_NS, rt.step)
            closers.append(rt.aclose)
        nb = self.northbound
        if nb is not None and nb.sparkplug is not None:
            from .northbound.sparkplug import EdgeNode

            node = _Part(EdgeNode(nb.sparkplug, line, clock=line.clock), engine,
                         "the Sparkplug edge node")
            self.parts.append(node.part)
            engine.add_service("sparkplug", round(nb.sparkplug.period_ms * 1e6), node.step)
            starts.append(node.start)
            closers.append(node.aclose)
        if nb is not None and nb.opcua is not None:
            from .northbound.opcua import LineServer

            server = _Part(LineServer(nb.opcua, line, units=self.unit_runtime,
                                      clock=line.clock), engine, "the OPC UA server")
            self.parts.append(server.part)
            engine.add_service("opcua-server", NORTHBOUND_PERIOD_NS, server.step)
            starts.append(server.start)
            closers.append(server.aclose)
        history = self._history
        if history is not None:
            from .northbound.report import HistoryRecorder

            recorder = HistoryRecorder(history, line, engine,
                                       tuple(self.units.names) if self.units else ())
            engine.add_service("history", HISTORY_PERIOD_NS, recorder.step)

            async def close_history() -> None:
                try:
                    recorder.close()
                finally:
                    history.close()
            closers.append(close_history)

        async def close() -> None:
            for fn in reversed(closers):
                try:
                    await fn()
                except Exception:  # one failing close must not keep the others open
                    log.exception("closing a service of the line failed")
        return Hooks(start=starts, close=[close])


def _needs(wanted: bool, modules: Sequence[str], extra: str, what: str) -> None:
    """``DriverNotAvailableError`` naming the extra to install, before anything runs."""
    import importlib.util

    if not wanted:
        return
    missing = [m for m in modules if importlib.util.find_spec(m.split(".")[0]) is None]
    if missing:
        raise DriverNotAvailableError(f"{what} needs {', '.join(missing)}, which is not "
                                      f"installed here: pip install 'smartline[{extra}]'")


class _Part:
    """A north-bound part as a service: started before the tasks run; one that cannot
    start (a password variable missing, a port in use) is said once, in the log and as
    an engine alarm, and left out — the line keeps its cycle without it."""

    def __init__(self, part: Any, engine: Engine, name: str) -> None:
        self.part = part
        self.engine = engine
        self.name = name
        self.running = False

    async def start(self) -> None:
        try:
            await self.part.start()
        except Exception as exc:
            log.error("%s did not start: %s; the line runs without it", self.name, exc)
            self.engine.alarms.append(Alarm(self.engine.clock.wall_ns(), "", "service",
                                            f"{self.name} did not start: {exc}"))
        else:
            self.running = True

    async def step(self, now_ns: int) -> None:
        if self.running:
            await self.part.step(now_ns)

    async def aclose(self) -> None:
        if self.running:
            await self.part.aclose()


MakeAttach = Callable[["LineConfig", "Units | None"], "Attach | None"]
"""Given the line (with its PackTags tags) and its units (or None), the :data:`Attach`
for its run (or None)."""


def default_attach(config: LineConfig, units: Units | None) -> Attach | None:
    """Plain ``smartline run``: the line's services (:class:`LineServices`)."""
    return LineServices(config, units).attach


def history_attach(history_path: Path | None, *, record: bool,
                   audit_path: Path | None = None) -> MakeAttach:
    """The line's services with its history recorded (``record``: to ``history_path``, or
    to the default ``$SMARTLINE_STATE_DIR/history-<line>.db`` when that is None) and its
    writes audited to ``audit_path``."""
    def make(config: LineConfig, units: Units | None) -> Attach | None:
        return LineServices(config, units, history_path=history_path,
                            record_history=record, audit_path=audit_path).attach
    return make


def _attached(attach: Attach | None, line: Line, engine: Engine) -> Hooks:
    done = attach(line, engine) if attach is not None else None
    if done is None:
        return Hooks()
    return done if isinstance(done, Hooks) else Hooks(close=[done])


def sim_device_urls(config: LineConfig, urls: Mapping[str, str]) -> dict[str, str]:
    """The simulator's URL for every device of the line that has a wire (devices such as
    the units' ``memory://`` PackTags device stay as they are)."""
    return {n: urls[n] for n, d in config.devices.items()
            if d.url.scheme not in _INTERNAL_SCHEMES}


def with_device_urls(config: LineConfig, urls: Mapping[str, str]) -> LineConfig:
    """The same line with some devices' URLs replaced (same scheme), e.g. a simulator's."""
    devices = dict(config.devices)
    for name, url in urls.items():
        dev = devices[name]
        new = parse_url(url)
        if new.scheme != dev.url.scheme:
            raise ValueError(f"device {name}: cannot change scheme {dev.url.scheme} to "
                             f"{new.scheme}")
        devices[name] = dataclasses.replace(dev, url=new)
    return dataclasses.replace(config, devices=MappingProxyType(devices))


def build_engine(config: LineConfig, *, clock: Clock | None = None,
                 on_advance: Sequence[Callable[[int], None]] = ()) -> tuple[Line, Engine]:
    """A :class:`~smartline.line.Line` for ``config`` and an engine for its tasks."""
    from .cycle import Engine
    from .line import Line

    line = Line(config, clock=clock)
    engine = Engine.from_config(config, line.image, line.io, clock=line.clock,
                                on_advance=on_advance)
    return line, engine


async def run_engine(engine: Engine, line: Line, *, cycles: int | None = None,
                     duration_s: float | None = None, stats_path: Path | None = None,
                     live: bool = False, console: Console | None = None,
                     extra: Callable[[], RenderableType] | None = None,
                     hooks: Hooks | None = None) -> int:
    """Run ``engine`` with signal handling and an optional live view; the exit code.
    ``hooks.start`` is awaited once the programs are compiled, ``hooks.close`` after the
    engine stopped, before the devices close."""
    hooks = hooks if hooks is not None else Hooks()
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    signals = 0

    def on_signal() -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            log.warning("stopping: tasks stop and outputs go safe (signal again to abort)")
            engine.stop()
        elif main is not None:
            main.cancel()

    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, on_signal)
            installed.append(sig)
    view: asyncio.Task[None] | None = None
    code = EXIT_OK
    try:
        await asyncio.to_thread(engine.prepare)  # compile before the live view starts
        for fn in hooks.start:
            await fn()
        if live:
            view = asyncio.create_task(_live(engine, console, extra))
        try:
            await engine.run(cycles=cycles, duration_s=duration_s)
        except CycleOverrunError as exc:
            log.error("%s", exc)
            code = EXIT_FAILURE
        except SmartlineError as exc:  # a program that raised while running
            log.error("%s", exc)
            code = EXIT_FAILURE
    finally:
        if view is not None:
            view.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await view
        for sig in installed:
            loop.remove_signal_handler(sig)
        stats = engine.stats(hdr=stats_path is not None)
        for fn in hooks.close:
            try:
                await fn()
            except Exception:  # one failing clean-up must not keep the devices open
                log.exception("clean-up after the run failed")
        try:
            await line.close()
        finally:
            if stats_path is not None:
                try:
                    stats.write_json(stats_path)
                except OSError as exc:
                    _error(f"cannot write the statistics to {stats_path}: "
                           f"{exc.strerror or exc}")
                    code = EXIT_FAILURE
                else:
                    log.info("statistics written to %s", stats_path)
            if not live:
                _summary(stats)
    return code


def run_line(path: str | os.PathLike[str], *, cycles: int | None = None,
             duration_s: float | None = None, stats_path: Path | None = None,
             live: bool = True, profile_paths: Sequence[Path] = (),
             clock: Clock | None = None, make_attach: MakeAttach = default_attach,
             extra: Callable[[], RenderableType] | None = None) -> int:
    """``smartline run LINE``: load, compile, run until done or signalled; the exit code.
    ``make_attach`` adds services (by default the line's PackML units)."""
    from .config import load_line

    try:
        config, units = line_units(load_line(path, profile_paths=profile_paths))
        line, engine = build_engine(config, clock=clock)
        hooks = _attached(make_attach(config, units), line, engine)
        _prepare_saying_so(engine)
    except (ConfigError, DriverNotAvailableError) as exc:
        _error(str(exc))
        return EXIT_BAD_INPUT
    except ProgramError as exc:  # import, binding or compile
        _error(_program_error(path, exc))
        return EXIT_BAD_INPUT
    except SmartlineError as exc:
        _error(str(exc))
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:  # Ctrl-C while compiling: nothing ran, nothing to make safe
        _error("interrupted before the line started")
        return EXIT_OK
    return _aborted_is_130(lambda: asyncio.run(run_engine(
        engine, line, cycles=cycles, duration_s=duration_s, stats_path=stats_path,
        live=live, extra=extra, hooks=hooks)))


def run_demo(*, cycles: int | None = None, stats_path: Path | None = None,
             live: bool = True, duration_s: float | None = None) -> int:
    """``smartline demo``: the heat-treatment line against its simulated furnace."""
    return _aborted_is_130(lambda: asyncio.run(_demo(
        cycles=cycles, stats_path=stats_path, live=live, duration_s=duration_s)))


def run_line_sim(path: str | os.PathLike[str], scenario_path: str | os.PathLike[str], *,
                 virtual: bool = False, cycles: int | None = None,
                 duration_s: float | None = None, stats_path: Path | None = None,
                 live: bool = False, profile_paths: Sequence[Path] = (),
                 record_path: Path | None = None, make_attach: MakeAttach = default_attach,
                 extra: Callable[[], RenderableType] | None = None,
                 judge: bool = True) -> int:
    """``smartline run LINE --sim SCENARIO``: the line against its simulated plant.

    Every device of the line is mapped, by name, to the scenario's endpoint of the same
    protocol. ``virtual``: in this process, in lock-step on a virtual clock, as fast as the CPU
    allows; else in real time with the scenario in its own process (as ``smartline demo``
    does, so the plant does not share the controller's GIL). At the end every expectation
    is printed; the exit code is 1 if one failed (2 for bad files or a device mapping that
    does not fit; ``judge=False``: printed only, as for a recipe run, whose set points
    are not the ones the scenario's expectations assume). ``record_path`` (virtual time
    only): every tag of the line, sampled each cycle, written there as a tag trace
    (:mod:`smartline.testing.traces`). ``make_attach`` adds services (by default the
    line's PackML units); internal devices (``memory://``) are not simulated."""
    from .config import load_line
    from .hil.scenario import Scenario

    try:
        config, units = line_units(load_line(path, profile_paths=profile_paths))
        scenario = Scenario.load(scenario_path)
        attach = make_attach(config, units)
    except SmartlineError as exc:
        _error(str(exc))
        return EXIT_BAD_INPUT
    problems = _sim_mapping_problems(config, scenario)
    if problems:
        for p in problems:
            _error(f"{os.fspath(path)}: {p}")
        return EXIT_BAD_INPUT
    if virtual:
        try:
            return _aborted_is_130(lambda: asyncio.run(_sim_virtual(
                path, config, scenario, cycles=cycles, duration_s=duration_s,
                stats_path=stats_path, live=live, record_path=record_path,
                attach=attach, extra=extra, judge=judge)))
        except OSError as exc:  # a port in use
            _error(f"{os.fspath(scenario_path)}: cannot start the simulated devices: {exc}")
            return EXIT_FAILURE
    return _aborted_is_130(lambda: asyncio.run(_sim_real_time(
        path, config, scenario, scenario_path, cycles=cycles, duration_s=duration_s,
        stats_path=stats_path, live=live, attach=attach, extra=extra,
        judge=judge)))


def _sim_mapping_problems(config: LineConfig, scenario: Scenario) -> list[str]:
    """Why the line's devices cannot all be served by the scenario (empty: they can)."""
    problems = []
    for name, dev in config.devices.items():
        if dev.url.scheme in _INTERNAL_SCHEMES:
            continue
        spec = scenario.devices.get(name)
        if spec is None:
            problems.append(f"device {name} is not simulated by scenario {scenario.name} "
                            f"({scenario.path}); it simulates "
                            f"{', '.join(scenario.devices) or 'no device'}")
        elif spec.protocol != dev.url.scheme:
            problems.append(f"device {name} is {dev.url.scheme} in the line, but scenario "
                            f"{scenario.name} simulates it as {spec.protocol}")
    for x in scenario.expect:
        if x.subject == "tag" and x.name not in config.tags:
            problems.append(f"scenario {scenario.name} expects tag {x.name!r}, which the line "
                            "does not have")
    return problems


def _tag_state(line: Line, x: Expectation) -> tuple[object, bool]:
    from .core import Quality

    v = line.image.get(x.name)
    return v.value, v.quality == Quality.GOOD


def _report(results: Sequence[ExpectResult], code: int, *, judge: bool = True) -> int:
    for r in results:
        print(f"expect: {r.line()}", file=sys.stderr)
    if judge and code == EXIT_OK and any(r.ok is False for r in results):
        return EXIT_FAILURE
    return code


async def _prepared(engine: Engine) -> bool:
    try:
        await asyncio.to_thread(_prepare_saying_so, engine)
    except ProgramError as exc:
        _error(str(exc))
        return False
    return True


async def _sim_virtual(path: str | os.PathLike[str], config: LineConfig, scenario: Scenario, *,
                       cycles: int | None, duration_s: float | None,
                       stats_path: Path | None, live: bool,
                       record_path: Path | None = None, attach: Attach | None = None,
                       extra: Callable[[], RenderableType] | None = None,
                       judge: bool = True) -> int:
    from .core import VirtualClock
    from .hil.scenario import ExpectTracker, ScenarioRunner
    from .testing.traces import TagTrace

    clock = VirtualClock()
    # the simulated servers share this process: their pymodbus logs would drown the line's
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    async with ScenarioRunner(scenario, clock=clock, trace=False) as runner:
        cfg = with_device_urls(config, sim_device_urls(config, runner.urls()))
        tags = ExpectTracker(runner.tag_expectations())
        holder: list[Line] = []
        rec = (TagTrace(sorted(config.tags), line=config.name, scenario=scenario.name,
                        seed=scenario.seed) if record_path is not None else None)
        origin: list[int] = []

        def advance(now_ns: int) -> None:
            runner.advance_to(now_ns)
            if tags.items and holder:
                tags.update(runner.time_ns, lambda x: _tag_state(holder[0], x))
            if rec is not None and holder:
                if not origin:
                    origin.append(now_ns)
                rec.sample(now_ns - origin[0], holder[0].image.get)

        try:
            line, engine = build_engine(cfg, clock=clock, on_advance=[advance])
        except (ConfigError, DriverNotAvailableError) as exc:
            _error(str(exc))
            return EXIT_BAD_INPUT
        holder.append(line)
        hooks = _attached(attach, line, engine)
        if not await _prepared(engine):
            await line.close()
            return EXIT_BAD_INPUT
        code = await run_engine(engine, line, cycles=cycles, duration_s=duration_s,
                                stats_path=stats_path, live=live, extra=extra,
                                hooks=hooks)
        results = [*runner.results(), *tags.results(runner.time_ns)]
        if rec is not None and record_path is not None:
            rec.close(clock.now_ns() - (origin[0] if origin else 0))
            try:
                rec.write(record_path)
            except OSError as exc:
                _error(f"cannot write the tag trace to {record_path}: "
                       f"{exc.strerror or exc}")
                code = EXIT_FAILURE
            else:
                _error(f"smartline: tag trace ({len(rec.records)} changes) written to "
                       f"{record_path}")
    _error(f"smartline: scenario {scenario.name}: {runner.time_ns / 1e9:g} s of plant time "
           "(virtual)")
    return _report(sorted(results, key=lambda r: r.expectation.index), code, judge=judge)


async def _sim_real_time(path: str | os.PathLike[str], config: LineConfig, scenario: Scenario,
                         scenario_path: str | os.PathLike[str], *, cycles: int | None,
                         duration_s: float | None, stats_path: Path | None,
                         live: bool, attach: Attach | None = None,
                         extra: Callable[[], RenderableType] | None = None,
                         judge: bool = True) -> int:
    import json

    from .hil.scenario import ExpectTracker

    sim = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "smartline.hil.scenario", os.fspath(scenario_path), "--stdin",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        start_new_session=True)
    tags = ExpectTracker(
        [x for x in scenario.expect if x.subject == "tag"])
    sampler: asyncio.Task[None] | None = None
    code = EXIT_FAILURE
    plant: list[ExpectResult] = []
    try:
        assert sim.stdout is not None
        urls: dict[str, str] = {}
        try:
            for _ in scenario.devices:
                raw = await asyncio.wait_for(sim.stdout.readline(), _SIM_START_S)
                if not raw:
                    _error(f"the scenario simulator exited (code {await sim.wait()})")
                    return EXIT_FAILURE
                item = json.loads(raw)
                urls[str(item["device"])] = str(item["url"])
        except TimeoutError:
            _error(f"the scenario simulator did not start within {_SIM_START_S:g} s")
            return EXIT_FAILURE
        cfg = with_device_urls(config, sim_device_urls(config, urls))
        try:
            line, engine = build_engine(cfg)
        except (ConfigError, DriverNotAvailableError) as exc:
            _error(str(exc))
            return EXIT_BAD_INPUT
        hooks = _attached(attach, line, engine)
        if not await _prepared(engine):
            await line.close()
            return EXIT_BAD_INPUT
        if tags.items:
            sampler = asyncio.create_task(_sample_tags(tags, line, scenario.step_ns))
        code = await run_engine(engine, line, cycles=cycles, duration_s=duration_s,
                                stats_path=stats_path, live=live, console=_console(),
                                extra=extra, hooks=hooks)
    finally:
        if sampler is not None:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
        if sim.stdin is not None and sim.returncode is None:
            sim.stdin.close()  # the simulator stops, then prints its expectations
        plant = await _sim_results(sim, scenario)
        await _stop_sim(sim)
    return _report(sorted([*plant, *tags.results()], key=lambda r: r.expectation.index),
                   code, judge=judge)


async def _sample_tags(tags: ExpectTracker, line: Line, step_ns: int) -> None:
    import time

    start = time.monotonic_ns()
    while True:
        tags.update(time.monotonic_ns() - start, lambda x: _tag_state(line, x))
        await asyncio.sleep(step_ns / 1e9)


async def _sim_results(proc: asyncio.subprocess.Process, scenario: Scenario
                       ) -> list[ExpectResult]:
    """The expectation lines the simulator prints as it stops."""
    import json

    from .hil.scenario import ExpectResult

    out: list[ExpectResult] = []
    if proc.stdout is None:
        return out
    by_index = {x.index: x for x in scenario.expect}
    try:
        while True:
            raw = await asyncio.wait_for(proc.stdout.readline(), 10.0)
            if not raw:
                break
            item = json.loads(raw)
            x = by_index.get(item.get("index"))
            if x is not None:
                out.append(ExpectResult(x, item.get("ok"), item.get("at_s"),
                                        str(item.get("detail", ""))))
    except (TimeoutError, ValueError):
        pass
    return out


def _aborted_is_130(main: Callable[[], int]) -> int:
    """``main()``, with a second signal (the run cancelled) or Ctrl-C reported as aborted."""
    try:
        return main()
    except (asyncio.CancelledError, KeyboardInterrupt):
        _error("aborted")
        return EXIT_ABORTED


def _program_error(path: str | os.PathLike[str], exc: ProgramError) -> str:
    """A program error, prefixed with where the line file names the program."""
    where = f"tasks.{exc.task}.program: " if exc.task is not None else ""
    return f"{os.fspath(path)}: {where}{exc}"


async def _demo(*, cycles: int | None, stats_path: Path | None, live: bool,
                duration_s: float | None) -> int:
    from .config import load_line
    from .demo import demo_line_path, demo_scenario_path

    try:
        config = load_line(demo_line_path())
    except ConfigError as exc:
        _error(str(exc))
        return EXIT_BAD_INPUT
    try:  # the drivers (and the simulator) need the modbus extra: say so before starting
        registry = default_registry()
        for dev in config.devices.values():
            registry.load(dev.scheme.name)
    except DriverNotAvailableError as exc:
        _error(f"cannot run the demo: {exc}")
        return EXIT_BAD_INPUT
    # the simulated furnace (a HIL scenario) runs in its own process, as a real one would
    # not share our CPU; it prints one {"device", "url"} line per device once it serves
    sim = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "smartline.hil.scenario", os.fspath(demo_scenario_path()),
        "--stdin", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        start_new_session=True)
    try:
        try:
            urls = await _await_sim(sim, len(config.devices))
            missing = sorted(set(config.devices) - set(urls))
            if missing:
                _error(f"the demo scenario does not simulate {', '.join(missing)}")
                return EXIT_FAILURE
            line, engine = build_engine(with_device_urls(config, urls))
            await asyncio.to_thread(_prepare_saying_so, engine)
        except TimeoutError:
            _error(f"the demo simulator did not start within {_SIM_START_S:g} s")
            return EXIT_FAILURE
        except ProgramError as exc:
            _error(_program_error(demo_line_path(), exc))
            return EXIT_BAD_INPUT
        except (ConfigError, DriverNotAvailableError) as exc:
            _error(str(exc))
            return EXIT_BAD_INPUT
        except SmartlineError as exc:  # the simulator exited
            _error(str(exc))
            return EXIT_FAILURE
        log.info("demo: simulated furnace (%s) serving; running %s", demo_scenario_path().name,
                 f"{cycles} cycles" if cycles else "until Ctrl-C")
        console = _console()
        return await run_engine(engine, line, cycles=cycles, duration_s=duration_s,
                                stats_path=stats_path, live=live, console=console,
                                extra=lambda: _zone_table(line))
    finally:
        await _stop_sim(sim)


async def _await_sim(proc: asyncio.subprocess.Process, devices: int) -> dict[str, str]:
    """Wait until the simulator printed its ``devices`` endpoints (it serves then); their
    URLs by device name."""
    import json

    assert proc.stdout is not None
    urls: dict[str, str] = {}
    for _ in range(devices):
        line = await asyncio.wait_for(proc.stdout.readline(), _SIM_START_S)
        if not line:
            raise SmartlineError(f"the demo simulator exited (code {await proc.wait()})")
        item = json.loads(line)
        urls[str(item["device"])] = str(item["url"])
    return urls


async def _stop_sim(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is not None:
        return
    if proc.stdin is not None:
        proc.stdin.close()  # the simulator exits at end of input
    try:
        await asyncio.wait_for(proc.wait(), 5.0)
    except TimeoutError:
        proc.kill()
        await proc.wait()


# -- presentation -------------------------------------------------------------------------

def _console() -> Console:
    from rich.console import Console

    return Console()


def _error(message: str) -> None:
    print(message, file=sys.stderr)


def _prepare_saying_so(engine: Engine) -> None:
    """Bind and compile the tasks, saying on stderr what is compiled and how long it took
    (a task's cycle loop is compiled once per program, then loaded from numba's cache)."""
    import time

    _error(f"smartline: preparing {len(engine.tasks)} task(s): compiling their cycle loops "
           "(or loading them from the cache)")
    t0 = time.perf_counter()
    engine.prepare()
    for name, task in engine.tasks.items():
        cycle = task.cycle
        if cycle is None:
            continue
        how = ("shared with another task" if cycle.reused else
               "loaded from the cache" if cycle.cache_hit else "compiled")
        _error(f"smartline: task {name}: cycle loop {how} in {cycle.compile_s:.2f} s "
               f"({task.mode})")
    _error(f"smartline: ready in {time.perf_counter() - t0:.2f} s")


def _us(ns: int) -> str:
    if ns >= 10_000_000:
        return f"{ns / 1e6:.1f} ms"
    if ns >= 1_000_000:
        return f"{ns / 1e6:.2f} ms"
    return f"{ns / 1e3:.0f} µs"


def render_stats(stats: EngineStats) -> RenderableType:
    """The statistics as a rich renderable: tasks, then devices, then alarms (times in µs)."""
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    t = Table(title=f"line {stats.line} · {stats.elapsed_s:.1f} s · {stats.clock} clock",
              title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    t.add_column("task\nperiod", no_wrap=True)
    t.add_column("state", no_wrap=True)
    for col in ("cycles", "overruns\nskipped", "cycle µs\np50/p99/max",
                "lateness µs\np50/p99/max", "p99 µs in/\nlogic/out"):
        t.add_column(col, justify="right", no_wrap=True)
    for name, ts in stats.tasks.items():
        c, lat = ts.timing["cycle"], ts.timing["lateness"]
        state = "watchdog" if ts.watchdog_tripped else ts.state
        mode = ts.realtime.get("loop", {})
        shown = mode.get("mode", "") if isinstance(mode, dict) else ""
        t.add_row(f"{name}\n{ts.period_ns / 1e6:g} ms {shown}",
                  Text(state, style="bold red" if ts.state == "faulted" else ""),
                  str(ts.cycles), f"{ts.overruns}/{ts.skipped}",
                  _triple(c.p50_ns, c.p99_ns, c.max_ns), _triple(lat.p50_ns, lat.p99_ns,
                                                                  lat.max_ns),
                  _triple(*(ts.timing[p].p99_ns for p in ("inputs", "logic", "outputs"))))
    parts: list[RenderableType] = [t]
    if stats.devices:
        d = Table(title="devices", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
        for col in ("device", "connected", "reads", "req/cycle", "failures", "last error"):
            d.add_column(col)
        for name, h in stats.devices.items():
            state = ("demoted" if h.get("demoted") else
                     "yes" if h.get("connected") else "no")
            d.add_row(name, state, str(h.get("reads", "")),
                      str(h.get("requests_per_cycle", "")), str(h.get("failures", "")),
                      str(h.get("last_error", ""))[:40])
        parts.append(d)
    for a in list(stats.alarms)[-5:]:
        parts.append(Text(f"ALARM {a.task} {a.kind}: {a.message}", style="bold red"))
    return Group(*parts)


def _triple(a: int, b: int, c: int) -> str:
    return "/".join(f"{x / 1e3:.0f}" for x in (a, b, c))


def _zone_table(line: Line) -> RenderableType:
    from rich import box
    from rich.table import Table

    t = Table(title="furnace", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("zone", "temperature", "set point", "heater"):
        t.add_column(col, justify="right")
    for i in range(1, 4):
        pv = line.image.get(f"zone{i}.pv").value
        sp = line.image.get(f"zone{i}.sp").value
        out = line.image.get(f"heater{i}").value
        t.add_row(f"zone {i}", _num(pv, "°C"), _num(sp, "°C"), _num(out, "%"))
    return t


def _num(v: object, unit: str) -> str:
    return f"{v:.1f} {unit}" if isinstance(v, int | float) else "—"


async def _live(engine: Engine, console: Console | None,
                extra: Callable[[], RenderableType] | None) -> None:
    from rich.console import Group
    from rich.live import Live

    def frame() -> RenderableType:
        parts: list[RenderableType] = []
        if extra is not None:
            parts.append(extra())
        parts.append(render_stats(engine.stats()))
        return Group(*parts)

    with Live(frame(), console=console, auto_refresh=False, transient=False) as view:
        try:
            while True:
                await asyncio.sleep(_REFRESH_S)
                view.update(frame(), refresh=True)
        finally:  # leave the final figures on screen
            view.update(frame(), refresh=True)


def _summary(stats: EngineStats) -> None:
    """One line per task (and per alarm) on stderr at exit."""
    for name, ts in stats.tasks.items():
        c, lat = ts.timing["cycle"], ts.timing["lateness"]
        print(f"task {name}: {ts.state}, {ts.cycles} cycles, {ts.overruns} overruns, "
              f"{ts.skipped} skipped; cycle p50 {_us(c.p50_ns)} p99 {_us(c.p99_ns)} max "
              f"{_us(c.max_ns)}; lateness p99 {_us(lat.p99_ns)} max {_us(lat.max_ns)}",
              file=sys.stderr)
    for a in stats.alarms:
        print(f"alarm: task {a.task}: {a.kind}: {a.message}", file=sys.stderr)
