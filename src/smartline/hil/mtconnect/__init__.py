"""A simulated MTConnect agent (aiohttp.web, server side) serving CNC machine models."""

from ._agent import MtConnectAgentSim, MtConnectFaults, Observation
from ._model import CncMachineModel, Condition, DataItemDef, camel_case

__all__ = ["CncMachineModel", "Condition", "DataItemDef", "MtConnectAgentSim",
           "MtConnectFaults", "Observation", "camel_case"]
