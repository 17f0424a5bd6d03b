"""Running a scenario: the plant's block banks, its devices, the timeline and the expectations.

:class:`ScenarioRunner` starts every device of a :class:`~._files.Scenario` on 127.0.0.1,
builds the plant (one :class:`~smartline.hil.blocks.BlockBank` per block type, one instance
per block), applies the initial state and then steps the plant in whole steps of
``time.step_ms``. Each step, at plant time ``t``:

1. timeline entries due at ``t`` (and fault ends) are applied, in file order;
2. device points the controller writes are read into the block inputs they are wired to
   (de-energised to 0/false during a power loss), then links copy block outputs to inputs;
3. every bank steps once (types in name order, so the order never depends on the file);
4. block outputs are written to the device points wired to them;
5. expectations are updated at ``t + step`` and changed values go to the trace.

In real time a task steps the plant against the monotonic clock; in virtual time the cycle
engine calls :meth:`ScenarioRunner.advance_to` from its ``on_advance`` hook, so the plant runs
in lock-step with the line. The same scenario and seed give the same trace byte for byte.

In lock-step the points the controller writes change only between two :meth:`advance_to`
calls (the line writes while the plant waits) or when the runner itself changes a device
(a timeline entry, a power loss, an output published to a point that is also wired as an
input): step 2 reads them from the devices only then and feeds the cached values otherwise
(real time reads them every step, as the line writes at any moment).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import io
import logging
import math
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np

from ...core import Clock, MonotonicClock, VirtualClock
from ..blocks import BlockBank, make_bank
from ._endpoints import Endpoint, make_endpoint
from ._files import Expectation, PlantSpec, Scenario, TimelineEvent

__all__ = ["ExpectResult", "ExpectTracker", "PlantModel", "ScenarioRunner"]

log = logging.getLogger(__name__)


class PlantModel:
    """The blocks of a plant as banks (one per type), with links, stepped together."""

    def __init__(self, spec: PlantSpec, *, seed: int = 0,
                 params: Mapping[tuple[str, str], float] | None = None) -> None:
        self.spec = spec
        self.banks: dict[str, BlockBank] = {}
        self.where: dict[str, tuple[BlockBank, int]] = {}
        by_type: dict[str, list[str]] = {}
        for name, b in spec.blocks.items():
            by_type.setdefault(b.type.name, []).append(name)
        extra = dict(params or {})
        for type_name in sorted(by_type):
            names = by_type[type_name]
            btype = spec.blocks[names[0]].type
            given: dict[str, Any] = {}
            for size in btype.sizes:
                values = {spec.blocks[n].params[size] for n in names
                          if size in spec.blocks[n].params}
                if values:
                    given[size] = max(values)  # one ring size per bank: the largest asked
            for pname, p in btype.params.items():
                col = [extra.get((n, pname), spec.blocks[n].params.get(pname, p.default))
                       for n in names]
                if any(v != p.default for v in col):
                    given[pname] = np.asarray(col, np.float64)
            # a seed per type that does not depend on the other types in the plant
            bank_seed = (seed * 1_000_003 + zlib.crc32(type_name.encode())) & (2**63 - 1)
            bank = make_bank(type_name, len(names), given, seed=bank_seed)
            self.banks[type_name] = bank
            for i, n in enumerate(names):
                self.where[n] = (bank, i)
        self.links = [(self.where[ln.src_block], ln.src_output, self.where[ln.dst_block],
                       ln.dst_input, ln.gain, ln.offset) for ln in spec.links]
        # each link as arrays and indices, looked up once (views live as long as the bank)
        self._link_views = [
            (sb.true_output(out), si, db.input(inp), di, gain, offset,
             db.type.inputs[inp].kind == "bool")
            for (sb, si), out, (db, di), inp, gain, offset in self.links]
        self.time_s = 0.0

    def warm_up(self) -> None:
        """Compile (or load from numba's cache) every kernel now."""
        for bank in self.banks.values():
            bank.warm_up()

    def output(self, block: str, name: str) -> Any:
        """A block output as the devices see it (after sensor faults)."""
        bank, i = self.where[block]
        return bank.output(name)[i].item()

    def set_input(self, block: str, name: str, value: Any) -> None:
        bank, i = self.where[block]
        kind = bank.type.inputs[name].kind
        if kind == "bool":
            bank.set_input(name, i, bool(value))
        else:
            v = float(value)
            bank.set_input(name, i, v if math.isfinite(v) else math.nan)

    def set_value(self, block: str, name: str, value: Any) -> None:
        """Write a parameter, input or state of ``block`` (initial values, ``set`` entries)."""
        bank, i = self.where[block]
        if name in bank.type.params:
            bank.set_param(name, i, float(value))
        elif name in bank.type.inputs:
            self.set_input(block, name, value)
        else:
            kind = bank.type.states[name].kind
            bank.set_state(name, i, bool(value) if kind == "bool" else
                           int(value) if kind == "int" else float(value))

    def event(self, block: str, name: str, **args: Any) -> None:
        bank, i = self.where[block]
        bank.event(name, i, **args)

    def step(self, dt_s: float) -> None:
        """Links, then one step of every bank."""
        for src, si, dst, di, gain, offset, is_bool in self._link_views:
            v = float(src.item(si)) * gain + offset
            dst[di] = v >= 0.5 if is_bool else v
        for bank in self.banks.values():
            bank.step(dt_s)
        self.time_s += dt_s

    def snapshot_bytes(self) -> bytes:
        """Every bank's arrays, in type order (for byte-for-byte comparisons)."""
        return b"".join(self.banks[t].snapshot().tobytes() for t in sorted(self.banks))


@dataclass(frozen=True, slots=True)
class ExpectResult:
    """The outcome of one expectation: passed or not, when, and in words."""

    expectation: Expectation
    ok: bool | None  # None: not evaluated (a tag expectation without a line)
    at_s: float | None
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"expect": self.expectation.describe(), "index": self.expectation.index,
                "ok": self.ok, "at_s": self.at_s, "detail": self.detail}

    def line(self) -> str:
        status = {True: "PASS", False: "FAIL", None: "SKIP"}[self.ok]
        return f"{status} {self.expectation.describe()}: {self.detail}"


