"""``memory://NAME`` — a device whose memory is a :class:`MemoryBus`.

Addresses use the memory grammar (``NAME[:TYPE[COUNT]]``). Unwritten addresses read as
zero, as a PLC's memory does after a cold start. ``memory://NAME?persist=1`` keeps the
memory in ``$SMARTLINE_STATE_DIR/memory/NAME.json`` (default ``~/.local/state/smartline``)
so that ``smartline write`` and a later ``smartline read`` see the same values.
Devices of one line with the same NAME share one bus (a shared link of the line's
:class:`~smartline.core.LinkPool`). ``?push=1`` makes the device push: a subscription
delivers the current values, then every change another driver (or :meth:`MemoryBus.set`)
makes, time-stamped when it was made. The bus can inject faults (latency, garbage,
refusal, a broken link) so the driver passes the same conformance suite as the protocol
drivers; it is the worked example of the driver contract inside smartline.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ...core import (
    BrowsedPoint,
    BrowseResult,
    Clock,
    ConnectError,
    DeviceSpec,
    DriverBase,
    DriverFamily,
    LinkBrokenError,
    LinkPool,
    MonotonicClock,
    Point,
    ProtocolError,
    ReadPlan,
    ReadResult,
    Reason,
    ResultBuilder,
    SharedLink,
    Subscription,
    WriteItem,
    WriteRefusedError,
    state_dir,
)
from ...tags import DataType, MemoryAddress
from ..families.memory import FAMILY, MemoryOptions

__all__ = ["MemoryBus", "MemoryDriver"]

Stored = float | int | str | list[float] | list[int]
Watcher = Callable[[dict[str, int]], None]


class MemoryBus(SharedLink):
    """The memory behind one or more memory drivers, with switchable faults.

    ``set`` changes a value as the device itself would (a simulator, a plant model);
    drivers write through it too. Watchers (push subscriptions) hear of every change with
    the wall-clock time it was made.
    """

    def __init__(self, path: Path | None = None, *, name: str = "default",
                 clock: Clock | None = None) -> None:
        super().__init__(("memory", name))
        self.clock: Clock = clock if clock is not None else MonotonicClock()
        self.values: dict[str, Stored] = {}
        self.changed_ns: dict[str, int] = {}
        self.path = path
        self.latency_s = 0.0
        self.garbage = False
        self.refuse = False
        self.requests = 0
        self.sessions: set[MemoryDriver] = set()
        self._watchers: list[Watcher] = []
        self._seen: tuple[int, int] = (-1, -1)  # (inode, mtime) of the file last read or saved
        self.refresh()

    @classmethod
    def shared(cls, links: LinkPool, name: str, path: Path | None = None,
               clock: Clock | None = None) -> MemoryBus:
        """The bus called ``name`` in ``links`` (made on first use, with ``clock`` to time
        its changes)."""
        return links.get(("memory", name), cls, lambda: cls(path, name=name, clock=clock))

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
            changed = {k for k, v in loaded.items() if self.values.get(k) != v}
            self.values.update(loaded)
            self._notify(changed)

    async def exchange(self) -> None:
        """One round trip on the (imaginary) wire: applies latency and faults."""
        self.requests += 1
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        if self.garbage:
            raise ProtocolError("memory bus returned garbage (injected fault)")
        self.refresh()

    def set(self, name: str, value: Stored) -> None:
        """Change one value (as the device would); watchers are told."""
        if self.values.get(name) != value:
            self.values[name] = value
            self._notify({name})

    def watch(self, watcher: Watcher) -> None:
        self._watchers.append(watcher)

    def unwatch(self, watcher: Watcher) -> None:
        if watcher in self._watchers:
            self._watchers.remove(watcher)

    def kick(self) -> None:
        """Break every driver's connection (an injected fault: the device restarted)."""
        for driver in list(self.sessions):
            driver.connection_lost(LinkBrokenError("memory bus connection reset (injected "
                                                   "fault)"))

    def save(self) -> None:
        """Write the memory to its file atomically (write a temporary file, then rename)."""
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self.values), encoding="utf-8")
            tmp.replace(self.path)
            st = self.path.stat()
            self._seen = (st.st_ino, st.st_mtime_ns)

    def _notify(self, names: Iterable[str]) -> None:
        names = list(names)
        if not names:
            return
        now = self.clock.wall_ns()
        for n in names:
            self.changed_ns[n] = now
        stamped = {n: now for n in names}
        for w in list(self._watchers):
            w(stamped)


