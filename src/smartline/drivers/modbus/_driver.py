"""Modbus TCP, RTU and RTU-over-TCP drivers on pymodbus (async).

A driver is one device (one unit id) and fills the hooks of
:class:`smartline.core.DriverBase`. Devices on the same physical link share one pymodbus
client (a :class:`ModbusLink` from the line's :class:`smartline.core.LinkPool`) and take
turns on it; the driver plans its reads with :func:`plan_reads`, decodes every block of a
plan in one vectorised pass, splits around holes the device reports, and coalesces writes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray
from pymodbus.pdu import ModbusPDU

from ...core import (
    BrowsedPoint,
    BrowseResult,
    Clock,
    ConfigError,
    ConfigIssue,
    DeviceError,
    DeviceSpec,
    DeviceTimeoutError,
    DriverBase,
    DriverFamily,
    LinkBrokenError,
    LinkPool,
    Point,
    ProtocolError,
    Quality,
    ReadPlan,
    ReadResult,
    Reason,
    SmartlineError,
    WriteItem,
    WriteRefusedError,
)
from ...tags import ModbusAddress
from ...tags.codec import BitLayout, RegisterLayout, encode_bits, encode_registers
from ..families.modbus import FAMILY, ModbusOptions, check_modbus
from ._link import LinkKey, ModbusLink, SerialParams, silence_s
from ._planner import (
    READ_FC,
    HoleMemory,
    ModbusLimits,
    PlanError,
    ReadRequest,
    WriteChunk,
    WriteRequest,
    plan_reads,
    plan_writes,
)

__all__ = [
    "EXCEPTION_NAMES",
    "ModbusDriver",
    "ModbusGatewayError",
    "ModbusReadPlan",
    "ModbusRtuDriver",
    "ModbusRtuOverTcpDriver",
    "ModbusTcpDriver",
]

log = logging.getLogger(__name__)

#: Modbus exception codes and their names (Modbus Application Protocol v1.1b3, §7).
EXCEPTION_NAMES: Mapping[int, str] = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}
_GATEWAY_CODES = frozenset({10, 11})
_NO_BITS: NDArray[np.uint8] = np.zeros(0, dtype=np.uint8)
_READ_METHODS = {1: "read_coils", 2: "read_discrete_inputs", 3: "read_holding_registers",
                 4: "read_input_registers"}


class ModbusGatewayError(DeviceTimeoutError):
    """A gateway answered exception 10/11: the device behind it is unreachable.

    It counts as a failure of the device (backoff, demotion) — unlike other exception
    responses, which prove the device is alive. ``code`` is the exception code.
    """

    def __init__(self, message: str, *, code: int, device: str | None = None) -> None:
        super().__init__(message, device=device)
        self.code = code


def exception_error(code: int, what: str, device: str | None = None) -> SmartlineError:
    """The smartline error for a Modbus exception response."""
    name = EXCEPTION_NAMES.get(code, "unknown exception")
    message = f"{what}: exception {code} ({name})"
    if code in _GATEWAY_CODES:
        return ModbusGatewayError(message, code=code, device=device)
    return DeviceError(message, code=code, device=device)


# -- the read plan ------------------------------------------------------------------------------

@dataclasses.dataclass(slots=True)
class _Unit:
    """Atoms with one wire range inside one request, and the result positions they feed."""

    start: int
    end: int
    positions: list[int]


class ModbusReadPlan:
    """A Modbus driver's compiled plan (``ReadPlan.compiled``): the requests for a set of
    points, with the decoding layouts built once.

    The driver re-plans it in place when it learns a new hole (``holes_version``).
    """

    def __init__(self, points: Sequence[Point], limits: ModbusLimits, holes: HoleMemory) -> None:
        self.points: tuple[Point, ...] = tuple(points)
        self.slots: NDArray[np.intp] = np.asarray([s for p in self.points for s in p.slots],
                                                  dtype=np.intp)
        items: list[tuple[Point, ModbusAddress]] = []
        for p in self.points:
            if not isinstance(p.address, ModbusAddress):
                raise SmartlineError(f"{p.address!r} is not a Modbus address", tag=p.tag)
            items.append((p, p.address))
        self.items = items
        self.limits = limits
        first = np.cumsum([0] + [p.address.elements for p in self.points])
        self.first_pos: list[int] = [int(x) for x in first[:-1]]
        self.holes_version = -1
        self.requests: list[ReadRequest] = []
        self.build(holes)

    @property
    def request_count(self) -> int:
        return len(self.requests)

    def build(self, holes: HoleMemory) -> None:
        """(Re-)plan against the device's known holes and rebuild the decoding layouts."""
        self.holes_version = holes.version
        self.requests = plan_reads(self.items, self.limits, holes)
        reg_items: list[tuple[int, ModbusAddress, int]] = []
        bit_items: list[tuple[int, ModbusAddress, int]] = []
        self.offsets: list[int] = []  # offset of each request in its buffer
        self.units: list[list[_Unit]] = []
        covered = np.zeros(len(self.slots), dtype=bool)
        n_regs = n_bits = 0
        for req in self.requests:
            is_bits = req.area in ("co", "di")
            base = n_bits if is_bits else n_regs
            self.offsets.append(base)
            units: dict[tuple[int, int], _Unit] = {}
            for piece in req.pieces:
                point, addr = self.items[piece.item]
                sub = addr
                if addr.count is not None and (piece.first or piece.count != addr.count):
                    width = 1 if is_bits else addr.registers_per_element
                    sub = dataclasses.replace(addr, offset=addr.offset + piece.first * width,
                                              count=piece.count)
                slot = point.slot + piece.first
                (bit_items if is_bits else reg_items).append((slot, sub, base + piece.offset))
                pos0 = self.first_pos[piece.item] + piece.first
                if is_bits:
                    atom_len = 1
                elif addr.count is not None:
                    atom_len = addr.registers_per_element
                else:
                    atom_len = addr.registers
                for k in range(piece.count):
                    s = req.start + piece.offset + k * atom_len
                    u = units.setdefault((s, s + atom_len), _Unit(s, s + atom_len, []))
                    u.positions.append(pos0 + k)
                    covered[pos0 + k] = True
            self.units.append(sorted(units.values(), key=lambda u: (u.start, u.end)))
            if is_bits:
                n_bits += req.count
            else:
                n_regs += req.count
        self.n_registers, self.n_bits = n_regs, n_bits
        self.dead: NDArray[np.intp] = np.flatnonzero(~covered).astype(np.intp)
        self.reg_layout = RegisterLayout(reg_items) if reg_items else None
        self.bit_layout = BitLayout(bit_items) if bit_items else None
        self.reg_pos = self._positions(self.reg_layout)
        self.bit_pos = self._positions(self.bit_layout)
        self.reg_identity = bool(len(self.reg_pos) == len(self.slots) and
                                 (self.reg_pos == np.arange(len(self.slots))).all())

    def _positions(self, layout: RegisterLayout | BitLayout | None) -> NDArray[np.intp]:
        if layout is None:
            return np.zeros(0, dtype=np.intp)
        order = np.argsort(self.slots, kind="stable")
        sorted_slots = self.slots[order]
        idx = np.searchsorted(sorted_slots, np.asarray(layout.slots, dtype=np.intp))
        return order[idx].astype(np.intp)


