"""Simulated Modbus endpoints on 127.0.0.1: TCP, RTU over TCP, and RTU on a socat pty pair.

One :class:`ModbusServerSim` serves one or more :class:`ModbusDeviceSim` (unit ids) — a
TCP device, a TCP gateway with several units behind it, or an RS-485 line. It is built on
pymodbus's server side only; its ``trace_pdu``/``trace_packet`` hooks apply the devices'
faults to the bytes on the wire, and keep unknown unit ids silent on serial lines (a
gateway answers them with exception 11, as real ones do). FC 43 / MEI 14 (Read Device
Identification) is answered per device from :attr:`ModbusDeviceSim.identification`, not
from pymodbus's process-wide control block (which would merge every device's identity).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import socket
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import ModbusIOException
from pymodbus.pdu import ExceptionResponse, ModbusPDU
from pymodbus.pdu.mei_message import ReadDeviceInformationResponse
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.server.requesthandler import ServerRequestHandler
from pymodbus.simulator import DataType as SimType
from pymodbus.simulator import SimData, SimDevice
from pymodbus.transaction import TransactionManager

from ._device import ModbusDeviceSim, ModbusFaults

__all__ = ["ModbusServerSim", "SocatPtyPair", "free_port"]

log = logging.getLogger(__name__)

Transport = Literal["tcp", "rtuovertcp", "rtu"]
_GATEWAY_NO_RESPONSE = 11
_MEI = 0x2B  # encapsulated interface transport (FC 43)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on ``host``."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class _LocalHandler(ServerRequestHandler):
    """pymodbus's request handler, answering on the loop it runs on.

    pymodbus (3.16) queues every request with ``call_soon`` and then hands it to
    ``asyncio.run_coroutine_threadsafe`` (the server may be driven from another thread): a
    write to the loop's self-pipe and two loop turns more per request. Our servers live on
    the loop that receives the frames, so the request's coroutine becomes a task at once;
    the answer on the wire is the same, it only leaves sooner.
    """

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)  # type: ignore[no-untyped-call]
        self._requests: set[asyncio.Task[None]] = set()  # referenced until done

    def callback_data(self, data: bytes, addr: tuple[str, int] | None = None) -> int:
        """pymodbus's own, with the request started here rather than via call_soon."""
        try:
            used_len = int(TransactionManager.callback_data(self, data, addr))
        except ModbusIOException as exc:
            function_code = 0x00 if exc.fcode is None else exc.fcode
            response = ExceptionResponse(function_code, exception_code=ExcCodes.ILLEGAL_FUNCTION,
                                         device_id=exc.dev_id, transaction=exc.transaction_id)
            self.server_send(response, addr)  # type: ignore[no-untyped-call]
            return len(data)
        if self.last_pdu:
            self.handle_later()
        return used_len

    def handle_later(self) -> None:
        task = self.loop.create_task(self.handle_request())  # type: ignore[no-untyped-call]
        self._requests.add(task)
        task.add_done_callback(self._requests.discard)


class _TcpServer(ModbusTcpServer):
    """Modbus/TCP (or RTU over TCP) with :class:`_LocalHandler`."""

    def callback_new_connection(self) -> ServerRequestHandler:
        return _LocalHandler(self, self.trace_packet, self.trace_pdu, self.trace_connect)


class _SerialServer(ModbusSerialServer):
    """Modbus RTU on a serial port with :class:`_LocalHandler`."""

    def callback_new_connection(self) -> ServerRequestHandler:
        return _LocalHandler(self, self.trace_packet, self.trace_pdu, self.trace_connect)


class SocatPtyPair:
    """Two linked pseudo-terminals (``socat pty,raw,echo=0 pty,raw,echo=0``).

    What one side writes the other reads: the simulator opens :attr:`a`, the driver
    :attr:`b`. Ptys ignore baud rate and parity, so they test framing, not timing.
    """

    def __init__(self) -> None:
        self._dir: Path | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self.a = ""
        self.b = ""

    async def start(self, timeout_s: float = 5.0) -> None:
        exe = shutil.which("socat")
        if exe is None:
            raise RuntimeError("socat is not installed: it links the two ptys of a simulated "
                               "serial line (apt-get install socat)")
        self._dir = Path(tempfile.mkdtemp(prefix="smartline-pty-"))
        self.a, self.b = str(self._dir / "ttyA"), str(self._dir / "ttyB")
        self._proc = await asyncio.create_subprocess_exec(
            exe, f"pty,raw,echo=0,link={self.a}", f"pty,raw,echo=0,link={self.b}",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not (Path(self.a).exists() and Path(self.b).exists()):
            if self._proc.returncode is not None or loop.time() > deadline:
                await self.stop()
                raise RuntimeError("socat did not create the pty pair")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 2.0)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


