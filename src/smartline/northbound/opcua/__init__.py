"""The line as an OPC UA server (issue #13): every tag a variable ``ns=<idx>;s=<tag>`` of
namespace ``urn:smartline:<line>`` with its type, unit, quality and timestamps; writes through
the write guard and the audit trail; PackML units with their state, mode and commands."""

from __future__ import annotations

from ._eu import UNECE_NAMESPACE, eu_information, unece_code, unit_id
from ._server import LineServer
from ._values import node_type, status_code

__all__ = ["UNECE_NAMESPACE", "LineServer", "eu_information", "node_type", "status_code",
           "unece_code", "unit_id"]
