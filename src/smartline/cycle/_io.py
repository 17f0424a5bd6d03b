"""Device I/O for a line: one driver per device, concurrent reads with per-device deadlines,
guarded and audited writes.

Used by the cycle engine every cycle and by ``smartline read/write`` once.
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import os
import random
import threading
import time
import zlib
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from ..config import LineConfig
from ..core import (
    Clock,
    Driver,
    DriverBase,
    DriverRegistry,
    LinkPool,
    MonotonicClock,
    Point,
    Quality,
    ReadPlan,
    ReadResult,
    Reason,
    SmartlineError,
    Subscription,
    VirtualClock,
    WriteItem,
    WriteRefusedError,
    WriteValue,
    reason_for,
)
from ..tags import default_registry
from ._audit import JsonlAudit, audit_json
from ._image import ProcessImage

__all__ = ["AuditSink", "DeviceReadStats", "JsonlAudit", "LineIO", "ReadGroup", "audit_json"]

log = logging.getLogger(__name__)
audit_log = logging.getLogger("smartline.audit")


class AuditSink(Protocol):
    """Where write attempts are recorded (accepted, refused or failed).

    ``record`` is called on the event loop and from tick threads: it must not block. A sink
    may also have ``flush()`` (blocking until recorded entries are durable); ``LineIO``
    calls it off the loop after a user or safe-state write.
    """

    def record(self, entry: Mapping[str, object]) -> None: ...


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
    """The read plans of one set of tags, one per device, built once and reused every cycle.

    Tags whose devices push them are not in any plan: they are in ``pushed`` (device →
    tags) and reach the image through the line's subscriptions, with no reads. Plans are
    compiled again by their drivers after a device renegotiates.
    """

    plans: Mapping[str, ReadPlan[Any]]
    slots: np.ndarray = field(repr=False)
    pushed: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

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
        self.registry = registry if registry is not None else default_registry()
        self.audit = audit
        self.user = user or _current_user()
        self.drivers: dict[str, Driver] = {}
        self._audit_lock = threading.Lock()
        self._last_outcome: dict[str, str] = {}  # tag -> outcome last audited
        #: links shared between devices (one RS-485 port, one TCP gateway, one memory bus)
        self.links = LinkPool()
        #: tags each device keeps up to date by push (subscribed by :meth:`start_push`)
        self._push_tags: dict[str, dict[str, None]] = {}
        self._subscriptions: dict[str, Subscription] = {}

    def driver(self, device: str) -> Driver:
        """The driver of ``device``, created on first use (imports its protocol library then).

        Every driver is made the same way: ``cls(spec, clock=..., links=...)``.
        """
        drv = self.drivers.get(device)
        if drv is None:
            cfg = self.config.devices[device]
            cls = self.registry.load(cfg.scheme.name)
            if not issubclass(cls, DriverBase):
                raise SmartlineError(f"{cfg.scheme.scheme.driver} is not a smartline driver "
                                     "(a subclass of smartline.core.DriverBase)",
                                     device=device)
            # reconnect jitter: seeded per device in virtual time, so a run repeats exactly
            rng = (random.Random(zlib.crc32(device.encode()))
                   if isinstance(self.clock, VirtualClock) else None)
            drv = cls(cfg.spec(), clock=self.clock, links=self.links, rng=rng)
            self.drivers[device] = drv
        return drv

    def group(self, tags: Iterable[str], *, push: bool = False) -> ReadGroup:
        """Plan reads of ``tags``: one plan per device.

        With ``push``, tags whose device pushes them are left out of the plans and noted
        for :meth:`start_push` (a cyclic task); without, everything is read (a one-off read).
        """
        by_device: dict[str, list[str]] = {}
        for name in tags:
            by_device.setdefault(self.image.tags[name].device, []).append(name)
        plans: dict[str, ReadPlan[Any]] = {}
        pushed: dict[str, tuple[str, ...]] = {}
        for dev, names in by_device.items():
            drv = self.driver(dev)
            points = self.image.points(names)
            if push and isinstance(drv, DriverBase):
                mine = [p for p in points if drv.pushes(p)]
                if mine:
                    pushed[dev] = tuple(p.tag for p in mine)
                    self._push_tags.setdefault(dev, {}).update(dict.fromkeys(pushed[dev]))
                    points = [p for p in points if p.tag not in self._push_tags[dev]]
            if points:
                plans[dev] = drv.plan(points)
        slots = (np.concatenate([p.slots for p in plans.values()]) if plans
                 else np.zeros(0, np.intp))
        return ReadGroup(plans=plans, slots=slots, pushed=pushed)

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

    async def start_push(self) -> int:
        """Subscribe every device to the tags noted by ``group(..., push=True)``; values
        land in the image as they arrive. A device that is down is subscribed when it
        answers (its tags are STALE meanwhile). Returns the number of subscriptions."""
        for dev, names in self._push_tags.items():
            if dev in self._subscriptions:
                continue
            drv = self.driver(dev)
            assert isinstance(drv, DriverBase)
            points: list[Point] = self.image.points(list(names))
            self._subscriptions[dev] = await drv.subscribe(points, _ImageSink(self.image))
        return len(self._subscriptions)

    @property
    def pushed_tags(self) -> dict[str, tuple[str, ...]]:
        """Device → tags kept up to date by push."""
        return {d: tuple(t) for d, t in self._push_tags.items()}

    async def read(self, group: ReadGroup, deadline_s: float | None = None
                   ) -> list[DeviceReadStats]:
        """Read every device of ``group`` concurrently into the image.

        A device that fails marks its tags BAD with the reason; a device still busy at
        ``deadline_s`` has its tags marked STALE (last value kept) and its read cancelled,
        so one slow device never holds up the others beyond the deadline.
        """
        names = list(group.plans)
        if len(names) == 1:  # one device: awaited here, no task and no wait (a loop turn less)
            return [await self._read_alone(names[0], group.plans[names[0]], deadline_s)]
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

    async def _read_alone(self, device: str, plan: ReadPlan[Any],
                          deadline_s: float | None) -> DeviceReadStats:
        """One device's read awaited in the caller's task, as :meth:`read` bounds it: busy
        past ``deadline_s``, its read is cancelled and its tags go STALE."""
        if deadline_s is None:
            return await self._read_one(device, plan)
        bound = asyncio.timeout(deadline_s)
        try:
            async with bound:
                return await self._read_one(device, plan)
        except TimeoutError:
            if not bound.expired():  # raised by the read itself, not the deadline
                raise
            self.image.mark(plan.slots, Quality.STALE, Reason.DEADLINE)
            return DeviceReadStats(device, ok=False, error="deadline")

    async def _read_one(self, device: str, plan: ReadPlan[Any]) -> DeviceReadStats:
        drv = self.drivers[device]
        st = DeviceReadStats(device)
        t0 = time.perf_counter_ns()
        try:
            result: ReadResult = await drv.read(plan)
        except SmartlineError as exc:
            st.ok = False
            st.error = str(exc)
            self.image.mark(plan.slots, Quality.BAD, reason_for(exc), str(exc))
        else:
            st.requests = result.requests
            self.image.ingest(result)
        st.elapsed_ns = time.perf_counter_ns() - t0
        return st

    def prepare_writes(self, values: Mapping[str, object], *,
                       source: str = "user") -> dict[str, list[WriteItem]]:
        """Check every value (access, type, limits) and convert to raw; all or nothing.

        Raises ``WriteRefusedError`` naming every refused tag; nothing is written then (the
        refusal is audited).
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
                self.audit_write(name, value, "refused", "; ".join(refused), source=source)
            raise WriteRefusedError("write refused: " + "; ".join(refused))
        return items

    async def write(self, values: Mapping[str, object], *, source: str = "user") -> None:
        """Guarded, audited write of engineering values to tags (devices concurrently).

        Returns once the audit entries are on disk (when the sink can say so).
        """
        try:
            items = self.prepare_writes(values, source=source)
            errors = await self.write_items(items, values, source=source)
        finally:  # refused or sent: its audit entries are on disk when the caller hears
            await self.flush_audit()
        if errors:
            raise next(iter(errors.values()))

    async def write_items(self, items: Mapping[str, list[WriteItem]],
                          values: Mapping[str, object], *, source: str = "user",
                          changes_only: bool = False,
                          audit_each: Container[str] = ()) -> dict[str, BaseException]:
        """Send checked write items (device → items) concurrently and audit each tag's outcome.

        The one way writes leave a line (``write`` and the cycle engine use it). ``values``
        are the engineering values by tag, for the audit. Returns device → error for the
        devices whose write failed. ``changes_only`` audits a tag only when its outcome
        differs from the one last audited for it (the engine's routine writes: the first
        success, each first refusal or failure, and the first success after those), except
        the tags in ``audit_each``, audited on every write (``TagSpec.audit_each_write``).
        """
        devices = list(items)
        try:
            drivers = [self.driver(d) for d in devices]
        except SmartlineError as exc:  # a driver that cannot be loaded: nothing is sent
            for d in devices:
                for it in items[d]:
                    self.audit_write(it.point.tag, values.get(it.point.tag), "failed",
                                     str(exc), raw=it.value, source=source)
            raise
        results = await asyncio.gather(*(drv.write(items[d])
                                         for d, drv in zip(devices, drivers, strict=True)),
                                       return_exceptions=True)
        errors: dict[str, BaseException] = {}
        for d, r in zip(devices, results, strict=True):
            failed = isinstance(r, BaseException)
            for it in items[d]:
                tag = it.point.tag
                self.audit_write(tag, values.get(tag), "failed" if failed else "ok",
                                 str(r) if failed else "", raw=it.value, source=source,
                                 changes_only=changes_only and tag not in audit_each)
            if isinstance(r, BaseException):
                errors[d] = r
        return errors

    def audit_write(self, tag: str, value: object, outcome: str, detail: str = "",
                    raw: object = None, *, source: str = "user",
                    changes_only: bool = False) -> None:
        """Record one write attempt (any thread; never blocks on the disk)."""
        with self._audit_lock:
            last = self._last_outcome.get(tag)
            self._last_outcome[tag] = outcome
        if changes_only and last == outcome:
            return
        entry: dict[str, object] = {
            "time_ns": self.clock.wall_ns(), "line": self.config.name, "user": self.user,
            "source": source, "tag": tag, "value": value, "outcome": outcome,
        }
        if tag in self.image.tags:  # what the tag held when the write was decided on
            entry["old"] = self.image.get(tag).value
        if raw is not None:
            entry["raw"] = raw
        if detail:
            entry["detail"] = detail
        audit_log.info("write %s", entry)
        if self.audit is not None:
            self.audit.record(entry)

    async def flush_audit(self) -> None:
        """Wait (off the loop) until the audit entries recorded so far are on disk."""
        flush = getattr(self.audit, "flush", None)
        if flush is not None:
            await asyncio.to_thread(flush)

    async def close(self) -> None:
        """Close every driver (each close is idempotent and never raises), then the links."""
        self._subscriptions.clear()
        await asyncio.gather(*(d.close() for d in self.drivers.values()),
                             return_exceptions=True)
        await self.links.aclose()

    def health(self) -> dict[str, dict[str, object]]:
        """Per-device health and driver counters for statistics."""
        return {name: d.stats() for name, d in self.drivers.items()}


class _ImageSink:
    """Pushed values into the process image (on the event loop, under the image lock)."""

    def __init__(self, image: ProcessImage) -> None:
        self.image = image

    def push(self, result: ReadResult) -> None:
        self.image.ingest(result)

    def lost(self, slots: NDArray[np.intp], reason: Reason) -> None:
        self.image.mark(slots, Quality.STALE, reason)


def _current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        return f"uid:{os.getuid()}"
