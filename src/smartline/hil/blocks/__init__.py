"""Plant blocks for the simulator: conveyor, tank, oven, motor/drive, filler, capper, CNC.

Each block type is data (:class:`BlockType`: parameters, inputs, outputs, states, events) plus
one ``@njit(cache=True, nogil=True)`` kernel stepping n instances held as arrays; a
:class:`BlockBank` is such a set of instances, built and validated by :func:`make_bank`::

    bank = make_bank("tank", 4, {"area_m2": 2.0}, seed=1)
    bank.set_input("outflow_valve_pct", 0, 50.0)
    bank.step(0.01)
    bank.output("level_m")          # what a device reads (after sensor faults)

Every bank also takes the sensor fault events ``stuck``, ``noise``, ``offset``, ``drift`` and
``clear_fault`` on any output. See docs/reference/plant-blocks.md.
"""

from __future__ import annotations

from ._core import (
           FAULT_EVENTS,
           KERNEL_ARGS,
           BankSnapshot,
           BlockBank,
           BlockType,
           Event,
           Param,
           Signal,
)
from ._registry import BLOCK_TYPES, make_bank
from .capper import CAPPER, capper_step
from .cnc import CNC, CncAlarm, CncExecution, cnc_step
from .conveyor import CONVEYOR, conveyor_step
from .filler import FILLER, filler_step
from .motor import MOTOR, DriveFault, motor_step
from .oven import OVEN, oven_step
from .tank import TANK, tank_step

__all__ = ["BLOCK_TYPES", "CAPPER", "CNC", "CONVEYOR", "FAULT_EVENTS", "FILLER", "KERNEL_ARGS",
           "MOTOR", "OVEN", "TANK", "BankSnapshot", "BlockBank", "BlockType", "CncAlarm",
           "CncExecution", "DriveFault", "Event", "Param", "Signal", "capper_step", "cnc_step",
           "conveyor_step", "filler_step", "make_bank", "motor_step", "oven_step", "tank_step"]
