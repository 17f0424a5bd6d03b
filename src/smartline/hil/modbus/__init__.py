"""Simulated Modbus devices and endpoints (pymodbus server side, profiles from ``drivers/``)."""

from ._device import ModbusDeviceSim, ModbusFaults, SimPoint, WriteRecord
from ._server import ModbusServerSim, SocatPtyPair, free_port
from ._values import decode_words, encode_words

__all__ = [
    "ModbusDeviceSim",
    "ModbusFaults",
    "ModbusServerSim",
    "SimPoint",
    "SocatPtyPair",
    "WriteRecord",
    "decode_words",
    "encode_words",
    "free_port",
]
