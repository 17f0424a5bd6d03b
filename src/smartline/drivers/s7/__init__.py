"""Siemens S7 driver on python-snap7 (``s7://host:port?rack=&slot=``), its request planner
and its Read/Write Var encoding. The family (scheme, options, grammar) is the light module
:mod:`smartline.drivers.families.s7`; docs/reference/s7.md describes both."""

from ._driver import CPU_MODES, S7Driver, S7ReadPlan, cpu_mode
from ._planner import (
    PlanError,
    PlannedReads,
    PlannedWrites,
    ReadSpan,
    S7Limits,
    WriteSpan,
    pack,
    plan_reads,
    plan_writes,
    read_cost,
    write_cost,
)
from ._wire import HEADER_ERRORS, ITEM_CODES

__all__ = [
    "CPU_MODES",
    "HEADER_ERRORS",
    "ITEM_CODES",
    "PlanError",
    "PlannedReads",
    "PlannedWrites",
    "ReadSpan",
    "S7Driver",
    "S7Limits",
    "S7ReadPlan",
    "WriteSpan",
    "cpu_mode",
    "pack",
    "plan_reads",
    "plan_writes",
    "read_cost",
    "write_cost",
]
