"""The driver contract (DESIGN §6) and the base class that owns the common behaviour.

A driver fills small hooks; :class:`DriverBase` owns the public methods and everything
around them. Required hooks: ``_connect``, ``_close``, ``_plan``, ``_read``, ``_write``.
Optional hooks: ``_prepare_write`` (refuse or encode before any I/O), ``_pushes`` /
``_subscribe`` / ``_unsubscribe`` (values the device pushes), ``_refine`` (a better error
for a failure), ``_stats`` (counters of the driver's own).

DriverBase owns: the one constructor signature ``cls(spec, *, clock=None, rng=None,
links=None)``; typed options (``self.options``); link pooling and turn-taking (a driver
that shares a link sets ``self.link`` from ``self.links.get(...)`` in its constructor);
timeouts; error wrapping; reconnect with exponential backoff and jitter; demotion of a
device that keeps failing; plans made again after the device renegotiates (a driver calls
:meth:`DriverBase.renegotiated` from ``_connect``); subscriptions kept alive across
reconnects; :meth:`DriverBase.run_blocking` for synchronous libraries; wire logging at
DEBUG; the closed-state check. Drivers never override the public methods (enforced when
the subclass is defined).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import random
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType, TracebackType
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from ._clock import Clock, MonotonicClock
from ._errors import (
    ClosedError,
    CommunicationError,
    ConfigError,
    ConfigIssue,
    ConnectError,
    DeviceError,
    DeviceTimeoutError,
    LinkBrokenError,
    ProtocolError,
    SmartlineError,
    WriteRefusedError,
)
from ._family import DriverFamily
from ._links import LinkPool, SharedLink
from ._quality import Quality, Reason
from ._url import ConnectionUrl

__all__ = [
    "EXACT_LIMIT",
    "Address",
    "BrowseResult",
    "BrowsedPoint",
    "DeviceDemotedError",
    "DeviceHealth",
    "DeviceSpec",
    "Driver",
    "DriverBase",
    "Point",
    "PushSink",
    "ReadPlan",
    "ReadResult",
    "ResultBuilder",
    "RetryPolicy",
    "Subscriber",
    "Subscription",
    "WriteItem",
    "WriteValue",
    "reason_for",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
A = TypeVar("A")
C = TypeVar("C")  # a driver's compiled plan
O = TypeVar("O")  # noqa: E741  a driver's typed options

WriteValue = bool | int | float | str | tuple[bool | int | float, ...]

EXACT_LIMIT = 2 ** 53
"""Integers at least this large (in magnitude) travel exactly in ``ReadResult.exact``."""

#: public methods of DriverBase that subclasses must not override (they fill hooks instead)
_FINAL = ("connect", "plan", "read", "write", "close", "subscribe", "unsubscribe", "pushes",
          "browse",
          "stats", "run_blocking", "renegotiated", "connection_lost", "__aenter__",
          "__aexit__")


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
    """Everything a driver needs to know about its device, decoded and validated upstream.

    ``options`` is the family's typed options object as the line loader validated it
    (device keys, URL parameters and profile defaults together). Code that makes a driver
    by hand may give a mapping instead, or leave it out: the driver then validates the
    mapping and the URL's parameters with its ``options_type`` (pydantic, lax).
    """

    name: str
    url: ConnectionUrl
    timeout_s: float = 1.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    options: object = None
    security: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    protocol: object = None
    """The ``protocol:`` section of the device's profile as the family's
    ``profile_protocol`` model validated it (line-protocol instruments); None otherwise."""


class ReadPlan(Generic[C]):
    """The points of one read and the driver's compiled requests for them.

    Made by :meth:`DriverBase.plan`; ``compiled`` is what the driver's ``_plan`` hook
    returned. When the device renegotiates (a new PDU size, new operation limits) the
    driver compiles the plan again before its next read, in place: holders keep the same
    object. ``request_count`` is the compiled plan's ``request_count`` when it has one.
    """

    def __init__(self, points: Sequence[Point], compiled: C, epoch: int) -> None:
        self.points: tuple[Point, ...] = tuple(points)
        slots = [s for p in self.points for s in p.slots]
        self.slots: NDArray[np.intp] = np.asarray(slots, dtype=np.intp)
        self.compiled: C = compiled
        self.epoch = epoch

    @property
    def request_count(self) -> int:
        """Requests one execution of the plan sends."""
        count = getattr(self.compiled, "request_count", None)
        return int(count) if count is not None else len(self.points)


@dataclass(frozen=True, slots=True)
class ReadResult:
    """Raw (unscaled) values for image slots, with quality and timestamps per slot.

    ``raw`` is NaN where quality is BAD. Strings travel in ``texts`` and integers of
    magnitude ≥ 2**53 (which float64 cannot hold) exactly in ``exact``, both keyed by
    slot. ``received_ns`` is the wall-clock time the values arrived; ``source_ns`` the
    time the device says each was sampled (per slot; ``None``: the device gives no time
    of its own, so the receive time stands for it). ``notes`` says in words, by slot, why
    a value is not GOOD where the reason code alone does not (``"S +: overload"``, the
    partial reply that timed out).
    """

    slots: NDArray[np.intp]
    raw: NDArray[np.float64]
    quality: NDArray[np.uint8]
    reason: NDArray[np.uint8]
    received_ns: int
    source_ns: NDArray[np.int64] | None = None
    texts: Mapping[int, str] = field(default_factory=lambda: MappingProxyType({}))
    exact: Mapping[int, int] = field(default_factory=lambda: MappingProxyType({}))
    requests: int = 0
    notes: Mapping[int, str] = field(default_factory=lambda: MappingProxyType({}))
    bools: frozenset[int] = frozenset()
    """Slots whose value is a truth value (0.0/1.0 in ``raw``), for addresses whose type the
    device decides: the image shows them as ``True``/``False``."""

    @classmethod
    def failed(cls, slots: NDArray[np.intp], reason: Reason, received_ns: int,
               quality: Quality = Quality.BAD, note: str | None = None) -> ReadResult:
        n = len(slots)
        notes = MappingProxyType({int(s): note for s in slots.tolist()} if note else {})
        return cls(slots=slots, raw=np.full(n, np.nan), quality=np.full(n, quality, np.uint8),
                   reason=np.full(n, reason, np.uint8), received_ns=received_ns, notes=notes)

    def sources(self) -> NDArray[np.int64]:
        """Source time of every slot (the receive time where the device gives none)."""
        if self.source_ns is None:
            return np.full(len(self.slots), self.received_ns, np.int64)
        return self.source_ns


class ResultBuilder:
    """Collects values point by point into a :class:`ReadResult` (for drivers whose
    protocol answers per value; block protocols fill the arrays directly).

    Every point starts BAD with ``Reason.NOT_READ``; :meth:`set` makes it GOOD,
    :meth:`fail` gives it a reason. :meth:`build` with ``only_set`` keeps just the points
    touched (a push of the values that changed).
    """

    def __init__(self, points: Sequence[Point], received_ns: int) -> None:
        self.points = tuple(points)
        self._pos: dict[int, int] = {}
        slots: list[int] = []
        for p in self.points:
            self._pos[p.slot] = len(slots)
            slots.extend(p.slots)
        n = len(slots)
        self.slots: NDArray[np.intp] = np.asarray(slots, np.intp)
        self.raw: NDArray[np.float64] = np.full(n, np.nan)
        self.quality: NDArray[np.uint8] = np.full(n, Quality.BAD, np.uint8)
        self.reason: NDArray[np.uint8] = np.full(n, Reason.NOT_READ, np.uint8)
        self.source_ns: NDArray[np.int64] = np.full(n, received_ns, np.int64)
        self.touched: NDArray[np.bool_] = np.zeros(n, np.bool_)
        self.received_ns = received_ns
        self.texts: dict[int, str] = {}
        self.exact: dict[int, int] = {}
        self.notes: dict[int, str] = {}
        self.bools: set[int] = set()
        self._has_source = False

    def set(self, point: Point, value: bool | int | float | str | Sequence[float],
            source_ns: int | None = None) -> None:
        """``point`` read ``value`` (a string for text, a sequence for an array), GOOD."""
        i = self._pos[point.slot]
        k = point.address.elements
        self.bools.discard(point.slot)
        if isinstance(value, str):
            self.texts[point.slot] = value
            self.raw[i] = 0.0
        elif isinstance(value, bool | np.bool_):
            self.bools.add(point.slot)
            self.raw[i:i + k] = float(value)
        elif isinstance(value, int | float | np.integer | np.floating):
            if isinstance(value, int | np.integer) and abs(int(value)) >= EXACT_LIMIT:
                self.exact[point.slot] = int(value)
            self.raw[i:i + k] = float(value)
        else:
            vals = [float(v) for v in value]
            if len(vals) != k:
                raise ValueError(f"{point.tag}: {len(vals)} values for {k} elements")
            self.raw[i:i + k] = vals
        self.quality[i:i + k] = Quality.GOOD
        self.reason[i:i + k] = Reason.NONE
        self.touched[i:i + k] = True
        self.notes.pop(point.slot, None)
        if source_ns is not None:
            self.source_ns[i:i + k] = source_ns
            self._has_source = True

    def doubt(self, point: Point, reason: Reason, note: str) -> None:
        """``point``'s value (set before) stands, but UNCERTAIN for ``reason``: e.g. the
        last value a device reported before it stopped reporting."""
        i = self._pos[point.slot]
        k = point.address.elements
        self.quality[i:i + k] = Quality.UNCERTAIN
        self.reason[i:i + k] = reason
        self.notes[point.slot] = note

    def fail(self, point: Point, reason: Reason, quality: Quality = Quality.BAD,
             note: str | None = None) -> None:
        """``point`` has no usable value this time, for ``reason`` (``note`` says it in
        words: what the device answered, what was expected)."""
        i = self._pos[point.slot]
        k = point.address.elements
        self.raw[i:i + k] = np.nan
        self.quality[i:i + k] = quality
        self.reason[i:i + k] = reason
        self.touched[i:i + k] = True
        self.texts.pop(point.slot, None)
        self.exact.pop(point.slot, None)
        self.bools.discard(point.slot)
        if note:
            self.notes[point.slot] = note
        else:
            self.notes.pop(point.slot, None)

    def build(self, *, requests: int = 0, only_set: bool = False) -> ReadResult:
        source = self.source_ns if self._has_source else None
        if not only_set:
            return ReadResult(self.slots, self.raw, self.quality, self.reason, self.received_ns,
                              source, MappingProxyType(self.texts),
                              MappingProxyType(self.exact), requests,
                              MappingProxyType(self.notes), frozenset(self.bools))
        m = self.touched
        keep = set(self.slots[m].tolist())
        return ReadResult(
            self.slots[m], self.raw[m], self.quality[m], self.reason[m], self.received_ns,
            source[m] if source is not None else None,
            MappingProxyType({s: t for s, t in self.texts.items() if s in keep}),
            MappingProxyType({s: v for s, v in self.exact.items() if s in keep}), requests,
            MappingProxyType({s: n for s, n in self.notes.items() if s in keep}),
            frozenset(self.bools & keep))


@dataclass(frozen=True, slots=True)
class BrowsedPoint:
    """One point a device offers, as ``smartline browse`` lists it: a tag ready to paste."""

    name: str  # a suggested tag name (dotted, valid in a line file)
    address: str  # in the family's grammar
    access: str = "r"  # "r", "rw" or "w"
    type: str = ""  # the value type, as the device reports it
    unit: str | None = None
    description: str = ""


@dataclass(frozen=True, slots=True)
class BrowseResult:
    """What a device offers: its identity (vendor, model, firmware …) and its points."""

    identity: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))
    points: tuple[BrowsedPoint, ...] = ()
    notes: tuple[str, ...] = ()  # what could not be browsed, and why


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
    demotions: int = 0
    plans: int = 0  # plans compiled (again after each renegotiation)
    pushes: int = 0  # pushed results delivered
    subscriptions: int = 0  # subscriptions active now
    resubscribes: int = 0
    blocking_abandoned: int = 0  # blocking calls given up (timeout or cancel)
    next_attempt_ns: int = 0
    last_error: str = ""

    def as_dict(self) -> dict[str, int | bool | str]:
        return {k: getattr(self, k) for k in self.__slots__}  # type: ignore[attr-defined]


class PushSink(Protocol):
    """Where pushed values go (the line's process image). Called on the event loop."""

    def push(self, result: ReadResult) -> None: ...

    def lost(self, slots: NDArray[np.intp], reason: Reason) -> None:
        """The subscription stopped delivering: the slots' values are STALE until it resumes."""


class Subscription:
    """Points a driver keeps up to date by push, made by :meth:`DriverBase.subscribe`.

    The driver's ``_subscribe`` hook sets the device side up (and may keep its own state
    in ``handle``); as values arrive it calls :meth:`deliver` on the event loop. After a
    reconnect the base class calls ``_subscribe`` again; meanwhile the points are STALE.
    """

    def __init__(self, points: Sequence[Point], sink: PushSink, clock: Clock,
                 health: DeviceHealth | None = None) -> None:
        self.points: tuple[Point, ...] = tuple(points)
        self._health = health
        self.slots: NDArray[np.intp] = np.asarray(
            [s for p in self.points for s in p.slots], np.intp)
        self.sink = sink
        self.clock = clock
        self.active = False
        self.handle: object = None
        self.delivered = 0
        self.by_tag: dict[str, Point] = {p.tag: p for p in self.points}

    def builder(self) -> ResultBuilder:
        """A builder over this subscription's points, stamped with the time of arrival."""
        return ResultBuilder(self.points, self.clock.wall_ns())

    def deliver(self, result: ReadResult) -> None:
        """Hand pushed values to the line (ignored once the subscription is not active)."""
        if not self.active or len(result.slots) == 0:
            return
        self.delivered += 1
        if self._health is not None:
            self._health.pushes += 1
        self.sink.push(result)


@runtime_checkable
class Driver(Protocol):
    """The one small async contract every protocol driver fulfils."""

    family: ClassVar[str]
    spec: DeviceSpec
    health: DeviceHealth

    async def connect(self) -> None: ...

    def plan(self, points: Sequence[Point]) -> ReadPlan[Any]: ...

    async def read(self, plan: ReadPlan[Any]) -> ReadResult: ...

    async def write(self, items: Sequence[WriteItem]) -> None: ...

    async def close(self) -> None: ...

    def stats(self) -> dict[str, object]: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None: ...


@runtime_checkable
class Subscriber(Protocol):
    """The optional push capability (every :class:`DriverBase` has the methods; ``pushes``
    says for which points the device really pushes)."""

    def pushes(self, point: Point) -> bool: ...

    async def subscribe(self, points: Sequence[Point], sink: PushSink) -> Subscription: ...

    async def unsubscribe(self, subscription: Subscription) -> None: ...


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


class DriverBase(ABC, Generic[C, O]):
    """Common behaviour of all drivers; subclasses fill the ``_`` hooks.

    ``C`` is the driver's compiled plan (what ``_plan`` returns), ``O`` its options type
    (``options_type``). Hooks raise smartline errors where they can tell what happened
    (``DeviceError`` for an exception response, ``ProtocolError`` for garbage); anything
    else is wrapped here: ``TimeoutError`` → ``DeviceTimeoutError``, ``OSError`` →
    ``LinkBrokenError``/``ConnectError``. After a communication failure the connection is
    dropped and re-opened on the next use, no sooner than the backoff delay; after
    ``demote_after`` failures in a row the device is only tried every
    ``demote_period_s`` until it answers again.
    """

    family: ClassVar[str] = ""
    options_type: ClassVar[type[Any] | None] = None
    #: the family object (its light module); lets hand-made specs parse URL parameters
    #: exactly as the line loader does. Sets ``family`` and ``options_type`` when given.
    family_plugin: ClassVar[DriverFamily | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        plugin = cls.__dict__.get("family_plugin")
        if isinstance(plugin, DriverFamily):
            if "family" not in cls.__dict__:
                cls.family = plugin.name
            if "options_type" not in cls.__dict__:
                cls.options_type = plugin.options
        overridden = [n for n in _FINAL if n in cls.__dict__]
        if overridden:
            raise TypeError(f"{cls.__qualname__} overrides {', '.join(overridden)} of "
                            "DriverBase: drivers fill the _ hooks instead (see "
                            "docs/how-to/write-a-driver.md)")

    def __init__(self, spec: DeviceSpec, *, clock: Clock | None = None,
                 rng: random.Random | None = None, links: LinkPool | None = None) -> None:
        self.spec = spec
        self.clock: Clock = clock if clock is not None else MonotonicClock()
        self.health = DeviceHealth()
        self.links: LinkPool = links if links is not None else LinkPool()
        #: the shared link this device takes turns on, if any (set by the subclass)
        self.link: SharedLink | None = None
        self.options: O = self._typed_options(spec)
        self._rng = rng if rng is not None else random.Random()
        self._closed = False
        self._connected = False
        self._lock = asyncio.Lock()
        self._epoch = 0
        self._subs: list[Subscription] = []
        self._keeper: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._worker: concurrent.futures.ThreadPoolExecutor | None = None
        self._wire_log = logging.getLogger(f"smartline.wire.{spec.name}")

    def _typed_options(self, spec: DeviceSpec) -> O:
        kind = self.options_type
        given = spec.options
        if kind is None:
            return given  # type: ignore[return-value]
        if isinstance(given, kind):
            return given  # type: ignore[no-any-return]
        if given is not None and not isinstance(given, Mapping):
            raise TypeError(f"options of device {spec.name!r} are a {type(given).__name__}; "
                            f"expected {kind.__name__} or a mapping")
        where = f"devices.{spec.name}"
        merged: dict[str, object] = {}
        table = self._url_params(spec.url.scheme)
        for key, text in spec.url.params.items():
            parse = table.get(key) if table is not None else None
            if parse is None:
                if table is not None:
                    raise ConfigError(ConfigIssue(str(spec.url), f"{where}.url",
                                                  f"unknown URL parameter {key!r}"))
                merged[key] = text  # no family to ask: the options model decides
                continue
            try:
                merged[key] = parse(text)
            except ValueError as exc:
                raise ConfigError(ConfigIssue(str(spec.url), f"{where}.url",
                                              f"URL parameter {key}={text!r}: {exc}")) from None
        merged.update(given or {})
        try:
            validate = getattr(kind, "model_validate", None)
            if validate is not None:
                return validate(merged, strict=False)  # type: ignore[no-any-return]
            return kind(**merged)  # type: ignore[no-any-return]
        except (ValueError, TypeError) as exc:
            raise ConfigError(ConfigIssue(str(spec.url), where,
                                          f"bad options: {exc}")) from None

    def _url_params(self, scheme: str) -> Mapping[str, Any] | None:
        plugin = type(self).family_plugin
        if plugin is None:
            return None
        try:
            return plugin.scheme(scheme).params
        except KeyError:
            return None

    # -- required hooks ------------------------------------------------------------------
    @abstractmethod
    async def _connect(self) -> None:
        """Open the connection (under the device's timeout). Call :meth:`renegotiated`
        if what plans depend on (PDU size, operation limits) differs from before."""

    @abstractmethod
    async def _close(self) -> None:
        """Release the connection; must not raise for an already broken link."""

    @abstractmethod
    def _plan(self, points: Sequence[Point]) -> C:
        """Compile points into the driver's requests (with what the device negotiated)."""

    @abstractmethod
    async def _read(self, plan: ReadPlan[C]) -> ReadResult:
        """Execute a plan (``plan.compiled`` is what ``_plan`` made). Points that fail
        alone are marked BAD in the result; a failure of the whole device raises."""

    @abstractmethod
    async def _write(self, items: Sequence[WriteItem], prepared: Any) -> None:
        """Write raw values; ``prepared`` is what :meth:`_prepare_write` returned."""

    # -- optional hooks ------------------------------------------------------------------
    def _prepare_write(self, items: Sequence[WriteItem]) -> Any:
        """Check and encode a write before any I/O; raise ``WriteRefusedError`` to refuse
        it (the device is not touched and nothing counts as a failure)."""
        return None

    def _pushes(self, point: Point) -> bool:
        """Whether the device pushes this point's values (then the line subscribes)."""
        return False

    async def _subscribe(self, subscription: Subscription) -> None:
        """Set the device side of a subscription up (after every (re)connect)."""
        raise NotImplementedError(f"{type(self).__name__} does not push values")

    async def _unsubscribe(self, subscription: Subscription) -> None:
        """Tear the device side of a subscription down (only while connected)."""
        return None

    def _refine(self, err: SmartlineError, what: str) -> SmartlineError:
        """A chance to replace the error a failed operation ends with (e.g. a timeout
        with garbage on the wire is a protocol error); default: unchanged."""
        return err

    def _stats(self) -> dict[str, object]:
        """Counters of the driver's own, merged into :meth:`stats`."""
        return {}

    async def _browse(self, depth: int) -> BrowseResult:
        """What the device offers (``smartline browse``): identity and points, ``depth``
        levels deep where the device is a tree. Raise ``NotImplementedError`` if the
        protocol cannot tell."""
        raise NotImplementedError(f"{type(self).__name__} cannot browse its device")

    # -- public contract -----------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def plan_epoch(self) -> int:
        """Bumped by :meth:`renegotiated`; plans older than it are compiled again."""
        return self._epoch

    def plan(self, points: Sequence[Point]) -> ReadPlan[C]:
        """Build a read plan; rejects addresses of another protocol family.

        May be called before :meth:`connect`: a plan compiled with defaults is compiled
        again before the first read after the device negotiated something else.
        """
        self._check_family(points)
        self.health.plans += 1
        return ReadPlan(points, self._plan(points), self._epoch)

    async def connect(self) -> None:
        """Connect now (idempotent); raises ``ConnectError``/``DeviceTimeoutError`` on failure."""
        self._check_open()
        if self._connected:
            return
        async with self._turn(), self._lock:
            if not self._connected:
                await self._connect_locked(force=True)

    async def read(self, plan: ReadPlan[C]) -> ReadResult:
        """Execute ``plan``; connects first if needed. Device-level failures raise."""
        self._check_open()
        link = self.link  # the hot path: no context-manager generator per read
        if link is None:
            return await self._guarded("read", self._read_current, plan)
        async with link.turn:
            return await self._guarded("read", self._read_current, plan)

    async def write(self, items: Sequence[WriteItem]) -> None:
        """Write raw values; raises on failure (nothing is retried behind the caller's back).

        A refusal (``WriteRefusedError`` from ``_prepare_write``) is raised before any I/O.
        """
        self._check_open()
        if not items:
            return
        self._check_family([it.point for it in items])
        try:
            prepared = self._prepare_write(items)
        except WriteRefusedError as exc:
            if exc.device is None:
                exc.device = self.spec.name
            raise
        async with self._turn():
            await self._guarded("write", self._write_prepared, (items, prepared))

    async def browse(self, depth: int = 3) -> BrowseResult:
        """What the device offers, for ``smartline browse`` (connects first if needed).

        Runs under the device's turn, lock and a timeout of ten times the device's timeout
        (a browse may take many requests); failures are wrapped like a read's.
        """
        self._check_open()
        async with self._turn():
            return await self._guarded("browse", self._browse, depth,
                                       timeout_s=self.spec.timeout_s * 10)

    def pushes(self, point: Point) -> bool:
        """Whether the device pushes ``point``'s values (the line subscribes, not polls)."""
        return self._pushes(point)

    async def subscribe(self, points: Sequence[Point], sink: PushSink) -> Subscription:
        """Keep ``points`` up to date by push into ``sink`` until :meth:`unsubscribe`.

        Never raises for a device that is down: the subscription is made as soon as the
        device answers (with the usual backoff), and again after every reconnect; its
        points are STALE (``Reason.SUBSCRIPTION_LOST``) while it is not active.
        """
        self._check_open()
        self._check_family(points)
        refused = [p.tag for p in points if not self._pushes(p)]
        if refused:
            raise SmartlineError(f"{self.spec.name} does not push {', '.join(refused)}",
                                 device=self.spec.name)
        sub = Subscription(points, sink, self.clock, self.health)
        self._subs.append(sub)
        if self._connected:
            async with self._turn(), self._lock:
                if self._connected:
                    try:
                        async with asyncio.timeout(self.spec.timeout_s):
                            await self._activate(sub)
                    except Exception as exc:
                        err = self._wrap(exc, "subscribe")
                        await self._drop(err)
                        self._record_failure(err)
        if not sub.active:
            sink.lost(sub.slots, Reason.SUBSCRIPTION_LOST)
        self._ensure_keeper()
        return sub

    async def unsubscribe(self, subscription: Subscription) -> None:
        """Stop a subscription (idempotent)."""
        if subscription not in self._subs:
            return
        self._subs.remove(subscription)
        was = subscription.active
        subscription.active = False
        if was:
            self.health.subscriptions -= 1
        if was and self._connected and not self._closed:
            async with self._turn(), self._lock:
                try:
                    async with asyncio.timeout(self.spec.timeout_s):
                        await self._unsubscribe(subscription)
                except Exception as exc:  # the device side dies with the session anyway
                    log.debug("%s: unsubscribe failed: %r", self.spec.name, exc)

    async def close(self) -> None:
        """Close (idempotent; always leaves the driver closed, even if closing fails)."""
        if self._closed:
            return
        self._closed = True
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await keeper
        await self._drop(ClosedError("driver is closed", device=self.spec.name))
        self._subs.clear()
        if self.link is not None:
            self.link.users.discard(self.spec.name)
        if self._worker is not None:
            self._worker.shutdown(wait=False, cancel_futures=True)
            self._worker = None

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    def stats(self) -> dict[str, object]:
        """Counters for statistics: the health fields and the driver's own (``_stats``)."""
        return {**self.health.as_dict(), **self._stats()}

    def renegotiated(self) -> None:
        """Tell the base class that plans must be compiled again (call from ``_connect``)."""
        self._epoch += 1
        log.debug("%s: renegotiated; plans are compiled again (epoch %d)",
                  self.spec.name, self._epoch)

    def connection_lost(self, exc: BaseException | None = None) -> None:
        """For a driver's own receive loop: the connection died outside any read or write.

        Drops the connection (subscriptions go STALE) and lets the base class reconnect
        with backoff. Call on the event loop.
        """
        if self._closed or not self._connected:
            return
        err = (self._wrap(exc, "receive") if exc is not None
               else LinkBrokenError("connection closed by the device", device=self.spec.name))
        self._record_failure(err)
        task = asyncio.ensure_future(self._drop_now(err))
        task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)

    async def run_blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking library call in this driver's worker thread, off the event loop.

        Calls run one at a time, in order, in one thread per driver (libraries such as
        python-snap7 are not thread-safe per client). The caller's deadline (the
        operation's timeout) applies: when it passes, or the caller is cancelled, the call
        is abandoned — its thread is retired and finishes on its own, and the next call
        gets a fresh thread. A driver must not reuse the library's client after an
        abandoned call: the failure drops the connection and ``_connect`` makes a new one.
        """
        if self._worker is None:
            self._worker = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix=f"smartline-{self.spec.name}")
        worker = self._worker
        future = worker.submit(fn, *args)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            if not future.cancel():  # running: it cannot be stopped, so the thread is retired
                self.health.blocking_abandoned += 1
                if self._worker is worker:
                    self._worker = None
                worker.shutdown(wait=False, cancel_futures=True)
                log.debug("%s: blocking call %s abandoned", self.spec.name,
                          getattr(fn, "__name__", fn))
            raise

    # -- machinery -----------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("driver is closed", device=self.spec.name)

    def _check_family(self, points: Sequence[Point]) -> None:
        for p in points:
            if p.address.family != self.family:
                raise SmartlineError(
                    f"address {p.address.canonical()!r} is a {p.address.family} address; "
                    f"this {self.family} driver cannot use it",
                    device=self.spec.name, tag=p.tag)

    @contextlib.asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        """This device's turn on its shared link (not timed: waiting is not failing)."""
        link = self.link
        if link is None:
            yield
            return
        async with link.turn:
            yield

    async def _write_prepared(self, args: tuple[Sequence[WriteItem], Any]) -> None:
        await self._write(*args)

    async def _read_current(self, plan: ReadPlan[C]) -> ReadResult:
        if plan.epoch != self._epoch:
            plan.compiled = self._plan(plan.points)
            plan.epoch = self._epoch
            self.health.plans += 1
        return await self._read(plan)

    async def _activate(self, sub: Subscription, *, again: bool = False) -> None:
        if sub.active:
            return
        if again:
            self.health.resubscribes += 1
        sub.active = True  # the hook may deliver the current values before it returns
        try:
            await self._subscribe(sub)
        except BaseException:
            sub.active = False
            raise
        self.health.subscriptions += 1

    async def _drop(self, err: SmartlineError | None = None) -> None:
        was = self._connected
        self._connected = False
        self.health.connected = False
        lost = [s for s in self._subs if s.active]
        for sub in lost:
            sub.active = False
            self.health.subscriptions -= 1
        try:
            async with asyncio.timeout(self.spec.timeout_s):
                await self._close()
        except Exception as exc:  # closing a broken link may fail; it is closed regardless
            log.debug("%s: error while closing: %r", self.spec.name, exc)
        if was:
            log.info("%s: disconnected", self.spec.name)
        reason = Reason.CLOSED if isinstance(err, ClosedError) else Reason.SUBSCRIPTION_LOST
        for sub in lost:
            try:
                sub.sink.lost(sub.slots, reason)
            except Exception:
                log.exception("%s: push sink failed", self.spec.name)
        if lost and not self._closed:
            self._poke()

    async def _drop_now(self, err: SmartlineError) -> None:
        async with self._lock:
            if self._connected:
                await self._drop(err)

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
                self._connected = True  # hooks below may read and write
                for sub in self._subs:
                    await self._activate(sub, again=h.connects > 0)
        except asyncio.CancelledError:
            await self._drop()
            raise
        except BaseException as exc:
            self._connected = False
            err = self._wrap(exc, "connect")
            if isinstance(err, LinkBrokenError | ProtocolError):
                err = ConnectError(err.message, device=self.spec.name)
                err.__cause__ = exc
            await self._drop(err)
            self._record_failure(err)
            raise err from exc
        h.connected = True
        h.connects += 1
        log.info("%s: connected to %s", self.spec.name, self.spec.url)

    async def _guarded(self, what: str, call: Callable[[A], Awaitable[T]], arg: A,
                       timeout_s: float | None = None) -> T:
        self._check_open()
        async with self._lock:
            self._check_open()
            h = self.health
            was_demoted = h.demoted
            try:
                if h.demoted and self._connected and self.clock.now_ns() < h.next_attempt_ns:
                    raise self._demoted_error()
                if not self._connected:
                    await self._connect_locked(force=False)
                self._wire_log.debug("%s", what)
                try:
                    async with asyncio.timeout(timeout_s or self.spec.timeout_s):
                        result = await call(arg)
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
                    if self._closed:  # closed under our feet: not a failure of the device
                        raise ClosedError(f"driver closed during {what}",
                                          device=self.spec.name) from exc
                    err = self._refine(self._wrap(exc, what), what)
                    await self._drop(err)
                    self._record_failure(err)
                    raise err from exc
                self._record_success(what)
                return result
            finally:
                if h.demoted and not was_demoted:
                    h.demotions += 1

    def _ensure_keeper(self) -> None:
        if self._keeper is None or self._keeper.done():
            self._wake = asyncio.Event()
            self._keeper = asyncio.ensure_future(self._keep())

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _keep(self) -> None:
        """Re-establish subscriptions after a loss: reconnect with backoff, re-subscribe."""
        assert self._wake is not None
        wake = self._wake
        while not self._closed and self._subs:
            if self._connected and all(s.active for s in self._subs):
                wake.clear()
                await wake.wait()
                continue
            wait_s = max(0.0, (self.health.next_attempt_ns - self.clock.now_ns()) / 1e9)
            if wait_s:
                wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait_s):
                        await wake.wait()
                continue
            try:
                async with self._turn(), self._lock:
                    if self._closed:
                        return
                    if not self._connected:
                        await self._connect_locked(force=True)
                    else:
                        for sub in [s for s in self._subs if not s.active]:
                            async with asyncio.timeout(self.spec.timeout_s):
                                await self._activate(sub, again=True)
            except SmartlineError as exc:
                log.debug("%s: re-subscribing failed: %s", self.spec.name, exc)
            except Exception as exc:  # a driver bug must not end the keeper silently
                err = self._wrap(exc, "subscribe")
                await self._drop(err)
                self._record_failure(err)

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
