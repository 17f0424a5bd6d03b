"""The ``opcua`` family: OPC UA servers (asyncua)."""

from __future__ import annotations

from smartline.config import DeviceOptions, SecurityModel, UserModel
from smartline.core import DriverFamily, Scheme
from smartline.tags import parse_opcua

__all__ = ["FAMILY", "OpcUaOptions"]


class OpcUaOptions(DeviceOptions):
    """The secure channel and the user identity."""

    security: SecurityModel | None = None
    user: UserModel | None = None


FAMILY = DriverFamily(
    name="opcua",
    schemes=(Scheme("opc.tcp", "smartline.drivers.opcua:OpcUaDriver", 4840,
                    description="OPC UA binary (opc.tcp://host:port/path)"),),
    parse_address=parse_opcua,
    options=OpcUaOptions,
    value_types=("bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64",
                 "uint64", "float32", "float64", "string"),
    requires="smartline[opcua]",
    imports=("asyncua",),
    description="OPC UA client on asyncua",
)
