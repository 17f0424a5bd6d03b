"""The demo's furnace program on its own: a zone whose temperature is BAD heats no more."""

from __future__ import annotations

import numpy as np

from smartline.demo.furnace import INPUTS, OUTPUTS, ZONES, furnace

MS = 1_000_000


def test_heater_goes_off_when_its_zone_temperature_is_bad() -> None:
    state = furnace.new_state()
    inputs = np.array([100.0] * ZONES + [150.0] * ZONES)
    outputs = np.full(len(OUTPUTS), np.nan)
    assert len(inputs) == len(INPUTS)
    for k in range(20):
        furnace(k * 100 * MS, inputs, outputs, state)
    assert (outputs > 0).all()  # all zones below their set points: heating
    inputs[1] = np.nan  # zone 2's sensor is down (BAD inputs reach the program as NaN)
    furnace(20 * 100 * MS, inputs, outputs, state)
    assert outputs[1] == 0.0
    assert outputs[0] > 0 and outputs[2] > 0
