"""Hardware-in-the-loop simulation: devices that speak the real protocols on 127.0.0.1.

``smartline.hil.modbus`` — simulated Modbus devices (:class:`ModbusDeviceSim`) served over
TCP, RTU over TCP or an RS-485 line on a pty pair (:class:`ModbusServerSim`), with fault
injection. ``smartline.hil.s7`` — a simulated S7 CPU (:class:`S7PlcSim`, data blocks from a
profile) on python-snap7's server (:class:`S7ServerSim`). ``smartline.hil.serial`` —
line-protocol instruments from their profiles on a pty, ``socket://`` or ``rfc2217://``
(:class:`SerialInstrumentSim`). ``smartline.hil.mtconnect`` — an MTConnect agent over HTTP
with a CNC machine model (:class:`MtConnectAgentSim`). ``smartline.hil.grbl`` — a GRBL
controller on a pty. ``smartline.hil.blocks`` — plant blocks stepped by numba over arrays of
instances (:func:`make_bank`). ``smartline.hil.scenario`` — plant and scenario files and
the runner that serves them in real or virtual time (:class:`ScenarioRunner`). Names are
imported lazily so ``import smartline.hil`` needs no
protocol library.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    **dict.fromkeys(("ModbusDeviceSim", "ModbusFaults", "ModbusServerSim", "SocatPtyPair"),
                    "smartline.hil.modbus"),
    **dict.fromkeys(("S7Faults", "S7PlcSim", "S7ServerSim"), "smartline.hil.s7"),
    **dict.fromkeys(("SerialInstrumentSim", "SimProcess"), "smartline.hil.serial"),
    **dict.fromkeys(("CncMachineModel", "MtConnectAgentSim", "MtConnectFaults"),
                    "smartline.hil.mtconnect"),
    **dict.fromkeys(("GrblController", "GrblFaults", "GrblSim"), "smartline.hil.grbl"),
    **dict.fromkeys(("BLOCK_TYPES", "BlockBank", "BlockType", "make_bank"),
                    "smartline.hil.blocks"),
    **dict.fromkeys(("Scenario", "ScenarioRunner"), "smartline.hil.scenario"),
}

__all__ = ["BLOCK_TYPES", "BlockBank", "BlockType", "CncMachineModel", "GrblController",
           "GrblFaults", "GrblSim", "ModbusDeviceSim", "ModbusFaults", "ModbusServerSim",
           "MtConnectAgentSim", "MtConnectFaults", "S7Faults", "S7PlcSim", "S7ServerSim",
           "Scenario", "ScenarioRunner", "SerialInstrumentSim", "SimProcess", "SocatPtyPair",
           "make_bank"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'smartline.hil' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