# -- the drivers -------------------------------------------------------------------------------

_PREPARED = tuple[list[WriteChunk], dict[int, tuple[int, int, list[str]]]]
"""A write made ready before any I/O: register/coil chunks, and bits of registers by register."""


class ModbusDriver(DriverBase[ModbusReadPlan, ModbusOptions]):
    """Common Modbus behaviour; use :class:`ModbusTcpDriver`, :class:`ModbusRtuDriver`
    or :class:`ModbusRtuOverTcpDriver` (the URL scheme picks one through the registry).

    Options: :class:`~smartline.drivers.families.modbus.ModbusOptions` (``self.options``),
    validated by the line loader from the device's keys, its profile's defaults and its
    URL's parameters (``?unit=``, the serial settings); a spec made by hand may give a
    mapping instead. Devices with the same link key share one :class:`ModbusLink` from
    ``links`` (the line's :class:`~smartline.core.LinkPool`; without one, a private pool).
    """

    family_plugin: ClassVar[DriverFamily | None] = FAMILY
    family: ClassVar[str] = "modbus"
    options_type: ClassVar[type[ModbusOptions]] = ModbusOptions
    kind: ClassVar[str] = ""
    scheme: ClassVar[str] = ""
    #: ``smartline browse``: at most this many requests (identification and probes) …
    browse_max_requests: int = 300
    #: … probing addresses 0 .. browse_span - 1 of every area
    browse_span: int = 10_000

    def __init__(self, spec: DeviceSpec, *, clock: Clock | None = None,
                 rng: random.Random | None = None, links: LinkPool | None = None) -> None:
        super().__init__(spec, clock=clock, rng=rng, links=links)
        opts = self.options
        problems = check_modbus(self.scheme, opts)
        if problems:  # a hand-made spec (the line loader reports these with their location)
            key, message = problems[0]
            raise ConfigError(ConfigIssue(str(spec.url), f"devices.{spec.name}.{key}", message))
        self.unit = opts.unit
        self.limits = ModbusLimits(
            max_registers=opts.max_registers, max_bits=opts.max_bits, max_gap=opts.max_gap,
            max_bit_gap=opts.bit_gap, max_write_registers=opts.max_write_registers,
            max_write_bits=opts.max_write_bits)
        self.write_multiple_only = opts.write_multiple_only
        self.holes = HoleMemory()
        self.link: ModbusLink = self._join_link()
        self._broken = False
        self._requests_last = 0
        self._exceptions: dict[int, int] = {}
        self._planned = 0

    # -- link ---------------------------------------------------------------------------------
    def _join_link(self) -> ModbusLink:
        """This device's link from the pool; settings must agree with the link's other users."""
        url = self.spec.url
        opts = self.options
        tag = "" if opts.share_connection else self.spec.name
        inter_ms = opts.inter_frame_ms
        serial: SerialParams | None = None
        if self.kind == "rtu":
            serial = SerialParams(baudrate=opts.baudrate, parity=opts.parity,
                                  stopbits=opts.stopbits, bytesize=opts.bytesize)
            inter = silence_s(serial) if inter_ms is None else inter_ms / 1e3
            key = LinkKey("rtu", url.path, tag)
            host, port = "", 0
        else:
            inter = 0.0 if inter_ms is None else inter_ms / 1e3
            host = url.host or "127.0.0.1"
            port = url.port or 502
            key = LinkKey(self.kind, f"{host}:{port}", tag)
        made: list[ModbusLink] = []

        def make() -> ModbusLink:
            made.append(ModbusLink(key, host=host, port=port, serial=serial,
                                   inter_frame_s=inter))
            return made[0]

        link = self.links.get(key, ModbusLink, make)
        if not made:
            try:
                link.join(serial, inter)
            except ValueError as exc:  # `smartline check` reports this with its location
                raise ConfigError(ConfigIssue(str(url), f"devices.{self.spec.name}.url",
                                              str(exc))) from None
        return link

    def forget_holes(self) -> None:
        """Forget the holes learnt so far (plans re-probe them on their next read)."""
        self.holes.clear()

    # -- hooks ------------------------------------------------------------------------------------
    def _stats(self) -> dict[str, object]:
        """Modbus counters for the cycle statistics and ``smartline run``."""
        return {
            "unit": self.unit,
            "link": str(self.link.key),
            "link_users": len(self.link.users),
            "planned_requests": self._planned,
            "requests_per_cycle": self._requests_last,
            "holes": len(self.holes),
            "hole_ranges": {a: [list(r) for r in rs] for a, rs in self.holes.as_mapping().items()},
            "exceptions": dict(self._exceptions),
            "bad_frames": self.link.frames_bad,
        }

    async def _browse(self, depth: int) -> BrowseResult:
        """Device identification (FC 43 / MEI 14) and the register ranges that answer.

        See :class:`_Prober` for how ranges are probed within :attr:`browse_max_requests`
        requests; each answering range becomes one point (``hr_0_99`` →
        ``hr:0:uint16[100]``). ``depth`` does not apply (Modbus is flat).
        """
        await self._rejoin()
        loop = asyncio.get_running_loop()
        # stay inside browse()'s own deadline (ten device timeouts), with a margin
        deadline = loop.time() + max(self.spec.timeout_s, 8 * self.spec.timeout_s)
        prober = _Prober(self, max(1, self.browse_max_requests), deadline)
        identity: dict[str, object] = {"protocol": f"Modbus ({self.scheme})", "unit": self.unit}
        identity.update(await prober.identify())
        ranges = await prober.probe(max(1, self.browse_span))
        points = [_range_point(area, start, end) for area, start, end in ranges]
        notes = [*prober.notes, f"{prober.sent} request(s) sent"]
        return BrowseResult(identity=identity, points=tuple(points), notes=tuple(notes))

    def _refine(self, err: SmartlineError, what: str) -> SmartlineError:
        """A timeout with bytes but no valid frame on the wire is a protocol error."""
        problem, self.link.cut_short = self.link.cut_short, None
        if (problem is None or not isinstance(err, DeviceTimeoutError)
                or isinstance(err, ModbusGatewayError)):
            return err
        return ProtocolError(problem, device=self.spec.name)

    async def _connect(self) -> None:
        await self.link.open(self.spec.name)

    async def _close(self) -> None:
        broken, self._broken = self._broken, False
        await self.link.release(self.spec.name, broken=broken)

    async def _rejoin(self) -> None:
        """Re-open the shared link if another device on it closed it (its garbage, its
        broken connection, or the pool being closed): the link being down is no failure of
        this device. A link that cannot be re-opened raises ``ConnectError`` as usual."""
        if not self.link.connected:
            log.debug("%s: link %s was closed by another user; re-opening it",
                      self.spec.name, self.link.key)
            await self.link.open(self.spec.name)

    def _plan(self, points: Sequence[Point]) -> ModbusReadPlan:
        plan = ModbusReadPlan(points, self.limits, self.holes)
        self._planned = plan.request_count
        return plan

    async def _read(self, whole: ReadPlan[ModbusReadPlan]) -> ReadResult:
        plan = whole.compiled
        if not isinstance(plan, ModbusReadPlan):
            raise SmartlineError("this plan was not made by a Modbus driver",
                                 device=self.spec.name)
        self.link.cut_short = None
        if plan.holes_version != self.holes.version:
            plan.build(self.holes)
            self._planned = plan.request_count
        n = len(plan.slots)
        quality = np.zeros(n, dtype=np.uint8)
        reason = np.zeros(n, dtype=np.uint8)
        regs = np.empty(plan.n_registers, dtype=np.uint16)  # a failed request's part is BAD
        bits = np.zeros(plan.n_bits, dtype=np.uint8) if plan.n_bits else _NO_BITS
        read = _PlanRead(self, plan, regs=regs, bits=bits, quality=quality, reason=reason)
        try:
            await self._rejoin()
            for index, req in enumerate(plan.requests):
                await read.request(index, req)
        except BaseException as exc:
            self._note_failure(exc)
            raise
        finally:
            self._requests_last = read.sent
            self.health.requests += read.sent
        texts: dict[int, str] = {}
        exact: dict[int, int] = {}
        if plan.reg_layout is not None:
            values, texts, exact = plan.reg_layout.decode(regs)
            if plan.bit_layout is None and plan.reg_identity:
                raw = values  # every point is a register value, in plan order
            else:
                raw = np.full(n, np.nan)
                raw[plan.reg_pos] = values
        else:
            raw = np.full(n, np.nan)
        if plan.bit_layout is not None:
            values, _, _ = plan.bit_layout.decode(bits)
            raw[plan.bit_pos] = values
        nan = np.isnan(raw)
        if read.failed or len(plan.dead) or nan.any():
            if len(plan.dead):
                quality[plan.dead] = Quality.BAD
                reason[plan.dead] = Reason.DEVICE_ERROR
            nan &= quality == Quality.GOOD  # NaN floats, non-ASCII strings
            quality[nan] = Quality.BAD
            reason[nan] = Reason.DECODE_ERROR
            bad = quality != Quality.GOOD
            raw[bad] = np.nan
            if texts or exact:
                for pos in np.flatnonzero(bad).tolist():
                    texts.pop(int(plan.slots[pos]), None)
                    exact.pop(int(plan.slots[pos]), None)
        if plan.holes_version != self.holes.version:
            plan.build(self.holes)  # learnt a hole: the next read goes around it
            self._planned = plan.request_count
        return ReadResult(slots=plan.slots, raw=raw, quality=quality, reason=reason,
                          received_ns=self.clock.wall_ns(), texts=texts, exact=exact,
                          requests=read.sent)

    def _note_failure(self, exc: BaseException) -> None:
        """Decide whether the link must be re-opened after ``exc``."""
        if isinstance(exc, TimeoutError):
            return  # a silent device, not a broken link (TimeoutError is an OSError)
        if isinstance(exc, ProtocolError):
            if self.kind == "tcp":
                self._broken = True  # the TCP stream is out of step: start afresh
            return
        if isinstance(exc, LinkBrokenError) or (
                isinstance(exc, OSError) and not isinstance(exc, SmartlineError)):
            self._broken = True

    async def wire_read(self, area: str, start: int, count: int, *, raw: bool = False
                        ) -> list[int] | list[bool] | NDArray[np.uint16]:
        """One read request on the wire; exception responses raise (see :func:`exception_error`).

        With ``raw``, registers come back as a uint16 array taken from the frame's bytes.
        """
        fc = READ_FC[area]
        unit = self.unit
        method = _READ_METHODS[fc]

        def send(client: Any) -> Awaitable[ModbusPDU]:
            return getattr(client, method)(start, count=count, device_id=unit)  # type: ignore[no-any-return]

        pdu = await self.link.call(unit, fc, send)
        if pdu.isError():
            code = int(getattr(pdu, "exception_code", 0))
            self._exceptions[code] = self._exceptions.get(code, 0) + 1
            raise exception_error(code, f"read {area}:{start}+{count}", self.spec.name)
        if fc > 2:
            if raw:
                data = self.link.register_bytes(pdu, count)
                if data is not None:
                    return np.frombuffer(data, dtype=">u2")
            words: list[int] = list(pdu.registers)
            if len(words) != count:
                raise ProtocolError(f"read {area}:{start}+{count}: {len(words)} registers "
                                    "in the answer")
            return words
        got = pdu.bits
        if len(got) < count:
            raise ProtocolError(f"read {area}:{start}+{count}: {len(got)} bits in the answer")
        return [bool(b) for b in got[:count]]

    async def _wire_write(self, req: WriteRequest) -> None:
        unit = self.unit
        fc = req.function_code
        values: Any = list(req.values)
        start = req.start
        send: Callable[[Any], Awaitable[ModbusPDU]]
        if fc == 5:
            def send(c: Any) -> Awaitable[ModbusPDU]:
                return c.write_coil(start, bool(values[0]), device_id=unit)  # type: ignore[no-any-return]
        elif fc == 6:
            def send(c: Any) -> Awaitable[ModbusPDU]:
                return c.write_register(start, int(values[0]), device_id=unit)  # type: ignore[no-any-return]
        elif fc == 15:
            def send(c: Any) -> Awaitable[ModbusPDU]:
                return c.write_coils(start, values, device_id=unit)  # type: ignore[no-any-return]
        else:
            def send(c: Any) -> Awaitable[ModbusPDU]:
                return c.write_registers(start, values, device_id=unit)  # type: ignore[no-any-return]
        pdu = await self.link.call(unit, fc, send)
        self.health.requests += 1
        if pdu.isError():
            code = int(getattr(pdu, "exception_code", 0))
            self._exceptions[code] = self._exceptions.get(code, 0) + 1
            tags = ", ".join(req.tags)
            raise exception_error(code, f"write {req.area}:{start}+{req.count} ({tags})",
                                  self.spec.name)

    def _prepare_write(self, items: Sequence[WriteItem]) -> _PREPARED:
        """Encode the values, collect the bits of registers, and check that the requests
        can be planned: any refusal raises here, before any I/O or failure count."""
        chunks = self._chunks(items)
        masks = self._bit_writes(items)
        try:
            plan_writes(chunks, self.limits, single_as_multiple=self.write_multiple_only)
        except PlanError as exc:
            raise WriteRefusedError(exc.message, tag=exc.tag) from exc
        return chunks, masks

    async def _write(self, items: Sequence[WriteItem], prepared: _PREPARED | None) -> None:
        if prepared is None:  # called directly, not through write()
            prepared = self._prepare_write(items)
        chunks, masks = list(prepared[0]), prepared[1]
        self.link.cut_short = None
        try:
            await self._rejoin()
            if masks:
                chunks.extend(await self._merge_bits(masks))
            for req in plan_writes(chunks, self.limits,
                                   single_as_multiple=self.write_multiple_only):
                await self._wire_write(req)
        except BaseException as exc:
            self._note_failure(exc)
            raise

    def _chunks(self, items: Sequence[WriteItem]) -> list[WriteChunk]:
        chunks: list[WriteChunk] = []
        for it in items:
            addr = it.point.address
            if not isinstance(addr, ModbusAddress):
                raise WriteRefusedError(f"{addr!r} is not a Modbus address", tag=it.point.tag)
            if not addr.writable_area:
                raise WriteRefusedError(f"{addr.canonical()} is read-only: only coils and "
                                        "holding registers can be written", tag=it.point.tag)
            if addr.bit is not None:
                continue
            try:
                if addr.is_bit_area:
                    bit_values = tuple(bool(b) for b in encode_bits(addr, it.value))
                    chunks.append(WriteChunk(addr.area, addr.offset, bit_values, 1, it.point.tag))
                else:
                    words = tuple(int(w) for w in encode_registers(addr, it.value))
                    unit = len(words) if addr.is_text else addr.registers_per_element
                    chunks.append(WriteChunk(addr.area, addr.offset, words, unit, it.point.tag))
            except (ValueError, TypeError) as exc:
                raise WriteRefusedError(f"cannot encode {it.value!r} as {addr.canonical()}: "
                                        f"{exc}", tag=it.point.tag) from exc
        return chunks

    @staticmethod
    def _bit_writes(items: Sequence[WriteItem]) -> dict[int, tuple[int, int, list[str]]]:
        """Bits in holding registers: register → (mask of bits to change, their values, tags)."""
        masks: dict[int, tuple[int, int, list[str]]] = {}
        for it in items:
            addr = it.point.address
            if isinstance(addr, ModbusAddress) and addr.bit is not None:
                if not isinstance(it.value, bool | int) or int(it.value) not in (0, 1):
                    raise WriteRefusedError(f"expected a bool for {addr.canonical()}, found "
                                            f"{it.value!r}", tag=it.point.tag)
                mask, value, tags = masks.get(addr.offset, (0, 0, []))
                bit = 1 << addr.bit
                value = (value | bit) if it.value else (value & ~bit)
                masks[addr.offset] = (mask | bit, value, [*tags, it.point.tag])
        return masks

    async def _merge_bits(self, masks: Mapping[int, tuple[int, int, list[str]]]
                          ) -> list[WriteChunk]:
        """Read-modify-write of the registers that hold bits to write (not atomic on the device)."""
        chunks: list[WriteChunk] = []
        offsets = sorted(masks)
        runs: list[list[int]] = []
        for off in offsets:
            if runs and off - runs[-1][0] < self.limits.max_registers and \
                    off - runs[-1][-1] <= self.limits.max_gap + 1:
                runs[-1].append(off)
            else:
                runs.append([off])
        for run in runs:
            current = await self.wire_read("hr", run[0], run[-1] - run[0] + 1)
            self.health.requests += 1
            for off in run:
                mask, value, tags = masks[off]
                word = (int(current[off - run[0]]) & ~mask) | (value & mask)
                chunks.append(WriteChunk("hr", off, (word & 0xFFFF,), 1, ",".join(tags)))
        return chunks


