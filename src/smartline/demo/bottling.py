"""The bottling example line's control program (``recipes/bottling-line.yaml``): the
conveyor drive's run command and speed reference, with a trip interlock.

The belt runs at ``SPEED_RPM`` (ABB Drives profile control word 0x047F) until its drive
trips; then the run command is taken away (0x047E, OFF1) and stays away, so that a drive
reset does not restart the belt under bottles nobody has looked at. While the drive's
status is BAD (NaN: the drive does not answer) the program keeps the command it gave.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from smartline.cycle import program

__all__ = ["INPUTS", "OUTPUTS", "RUN_WORD", "SPEED_RPM", "STOP_WORD", "BottlingState",
           "bottling", "bottling_state"]

INPUTS = ["drive.status.tripped"]
OUTPUTS = ["drive.control_word", "drive.speed_ref"]

RUN_WORD = 1151.0  # 0x047F: ABB Drives profile, run (ACS580 firmware manual, EFB control)
STOP_WORD = 1150.0  # 0x047E: ready to run, OFF1 (ramp stop)
SPEED_RPM = 1200.0  # belt speed reference: 0.21 m/s on the example plant


class BottlingState(NamedTuple):
    """The trip latch (one element: set once the drive tripped)."""

    latched: npt.NDArray[np.bool_]


def bottling_state() -> BottlingState:
    """Fresh state: not latched, the belt may run."""
    return BottlingState(latched=np.zeros(1, np.bool_))


@program(inputs=INPUTS, outputs=OUTPUTS, init=bottling_state)
def bottling(now_ns, inputs, outputs, state):  # type: ignore[no-untyped-def]
    """Run the belt at SPEED_RPM; stop it for good once its drive trips."""
    tripped = inputs[0]
    if tripped == tripped and tripped >= 0.5:  # noqa: PLR0124 - NaN (BAD) is not equal to itself
        state.latched[0] = True
    outputs[0] = STOP_WORD if state.latched[0] else RUN_WORD
    outputs[1] = SPEED_RPM
