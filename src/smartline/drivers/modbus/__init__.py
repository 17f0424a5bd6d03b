"""Modbus TCP, RTU and RTU-over-TCP drivers (pymodbus), the request planner and link pool.

``modbus+tcp://host:port?unit=N``, ``modbus+rtu://PORT?baudrate=&parity=&stopbits=&unit=``
and ``modbus+rtuovertcp://host:port?unit=N`` resolve here through the driver registry.
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
from ._link import LinkKey, ModbusConnectionPool, ModbusLink, SerialParams, silence_s
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
    "ModbusConnectionPool",
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
