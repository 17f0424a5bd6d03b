"""The block contract: block types described as data, and banks of n instances stepped by numba.

A :class:`BlockType` names its parameters, inputs (actuator signals the devices write), outputs
(sensor signals the devices read), internal states and events, so a plant file can build and
wire blocks by name. A :class:`BlockBank` holds n instances as structure-of-arrays and steps
them with the type's kernel, which every block calls the same way (:data:`KERNEL_ARGS`)::

    kernel(pf, inf, inb, outf, outi, outb, sf, si, sb, buf, rng,
           seenf, seeni, seenb, ff, fi, fb, frng, dt_s)

``pf`` params (float64, one row per parameter, one column per instance); ``inf``/``inb`` float
and bool inputs; ``outf``/``outi``/``outb`` the true float/int/bool outputs; ``sf``/``si``/``sb``
states; ``buf`` a per-instance float64 buffer (rings: items, delays) of shape ``(n, length)``;
``rng`` one xorshift64 state per instance; then the seen outputs and the sensor fault arrays
(:mod:`._faults`) the kernel passes to :func:`~._faults.apply_faults` last.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from ._faults import (
    B_FIELDS,
    B_STUCK,
    B_VALUE,
    F_DRIFT_RATE,
    F_FIELDS,
    F_OFFSET,
    F_SIGMA,
    F_STUCK,
    F_VALUE,
    I_FIELDS,
    I_OFFSET,
    I_STUCK,
    I_VALUE,
    apply_faults,
)
from ._rng import seed_states

__all__ = ["FAULT_EVENTS", "KERNEL_ARGS", "BankSnapshot", "BlockBank", "BlockType", "Event",
           "Param", "Signal", "check_param", "frozen", "rows"]

Kind = Literal["float", "int", "bool"]
ArgKind = Literal["float", "int", "bool", "name"]
Value = float | int | bool
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

KERNEL_ARGS = ("pf", "inf", "inb", "outf", "outi", "outb", "sf", "si", "sb", "buf", "rng",
               "seenf", "seeni", "seenb", "ff", "fi", "fb", "frng", "dt_s")
"""The positional arguments of every block kernel, in order (see the module docstring)."""

_DTYPES: Mapping[str, type[np.generic]] = MappingProxyType(
    {"float": np.float64, "int": np.int64, "bool": np.bool_})


@dataclass(frozen=True, slots=True)
class Param:
    """A parameter: default, unit, allowed range ``[min, max]`` and what it means.

    ``kind`` "int" requires a whole number; "name" (event arguments only) is the name of an
    output, e.g. for the generic sensor faults.
    """

    default: float | str
    unit: str
    min: float
    max: float
    description: str
    kind: ArgKind = "float"


@dataclass(frozen=True, slots=True)
class Signal:
    """An input, output or state signal: unit, initial value, meaning and kind (dtype)."""

    unit: str
    default: Value
    description: str
    kind: Kind = "float"


EventApply = Callable[["BlockBank", int, Mapping[str, Any]], None]


@dataclass(frozen=True, slots=True)
class Event:
    """A fault or command a scenario can trigger on one instance, with its arguments.

    ``apply(bank, index, args)`` writes the bank's states or inputs (never during a step);
    ``args`` holds every argument, defaults filled in and checked against their ``Param``.
    """

    description: str
    apply: EventApply
    args: Mapping[str, Param] = field(default_factory=lambda: MappingProxyType({}))


def _no_init(bank: BlockBank) -> None:
    """Blocks whose states start at their signals' defaults need nothing more."""


def _no_buffer(sizes: Mapping[str, int]) -> int:
    return 0


@dataclass(frozen=True, slots=True)
class BlockType:
    """One kind of plant block, described as data (see the module docstring for the kernel).

    ``sizes`` are bank-wide whole-number dimensions (a ring's capacity); ``buffer_len`` turns
    them into the per-instance length of ``buf``; ``init`` sets the states that follow from the
    parameters (a tank's volume from its initial level) once the bank is built.
    ``discretisation`` says in words how ``dt_s`` is handled (exact or sub-stepped).
    """

    name: str
    description: str
    params: Mapping[str, Param]
    inputs: Mapping[str, Signal]
    outputs: Mapping[str, Signal]
    states: Mapping[str, Signal]
    events: Mapping[str, Event]
    kernel: Any
    discretisation: str
    sizes: Mapping[str, Param] = field(default_factory=lambda: MappingProxyType({}))
    buffer_len: Callable[[Mapping[str, int]], int] = _no_buffer
    init: Callable[[BlockBank], None] = _no_init


