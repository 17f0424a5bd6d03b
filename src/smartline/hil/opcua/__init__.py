"""Simulated OPC UA servers (asyncua's Server side) for tests and HIL runs.

:class:`OpcUaSim` serves a node tree from an ``opcua`` device profile with security and
users on, and injects faults: the server stopped and restarted on the same port, bad item
status, nodes that are not writable, small operation limits, and — through a relay
(:class:`FaultProxy`) — latency, garbage and cut connections.
"""

from __future__ import annotations

from ._proxy import FaultProxy
from ._server import OpcUaSim, SimVariable, free_port

__all__ = ["FaultProxy", "OpcUaSim", "SimVariable", "free_port"]
