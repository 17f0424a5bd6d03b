"""The compiled loop's output check agrees with TagSpec.check_write, the rule every other
write goes through: the same values are refused, and accepted ones scale to the same raw."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smartline.core import WriteRefusedError
from smartline.cycle import _loop
from smartline.cycle._bind import output_rules
from smartline.tags import Access, Scale, TagSpec, parse_address

TYPES = ["bool", "int16", "uint16", "int32", "uint32", "float32", "float64", "int64", "uint64",
         "uint8"]


@st.composite
def specs(draw: st.DrawFn) -> TagSpec:
    dtype = draw(st.sampled_from(TYPES))
    address = parse_address("memory", f"x:{dtype}")
    numeric = dtype != "bool"
    scale = None
    if numeric and draw(st.booleans()):
        gain = draw(st.sampled_from([0.1, 0.5, 2.0, -1.0, 0.01, 1 / 3]))
        scale = Scale(gain=gain, offset=draw(st.sampled_from([0.0, -40.0, 12.5])))
    limits = None
    if numeric and draw(st.booleans()):
        lo = draw(st.floats(-1e4, 1e4, allow_nan=False))
        limits = (lo, lo + draw(st.floats(0, 1e4, allow_nan=False)))
    return TagSpec("x", "d", address, access=Access.RW, scale=scale, limits=limits)


values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=True, width=64),
    st.integers(-70_000, 70_000).map(float),
    st.sampled_from([0.5, 1.5, 2.5, -0.5, 127.0, 128.0, 255.0, 256.0, 65535.0, 65536.0,
                     2.0**31, 2.0**32, 2.0**63, -(2.0**63), 2.0**64, 2.0**63 - 1024,
                     3.4e38, 3.5e38, 1e300]))


def compiled(spec: TagSpec, v: float) -> tuple[int, float]:
    r = output_rules([spec])
    code, raw = _loop.check_output(v, r.kind[0], r.scaled[0], r.lo[0], r.hi[0], r.gain[0],
                                   r.offset[0], r.rlo[0], r.rhi[0])
    return int(code), float(raw)


@given(specs(), values)
@settings(max_examples=2000, deadline=None)
def test_compiled_check_agrees_with_check_write(spec: TagSpec, v: float) -> None:
    code, raw = compiled(spec, v)
    try:
        expected = spec.check_write(spec.typed(v))
    except WriteRefusedError:
        assert code != _loop.RC_OK, f"{spec.dtype} {spec.scale} {spec.limits}: {v!r} accepted"
        return
    assert code == _loop.RC_OK, f"{spec.dtype} {spec.scale} {spec.limits}: {v!r} refused " \
                                f"({code})"
    assert isinstance(expected, bool | int | float)
    assert raw == float(expected) or (math.isnan(raw) and math.isnan(float(expected)))


@pytest.mark.parametrize(("dtype", "v", "code"), [
    ("int16", 1.5, _loop.RC_NOT_WHOLE), ("int16", 40000.0, _loop.RC_RANGE),
    ("float64", math.inf, _loop.RC_NOT_FINITE), ("float32", 1e39, _loop.RC_RANGE),
    ("uint16", -1.0, _loop.RC_RANGE), ("bool", 0.3, _loop.RC_OK)])
def test_refusal_codes(dtype: str, v: float, code: int) -> None:
    spec = TagSpec("x", "d", parse_address("memory", f"x:{dtype}"), access=Access.RW)
    assert compiled(spec, v)[0] == code


def test_scaled_integers_round_half_to_even() -> None:
    spec = TagSpec("x", "d", parse_address("memory", "x:int16"), access=Access.RW,
                   scale=Scale(gain=0.5))
    assert compiled(spec, 1.25)[1] == 2.0  # raw 2.5 → 2, as Python's round()
    assert compiled(spec, 1.75)[1] == 4.0  # raw 3.5 → 4
    assert np.rint(2.5) == round(2.5)
