"""Binding a task to its compiled cycle: the arrays it works on, prepared when the line
loads, and the loop compiled (or loaded from numba's cache) for its program.

:func:`output_rules` turns the output tags' rules (access, type, limits, scale, the wire
type's range) into arrays the compiled loop checks each changed output against.
:class:`CompiledCycle` holds everything one task's loop touches — the image's seqlocked
columns and the task's input groups, its outputs and their rules, the output ring and
the eventfd that wakes the I/O loop, the ``ctl`` array shared with Python, the timing
histograms — and runs it: :meth:`CompiledCycle.run` for a real-time thread (entered once,
left once), :meth:`CompiledCycle.step` for one cycle under virtual time.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..tags import DataType, TagSpec
from . import _loop
from ._program import Program, ProgramError
from ._rt import STOPPED, OutputRing, aligned_zeros, wait_deadline_ns
from ._stats import TimingRecorder

__all__ = ["CompiledCycle", "OutputRules", "output_rules"]

log = logging.getLogger(__name__)

_F32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True, slots=True)
class OutputRules:
    """Per output element: the rules of its tag as arrays, and where each tag starts/stops."""

    writable: NDArray[np.uint8]
    kind: NDArray[np.int64]
    scaled: NDArray[np.uint8]
    lo: NDArray[np.float64]
    hi: NDArray[np.float64]
    gain: NDArray[np.float64]
    offset: NDArray[np.float64]
    rlo: NDArray[np.float64]
    rhi: NDArray[np.float64]
    tag_start: NDArray[np.int64]
    tag_stop: NDArray[np.int64]

    def arrays(self) -> tuple[Any, ...]:
        return (self.writable, self.kind, self.scaled, self.lo, self.hi, self.gain,
                self.offset, self.rlo, self.rhi)


def output_rules(tags: Sequence[TagSpec]) -> OutputRules:
    """The rules of the task's output tags, one element per image slot, in output order."""
    cols: dict[str, list[float]] = {k: [] for k in (
        "writable", "kind", "scaled", "lo", "hi", "gain", "offset", "rlo", "rhi")}
    starts: list[int] = []
    stops: list[int] = []
    pos = 0
    for tag in tags:
        dtype = tag.dtype
        if dtype is DataType.BOOL:
            kind = _loop.KIND_BOOL
        elif dtype is DataType.FLOAT32:
            kind = _loop.KIND_FLOAT32
        elif dtype is not None and dtype.is_integer:
            kind = _loop.KIND_INT
        else:
            kind = _loop.KIND_FLOAT
        if kind == _loop.KIND_INT and dtype is not None:
            rlo, rhi = (_inside(x) for x in dtype.range)
        elif kind == _loop.KIND_FLOAT32:
            rlo, rhi = -_F32_MAX, _F32_MAX
        else:
            rlo, rhi = -math.inf, math.inf
        lo, hi = tag.limits if tag.limits is not None else (-math.inf, math.inf)
        gain, offset = (tag.scale.gain, tag.scale.offset) if tag.scale is not None else (1.0, 0.0)
        n = tag.elements
        row = {"writable": float(tag.writable), "kind": kind,
               "scaled": float(tag.scale is not None), "lo": lo, "hi": hi, "gain": gain,
               "offset": offset, "rlo": rlo, "rhi": rhi}
        for k, v in row.items():
            cols[k].extend([v] * n)
        starts.append(pos)
        stops.append(pos + n)
        pos += n
    return OutputRules(
        writable=np.asarray(cols["writable"], np.uint8), kind=np.asarray(cols["kind"], np.int64),
        scaled=np.asarray(cols["scaled"], np.uint8), lo=np.asarray(cols["lo"], np.float64),
        hi=np.asarray(cols["hi"], np.float64), gain=np.asarray(cols["gain"], np.float64),
        offset=np.asarray(cols["offset"], np.float64), rlo=np.asarray(cols["rlo"], np.float64),
        rhi=np.asarray(cols["rhi"], np.float64), tag_start=np.asarray(starts, np.int64),
        tag_stop=np.asarray(stops, np.int64))


def _inside(bound: float) -> float:
    """The float nearest ``bound`` that does not pass it (int64's 2**63 − 1 is not a float:
    its float, 2**63, would let 2**63 through)."""
    f = float(bound)
    if f > bound:
        return float(np.nextafter(f, -math.inf))
    if f < bound:
        return float(np.nextafter(f, math.inf))
    return f


@dataclass(frozen=True, slots=True)
class InputArrays:
    """What the compiled cycle reads its inputs from: the image's seqlocks and columns, the
    task's slots grouped by device block, and the task's input arrays."""

    seq: NDArray[np.int64]
    value: NDArray[np.float64]
    quality: NDArray[np.uint8]
    group_block: NDArray[np.intp]
    group_start: NDArray[np.intp]
    slots: NDArray[np.intp]
    inputs: NDArray[np.float64]
    in_quality: NDArray[np.uint8]
    max_retries: int


