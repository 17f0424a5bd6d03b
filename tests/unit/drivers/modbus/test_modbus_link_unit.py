"""Frame checks of the link (what pymodbus 3.16 would only report as a timeout), options,
exception names, and driver construction."""

from __future__ import annotations

import pytest
from pymodbus.framer import FramerRTU

from smartline.core import (
    ConfigError,
    DeviceError,
    DeviceSpec,
    DeviceTimeoutError,
    LinkPool,
    SharedLink,
    parse_url,
)
from smartline.drivers.families.modbus import ModbusOptions
from smartline.drivers.modbus import (
    EXCEPTION_NAMES,
    LinkKey,
    ModbusGatewayError,
    ModbusLink,
    ModbusRtuDriver,
    ModbusTcpDriver,
    SerialParams,
    exception_error,
)


def rtu_frame(body: bytes) -> bytes:
    return body + FramerRTU.compute_CRC(body).to_bytes(2, "big")


def link(kind: str) -> ModbusLink:
    lk = ModbusLink(LinkKey(kind, "x"))
    lk._pending, lk._unit, lk._fc = True, 7, 3
    return lk


def test_rtu_crc_error_is_seen_in_the_frame() -> None:
    lk = link("rtu")
    good = rtu_frame(bytes([7, 3, 4, 0, 1, 0, 2]))
    assert lk._check_rtu(good) is None
    bad = good[:-1] + bytes([good[-1] ^ 1])
    assert "CRC" in (lk._check_rtu(bad) or "")
    assert lk._check_rtu(good[:5]) is None  # incomplete: wait for more
    assert lk._check_rtu(rtu_frame(bytes([7, 0x83, 2]))) is None  # exception frame
    assert "function code" in (lk._check_rtu(rtu_frame(bytes([7, 4, 2, 0, 0]))) or "")
    assert lk._check_rtu(rtu_frame(bytes([9, 3, 2, 0, 0]))) is None  # another unit: skipped


def test_mbap_garbage_is_seen_in_the_header() -> None:
    lk = link("tcp")
    assert lk._check_mbap(bytes([0, 1, 0, 0, 0, 5, 7, 3, 2])) is None
    assert "protocol id" in (lk._check_mbap(bytes([0, 1, 0xBE, 0xEF, 0, 5, 7])) or "")
    assert "length" in (lk._check_mbap(bytes([0, 1, 0, 0, 0x40, 0, 7])) or "")


def test_register_bytes_only_when_the_frame_is_certain() -> None:
    class Pdu:
        transaction_id = 9

    tcp = link("tcp")
    tcp._frame = bytes([0, 9, 0, 0, 0, 7, 7, 3, 4, 0, 1, 0, 2])
    assert tcp.register_bytes(Pdu(), 2) == bytes([0, 1, 0, 2])  # type: ignore[arg-type]
    assert tcp.register_bytes(Pdu(), 3) is None  # type: ignore[arg-type]
    Pdu.transaction_id = 8
    assert tcp.register_bytes(Pdu(), 2) is None  # type: ignore[arg-type]
    rtu = link("rtu")
    rtu._frame = rtu_frame(bytes([7, 3, 4, 0, 1, 0, 2]))
    assert rtu.register_bytes(Pdu(), 2) == bytes([0, 1, 0, 2])  # type: ignore[arg-type]
    rtu._frame += b"\x00"  # trailing noise: fall back to pymodbus's registers
    assert rtu.register_bytes(Pdu(), 2) is None  # type: ignore[arg-type]


def test_exception_codes_have_names_and_gateway_codes_are_failures() -> None:
    for code in (1, 2, 3, 4, 6, 10, 11):
        assert code in EXCEPTION_NAMES
    e = exception_error(2, "read hr:0+4", "dev")
    assert isinstance(e, DeviceError) and e.code == 2 and "illegal data address" in str(e)
    g = exception_error(11, "read hr:0+4")
    assert isinstance(g, ModbusGatewayError) and isinstance(g, DeviceTimeoutError)
    assert g.code == 11


def spec(url: str, **options: object) -> DeviceSpec:
    return DeviceSpec("d", parse_url(url), options=options)  # type: ignore[arg-type]


def test_unit_from_url_or_options_and_ranges() -> None:
    assert ModbusTcpDriver(spec("modbus+tcp://127.0.0.1:1502?unit=0")).unit == 0
    assert ModbusTcpDriver(spec("modbus+tcp://127.0.0.1:1502", unit=17)).unit == 17
    with pytest.raises(ValueError, match="unit"):
        ModbusRtuDriver(spec("modbus+rtu:///dev/null?unit=0"))  # 0 is broadcast on RTU
    with pytest.raises(ConfigError, match="unit 0 on a serial line") as info:
        ModbusRtuDriver(spec("modbus+rtu:///dev/null", unit=0))
    assert info.value.issues[0].path == "devices.d.unit"
    with pytest.raises(ValueError, match="max_registers"):
        ModbusTcpDriver(spec("modbus+tcp://127.0.0.1:1502", max_registers=200))


