"""Line-protocol serial instruments (``serial://PORT``) described by device profiles.

The family (scheme, options, grammar, the ``protocol:`` model) is the light module
:mod:`smartline.drivers.families.serial`; docs/reference/serial.md describes the protocol
language and how to add an instrument without Python.
"""

from ._driver import SerialInstrumentDriver, SerialPlan
from ._proto import Compiled, compile_protocol

__all__ = ["Compiled", "SerialInstrumentDriver", "SerialPlan", "compile_protocol"]
