"""The demo's simulated furnace, in-process (:class:`FurnaceSim`) or as its own process.

``FurnaceSim``: a Modbus/TCP gateway on 127.0.0.1 with the line's devices behind it, and a
three-zone thermal plant wired to them. Every device of the line becomes one unit of the
gateway: from its profile where it has one (the E5CC controllers), else from the line's own
tags on it (the power controller). It listens on ``port`` (default: a free one);
:meth:`FurnaceSim.urls` gives each device's URL there.

``python -m smartline.demo.sim [--port N]``: what ``smartline demo`` starts, so that the
simulated furnace does not share the controller's CPU time and GIL, as a real furnace would
not. It prints one JSON line per device (``{"device", "url"}``) once it serves, then runs the
plant in real time until its standard input closes or it gets SIGTERM. It ignores SIGINT:
on Ctrl-C the controller drives its outputs safe first, and the simulated devices must still
be there to take them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import Mapping, Sequence
from types import TracebackType

from smartline.config import LineConfig
from smartline.core import Clock, MonotonicClock
from smartline.hil.modbus import ModbusDeviceSim, ModbusServerSim, SimPoint
from smartline.hil.plants import FirstOrderThermal, PlantRunner, ZoneLink
from smartline.tags import ModbusAddress

__all__ = ["FurnaceSim", "main"]

log = logging.getLogger(__name__)


class FurnaceSim:
    """Simulated devices of the heat-treatment line plus the plant that heats them.

    ``setpoints`` are written to the controllers at start (degC); ``tau_s``/``gain`` shape
    the zones' first-order response (time constant, rise at full power). With a virtual
    ``clock`` the plant is stepped by :meth:`advance_to` (pass it to the engine's
    ``on_advance``); in real time :meth:`start` also starts stepping it every
    ``plant_period_s``.
    """

    def __init__(self, config: LineConfig, *, zones: int = 3,
                 setpoints: Sequence[float] = (150.0, 180.0, 200.0),
                 tau_s: float | Sequence[float] = (8.0, 10.0, 12.0), gain: float = 400.0,
                 ambient: float = 20.0, clock: Clock | None = None,
                 plant_period_s: float = 0.01, port: int = 0) -> None:
        self.config = config
        self.clock: Clock = clock if clock is not None else MonotonicClock()
        self.realtime = isinstance(self.clock, MonotonicClock)
        self.plant_period_s = plant_period_s
        self.devices: dict[str, ModbusDeviceSim] = {}
        for name, dev in config.devices.items():
            unit = int(dev.url.param("unit", "1") or 1)
            if dev.profile is not None:
                self.devices[name] = ModbusDeviceSim.from_profile(dev.profile, unit, name=name)
            else:
                points = [SimPoint(t.name, t.address, t.scale, t.access)
                          for t in config.tags.values()
                          if t.device == name and isinstance(t.address, ModbusAddress)]
                self.devices[name] = ModbusDeviceSim(unit, points, name=name)
        self.server = ModbusServerSim(list(self.devices.values()), transport="tcp", port=port)
        self.plant = FirstOrderThermal(zones, tau_s=tau_s, gain=gain, ambient=ambient)
        heaters = self.devices["heaters"]
        links = []
        for i in range(zones):
            zone = self.devices[f"zone{i + 1}"]
            zone.set("sp", float(setpoints[i]))
            links.append(ZoneLink(zone, i, "pv", f"heater{i + 1}", power_device=heaters,
                                  mv_point="mv_heating"))
        self.runner = PlantRunner(self.plant, links, clock=self.clock)
        self._task: asyncio.Task[None] | None = None

    def urls(self) -> dict[str, str]:
        """Each device's URL on the running gateway (same unit ids as in the line file)."""
        return {name: self.server.url(dev.unit) for name, dev in self.devices.items()}

    def advance_to(self, now_ns: int) -> None:
        """Step the plant to ``now_ns`` (virtual-time co-simulation)."""
        self.runner.advance_to(now_ns)

    @property
    def temperatures(self) -> Mapping[str, float]:
        return {f"zone{i + 1}": float(t) for i, t in enumerate(self.plant.temperature)}

    async def start(self) -> None:
        self.plant.warm_up()
        await self.server.start()
        if self.realtime and self._task is None:
            self._task = asyncio.create_task(self.runner.run(self.plant_period_s),
                                             name="smartline-demo-plant")
        log.info("demo simulator on %s", self.server.url())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.server.stop()

    async def __aenter__(self) -> FurnaceSim:
        await self.start()
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()


async def _serve(port: int) -> None:
    from smartline.config import load_line

    from . import demo_line_path

    config = load_line(demo_line_path())
    sim = FurnaceSim(config, port=port)
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGTERM, done.set)
    async with sim:
        for device, url in sim.urls().items():
            print(json.dumps({"device": device, "url": url}), flush=True)
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        eof = asyncio.create_task(reader.read())  # returns at EOF: the parent went away
        stop = asyncio.create_task(done.wait())
        await asyncio.wait({eof, stop}, return_when=asyncio.FIRST_COMPLETED)
        for t in (eof, stop):
            t.cancel()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m smartline.demo.sim",
                                     description="The smartline demo's simulated furnace.")
    parser.add_argument("--port", type=int, default=0, help="TCP port (default: a free one)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    asyncio.run(_serve(args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
