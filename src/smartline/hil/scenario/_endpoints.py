"""The simulated endpoints of a scenario: one adapter per protocol over the existing simulators.

Each :class:`Endpoint` starts its simulator on 127.0.0.1, gives the URL a line file uses, reads
and writes points by name in engineering units (the plant side), and plays the timeline's
device faults with what its simulator offers: ``down`` (the server stops listening and its
connections drop; it comes back on the same port), ``latency``, ``exception``, ``corrupt``,
``garbage``, ``no_answer`` and ``disconnect``. Faults take effect at once (synchronously, so a
virtual-time step sees them); stopping and restarting a listener is queued in order and
awaited by :meth:`Endpoint.settle`. OPC UA (``opc.tcp``), MTConnect (``mtconnect+http``) and
GRBL (``grbl``) devices add ``restart`` and ``unavailable`` (MTConnect) and ``alarm`` (GRBL).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal

from ...core import Clock, DriverNotAvailableError, MonotonicClock, VirtualClock
from ..blocks.cnc import CncAlarm, CncExecution
from ._files import DeviceSpec

if TYPE_CHECKING:
    from .. import grbl as _grbl
    from .. import modbus as _modbus
    from .. import mtconnect as _mtc
    from .. import opcua as _opcua
    from .. import s7 as _s7
    from .. import serial as _serial
else:
    class _Lazy:
        """A simulator package imported on first use: a scenario needs the protocol
        libraries of its own devices only (the demo runs with the modbus extra alone)."""

        def __init__(self, name: str) -> None:
            self._name = name

        def __getattr__(self, attr: str) -> Any:
            import importlib

            return getattr(importlib.import_module(self._name), attr)

    _grbl, _modbus, _mtc, _opcua, _s7, _serial = (
        _Lazy(f"smartline.hil.{n}") for n in ("grbl", "modbus", "mtconnect", "opcua", "s7",
                                              "serial"))

__all__ = ["Endpoint", "GrblEndpoint", "ModbusEndpoint", "MtConnectEndpoint", "OpcUaEndpoint",
           "S7Endpoint", "SerialEndpoint", "make_endpoint"]

log = logging.getLogger(__name__)


class Endpoint(ABC):
    """A scenario device served on 127.0.0.1 (each subclass adapts one simulator and fills
    the abstract methods)."""

    def __init__(self, spec: DeviceSpec) -> None:
        self.spec = spec
        self.name = spec.name
        self.is_down = False
        self._ops: list[Callable[[], Awaitable[None]]] = []
        self._worker: asyncio.Task[None] | None = None

    # -- life ------------------------------------------------------------------------------
    @abstractmethod
    async def start(self) -> None:
        """The simulator's own (abstract)."""

    async def stop(self) -> None:
        await self.settle()
        await self._stop()

    @abstractmethod
    async def _stop(self) -> None:
        """The simulator's own (abstract)."""

    @property
    @abstractmethod
    def url(self) -> str:
        """The URL a line uses to reach the device."""

    # -- plant side ------------------------------------------------------------------------
    @abstractmethod
    def get(self, point: str) -> Any:
        """The simulator's own (abstract)."""

    @abstractmethod
    def set(self, point: str, value: Any) -> None:
        """The simulator's own (abstract)."""

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

    @abstractmethod
    def _fault(self, kind: str, args: dict[str, Any], *, on: bool) -> None:
        """The simulator's own (abstract)."""

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

    @abstractmethod
    def _mute(self, on: bool) -> None:
        """The simulator's own (abstract)."""

    @abstractmethod
    async def _close_listener(self) -> None:
        """The simulator's own (abstract)."""

    @abstractmethod
    async def _open_listener(self) -> None:
        """The simulator's own (abstract)."""

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