class ExpectTracker:
    """Follows expectations over time; ``read(exp)`` gives the value now, or for a tag
    ``(value, good)``."""

    def __init__(self, items: tuple[Expectation, ...] | list[Expectation]) -> None:
        self.items = list(items)
        self._first: dict[int, tuple[int, Any]] = {}  # reached / violated: (t_ns, value)
        self._last_ns = 0
        self._idle_until_ns = -1  # before this time no expectation is open: update skips

    def update(self, t_ns: int, read: Callable[[Expectation], Any]) -> None:
        """Check every expectation open at ``t_ns`` (a window that contains it, not decided
        yet) against ``read``; while none is open this costs one comparison."""
        self._last_ns = t_ns
        if t_ns < self._idle_until_ns:
            return
        opened = False
        for x in self.items:
            if x.index in self._first or t_ns < x.start_ns or (
                    x.end_ns is not None and t_ns > x.end_ns):
                continue
            opened = True
            value = read(x)
            if x.check == "goes":
                good = bool(value[1]) if isinstance(value, tuple) else value is not None
                if good == (x.goes == "good"):
                    self._first[x.index] = (t_ns, value[0] if isinstance(value, tuple)
                                            else value)
                continue
            if isinstance(value, tuple):
                value = value[0] if value[1] else None
            v = _num(value)
            inside = v is not None and x.low <= v <= x.high
            if (x.check == "reaches") == inside:
                self._first[x.index] = (t_ns, value)
        if not opened:  # the next window to open (windows already past never reopen)
            self._idle_until_ns = min((x.start_ns for x in self.items
                                       if x.index not in self._first and x.start_ns > t_ns),
                                      default=_NEVER_NS)

    def results(self, end_ns: int | None = None) -> list[ExpectResult]:
        end = self._last_ns if end_ns is None else end_ns
        out = []
        for x in self.items:
            hit = self._first.get(x.index)
            at = hit[0] / 1e9 if hit else None
            if x.check == "stays":
                if hit:
                    out.append(ExpectResult(x, False, at, f"left the range at {at:g}s "
                                                          f"(value {hit[1]!r})"))
                elif end < x.start_ns:
                    out.append(ExpectResult(x, False, None, f"the run ended at {end / 1e9:g}s, "
                                                            "before the window"))
                else:
                    out.append(ExpectResult(x, True, None, "stayed in range"
                               + ("" if x.end_ns is None or end >= x.end_ns else
                                  f" (the run ended at {end / 1e9:g}s)")))
            elif hit:
                out.append(ExpectResult(x, True, at, f"at {at:g}s (value {hit[1]!r})"))
            else:
                out.append(ExpectResult(x, False, None, (
                    "never" if x.end_ns is None or end >= x.end_ns else
                    f"not yet when the run ended at {end / 1e9:g}s")))
        return out


_NEVER_NS = 2**63 - 1


