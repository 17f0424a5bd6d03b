"""A simulated S7 CPU on 127.0.0.1, on python-snap7's server side.

:class:`S7ServerSim` serves one :class:`S7PlcSim` with ``snap7.server.Server`` (ISO-on-TCP,
COTP, block listing and block info come from snap7). It answers these itself, as a CPU
does and snap7 3.3's server does not: Setup Communication with the CPU's PDU limit
(``pdu_max``, e.g. 240 for an S7-1200), Read Var and Write Var with many items, bit
writes, item return codes (0x05 address out of range, 0x0A object does not exist, 0x03
access denied) and a PDU-size error for a job or answer larger than the PDU; the SZL
lists 0x0011, 0x001C and 0x0424 (operating mode) with the layouts real CPUs use; it checks
the remote TSAP (rack/slot) of each connection. Faults: server down and back (:meth:`stop`
and :meth:`start` on the same port), latency, silence, garbage, dropped connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import threading
import time
from typing import Any

from snap7.server import Server, ServerISOConnection
from snap7.type import SrvArea

from ._plc import S7Identity, S7PlcSim

__all__ = ["S7ServerSim", "free_port"]

log = logging.getLogger(__name__)

_AREA_BY_CODE = {0x81: "I", 0x82: "Q", 0x83: "M", 0x84: "DB"}
_SRV_AREA = {"I": SrvArea.PE, "Q": SrvArea.PA, "M": SrvArea.MK, "DB": SrvArea.DB}
MAX_ITEMS = 20
PDU_SIZE_ERROR = 0x8500


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on ``host``."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _ack(ref: int, rosctr: int, params: bytes, data: bytes, error: int = 0) -> bytes:
    return struct.pack(">BBHHHHBB", 0x32, rosctr, 0, ref, len(params), len(data),
                       error >> 8, error & 0xFF) + params + data


def _szl_0011(identity: S7Identity) -> bytes:
    mlfb = identity.order_number.encode("latin-1")[:20].ljust(20, b" ")
    v1, v2, v3 = identity.firmware
    records = [struct.pack(">H", 1) + mlfb + b"\x00\x00" + bytes([0x00, v1, v2, v3]),
               struct.pack(">H", 6) + mlfb + b"\x00\x00" + bytes([0x00, 1, 0, 0]),
               struct.pack(">H", 7) + b" " * 20 + b"\x00\x00" + b"V" + bytes([v1, v2, v3])]
    return struct.pack(">HH", 28, len(records)) + b"".join(records)


def _szl_001c(identity: S7Identity) -> bytes:
    texts = [(1, identity.as_name), (2, identity.module_name), (3, ""),
             (4, identity.copyright), (5, identity.serial_number), (7, identity.module_type)]
    records = [struct.pack(">H", i) + t.encode("latin-1")[:32].ljust(32, b"\x00")
               for i, t in texts]
    return struct.pack(">HH", 34, len(records)) + b"".join(records)


def _szl_0424(mode: int) -> bytes:
    record = bytes([0x51, 0x44, 0xFF, mode]) + bytes(16)
    return struct.pack(">HH", 20, 1) + record


class _Server(Server):  # type: ignore[misc]
    """snap7's server with the jobs a CPU answers and the simulator's faults."""

    def __init__(self, sim: S7ServerSim) -> None:
        super().__init__(log=False)
        self.sim = sim
        self._sockets: set[socket.socket] = set()
        self._sockets_lock = threading.Lock()

    # -- connections ------------------------------------------------------------------------
    def _handle_client(self, client_socket: socket.socket, address: tuple[str, int]) -> None:
        with self._sockets_lock:
            self._sockets.add(client_socket)
        try:
            conn = ServerISOConnection(client_socket)
            if not conn.accept_connection():
                return
            local = int.from_bytes(conn.calling_tsap or b"", "big")
            remote = int.from_bytes(conn.called_tsap or b"", "big")
            self.sim.connections.append((local, remote))
            if self.sim.remote_tsap is not None and remote != self.sim.remote_tsap:
                log.info("refusing TSAP %#06x (expected %#06x)", remote, self.sim.remote_tsap)
                return
            state = {"pdu": 240}
            while self.running:
                try:
                    request = conn.receive_data()
                except TimeoutError:
                    continue
                except Exception:
                    break
                faults = self.sim.plc.faults
                self.sim.requests += 1
                if faults.disconnect:
                    break
                answer = self._answer(request, address, state)
                if faults.latency_s:
                    end = time.monotonic() + faults.latency_s
                    while self.running and time.monotonic() < end:
                        time.sleep(0.005)
                if not self.running:
                    break
                if faults.no_answer or answer is None:
                    continue
                if faults.garbage:
                    answer = b"\x00\x13garbage, not S7\x00"
                conn.send_data(answer)
        except Exception as exc:
            log.debug("client %s: %r", address, exc)
        finally:
            with self._sockets_lock:
                self._sockets.discard(client_socket)
            with contextlib.suppress(OSError):
                client_socket.close()
            with self.client_lock:
                me = threading.current_thread()
                if me in self.clients:
                    self.clients.remove(me)
                self.client_count = max(0, self.client_count - 1)

    def drop_connections(self) -> None:
        with self._sockets_lock:
            socks = list(self._sockets)
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def stop(self) -> int:
        self.running = False
        self.drop_connections()
        return int(super().stop())

    # -- jobs -----------------------------------------------------------------------------
    def _answer(self, pdu: bytes, address: tuple[str, int], state: dict[str, int]
                ) -> bytes | None:
        if len(pdu) >= 11 and pdu[0] == 0x32 and pdu[1] == 0x01:
            ref = struct.unpack(">H", pdu[4:6])[0]
            function = pdu[10]
            if function == 0xF0:
                asked = struct.unpack(">H", pdu[16:18])[0] if len(pdu) >= 18 else 480
                state["pdu"] = max(240, min(asked, self.sim.pdu_max))
                return _ack(ref, 0x03, struct.pack(">BBHHH", 0xF0, 0, 1, 1, state["pdu"]), b"")
            if function in (0x04, 0x05):
                error = self.sim.plc.faults.header_error
                if error is not None:
                    return _ack(ref, 0x02, b"", b"", error)
                if len(pdu) > state["pdu"]:
                    return _ack(ref, 0x02, b"", b"", PDU_SIZE_ERROR)
                if function == 0x04:
                    return self._read(pdu, ref, state["pdu"])
                return self._write(pdu, ref)
        result: bytes | None = self._process_request(pdu, address)
        return result

    def _item(self, spec: bytes) -> tuple[int, str, int, int, int | None, int]:
        """(item code so far, area, db, byte, bit, bytes) of a 12-byte S7ANY item."""
        ts, count, db, code = struct.unpack(">BHHB", spec[3:9])
        addr = int.from_bytes(spec[9:12], "big")
        area = _AREA_BY_CODE.get(code)
        if spec[:3] != b"\x12\x0a\x10" or area is None or ts not in (0x01, 0x02):
            return 0x06, "", 0, 0, None, 0
        byte, bit = divmod(addr, 8)
        bit_or_none = bit if ts == 0x01 else None
        nbytes = 1 if ts == 0x01 else count
        key = (area, db if area == "DB" else 0)
        buf = self.sim.plc.areas.get(key)
        if buf is None:
            return 0x0A, area, db, byte, bit_or_none, nbytes
        if area == "DB" and db in self.sim.plc.faults.protected:
            return 0x03, area, db, byte, bit_or_none, nbytes
        if byte + nbytes > len(buf) or (ts == 0x02 and bit):
            return 0x05, area, db, byte, bit_or_none, nbytes
        return 0xFF, area, db, byte, bit_or_none, nbytes

    def _read(self, pdu: bytes, ref: int, pdu_size: int) -> bytes:
        count = pdu[11]
        if not 1 <= count <= MAX_ITEMS or len(pdu) < 12 + 12 * count:
            return _ack(ref, 0x02, b"", b"", 0x8104)
        data = bytearray()
        areas = self.sim.plc.areas
        for k in range(count):
            code, area, db, byte, bit, n = self._item(pdu[12 + 12 * k:24 + 12 * k])
            if code != 0xFF:
                data += struct.pack(">BBH", code, 0, 0)
                continue
            buf = areas[(area, db if area == "DB" else 0)]
            if bit is not None:
                data += struct.pack(">BBH", 0xFF, 0x03, 1) + bytes([(buf[byte] >> bit) & 1])
                n = 1
            else:
                data += struct.pack(">BBH", 0xFF, 0x04, n * 8) + buf[byte:byte + n]
            if n & 1 and k < count - 1:
                data.append(0)
        answer = _ack(ref, 0x03, bytes([0x04, count]), bytes(data))
        if len(answer) > pdu_size:
            return _ack(ref, 0x02, b"", b"", PDU_SIZE_ERROR)
        return answer

    def _write(self, pdu: bytes, ref: int) -> bytes:
        count = pdu[11]
        plen = struct.unpack(">H", pdu[6:8])[0]
        if not 1 <= count <= MAX_ITEMS or plen != 2 + 12 * count:
            return _ack(ref, 0x02, b"", b"", 0x8104)
        pos = 10 + plen
        codes = bytearray()
        changes: list[tuple[str, int, int, int | None, bytes]] = []
        for k in range(count):
            code, area, db, byte, bit, n = self._item(pdu[12 + 12 * k:24 + 12 * k])
            if pos + 4 > len(pdu):
                return _ack(ref, 0x02, b"", b"", 0x8104)
            _, ts, length = struct.unpack(">BBH", pdu[pos:pos + 4])
            size = length if ts in (0x07, 0x09) else (length + 7) // 8
            value = pdu[pos + 4:pos + 4 + size]
            pos += 4 + size + (size & 1 if k < count - 1 else 0)
            if code == 0xFF and size != n:
                code = 0x07
            codes.append(code)
            if code == 0xFF:
                changes.append((area, db if area == "DB" else 0, byte, bit, bytes(value)))
        for area, db, byte, bit, value in changes:
            buf = self.sim.plc.areas[(area, db)]
            if bit is None:
                buf[byte:byte + len(value)] = value
            elif value[:1] != b"\x00":
                buf[byte] |= 1 << bit
            else:
                buf[byte] &= ~(1 << bit) & 0xFF
            self.sim.plc.writes += 1
        return _ack(ref, 0x03, bytes([0x05, count]), bytes(codes))

    def _get_szl_data(self, szl_id: int, szl_index: int) -> bytes | None:
        identity = self.sim.plc.identity
        if szl_id == 0x0011:
            return _szl_0011(identity)
        if szl_id == 0x001C:
            return _szl_001c(identity)
        if szl_id == 0x0424:
            return _szl_0424(self.sim.plc.mode)
        result: bytes | None = super()._get_szl_data(szl_id, szl_index)
        return result


class S7ServerSim:
    """A simulated S7 CPU serving ``plc`` on ``host:port`` (port 0: a free one).

    ``rack``/``slot`` (or ``remote_tsap``) is the TSAP the CPU answers to; connections to
    another are refused (``remote_tsap=None`` with ``any_tsap=True`` accepts all).
    ``pdu_max`` is the largest PDU the CPU negotiates (240 for S7-1200/300, 480 S7-400,
    960 S7-1500). Use as ``async with``; :meth:`stop`/:meth:`start` take it down and
    back on the same port.
    """

    def __init__(self, plc: S7PlcSim, *, host: str = "127.0.0.1", port: int = 0,
                 rack: int = 0, slot: int = 1, remote_tsap: int | None = None,
                 any_tsap: bool = False, pdu_max: int = 480) -> None:
        self.plc = plc
        self.host = host
        self.port = port
        self.pdu_max = pdu_max
        self.remote_tsap: int | None = (None if any_tsap else remote_tsap if remote_tsap
                                        is not None else 0x0100 | (rack << 5) | slot)
        self.rack, self.slot = rack, slot
        self.connections: list[tuple[int, int]] = []  # (local, remote) TSAP per connection
        self.requests = 0
        self._server: _Server | None = None

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def url(self) -> str:
        return f"s7://{self.host}:{self.port}?rack={self.rack}&slot={self.slot}"

    def _start_sync(self) -> None:
        server = _Server(self)
        for (area, index), buf in self.plc.areas.items():
            server.register_area(_SRV_AREA[area], index, buf)
        if not self.port:
            self.port = free_port(self.host)
        deadline = time.monotonic() + 5.0
        while True:
            try:
                server.start_to(self.host, self.port)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self._server = server

    async def start(self) -> None:
        """Start serving (again, on the same port, after :meth:`stop`)."""
        if self._server is None:
            await asyncio.to_thread(self._start_sync)

    async def stop(self) -> None:
        """Stop serving and drop every connection (the CPU is gone)."""
        server, self._server = self._server, None
        if server is not None:
            await asyncio.to_thread(server.stop)

    def drop_connections(self) -> None:
        """Cut every open connection (the server keeps listening)."""
        if self._server is not None:
            self._server.drop_connections()

    async def __aenter__(self) -> S7ServerSim:
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()
