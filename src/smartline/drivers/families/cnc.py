"""The ``cnc`` family: CNC controllers — GRBL over a serial line, MTConnect agents over
HTTP; addresses are the names the profile (or the agent's probe) defines."""

from __future__ import annotations

import functools
from typing import Annotated

from pydantic import Field

from smartline.core import SERIAL_PARAMS, DriverFamily, Scheme
from smartline.tags import parse_profile

from .serial import SerialOptions

__all__ = ["FAMILY", "CncOptions"]


class CncOptions(SerialOptions):
    """The serial line settings of a GRBL controller (115200 8N1 by default)."""

    baudrate: Annotated[int, Field(ge=50, le=4_000_000)] = 115200


FAMILY = DriverFamily(
    name="cnc",
    schemes=(
        Scheme("grbl", "smartline.drivers.cnc.grbl:GrblDriver", serial=True, params=SERIAL_PARAMS,
               description="a GRBL controller on a serial port"),
        Scheme("mtconnect+http", "smartline.drivers.cnc.mtconnect:MtConnectDriver", 5000,
               description="an MTConnect agent (mtconnect+http://host:port/device)"),
    ),
    parse_address=functools.partial(parse_profile, family="cnc"),
    named_points=True,
    options=CncOptions,
    value_types=("bool", "int64", "float64", "string"),
    requires="smartline[cnc]",
    imports=("serial", "aiohttp", "defusedxml"),
    description="CNC controllers: GRBL and MTConnect",
)