class _PlanRead:
    """One execution of a plan: requests, hole splitting and failure marking."""

    def __init__(self, driver: ModbusDriver, plan: ModbusReadPlan, *, regs: NDArray[np.uint16],
                 bits: NDArray[np.uint8], quality: NDArray[np.uint8], reason: NDArray[np.uint8],
                 ) -> None:
        self.d = driver
        self.plan = plan
        self.regs = regs
        self.bits = bits
        self.quality = quality
        self.reason = reason
        self.sent = 0
        self.failed = False

    def _mark(self, positions: Sequence[int], why: Reason) -> None:
        self.failed = True
        if positions:
            idx = np.asarray(positions, dtype=np.intp)
            self.quality[idx] = Quality.BAD
            self.reason[idx] = why

    async def request(self, index: int, req: ReadRequest) -> None:
        base = self.plan.offsets[index]
        self.sent += 1
        try:
            if req.area in ("co", "di"):
                self.bits[base:base + req.count] = await self.d.wire_read(
                    req.area, req.start, req.count)
            else:
                self.regs[base:base + req.count] = await self.d.wire_read(
                    req.area, req.start, req.count, raw=True)
        except DeviceError as exc:
            units = self.plan.units[index]
            if exc.code == 2 and len(units) > 1:
                await self._split(req, base, units)
                return
            if exc.code == 2:
                self._hole(req.area, units[0].start, units[0].end, units)
            self._fail(units, exc)

    async def _fetch(self, req: ReadRequest, base: int, start: int, end: int) -> None:
        self.sent += 1
        at = base + start - req.start
        count = end - start
        if req.area in ("co", "di"):
            self.bits[at:at + count] = await self.d.wire_read(req.area, start, count)
            return
        self.regs[at:at + count] = await self.d.wire_read(req.area, start, count, raw=True)

    def _fail(self, units: Sequence[_Unit], exc: DeviceError) -> None:
        self.d.health.last_error = exc.message
        self._mark([p for u in units for p in u.positions], Reason.DEVICE_ERROR)

    def _hole(self, area: str, start: int, end: int, units: Sequence[_Unit]) -> None:
        if self.d.holes.add(area, start, end):
            tags = sorted({self.plan.points[self._point_of(p)].tag
                           for u in units for p in u.positions})
            log.warning("%s: %s:%d..%d answer 'illegal data address'; tags %s are BAD "
                        "(DEVICE_ERROR) and later reads leave these addresses out",
                        self.d.spec.name, area, start, end - 1, ", ".join(tags))

    def _point_of(self, position: int) -> int:
        first = self.plan.first_pos
        lo, hi = 0, len(first) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if first[mid] <= position:
                lo = mid
            else:
                hi = mid - 1
        return lo

    async def _split(self, req: ReadRequest, base: int, units: list[_Unit]) -> None:
        """A merged request hit a hole: read the parts, find the hole, remember it."""
        ok: list[tuple[int, int]] = []
        clean = await self._bisect(req, base, units, ok)
        if not clean:
            return
        # what was refused, read by no part, and part of no tag: the hole(s) in the gaps
        covered = [(u.start, u.end)
                   for r, us in zip(self.plan.requests, self.plan.units, strict=True)
                   if r.area == req.area for u in us]
        pos = req.start
        gaps: list[tuple[int, int]] = []
        for s, e in sorted(ok + covered):
            if e <= pos:
                continue
            if s > pos:
                gaps.append((pos, min(s, req.end)))
            pos = max(pos, e)
            if pos >= req.end:
                break
        for s, e in gaps:
            if s < e and self.d.holes.add(req.area, s, e):
                log.warning("%s: reading %s:%d..%d answers 'illegal data address' while its "
                            "parts answer: %s:%d..%d is a hole; later reads go around it "
                            "(no tag lost)", self.d.spec.name, req.area, req.start, req.end - 1,
                            req.area, s, e - 1)

    async def _bisect(self, req: ReadRequest, base: int, units: list[_Unit],
                      ok: list[tuple[int, int]]) -> bool:
        """Read ``units`` in two halves (split at the widest gap), recursively.

        Returns False if some part failed for another reason than a hole (then no gap
        is blamed).
        """
        clean = True
        for half in _halves(units):
            start, end = half[0].start, max(u.end for u in half)
            try:
                await self._fetch(req, base, start, end)
                ok.append((start, end))
            except DeviceError as exc:
                if exc.code != 2:
                    self._fail(half, exc)
                    clean = False
                elif len(half) > 1:
                    clean = await self._bisect(req, base, half, ok) and clean
                else:
                    self._hole(req.area, start, end, half)
                    self._fail(half, exc)
        return clean


