"""OPC UA client driver on asyncua (``opc.tcp://``); certificates in :mod:`.certs`."""

from __future__ import annotations

from ._driver import OpcUaDriver, OpcUaPlan

__all__ = ["OpcUaDriver", "OpcUaPlan"]
