"""TagSpec: write guards (check_write) and load-time consistency checks (validate)."""

import math

import numpy as np
import pytest

from smartline.core import WriteRefusedError
from smartline.tags import (
    Access,
    DataType,
    Scale,
    TagSpec,
    parse_address,
    text_capacity,
)


def tag(address: str, family: str = "modbus", **kw) -> TagSpec:
    kw.setdefault("access", Access.RW)
    return TagSpec(name="t", device="dev", address=parse_address(family, address), **kw)


def refused(spec: TagSpec, value: object) -> str:
    with pytest.raises(WriteRefusedError) as info:
        spec.check_write(value)
    assert info.value.tag == "t"
    assert info.value.device == "dev"
    return info.value.message


class TestProperties:
    def test_from_the_address(self):
        t = tag("hr:10:float32[4]")
        assert (t.dtype, t.elements, t.is_text, t.is_array, t.writable) == (
            DataType.FLOAT32, 4, False, True, True)
        assert tag("hr:0:string<4>").is_text
        assert not tag("hr:0:string<4>").is_array
        assert not tag("DB1.DBB0:CHAR[8]", "s7").is_array
        assert tag("ns=2;s=x", "opcua").dtype is None
        assert tag("weight", "serial").dtype is None
        assert tag("level", "memory").dtype is DataType.FLOAT64

    def test_access(self):
        assert TagSpec("t", "d", parse_address("modbus", "hr:0")).access is Access.R
        assert not TagSpec("t", "d", parse_address("modbus", "hr:0")).writable
        assert tag("hr:0", access=Access.W).writable

    def test_text_capacity(self):
        assert text_capacity(parse_address("modbus", "hr:0:string<7>")) == (7, "ascii")
        assert text_capacity(parse_address("s7", "DB1.DBB0:STRING[9]")) == (9, "latin-1")
        assert text_capacity(parse_address("s7", "DB1.DBB0:CHAR[3]")) == (3, "latin-1")
        assert text_capacity(parse_address("s7", "DB1.DBB0:CHAR")) == (1, "latin-1")
        assert text_capacity(parse_address("memory", "m:string<5>")) == (5, "utf-8")
        assert text_capacity(parse_address("modbus", "hr:0")) is None