class CompiledCycle:
    """One task's cycle, bound to its arrays, compiled for its program."""

    def __init__(self, *, name: str, program: Program | None, state: object,
                 inputs: InputArrays, outputs: NDArray[np.float64], deadband: NDArray[np.float64],
                 rules: OutputRules, recorder: TimingRecorder, efd: int) -> None:
        self.name = name
        self.program = program
        self.state = state if program is not None else ()
        self.jitted = program is None or program.jitted
        n_out = len(outputs)
        self.ctl: NDArray[np.int64] = aligned_zeros(_loop.CTL_LEN, np.int64)
        self.outputs = outputs
        self.last: NDArray[np.float64] = np.full(n_out, np.nan)
        self.deadband = deadband
        #: set by the I/O loop (release) when a write failed: the loop writes it again
        self.retry: NDArray[np.int64] = aligned_zeros(max(n_out, 1), np.int64)[:n_out]
        self.raw: NDArray[np.float64] = np.zeros(n_out)
        self.rules = rules
        capacity = max(64, 4 * max(n_out, 1))
        self.ring = OutputRing(capacity=capacity, batch=max(64, min(capacity, 4096)))
        self.efd = efd
        self.recorder = recorder
        self.vclock: NDArray[np.int64] = np.zeros(1, np.int64)
        i = inputs
        self._inp = (i.seq, i.value, i.quality, i.group_block, i.group_start, i.slots, i.inputs,
                     i.in_quality, np.int64(i.max_retries))
        self.inputs = i
        self._out = (outputs, self.last, deadband, self.retry, rules.tag_start, rules.tag_stop,
                     self.raw)
        self._rules = rules.arrays()
        self._rec = (recorder.counts, recorder.summary, recorder.values, recorder._params)
        self._pointer: object = None
        self._step: Callable[..., int] | None = None
        self._run: Callable[..., int] | None = None
        self.compile_s = 0.0
        self.cache_hit = False
        self.reused = False  # the same loop was compiled for another task of this process

    # -- compiling ---------------------------------------------------------------------
    def _fn(self) -> Any:
        if self.program is None:
            return _loop.no_program
        return self.program.kernel if self.jitted else self.program.py_func

    def compile(self) -> bool:
        """Compile (or load from numba's cache) the program and the loop for this task's
        argument types; returns True on a cache hit. A Python program needs nothing."""
        t0 = time.perf_counter()
        if not self.jitted:
            self.cache_hit = True
            return True
        import numba
        from numba import types

        typeof: Callable[[object], Any] = numba.typeof
        fn = self._fn()
        n_in, n_out = len(self.inputs.inputs), len(self.outputs)
        if self.program is not None:
            self.program.compile(n_in, n_out, self.state)
        prog_sig = (types.int64, typeof(self.inputs.inputs), typeof(self.outputs),
                    typeof(self.state))
        if self.program is None and prog_sig not in fn.overloads:
            fn.compile(prog_sig)
        ftype = types.FunctionType(types.void(*prog_sig))
        common = (typeof(self.ctl), typeof(self.vclock))
        tail = (typeof(self._inp), typeof(self._out), typeof(self._rules), typeof(self._rec),
                typeof(self.ring.arrays), types.int64)
        step_sig = (ftype, typeof(self.state), types.int64, types.int64, *common,
                    types.boolean, *tail)
        run_sig = (ftype, typeof(self.state), *(types.int64,) * 8, *common, *tail)
        hits = _hits()
        self.reused = (step_sig in _loop.cycle_once.overloads
                       and run_sig in _loop.run_loop.overloads)
        try:
            _loop.cycle_once.compile(step_sig)
            _loop.run_loop.compile(run_sig)
        except numba.core.errors.NumbaError as exc:  # a bug of ours, not of the program
            raise ProgramError(f"task {self.name}: the cycle loop failed to compile: {exc}",
                               task=self.name) from exc
        # the compiled entry points themselves: calling the dispatchers would type the
        # program argument as a dispatcher and compile (uncached) once more
        self._step = getattr(_loop.cycle_once.overloads[step_sig], "entry_point")  # noqa: B009
        self._run = getattr(_loop.run_loop.overloads[run_sig], "entry_point")  # noqa: B009
        # the program as a function pointer resolved once: handing numba the dispatcher
        # would look its compiled address up again on every call
        self._pointer = _function_pointer(fn, ftype)
        self.cache_hit = self.reused or _hits() > hits
        self.compile_s = time.perf_counter() - t0
        return self.cache_hit

    # -- running ---------------------------------------------------------------------------
    def run(self, *, t0: int, period: int, spin: int, slice_ns: int, policy: int,
            wd_time: int, wd_sens: int, budget: int) -> int:
        """The task's whole life in the calling thread (real time); why it stopped."""
        if not self.jitted:
            return self._run_python(t0=t0, period=period, spin=spin, slice_ns=slice_ns,
                                    policy=policy, wd_time=wd_time, wd_sens=wd_sens,
                                    budget=budget)
        assert self._run is not None, "compile() first"
        return int(self._run(self._pointer, self.state, t0, period, spin, slice_ns, policy,
                             wd_time, wd_sens, budget, self.ctl, self.vclock, self._inp,
                             self._out, self._rules, self._rec, self.ring.arrays, self.efd))

    def _run_python(self, *, t0: int, period: int, spin: int, slice_ns: int, policy: int,
                    wd_time: int, wd_sens: int, budget: int) -> int:
        """The same phases as the compiled loop, in Python (a ``jit=False`` program)."""
        ctl = self.ctl
        deadline = t0
        k = 0
        while True:
            if wait_deadline_ns(deadline, spin, ctl, _loop.C_STOP, slice_ns) == STOPPED:
                ctl[_loop.C_EXIT] = _loop.EXIT_STOPPED
                return _loop.EXIT_STOPPED
            end = self._python_cycle(deadline, k, virtual=False)
            k += 1
            nxt = int(_loop.after_cycle(ctl, deadline, period, int(ctl[_loop.C_LAST_START]),
                                        end, policy, wd_time, wd_sens))
            if nxt < 0:
                return int(ctl[_loop.C_EXIT])
            if budget > 0 and ctl[_loop.C_CYCLES] >= budget:
                ctl[_loop.C_EXIT] = _loop.EXIT_BUDGET
                return _loop.EXIT_BUDGET
            deadline = nxt

    def _python_cycle(self, deadline: int, k: int, *, virtual: bool) -> int:
        end: int = _loop.cycle_once.py_func(
            self._fn(), self.state, deadline, k, self.ctl, self.vclock, virtual, self._inp,
            self._out, self._rules, self._rec, self.ring.arrays, self.efd)
        return int(end)

    def step(self, deadline: int, k: int, vclock: NDArray[np.int64]) -> int:
        """One cycle at ``deadline`` under virtual time (``vclock[0]`` is the time)."""
        self.vclock = vclock
        if not self.jitted:
            return self._python_cycle(deadline, k, virtual=True)
        assert self._step is not None, "compile() first"
        return int(self._step(self._pointer, self.state, deadline, k, self.ctl, vclock, True,
                              self._inp, self._out, self._rules, self._rec, self.ring.arrays,
                              self.efd))

    # -- shared state ------------------------------------------------------------------------
    def counter(self, index: int) -> int:
        return int(self.ctl[index])

    def request_stop(self) -> None:
        self.ctl[_loop.C_STOP] = 1

    def latch(self) -> None:
        """No more outputs from the program (they are safe now)."""
        self.ctl[_loop.C_LATCHED] = 1

    @property
    def cycle_start_ns(self) -> int:
        return int(self.ctl[_loop.C_CYCLE_START])


