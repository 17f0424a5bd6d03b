"""Simulated line-protocol instruments (scales, meters, scanners, gauges) served from their
device profiles: on a pty, as ``socket://`` and as ``rfc2217://`` (see
:class:`SerialInstrumentSim`), with fault injection (:meth:`Instrument.fault`)."""

from ._instrument import (
    Behaviour,
    FaultKind,
    Instrument,
    MtSicsBehaviour,
    PfeifferBehaviour,
    ScannerBehaviour,
    ScpiBehaviour,
    behaviour_for,
    u_expo_new,
)
from ._server import SerialInstrumentSim, SimProcess

__all__ = ["Behaviour", "FaultKind", "Instrument", "MtSicsBehaviour", "PfeifferBehaviour",
           "ScannerBehaviour", "ScpiBehaviour", "SerialInstrumentSim", "SimProcess",
           "behaviour_for", "u_expo_new"]