def frozen(**entries: Any) -> Mapping[str, Any]:
    """An immutable mapping (keeps the order given)."""
    return MappingProxyType(dict(entries))


def rows(signals: Mapping[str, Signal] | Mapping[str, Param], kind: Kind = "float"
         ) -> Mapping[str, int]:
    """Row of each signal of ``kind`` in its dtype's 2-D array, in declaration order."""
    names = [name for name, s in signals.items() if isinstance(s, Param) or s.kind == kind]
    return MappingProxyType({name: k for k, name in enumerate(names)})


# -- the generic sensor faults, available on every bank ---------------------------------------

def _output_arg() -> Param:
    return Param("", "", 0.0, 0.0, "name of the output", "name")


def _fault_stuck(bank: BlockBank, index: int, args: Mapping[str, Any]) -> None:
    bank.fault(args["output"], index, stuck=args["value"])


def _fault_noise(bank: BlockBank, index: int, args: Mapping[str, Any]) -> None:
    bank.fault(args["output"], index, noise_sigma=args["sigma"])


def _fault_offset(bank: BlockBank, index: int, args: Mapping[str, Any]) -> None:
    bank.fault(args["output"], index, offset=args["value"])


def _fault_drift(bank: BlockBank, index: int, args: Mapping[str, Any]) -> None:
    bank.fault(args["output"], index, drift_per_s=args["rate_per_s"])


def _fault_clear(bank: BlockBank, index: int, args: Mapping[str, Any]) -> None:
    bank.clear_faults(args["output"] or None, index)


_INF = math.inf
FAULT_EVENTS: Mapping[str, Event] = frozen(
    stuck=Event("the output reads a fixed value whatever the plant does", _fault_stuck,
                frozen(output=_output_arg(),
                       value=Param(0.0, "", -_INF, _INF, "the stuck value (0/1 for bools)"))),
    noise=Event("gaussian noise on a float output", _fault_noise,
                frozen(output=_output_arg(),
                       sigma=Param(0.0, "output unit", 0.0, _INF, "standard deviation"))),
    offset=Event("a constant offset on a float or int output", _fault_offset,
                 frozen(output=_output_arg(),
                        value=Param(0.0, "output unit", -_INF, _INF, "the offset"))),
    drift=Event("an offset growing at a rate on a float output", _fault_drift,
                frozen(output=_output_arg(),
                       rate_per_s=Param(0.0, "output unit/s", -_INF, _INF, "drift rate"))),
    clear_fault=Event("clear the sensor faults of an output (empty name: all outputs)",
                      _fault_clear, frozen(output=_output_arg())),
)
"""Sensor fault events every block type accepts in :meth:`BlockBank.event`."""


@dataclass(frozen=True, slots=True)
class BankSnapshot:
    """Copies of every array of a bank and its time, for :meth:`BlockBank.restore`."""

    type_name: str
    time_s: float
    arrays: tuple[npt.NDArray[Any], ...]

    def tobytes(self) -> bytes:
        """All arrays as bytes (compare two runs byte for byte)."""
        return b"".join(a.tobytes() for a in self.arrays)


