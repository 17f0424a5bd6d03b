"""The ``cnc`` family: CNC controllers — GRBL over a serial line, MTConnect agents over
HTTP; addresses are the names the profile (or the agent's probe) defines."""

from __future__ import annotations

import functools
from types import MappingProxyType
from typing import Annotated

from pydantic import Field

from smartline.core import SERIAL_PARAMS, DriverFamily, Scheme, param_flag, param_int
from smartline.tags import parse_profile

from .serial import SerialOptions

__all__ = ["FAMILY", "CncOptions"]


class CncOptions(SerialOptions):
    """The serial line settings of a GRBL controller (115200 8N1 by default); for MTConnect
    agents: ``stream`` (push through a streaming ``/sample`` when the line subscribes),
    ``interval_ms`` and ``heartbeat_ms`` of that stream, ``sample_count`` (observations
    per ``/sample``) and ``max_document_bytes`` (larger documents are refused unparsed)."""

    baudrate: Annotated[int, Field(ge=50, le=4_000_000)] = 115200
    # GRBL (docs/reference/grbl.md): the controller's receive buffer for character counting
    # (RX_BUFFER_SIZE of grbl/serial.h), how often a running job asks for a status report,
    # and how old a report a read may use instead of asking ("?") again
    rx_buffer_bytes: Annotated[int, Field(ge=16, le=65536)] = 128
    status_interval_ms: Annotated[float, Field(ge=10, le=60_000)] = 200.0
    status_max_age_ms: Annotated[float, Field(ge=0, le=60_000)] = 0.0
    # MTConnect (docs/reference/mtconnect.md): push from a streaming /sample, its interval
    # and heartbeat, observations per /sample, the largest document parsed
    stream: bool = True
    interval_ms: Annotated[int, Field(ge=0, le=60_000)] = 100
    heartbeat_ms: Annotated[int, Field(ge=100, le=600_000)] = 10_000
    sample_count: Annotated[int, Field(ge=1, le=100_000)] = 1000
    max_document_bytes: Annotated[int, Field(ge=4096, le=1 << 30)] = 8 << 20


MTCONNECT_PARAMS = MappingProxyType({
    "stream": param_flag,
    "interval_ms": param_int(0, 60_000),
    "heartbeat_ms": param_int(100, 600_000),
    "sample_count": param_int(1, 100_000),
    "max_document_bytes": param_int(4096, 1 << 30),
})
"""URL parameters of ``mtconnect+http://`` (options of the same names)."""

_GRBL_ONLY = ("rx_buffer_bytes", "status_interval_ms", "status_max_age_ms")


def check_cnc(scheme: str, options: CncOptions) -> list[tuple[str, str]]:
    """GRBL's own keys on an MTConnect agent are mistakes (the URL parameters of either
    scheme on the other are caught by the line loader already)."""
    if scheme != "mtconnect+http":
        return []
    return [(key, f"{key} applies to grbl controllers, not mtconnect+http agents")
            for key in _GRBL_ONLY if key in options.model_fields_set]


FAMILY = DriverFamily(
    name="cnc",
    schemes=(
        Scheme("grbl", "smartline.drivers.cnc.grbl:GrblDriver", serial=True, params=SERIAL_PARAMS,
               description="a GRBL controller on a serial port"),
        Scheme("mtconnect+http", "smartline.drivers.cnc.mtconnect:MtConnectDriver", 5000,
               params=MTCONNECT_PARAMS,
               description="an MTConnect agent (mtconnect+http://host:port/device)"),
    ),
    parse_address=functools.partial(parse_profile, family="cnc"),
    named_points=True,
    options=CncOptions,
    check=check_cnc,  # type: ignore[arg-type]  # narrower options type
    value_types=("bool", "int64", "float64", "string"),
    requires="smartline[cnc]",
    imports=("serial", "aiohttp", "defusedxml"),
    description="CNC controllers: GRBL and MTConnect",
)