def test_options_are_typed_from_a_model_a_mapping_or_the_url() -> None:
    given = ModbusOptions(unit=9, max_gap=4, write_multiple_only=True)
    d = ModbusTcpDriver(DeviceSpec("d", parse_url("modbus+tcp://127.0.0.1:1502"), options=given))
    assert d.options is given and d.unit == 9 and d.write_multiple_only
    assert (d.limits.max_gap, d.limits.max_bit_gap) == (4, 64)  # 16 × max_gap by default
    lax = ModbusTcpDriver(spec("modbus+tcp://127.0.0.1:1502", max_registers="60", max_gap="4",
                               max_bit_gap=10))
    assert (lax.limits.max_registers, lax.limits.max_gap, lax.limits.max_bit_gap) == (60, 4, 10)
    with pytest.raises(ValueError, match="max_write_registers"):
        ModbusTcpDriver(spec("modbus+tcp://127.0.0.1:1502", max_write_registers=124))
    # serial settings from the URL, parsed as the line loader does (stopbits=2 is an int)
    rtu = ModbusRtuDriver(spec("modbus+rtu:///dev/ttyS5?baudrate=38400&parity=O&stopbits=2"
                               "&bytesize=7&unit=4"))
    assert rtu.link.serial == SerialParams(38400, "O", 2, 7) and rtu.unit == 4
    with pytest.raises(ConfigError, match="stopbits"):
        ModbusRtuDriver(spec("modbus+rtu:///dev/ttyS5?stopbits=3"))


def test_rtu_devices_on_one_port_share_a_link_with_the_spec_silence() -> None:
    pool = LinkPool()
    a = ModbusRtuDriver(spec("modbus+rtu:///dev/ttyS9?baudrate=9600&parity=E&unit=1"), links=pool)
    b = ModbusRtuDriver(spec("modbus+rtu:///dev/ttyS9?baudrate=9600&parity=E&unit=2"), links=pool)
    c = ModbusRtuDriver(spec("modbus+rtu:///dev/ttyS8?baudrate=115200&unit=1"), links=pool)
    assert a.link is b.link is not c.link
    assert isinstance(a.link, SharedLink) and pool.links()[a.link.key] is a.link
    assert a.link.serial == SerialParams(9600, "E", 1, 8)
    assert a.link.inter_frame_s == pytest.approx(3.5 * 11 / 9600)
    assert c.link.inter_frame_s == 0.00175
    d = ModbusRtuDriver(spec("modbus+rtu:///dev/ttyS7", inter_frame_ms=5), links=pool)
    assert d.link.inter_frame_s == 0.005
    longer = ModbusRtuDriver(spec("modbus+rtu:///dev/ttyS9?baudrate=9600&parity=E&unit=4",
                                  inter_frame_ms=9), links=pool)
    assert longer.link is a.link and a.link.inter_frame_s == 0.009  # the longest silence wins
    private = ModbusRtuDriver(spec("modbus+rtu:///dev/ttyS9?baudrate=9600&parity=E&unit=3"))
    assert private.link is not a.link  # no pool given: a private one
    with pytest.raises(ConfigError, match="same settings") as info:
        ModbusRtuDriver(spec("modbus+rtu:///dev/ttyS9?baudrate=9600&unit=5"), links=pool)
    assert info.value.issues[0].path == "devices.d.url"
    with pytest.raises(ValueError, match="same settings"):  # the link's own check
        a.link.join(SerialParams(9600, "N"), 0.0)


def test_tcp_gateway_units_share_unless_told_not_to() -> None:
    pool = LinkPool()
    a = ModbusTcpDriver(spec("modbus+tcp://10.0.0.5:502?unit=1"), links=pool)
    b = ModbusTcpDriver(spec("modbus+tcp://10.0.0.5:502?unit=2"), links=pool)
    own = ModbusTcpDriver(spec("modbus+tcp://10.0.0.5:502?unit=3", share_connection=False),
                          links=pool)
    assert a.link is b.link is not own.link
    assert str(a.link.key) == "tcp:10.0.0.5:502"
    assert len(pool.links()) == 2


def test_drivers_fill_hooks_and_do_not_override_the_public_methods() -> None:
    from smartline.core import DriverBase
    from smartline.drivers.modbus import ModbusDriver, ModbusReadPlan

    for name in ("read", "write", "stats", "connect", "close", "plan"):
        assert name not in ModbusDriver.__dict__, name
        assert getattr(ModbusTcpDriver, name) is getattr(DriverBase, name)
    d = ModbusTcpDriver(spec("modbus+tcp://127.0.0.1:1502"))
    from smartline.core import Point
    from smartline.tags import parse_modbus

    plan = d.plan([Point("a", 0, parse_modbus("hr:0")), Point("b", 1, parse_modbus("hr:4"))])
    assert isinstance(plan.compiled, ModbusReadPlan)
    assert plan.request_count == plan.compiled.request_count == 1
    assert plan.compiled.slots.tolist() == plan.slots.tolist() == [0, 1]
    stats = d.stats()
    assert stats["planned_requests"] == 1 and stats["demotions"] == 0
    assert stats["link"] == "tcp:127.0.0.1:1502" and stats["unit"] == 1


def test_the_registry_resolves_the_three_schemes() -> None:
    from smartline.core import DriverRegistry

    reg = DriverRegistry(use_entry_points=False)
    assert reg.load("modbus+tcp") is ModbusTcpDriver
    assert reg.load("modbus+rtu") is ModbusRtuDriver
    from smartline.drivers.modbus import ModbusRtuOverTcpDriver

    assert reg.load("modbus+rtuovertcp") is ModbusRtuOverTcpDriver
    assert ModbusTcpDriver.family == "modbus"
