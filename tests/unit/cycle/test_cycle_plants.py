"""Plant models of the simulator (smartline.hil.plants): the thermal lag and its runner."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest

from smartline.core import VirtualClock
from smartline.hil.plants import FirstOrderThermal, PlantRunner, ZoneLink, thermal_step
from smartline.testing.budget import assert_no_allocation


@pytest.mark.parametrize("step", [thermal_step, thermal_step.py_func])
def test_first_order_response_is_exact(step) -> None:  # type: ignore[no-untyped-def]
    t = np.array([20.0, 20.0])
    u = np.array([50.0, 250.0])  # the second is clamped to 100 %
    step(t, u, np.array([20.0, 20.0]), np.array([400.0, 400.0]), np.array([10.0, 10.0]), 5.0)
    a = 1 - math.exp(-0.5)
    assert t[0] == pytest.approx(20 + a * 200)
    assert t[1] == pytest.approx(20 + a * 400)


def test_many_small_steps_equal_one_big_step() -> None:
    p1 = FirstOrderThermal(1, tau_s=8.0, gain=400.0)
    p2 = FirstOrderThermal(1, tau_s=8.0, gain=400.0)
    p1.power_pct[:] = p2.power_pct[:] = 40.0
    for _ in range(1000):
        p1.step(0.01)
    p2.step(10.0)
    assert p1.temperature[0] == pytest.approx(p2.temperature[0], rel=1e-9)


def test_nan_power_is_off_and_zero_tau_jumps() -> None:
    p = FirstOrderThermal(2, tau_s=[0.0, 5.0], initial=100.0)
    p.power_pct[:] = [np.nan, np.nan]
    p.step(0.1)
    assert p.temperature[0] == 20.0 and p.temperature[1] < 100.0
    p.step(0)  # no time, no change
    assert p.temperature[0] == 20.0


def test_bad_parameters() -> None:
    with pytest.raises(ValueError, match="at least one zone"):
        FirstOrderThermal(0)
    with pytest.raises(ValueError, match="tau_s"):
        FirstOrderThermal(2, tau_s=-1.0)
    with pytest.raises(ValueError, match="gain: expected a scalar or 2 values"):
        FirstOrderThermal(2, gain=[1.0, 2.0, 3.0])


def test_step_kernel_does_not_allocate() -> None:
    p = FirstOrderThermal(3)
    p.warm_up()
    assert_no_allocation(thermal_step, p.temperature, p.power_pct, p.ambient, p.gain, p.tau_s,
                         0.01)


class Dev:
    def __init__(self, **values: float) -> None:
        self.values = dict(values)

    def get(self, name: str) -> float:
        return self.values[name]

    def set(self, name: str, value: float) -> None:
        self.values[name] = value


def test_runner_exchanges_values_with_devices_in_virtual_time() -> None:
    zone, heater = Dev(pv=0.0, mv=0.0), Dev(power=100.0)
    plant = FirstOrderThermal(1, tau_s=10.0, gain=400.0)
    clock = VirtualClock()
    r = PlantRunner(plant, [ZoneLink(zone, 0, "pv", "power", power_device=heater, mv_point="mv")],
                    clock=clock)
    assert zone.values["pv"] == 20.0  # published at construction
    r.advance_to(0)
    r.advance_to(10_000_000_000)
    assert zone.values["pv"] == pytest.approx(20 + 400 * (1 - math.exp(-1)))
    assert zone.values["mv"] == 100.0 and r.steps == 1
    r.advance_to(5)  # time never goes back
    assert r.steps == 1
    with pytest.raises(ValueError, match="zone index 3"):
        PlantRunner(plant, [ZoneLink(zone, 3, "pv", "power")])


def test_runner_real_time_loop_steps_until_cancelled() -> None:
    zone = Dev(pv=0.0, power=100.0)
    r = PlantRunner(FirstOrderThermal(1, tau_s=1.0), [ZoneLink(zone, 0, "pv", "power")])

    async def go() -> None:
        task = asyncio.create_task(r.run(0.005))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go())
    assert r.steps >= 5 and zone.values["pv"] > 20.0
