"""The ``s7`` family: Siemens S7 PLCs over ISO-on-TCP (python-snap7)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from smartline.config import DeviceOptions
from smartline.core import DriverFamily, Scheme, param_int
from smartline.tags import parse_s7

__all__ = ["FAMILY", "S7Options"]


class S7Options(DeviceOptions):
    """Rack and slot of the CPU, the PDU size to negotiate and the read coalescing gap."""

    rack: Annotated[int, Field(ge=0, le=7)] = 0
    slot: Annotated[int, Field(ge=0, le=31)] = 1
    pdu_size: Annotated[int, Field(ge=240, le=960)] = 480
    max_gap: Annotated[int, Field(ge=0)] = 0


FAMILY = DriverFamily(
    name="s7",
    schemes=(Scheme("s7", "smartline.drivers.s7:S7Driver", 102,
                    params={"rack": param_int(0, 7), "slot": param_int(0, 31)},
                    description="S7 over ISO-on-TCP (s7://host:port?rack=&slot=)"),),
    parse_address=parse_s7,
    options=S7Options,
    value_types=("bool", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
                 "float32", "float64", "string"),
    requires="smartline[s7]",
    imports=("snap7",),
    description="Siemens S7-300/400/1200/1500 on python-snap7",
)