def _state_path(name: str) -> Path:
    return state_dir() / "memory" / f"{name}.json"


@dataclass(frozen=True, slots=True)
class _MemoryPlan:
    points: tuple[Point, ...]

    @property
    def request_count(self) -> int:
        return 1 if self.points else 0


class MemoryDriver(DriverBase[_MemoryPlan, MemoryOptions]):
    """Reads and writes a :class:`MemoryBus`; one request per plan; pushes on ``?push=1``."""

    family_plugin: ClassVar[DriverFamily | None] = FAMILY
    family: ClassVar[str] = "memory"
    options_type: ClassVar[type[Any]] = MemoryOptions

    def __init__(self, spec: DeviceSpec, *, clock: Clock | None = None,
                 rng: Any = None, links: LinkPool | None = None) -> None:
        super().__init__(spec, clock=clock, rng=rng, links=links)
        name = spec.url.host or "default"
        self.bus = MemoryBus.shared(self.links, name,
                                    _state_path(name) if self.options.persist else None,
                                    self.clock)
        self.link = self.bus

    # -- hooks ---------------------------------------------------------------------------
    async def _connect(self) -> None:
        if self.bus.refuse:
            raise ConnectError("memory bus refuses connections (injected fault)")
        self.bus.sessions.add(self)
        self.bus.users.add(self.spec.name)

    async def _close(self) -> None:
        self.bus.sessions.discard(self)
        for sub in self._subscriptions():
            self._stop_watching(sub)

    def _plan(self, points: Sequence[Point]) -> _MemoryPlan:
        return _MemoryPlan(tuple(points))

    async def _read(self, plan: ReadPlan[_MemoryPlan]) -> ReadResult:
        self.health.requests += 1
        await self.bus.exchange()
        return self._values(plan.points, self.clock.wall_ns(), requests=1).build(requests=1)

    def _prepare_write(self, items: Sequence[WriteItem]) -> list[tuple[str, Stored]]:
        out: list[tuple[str, Stored]] = []
        for it in items:
            addr = it.point.address
            assert isinstance(addr, MemoryAddress)
            v = it.value
            if addr.is_text != isinstance(v, str):
                raise WriteRefusedError(f"{v!r} does not fit {addr.canonical()}",
                                        tag=it.point.tag)
            if isinstance(v, tuple):
                if len(v) != addr.elements:
                    raise WriteRefusedError(f"{len(v)} values for {addr.elements} elements",
                                            tag=it.point.tag)
                out.append((addr.name, [_stored(addr, x) for x in v]))  # type: ignore[misc]
            elif isinstance(v, str):
                out.append((addr.name, v))
            else:
                out.append((addr.name, _stored(addr, v)))
        return out

    async def _write(self, items: Sequence[WriteItem], prepared: Any) -> None:
        self.health.requests += 1
        await self.bus.exchange()
        for name, value in prepared:
            self.bus.set(name, value)
        if self.bus.path is not None:
            await asyncio.to_thread(self.bus.save)

    def _pushes(self, point: Point) -> bool:
        return bool(self.options.push)

    async def _subscribe(self, subscription: Subscription) -> None:
        await self.bus.exchange()
        names = {p.tag: p.address.name for p in subscription.points  # type: ignore[attr-defined]
                 }

        def changed(stamped: dict[str, int]) -> None:
            pts = [p for p in subscription.points if names[p.tag] in stamped]
            if pts:
                b = self._values(pts, self.clock.wall_ns())
                subscription.deliver(b.build(only_set=True))

        self._stop_watching(subscription)
        subscription.handle = changed
        self.bus.watch(changed)
        # the current values first, as an OPC UA data-change subscription does
        first = self._values(subscription.points, self.clock.wall_ns())
        subscription.deliver(first.build(only_set=True))

    async def _unsubscribe(self, subscription: Subscription) -> None:
        self._stop_watching(subscription)

    def _stats(self) -> dict[str, object]:
        return {"bus_requests": self.bus.requests, "bus_users": len(self.bus.users)}

    async def _browse(self, depth: int) -> BrowseResult:
        """The bus's values as points: ``name`` for numbers, ``name:float64[n]`` for lists,
        ``name:string<N>`` for text (N: the longest seen, in bytes, rounded up to 8)."""
        await self.bus.exchange()
        bus = self.spec.url.host or "default"
        identity: dict[str, object] = {"bus": bus, "persisted": self.bus.path is not None}
        if self.bus.path is not None:
            identity["file"] = str(self.bus.path)
        points: list[BrowsedPoint] = []
        skipped: list[str] = []
        for name in sorted(self.bus.values):
            value = self.bus.values[name]
            if isinstance(value, str):
                size = max(8, -(-len(value.encode()) // 8) * 8)
                kind = f"string<{size}>"
                address = f"{name}:{kind}"
            elif isinstance(value, list) and value:
                kind = f"float64[{len(value)}]"
                address = f"{name}:{kind}"
            elif isinstance(value, bool | int | float):
                kind, address = "float64", name
            else:
                skipped.append(name)
                continue
            points.append(BrowsedPoint(name=name, address=address, access="rw", type=kind))
        notes: list[str] = []
        if not points:
            notes.append(f"memory://{bus} holds no values" + (
                "" if self.bus.path is not None else
                " (without ?persist=1 a memory device lives only in one process)"))
        if skipped:
            notes.append(f"values that fit no address left out: {', '.join(skipped)}")
        return BrowseResult(identity=identity, points=tuple(points), notes=tuple(notes))

    # -- helpers -------------------------------------------------------------------------
    def _subscriptions(self) -> list[Subscription]:
        return list(self._subs)

    def _stop_watching(self, subscription: Subscription) -> None:
        handle = subscription.handle
        if callable(handle):
            self.bus.unwatch(handle)  # type: ignore[arg-type]
        subscription.handle = None

    def _values(self, points: Sequence[Point], received_ns: int, requests: int = 0
                ) -> ResultBuilder:
        b = ResultBuilder(points, received_ns)
        for p in points:
            addr = p.address
            assert isinstance(addr, MemoryAddress)
            stored = self.bus.values.get(addr.name)
            source = self.bus.changed_ns.get(addr.name)
            k = addr.elements
            if addr.is_text:
                b.set(p, stored if isinstance(stored, str) else "", source)
            elif isinstance(stored, list):
                b.set(p, [float(x) for x in (stored + [0.0] * k)[:k]], source)
            elif stored is None:
                b.set(p, 0 if k == 1 else [0.0] * k, source)
            elif isinstance(stored, bool | int | float) and k == 1:
                b.set(p, stored, source)
            elif isinstance(stored, int | float):
                b.set(p, [float(stored)] * k, source)
            else:
                b.fail(p, Reason.DECODE_ERROR)
        return b


def _stored(addr: MemoryAddress, value: bool | int | float) -> int | float:
    """Integers of integer types are kept exact (JSON keeps them so); the rest as floats."""
    if addr.dtype.is_integer and isinstance(value, int) and not isinstance(value, bool):
        return value
    if addr.dtype is DataType.BOOL:
        return 1.0 if value else 0.0
    if isinstance(value, float) and math.isnan(value):
        raise WriteRefusedError(f"NaN cannot be stored in {addr.canonical()}")
    return float(value)