class OpcUaEndpoint(Endpoint):
    """An OPC UA server from an ``opcua`` profile (security None, anonymous), behind a relay
    (:class:`~smartline.hil.opcua.FaultProxy`) on ``port`` that plays the link faults.

    Plant writes are queued in order (asyncua writes are async); :meth:`get` answers a
    queued value until it is written, so a step reads what the previous one wrote."""

    def __init__(self, spec: DeviceSpec) -> None:
        super().__init__(spec)
        self.sim = _opcua.OpcUaSim.from_profile(spec.profile, policies=(), allow_none=True,
                                                proxy=False)
        self.proxy: _opcua.FaultProxy | None = None
        self._pending: dict[str, Any] = {}

    async def start(self) -> None:
        await self.sim.start()
        self.proxy = _opcua.FaultProxy(self.sim.port)
        await self.proxy.start(self.spec.port)

    async def _stop(self) -> None:
        await self.sim.close()
        if self.proxy is not None:
            await self.proxy.stop()

    @property
    def url(self) -> str:
        port = self.proxy.port if self.proxy is not None else self.spec.port
        return f"opc.tcp://127.0.0.1:{port}/smartline/"

    def get(self, point: str) -> Any:
        if point in self._pending:
            return self._pending[point]
        if self.is_down or not self.sim.serving:  # down: what it will have when back
            return next((v.value for v in self.sim.variables if v.name == point), None)
        return self.sim.value(point)

    def set(self, point: str, value: Any) -> None:
        if point not in self.spec.profile.points:
            raise KeyError(f"{self.name} has no point {point!r}")
        self._pending[point] = value

        async def write() -> None:
            try:
                await self.sim.set(point, value)
            finally:
                if self._pending.get(point) is value:
                    del self._pending[point]
        self._queue(write)

    def _fault(self, kind: str, args: dict[str, Any], *, on: bool) -> None:
        proxy = self.proxy
        assert proxy is not None, "the device is not started"
        if kind == "latency":
            proxy.latency_s = float(args["ms"]) / 1e3 if on else 0.0
        elif kind == "corrupt":
            proxy.garbage = on
        elif kind == "no_answer":
            proxy.set_silent(on)
        elif kind == "disconnect" and on:  # the device hangs up once; new sessions work
            proxy.kick()

    def _mute(self, on: bool) -> None:
        if on and self.proxy is not None:
            self.proxy.kick()

    async def _close_listener(self) -> None:
        await self.sim.stop()
        if self.proxy is not None:  # the relay's port refuses connections too
            await self.proxy.stop()

    async def _open_listener(self) -> None:
        await self.sim.restart()
        if self.proxy is not None:
            await self.proxy.start(self.proxy.port)


_EXECUTION = {int(e): ("PROGRAM_COMPLETED" if e is CncExecution.COMPLETED else e.name)
              for e in CncExecution}