#: FC 43 / MEI 14 object ids → names (Modbus Application Protocol v1.1b3, §6.21)
IDENTIFICATION_NAMES: Mapping[int, str] = {
    0x00: "VendorName", 0x01: "ProductCode", 0x02: "MajorMinorRevision", 0x03: "VendorUrl",
    0x04: "ProductName", 0x05: "ModelName", 0x06: "UserApplicationName",
}
_AREA_WORDS = {"hr": "holding registers", "ir": "input registers", "co": "coils",
               "di": "discrete inputs"}


class _RefusedError(Exception):
    """A probe answered an exception (``code``)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class _StopProbingError(Exception):
    """Probing ends here (budget, time or a silent device); the message says why."""


class _Prober:
    """``smartline browse`` for Modbus: identification, then which addresses answer.

    Per area (hr, ir, co, di) it walks up from address 0: a full-size read that answers
    is an answering range; one refused with exception 2 is bisected to the longest prefix
    that answers; past a refused address it tries single addresses at growing steps (1, 2,
    4 …) and bisects back to where answers start again. So a map costs a few requests per
    block plus one per max-size chunk, an empty area about log2(span) — but a small island
    inside a large gap may be stepped over. Exception 1 skips the area; exception 3 to a
    full-size read halves the request size. Every request counts against ``budget``; what
    was not probed is said in :attr:`notes`.
    """

    def __init__(self, driver: ModbusDriver, budget: int, deadline: float) -> None:
        self.d = driver
        self.budget = budget
        self.deadline = deadline
        self.sent = 0
        self.answered = False  # anything at all came back (a silent device fails browse)
        self.at = 0  # where probing of the current area is
        self.notes: list[str] = []

    async def _call(self, fc: int, send: Callable[[Any], Awaitable[ModbusPDU]]) -> ModbusPDU:
        if self.sent >= self.budget:
            raise _StopProbingError(f"stopped after {self.sent} requests (--max-requests)")
        if asyncio.get_running_loop().time() + self.d.spec.timeout_s > self.deadline:
            raise _StopProbingError(f"stopped after {self.sent} requests: out of time")
        self.sent += 1
        self.d.health.requests += 1
        try:
            async with asyncio.timeout(self.d.spec.timeout_s):
                pdu = await self.d.link.call(self.d.unit, fc, send)
        except TimeoutError:
            # start afresh: a late answer must not be taken for the next request's
            await self.d.link.release(self.d.spec.name, broken=True)
            await self.d.link.open(self.d.spec.name)
            if not self.answered:
                raise DeviceTimeoutError(
                    f"no answer from unit {self.d.unit} within {self.d.spec.timeout_s:g} s",
                    device=self.d.spec.name) from None
            raise _StopProbingError(f"stopped after {self.sent} requests: a request got no answer "
                        f"within {self.d.spec.timeout_s:g} s") from None
        self.answered = True
        if pdu.isError():
            code = int(getattr(pdu, "exception_code", 0))
            if code in _GATEWAY_CODES:
                raise exception_error(code, "browse", self.d.spec.name)
            raise _RefusedError(code)
        return pdu

    # -- identification -------------------------------------------------------------------
    async def identify(self) -> dict[str, object]:
        """FC 43 / MEI 14, regular stream (basic + regular objects), following MoreFollows;
        a device that refuses the regular stream is asked for the basic one."""
        found: dict[str, object] = {}
        for read_code in (2, 1):
            try:
                found = await self._stream(read_code)
            except _RefusedError as exc:
                if exc.code == 3 and read_code == 2:
                    continue  # basic identification only
                name = EXCEPTION_NAMES.get(exc.code, "unknown exception")
                self.notes.append(f"no device identification: FC 43 answered exception "
                                  f"{exc.code} ({name})")
            except _StopProbingError as exc:
                self.notes.append(f"no device identification: {exc}")
            except DeviceTimeoutError as exc:  # some devices ignore unknown function codes
                self.notes.append(f"no device identification: FC 43 got {exc.message}")
            break
        return found

    async def _stream(self, read_code: int) -> dict[str, object]:
        unit = self.d.unit
        objects: dict[int, bytes] = {}
        object_id = 0
        for _ in range(16):  # a device that keeps saying "more" is not followed forever
            def send(c: Any, oid: int = object_id) -> Awaitable[ModbusPDU]:
                return c.read_device_information(  # type: ignore[no-any-return]
                    read_code=read_code, object_id=oid, device_id=unit)

            pdu = await self._call(43, send)
            info = getattr(pdu, "information", {}) or {}
            for oid, value in info.items():
                first = value[0] if isinstance(value, list) else value
                objects.setdefault(int(oid), bytes(first))
            nxt = int(getattr(pdu, "next_object_id", 0))
            if int(getattr(pdu, "more_follows", 0)) != 0xFF or nxt <= object_id:
                break
            object_id = nxt
        return {IDENTIFICATION_NAMES.get(oid, f"object_0x{oid:02x}"):
                data.decode("utf-8", "replace").strip("\x00 ")
                for oid, data in sorted(objects.items())}

    # -- ranges ---------------------------------------------------------------------------
    async def probe(self, span: int) -> list[tuple[str, int, int]]:
        """The answering ranges ``(area, start, end)`` of every area within ``span``."""
        found: list[tuple[str, int, int]] = []
        areas = ("hr", "ir", "co", "di")
        for i, area in enumerate(areas):
            self.at = 0
            try:
                await self._area(area, span, found)
            except _StopProbingError as exc:
                rest = ", ".join(areas[i + 1:])
                self.notes.append(f"{exc}: {area} not probed from {self.at} on"
                                  f"{'; ' + rest + ' not probed' if rest else ''}")
                break
            except _RefusedError as exc:
                name = EXCEPTION_NAMES.get(exc.code, "unknown exception")
                self.notes.append(f"{_AREA_WORDS[area]} ({area}): probing stopped at "
                                  f"{self.at}: exception {exc.code} ({name})")
        return found

    async def _read(self, area: str, start: int, count: int) -> None:
        fc = READ_FC[area]
        method = _READ_METHODS[fc]
        unit = self.d.unit

        def send(c: Any) -> Awaitable[ModbusPDU]:
            return getattr(c, method)(start, count=count, device_id=unit)  # type: ignore[no-any-return]

        await self._call(fc, send)

    async def _answers(self, area: str, start: int, count: int) -> bool:
        """Whether reading ``count`` from ``start`` answers; exception 2 (or 3) → False."""
        try:
            await self._read(area, start, count)
        except _RefusedError as exc:
            if exc.code in (2, 3):
                return False
            raise
        return True

    async def _area(self, area: str, span: int, found: list[tuple[str, int, int]]) -> None:
        size = self.d.limits.max_bits if area in ("co", "di") else self.d.limits.max_registers
        pos = 0
        run_start: int | None = None  # an answering run still growing
        try:
            while pos < span:
                n = min(size, span - pos)
                try:
                    await self._read(area, pos, n)
                except _RefusedError as exc:
                    if exc.code == 1:
                        self.notes.append(f"{_AREA_WORDS[area]} ({area}): not supported "
                                          "(exception 1, illegal function)")
                        return
                    if exc.code == 3 and n > 1 and n == size:
                        size = max(1, size // 2)  # the device takes smaller requests
                        continue
                    if exc.code not in (2, 3):
                        name = EXCEPTION_NAMES.get(exc.code, "unknown exception")
                        self.notes.append(f"{_AREA_WORDS[area]} ({area}): probing stopped "
                                          f"at {pos}: exception {exc.code} ({name})")
                        return
                    k = await self._prefix(area, pos, n)
                    if k:
                        run_start = pos if run_start is None else run_start
                        pos += k
                    if run_start is not None:
                        found.append((area, run_start, pos))
                        run_start = None
                    self.at = pos
                    pos = self.at = await self._next_answer(area, pos + 1, span)
                    continue
                run_start = pos if run_start is None else run_start
                pos = self.at = pos + n
        finally:
            if run_start is not None:
                found.append((area, run_start, pos))
        if size < (self.d.limits.max_bits if area in ("co", "di") else
                   self.d.limits.max_registers):
            self.notes.append(f"{_AREA_WORDS[area]} ({area}): the device refuses requests "
                              f"of more than {size} (exception 3): set max_"
                              f"{'bits' if area in ('co', 'di') else 'registers'}: {size}")

    async def _prefix(self, area: str, start: int, n: int) -> int:
        """How many addresses from ``start`` answer, given that ``n`` of them do not."""
        if not await self._answers(area, start, 1):
            return 0  # the common case in a gap: one request, not log2(n)
        lo, hi = 1, n
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if await self._answers(area, start, mid):
                lo = mid
            else:
                hi = mid
        return lo

    async def _next_answer(self, area: str, pos: int, span: int) -> int:
        """The next address at or after ``pos`` (``pos - 1`` refused) that answers, found
        at growing steps (and at round addresses, where maps tend to start: multiples of
        100 below 1000, of 1000 above) and bisected back; ``span`` when none does."""
        refused = pos - 1
        growing, step = pos, 1  # the growing-step sequence: pos, pos+1, pos+3, pos+7 …
        while True:
            while growing <= refused:
                growing, step = growing + step, step * 2
            probe = min(growing, _round_after(refused))
            if probe >= span:
                return span
            if await self._answers(area, probe, 1):
                lo, hi = refused, probe  # lo refused, hi answers
                while hi - lo > 1:
                    mid = (lo + hi) // 2
                    if await self._answers(area, mid, 1):
                        hi = mid
                    else:
                        lo = mid
                return hi
            refused = probe


def _round_after(address: int) -> int:
    """The next round address after ``address``: a multiple of 100 below 1000, else of 1000."""
    if address < 999:
        return (address // 100 + 1) * 100
    return (address // 1000 + 1) * 1000


def _range_point(area: str, start: int, end: int) -> BrowsedPoint:
    """One answering range as a point: ``hr_0_99`` → ``hr:0:uint16[100]``."""
    count = end - start
    bits = area in ("co", "di")
    kind = "bool" if bits else "uint16"
    name = f"{area}_{start}" if count == 1 else f"{area}_{start}_{end - 1}"
    address = f"{area}:{start}:{kind}" + (f"[{count}]" if count > 1 else "")
    words = _AREA_WORDS[area]
    where = f"{words[:-1]} {start} answers" if count == 1 else \
        f"{words} {start}..{end - 1} answer"
    return BrowsedPoint(name=name, address=address, access="r", type=kind,
                        description=f"{where} (writes not tried)")


def _halves(units: list[_Unit]) -> list[list[_Unit]]:
    """Split units (sorted) at the widest gap between neighbours, else in the middle."""
    if len(units) < 2:
        return [units]
    best, cut = -1, len(units) // 2
    reach = units[0].end
    for i in range(1, len(units)):
        gap = units[i].start - reach
        if gap > best:
            best, cut = gap, i
        reach = max(reach, units[i].end)
    if best <= 0:
        cut = len(units) // 2
    return [units[:cut], units[cut:]]


class ModbusTcpDriver(ModbusDriver):
    """``modbus+tcp://host:port?unit=N`` — Modbus/TCP (MBAP framing)."""

    kind: ClassVar[str] = "tcp"
    scheme: ClassVar[str] = "modbus+tcp"


class ModbusRtuOverTcpDriver(ModbusDriver):
    """``modbus+rtuovertcp://host:port?unit=N`` — RTU frames through a TCP serial gateway."""

    kind: ClassVar[str] = "rtuovertcp"
    scheme: ClassVar[str] = "modbus+rtuovertcp"


class ModbusRtuDriver(ModbusDriver):
    """``modbus+rtu://PORT?baudrate=&parity=&stopbits=&unit=`` — Modbus RTU on a serial line.

    PORT is a device path or any pyserial URL (``socket://``, ``rfc2217://``, ``loop://``).
    Devices with the same PORT share the port and take turns with the inter-frame silence.
    """

    kind: ClassVar[str] = "rtu"
    scheme: ClassVar[str] = "modbus+rtu"