class BlockBank:
    """n instances of one block type as arrays, stepped by one compiled kernel call.

    Built by :func:`~smartline.hil.blocks.make_bank` (validates parameters). Views returned by
    :meth:`output`, :meth:`input`, :meth:`state` and :meth:`param` stay valid for the bank's
    life (steps, events and :meth:`restore` write into the same arrays).
    """

    def __init__(self, block: BlockType, n: int, pf: FloatArray, sizes: Mapping[str, int],
                 seed: int) -> None:
        self.type = block
        self.n = n
        self.seed = seed
        self.sizes: Mapping[str, int] = MappingProxyType(dict(sizes))
        self.time_s = 0.0
        self._p = rows(block.params)
        self._in = {k: rows(block.inputs, k) for k in ("float", "bool")}
        self._out = {k: rows(block.outputs, k) for k in ("float", "int", "bool")}
        self._st = {k: rows(block.states, k) for k in ("float", "int", "bool")}
        for name, sig in block.inputs.items():
            if sig.kind == "int":
                raise ValueError(f"{block.name}: input {name!r}: inputs are float or bool")
        self.pf = pf

        def filled(table: Mapping[str, Signal], kind: Kind) -> npt.NDArray[Any]:
            sigs = [s for s in table.values() if s.kind == kind]
            arr = np.empty((len(sigs), n), _DTYPES[kind])
            for k, s in enumerate(sigs):
                arr[k] = s.default
            return arr

        self.inf = filled(block.inputs, "float")
        self.inb = filled(block.inputs, "bool")
        self.outf = filled(block.outputs, "float")
        self.outi = filled(block.outputs, "int")
        self.outb = filled(block.outputs, "bool")
        self.sf = filled(block.states, "float")
        self.si = filled(block.states, "int")
        self.sb = filled(block.states, "bool")
        self.buf: FloatArray = np.zeros((n, block.buffer_len(self.sizes)), np.float64)
        self.rng = seed_states(seed, 0, n)
        self.seenf = self.outf.copy()
        self.seeni = self.outi.copy()
        self.seenb = self.outb.copy()
        self.ff: FloatArray = np.zeros((F_FIELDS, self.outf.shape[0], n), np.float64)
        self.fi: IntArray = np.zeros((I_FIELDS, self.outi.shape[0], n), np.int64)
        self.fb: BoolArray = np.zeros((B_FIELDS, self.outb.shape[0], n), np.bool_)
        self.frng = seed_states(seed, 1, self.outf.shape[0] * n)
        block.init(self)
        self._publish()
        self._args = (self.pf, self.inf, self.inb, self.outf, self.outi, self.outb, self.sf,
                      self.si, self.sb, self.buf, self.rng, self.seenf, self.seeni, self.seenb,
                      self.ff, self.fi, self.fb, self.frng)

    def __repr__(self) -> str:
        return f"<BlockBank {self.type.name} n={self.n} t={self.time_s:g}s seed={self.seed}>"

    @property
    def kernel_args(self) -> tuple[npt.NDArray[Any], ...]:
        """The kernel's array arguments in :data:`KERNEL_ARGS` order (without ``dt_s``)."""
        return self._args

    # -- stepping ------------------------------------------------------------------------

    def step(self, dt_s: float) -> None:
        """Advance every instance by ``dt_s`` seconds (one compiled call; 0 does nothing)."""
        if not dt_s > 0.0:
            if dt_s == 0.0:
                return
            raise ValueError(f"{self.type.name}: dt_s must be > 0, got {dt_s!r}")
        if not math.isfinite(dt_s):
            raise ValueError(f"{self.type.name}: dt_s must be finite, got {dt_s!r}")
        self.type.kernel(*self._args, float(dt_s))
        self.time_s += dt_s

    def warm_up(self) -> None:
        """Compile (or load from the cache) the kernel now, leaving the bank as it was."""
        snap = self.snapshot()
        self.type.kernel(*self._args, 1e-3)
        self.restore(snap)

    def snapshot(self) -> BankSnapshot:
        """A copy of the whole state (all arrays, rng states and faults included)."""
        return BankSnapshot(self.type.name, self.time_s, tuple(a.copy() for a in self._all()))

    def restore(self, snap: BankSnapshot) -> None:
        """Put back a :meth:`snapshot` of this bank, in place (views stay valid)."""
        arrays = self._all()
        if snap.type_name != self.type.name or len(snap.arrays) != len(arrays) or any(
                a.shape != b.shape for a, b in zip(arrays, snap.arrays, strict=True)):
            raise ValueError(f"{self.type.name}: snapshot of another bank "
                             f"({snap.type_name}) cannot be restored here")
        for dst, src in zip(arrays, snap.arrays, strict=True):
            np.copyto(dst, src)
        self.time_s = snap.time_s

    def _all(self) -> tuple[npt.NDArray[Any], ...]:
        return (self.pf, self.inf, self.inb, self.outf, self.outi, self.outb, self.sf, self.si,
                self.sb, self.buf, self.rng, self.seenf, self.seeni, self.seenb, self.ff,
                self.fi, self.fb, self.frng)

    def _publish(self) -> None:
        """Seen outputs = true outputs through the faults, without stepping (after init/events)."""
        apply_faults(self.outf, self.outi, self.outb, self.seenf, self.seeni, self.seenb,
                     self.ff, self.fi, self.fb, self.frng, 0.0)

    # -- signals by name -----------------------------------------------------------------

    def _index(self, index: int | None) -> slice | int:
        if index is None:
            return slice(None)
        if isinstance(index, bool) or not isinstance(index, int | np.integer):
            raise ValueError(f"{self.type.name}: instance index must be an int, got {index!r}")
        if not 0 <= index < self.n:
            raise ValueError(f"{self.type.name}: instance {index} outside 0..{self.n - 1}")
        return int(index)

    def _lookup(self, table: Mapping[str, Signal], tables: Mapping[str, Mapping[str, int]],
                arrays: Mapping[str, npt.NDArray[Any]], what: str, name: str
                ) -> npt.NDArray[Any]:
        sig = table.get(name)
        if sig is None:
            raise ValueError(f"{self.type.name}: no {what} {name!r}; expected one of "
                             f"{', '.join(table) or '(none)'}")
        return arrays[sig.kind][tables[sig.kind][name]]  # type: ignore[no-any-return]

    def input(self, name: str) -> npt.NDArray[Any]:
        """The input ``name`` of every instance (a writable view)."""
        return self._lookup(self.type.inputs, self._in, {"float": self.inf, "bool": self.inb},
                            "input", name)

    def set_input(self, name: str, index: int | None, value: Value) -> None:
        """Write input ``name`` of instance ``index`` (None: all instances)."""
        arr = self.input(name)
        arr[self._index(index)] = _coerce(self.type.name, f"input {name!r}",
                                          self.type.inputs[name].kind, value)

    def output(self, name: str) -> npt.NDArray[Any]:
        """The output ``name`` as the devices see it (after the sensor faults), a view."""
        return self._lookup(self.type.outputs, self._out,
                            {"float": self.seenf, "int": self.seeni, "bool": self.seenb},
                            "output", name)

    def true_output(self, name: str) -> npt.NDArray[Any]:
        """The output ``name`` as the plant computed it (before the sensor faults), a view."""
        return self._lookup(self.type.outputs, self._out,
                            {"float": self.outf, "int": self.outi, "bool": self.outb},
                            "output", name)

    def state(self, name: str) -> npt.NDArray[Any]:
        """The internal state ``name`` of every instance (a writable view)."""
        return self._lookup(self.type.states, self._st,
                            {"float": self.sf, "int": self.si, "bool": self.sb}, "state", name)

    def set_state(self, name: str, index: int | None, value: Value) -> None:
        """Write state ``name`` of instance ``index`` (None: all instances)."""
        arr = self.state(name)
        arr[self._index(index)] = _coerce(self.type.name, f"state {name!r}",
                                          self.type.states[name].kind, value)

    def param(self, name: str) -> FloatArray:
        """The parameter ``name`` of every instance (a view; prefer :meth:`set_param`)."""
        if name not in self._p:
            raise ValueError(f"{self.type.name}: no parameter {name!r}; expected one of "
                             f"{', '.join(self.type.params)}")
        return self.pf[self._p[name]]  # type: ignore[no-any-return]

    def set_param(self, name: str, index: int | None, value: float) -> None:
        """Change parameter ``name`` of instance ``index`` (None: all), range-checked."""
        arr = self.param(name)
        arr[self._index(index)] = check_param(self.type.name, name, self.type.params[name],
                                              value)

    # -- events and sensor faults ------------------------------------------------------------

    def event(self, name: str, index: int, **args: Any) -> None:
        """Trigger event ``name`` on instance ``index`` with its arguments (checked)."""
        ev = self.type.events.get(name) or FAULT_EVENTS.get(name)
        if ev is None:
            raise ValueError(f"{self.type.name}: no event {name!r}; expected one of "
                             f"{', '.join([*self.type.events, *FAULT_EVENTS])}")
        i = self._index(index)
        if not isinstance(i, int):
            raise ValueError(f"{self.type.name}: event {name!r} needs one instance index")
        unknown = set(args) - set(ev.args)
        if unknown:
            raise ValueError(f"{self.type.name}: event {name!r} has no argument "
                             f"{sorted(unknown)[0]!r}; expected {', '.join(ev.args) or 'none'}")
        full: dict[str, Any] = {}
        for arg, spec in ev.args.items():
            value = args.get(arg, spec.default)
            if spec.kind == "name":
                if not isinstance(value, str):
                    raise ValueError(f"{self.type.name}: event {name!r} argument {arg!r} "
                                     f"must be a name, got {value!r}")
                full[arg] = value
            else:
                full[arg] = check_param(self.type.name, f"{name}.{arg}", spec, value)
        ev.apply(self, i, MappingProxyType(full))
        self._publish()

    def fault(self, output: str, index: int | None, *, stuck: Value | None = None,
              noise_sigma: float | None = None, offset: float | None = None,
              drift_per_s: float | None = None) -> None:
        """Add sensor faults to ``output`` of instance ``index`` (None: all); see ``_faults``."""
        sig = self.type.outputs.get(output)
        if sig is None:
            raise ValueError(f"{self.type.name}: no output {output!r}; expected one of "
                             f"{', '.join(self.type.outputs)}")
        i = self._index(index)
        k = self._out[sig.kind][output]
        if sig.kind == "float":
            if stuck is not None:
                self.ff[F_STUCK, k, i] = 1.0
                self.ff[F_VALUE, k, i] = float(stuck)
            if noise_sigma is not None:
                if not noise_sigma >= 0.0:
                    raise ValueError(f"{self.type.name}: noise sigma of {output!r} must be "
                                     f">= 0, got {noise_sigma!r}")
                self.ff[F_SIGMA, k, i] = noise_sigma
            if offset is not None:
                self.ff[F_OFFSET, k, i] = offset
            if drift_per_s is not None:
                self.ff[F_DRIFT_RATE, k, i] = drift_per_s
        else:
            if noise_sigma is not None or drift_per_s is not None or (
                    offset is not None and sig.kind == "bool"):
                raise ValueError(f"{self.type.name}: output {output!r} is {sig.kind}: only "
                                 f"{'stuck' if sig.kind == 'bool' else 'stuck and offset'} "
                                 "faults apply")
            if sig.kind == "int":
                if stuck is not None:
                    self.fi[I_STUCK, k, i] = 1
                    self.fi[I_VALUE, k, i] = int(stuck)
                if offset is not None:
                    self.fi[I_OFFSET, k, i] = int(offset)
            elif stuck is not None:
                self.fb[B_STUCK, k, i] = True
                self.fb[B_VALUE, k, i] = bool(stuck)
        self._publish()

    def clear_faults(self, output: str | None = None, index: int | None = None) -> None:
        """Remove the sensor faults of ``output`` (None: all outputs) of ``index`` (None: all)."""
        i = self._index(index)
        names = list(self.type.outputs) if output is None else [output]
        for name in names:
            sig = self.type.outputs.get(name)
            if sig is None:
                raise ValueError(f"{self.type.name}: no output {name!r}; expected one of "
                                 f"{', '.join(self.type.outputs)}")
            k = self._out[sig.kind][name]
            {"float": self.ff, "int": self.fi, "bool": self.fb}[sig.kind][:, k, i] = 0
        self._publish()


