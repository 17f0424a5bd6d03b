"""DataType, ByteOrder and the shared coercion rules."""

import math

import numpy as np
import pytest

from smartline import SmartlineError
from smartline.tags import AddressError, ByteOrder, DataType, coerce_raw


def test_address_error_is_a_value_error_in_the_smartline_tree():
    err = AddressError("bad", column=3)
    assert isinstance(err, ValueError)
    assert isinstance(err, SmartlineError)
    assert err.column == 3
    assert str(err) == "bad"


@pytest.mark.parametrize(("dtype", "nbytes", "np_dtype"), [
    (DataType.BOOL, 1, np.bool_), (DataType.INT8, 1, np.int8), (DataType.UINT8, 1, np.uint8),
    (DataType.INT16, 2, np.int16), (DataType.UINT16, 2, np.uint16),
    (DataType.INT32, 4, np.int32), (DataType.UINT32, 4, np.uint32),
    (DataType.INT64, 8, np.int64), (DataType.UINT64, 8, np.uint64),
    (DataType.FLOAT32, 4, np.float32), (DataType.FLOAT64, 8, np.float64),
])
def test_datatype_sizes_and_numpy_types(dtype, nbytes, np_dtype):
    assert dtype.nbytes == nbytes
    assert dtype.numpy == np.dtype(np_dtype)
    assert dtype.numpy.isnative


def test_string_has_no_fixed_size_or_range():
    assert DataType.STRING.nbytes is None
    assert DataType.STRING.numpy == np.dtype(np.str_)
    with pytest.raises(ValueError, match="no numeric range"):
        _ = DataType.STRING.range


def test_datatype_names_are_the_modbus_grammar_names():
    assert [d.value for d in DataType] == [
        "bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
        "float32", "float64", "string"]


@pytest.mark.parametrize(("dtype", "lo", "hi"), [
    (DataType.BOOL, 0, 1),
    (DataType.INT8, -128, 127), (DataType.UINT8, 0, 255),
    (DataType.INT16, -32768, 32767), (DataType.UINT16, 0, 65535),
    (DataType.INT32, -2147483648, 2147483647), (DataType.UINT32, 0, 4294967295),
    (DataType.INT64, -9223372036854775808, 9223372036854775807),
    (DataType.UINT64, 0, 18446744073709551615),
])
def test_integer_ranges_are_exact(dtype, lo, hi):
    assert dtype.range == (lo, hi)
    assert all(isinstance(x, int) for x in dtype.range)


def test_float_ranges():
    assert DataType.FLOAT32.range == (-3.4028234663852886e38, 3.4028234663852886e38)
    assert DataType.FLOAT64.range == (-1.7976931348623157e308, 1.7976931348623157e308)


def test_kind_predicates():
    assert {d for d in DataType if d.is_integer} == {
        DataType.INT8, DataType.UINT8, DataType.INT16, DataType.UINT16, DataType.INT32,
        DataType.UINT32, DataType.INT64, DataType.UINT64}
    assert {d for d in DataType if d.is_float} == {DataType.FLOAT32, DataType.FLOAT64}
    assert not DataType.BOOL.is_numeric
    assert not DataType.STRING.is_numeric


def test_byte_order_flags():
    assert [(o.swaps_words, o.swaps_bytes) for o in ByteOrder] == [
        (False, False), (True, False), (False, True), (True, True)]
    assert ByteOrder("cdab") is ByteOrder.CDAB


class TestCoerceRaw:
    def test_bool_accepts_bool_and_0_1(self):
        assert coerce_raw(DataType.BOOL, True) is True
        assert coerce_raw(DataType.BOOL, np.bool_(False)) is False
        assert coerce_raw(DataType.BOOL, 1) is True
        assert coerce_raw(DataType.BOOL, 0) is False

    @pytest.mark.parametrize("value", [2, -1, 0.5, 1.0, "1", None])
    def test_bool_refuses_everything_else(self, value):
        with pytest.raises(ValueError, match="expected a bool"):
            coerce_raw(DataType.BOOL, value)

    def test_integer_accepts_integral_floats(self):
        assert coerce_raw(DataType.INT16, 2.0) == 2
        assert type(coerce_raw(DataType.INT16, 2.0)) is int
        assert coerce_raw(DataType.UINT64, np.uint64(2**64 - 1)) == 2**64 - 1

    def test_integer_refuses_fractions_and_out_of_range(self):
        with pytest.raises(ValueError, match=r"^1\.5 is not a whole number; int16 holds"):
            coerce_raw(DataType.INT16, 1.5)
        with pytest.raises(ValueError, match=r"^65536 does not fit uint16 \(0\.\.65535\)$"):
            coerce_raw(DataType.UINT16, 65536)
        with pytest.raises(ValueError, match=r"^-1 does not fit uint16"):
            coerce_raw(DataType.UINT16, -1)
        with pytest.raises(ValueError, match="not a whole number"):
            coerce_raw(DataType.INT32, math.inf)

    def test_numbers_refuse_bools_and_text(self):
        with pytest.raises(ValueError, match="expected a number for a int16 value, found bool"):
            coerce_raw(DataType.INT16, True)
        with pytest.raises(ValueError, match="found str 'x'"):
            coerce_raw(DataType.FLOAT32, "x")

    def test_float32_overflow_is_refused_but_nan_and_inf_pass(self):
        with pytest.raises(ValueError, match=r"^1e\+39 does not fit float32"):
            coerce_raw(DataType.FLOAT32, 1e39)
        assert math.isnan(coerce_raw(DataType.FLOAT32, math.nan))
        assert coerce_raw(DataType.FLOAT32, -math.inf) == -math.inf
        assert coerce_raw(DataType.FLOAT64, 1e300) == 1e300
        assert coerce_raw(DataType.FLOAT32, 3) == 3.0
