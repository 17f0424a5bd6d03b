"""Every type and byte order, both directions, over TCP, RTU over TCP and RTU on a pty pair.

The simulator encodes with pymodbus's own converters, the driver with smartline's codec:
a wrong byte order cannot pass both ways.
"""

from __future__ import annotations

import math

import numpy as np
from modbus_support import make_driver, points

from smartline.core import Quality, WriteItem
from smartline.hil.modbus import ModbusDeviceSim

ORDERS = ["abcd", "cdab", "badc", "dcba"]
NUMBERS = {
    "int16": (-12345, 31000), "uint16": (54321, 7),
    "int32": (-123456789, 2_000_000_001), "uint32": (3_000_000_000, 17),
    "int64": (-(2**52) + 7, 2**50 + 3), "uint64": (2**53 - 1, 12345678901),
    "float32": (3.25, -0.15625), "float64": (-1234.5678, 6.02214076e23),
}


def layout() -> tuple[dict[str, str], dict[str, object], dict[str, object]]:
    """Point name → address, a first value per point and a second one to write."""
    addrs: dict[str, str] = {}
    first: dict[str, object] = {}
    second: dict[str, object] = {}
    offset = 0
    for dtype, (a, b) in NUMBERS.items():
        for order in ORDERS:
            if dtype.endswith("16") and order in ("cdab", "dcba"):
                continue  # word swaps need two registers (dcba on 16 bits is badc)
            name = f"{dtype}_{order}"
            addrs[name] = f"hr:{offset}:{dtype}:{order}"
            first[name], second[name] = a, b
            offset += 4
    addrs["f32_array"] = f"hr:{offset}:float32[3]:cdab"
    first["f32_array"], second["f32_array"] = [1.5, -2.0, 1e10], [0.0, 7.25, -1.0]
    offset += 6
    addrs["i16_array"] = f"hr:{offset}:int16[4]"
    first["i16_array"], second["i16_array"] = [1, -1, 300, -300], [5, 6, 7, 8]
    offset += 4
    addrs["text"] = f"hr:{offset}:string<7>"
    first["text"], second["text"] = "abc", "RUN-OK1"
    offset += 4
    addrs["text_swapped"] = f"hr:{offset}:string<6>:badc"
    first["text_swapped"], second["text_swapped"] = "E5CC", "ACS580"
    offset += 3
    addrs["bit3"] = f"hr:{offset}.3"
    addrs["bit15"] = f"hr:{offset}.15"
    first["bit3"], second["bit3"] = True, False
    first["bit15"], second["bit15"] = False, True
    addrs["coil"] = "co:5"
    first["coil"], second["coil"] = True, False
    addrs["coils"] = "co:20:bool[11]"
    first["coils"] = [True, False, True, True, False, False, True, False, True, True, True]
    second["coils"] = [not v for v in first["coils"]]  # type: ignore[attr-defined]
    addrs["input"] = "di:3"
    first["input"] = True
    addrs["inputs"] = "di:8:bool[3]"
    first["inputs"] = [False, True, True]
    addrs["ir_float"] = "ir:100:float32:dcba"
    first["ir_float"] = -7.5
    addrs["ir_u32"] = "ir:102:uint32:badc"
    first["ir_u32"] = 0x12345678
    return addrs, first, second


def same(got: object, want: object) -> bool:
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(
            same(g, w) for g, w in zip(got, want, strict=True))
    if isinstance(want, str):
        return got == want
    return math.isclose(float(got), float(want), rel_tol=1e-6)  # type: ignore[arg-type]


def values_of(result, pts) -> dict[str, object]:
    slots = result.slots.tolist()
    out: dict[str, object] = {}
    for p in pts:
        i = slots.index(p.slot)
        if p.address.is_text:
            out[p.tag] = result.texts.get(p.slot)
        elif p.address.count is not None:
            out[p.tag] = result.raw[i:i + p.address.count].tolist()
        else:
            out[p.tag] = float(result.raw[i])
    return out


async def test_every_type_and_order_both_ways(sim_factory, transport: str) -> None:
    addrs, first, second = layout()
    dev = ModbusDeviceSim(7, addrs, initial=first)
    sim = await sim_factory(dev, transport)
    pts = points(*addrs.values(), names=list(addrs))
    async with make_driver(sim, 7, max_gap=0) as d:
        plan = d.plan(pts)
        result = await d.read(plan)
        assert (result.quality == Quality.GOOD).all(), result.reason
        got = values_of(result, pts)
        for name, want in first.items():
            assert same(got[name], want), (name, got[name], want)
        writable = [p for p in pts if p.address.writable_area]
        await d.write([WriteItem(p, tuple(second[p.tag]) if isinstance(second[p.tag], list)
                                 else second[p.tag]) for p in writable])
        for p in writable:  # the simulator decodes what the driver encoded
            assert same(dev.get(p.tag), second[p.tag]), (p.tag, dev.get(p.tag))
        again = values_of(await d.read(plan), pts)
        for p in writable:
            assert same(again[p.tag], second[p.tag]), p.tag
        assert d.stats()["requests_per_cycle"] == plan.request_count


