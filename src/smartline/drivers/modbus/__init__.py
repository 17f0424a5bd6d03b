"""Modbus TCP, RTU and RTU-over-TCP drivers (pymodbus), the request planner and shared links.

``modbus+tcp://host:port?unit=N``, ``modbus+rtu://PORT?baudrate=&parity=&stopbits=&unit=``
and ``modbus+rtuovertcp://host:port?unit=N`` resolve here through the driver registry.
Devices share a link through the :class:`smartline.core.LinkPool` given to every driver
as ``links=``.
"""

from ._driver import (
    EXCEPTION_NAMES,
    ModbusDriver,
    ModbusGatewayError,
    ModbusReadPlan,
    ModbusRtuDriver,
    ModbusRtuOverTcpDriver,
    ModbusTcpDriver,
    exception_error,
)
from ._link import LinkKey, ModbusLink, SerialParams, silence_s
from ._planner import (
    HoleMemory,
    ModbusLimits,
    Piece,
    PlanError,
    ReadRequest,
    WriteChunk,
    WriteRequest,
    feasible,
    plan_reads,
    plan_writes,
)

__all__ = [
    "EXCEPTION_NAMES",
    "HoleMemory",
    "LinkKey",
    "ModbusDriver",
    "ModbusGatewayError",
    "ModbusLimits",
    "ModbusLink",
    "ModbusReadPlan",
    "ModbusRtuDriver",
    "ModbusRtuOverTcpDriver",
    "ModbusTcpDriver",
    "Piece",
    "PlanError",
    "ReadRequest",
    "SerialParams",
    "WriteChunk",
    "WriteRequest",
    "exception_error",
    "feasible",
    "plan_reads",
    "plan_writes",
    "silence_s",
]
