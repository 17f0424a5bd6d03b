"""A simulated Siemens S7 CPU (python-snap7 server side, DBs from ``family: s7`` profiles)."""

from ._plc import S7Faults, S7Identity, S7PlcSim, pack_value, unpack_value
from ._server import S7ServerSim, free_port

__all__ = ["S7Faults", "S7Identity", "S7PlcSim", "S7ServerSim", "free_port", "pack_value",
           "unpack_value"]
