"""Tag specifications: what a tag is, and which writes to it are allowed."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from ..core import WriteRefusedError, WriteValue
from ._base import TagAddress
from ._scale import Scale
from ._types import DataType, coerce_raw, encode_text

__all__ = ["Access", "TagSpec", "text_capacity"]

Scalar = bool | int | float


class Access(StrEnum):
    """Who may write: ``r`` nobody (the default), ``rw`` and ``w`` this controller."""

    R = "r"
    RW = "rw"
    W = "w"


def text_capacity(address: TagAddress) -> tuple[int, str] | None:
    """Bytes a text address holds and the encoding it uses; None if it is not (known) text."""
    return address.text_rule


#: ``audit`` of a tag: every value a program writes, or only changes of the outcome
AUDIT_CHANGES = "changes"
AUDIT_MODES = (AUDIT_CHANGES, "outcome")


@dataclass(frozen=True, slots=True)
class TagSpec:
    """One tag of a line: where it lives, how it scales, and the rules for writing it.

    ``limits``, ``safe`` and ``deadband`` are in engineering units. Call :meth:`validate`
    once at load time; :meth:`check_write` guards every write.
    """

    name: str
    device: str
    address: TagAddress
    access: Access = Access.R
    scale: Scale | None = None
    limits: tuple[float, float] | None = None
    safe: bool | int | float | str | None = None
    unit: str | None = None
    description: str = ""
    deadband: float | None = None
    #: how a program's writes of this tag are audited: ``changes`` (every value it writes),
    #: ``outcome`` (when the outcome changes), None (by type: see :attr:`audit_each_write`)
    audit: str | None = None

    @property
    def audit_each_write(self) -> bool:
        """Whether every value a program writes to this tag is audited, not only a change of
        the write's outcome. ``audit`` decides; without it discrete tags (bool, integer
        without scale, text: commands, modes, recipe numbers) are audited on every write and
        analog ones (a PID output moves every cycle) when their outcome changes."""
        if self.audit is not None:
            return self.audit == AUDIT_CHANGES
        dtype = self.dtype
        if self.is_text or dtype is DataType.BOOL:
            return True
        return dtype is not None and dtype.is_integer and self.scale is None

    @property
    def dtype(self) -> DataType | None:
        """Storage type the address fixes; None where the device decides (OPC UA, profiles)."""
        return self.address.dtype

    @property
    def elements(self) -> int:
        return self.address.elements

    @property
    def is_text(self) -> bool:
        return self.address.is_text

    @property
    def is_array(self) -> bool:
        """Written and read as a sequence of ``elements`` values."""
        return getattr(self.address, "count", None) is not None and not self.is_text

    @property
    def writable(self) -> bool:
        return self.access in (Access.RW, Access.W)

    # -- values ------------------------------------------------------------------------------
    def typed(self, value: float) -> bool | int | float:
        """A float (from the image or a program) as the Python value of this tag's type.

        Bool tags give ``bool``; unscaled integer tags give ``int`` when the value is a
        whole number; everything else stays ``float`` (NaN included).
        """
        dtype = self.dtype
        if dtype is DataType.BOOL:
            return bool(value)
        v = float(value)
        if dtype is not None and dtype.is_integer and self.scale is None \
                and math.isfinite(v) and v.is_integer():
            return int(v)
        return v

    def typed_values(self, values: Sequence[float] | np.ndarray) -> object:
        """The tag's elements (floats) typed by :meth:`typed`: a tuple for an array tag."""
        if self.is_array:
            return tuple(self.typed(v) for v in values)
        return self.typed(values[0])

    # -- writes ----------------------------------------------------------------------------
    def check_write(self, value: object) -> WriteValue:
        """The raw value to send for engineering ``value``, or ``WriteRefusedError`` saying why not.

        Refuses: a read-only tag; the wrong kind of value (text for a number, a number for
        text, 1.5 for an unscaled integer tag, non-finite numbers); a value outside
        ``limits``; a raw value the wire type cannot hold. Scaled integer tags round the
        raw value to the nearest integer (ties to even). Arrays take a sequence of
        ``elements`` values and return a tuple.
        """
        if not self.writable:
            raise self._refuse(f"tag is read-only (access {self.access.value})")
        try:
            return self._raw_value(value)
        except ValueError as exc:
            raise self._refuse(str(exc)) from None

    def _refuse(self, reason: str) -> WriteRefusedError:
        return WriteRefusedError(reason, device=self.device, tag=self.name)

    def _raw_value(self, value: object) -> WriteValue:
        if self.is_text:
            rule = text_capacity(self.address)
            assert rule is not None
            encode_text(value, *rule)
            assert isinstance(value, str)
            return value
        if self.is_array:
            if isinstance(value, str | bytes) or not isinstance(value, Sequence | np.ndarray):
                raise ValueError(f"expected a sequence of {self.elements} values for this "
                                 f"array tag, found {type(value).__name__} {value!r}")
            items = list(value)
            if len(items) != self.elements:
                raise ValueError(f"expected {self.elements} values for this array tag, "
                                 f"found {len(items)}")
            out: list[Scalar] = []
            for i, v in enumerate(items):
                try:
                    raw = self._raw_scalar(v)
                    if isinstance(raw, str):
                        raise ValueError(f"expected a number, found str {raw!r}")
                except ValueError as exc:
                    raise ValueError(f"element [{i}]: {exc}") from None
                out.append(raw)
            return tuple(out)
        return self._raw_scalar(value)

    def _raw_scalar(self, value: object) -> Scalar | str:
        dtype = self.dtype
        if dtype is DataType.BOOL:
            return coerce_raw(DataType.BOOL, value)
        plain = self.scale is None and self.limits is None
        if dtype is None and plain and isinstance(value, str | bool | np.bool_):
            return value if isinstance(value, str) else bool(value)
        if isinstance(value, bool | np.bool_) or not isinstance(
                value, int | float | np.integer | np.floating):
            what = f"a {dtype} tag" if dtype is not None else "a scaled or limited tag"
            raise ValueError(f"expected a number for {what}, found "
                             f"{type(value).__name__} {value!r}")
        number: int | float = int(value) if isinstance(value, int | np.integer) else float(value)
        if not math.isfinite(number):
            raise ValueError(f"value {number!r} is not a finite number")
        if self.limits is not None:
            lo, hi = self.limits
            if not lo <= number <= hi:
                raise ValueError(f"value {number:g} outside limits [{lo:g}, {hi:g}]")
        if self.scale is None:
            return number if dtype is None else coerce_raw(dtype, number)
        raw = self.scale.to_raw(float(number))
        if not math.isfinite(raw):  # a finite value whose scaling overflows
            raise ValueError(f"value {number:g} scales to raw {raw!r}, which is not finite")
        if dtype is None:
            return raw
        if dtype.is_integer:
            raw = round(raw)
        try:
            return coerce_raw(dtype, raw)
        except ValueError:
            raise ValueError(f"value {number:g} scales to raw {raw:g}, which does not fit "
                             f"{dtype} ({dtype.describe_range()})") from None

    # -- load-time checks --------------------------------------------------------------------
    def validate(self) -> list[str]:
        """Consistency problems of this spec, as messages for the user (empty when fine)."""
        problems: list[str] = []
        addr = self.address
        dtype = self.dtype
        if not self.name:
            problems.append("tag name is empty")
        if not self.device:
            problems.append("device name is empty")
        if self.writable and not addr.writable_area:
            area = getattr(addr, "area", None)
            what = {"ir": "ir (input registers)", "di": "di (discrete inputs)",
                    "I": "I (process inputs)"}.get(str(area), "its area")
            problems.append(f"access {self.access.value} on {addr.canonical()}: {what} cannot "
                            "be written; use access r")
        kind = "text" if self.is_text else ("bool" if dtype is DataType.BOOL else None)
        if kind is not None:
            for what, present in (("scale does", self.scale is not None),
                                  ("limits do", self.limits is not None),
                                  ("deadband does", self.deadband is not None)):
                if present:
                    problems.append(f"{what} not apply to a {kind} tag")
        if self.limits is not None and kind is None:
            problems.extend(self._limit_problems(self.limits, dtype))
        if self.scale is not None and self.scale.raw_range is not None and dtype is not None \
                and dtype.is_numeric:
            r0, r1 = sorted(self.scale.raw_range)
            lo, hi = dtype.range
            if r0 < lo or r1 > hi:
                problems.append(f"scale raw range [{self.scale.raw_range[0]:g}, "
                                f"{self.scale.raw_range[1]:g}] does not fit {dtype} "
                                f"({dtype.describe_range()})")
        if self.deadband is not None and kind is None and (
                not math.isfinite(self.deadband) or self.deadband < 0):
            problems.append(f"deadband {self.deadband!r} must be a finite number ≥ 0")
        if self.safe is not None:
            if not self.writable:
                problems.append(f"safe value {self.safe!r} on a read-only tag (access "
                                f"{self.access.value}): it would never be written")
            else:
                try:
                    self._raw_value(self.safe)
                except ValueError as exc:
                    problems.append(f"safe value {self.safe!r} cannot be written: {exc}")
        if self.audit is not None:
            if self.audit not in AUDIT_MODES:
                problems.append(f"audit {self.audit!r} is not one of "
                                f"{', '.join(AUDIT_MODES)}")
            elif not self.writable:
                problems.append(f"audit {self.audit!r} on a read-only tag (access "
                                f"{self.access.value}): it is never written")
        return problems

    def _limit_problems(self, limits: tuple[float, float], dtype: DataType | None) -> list[str]:
        lo, hi = limits
        text = f"[{lo:g}, {hi:g}]"
        if not (math.isfinite(lo) and math.isfinite(hi)):
            return [f"limits {text} must be finite numbers"]
        if lo > hi:
            return [f"limits {text} are reversed: expected [low, high]"]
        if dtype is None or not dtype.is_numeric:
            return []
        rlo, rhi = dtype.range
        if self.scale is None:
            if lo < rlo or hi > rhi:
                return [f"limits {text} reach outside what {dtype} can hold "
                        f"({dtype.describe_range()})"]
            return []
        elo, ehi = self.scale.eng_span(rlo, rhi)
        if lo < elo or hi > ehi:
            return [f"limits {text} reach outside what {dtype} can hold: scaled, the tag "
                    f"spans [{elo:g}, {ehi:g}]"]
        return []
