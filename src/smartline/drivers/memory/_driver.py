"""``memory://NAME`` — a device whose memory is a :class:`MemoryBus`.

Addresses use the memory grammar (``NAME[:TYPE[COUNT]]``). Unwritten addresses read as
zero, as a PLC's memory does after a cold start. ``memory://NAME?persist=1`` keeps the
memory in ``$SMARTLINE_STATE_DIR/memory/NAME.json`` (default ``~/.local/state/smartline``)
so that ``smartline write`` and a later ``smartline read`` see the same values.
The bus can inject faults (latency, garbage, refusal) so the driver passes the same
conformance suite as the protocol drivers.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np

from ...core import (
    Clock,
    ConnectError,
    DeviceSpec,
    DriverBase,
    Point,
    ProtocolError,
    Quality,
    ReadPlan,
    ReadResult,
    Reason,
    WriteItem,
)
from ...tags import MemoryAddress

__all__ = ["MemoryBus", "MemoryDriver"]

Stored = float | str | list[float]


class MemoryBus:
    """The memory behind one or more memory drivers, with switchable faults."""

    def __init__(self, path: Path | None = None) -> None:
        self.values: dict[str, Stored] = {}
        self.path = path
        self.latency_s = 0.0
        self.garbage = False
        self.refuse = False
        self.requests = 0
        self._seen: tuple[int, int] = (-1, -1)  # (inode, mtime) of the file last read or saved
        self.refresh()

    def refresh(self) -> None:
        """Take in what another process (``smartline write``) saved since we last looked."""
        if self.path is None:
            return
        try:
            st = self.path.stat()
        except OSError:
            return
        # every save renames a new file into place: a new inode, even within one mtime tick
        seen = (st.st_ino, st.st_mtime_ns)
        if seen == self._seen:
            return
        try:
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        self._seen = seen
        if isinstance(loaded, dict):
            self.values.update(loaded)

    async def exchange(self) -> None:
        """One round trip on the (imaginary) wire: applies latency and faults."""
        self.requests += 1
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        if self.garbage:
            raise ProtocolError("memory bus returned garbage (injected fault)")
        self.refresh()

    def save(self) -> None:
        """Write the memory to its file atomically (write a temporary file, then rename)."""
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self.values), encoding="utf-8")
            tmp.replace(self.path)
            st = self.path.stat()
            self._seen = (st.st_ino, st.st_mtime_ns)


def _state_path(name: str) -> Path:
    base = os.environ.get("SMARTLINE_STATE_DIR")
    root = Path(base) if base else Path.home() / ".local" / "state" / "smartline"
    return root / "memory" / f"{name}.json"


class _MemoryPlan(ReadPlan):
    @property
    def request_count(self) -> int:
        return 1 if self.points else 0


class MemoryDriver(DriverBase):
    """Reads and writes a :class:`MemoryBus`; one request per plan."""

    family: ClassVar[str] = "memory"

    def __init__(self, spec: DeviceSpec, *, clock: Clock | None = None,
                 bus: MemoryBus | None = None) -> None:
        super().__init__(spec, clock=clock)
        if bus is None:
            persist = spec.url.param("persist", "0") not in ("0", "", "false", "no")
            bus = MemoryBus(_state_path(spec.url.host or "default") if persist else None)
        self.bus = bus

    async def _connect(self) -> None:
        if self.bus.refuse:
            raise ConnectError("memory bus refuses connections (injected fault)")

    async def _close(self) -> None:
        return None

    def _plan(self, points: Sequence[Point]) -> ReadPlan:
        return _MemoryPlan(points)

    async def _read(self, plan: ReadPlan) -> ReadResult:
        self.health.requests += 1
        await self.bus.exchange()
        n = len(plan.slots)
        raw = np.zeros(n)
        quality = np.full(n, Quality.GOOD, np.uint8)
        reason = np.full(n, Reason.NONE, np.uint8)
        texts: dict[int, str] = {}
        i = 0
        for p in plan.points:
            addr = p.address
            assert isinstance(addr, MemoryAddress)
            stored = self.bus.values.get(addr.name)
            k = addr.elements
            if addr.is_text:
                texts[p.slot] = stored if isinstance(stored, str) else ""
                raw[i] = 0.0
            elif isinstance(stored, list):
                vals = (stored + [0.0] * k)[:k]
                raw[i:i + k] = vals
            elif isinstance(stored, int | float):
                raw[i:i + k] = float(stored)
            elif stored is not None:
                quality[i:i + k] = Quality.BAD
                reason[i:i + k] = Reason.DECODE_ERROR
                raw[i:i + k] = math.nan
            i += k
        return ReadResult(slots=plan.slots, raw=raw, quality=quality, reason=reason,
                          timestamp_ns=self.clock.wall_ns(), texts=texts, requests=1)

    async def _write(self, items: Sequence[WriteItem]) -> None:
        self.health.requests += 1
        await self.bus.exchange()
        for it in items:
            addr = it.point.address
            assert isinstance(addr, MemoryAddress)
            v = it.value
            if isinstance(v, tuple):
                self.bus.values[addr.name] = [float(x) for x in v]
            elif isinstance(v, str):
                self.bus.values[addr.name] = v
            else:
                self.bus.values[addr.name] = float(v)
        if self.bus.path is not None:
            await asyncio.to_thread(self.bus.save)
