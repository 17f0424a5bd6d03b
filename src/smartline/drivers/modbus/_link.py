"""Physical links: a TCP connection or a serial port, shared by the devices on it.

Several devices behind one TCP gateway (same host:port) or on one RS-485 line (same serial
port) share one pymodbus client: a :class:`ModbusLink`, a :class:`smartline.core.SharedLink`
kept in the line's :class:`smartline.core.LinkPool` under its :class:`LinkKey`. Devices
take turns on it under ``link.turn`` (one device's whole poll at a time, held by
:class:`smartline.core.DriverBase`), and on serial lines the link enforces the inter-frame
silence between frames. The pool is a plain object owned by whoever creates the drivers
(one per line / event loop) and passed to each driver as ``links=``; there is no
module-level state (ADR 0005).

The link watches the bytes pymodbus receives (its ``trace_packet`` hook) so that it can
tell a bad CRC, garbage or a truncated frame from silence: pymodbus 3.16 drops such
frames and would only ever report a timeout.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusIOException
from pymodbus.framer import FramerRTU
from pymodbus.pdu import ModbusPDU

from ...core import ConnectError, LinkBrokenError, ProtocolError, SharedLink

__all__ = ["LinkKey", "ModbusLink", "SerialParams", "silence_s"]

log = logging.getLogger(__name__)

#: pymodbus's own response timeout: effectively never; smartline's deadlines cancel first.
_NO_TIMEOUT_S = 3600.0

AnyClient = AsyncModbusTcpClient | AsyncModbusSerialClient


@dataclass(frozen=True, slots=True)
class SerialParams:
    """Serial line settings (every device on one port must agree)."""

    baudrate: int = 19200
    parity: str = "N"
    stopbits: int = 1
    bytesize: int = 8

    @property
    def bits_per_char(self) -> int:
        return 1 + self.bytesize + (0 if self.parity == "N" else 1) + self.stopbits


def silence_s(serial: SerialParams) -> float:
    """Modbus-RTU inter-frame silence: 3.5 character times, 1.75 ms above 19200 baud."""
    if serial.baudrate > 19200:
        return 0.00175
    return 3.5 * serial.bits_per_char / serial.baudrate


@dataclass(frozen=True, slots=True)
class LinkKey:
    """What identifies one physical link in a :class:`~smartline.core.LinkPool`: its kind
    and where it goes (a key of its own type, so no other family's key can equal it)."""

    kind: str  # "tcp", "rtuovertcp" or "rtu"
    target: str  # "host:port" or the serial port / pyserial URL
    tag: str = ""  # set to keep a device's connection to itself (share_connection: false)

    def __str__(self) -> str:
        return f"{self.kind}:{self.target}" + (f"#{self.tag}" if self.tag else "")


class ModbusLink(SharedLink):
    """One pymodbus client shared by the devices on one physical link.

    ``users`` are the names of the devices that have it open; the client closes when the
    last one leaves (or one reports it broken) and the next device to use it opens it again.
    """

    key: LinkKey

    def __init__(self, key: LinkKey, *, host: str = "", port: int = 0,
                 serial: SerialParams | None = None, inter_frame_s: float = 0.0) -> None:
        super().__init__(key)
        self.host = host
        self.port = port
        self.serial = serial
        self.inter_frame_s = inter_frame_s
        self.client: AnyClient | None = None
        self.opens = 0
        self.frames_bad = 0
        self._open_lock = asyncio.Lock()
        self._quiet_at = 0.0  # loop time from which the next frame may start
        self._rtu = key.kind in ("rtu", "rtuovertcp")
        # the request in flight (one at a time per link: pymodbus serialises anyway)
        self._pending = False
        self._unit = 0
        self._fc = 0
        self._rx = 0
        self._problem: str | None = None
        self._frame = b""  # the bytes the last answer was decoded from
        #: what had arrived when a request was cancelled (bytes but no valid frame), if anything
        self.cut_short: str | None = None

    # -- settings ------------------------------------------------------------------------------
    def join(self, serial: SerialParams | None, inter_frame_s: float) -> None:
        """Check a further device's settings against the link's; raises ``ValueError`` if
        they differ (every device on one serial line needs the same settings). The silence
        between frames becomes the longest any device asks for."""
        if self.key.kind == "rtu" and serial is not None and self.serial != serial:
            raise ValueError(
                f"serial port {self.key.target} is already used with {self.serial}; every "
                f"device on one RS-485 line needs the same settings, found {serial}")
        self.inter_frame_s = max(self.inter_frame_s, inter_frame_s)

    def stats(self) -> dict[str, object]:
        return {"users": len(self.users), "connected": self.connected, "opens": self.opens,
                "bad_frames": self.frames_bad, "inter_frame_ms": self.inter_frame_s * 1e3}

    # -- connection ----------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self.client is not None and self.client.connected

    def _make_client(self) -> AnyClient:
        if self.key.kind == "rtu":
            s = self.serial or SerialParams()
            return AsyncModbusSerialClient(
                self.key.target, framer=FramerType.RTU, baudrate=s.baudrate,
                bytesize=s.bytesize, parity=s.parity, stopbits=s.stopbits,
                timeout=_NO_TIMEOUT_S, retries=0, reconnect_delay=0,
                trace_packet=self._trace_packet, trace_connect=self._trace_connect)
        framer = FramerType.RTU if self.key.kind == "rtuovertcp" else FramerType.SOCKET
        return AsyncModbusTcpClient(
            self.host, port=self.port, framer=framer, timeout=_NO_TIMEOUT_S, retries=0,
            reconnect_delay=0, trace_packet=self._trace_packet,
            trace_connect=self._trace_connect)

    async def open(self, user: str) -> None:
        """Join the link as device ``user`` and make sure it is connected."""
        async with self._open_lock:
            if not self.connected:
                self._close_client()
                client = self._make_client()
                self.client = client
                if not await client.connect():
                    self._close_client()
                    raise ConnectError(f"cannot connect to {self.key.target} "
                                       "(refused, unreachable or port busy)")
                self.opens += 1
                log.debug("link %s: open", self.key)
            self.users.add(user)

    async def release(self, user: str, *, broken: bool = False) -> None:
        """Device ``user`` leaves the link; it closes when nobody uses it any more or when
        it is broken."""
        async with self._open_lock:
            self.users.discard(user)
            if broken or not self.users:
                if self.client is not None:
                    log.debug("link %s: close (%s)", self.key,
                              "broken" if broken else "unused")
                self._close_client()

    def _close_client(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            try:
                client.close()
            except Exception as exc:  # a broken transport may fail to close; it is gone anyway
                log.debug("link %s: error while closing: %r", self.key, exc)

    async def aclose(self) -> None:
        """Close the client (drivers still holding the link open it again on their next use)."""
        async with self._open_lock:
            self.users.clear()
            self._close_client()

    # -- one request -------------------------------------------------------------------------
    async def call(self, unit: int, fc: int,
                   send: Callable[[Any], Awaitable[ModbusPDU]]) -> ModbusPDU:
        """Send one request with ``send(client)`` and return its response PDU.

        The caller bounds the time (a request cancelled by its timeout leaves what had
        arrived in :attr:`cut_short`). Raises :class:`ProtocolError` at once for a bad CRC
        or garbage, :class:`LinkBrokenError` when the link is down. Exception responses
        are returned (``pdu.isError()``): what they mean is the driver's business.
        """
        client = self.client
        if client is None or not client.connected:
            raise LinkBrokenError(f"link {self.key.target} is not connected")
        if self.inter_frame_s:
            wait = self._quiet_at - asyncio.get_running_loop().time()
            if wait > 0:
                await asyncio.sleep(wait)
        self._pending, self._unit, self._fc, self._rx, self._problem = True, unit, fc, 0, None
        try:
            pdu = await send(client)
        except asyncio.CancelledError:
            self.cut_short = self._diagnosis()
            if self.cut_short is not None:
                self.frames_bad += 1
            raise
        except ProtocolError:
            self.frames_bad += 1  # seen by the trace hook: bad CRC or garbage
            raise
        except ModbusIOException as exc:
            self.frames_bad += 1
            raise ProtocolError(f"invalid answer: {exc}") from exc
        except ConnectionException as exc:
            raise LinkBrokenError(f"link {self.key.target} lost: {exc}") from exc
        finally:
            self._pending = False
            if self.inter_frame_s:
                self._quiet_at = asyncio.get_running_loop().time() + self.inter_frame_s
        if pdu is None:
            raise ProtocolError("no answer decoded")
        return pdu

    def register_bytes(self, pdu: ModbusPDU, count: int) -> bytes | None:
        """The big-endian register bytes of the answer ``pdu`` came from, if they can be
        told apart with certainty (else None: use ``pdu.registers``).

        Saves converting pymodbus's list of ints back into an array on every read.
        """
        data = self._frame
        n = 2 * count
        if self._rtu:
            head = 3
            ok = (len(data) == n + 5 and data[0] == self._unit and data[1] == self._fc
                  and data[2] == n)
        else:
            head = 9
            ok = (len(data) == n + 9 and data[8] == n and data[7] == self._fc
                  and (data[0] << 8 | data[1]) == pdu.transaction_id)
        return data[head:head + n] if ok else None

    def _diagnosis(self) -> str | None:
        if self._problem is not None:
            return self._problem
        if self._rx and not self._whole_frame(self._frame):
            return (f"truncated or malformed answer: {self._rx} byte(s) received, "
                    "no complete frame")
        return None  # nothing, or a whole answer that lost the race with the timeout: late

    def _whole_frame(self, data: bytes) -> bool:
        """``data`` holds one complete frame by its own length rules (a timeout that fired
        in the same turn of the event loop as the answer arrived is a late answer, not a
        truncated one)."""
        if not self._rtu:
            return len(data) >= 6 and len(data) >= 6 + (data[4] << 8 | data[5])
        if len(data) < 3 or data[0] != self._unit:
            return False
        fc = data[1]
        if fc == self._fc | 0x80:
            size = 5
        elif fc in (1, 2, 3, 4):
            size = data[2] + 5
        else:
            size = 8
        return len(data) >= size

    # -- pymodbus hooks ------------------------------------------------------------------------
    def _fail(self, exc: BaseException) -> None:
        client = self.client
        if client is None or not self._pending:
            return
        fut = client.ctx.response_future
        if not fut.done():
            fut.set_exception(exc)
            fut.exception()  # the awaiting request raises it; mark it retrieved

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        if sending or not self._pending:
            return data
        self._rx = len(data)
        self._frame = data
        problem = self._check_rtu(data) if self._rtu else self._check_mbap(data)
        if problem is not None:
            self._problem = problem
            self._fail(ProtocolError(problem))
        return data

    def _trace_connect(self, connected: bool) -> None:
        if not connected and self._pending:
            self._fail(ConnectionResetError(f"connection to {self.key.target} lost"))

    def _check_mbap(self, data: bytes) -> str | None:
        """Garbage on Modbus/TCP: a header that no server sends."""
        if len(data) < 7:
            return None
        if data[2] or data[3]:
            return f"not a Modbus/TCP frame (protocol id {data[2] << 8 | data[3]}, expected 0)"
        length = data[4] << 8 | data[5]
        if not 2 <= length <= 254:
            return f"not a Modbus/TCP frame (length field {length})"
        return None

    def _check_rtu(self, data: bytes) -> str | None:
        """A complete RTU frame with a bad CRC, or bytes that cannot start our answer."""
        if len(data) < 2 or data[0] != self._unit:
            return None  # another unit's late answer, or noise: pymodbus hunts past it
        fc = data[1]
        if fc == self._fc | 0x80:
            size = 5
        elif fc != self._fc:
            return f"answer with function code {fc}, expected {self._fc} (garbage?)"
        elif fc in (1, 2, 3, 4):
            if len(data) < 3:
                return None
            size = data[2] + 5
        elif fc == 43:  # device identification: its length is in its objects, and
            return None  # pymodbus's framer checks that answer's CRC itself
        else:
            size = 8
        if len(data) < size:
            return None
        crc = data[size - 2] << 8 | data[size - 1]
        if not FramerRTU.check_CRC(data[:size - 2], crc):
            return f"CRC error in the answer from unit {self._unit}"
        return None
