"""Linear scaling: eng = raw * gain + offset, vectorised both ways."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from smartline.tags import Scale


def test_gain_offset():
    s = Scale(gain=0.1, offset=-40.0)
    assert s.to_eng(1000.0) == pytest.approx(60.0)
    assert s.to_raw(60.0) == pytest.approx(1000.0)
    assert isinstance(s.to_eng(5), float)
    assert (s.raw_range, s.eng_range) == (None, None)


def test_from_ranges():
    s = Scale.from_ranges((0, 10000), (0, 120))
    assert s.gain == pytest.approx(0.012)
    assert s.offset == 0.0
    assert s.raw_range == (0.0, 10000.0)
    assert s.eng_range == (0.0, 120.0)
    assert s.to_eng(5000) == pytest.approx(60.0)
    assert s.to_raw(60.0) == pytest.approx(5000.0)


def test_from_ranges_with_offset_and_descending():
    s = Scale.from_ranges((4000, 20000), (0, 100))  # 4..20 mA in µA
    assert s.to_eng(4000) == pytest.approx(0.0)
    assert s.to_eng(20000) == pytest.approx(100.0)
    d = Scale.from_ranges((0, 100), (50, -50))
    assert d.gain == -1.0
    assert d.to_eng(0) == 50.0
    assert d.eng_span(0, 100) == (-50.0, 50.0)


def test_vectorised():
    s = Scale(gain=2.0, offset=1.0)
    raw = np.array([0, 1, 2], dtype=np.int16)
    eng = s.to_eng(raw)
    assert eng.dtype == np.float64
    assert eng.tolist() == [1.0, 3.0, 5.0]
    assert s.to_raw(eng).tolist() == [0.0, 1.0, 2.0]
    assert math.isnan(s.to_eng(np.array([np.nan]))[0])


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"gain": 0.0}, r"^scale gain 0\.0 must be a finite number other than 0"),
    ({"gain": math.inf}, "scale gain inf must be a finite number"),
    ({"gain": math.nan}, "scale gain nan must be a finite number"),
    ({"offset": math.nan}, r"^scale offset nan must be a finite number$"),
    ({"raw_range": (0.0, 1.0)}, "scale ranges come in pairs"),
])
def test_invalid_scales(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Scale(**kwargs)


@pytest.mark.parametrize(("raw", "eng", "message"), [
    ((5, 5), (0, 1), r"^scale raw range \[5, 5\] is empty: expected two different raw values$"),
    ((0, 1), (3, 3), r"^scale eng range \[3, 3\] is empty"),
    ((0, math.inf), (0, 1), "scale ranges must be finite numbers"),
])
def test_invalid_ranges(raw, eng, message):
    with pytest.raises(ValueError, match=message):
        Scale.from_ranges(raw, eng)


@given(st.floats(-1e6, 1e6).filter(lambda g: abs(g) > 1e-6), st.floats(-1e6, 1e6),
       st.floats(-1e9, 1e9))
def test_to_raw_inverts_to_eng(gain, offset, raw):
    s = Scale(gain, offset)
    tolerance = 1e-6 * (1 + abs(offset / gain))
    assert s.to_raw(s.to_eng(raw)) == pytest.approx(raw, rel=1e-9, abs=tolerance)
