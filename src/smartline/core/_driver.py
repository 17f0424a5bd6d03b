"""The driver contract (DESIGN §6) and the base class that owns the common behaviour.

A driver fills five hooks: ``_connect``, ``_close``, ``_plan``, ``_read`` and ``_write``.
:class:`DriverBase` owns the rest: timeouts, error wrapping, reconnect with exponential
backoff and jitter, demotion of a device that keeps failing, wire logging at DEBUG, and
the closed-state check.
"""

from __future__ import annotations

import asyncio
import logging
import random
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType, TracebackType
from typing import ClassVar, Protocol, Self, TypeVar, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from ._clock import Clock, MonotonicClock
from ._errors import (
    ClosedError,
    CommunicationError,
    ConnectError,
    DeviceError,
    DeviceTimeoutError,
    LinkBrokenError,
    ProtocolError,
    SmartlineError,
    WriteRefusedError,
)
from ._quality import Quality, Reason
from ._url import ConnectionUrl

__all__ = [
    "Address",
    "DeviceDemotedError",
    "DeviceHealth",
    "DeviceSpec",
    "Driver",
    "DriverBase",
    "Point",
    "ReadPlan",
    "ReadResult",
    "RetryPolicy",
    "WriteItem",
    "WriteValue",
    "reason_for",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
A = TypeVar("A")

WriteValue = bool | int | float | str | tuple[bool | int | float, ...]


class DeviceDemotedError(CommunicationError):
    """The device failed too often in a row and is polled slowly; this poll was skipped."""


@runtime_checkable
class Address(Protocol):
    """A parsed tag address of one protocol family (see ``smartline.tags``)."""

    @property
    def family(self) -> str: ...

    @property
    def elements(self) -> int:
        """Number of image slots the address fills (array length; 1 for scalars and strings)."""

    @property
    def is_text(self) -> bool: ...

    def canonical(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Point:
    """One tag as a driver sees it: where it lives on the device and where it goes in the image."""

    tag: str
    slot: int  # first image slot; an array fills slot .. slot + elements - 1
    address: Address

    @property
    def slots(self) -> range:
        return range(self.slot, self.slot + self.address.elements)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Reconnect backoff and demotion of a device that keeps failing."""

    backoff_initial_s: float = 0.1
    backoff_max_s: float = 10.0
    backoff_multiplier: float = 2.0
    jitter: float = 0.2  # ± fraction of each delay, so many devices do not retry in lockstep
    demote_after: int = 3  # failures in a row before the device is polled slowly
    demote_period_s: float = 5.0

    def delay_s(self, failures: int, rng: random.Random) -> float:
        """Backoff before attempt number ``failures + 1`` (``failures`` ≥ 1)."""
        base = min(self.backoff_max_s,
                   self.backoff_initial_s * self.backoff_multiplier ** max(0, failures - 1))
        return max(0.0, base * (1.0 + self.jitter * (2.0 * rng.random() - 1.0)))


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """Everything a driver needs to know about its device, decoded and validated upstream."""

    name: str
    url: ConnectionUrl
    timeout_s: float = 1.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    options: Mapping[str, int | float | str | bool] = field(
        default_factory=lambda: MappingProxyType({}))
    security: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    username: str | None = None
    password: str | None = field(default=None, repr=False)


class ReadPlan:
    """What a driver will request for a set of points. Drivers subclass it with their requests."""

    def __init__(self, points: Sequence[Point]) -> None:
        self.points: tuple[Point, ...] = tuple(points)
        slots = [s for p in self.points for s in p.slots]
        self.slots: NDArray[np.intp] = np.asarray(slots, dtype=np.intp)

    @property
    def request_count(self) -> int:
        """Requests one execution of the plan sends (one per point unless a driver coalesces)."""
        return len(self.points)


@dataclass(frozen=True, slots=True)
class ReadResult:
    """Raw (unscaled) values for image slots, with quality per slot.

    ``raw`` is NaN where quality is BAD. Strings travel in ``texts`` keyed by slot.
    """

    slots: NDArray[np.intp]
    raw: NDArray[np.float64]
    quality: NDArray[np.uint8]
    reason: NDArray[np.uint8]
    timestamp_ns: int
    texts: Mapping[int, str] = field(default_factory=lambda: MappingProxyType({}))
    requests: int = 0

    @classmethod
    def failed(cls, plan: ReadPlan, reason: Reason, timestamp_ns: int,
               quality: Quality = Quality.BAD) -> ReadResult:
        n = len(plan.slots)
        return cls(slots=plan.slots, raw=np.full(n, np.nan), quality=np.full(n, quality, np.uint8),
                   reason=np.full(n, reason, np.uint8), timestamp_ns=timestamp_ns)


@dataclass(frozen=True, slots=True)
class WriteItem:
    """One raw (unscaled, already range- and access-checked) value to write to a point."""

    point: Point
    value: WriteValue


@dataclass(slots=True)
class DeviceHealth:
    """Live counters of one device, shown in statistics."""

    connected: bool = False
    demoted: bool = False
    failures_in_row: int = 0
    failures: int = 0
    connects: int = 0
    reads: int = 0
    writes: int = 0
    requests: int = 0
    timeouts: int = 0
    next_attempt_ns: int = 0
    last_error: str = ""

    def as_dict(self) -> dict[str, int | bool | str]:
        return {k: getattr(self, k) for k in self.__slots__}  # type: ignore[attr-defined]


@runtime_checkable
class Driver(Protocol):
    """The one small async contract every protocol driver fulfils."""

    family: ClassVar[str]
    spec: DeviceSpec
    health: DeviceHealth

    async def connect(self) -> None: ...

    def plan(self, points: Sequence[Point]) -> ReadPlan: ...

    async def read(self, plan: ReadPlan) -> ReadResult: ...

    async def write(self, items: Sequence[WriteItem]) -> None: ...

    async def close(self) -> None: ...

    def stats(self) -> dict[str, object]: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None: ...


def reason_for(exc: BaseException) -> Reason:
    """The quality reason code that an exception from a driver stands for."""
    if isinstance(exc, DeviceDemotedError):
        return Reason.DEMOTED
    if isinstance(exc, DeviceTimeoutError):
        return Reason.TIMEOUT
    if isinstance(exc, ConnectError):
        return Reason.NOT_CONNECTED
    if isinstance(exc, LinkBrokenError):
        return Reason.LINK_BROKEN
    if isinstance(exc, ProtocolError):
        return Reason.PROTOCOL_ERROR
    if isinstance(exc, DeviceError):
        return Reason.DEVICE_ERROR
    if isinstance(exc, ClosedError):
        return Reason.CLOSED
    return Reason.LINK_BROKEN


class DriverBase(ABC):
    """Common behaviour of all drivers; subclasses fill the ``_`` hooks.

    Hooks raise smartline errors where they can tell what happened (``DeviceError`` for an
    exception response, ``ProtocolError`` for garbage); anything else is wrapped here:
    ``TimeoutError`` → ``DeviceTimeoutError``, ``OSError`` → ``LinkBrokenError``/``ConnectError``.
    After a communication failure the connection is dropped and re-opened on the next
    use, no sooner than the backoff delay; after ``demote_after`` failures in a row the
    device is only tried every ``demote_period_s`` until it answers again.
    """

    family: ClassVar[str] = ""

    def __init__(self, spec: DeviceSpec, *, clock: Clock | None = None,
                 rng: random.Random | None = None) -> None:
        self.spec = spec
        self.clock: Clock = clock if clock is not None else MonotonicClock()
        self.health = DeviceHealth()
        self._rng = rng if rng is not None else random.Random()
        self._closed = False
        self._connected = False
        self._lock = asyncio.Lock()
        self._wire_log = logging.getLogger(f"smartline.wire.{spec.name}")

    # -- hooks ---------------------------------------------------------------------------
    @abstractmethod
    async def _connect(self) -> None:
        """Open the connection (called without the timeout guard being the driver's concern)."""

    @abstractmethod
    async def _close(self) -> None:
        """Release the connection; must not raise for an already broken link."""

    @abstractmethod
    def _plan(self, points: Sequence[Point]) -> ReadPlan:
        """Turn points into the driver's requests."""

    @abstractmethod
    async def _read(self, plan: ReadPlan) -> ReadResult:
        """Execute a plan built by ``_plan``."""

    @abstractmethod
    async def _write(self, items: Sequence[WriteItem]) -> None:
        """Write raw values."""

    # -- public contract -----------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def connected(self) -> bool:
        return self._connected

    def plan(self, points: Sequence[Point]) -> ReadPlan:
        """Build a read plan; rejects addresses of another protocol family."""
        for p in points:
            if p.address.family != self.family:
                raise SmartlineError(
                    f"address {p.address.canonical()!r} is a {p.address.family} address; "
                    f"this {self.family} driver cannot read it",
                    device=self.spec.name, tag=p.tag)
        return self._plan(points)

    async def connect(self) -> None:
        """Connect now (idempotent); raises ``ConnectError``/``DeviceTimeoutError`` on failure."""
        self._check_open()
        if self._connected:
            return
        async with self._lock:
            await self._connect_locked(force=True)

    async def read(self, plan: ReadPlan) -> ReadResult:
        """Execute ``plan``; connects first if needed. Device-level failures raise."""
        return await self._guarded("read", self._read, plan)

    async def write(self, items: Sequence[WriteItem]) -> None:
        """Write raw values; raises on failure (nothing is retried behind the caller's back)."""
        if items:
            await self._guarded("write", self._write, items)

    async def close(self) -> None:
        """Close (idempotent; always leaves the driver closed, even if closing fails)."""
        if self._closed:
            return
        self._closed = True
        await self._drop()

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    def stats(self) -> dict[str, object]:
        """Counters for statistics: the health fields; drivers add their own."""
        return dict(self.health.as_dict())

    # -- machinery -----------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("driver is closed", device=self.spec.name)

    async def _drop(self) -> None:
        was = self._connected
        self._connected = False
        self.health.connected = False
        try:
            await self._close()
        except Exception as exc:  # closing a broken link may fail; it is closed regardless
            log.debug("%s: error while closing: %r", self.spec.name, exc)
        if was:
            log.info("%s: disconnected", self.spec.name)

    async def _connect_locked(self, *, force: bool) -> None:
        now = self.clock.now_ns()
        h = self.health
        if not force and now < h.next_attempt_ns:
            wait = (h.next_attempt_ns - now) / 1e9
            if h.demoted:
                raise self._demoted_error()
            raise ConnectError(f"not connected ({h.last_error}); next attempt in {wait:.2f} s",
                               device=self.spec.name)
        try:
            async with asyncio.timeout(self.spec.timeout_s):
                await self._connect()
        except asyncio.CancelledError:
            await self._drop()
            raise
        except BaseException as exc:
            err = self._wrap(exc, "connect")
            if isinstance(err, LinkBrokenError | ProtocolError):
                err = ConnectError(err.message, device=self.spec.name)
                err.__cause__ = exc
            await self._drop()
            self._record_failure(err)
            raise err from exc
        self._connected = True
        h.connected = True
        h.connects += 1
        log.info("%s: connected to %s", self.spec.name, self.spec.url)

    async def _guarded(self, what: str, hook: Callable[[A], Awaitable[T]], arg: A) -> T:
        self._check_open()
        async with self._lock:
            self._check_open()
            h = self.health
            if h.demoted and self._connected and self.clock.now_ns() < h.next_attempt_ns:
                raise self._demoted_error()
            if not self._connected:
                await self._connect_locked(force=False)
            self._wire_log.debug("%s %r", what, arg)
            try:
                async with asyncio.timeout(self.spec.timeout_s):
                    result = await hook(arg)
            except asyncio.CancelledError:
                # the request may be half-sent or its answer still in flight: start afresh
                await self._drop()
                raise
            except DeviceError as exc:
                if exc.device is None:
                    exc.device = self.spec.name
                self._record_success(what)
                raise
            except WriteRefusedError as exc:
                # refused before anything went on the wire: the link is fine
                if exc.device is None:
                    exc.device = self.spec.name
                raise
            except BaseException as exc:
                err = self._wrap(exc, what)
                await self._drop()
                self._record_failure(err)
                raise err from exc
            self._record_success(what)
            return result

    def _demoted_error(self) -> DeviceDemotedError:
        h = self.health
        wait = (h.next_attempt_ns - self.clock.now_ns()) / 1e9
        return DeviceDemotedError(
            f"demoted after {h.failures_in_row} failures in a row; next try in {wait:.2f} s",
            device=self.spec.name)

    def _wrap(self, exc: BaseException, what: str) -> SmartlineError:
        name = self.spec.name
        if isinstance(exc, SmartlineError):
            if exc.device is None:
                exc.device = name
            return exc
        if isinstance(exc, TimeoutError):
            return DeviceTimeoutError(f"no answer to {what} within {self.spec.timeout_s:g} s",
                                      device=name)
        if isinstance(exc, ConnectionRefusedError):
            return ConnectError(f"connection refused by {self.spec.url}", device=name)
        if isinstance(exc, OSError):
            return LinkBrokenError(f"{what} failed: {exc}", device=name)
        if isinstance(exc, Exception):
            return ProtocolError(f"{what} failed: {type(exc).__name__}: {exc}", device=name)
        raise exc  # KeyboardInterrupt, SystemExit: not ours to wrap

    def _record_failure(self, err: SmartlineError) -> None:
        h = self.health
        h.failures += 1
        h.failures_in_row += 1
        h.last_error = err.message
        if isinstance(err, DeviceTimeoutError):
            h.timeouts += 1
        now = self.clock.now_ns()
        retry = self.spec.retry
        if h.failures_in_row >= retry.demote_after:
            if not h.demoted:
                log.warning("%s: demoted after %d failures in a row (%s); polling every %g s",
                            self.spec.name, h.failures_in_row, err.message,
                            retry.demote_period_s)
            h.demoted = True
            delay = max(retry.demote_period_s, retry.delay_s(h.failures_in_row, self._rng))
        else:
            delay = retry.delay_s(h.failures_in_row, self._rng)
        h.next_attempt_ns = now + int(delay * 1e9)
        log.debug("%s: %s; next attempt in %.3f s", self.spec.name, err.message, delay)

    def _record_success(self, what: str) -> None:
        h = self.health
        if h.demoted:
            log.info("%s: answering again; no longer demoted", self.spec.name)
        h.demoted = False
        h.failures_in_row = 0
        h.next_attempt_ns = 0
        if what == "read":
            h.reads += 1
        else:
            h.writes += 1