class ModbusServerSim:
    """A simulated Modbus endpoint serving one or more devices.

    ``transport`` is ``tcp`` (Modbus/TCP), ``rtuovertcp`` (RTU frames over TCP, like a
    serial gateway) or ``rtu`` (a serial line: a socat pty pair unless ``serial_port`` is
    given). Always binds 127.0.0.1 — port 0 picks a free one. Use as ``async with``.
    """

    def __init__(self, devices: ModbusDeviceSim | Sequence[ModbusDeviceSim], *,
                 transport: Transport = "tcp", host: str = "127.0.0.1", port: int = 0,
                 serial_port: str | None = None, baudrate: int = 19200, parity: str = "N",
                 stopbits: int = 1, bytesize: int = 8, record: bool = False) -> None:
        devs = [devices] if isinstance(devices, ModbusDeviceSim) else list(devices)
        self.devices: dict[int, ModbusDeviceSim] = {}
        for d in devs:
            if d.unit in self.devices:
                raise ValueError(f"two simulated devices with unit id {d.unit}")
            self.devices[d.unit] = d
        if transport not in ("tcp", "rtuovertcp", "rtu"):
            raise ValueError(f"transport must be tcp, rtuovertcp or rtu, found {transport!r}")
        self.transport = transport
        self.host = host
        self.port = port
        self.serial_port = serial_port
        self.client_port = ""
        self.serial: dict[str, int | str] = {"baudrate": baudrate, "parity": parity,
                                             "stopbits": stopbits, "bytesize": bytesize}
        self._server: ModbusTcpServer | ModbusSerialServer | None = None
        self._pty: SocatPtyPair | None = None
        self._mangle: ModbusFaults | None = None
        self._pending: dict[tuple[int, int], ModbusFaults | None] = {}
        self._identify: dict[tuple[int, int], tuple[int, int]] = {}  # FC 43 requests in flight
        #: with ``record``: (monotonic time, "rx" request / "tx" answer, unit) per frame
        self.events: list[tuple[float, str, int]] | None = [] if record else None

    # -- life cycle -----------------------------------------------------------------------------
    async def __aenter__(self) -> ModbusServerSim:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    def _context(self) -> list[SimDevice]:
        sims = [d.simdevice() for d in self.devices.values()]
        if 0 not in self.devices:  # catch-all, so unknown units do not crash pymodbus
            sims.append(SimDevice(id=0, simdata=[SimData(0, count=1, values=0,
                                                         datatype=SimType.REGISTERS)]))
        return sims

    async def start(self) -> None:
        """Start serving (again, on the same port/pty after :meth:`stop`)."""
        if self._server is not None:
            return
        if self.transport == "rtu":
            if self.serial_port is None:
                if self._pty is None:
                    self._pty = SocatPtyPair()
                    await self._pty.start()
                port, self.client_port = self._pty.a, self._pty.b
            else:
                port = self.serial_port
            serial = _SerialServer(
                self._context(), framer=FramerType.RTU, port=port,
                baudrate=int(self.serial["baudrate"]), parity=str(self.serial["parity"]),
                stopbits=int(self.serial["stopbits"]), bytesize=int(self.serial["bytesize"]),
                reconnect_delay=0, trace_packet=self._trace_packet, trace_pdu=self._trace_pdu)
            await serial.serve_forever(background=True)
            self._server = serial
            return
        if not self.port:
            self.port = free_port(self.host)
        framer = FramerType.RTU if self.transport == "rtuovertcp" else FramerType.SOCKET
        tcp = _TcpServer(self._context(), framer=framer, address=(self.host, self.port),
                              trace_packet=self._trace_packet, trace_pdu=self._trace_pdu)
        await tcp.serve_forever(background=True)
        self._server = tcp

    async def stop(self) -> None:
        """Stop serving: connections drop and new ones are refused (the port stays ours)."""
        server, self._server = self._server, None
        if server is not None:
            with contextlib.suppress(Exception):
                await server.shutdown()  # type: ignore[no-untyped-call]
        if self._pty is not None and self.transport == "rtu":
            pty, self._pty = self._pty, None
            await pty.stop()

    async def pause(self) -> None:
        """Stop listening but keep a serial line's ptys, so :meth:`start` resumes on them."""
        server, self._server = self._server, None
        if server is not None:
            with contextlib.suppress(Exception):
                await server.shutdown()  # type: ignore[no-untyped-call]

    def disconnect_clients(self) -> int:
        """Drop every client connection now (TCP); returns how many were dropped."""
        server = self._server
        if server is None or self.transport == "rtu":
            return 0
        handlers = list(server.active_connections.values())
        for h in handlers:
            transport = h.transport
            if transport is not None:
                transport.abort()  # type: ignore[attr-defined]
        return len(handlers)

    # -- addresses ------------------------------------------------------------------------------
    def url(self, unit: int | None = None) -> str:
        """The connection URL a line file uses for ``unit`` (default: the first device)."""
        if unit is None:
            unit = next(iter(self.devices))
        if self.transport == "rtu":
            port = self.client_port or self.serial_port or ""
            s = self.serial
            return (f"modbus+rtu://{port}?baudrate={s['baudrate']}&parity={s['parity']}"
                    f"&stopbits={s['stopbits']}&unit={unit}")
        scheme = "modbus+rtuovertcp" if self.transport == "rtuovertcp" else "modbus+tcp"
        return f"{scheme}://{self.host}:{self.port}?unit={unit}"

    def device(self, unit: int) -> ModbusDeviceSim:
        return self.devices[unit]

    # -- pymodbus hooks -------------------------------------------------------------------------
    def _trace_pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        key = (pdu.dev_id, pdu.transaction_id)
        if self.events is not None:
            self.events.append((time.monotonic(), "tx" if sending else "rx", pdu.dev_id))
        if not sending:
            dev = self.devices.get(pdu.dev_id)
            bits = int(getattr(pdu, "count", 0)) if pdu.function_code in (1, 2) else None
            self._pending[key] = dev.begin_request(bits) if dev is not None else None
            if pdu.function_code == _MEI and getattr(pdu, "sub_function_code", 0) == 0x0E:
                self._identify[key] = (int(getattr(pdu, "read_code", 1)),
                                       int(getattr(pdu, "object_id", 0)))
            return pdu
        fault = self._pending.pop(key, None)
        asked = self._identify.pop(key, None)
        if pdu.dev_id not in self.devices:
            if self.transport == "rtu":
                self._mangle = ModbusFaults(no_answer=True)  # nobody on the line answers
                return pdu
            self._mangle = None
            return ExceptionResponse(pdu.function_code & 0x7F, _GATEWAY_NO_RESPONSE,
                                     device_id=pdu.dev_id, transaction=pdu.transaction_id)
        self._mangle = fault if fault is not None and fault.mangles else None
        if asked is not None:
            return self._identification(pdu, asked, fault)
        return pdu

    def _identification(self, pdu: ModbusPDU, asked: tuple[int, int],
                        fault: ModbusFaults | None) -> ModbusPDU:
        """The device's own answer to FC 43 / MEI 14 (faults' exception codes apply)."""
        code: int | dict[int, bytes]
        if fault is not None and fault.exception is not None:
            code = fault.exception
        else:
            code = self.devices[pdu.dev_id].identify(*asked)
        if isinstance(code, int):
            return ExceptionResponse(_MEI, code, device_id=pdu.dev_id,
                                     transaction=pdu.transaction_id)
        return ReadDeviceInformationResponse(read_code=asked[0], information=dict(code),
                                             dev_id=pdu.dev_id,
                                             transaction_id=pdu.transaction_id)

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        if not sending:
            return data
        fault, self._mangle = self._mangle, None
        if fault is None:
            return data
        if fault.disconnect and self.transport != "rtu":
            asyncio.get_running_loop().call_soon(self.disconnect_clients)
            return b""
        if fault.no_answer or fault.disconnect:
            return b""
        if fault.corrupt_crc and self.transport != "tcp":
            return data[:-1] + bytes([data[-1] ^ 0x5A])
        if fault.garbage or fault.corrupt_crc:
            return bytes((0xA5 + 37 * i) & 0xFF or 0x11 for i in range(max(len(data), 9)))
        if fault.truncate is not None:
            return data[:fault.truncate]
        return data