class TestCheckWrite:
    def test_read_only_is_refused(self):
        t = tag("hr:0", access=Access.R)
        assert refused(t, 1) == "tag is read-only (access r)"
        with pytest.raises(WriteRefusedError) as info:
            t.check_write(1)
        assert str(info.value) == "device 'dev', tag 't': tag is read-only (access r)"

    def test_unscaled_integers(self):
        t = tag("hr:0:int16")
        assert t.check_write(5) == 5
        assert type(t.check_write(5.0)) is int
        assert t.check_write(np.int64(-7)) == -7
        assert refused(t, 1.5) == "1.5 is not a whole number; int16 holds integers only"
        assert refused(t, 40000) == "40000 does not fit int16 (-32768..32767)"
        assert refused(t, "5") == "expected a number for a int16 tag, found str '5'"
        assert refused(t, True) == "expected a number for a int16 tag, found bool True"
        assert refused(t, None) == "expected a number for a int16 tag, found NoneType None"

    def test_floats(self):
        t = tag("hr:0:float32")
        assert t.check_write(1.25) == 1.25
        assert t.check_write(3) == 3.0
        assert type(t.check_write(3)) is float
        assert refused(t, "abc") == "expected a number for a float32 tag, found str 'abc'"
        assert refused(t, math.nan) == "value nan is not a finite number"
        assert refused(t, math.inf) == "value inf is not a finite number"
        assert refused(t, 1e39).startswith("1e+39 does not fit float32")

    def test_limits_are_inclusive_engineering_units(self):
        t = tag("hr:0:float32", limits=(0.0, 100.0))
        assert t.check_write(0) == 0.0
        assert t.check_write(100) == 100.0
        assert refused(t, 100.5) == "value 100.5 outside limits [0, 100]"
        assert refused(t, -1) == "value -1 outside limits [0, 100]"

    def test_scaled_integer_rounds_to_nearest(self):
        # DESIGN §3 speed_sp: raw 0..10000 ↔ 0..120 bpm, limits 0..100
        t = tag("hr:200:uint16", scale=Scale.from_ranges((0, 10000), (0, 120)),
                limits=(0, 100))
        assert t.check_write(60) == 5000
        assert type(t.check_write(60)) is int
        assert t.check_write(60.0006) == 5000  # raw 5000.005 → 5000
        assert t.check_write(60.0066) == 5001  # raw 5000.55 → 5001
        assert t.check_write(100) == 8333  # raw 8333.33 → 8333
        assert refused(t, 101) == "value 101 outside limits [0, 100]"

    def test_scaled_integer_rounds_ties_to_even(self):
        t = tag("hr:0:int16", scale=Scale(gain=0.5))
        assert t.check_write(1.25) == 2  # raw 2.5 → 2
        assert t.check_write(1.75) == 4  # raw 3.5 → 4
        assert t.check_write(-1.25) == -2

    def test_scaled_raw_must_fit_the_wire_type(self):
        t = tag("ir:0:int16", scale=Scale(gain=0.1), access=Access.RW)
        assert t.check_write(-3276.8) == -32768
        assert refused(t, 3300) == "value 3300 scales to raw 33000, which does not fit int16 " \
                                   "(-32768..32767)"

    def test_scaled_float(self):
        t = tag("hr:0:float32", scale=Scale(gain=2.0, offset=1.0))
        assert t.check_write(5.0) == 2.0
        assert type(t.check_write(5)) is float

    def test_bool(self):
        t = tag("co:5")
        assert t.check_write(True) is True
        assert t.check_write(0) is False
        assert t.check_write(np.bool_(True)) is True
        assert refused(t, 2) == "expected a bool (or 0/1) for a bool value, found int 2"
        assert refused(t, 1.0) == "expected a bool (or 0/1) for a bool value, found float 1.0"
        assert refused(t, "true") == "expected a bool (or 0/1) for a bool value, found str 'true'"
        assert tag("hr:7.3").check_write(1) is True

    def test_strings(self):
        t = tag("hr:0:string<4>")
        assert t.check_write("ABCD") == "ABCD"
        assert refused(t, "ABCDE") == "text 'ABCDE' is 5 bytes long: the field holds at most 4"
        assert refused(t, 12) == "expected text, found int 12"
        assert refused(t, "é") == "text 'é' has the character 'é', which ascii cannot encode"
        s7 = tag("DB1.DBB0:STRING[4]", "s7")
        assert s7.check_write("25°C") == "25°C"
        mem = tag("m:string<4>", "memory")
        assert refused(mem, "ééé") == "text 'ééé' is 6 bytes long: the field holds at most 4"

    def test_arrays(self):
        t = tag("hr:0:int16[3]", limits=(-10, 10))
        assert t.check_write([1, 2, 3]) == (1, 2, 3)
        assert t.check_write(np.array([1, 2, 3])) == (1, 2, 3)
        assert t.check_write((1.0, -2.0, 10)) == (1, -2, 10)
        assert refused(t, 5) == "expected a sequence of 3 values for this array tag, found int 5"
        assert refused(t, "abc") == ("expected a sequence of 3 values for this array tag, "
                                     "found str 'abc'")
        assert refused(t, [1, 2]) == "expected 3 values for this array tag, found 2"
        assert refused(t, [1, 2, 11]) == "element [2]: value 11 outside limits [-10, 10]"
        assert refused(t, [1, "x", 3]) == ("element [1]: expected a number for a int16 tag, "
                                           "found str 'x'")
        b = tag("co:0:bool[2]")
        assert b.check_write([True, 0]) == (True, False)

    def test_untyped_addresses_pass_values_through(self):
        t = tag("ns=2;s=Line.Temp", "opcua")
        assert t.check_write(1.5) == 1.5
        assert t.check_write(7) == 7
        assert type(t.check_write(7)) is int
        assert t.check_write("text") == "text"
        assert t.check_write(True) is True
        assert refused(t, math.nan) == "value nan is not a finite number"
        assert refused(t, [1]) == "expected a number for a scaled or limited tag, found list [1]"

    def test_untyped_addresses_with_scale_or_limits_need_numbers(self):
        t = tag("weight", "serial", scale=Scale(gain=1000.0), limits=(0, 5))
        assert t.check_write(2) == pytest.approx(0.002)
        assert refused(t, "2") == "expected a number for a scaled or limited tag, found str '2'"
        assert refused(t, True).startswith("expected a number")
        assert refused(t, 6) == "value 6 outside limits [0, 5]"


