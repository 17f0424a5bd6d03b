"""The ``modbus`` family: Modbus TCP, RTU and RTU-over-TCP (docs/reference/modbus.md)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from smartline.core import SERIAL_PARAMS, DriverFamily, Scheme, param_int
from smartline.tags import parse_modbus

from .serial import SerialOptions

__all__ = ["FAMILY", "RTU_UNITS", "ModbusOptions", "check_modbus"]

RTU_UNITS = (1, 247)
"""Unit ids on a serial line: 0 is broadcast, which never answers; 248..255 are reserved."""


class ModbusOptions(SerialOptions):
    """Request sizes within the Modbus spec, coalescing gaps, unit id, frame gap, connection
    sharing, and (RTU) the serial line settings. ``max_bit_gap`` left out is 16 × max_gap;
    ``inter_frame_ms`` left out is 3.5 characters on a serial line (1.75 ms above 19200
    baud) and none on TCP."""

    max_registers: Annotated[int, Field(ge=1, le=125)] = 125
    max_bits: Annotated[int, Field(ge=1, le=2000)] = 2000
    max_gap: Annotated[int, Field(ge=0, le=125)] = 16
    max_bit_gap: Annotated[int, Field(ge=0, le=2000)] | None = None
    max_write_registers: Annotated[int, Field(ge=1, le=123)] = 123
    max_write_bits: Annotated[int, Field(ge=1, le=1968)] = 1968
    unit: Annotated[int, Field(ge=0, le=255)] = 1
    inter_frame_ms: Annotated[float, Field(ge=0)] | None = None
    share_connection: bool = True
    write_multiple_only: bool = False
    baudrate: Annotated[int, Field(ge=50, le=4_000_000)] = 19200  # the others: 8N1

    @property
    def bit_gap(self) -> int:
        return self.max_bit_gap if self.max_bit_gap is not None else min(2000, 16 * self.max_gap)


def check_modbus(scheme: str, options: ModbusOptions) -> list[tuple[str, str]]:
    """Checks that need the scheme: unit ids on a serial line."""
    low, high = RTU_UNITS
    if scheme == "modbus+rtu" and not low <= options.unit <= high:
        return [("unit", f"unit {options.unit} on a serial line: expected {low}..{high} "
                         "(0 is broadcast, which never answers)")]
    return []


_UNIT = {"unit": param_int(0, 255)}

FAMILY = DriverFamily(
    name="modbus",
    schemes=(
        Scheme("modbus+tcp", "smartline.drivers.modbus:ModbusTcpDriver", 502, params=_UNIT,
               description="Modbus TCP (modbus+tcp://host:port?unit=N)"),
        Scheme("modbus+rtu", "smartline.drivers.modbus:ModbusRtuDriver", serial=True,
               params={"unit": param_int(*RTU_UNITS), **SERIAL_PARAMS},
               description="Modbus RTU on a serial port or pyserial URL"),
        Scheme("modbus+rtuovertcp", "smartline.drivers.modbus:ModbusRtuOverTcpDriver", 502,
               params=_UNIT, description="Modbus RTU frames over TCP (serial gateways)"),
    ),
    parse_address=parse_modbus,
    options=ModbusOptions,
    check=check_modbus,  # type: ignore[arg-type]  # narrower options type
    value_types=("bool", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32",
                 "float64", "string"),
    requires="smartline[modbus]",
    imports=("pymodbus", "serial"),
    description="Modbus TCP, RTU and RTU over TCP on pymodbus",
)
