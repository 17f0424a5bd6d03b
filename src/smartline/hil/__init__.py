"""Hardware-in-the-loop simulation: devices that speak the real protocols on 127.0.0.1.

``smartline.hil.modbus`` — simulated Modbus devices (:class:`ModbusDeviceSim`) served over
TCP, RTU over TCP or an RS-485 line on a pty pair (:class:`ModbusServerSim`), with fault
injection. Names are imported lazily so ``import smartline.hil`` needs no protocol library.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["ModbusDeviceSim", "ModbusFaults", "ModbusServerSim", "SocatPtyPair"]

_LAZY = {name: "smartline.hil.modbus" for name in __all__}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'smartline.hil' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
