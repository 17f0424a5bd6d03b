"""Device I/O for a line: one driver per device, concurrent reads with per-device deadlines,
guarded and audited writes.

Used by the cycle engine every cycle and by ``smartline read/write`` once.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import logging
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from ..config import LineConfig
from ..core import (
    Clock,
    CommunicationError,
    DeviceError,
    Driver,
    DriverRegistry,
    MonotonicClock,
    Quality,
    ReadPlan,
    ReadResult,
    Reason,
    SmartlineError,
    WriteItem,
    WriteRefusedError,
    WriteValue,
    reason_for,
)
from ._image import ProcessImage

__all__ = ["AuditSink", "DeviceReadStats", "JsonlAudit", "LineIO", "ReadGroup"]

log = logging.getLogger(__name__)
audit_log = logging.getLogger("smartline.audit")


class SharedLinks(Protocol):
    """Connections several drivers of a line share; closed with the line."""

    async def aclose(self) -> None: ...


class AuditSink(Protocol):
    """Where every write attempt is recorded (accepted, refused or failed)."""

    def record(self, entry: Mapping[str, object]) -> None: ...


class JsonlAudit:
    """Appends one JSON object per line to a file, fsync'd: the audit must survive a crash."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def record(self, entry: Mapping[str, object]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(entry, default=str, sort_keys=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())


@dataclass(slots=True)
class DeviceReadStats:
    """Outcome of one device's share of a read."""

    device: str
    requests: int = 0
    ok: bool = True
    error: str = ""
    elapsed_ns: int = 0


@dataclass(frozen=True, slots=True)
class ReadGroup:
    """The read plans of one set of tags, one per device, built once and reused every cycle."""

    plans: Mapping[str, ReadPlan]
    slots: np.ndarray = field(repr=False)

    @property
    def request_count(self) -> int:
        return sum(p.request_count for p in self.plans.values())


