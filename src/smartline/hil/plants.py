"""Plant models for the simulator, stepped with numba, and the runner that ties them to devices.

A plant is a bank of n identical processes with SoA state (like ``smartline.logic``): its
``step(dt_s)`` advances all of them with one call of an ``@njit(cache=True, nogil=True)``
kernel. A :class:`PlantRunner` couples a plant to simulated devices through their plant-side
API (``get(point)`` / ``set(point, value)``, as :class:`~smartline.hil.ModbusDeviceSim`
offers): before each step it reads the actuators (a heater's power), after it writes the
sensors (a temperature). It runs either in real time (:meth:`PlantRunner.run`) or co-simulated
on a virtual clock (:meth:`PlantRunner.advance_to`, called by the cycle engine's
``on_advance`` hook), so an hour of plant takes seconds in CI.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from numba import njit

from ..core import Clock, MonotonicClock

__all__ = ["FirstOrderThermal", "PlantDevice", "PlantRunner", "ZoneLink", "thermal_step"]

FloatArray = npt.NDArray[np.float64]


@njit(cache=True, nogil=True)  # type: ignore[misc]
def thermal_step(  # noqa: PLR0917
    temperature: FloatArray,
    power_pct: FloatArray,
    ambient: FloatArray,
    gain: FloatArray,
    tau_s: FloatArray,
    dt_s: float,
) -> None:  # pragma: no cover
    """First-order response, exact for a power held over ``dt_s``:

    ``tau · dT/dt = ambient + gain · u/100 − T`` with ``u`` the heater power in % (clamped to
    0..100) and ``gain`` the rise above ambient at full power.
    """
    for i in range(temperature.shape[0]):
        u = power_pct[i]
        if not math.isfinite(u):
            u = 0.0
        u = min(max(u, 0.0), 100.0)
        target = ambient[i] + gain[i] * u / 100.0
        a = 1.0 - math.exp(-dt_s / tau_s[i]) if tau_s[i] > 0.0 else 1.0
        temperature[i] += a * (target - temperature[i])


class FirstOrderThermal:
    """n heating zones, each a first-order lag from heater power to temperature.

    ``tau_s`` is the time constant, ``gain`` the steady rise above ``ambient`` (°C) at 100 %
    power. Parameters are scalars for every zone or one value per zone.
    """

    def __init__(self, n: int, *, tau_s: npt.ArrayLike = 60.0, gain: npt.ArrayLike = 800.0,
                 ambient: npt.ArrayLike = 20.0, initial: npt.ArrayLike | None = None) -> None:
        if n < 1:
            raise ValueError(f"a plant needs at least one zone, got {n}")
        self.n = n
        self.tau_s: FloatArray = _filled(n, tau_s, "tau_s")
        self.gain: FloatArray = _filled(n, gain, "gain")
        self.ambient: FloatArray = _filled(n, ambient, "ambient")
        if np.any(self.tau_s < 0) or not np.all(np.isfinite(self.tau_s)):
            raise ValueError(f"tau_s must be finite and >= 0, got {tau_s!r}")
        self.temperature: FloatArray = (self.ambient.copy() if initial is None
                                        else _filled(n, initial, "initial"))
        self.power_pct: FloatArray = np.zeros(n)

    def warm_up(self) -> None:
        """Compile (or load from cache) the kernel now, not in the middle of serving."""
        t = self.temperature.copy()
        thermal_step(t, self.power_pct, self.ambient, self.gain, self.tau_s, 1e-3)

    def step(self, dt_s: float) -> None:
        """Advance every zone by ``dt_s`` seconds with the current :attr:`power_pct`."""
        if dt_s > 0:
            thermal_step(self.temperature, self.power_pct, self.ambient, self.gain, self.tau_s,
                         float(dt_s))


def _filled(n: int, value: npt.ArrayLike, name: str) -> FloatArray:
    out = np.empty(n, np.float64)
    try:
        out[...] = value
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{name}: expected a scalar or {n} values, got {value!r}") from exc
    return out


class PlantDevice(Protocol):
    """The plant side of a simulated device (``ModbusDeviceSim`` has it)."""

    def get(self, name: str) -> Any: ...

    def set(self, name: str, value: Any) -> None: ...


@dataclass(frozen=True, slots=True)
class ZoneLink:
    """Zone ``index`` of a thermal plant and the device points it is wired to.

    The temperature goes to ``pv_point`` of ``device``; the heater power comes from
    ``power_point`` of ``power_device`` (default: the same device). ``mv_point``, if given,
    mirrors the power on ``device`` (a controller's MV monitor).
    """

    device: PlantDevice
    index: int
    pv_point: str
    power_point: str
    power_device: PlantDevice | None = None
    mv_point: str | None = None


class PlantRunner:
    """Steps a :class:`FirstOrderThermal` and exchanges values with its devices."""

    def __init__(self, plant: FirstOrderThermal, links: Sequence[ZoneLink], *,
                 clock: Clock | None = None) -> None:
        for link in links:
            if not 0 <= link.index < plant.n:
                raise ValueError(f"zone index {link.index} outside the plant's {plant.n} zones")
        self.plant = plant
        self.links = tuple(links)
        self.clock: Clock = clock if clock is not None else MonotonicClock()
        self._last_ns: int | None = None
        self.steps = 0
        self.publish()

    def publish(self) -> None:
        """Write the plant's temperatures to the devices."""
        for link in self.links:
            link.device.set(link.pv_point, float(self.plant.temperature[link.index]))

    def collect(self) -> None:
        """Read the heaters' power from the devices (and mirror it to MV monitors)."""
        for link in self.links:
            dev = link.power_device if link.power_device is not None else link.device
            value = dev.get(link.power_point)
            power = float(value) if value is not None else 0.0
            self.plant.power_pct[link.index] = power
            if link.mv_point is not None:
                link.device.set(link.mv_point, power)

    def advance_to(self, now_ns: int) -> None:
        """Step the plant from its last time to ``now_ns`` (co-simulation on a virtual clock)."""
        if self._last_ns is None:
            self._last_ns = now_ns
            return
        dt = (now_ns - self._last_ns) / 1e9
        if dt <= 0:
            return
        self.collect()
        self.plant.step(dt)
        self.publish()
        self._last_ns = now_ns
        self.steps += 1

    async def run(self, period_s: float = 0.01) -> None:
        """Step in real time every ``period_s`` until cancelled."""
        self.advance_to(self.clock.now_ns())
        while True:
            await self.clock.asleep(period_s)
            self.advance_to(self.clock.now_ns())
