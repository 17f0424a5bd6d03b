"""A simulated Modbus device remembers each integer point's last encoded words (the plant sets
values every step): the store still holds what the plant set, whatever a client wrote in
between, and every type encodes exactly as without the memo."""

from __future__ import annotations

import math

import pytest

from smartline.hil.modbus import ModbusDeviceSim, SimPoint
from smartline.hil.modbus._values import encode_words
from smartline.tags import Scale, parse_modbus

POINTS = {"i16": "hr:0:int16", "u32": "hr:2:uint32", "f32": "hr:4:float32",
          "f64": "hr:8:float64:cdab", "s": "hr:12:string<4>", "arr": "hr:16:int16[2]"}


@pytest.mark.parametrize(("name", "values"), [
    ("i16", [1503.7, 1503.7, 1504.2, 1503.6, -12, -12.4, 7]),  # rounds: 1504 three times
    ("u32", [70000, 70000.4, 69999.6, 1]),
    ("f32", [1.5, 1.5, 1.25, math.inf, -0.0, 0.0]),
    ("f64", [2.5, 2.5, -7.125]),
    ("s", ["ab", "ab", "cd"]),
    ("arr", [[1, 2], [1, 2], [3, 4]]),
])
def test_memo_encodes_as_encode_words(name: str, values: list[object]) -> None:
    dev = ModbusDeviceSim(1, POINTS)
    a = dev.points[name].address
    for v in values:
        dev.set_raw(name, v)
        assert dev.get_registers("hr", a.offset, a.registers) == encode_words(a, v), v


def test_same_value_again_restores_what_a_client_overwrote() -> None:
    dev = ModbusDeviceSim(1, [SimPoint("pv", parse_modbus("hr:0:int16"), Scale(gain=0.1))])
    dev.set("pv", 150.04)
    assert dev.get_registers("hr", 0, 1) == [1500]
    dev.set_registers("hr", 0, [7])  # as a client write lands in the store
    dev.set("pv", 150.04)
    assert dev.get_registers("hr", 0, 1) == [1500]


def test_non_finite_integer_value_still_refused() -> None:
    dev = ModbusDeviceSim(1, POINTS)
    dev.set_raw("i16", 5)
    with pytest.raises(ValueError, match="not a"):
        dev.set_raw("i16", math.nan)
    assert dev.get_registers("hr", 0, 1) == [5]