class LineIO:
    """Owns a line's drivers; reads into and writes from the process image."""

    def __init__(self, config: LineConfig, image: ProcessImage, *,
                 registry: DriverRegistry | None = None, clock: Clock | None = None,
                 audit: AuditSink | None = None, user: str | None = None) -> None:
        self.config = config
        self.image = image
        self.clock: Clock = clock if clock is not None else MonotonicClock()
        self.registry = registry if registry is not None else DriverRegistry()
        self.audit = audit
        self.user = user or _current_user()
        self.drivers: dict[str, Driver] = {}
        # links shared between devices (one RS-485 port, one TCP gateway), one pool per
        # driver family per line: a driver class that shares links names a `pool_factory`
        self._pools: dict[object, SharedLinks] = {}

    def driver(self, device: str) -> Driver:
        """The driver of ``device``, created on first use (imports its protocol library then)."""
        drv = self.drivers.get(device)
        if drv is None:
            cfg = self.config.devices[device]
            cls = self.registry.load(cfg.scheme.scheme)
            factory = getattr(cls, "pool_factory", None)
            if factory is None:
                drv = cls(cfg.spec(), clock=self.clock)
            else:
                pool = self._pools.get(factory)
                if pool is None:
                    pool = self._pools[factory] = factory()
                drv = cls(cfg.spec(), clock=self.clock, pool=pool)
            self.drivers[device] = drv
        return drv

    def group(self, tags: Iterable[str]) -> ReadGroup:
        """Plan reads of ``tags``: one plan per device."""
        by_device: dict[str, list[str]] = {}
        for name in tags:
            by_device.setdefault(self.image.tags[name].device, []).append(name)
        plans = {dev: self.driver(dev).plan(self.image.points(names))
                 for dev, names in by_device.items()}
        slots = (np.concatenate([p.slots for p in plans.values()]) if plans
                 else np.zeros(0, np.intp))
        return ReadGroup(plans=plans, slots=slots)

    async def connect(self) -> dict[str, str]:
        """Connect every device concurrently; returns device → error for those that failed."""
        devices = list(self.config.devices)
        results = await asyncio.gather(*(self.driver(d).connect() for d in devices),
                                       return_exceptions=True)
        failed: dict[str, str] = {}
        for d, r in zip(devices, results, strict=True):
            if isinstance(r, SmartlineError):
                failed[d] = str(r)
                log.warning("%s", r)
            elif isinstance(r, BaseException):
                raise r
        return failed

    async def read(self, group: ReadGroup, deadline_s: float | None = None
                   ) -> list[DeviceReadStats]:
        """Read every device of ``group`` concurrently into the image.

        A device that fails marks its tags BAD with the reason; a device still busy at
        ``deadline_s`` has its tags marked STALE (last value kept) and its read cancelled,
        so one slow device never holds up the others beyond the deadline.
        """
        names = list(group.plans)
        tasks = [asyncio.ensure_future(self._read_one(d, group.plans[d])) for d in names]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=deadline_s)
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        stats: list[DeviceReadStats] = []
        for d, t in zip(names, tasks, strict=True):
            if t.cancelled():
                self.image.mark(group.plans[d].slots, Quality.STALE, Reason.DEADLINE)
                stats.append(DeviceReadStats(d, ok=False, error="deadline"))
            else:
                stats.append(t.result())
        return stats

    async def _read_one(self, device: str, plan: ReadPlan) -> DeviceReadStats:
        drv = self.drivers[device]
        st = DeviceReadStats(device)
        t0 = time.perf_counter_ns()
        try:
            result: ReadResult = await drv.read(plan)
        except (CommunicationError, DeviceError, SmartlineError) as exc:
            st.ok = False
            st.error = str(exc)
            self.image.mark(plan.slots, Quality.BAD, reason_for(exc))
        else:
            st.requests = result.requests
            self.image.ingest(result)
        st.elapsed_ns = time.perf_counter_ns() - t0
        return st

    def prepare_writes(self, values: Mapping[str, object]) -> dict[str, list[WriteItem]]:
        """Check every value (access, type, limits) and convert to raw; all or nothing.

        Raises ``WriteRefusedError`` naming every refused tag; nothing is written then.
        """
        refused: list[str] = []
        items: dict[str, list[WriteItem]] = {}
        for name, value in values.items():
            tag = self.image.tags.get(name)
            if tag is None:
                refused.append(f"{name}: unknown tag")
                continue
            try:
                raw: WriteValue = tag.check_write(value)
            except WriteRefusedError as exc:
                refused.append(f"{name}: {exc.message}")
                continue
            point = self.image.points([name])[0]
            items.setdefault(tag.device, []).append(WriteItem(point, raw))
        if refused:
            for name, value in values.items():
                self._audit(name, value, "refused", "; ".join(refused))
            raise WriteRefusedError("write refused: " + "; ".join(refused))
        return items

    async def write(self, values: Mapping[str, object]) -> None:
        """Guarded, audited write of engineering values to tags (devices concurrently)."""
        items = self.prepare_writes(values)
        devices = list(items)
        results = await asyncio.gather(*(self.driver(d).write(items[d]) for d in devices),
                                       return_exceptions=True)
        errors: list[BaseException] = []
        for d, r in zip(devices, results, strict=True):
            outcome = "ok" if r is None else "failed"
            for it in items[d]:
                self._audit(it.point.tag, values[it.point.tag], outcome,
                            "" if r is None else str(r), raw=it.value)
            if isinstance(r, BaseException):
                errors.append(r)
        if errors:
            first = errors[0]
            if isinstance(first, SmartlineError):
                raise first
            raise first

    def _audit(self, tag: str, value: object, outcome: str, detail: str = "",
               raw: object = None) -> None:
        entry: dict[str, object] = {
            "time_ns": self.clock.wall_ns(), "line": self.config.name, "user": self.user,
            "tag": tag, "value": value, "outcome": outcome,
        }
        if raw is not None:
            entry["raw"] = raw
        if detail:
            entry["detail"] = detail
        audit_log.info("write %s", entry)
        if self.audit is not None:
            self.audit.record(entry)

    async def close(self) -> None:
        """Close every driver (each close is idempotent and never raises)."""
        await asyncio.gather(*(d.close() for d in self.drivers.values()),
                             return_exceptions=True)
        await asyncio.gather(*(p.aclose() for p in self._pools.values()),
                             return_exceptions=True)
        self._pools.clear()

    def health(self) -> dict[str, dict[str, object]]:
        """Per-device health and driver counters for statistics."""
        return {name: d.stats() for name, d in self.drivers.items()}


def _current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        return f"uid:{os.getuid()}"
