"""Hardware-in-the-loop simulation: devices that speak the real protocols on 127.0.0.1.

``smartline.hil.modbus`` — simulated Modbus devices (:class:`ModbusDeviceSim`) served over
TCP, RTU over TCP or an RS-485 line on a pty pair (:class:`ModbusServerSim`), with fault
injection. ``smartline.hil.s7`` — a simulated S7 CPU (:class:`S7PlcSim`, data blocks from a
profile) on python-snap7's server (:class:`S7ServerSim`). Names are imported lazily so
``import smartline.hil`` needs no protocol library.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["ModbusDeviceSim", "ModbusFaults", "ModbusServerSim", "S7Faults", "S7PlcSim",
           "S7ServerSim", "SocatPtyPair"]

_LAZY = {name: "smartline.hil.modbus" for name in __all__}
_LAZY.update({name: "smartline.hil.s7" for name in ("S7Faults", "S7PlcSim", "S7ServerSim")})


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'smartline.hil' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
