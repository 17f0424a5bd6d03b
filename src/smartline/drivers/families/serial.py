"""The ``serial`` family: line-protocol instruments (scales, meters, scanners) described by
device profiles; addresses are the profile's point names, and the profile's ``protocol:``
section (:class:`smartline.config.LineProtocol`) says what to send and how replies map to
points (docs/reference/serial.md)."""

from __future__ import annotations

import functools
from typing import Annotated, Literal

from pydantic import Field

from smartline.config import DeviceOptions, LineProtocol
from smartline.config._lineproto import check_protocol
from smartline.core import SERIAL_PARAMS, DriverFamily, Scheme, param_int
from smartline.tags import parse_profile

__all__ = ["FAMILY", "SerialInstrumentOptions", "SerialOptions"]


class SerialOptions(DeviceOptions):
    """The serial line settings (9600 8N1 by default); other serial families extend it."""

    baudrate: Annotated[int, Field(ge=50, le=4_000_000)] = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8


class SerialInstrumentOptions(SerialOptions):
    """Options of a line-protocol instrument: the line settings and, where its protocol
    addresses instruments on a bus (RS-485), its ``station``, which commands use as
    ``{station}`` (``{station:03d}``)."""

    station: Annotated[int, Field(ge=0, le=999)] | None = None


FAMILY = DriverFamily(
    name="serial",
    schemes=(Scheme("serial", "smartline.drivers.serial:SerialInstrumentDriver", serial=True,
                    params={**SERIAL_PARAMS, "station": param_int(0, 999)},
                    description="an instrument on a serial port or pyserial URL"),),
    parse_address=functools.partial(parse_profile, family="serial"),
    named_points=True,
    options=SerialInstrumentOptions,
    value_types=("bool", "int64", "float64", "string"),
    requires="smartline[serial]",
    imports=("serial",),
    profile_protocol=LineProtocol,
    profile_check=check_protocol,
    description="line-protocol serial instruments from device profiles",
)
