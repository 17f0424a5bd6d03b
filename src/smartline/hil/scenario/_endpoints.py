"""The simulated endpoints of a scenario: one adapter per protocol over the existing simulators.

Each :class:`Endpoint` starts its simulator on 127.0.0.1, gives the URL a line file uses, reads
and writes points by name in engineering units (the plant side), and plays the timeline's
device faults with what its simulator offers: ``down`` (the server stops listening and its
connections drop; it comes back on the same port), ``latency``, ``exception``, ``corrupt``,
``garbage``, ``no_answer`` and ``disconnect``. Faults take effect at once (synchronously, so a
virtual-time step sees them); stopping and restarting a listener is queued in order and
awaited by :meth:`Endpoint.settle`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from .. import modbus as _modbus
from .. import s7 as _s7
from .. import serial as _serial
from ._files import DeviceSpec

__all__ = ["Endpoint", "ModbusEndpoint", "S7Endpoint", "SerialEndpoint", "make_endpoint"]

log = logging.getLogger(__name__)


class Endpoint:
    """A scenario device served on 127.0.0.1 (subclasses adapt one simulator)."""

    def __init__(self, spec: DeviceSpec) -> None:
        self.spec = spec
        self.name = spec.name
        self.is_down = False
        self._ops: list[Callable[[], Awaitable[None]]] = []
        self._worker: asyncio.Task[None] | None = None

    # -- life ------------------------------------------------------------------------------
    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        await self.settle()
        await self._stop()

    async def _stop(self) -> None:
        raise NotImplementedError

    @property
    def url(self) -> str:
        raise NotImplementedError

    # -- plant side ------------------------------------------------------------------------
    def get(self, point: str) -> Any:
        raise NotImplementedError

    def set(self, point: str, value: Any) -> None:
        raise NotImplementedError

    # -- faults ----------------------------------------------------------------------------
    def fault(self, kind: str, args: dict[str, Any]) -> None:
        """Start fault ``kind`` (checked against the family's list by the scenario loader)."""
        if kind == "down":
            self.go_down()
        else:
            self._fault(kind, args, on=True)

    def clear(self, kind: str) -> None:
        """End fault ``kind``."""
        if kind == "down":
            self.come_up()
        else:
            self._fault(kind, {}, on=False)

    def _fault(self, kind: str, args: dict[str, Any], *, on: bool) -> None:
        raise NotImplementedError

    def go_down(self) -> None:
        """The device is gone: nothing answers now; the listener closes (queued)."""
        if self.is_down:
            return
        self.is_down = True
        self._mute(True)
        self._queue(self._close_listener)

    def come_up(self) -> None:
        """The device is back on the same port (queued)."""
        if not self.is_down:
            return
        self.is_down = False
        self._queue(self._open_listener)
        self._mute(False)

    def _mute(self, on: bool) -> None:
        raise NotImplementedError

    async def _close_listener(self) -> None:
        raise NotImplementedError

    async def _open_listener(self) -> None:
        raise NotImplementedError

    def _queue(self, op: Callable[[], Awaitable[None]]) -> None:
        self._ops.append(op)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(
                self._work(), name=f"smartline-sim-{self.name}")

    async def _work(self) -> None:
        while self._ops:
            op = self._ops.pop(0)
            try:
                await op()
            except Exception:  # a failed restart must not end the scenario
                log.exception("device %s: %s failed", self.name, getattr(op, "__name__", op))

    async def settle(self) -> None:
        """Wait until queued listener stops/starts are done."""
        while self._worker is not None and not self._worker.done():
            await asyncio.shield(self._worker)


class ModbusEndpoint(Endpoint):
    """A Modbus/TCP (or RTU-over-TCP) device from a ``family: modbus`` profile."""

    def __init__(self, spec: DeviceSpec) -> None:
        super().__init__(spec)
        self.device = _modbus.ModbusDeviceSim.from_profile(spec.profile, spec.unit,
                                                           name=spec.name)
        transport: Literal["tcp", "rtuovertcp"] = (
            "rtuovertcp" if spec.protocol == "modbus+rtuovertcp" else "tcp")
        self.server = _modbus.ModbusServerSim(self.device, transport=transport, port=spec.port)

    async def start(self) -> None:
        try:
            await self.server.start()
        except RuntimeError as exc:  # pymodbus's word for a port it cannot bind
            raise OSError(f"device {self.name}: cannot listen on 127.0.0.1:"
                          f"{self.server.port} ({exc})") from exc

    async def _stop(self) -> None:
        await self.server.stop()

    @property
    def url(self) -> str:
        return self.server.url()

    def get(self, point: str) -> Any:
        return self.device.get(point)

    def set(self, point: str, value: Any) -> None:
        self.device.set(point, value)

    def _fault(self, kind: str, args: dict[str, Any], *, on: bool) -> None:
        f = self.device.faults
        if kind == "latency":
            f.latency_s = float(args["ms"]) / 1e3 if on else 0.0
        elif kind == "exception":
            f.exception = int(args["code"]) if on else None
        elif kind == "corrupt":
            f.corrupt_crc = on
        elif kind == "garbage":
            f.garbage = on
        elif kind == "no_answer":
            f.no_answer = on
        elif kind == "disconnect":
            f.disconnect = on
            if on:
                self.server.disconnect_clients()
        f.remaining = None

    def _mute(self, on: bool) -> None:
        self.device.faults.disconnect = on
        if on:
            self.server.disconnect_clients()

    async def _close_listener(self) -> None:
        await self.server.pause()

    async def _open_listener(self) -> None:
        await self.server.start()


class S7Endpoint(Endpoint):
    """A Siemens S7 CPU from a ``family: s7`` profile (values in engineering units)."""

    def __init__(self, spec: DeviceSpec) -> None:
        super().__init__(spec)
        self.plc = _s7.S7PlcSim.from_profile(spec.profile, name=spec.name)
        self.server = _s7.S7ServerSim(self.plc, port=spec.port, rack=spec.rack, slot=spec.slot)

    async def start(self) -> None:
        await self.server.start()

    async def _stop(self) -> None:
        await self.server.stop()

    @property
    def url(self) -> str:
        return self.server.url

    def get(self, point: str) -> Any:
        raw = self.plc.get(point)
        scale = self.spec.profile.points[point].scale
        if scale is None or isinstance(raw, str | bool):
            return raw
        return scale.to_eng(float(raw))

    def set(self, point: str, value: Any) -> None:
        p = self.spec.profile.points[point]
        raw = self.plc.to_raw(p, value)
        if isinstance(raw, float) and getattr(p.address, "s7type", "") not in ("REAL", "LREAL"):
            raw = round(raw)  # int() in pack_value would truncate
        self.plc.set(point, raw)

    def _fault(self, kind: str, args: dict[str, Any], *, on: bool) -> None:
        f = self.plc.faults
        if kind == "latency":
            f.latency_s = float(args["ms"]) / 1e3 if on else 0.0
        elif kind == "exception":
            f.header_error = 0x8500 | (int(args["code"]) & 0xFF) if on else None
        elif kind == "corrupt":
            f.garbage = on
        elif kind == "no_answer":
            f.no_answer = on
        elif kind == "disconnect":
            f.disconnect = on
            if on:
                self.server.drop_connections()

    def _mute(self, on: bool) -> None:
        self.plc.faults.disconnect = on
        if on:
            self.server.drop_connections()

    async def _close_listener(self) -> None:
        await self.server.stop()

    async def _open_listener(self) -> None:
        await self.server.start()


class SerialEndpoint(Endpoint):
    """A line-protocol instrument from a ``family: serial`` profile, on TCP (``socket://``),
    RFC 2217 or a pty. ``down`` silences it: a serial cable has no listener to close."""

    def __init__(self, spec: DeviceSpec) -> None:
        super().__init__(spec)
        self.sim = _serial.SerialInstrumentSim(spec.profile, tcp=spec.transport == "socket")
        self._url = ""

    async def start(self) -> None:
        self.sim.start()
        if self.spec.transport == "socket":
            self._url = f"serial://{self.sim.socket_url()}"
        elif self.spec.transport == "rfc2217":
            self._url = f"serial://{self.sim.rfc2217_url()}"
        else:
            self._url = f"serial://{self.sim.pty_path}"

    async def _stop(self) -> None:
        self.sim.close()

    @property
    def url(self) -> str:
        return self._url

    def get(self, point: str) -> Any:
        with self.sim.instrument.lock:
            return self.sim.instrument.values.get(point)

    def set(self, point: str, value: Any) -> None:
        self.sim.set(point, value)

    def _fault(self, kind: str, args: dict[str, Any], *, on: bool) -> None:
        inst = self.sim.instrument
        with inst.lock:
            if kind == "latency":
                inst.latency_s = float(args["ms"]) / 1e3 if on else 0.0
            elif kind == "corrupt":
                inst.garbage = on
            elif kind == "no_answer":
                inst.silent = on

    def _mute(self, on: bool) -> None:
        with self.sim.instrument.lock:
            self.sim.instrument.silent = on

    async def _close_listener(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self.sim.kick)

    async def _open_listener(self) -> None:
        return None


def make_endpoint(spec: DeviceSpec) -> Endpoint:
    """The adapter for ``spec``'s protocol."""
    family = spec.family
    if family == "modbus":
        return ModbusEndpoint(spec)
    if family == "s7":
        return S7Endpoint(spec)
    return SerialEndpoint(spec)