class TestValidate:
    def test_a_sound_spec_has_no_problems(self):
        t = tag("hr:200:uint16", scale=Scale.from_ranges((0, 10000), (0, 120)),
                limits=(0, 100), safe=0, deadband=0.5, unit="bpm")
        assert t.validate() == []
        assert tag("co:5", safe=False).validate() == []
        assert tag("ns=2;s=x", "opcua", safe="idle").validate() == []

    def test_write_access_on_input_areas(self):
        assert tag("ir:0").validate() == [
            "access rw on ir:0:uint16: ir (input registers) cannot be written; use access r"]
        assert tag("di:0", access=Access.W).validate() == [
            "access w on di:0: di (discrete inputs) cannot be written; use access r"]
        assert tag("IW0", "s7").validate() == [
            "access rw on IW0: I (process inputs) cannot be written; use access r"]
        assert tag("ir:0", access=Access.R).validate() == []

    def test_scale_limits_deadband_on_bool_and_text(self):
        t = tag("co:0", scale=Scale(gain=2.0), limits=(0, 1), deadband=1.0)
        assert t.validate() == ["scale does not apply to a bool tag",
                                "limits do not apply to a bool tag",
                                "deadband does not apply to a bool tag"]
        assert tag("hr:0:string<4>", scale=Scale(gain=2.0)).validate() == [
            "scale does not apply to a text tag"]

    def test_limits_reversed_or_not_finite(self):
        assert tag("hr:0:float32", limits=(10, 0)).validate() == [
            "limits [10, 0] are reversed: expected [low, high]"]
        assert tag("hr:0:float32", limits=(0, math.inf)).validate() == [
            "limits [0, inf] must be finite numbers"]

    def test_limits_outside_the_raw_type(self):
        assert tag("hr:0:uint16", limits=(-5, 100)).validate() == [
            "limits [-5, 100] reach outside what uint16 can hold (0..65535)"]
        scaled = tag("hr:0:uint16", scale=Scale(gain=0.01), limits=(0, 1000))
        assert scaled.validate() == [
            "limits [0, 1000] reach outside what uint16 can hold: scaled, the tag spans "
            "[0, 655.35]"]
        negative = tag("hr:0:int16", scale=Scale(gain=-1.0), limits=(-32767, 32768))
        assert negative.validate() == []

    def test_scale_raw_range_must_fit_the_type(self):
        t = tag("hr:0:uint16", scale=Scale.from_ranges((0, 100000), (0, 100)))
        assert t.validate() == ["scale raw range [0, 100000] does not fit uint16 (0..65535)"]

    def test_safe_value(self):
        assert tag("hr:0:float32", access=Access.R, safe=0.0).validate() == [
            "safe value 0.0 on a read-only tag (access r): it would never be written"]
        assert tag("hr:0:float32", limits=(10, 20), safe=0.0).validate() == [
            "safe value 0.0 cannot be written: value 0 outside limits [10, 20]"]
        assert tag("hr:0:float32", safe="off").validate() == [
            "safe value 'off' cannot be written: expected a number for a float32 tag, "
            "found str 'off'"]
        assert tag("hr:0:int16", safe=1.5).validate() == [
            "safe value 1.5 cannot be written: 1.5 is not a whole number; int16 holds "
            "integers only"]
        assert tag("co:0", safe=2).validate() == [
            "safe value 2 cannot be written: expected a bool (or 0/1) for a bool value, "
            "found int 2"]

    def test_deadband(self):
        assert tag("hr:0:float32", deadband=-1.0).validate() == [
            "deadband -1.0 must be a finite number ≥ 0"]
        assert tag("hr:0:float32", deadband=math.nan).validate() == [
            "deadband nan must be a finite number ≥ 0"]

    def test_names(self):
        t = TagSpec("", "", parse_address("modbus", "hr:0"))
        assert t.validate() == ["tag name is empty", "device name is empty"]

    def test_every_problem_is_reported(self):
        t = tag("ir:0:uint16", access=Access.RW, limits=(100, 0), deadband=-2.0)
        assert len(t.validate()) == 3


def test_a_finite_value_whose_scaling_overflows_is_refused():
    # found by the property test of the compiled output check: 1.8e307 / 0.1 is inf, which
    # a float32 (or untyped) tag would otherwise have taken as a raw value
    for address in ("x:float32", "x:float64"):
        t = TagSpec("x", "d", parse_address("memory", address), access=Access.RW,
                    scale=Scale(gain=0.1))
        with pytest.raises(WriteRefusedError, match="not finite"):
            t.check_write(1.797693134862316e307)


@pytest.mark.parametrize(("address", "kw", "each"), [
    ("co:1", {}, True),                                  # a command
    ("hr:1:uint16", {}, True),                           # a step number, a mode
    ("hr:1:string<8>", {}, True),                        # a recipe name
    ("hr:1:float32", {}, False),                         # an analog output
    ("hr:1:int16", {"scale": Scale(gain=0.1)}, False),   # an analog value in an integer
    ("hr:1:float32", {"audit": "changes"}, True),        # declared by the integrator
    ("co:1", {"audit": "outcome"}, False),
])
def test_which_program_writes_are_audited_each_time(address: str, kw: dict[str, object],
                                                     each: bool) -> None:
    spec = tag(address, **kw)
    assert spec.validate() == []
    assert spec.audit_each_write is each


def test_audit_problems() -> None:
    assert tag("hr:1:float32", audit="always").validate() == [
        "audit 'always' is not one of changes, outcome"]
    assert tag("hr:1:float32", access=Access.R, audit="changes").validate() == [
        "audit 'changes' on a read-only tag (access r): it is never written"]
