"""The Modbus simulator's own encoding and register store (independent of smartline's codec)."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest
from pymodbus.constants import ExcCodes

from smartline.hil.modbus import (
    ModbusDeviceSim,
    ModbusServerSim,
    SocatPtyPair,
    decode_words,
    encode_words,
)
from smartline.tags import parse_modbus


@pytest.mark.parametrize(("text", "value", "words"), [
    ("hr:0:float32", 3.5, [0x4060, 0x0000]),
    ("hr:0:float32:cdab", 3.5, [0x0000, 0x4060]),
    ("hr:0:float32:badc", 3.5, [0x6040, 0x0000]),
    ("hr:0:float32:dcba", 3.5, [0x0000, 0x6040]),
    ("hr:0:int16", -2, [0xFFFE]),
    ("hr:0:uint16:badc", 0x1234, [0x3412]),
    ("hr:0:int32:cdab", 1000, [0x03E8, 0x0000]),
    ("hr:0:uint64", 0x0102030405060708, [0x0102, 0x0304, 0x0506, 0x0708]),
    ("hr:0:uint64:cdab", 0x0102030405060708, [0x0708, 0x0506, 0x0304, 0x0102]),
    ("hr:0:uint64:dcba", 0x0102030405060708, [0x0807, 0x0605, 0x0403, 0x0201]),
    ("hr:0:float64", 1.0, [0x3FF0, 0, 0, 0]),
    ("hr:0:string<5>", "ABCDE", [0x4142, 0x4344, 0x4500]),
    ("hr:0:string<4>:badc", "ABCD", [0x4241, 0x4443]),
    ("hr:0:int16[3]", [1, -1, 2], [1, 0xFFFF, 2]),
])
def test_wire_images(text: str, value: object, words: list[int]) -> None:
    addr = parse_modbus(text)
    assert encode_words(addr, value) == words
    back = decode_words(addr, words)
    assert back == value or (isinstance(back, float) and math.isclose(back, value))  # type: ignore[arg-type]


def test_device_points_scaling_bits_and_validity() -> None:
    from smartline.hil.modbus import SimPoint
    from smartline.tags import Scale

    dev = ModbusDeviceSim(2, [
        SimPoint("temp", parse_modbus("hr:10:int16"), Scale(gain=0.1)),
        SimPoint("run", parse_modbus("hr:11.3")),
        SimPoint("coils", parse_modbus("co:3:bool[4]")),
    ], extra={"ir": [(0, 4)]})
    dev.set("temp", -12.3)
    assert dev.get_registers("hr", 10, 1) == [0x10000 - 123]
    assert dev.get("temp") == pytest.approx(-12.3)
    dev.set("run", True)
    assert dev.get_registers("hr", 11, 1) == [8] and dev.get("run") is True
    dev.set("coils", [True, False, True, True])
    assert dev.get_bits("co", 3, 4) == [True, False, True, True]
    assert dev.valid("hr", 10, 12) and not dev.valid("hr", 9, 11)
    assert dev.valid("ir", 0, 4) and not dev.valid("ir", 3, 5)
    with pytest.raises(ValueError):
        ModbusDeviceSim(300)


async def test_action_hook_serves_the_store_and_refuses_what_is_not_there() -> None:
    dev = ModbusDeviceSim(1, {"a": "hr:4:uint16[2]", "c": "co:17:bool[3]"})
    dev.set_registers("hr", 4, [7, 8])
    dev.set_bits("co", 17, [True, True, False])
    dev.begin_request()
    regs = [0] * 16
    assert await dev._action(3, 0, 4, 2, regs, None) is None
    assert regs[4:6] == [7, 8]
    dev.begin_request()
    assert await dev._action(3, 0, 3, 2, regs, None) == ExcCodes.ILLEGAL_ADDRESS
    dev.begin_request()
    packed = [0] * 4
    assert await dev._action(1, 0, 17, 3, packed, None) is None
    assert packed[1] == 0b110  # register 1 holds coils 16..31: coils 17 and 18 set
    dev.begin_request()
    assert await dev._action(16, 0, 4, 2, regs, [1, 2]) is None
    assert dev.get_registers("hr", 4, 2) == [1, 2] and dev.writes[-1].values == [1, 2]
    dev.faults.exception = 6
    dev.faults.remaining = 1
    dev.begin_request()
    assert await dev._action(3, 0, 4, 2, regs, None) == ExcCodes.DEVICE_BUSY
    dev.begin_request()
    assert await dev._action(3, 0, 4, 2, regs, None) is None  # the fault was used up
    assert not dev.faults.active


async def test_read_only_points_refuse_client_writes() -> None:
    from smartline.hil.modbus import SimPoint

    dev = ModbusDeviceSim(1, [SimPoint("ro", parse_modbus("hr:0"))])
    dev.begin_request()
    assert await dev._action(6, 0, 0, 1, [0], [5]) == ExcCodes.ILLEGAL_ADDRESS
    dev.set("ro", 9)  # the plant may always write
    assert dev.get("ro") == 9


async def test_socat_pair_links_two_ptys_and_cleans_up() -> None:
    pair = SocatPtyPair()
    await pair.start()
    a, b = pair.a, pair.b
    loop = asyncio.get_running_loop()
    fa = open(a, "r+b", buffering=0)  # noqa: SIM115
    fb = open(b, "r+b", buffering=0)  # noqa: SIM115
    try:
        fa.write(b"\x01\x03")
        data = await loop.run_in_executor(None, fb.read, 2)
        assert data == b"\x01\x03"
    finally:
        fa.close()
        fb.close()
        await pair.stop()
    assert not Path(a).exists() and not Path(b).exists()


async def test_server_binds_loopback_and_builds_urls() -> None:
    dev = ModbusDeviceSim(4, {"a": "hr:0"})
    async with ModbusServerSim(dev) as sim:
        assert sim.url() == f"modbus+tcp://127.0.0.1:{sim.port}?unit=4"
        assert sim.running
    assert not sim.running
    rtu = ModbusServerSim(dev, transport="rtu", baudrate=9600, parity="E")
    assert "baudrate=9600&parity=E" in rtu.url()
    with pytest.raises(ValueError):
        ModbusServerSim([dev, ModbusDeviceSim(4)])


def test_sim_points_scale_with_the_tags_scale(monkeypatch: pytest.MonkeyPatch) -> None:
    """The simulator converts with smartline.tags.Scale, not a copy of its arithmetic."""
    from smartline.hil.modbus import SimPoint
    from smartline.tags import Scale

    calls: list[str] = []
    to_raw, to_eng = Scale.to_raw, Scale.to_eng

    def spy_raw(self: Scale, x: float) -> float:
        calls.append("to_raw")
        return to_raw(self, x)

    def spy_eng(self: Scale, x: float) -> float:
        calls.append("to_eng")
        return to_eng(self, x)

    monkeypatch.setattr(Scale, "to_raw", spy_raw)
    monkeypatch.setattr(Scale, "to_eng", spy_eng)
    scale = Scale.from_ranges((0, 1000), (-50, 150))
    p = SimPoint("t", parse_modbus("hr:0:int16"), scale)
    assert p.to_raw(50.0) == pytest.approx(500.0)
    assert p.to_eng(250) == pytest.approx(0.0)
    assert p.to_raw([-50, 150]) == pytest.approx([0.0, 1000.0])
    assert p.to_eng((0, 1000)) == pytest.approx([-50.0, 150.0])
    assert calls == ["to_raw", "to_eng", "to_raw", "to_raw", "to_eng", "to_eng"]
    assert p.to_raw("text") == "text" and p.to_eng(True) is True
    assert SimPoint("u", parse_modbus("hr:0")).to_raw(7) == 7


async def test_write_history_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from smartline.hil.modbus import _device

    assert _device.WRITES_KEPT == 10_000
    monkeypatch.setattr(_device, "WRITES_KEPT", 3)
    dev = ModbusDeviceSim(1, {"a": "hr:0"})
    assert dev.writes == []
    for value in range(5):
        dev.begin_request()
        assert await dev._action(6, 0, 0, 1, [0], [value]) is None
    assert [w.values for w in dev.writes] == [[2], [3], [4]]  # the last ones, oldest first
    assert dev.stats.write_count == 5 and len(dev.stats.writes) == 3
    assert dev.get_registers("hr", 0, 1) == [4]
