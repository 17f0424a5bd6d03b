"""The ``serial`` family: line-protocol instruments (scales, meters, scanners) described by
device profiles; addresses are the profile's point names."""

from __future__ import annotations

import functools
from typing import Annotated, Literal

from pydantic import Field

from smartline.config import DeviceOptions
from smartline.core import SERIAL_PARAMS, DriverFamily, Scheme
from smartline.tags import parse_profile

__all__ = ["FAMILY", "SerialOptions"]


class SerialOptions(DeviceOptions):
    """The serial line settings (9600 8N1 by default); other serial families extend it."""

    baudrate: Annotated[int, Field(ge=50, le=4_000_000)] = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8


FAMILY = DriverFamily(
    name="serial",
    schemes=(Scheme("serial", "smartline.drivers.serial:SerialInstrumentDriver", serial=True,
                    params=SERIAL_PARAMS,
                    description="an instrument on a serial port or pyserial URL"),),
    parse_address=functools.partial(parse_profile, family="serial"),
    named_points=True,
    options=SerialOptions,
    value_types=("bool", "int64", "float64", "string"),
    requires="smartline[serial]",
    imports=("serial",),
    description="line-protocol serial instruments from device profiles",
)
