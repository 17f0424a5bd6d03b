"""The ``acme`` driver family: what smartline loads from this package's entry point.

Light on purpose: the schemes, URL parameters, typed options, address grammar and the
folder of device profiles — no sockets. The driver class is named by a string and imported
only when a line uses an ``acme+tcp://`` device.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from smartline.config import DeviceOptions
from smartline.core import DriverFamily, Scheme, param_int

from .address import FAMILY_NAME, parse_tally

__all__ = ["DEFAULT_PORT", "FAMILY", "MAX_STATION", "TallyOptions"]

DEFAULT_PORT = 7878
MAX_STATION = 99


class TallyOptions(DeviceOptions):
    """Device keys of an ACME Tally station (and, for ``station``, the URL parameter).

    ``station``: the station's number on its TCP gateway. ``max_batch``: items per
    request — a read of *n* channels takes ceil(n / max_batch) requests (fewer if the
    station announces a smaller limit when it connects). ``subscribe``: let the station
    push changes instead of polling it.
    """

    station: Annotated[int, Field(ge=1, le=MAX_STATION)] = 1
    max_batch: Annotated[int, Field(ge=1, le=64)] = 16
    subscribe: bool = True


FAMILY = DriverFamily(
    name=FAMILY_NAME,
    schemes=(Scheme("acme+tcp", "acme_tally.driver:TallyDriver", DEFAULT_PORT,
                    params={"station": param_int(1, MAX_STATION)},
                    description="an ACME Tally station (acme+tcp://host:port?station=N)"),),
    parse_address=parse_tally,
    options=TallyOptions,
    value_types=("bool", "int64", "uint64", "uint16", "float64", "string"),
    requires="acme-tally",
    package="acme-tally",
    profile_dirs=(Path(__file__).parent / "profiles",),
    description="ACME Tally counting stations over TCP (example out-of-tree driver)",
)