def _num(value: Any) -> float | None:
    if isinstance(value, bool | np.bool_):
        return float(value)
    if isinstance(value, int | float | np.integer | np.floating):
        return float(value)
    return None


def _fmt(value: Any) -> str:
    if isinstance(value, bool | np.bool_):
        return "1" if value else "0"
    if isinstance(value, float | np.floating):
        return repr(float(value))
    return repr(value)


class ScenarioRunner:
    """Serve a scenario's devices and run its plant, in real or virtual time.

    ``clock``: a :class:`~smartline.core.VirtualClock` (or ``virtual=True``) means virtual
    time: the plant moves only when :meth:`advance_to` is called (pass it to the engine's
    ``on_advance``); otherwise a task steps it in real time once :meth:`start` ran.
    ``trace``: record every changed wired/expected value (time, name, value) in memory.
    Use as ``async with``.
    """

    def __init__(self, scenario: Scenario, *, clock: Clock | None = None,
                 virtual: bool | None = None, trace: bool = True) -> None:
        self.scenario = scenario
        self.clock: Clock = clock if clock is not None else MonotonicClock()
        self.virtual = isinstance(self.clock, VirtualClock) if virtual is None else virtual
        self.step_ns = scenario.step_ns
        params = {}
        for ref, value in scenario.initial.items():
            a, _, b = ref.partition(".")
            block = scenario.plant.blocks.get(a)
            if block is not None and b in block.type.params:
                params[(a, b)] = float(value)
        self.plant = PlantModel(scenario.plant, seed=scenario.seed, params=params)
        self.endpoints: dict[str, Endpoint] = {
            n: make_endpoint(d, clock=self.clock, seed=scenario.seed)
            for n, d in scenario.devices.items()}
        self.steps = 0
        self._origin_ns: int | None = None
        self._pending = list(scenario.timeline)  # sorted by (at_ns, index)
        self._ends: list[tuple[int, int, TimelineEvent]] = []  # (end_ns, seq, event)
        self._seq = 0
        self._power_lost = 0
        self._trace: io.StringIO | None = io.StringIO() if trace else None
        self._last: dict[str, str] = {}
        self.tracker = ExpectTracker([x for x in scenario.expect if x.subject != "tag"])
        self.log: list[str] = []  # timeline entries applied: "t_s what"
        self._inputs = [w for w in scenario.plant.wiring if not w.to_device]
        self._outputs = [w for w in scenario.plant.wiring if w.to_device]
        self._published: list[Any] = [None] * len(self._outputs)
        # each wired signal: its block's array and index (views live as long as the bank)
        where = self.plant.where
        self._output_views = [(where[w.block][0].output(w.signal), where[w.block][1])
                              for w in self._outputs]
        # the outputs by block array: a step that left an array's bytes as they were
        # publishes nothing from it (most outputs hold still most of the time)
        groups: dict[tuple[int, str], list[int]] = {}
        for k, w in enumerate(self._outputs):
            groups.setdefault((id(where[w.block][0]), w.signal), []).append(k)
        self._output_groups: list[tuple[Any, list[int], list[bytes | None]]] = [
            (self._output_views[ks[0]][0], ks, [None]) for ks in groups.values()]
        self._input_views = [(where[w.block][0].input(w.signal), where[w.block][1])
                             for w in self._inputs]
        wired_in = {(w.device, w.point) for w in self._inputs}
        #: outputs published to a point that is wired as an input too: re-read the inputs
        self._feeds_back = [(w.device, w.point) in wired_in for w in self._outputs]
        self._trace_names = [(f"{w.device}.{w.point}", w.device, w.point)
                             for w in scenario.plant.wiring]
        # the inputs as last read from the devices: raw point values, and what each step
        # writes into the blocks, checked and converted once (None: the point has no
        # value, the input is left alone)
        self._input_raw: dict[tuple[str, str], Any] = {}
        self._input_values: list[Any] = [None] * len(self._inputs)
        self._inputs_stale = True
        #: read the inputs from the devices every step (real time; tests compare both ways)
        self._refresh_every_step = not self.virtual
        self._task: asyncio.Task[None] | None = None
        self._started = False

    # -- life --------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start every device, apply the initial state, and (real time) start stepping."""
        if self._started:
            return
        await asyncio.to_thread(self.plant.warm_up)
        for ref, value in self.scenario.initial.items():
            a, _, b = ref.partition(".")
            if a in self.endpoints:
                self.endpoints[a].set(b, value)
            elif b not in self.plant.where[a][0].type.params:
                self.plant.set_value(a, b, value)
        self._publish()
        started: list[Endpoint] = []
        try:
            for ep in self.endpoints.values():
                await ep.start()
                started.append(ep)
        except BaseException:
            for ep in started:
                with contextlib.suppress(Exception):
                    await ep.stop()
            raise
        self._started = True
        self._record(0)
        if not self.virtual:
            self._task = asyncio.create_task(self._run_real_time(), name="smartline-scenario")

    async def stop(self) -> None:
        """Stop stepping and every device (their ports are free afterwards)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for ep in self.endpoints.values():
            with contextlib.suppress(Exception):
                await ep.stop()
        self._started = False

    async def __aenter__(self) -> ScenarioRunner:
        await self.start()
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    def urls(self) -> dict[str, str]:
        """Each device's URL (after :meth:`start`)."""
        return {n: ep.url for n, ep in self.endpoints.items()}

    # -- time --------------------------------------------------------------------------------
    @property
    def time_ns(self) -> int:
        """Plant time: whole steps since the start."""
        return self.steps * self.step_ns

    def advance_to(self, now_ns: int) -> None:
        """Step the plant in whole steps up to clock time ``now_ns`` (the first call sets
        plant time 0). For the cycle engine's ``on_advance``."""
        if self._origin_ns is None:
            self._origin_ns = now_ns
        self._inputs_stale = True  # the line may have written since the last call
        target = now_ns - self._origin_ns
        while (self.steps + 1) * self.step_ns <= target:
            self._step()

    def run_for(self, duration_ns: int) -> None:
        """Step the plant alone (no line) for ``duration_ns`` of plant time."""
        end = self.time_ns + duration_ns
        self._inputs_stale = True
        while self.time_ns + self.step_ns <= end:
            self._step()

    async def settle(self) -> None:
        """Wait until devices going down or up have done so."""
        for ep in self.endpoints.values():
            await ep.settle()

    async def _run_real_time(self) -> None:
        self.advance_to(self.clock.now_ns())
        origin = self._origin_ns or 0
        try:
            while True:
                nxt = origin + (self.steps + 1) * self.step_ns
                delay = (nxt - self.clock.now_ns()) / 1e9
                if delay > 0:
                    await asyncio.sleep(delay)
                self.advance_to(self.clock.now_ns())
                await self.settle()
        except Exception:  # the devices keep serving; say why the plant stopped
            log.exception("scenario %s: the plant stopped at %.3f s", self.scenario.name,
                          self.time_ns / 1e9)
            raise

    # -- one step ----------------------------------------------------------------------------
    def step(self) -> None:
        """One plant step at the current plant time (see the module docstring); the inputs
        are read from the devices first."""
        self._inputs_stale = True
        self._step()

    def _step(self) -> None:
        t = self.time_ns
        self._apply_due(t)
        plant = self.plant
        if self._inputs_stale or self._refresh_every_step:
            self._read_inputs()
        for (view, i), value in zip(self._input_views, self._input_values, strict=True):
            if value is not None:
                view[i] = value
        plant.step(self.step_ns / 1e9)
        self.steps += 1
        self._publish()
        now = self.time_ns
        self.tracker.update(now, self._read)
        self._record(now)

    def _read_inputs(self) -> None:
        """Read the points the controller writes from the devices, as block input values."""
        self._inputs_stale = False
        raw_of = self._input_raw
        raw_of.clear()
        values = self._input_values
        plant = self.plant
        for k, w in enumerate(self._inputs):
            if self._power_lost:
                value: Any = 0.0
            else:
                value = self.endpoints[w.device].get(w.point)
                raw_of[(w.device, w.point)] = value
                if value is None:
                    values[k] = None
                    continue
                if isinstance(value, list | tuple):
                    value = value[0]
                if not isinstance(value, bool) and isinstance(value, int | float):
                    value = value * w.gain + w.offset
            plant.set_input(w.block, w.signal, value)  # checks and converts it
            view, i = self._input_views[k]
            values[k] = view[i]  # the converted value (a copy), written every step

    def _publish(self) -> None:
        published = self._published
        outputs, views = self._outputs, self._output_views
        for array, ks, last in self._output_groups:
            raw = array.tobytes()
            if raw == last[0]:
                continue  # no instance's value moved: the devices hold them already
            last[0] = raw
            for k in ks:
                w = outputs[k]
                value = array.item(views[k][1])
                if not isinstance(value, bool):
                    value = value * w.gain + w.offset
                if published[k] == value and type(published[k]) is type(value):
                    continue  # unchanged: the device holds it already
                published[k] = value
                if self._feeds_back[k]:
                    self._inputs_stale = True
                ep = self.endpoints[w.device]
                try:
                    ep.set(w.point, value)
                except (ValueError, OverflowError, KeyError) as exc:  # out of the point's range
                    self._note(f"{w.device}.{w.point}: cannot hold {value!r}: {exc}")

    def _read(self, x: Expectation) -> Any:
        a, _, b = x.name.partition(".")
        if a in self.endpoints:
            return self.endpoints[a].get(b)
        return self.plant.output(a, b)

    def _note(self, text: str) -> None:
        if len(self.log) < 10_000:
            self.log.append(f"{self.time_ns / 1e9:g}s {text}")

    # -- the timeline ------------------------------------------------------------------------
    def _apply_due(self, t: int) -> None:
        while self._ends and self._ends[0][0] <= t:
            _, _, ev = heapq.heappop(self._ends)
            self._undo(ev)
        while self._pending and self._pending[0].at_ns <= t:
            ev = self._pending.pop(0)
            self._apply(ev)
            if ev.for_ns is not None:
                self._seq += 1
                heapq.heappush(self._ends, (ev.at_ns + ev.for_ns, self._seq, ev))

    def _apply(self, ev: TimelineEvent) -> None:
        self._inputs_stale = True  # a set, a fault or a power loss may change what is read
        self._note(f"start {ev.describe()}")
        self._trace_line(self.time_ns, "timeline", f"start {ev.describe()}")
        if ev.kind == "device":
            self.endpoints[ev.target].fault(ev.what, dict(ev.args))
        elif ev.kind == "signal":
            block, _, out = ev.target.partition(".")
            if ev.what == "clear":
                self.plant.event(block, "clear_fault", output=out)
            else:
                self.plant.event(block, ev.what, output=out, **ev.args)
        elif ev.kind == "block":
            self.plant.event(ev.target, ev.what, **ev.args)
        elif ev.kind == "set":
            a, _, b = ev.target.partition(".")
            if a in self.endpoints:
                self.endpoints[a].set(b, ev.args["value"])
            else:
                self.plant.set_value(a, b, ev.args["value"])
        else:
            self._power(lost=True)

    def _undo(self, ev: TimelineEvent) -> None:
        self._inputs_stale = True
        self._note(f"end {ev.describe()}")
        self._trace_line(self.time_ns, "timeline", f"end {ev.describe()}")
        if ev.kind == "device":
            self.endpoints[ev.target].clear(ev.what)
        elif ev.kind == "signal":
            block, _, out = ev.target.partition(".")
            self.plant.event(block, "clear_fault", output=out)
        elif ev.kind == "power_loss":
            self._power(lost=False)

    def _power(self, *, lost: bool) -> None:
        self._inputs_stale = True
        self._power_lost += 1 if lost else -1
        if (lost and self._power_lost > 1) or (not lost and self._power_lost > 0):
            return
        for ep in self.endpoints.values():
            if lost:
                ep.go_down()
            else:
                ep.come_up()
        name = "power_loss" if lost else "power_restore"
        for block, (bank, _) in self.plant.where.items():
            if name in bank.type.events:
                self.plant.event(block, name)

    # -- the trace ---------------------------------------------------------------------------
    def _record(self, t: int) -> None:
        if self._trace is None:
            return
        cached = {} if self._inputs_stale or self._power_lost else self._input_raw
        for name, a, b in self._trace_names:
            key = (a, b)
            text = _fmt(cached[key] if key in cached else self.endpoints[a].get(b))
            if self._last.get(name) != text:
                self._last[name] = text
                self._trace_line(t, name, text)
        for x in self.tracker.items:
            if x.subject == "signal" or (x.subject == "alarm" and x.name.partition(".")[0] in \
                    self.plant.where):
                text = _fmt(self._read(x))
                if self._last.get(x.name) != text:
                    self._last[x.name] = text
                    self._trace_line(t, x.name, text)

    def _trace_line(self, t: int, name: str, text: str) -> None:
        if self._trace is not None:
            self._trace.write(f"{t} {name} {text}\n")

    def trace_bytes(self) -> bytes:
        """The trace so far: one line ``t_ns name value`` per change, and timeline lines."""
        return b"" if self._trace is None else self._trace.getvalue().encode()

    def results(self) -> list[ExpectResult]:
        """The plant-side expectations (points, signals, alarms) as of now."""
        return self.tracker.results(self.time_ns)

    def tag_expectations(self) -> list[Expectation]:
        """Expectations about line tags: the caller that runs the line follows them."""
        return [x for x in self.scenario.expect if x.subject == "tag"]
