"""Every type of the S7 grammar, in every area, read and written against the simulated CPU.

The simulator packs and unpacks with its own struct code: a value the driver writes is
checked on the CPU side, and a value the CPU holds is checked as the driver reads it.
"""

from __future__ import annotations

import math

import pytest
from s7_support import driver, points, value_at

from smartline.core import Quality, WriteItem, WriteRefusedError
from smartline.hil.s7 import S7PlcSim

# address, value the CPU starts with, value the driver writes
CASES: list[tuple[str, object, object]] = [
    ("DB1.DBX0.0", True, False),
    ("DB1.DBX0.7", False, True),
    ("DB1.DBB1", 200, 17),
    ("DB1.DBB2:USINT", 255, 1),
    ("DB1.DBB3:SINT", -128, 127),
    ("DB1.DBB4:CHAR", "Z", "a"),
    ("DB1.DBW6:INT", -32768, 32767),
    ("DB1.DBW8:UINT", 65535, 1),
    ("DB1.DBW10", 0xBEEF, 0x1234),
    ("DB1.DBD12:DINT", -2_000_000_000, 2_000_000_000),
    ("DB1.DBD16:UDINT", 4_000_000_000, 3),
    ("DB1.DBD20", 0xDEADBEEF, 0x01020304),
    ("DB1.DBD24:REAL", -1.5, 1234.5),
    ("DB1.DBB28:LREAL", math.pi, -2.0 ** -40),
    ("DB1.DBB36:LINT", -(2 ** 63), 2 ** 62 + 12345),
    ("DB1.DBB44:ULINT", 2 ** 64 - 1, 2 ** 53 + 1),
    ("DB1.DBB52:LWORD", 0x0123456789ABCDEF, 2 ** 63 + 7),
    ("DB1.DBB60:STRING[20]", "Stilles Wasser süß", "Cola 0,5l"),
    ("DB1.DBB82:CHAR[6]", "AB12", "XYZ789"),
    ("DB1.DBW88:INT[4]", [1, -2, 3, -4], [-10, 20, -30, 40]),
    ("DB1.DBD96:REAL[3]", [0.5, 1.5, 2.5], [-0.25, 8.0, 1e10]),
    ("DB1.DBX108.3:BOOL[10]", [True, False] * 5, [False, True, True] * 3 + [False]),
    ("DB1.DBB110:BYTE[5]", [1, 2, 3, 4, 250], [9, 8, 7, 6, 5]),
    ("M10.2", True, False),
    ("MB11", 42, 43),
    ("MW20:INT", -7, 7),
    ("MD24:REAL", 0.125, 99.5),
    ("Q0.1", True, False),
    ("QW2", 0x8001, 0x7FFF),
    ("QD4:DINT", -1, 1),
]

INPUTS: list[tuple[str, object]] = [("I0.0", True), ("IB1", 0x5A), ("IW2:INT", -300),
                                    ("ID4:REAL", 2.75)]


def same(got: object, want: object) -> bool:
    if isinstance(want, str):
        return got == want
    if isinstance(want, list):
        assert isinstance(got, list)
        return all(same(g, w) for g, w in zip(got, want, strict=True))
    if isinstance(want, bool):
        return float(got) == float(want)  # type: ignore[arg-type]
    if isinstance(want, int):
        return int(got) == want  # type: ignore[call-overload]
    return math.isclose(float(got), float(want), rel_tol=1e-6)  # type: ignore[arg-type]