def _coerce(block: str, what: str, kind: str, value: Value) -> Value:
    if kind == "bool":
        if not isinstance(value, bool | np.bool_ | int | np.integer) or value not in (0, 1):
            raise ValueError(f"{block}: {what} is a bool, got {value!r}")
        return bool(value)
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{block}: {what} is a number, got {value!r}") from exc
    if kind == "int":
        if not v.is_integer():
            raise ValueError(f"{block}: {what} is a whole number, got {value!r}")
        return int(v)
    return v


def check_param(block: str, name: str, spec: Param, value: Any) -> float:
    """``value`` as a float if it suits ``spec`` (a number, in range, whole if "int")."""
    if isinstance(value, bool | np.bool_):
        value = float(value)
    if not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"{block}: parameter {name!r} must be a number ({spec.unit or 'no unit'}"
                         f"), got {value!r}")
    v = float(value)
    if math.isnan(v) or not spec.min <= v <= spec.max:
        raise ValueError(f"{block}: parameter {name!r} must be within [{spec.min:g}, "
                         f"{spec.max:g}] {spec.unit}".rstrip() + f", got {value!r}")
    if spec.kind == "int" and not v.is_integer():
        raise ValueError(f"{block}: parameter {name!r} must be a whole number, got {value!r}")
    return v
