"""Frame checks of the link (what pymodbus 3.16 would only report as a timeout), options,
exception names, and driver construction."""

from __future__ import annotations

import pytest
from pymodbus.framer import FramerRTU

from smartline.core import DeviceError, DeviceSpec, DeviceTimeoutError, parse_url
from smartline.drivers.modbus import (
    EXCEPTION_NAMES,
    LinkKey,
    ModbusConnectionPool,
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
    assert tcp.register_bytes(Pdu(), 3) is None
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
    with pytest.raises(ValueError, match="max_registers"):
        ModbusTcpDriver(spec("modbus+tcp://127.0.0.1:1502", max_registers=200))


def test_rtu_devices_on_one_port_share_a_link_with_the_spec_silence() -> None:
    pool = ModbusConnectionPool()
    a = ModbusRtuDriver(spec("modbus+rtu:///dev/ttyS9?baudrate=9600&parity=E&unit=1"), pool=pool)
    b = ModbusRtuDriver(spec("modbus+rtu:///dev/ttyS9?baudrate=9600&parity=E&unit=2"), pool=pool)
    c = ModbusRtuDriver(spec("modbus+rtu:///dev/ttyS8?baudrate=115200&unit=1"), pool=pool)
    assert a.link is b.link is not c.link
    assert a.link.serial == SerialParams(9600, "E", 1, 8)
    assert a.link.inter_frame_s == pytest.approx(3.5 * 11 / 9600)
    assert c.link.inter_frame_s == 0.00175
    d = ModbusRtuDriver(spec("modbus+rtu:///dev/ttyS7", inter_frame_ms=5), pool=pool)
    assert d.link.inter_frame_s == 0.005
    private = ModbusRtuDriver(spec("modbus+rtu:///dev/ttyS9?baudrate=9600&parity=E&unit=3"))
    assert private.link is not a.link  # no pool given: a private one


def test_tcp_gateway_units_share_unless_told_not_to() -> None:
    pool = ModbusConnectionPool()
    a = ModbusTcpDriver(spec("modbus+tcp://10.0.0.5:502?unit=1"), pool=pool)
    b = ModbusTcpDriver(spec("modbus+tcp://10.0.0.5:502?unit=2"), pool=pool)
    own = ModbusTcpDriver(spec("modbus+tcp://10.0.0.5:502?unit=3", share_connection=False),
                          pool=pool)
    assert a.link is b.link is not own.link
    assert str(a.link.key) == "tcp:10.0.0.5:502"


def test_the_registry_resolves_the_three_schemes() -> None:
    from smartline.core import DriverRegistry

    reg = DriverRegistry(use_entry_points=False)
    assert reg.load("modbus+tcp") is ModbusTcpDriver
    assert reg.load("modbus+rtu") is ModbusRtuDriver
    from smartline.drivers.modbus import ModbusRtuOverTcpDriver

    assert reg.load("modbus+rtuovertcp") is ModbusRtuOverTcpDriver
    assert ModbusTcpDriver.family == "modbus"