@pytest.mark.parametrize("pdu", [240, 480])
async def test_read_then_write_every_type(s7_factory, pdu: int) -> None:
    plc = S7PlcSim({f"p{i}": a for i, (a, _, _) in enumerate(CASES)}
                   | {f"in{i}": a for i, (a, _) in enumerate(INPUTS)}, dbs={1: 128})
    for i, (_, start, _) in enumerate(CASES):
        plc.set(f"p{i}", start)
    for i, (_, value) in enumerate(INPUTS):
        plc.set(f"in{i}", value)
    sim = await s7_factory(plc, pdu_max=pdu)
    pts = points(*(a for a, _, _ in CASES), *(a for a, _ in INPUTS))
    async with driver(sim) as d:
        assert d.pdu == pdu
        result = await d.read(d.plan(pts))
        assert (result.quality == Quality.GOOD).all()
        for p, (addr, start, _) in zip(pts, CASES, strict=False):
            assert same(value_at(result, p), start), (addr, value_at(result, p), start)
        for p, (addr, value) in zip(pts[len(CASES):], INPUTS, strict=True):
            assert same(value_at(result, p), value), addr
        # 64-bit integers beyond 2**53 travel exactly
        assert result.exact[pts[14].slot] == -(2 ** 63)
        assert result.exact[pts[15].slot] == 2 ** 64 - 1

        await d.write([WriteItem(p, new) for p, (_, _, new) in  # type: ignore[misc]
                       zip(pts, CASES, strict=False)])
        for i, (addr, _, new) in enumerate(CASES):
            assert same(plc.get(f"p{i}"), new), (addr, plc.get(f"p{i}"), new)
        again = await d.read(d.plan(pts[:len(CASES)]))
        for p, (addr, _, new) in zip(pts, CASES, strict=False):
            assert same(value_at(again, p), new), addr
        assert again.exact[pts[14].slot] == 2 ** 62 + 12345


async def test_bit_writes_leave_the_other_bits_of_the_byte(s7_factory) -> None:
    plc = S7PlcSim({"byte": "DB1.DBB0"})
    plc.set("byte", 0b1010_0101)
    sim = await s7_factory(plc)
    pts = points("DB1.DBX0.1", "DB1.DBX0.0", "DB1.DBX0.7")
    async with driver(sim) as d:
        await d.write([WriteItem(pts[0], True), WriteItem(pts[1], False),
                       WriteItem(pts[2], True)])
    assert plc.get("byte") == 0b1010_0110


async def test_writes_to_inputs_are_refused_before_any_io(s7_factory) -> None:
    plc = S7PlcSim({"in": "IW0"})
    sim = await s7_factory(plc)
    pts = points("IW0", "DB1.DBW0", "CPU.STATE")
    async with driver(sim) as d:
        before = sim.requests
        for item in (WriteItem(pts[0], 5), WriteItem(pts[2], 8),
                     WriteItem(pts[1], "text"), WriteItem(pts[1], 70000)):
            with pytest.raises(WriteRefusedError):
                await d.write([WriteItem(pts[1], 1), item])
        assert sim.requests == before
        assert d.health.failures == 0


async def test_a_corrupt_string_header_is_bad_with_decode_error(s7_factory) -> None:
    plc = S7PlcSim({"s": "DB1.DBB0:STRING[4]", "n": "DB1.DBW6"})
    plc.set_bytes("DB", 1, 0, b"\x04\x09abcd")  # actual length 9 > 4
    sim = await s7_factory(plc)
    pts = points("DB1.DBB0:STRING[4]", "DB1.DBW6")
    async with driver(sim) as d:
        r = await d.read(d.plan(pts))
    assert r.quality.tolist() == [Quality.BAD, Quality.GOOD]
    assert pts[0].slot not in r.texts


async def test_values_larger_than_a_pdu_are_read_in_pieces_and_gathered(s7_factory) -> None:
    """At PDU 240 a STRING[254] and a REAL[100] span several items of several requests; the
    pieces are gathered back into whole values, next to a small point and a missing DB."""
    text = "Ein langer Rezeptname, " * 10  # 230 characters: more than one item holds
    reals = [i * 0.5 - 7.25 for i in range(100)]
    plc = S7PlcSim({"s": "DB1.DBB0:STRING[254]", "r": "DB2.DBD0:REAL[100]", "w": "MW4:INT"},
                   dbs={1: 256, 2: 400})
    plc.set("s", text)
    plc.set("r", reals)
    plc.set("w", -1234)
    sim = await s7_factory(plc, pdu_max=240)
    pts = points("DB1.DBB0:STRING[254]", "DB2.DBD0:REAL[100]", "MW4:INT", "DB9.DBW0")
    async with driver(sim) as d:
        plan = d.plan(pts)
        assert plan.request_count > 2  # 256 + 400 bytes do not fit one 240-byte PDU
        result = await d.read(plan)
    assert result.texts[pts[0].slot] == text
    assert value_at(result, pts[1]) == pytest.approx(reals)
    assert value_at(result, pts[2]) == -1234.0
    i = result.slots.tolist().index(pts[3].slot)  # DB9 does not exist: only it is BAD
    assert result.quality[i] == Quality.BAD
    good = [j for j in range(len(result.slots)) if j != i]
    assert (result.quality[good] == Quality.GOOD).all()