def _function_pointer(dispatcher: Any, ftype: Any) -> Any:
    """The compiled program as a first-class function value that numba unboxes cheaply.

    Unboxing a dispatcher into a ``FunctionType`` argument looks up its compiled overload
    twice (the C wrapper's address and the native one's) on every call — tens of µs per
    virtual-time cycle. This object answers both questions from addresses resolved once:
    ``__wrapper_address__`` (numba's wrapper-address protocol) and, because numba only asks
    dispatchers for the native address, a dispatcher subclass whose ``get_compile_result``
    returns them. Calls then go through the native address, so exceptions the program
    raises propagate as they do through the dispatcher.
    """
    from types import SimpleNamespace

    from numba.core.dispatcher import Dispatcher
    from numba.experimental.function_type import _get_jit_address, _get_wrapper_address

    sig = ftype.signature
    wrapper = int(_get_wrapper_address(dispatcher, sig))  # type: ignore[no-untyped-call]
    native = int(_get_jit_address(dispatcher, sig))  # type: ignore[no-untyped-call]
    result = SimpleNamespace(fndesc=SimpleNamespace(llvm_func_name="program"),
                             library=SimpleNamespace(get_pointer_to_function=lambda _: native))

    class FunctionPointer(Dispatcher):  # type: ignore[misc]  # no state: only two addresses
        def __wrapper_address__(self) -> int:
            return wrapper

        def get_compile_result(self, sig: object) -> Any:  # type: ignore[override]
            return result

    return FunctionPointer.__new__(FunctionPointer)  # Dispatcher.__init__ is not wanted


def _hits() -> int:
    return int(sum(_loop.cycle_once.stats.cache_hits.values())
               + sum(_loop.run_loop.stats.cache_hits.values()))
