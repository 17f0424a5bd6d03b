"""A simulated GRBL 1.1 CNC controller (server side) on a pty or a TCP socket.

:class:`GrblController` is the controller (receive ring, line buffer, G-code parser,
planner, motion on an injected clock, status reports, settings, alarms);
:class:`GrblSim` serves it on a raw pty (``os.openpty``) or ``socket://host:port``;
:class:`GrblFaults` injects faults. ``python -m smartline.hil.grbl`` runs one.
"""

from ._controller import (
    BANNER,
    DEFAULT_SETTINGS,
    LINE_BUFFER_SIZE,
    PLANNER_BLOCKS,
    RX_BUFFER_SIZE,
    GrblController,
    GrblFaults,
)
from ._server import GrblSim

__all__ = ["BANNER", "DEFAULT_SETTINGS", "LINE_BUFFER_SIZE", "PLANNER_BLOCKS",
           "RX_BUFFER_SIZE", "GrblController", "GrblFaults", "GrblSim"]
