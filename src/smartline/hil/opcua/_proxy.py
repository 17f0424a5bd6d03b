"""A TCP relay in front of a simulated server that injects link faults: latency, garbage,
silence (the socket stays open, nothing comes back) and connections cut from the device
side."""

from __future__ import annotations

import asyncio
import contextlib
import logging

__all__ = ["FaultProxy"]

log = logging.getLogger(__name__)

#: an 8-byte OPC UA TCP header of an unknown message type, then its 8 bytes of body
GARBAGE = b"XYZF" + (16).to_bytes(4, "little") + b"\xde\xad\xbe\xef" * 2


class FaultProxy:
    """Relays ``127.0.0.1:port`` to the target port; server→client data can be delayed
    (``latency_s``), replaced by bytes that are not OPC UA (``garbage``) or swallowed
    (:meth:`set_silent`)."""

    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        self.target_port = target_port
        self.host = host
        self.port = 0
        self.latency_s = 0.0
        self.garbage = False
        self.connections = 0
        self.silent = False
        self._silenced: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, port: int = 0) -> int:
        self._server = await asyncio.start_server(self._handle, self.host, port or self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        self.kick()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if server is not None:
            with contextlib.suppress(Exception):
                await server.wait_closed()

    def set_silent(self, on: bool) -> None:
        """On: nothing the server sends reaches the clients (their sockets stay open).
        Off: the connections that went silent are cut (their byte streams lost data);
        connections made from now on work."""
        self.silent = on
        if not on:
            for client, upstream in list(self._pairs):
                if client in self._silenced:
                    for w in (client, upstream):
                        with contextlib.suppress(Exception):
                            w.transport.abort()
            self._silenced.clear()

    def kick(self) -> None:
        """Cut every relayed connection (the device hangs up); new ones are accepted."""
        for client, upstream in list(self._pairs):
            for w in (client, upstream):
                transport = w.transport
                with contextlib.suppress(Exception):
                    transport.abort()
        self._pairs.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self.connections += 1
        pair = (writer, up_writer)
        self._pairs.add(pair)
        tasks = [asyncio.ensure_future(self._pump(reader, up_writer, downstream=False)),
                 asyncio.ensure_future(self._pump(up_reader, writer, downstream=True))]
        self._tasks.update(tasks)
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
                self._tasks.discard(t)
            self._pairs.discard(pair)
            self._silenced.discard(writer)
            for w in pair:
                with contextlib.suppress(Exception):
                    w.transport.abort()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                    downstream: bool) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                if downstream:
                    if self.silent:
                        self._silenced.add(writer)
                        continue
                    if self.latency_s > 0:
                        await asyncio.sleep(self.latency_s)
                    if self.garbage:
                        data = GARBAGE
                writer.write(data)
                await writer.drain()