class MtConnectEndpoint(Endpoint):
    """An MTConnect agent serving one machine (:class:`~smartline.hil.mtconnect.CncMachineModel`,
    named ``VMC-3Axis``) for a ``cnc`` profile whose points are its data item names or ids.

    Wired plant outputs drive the machine: ``execution`` takes a CncExecution code (or
    text), a CONDITION (``system``) a CncAlarm code or bool (non-zero: a Fault), numbers
    are published as the agent's samples and counts. With nothing wired the model runs its
    own program. ``restart``: a new instanceId and sequences from 1; ``unavailable``: the
    adapter is gone, every item UNAVAILABLE until the fault ends; ``down``: the port
    refuses connections from that step on and listens again when it ends.

    ``clock``: the scenario's. Under a :class:`~smartline.core.VirtualClock` the agent does
    not tick in the background: it moves the machine to the clock's time when a request
    comes, so timestamps, ``creationTime`` and ``instanceId`` are virtual time and the line
    reads the same documents on every run; ``seed`` fixes the stream boundary."""

    def __init__(self, spec: DeviceSpec, *, clock: Clock | None = None,
                 seed: int = 0) -> None:
        super().__init__(spec)
        virtual = isinstance(clock, VirtualClock)
        self.machine = _mtc.CncMachineModel()
        self.agent = _mtc.MtConnectAgentSim(
            [self.machine], port=spec.port, clock=clock if clock is not None else
            MonotonicClock(), tick_s=0.0 if virtual else 0.05, tick_on_request=virtual,
            seed=zlib.crc32(f"{seed}/{spec.name}".encode()))
        self.adapter = True
        self._items: dict[str, _mtc.DataItemDef] = {
            k: d for d in self.machine.items for k in (d.key, d.id, d.name)}

    async def start(self) -> None:
        await self.agent.start()

    async def _stop(self) -> None:
        await self.agent.stop()

    @property
    def url(self) -> str:
        return self.agent.url()

    def _item(self, point: str) -> _mtc.DataItemDef:
        try:
            return self._items[point]
        except KeyError:
            raise KeyError(f"{self.name}: the machine has no data item {point!r}") from None

    def get(self, point: str) -> Any:
        d = self._item(point)
        if d.category == "CONDITION":
            levels = {c.level for c in self.machine.conditions.get(d.key, {}).values()}
            return "fault" if "Fault" in levels else "warning" if levels else "normal"
        text = self.machine.values().get(d.key)
        if text is None or (d.category == "EVENT" and d.key != "part_count"):
            return text
        try:
            return int(text) if d.key == "part_count" else float(text)
        except ValueError:
            return text

    def set(self, point: str, value: Any) -> None:
        d = self._item(point)
        if d.category == "CONDITION":
            self._condition(d.key, value)
            return
        if d.key == "execution" and not isinstance(value, str):
            text = _EXECUTION.get(round(value), "UNAVAILABLE")
        elif d.key == "avail" and not isinstance(value, str):
            text = "AVAILABLE" if value else "UNAVAILABLE"
        elif d.key == "part_count":
            text = str(round(value))
        elif isinstance(value, bool) or not isinstance(value, int | float):
            text = str(value)
        else:
            text = f"{value:.3f}"
        self.machine.external = True  # the plant drives it now: its own program stops
        if self.adapter:
            self.agent.set(d.id, text)
        else:
            self.machine.put(d.key, text)  # published when the adapter is back

    def _condition(self, key: str, value: Any) -> None:
        code = 0 if isinstance(value, str) else round(value) if not isinstance(
            value, bool) else int(value)
        if code:
            try:
                text = CncAlarm(code).name.lower().replace("_", " ")
            except ValueError:
                text = "alarm"
            self.machine.clear_alarm(key=key)
            self.machine.raise_alarm(f"A{code}", text, key=key)
        else:
            self.machine.clear_alarm(key=key)
        self.agent.tick()  # publishes the condition

    def _fault(self, kind: str, args: dict[str, Any], *, on: bool) -> None:
        if kind == "latency":
            self.agent.faults.latency_s = float(args["ms"]) / 1e3 if on else 0.0
        elif kind == "corrupt":
            self.agent.faults.garbage = on
        elif kind == "restart" and on:
            self.agent.restart(drop_connections=True)
        elif kind == "unavailable":
            self.adapter = not on
            if on:
                self.agent.disconnect_adapter()
            else:
                self.agent.reconnect_adapter()

    def _mute(self, on: bool) -> None:
        # the listener itself, at once: a line that connects in the same step is refused
        # (or served) on every run, whatever the event loop did in between
        if on:
            self.agent.pause()
            return
        try:
            self.agent.resume()
        except OSError:  # the port was taken meanwhile: the scenario goes on without it
            log.exception("device %s: cannot listen again on 127.0.0.1:%d", self.name,
                          self.agent.port)

    async def _close_listener(self) -> None:
        return None

    async def _open_listener(self) -> None:
        await self.agent.settle()