async def test_known_wire_images(sim_factory) -> None:
    """Pin the byte orders to literal register images (a manual's examples)."""
    dev = ModbusDeviceSim(1, {"f": "hr:0:float32", "i": "hr:2:int32:cdab",
                              "d": "hr:4:float64:cdab", "s": "hr:8:string<4>:badc"})
    dev.set_registers("hr", 0, [0x4060, 0x0000])  # 3.5 big-endian
    dev.set_registers("hr", 2, [0x03E8, 0x0000])  # 1000, low word first
    # 1.0 = 0x3FF0000000000000, registers least significant first
    dev.set_registers("hr", 4, [0x0000, 0x0000, 0x0000, 0x3FF0])
    dev.set_registers("hr", 8, [0x4241, 0x4443])  # "ABCD" low byte first
    sim = await sim_factory(dev)
    pts = points("hr:0:float32", "hr:2:int32:cdab", "hr:4:float64:cdab", "hr:8:string<4>:badc")
    async with make_driver(sim) as d:
        r = await d.read(d.plan(pts))
    assert r.raw[:3].tolist() == [3.5, 1000.0, 1.0]
    assert r.texts[3] == "ABCD"


async def test_nan_float_and_non_ascii_text_are_decode_errors(sim_factory) -> None:
    dev = ModbusDeviceSim(1, {"f": "hr:0:float32", "s": "hr:2:string<2>", "ok": "hr:3"})
    dev.set_registers("hr", 0, [0x7FC0, 0x0000])
    dev.set_registers("hr", 2, [0xC3A9])
    dev.set_registers("hr", 3, [42])
    sim = await sim_factory(dev)
    async with make_driver(sim) as d:
        r = await d.read(d.plan(points("hr:0:float32", "hr:2:string<2>", "hr:3")))
    assert r.quality.tolist() == [Quality.BAD, Quality.BAD, Quality.GOOD]
    assert r.reason.tolist()[:2] == [9, 9]  # DECODE_ERROR
    assert np.isnan(r.raw[:2]).all() and r.raw[2] == 42


EXACT = [("u64_max", "hr:0:uint64", 2**64 - 1), ("i64_min1", "hr:4:int64", -(2**63) + 1),
         ("i64_odd", "hr:8:int64:cdab", 2**53 + 1), ("u64_odd", "hr:12:uint64:dcba", 2**53 + 1),
         ("i64_neg_odd", "hr:16:int64:badc", -(2**53) - 1),
         ("u64_arr", "hr:20:uint64[2]", (2**63 + 5, 2**60 + 1))]


async def test_64_bit_integers_are_exact_both_ways(sim_factory, transport: str) -> None:
    """Values float64 cannot hold travel in ``ReadResult.exact``, digit for digit."""
    dev = ModbusDeviceSim(1, {name: text for name, text, _ in EXACT} | {"small": "hr:30:int64"})
    sim = await sim_factory(dev, transport)
    pts = points(*(text for _, text, _ in EXACT), "hr:30:int64",
                 names=[*(name for name, _, _ in EXACT), "small"])
    by_tag = {p.tag: p for p in pts}
    async with make_driver(sim) as d:
        plan = d.plan(pts)
        zero = await d.read(plan)
        assert (zero.quality == Quality.GOOD).all() and dict(zero.exact) == {}
        await d.write([WriteItem(by_tag[name], value) for name, _, value in EXACT]
                      + [WriteItem(by_tag["small"], -(2**53) + 1)])
        for name, _, value in EXACT:  # pymodbus's converters decode what the driver encoded
            got = dev.get_raw(name)
            assert (tuple(got) if isinstance(value, tuple) else got) == value, name
        assert dev.get_raw("small") == -(2**53) + 1
        result = await d.read(plan)
        assert (result.quality == Quality.GOOD).all()
        want: dict[int, int] = {}
        for name, _, value in EXACT:
            p = by_tag[name]
            for k, v in enumerate(value if isinstance(value, tuple) else (value,)):
                want[p.slot + k] = v
        assert dict(result.exact) == want  # only the values beyond 2**53, exactly
        assert all(type(v) is int for v in result.exact.values())
        small = result.slots.tolist().index(by_tag["small"].slot)
        assert result.raw[small] == -(2**53) + 1  # float64 holds it: not in exact
        i = result.slots.tolist().index(by_tag["u64_max"].slot)
        assert result.raw[i] == float(2**64 - 1)  # raw keeps the rounded value
        # the device side set by pymodbus's converters, read by smartline's codec
        dev.set_raw("i64_odd", 2**62 + 3)
        again = await d.read(plan)
        assert again.exact[by_tag["i64_odd"].slot] == 2**62 + 3
        dev.faults.exception = 4  # the requests fail: no value, exact or not, survives them
        dev.faults.remaining = plan.request_count
        failed = await d.read(plan)
        assert (failed.quality == Quality.BAD).all() and dict(failed.exact) == {}