class GrblEndpoint(Endpoint):
    """A GRBL 1.1 controller (:class:`~smartline.hil.grbl.GrblSim`) on a pty
    (``transport: pty``) or ``socket://``, moving on the scenario's ``clock`` (its motion is
    its own). Under a :class:`~smartline.core.VirtualClock` it runs in lock-step
    (``GrblSim(lockstep=True)``): it speaks only when the line sends bytes, so an alarm
    or the banner after ``down`` reaches the line with its next request, on every run.

    The plant reads its state (``state``, ``alarm``, ``mpos.*`` and ``wpos.*`` — where the
    last finished move ended —, the programmed ``feed`` and ``spindle``); it has no points
    the plant writes. ``down``: powered off (silent), then
    powered up again (the banner, as after a reset); ``alarm``: ``ALARM:code`` now — it
    stays until the line unlocks (``$X``) or resets it, as on the machine."""

    def __init__(self, spec: DeviceSpec, *, clock: Clock | None = None) -> None:
        super().__init__(spec)
        self.sim = _grbl.GrblSim(transport="pty" if spec.transport == "pty" else "tcp",
                                 port=spec.port,
                                 clock=clock if clock is not None else MonotonicClock(),
                                 lockstep=isinstance(clock, VirtualClock))

    async def start(self) -> None:
        self.sim.start()

    async def _stop(self) -> None:
        await asyncio.to_thread(self.sim.stop)

    @property
    def url(self) -> str:
        return self.sim.url

    def get(self, point: str) -> Any:
        c = self.sim.controller
        with self.sim.lock:
            if point == "state":
                return c.state
            if point == "alarm":
                return c.alarm
            axis = {"x": 0, "y": 1, "z": 2}
            kind, _, ax = point.partition(".")
            if kind in ("mpos", "wpos") and ax in axis:
                pos = c.mpos[axis[ax]]
                return pos - c.wco[axis[ax]] if kind == "wpos" else pos
            if point == "feed":
                return c.modal.feed
            if point == "spindle":
                return 0.0 if c.modal.spindle == 5.0 else c.modal.speed
        return None

    def set(self, point: str, value: Any) -> None:
        raise ValueError(f"{self.name}: GRBL point {point!r} is the controller's own; "
                         "the plant cannot write it")

    def _fault(self, kind: str, args: dict[str, Any], *, on: bool) -> None:
        f = self.sim.faults
        with self.sim.lock:
            if kind == "latency":
                f.latency_s = float(args["ms"]) / 1e3 if on else 0.0
            elif kind == "corrupt":
                f.garbage = on
            elif kind == "no_answer":
                f.silent = on
            elif kind == "alarm" and on:
                self.sim.controller.raise_alarm(int(args["code"]))
        if kind == "disconnect" and on:
            self.sim.drop_link()
        self.sim.inject(b"")  # wake the serving thread: what the controller said goes out

    def _mute(self, on: bool) -> None:
        with self.sim.lock:
            self.sim.faults.silent = on
        if not on:
            self.sim.hard_reset()  # powered up again: the banner

    async def _close_listener(self) -> None:
        return None

    async def _open_listener(self) -> None:
        return None


_EXTRAS = {"modbus": "modbus", "s7": "s7", "opcua": "opcua", "cnc": "cnc", "serial": "serial"}


def make_endpoint(spec: DeviceSpec, *, clock: Clock | None = None,
                  seed: int = 0) -> Endpoint:
    """The adapter for ``spec``'s protocol; ``DriverNotAvailableError`` names the extra to
    install when its simulator's protocol library is missing. ``clock`` and ``seed`` are
    the runner's: the CNC endpoints keep their time on it (byte-identical virtual runs)."""
    try:
        return _make_endpoint(spec, clock, seed)
    except ModuleNotFoundError as exc:
        extra = _EXTRAS.get(spec.family, spec.family)
        raise DriverNotAvailableError(
            f"device {spec.name}: simulating {spec.protocol} needs {exc.name or exc}, which is "
            f"not installed here: pip install 'smartline[{extra}]'") from exc


def _make_endpoint(spec: DeviceSpec, clock: Clock | None, seed: int) -> Endpoint:
    family = spec.family
    if family == "modbus":
        return ModbusEndpoint(spec)
    if family == "s7":
        return S7Endpoint(spec)
    if family == "opcua":
        return OpcUaEndpoint(spec)
    if spec.protocol == "mtconnect+http":
        return MtConnectEndpoint(spec, clock=clock, seed=seed)
    if spec.protocol == "grbl":
        return GrblEndpoint(spec, clock=clock)
    return SerialEndpoint(spec)
