"""The S7 driver on python-snap7 (blocking client, run in the driver's worker thread)."""

from __future__ import annotations

import bisect
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray
from snap7.client import Client
from snap7.error import (
    S7ConnectionError,
    S7Error,
    S7ProtocolError,
    S7TimeoutError,
    get_protocol_error_message,
)
from snap7.logo import Logo
from snap7.type import Block, Parameter

from ...core import (
    BrowsedPoint,
    BrowseResult,
    ConfigError,
    ConfigIssue,
    DeviceError,
    DeviceTimeoutError,
    DriverBase,
    DriverFamily,
    LinkBrokenError,
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
from ...tags import DataType, S7Address
from ...tags.codec import ByteLayout, encode_s7
from ..families.s7 import FAMILY, S7CpuAddress, S7Options, check_s7
from ._planner import (
    PlanError,
    PlannedReads,
    PlannedWrites,
    ReadSpan,
    S7Limits,
    WriteSpan,
    plan_reads,
    plan_writes,
)
from ._wire import (
    HEADER_ERRORS,
    REF_AT,
    HeaderError,
    ReadJob,
    encode_write,
    item_meaning,
    parse_read,
    parse_write,
    recv_frame_into,
    send_frame,
)

__all__ = ["CPU_MODES", "S7Driver", "S7ReadPlan", "cpu_mode"]

log = logging.getLogger(__name__)

#: SZL 0x0424 mode byte → name
CPU_MODES = {0x08: "RUN", 0x04: "STOP", 0x03: "STOP", 0x00: "unknown"}
SZL_CPU_STATE = 0x0424


def _key(addr: S7Address) -> tuple[str, int]:
    return (addr.area, addr.db or 0)


def header_meaning(code: int) -> str:
    text = HEADER_ERRORS.get(code)
    if text is None:
        try:
            text = str(get_protocol_error_message(code))
        except Exception:  # an unknown code: the number says it all
            text = "error"
    return text


def cpu_mode(szl_data: bytes) -> int:
    """The mode byte of an SZL 0x0424 answer (LENTHDR, N_DR, then the 20-byte record)."""
    if len(szl_data) < 8:
        raise ProtocolError(f"SZL 0x0424 answer of {len(szl_data)} bytes: expected a record")
    return szl_data[7]


class S7ReadPlan:
    """An S7 driver's compiled plan: the planned jobs and the decoding layout, built once."""

    def __init__(self, points: Sequence[Point], limits: S7Limits) -> None:
        self.points = tuple(points)
        self.limits = limits
        first = 0
        positions: list[range] = []
        mem: list[tuple[Point, S7Address, range]] = []
        self.cpu: list[tuple[Point, S7CpuAddress, int]] = []
        for p in self.points:
            pos = range(first, first + p.address.elements)
            first += p.address.elements
            positions.append(pos)
            if isinstance(p.address, S7CpuAddress):
                self.cpu.append((p, p.address, pos.start))
            elif isinstance(p.address, S7Address):
                mem.append((p, p.address, pos))
            else:
                raise SmartlineError(f"{p.address!r} is not an S7 address", tag=p.tag)
        self.n = first
        self.slots: NDArray[np.intp] = np.asarray([s for p in self.points for s in p.slots],
                                                  dtype=np.intp)
        spans = []
        for _, a, _ in mem:
            cuts: tuple[int, ...] = ()
            if a.count is not None and a.s7type not in ("BOOL", "CHAR"):
                cuts = tuple(a.byte + k * a.element_bytes for k in range(1, a.count))
            spans.append(ReadSpan(_key(a), a.byte, a.end, cuts))
        try:
            self.planned: PlannedReads = plan_reads(spans, limits)
        except PlanError as exc:
            raise PlanError(f"cannot plan the S7 reads: {exc.message}") from None
        runs = self.planned.runs
        by_key: dict[tuple[str, int], list[int]] = {}
        for i, r in enumerate(runs):
            by_key.setdefault(r.key, []).append(i)
        layout_items: list[tuple[int, S7Address, int]] = []
        layout_pos: list[int] = []
        self.piece_positions: list[NDArray[np.intp]] = [np.zeros(0, np.intp)
                                                         for _ in self.planned.pieces]
        owners: list[list[int]] = [[] for _ in self.planned.pieces]
        pieces_of_run: dict[int, list[int]] = {}
        for k, pc in enumerate(self.planned.pieces):
            pieces_of_run.setdefault(pc.run, []).append(k)
        for p, a, pos in mem:
            run_i = next(i for i in by_key[_key(a)]
                         if runs[i].start <= a.byte and a.end <= runs[i].end)
            run = runs[run_i]
            layout_items.append((p.slot, a, run.offset + a.byte - run.start))
            layout_pos.extend(pos)
            for k in pieces_of_run[run_i]:
                pc = self.planned.pieces[k]
                if pc.start < a.end and a.byte < pc.end:
                    owners[k].extend(pos)
        self.piece_positions = [np.asarray(o, dtype=np.intp) for o in owners]
        self.layout = ByteLayout(layout_items) if layout_items else None
        self.layout_pos: NDArray[np.intp] = np.asarray(layout_pos, dtype=np.intp)
        self.text_pos: NDArray[np.intp] = (self.layout_pos[self.layout.text_mask]
                                           if self.layout is not None
                                           else np.zeros(0, np.intp))
        self.requests: list[tuple[list[tuple[str, int, int, int]], list[int]]] = []
        #: per job: its frame and answer, encoded once (the PDU reference is set per exchange)
        self.jobs: list[ReadJob] = []
        #: where each job's answer frame goes in the read's one answer buffer
        self.job_at: list[int] = []
        piece_at = [0] * len(self.planned.pieces)  # each piece's data in the answer buffer
        size = 0
        for req in self.planned.requests:
            items = [(self.planned.pieces[k].key[0], self.planned.pieces[k].key[1],
                      self.planned.pieces[k].start, self.planned.pieces[k].length) for k in req]
            self.requests.append((items, list(req)))
            job = ReadJob(items, req)
            self.jobs.append(job)
            self.job_at.append(size)
            for k, at in zip(req, job.data_at, strict=True):
                piece_at[k] = size + at
            size += job.answer_size
        self.answer_size = size
        self.piece_at = piece_at
        # the fixed bytes of every answer, for one comparison over the whole buffer
        self.fixed_index: NDArray[np.intp] = (
            np.concatenate([job.fixed[0] + at for job, at in zip(self.jobs, self.job_at,
                                                                   strict=True)])
            if self.jobs else np.zeros(0, np.intp))
        self.fixed_value: NDArray[np.uint8] = (
            np.concatenate([job.fixed[1] for job in self.jobs]) if self.jobs
            else np.zeros(0, np.uint8))
        # decode straight from the answer buffer when no value spans two items; else
        # gather the items' data into the runs' buffer first (one fancy-index copy)
        self.gather: tuple[NDArray[np.intp], NDArray[np.intp]] | None = None
        direct: list[tuple[int, S7Address, int]] = []
        pieces = self.planned.pieces
        starts = [pc.offset for pc in pieces]  # increasing: pieces follow the buffer
        for slot, a, first in layout_items:
            k = bisect.bisect_right(starts, first) - 1
            if first + a.end - a.byte > pieces[k].offset + pieces[k].length:
                direct = []  # a value spans two items
                break
            direct.append((slot, a, piece_at[k] + first - pieces[k].offset))
        if direct:
            self.layout = ByteLayout(direct)
        elif self.layout is not None:
            src = [piece_at[k] + i for k, pc in enumerate(pieces) for i in range(pc.length)]
            dst = [pc.offset + i for pc in pieces for i in range(pc.length)]
            self.gather = (np.asarray(src, np.intp), np.asarray(dst, np.intp))
        self.raw0: NDArray[np.float64] = np.full(self.n, np.nan)
        self.quality0: NDArray[np.uint8] = np.full(self.n, Quality.GOOD, np.uint8)
        self.reason0: NDArray[np.uint8] = np.zeros(self.n, np.uint8)

    @property
    def request_count(self) -> int:
        return self.planned.request_count + (1 if self.cpu else 0)

    @property
    def optimal(self) -> bool:
        return self.planned.optimal


@dataclass(slots=True)
class _Prepared:
    spans: list[WriteSpan]
    planned: PlannedWrites
    pdu: int


class S7Driver(DriverBase[S7ReadPlan, S7Options]):
    """``s7://host[:port]?rack=&slot=`` or ``?local_tsap=&remote_tsap=`` — an S7 CPU.

    Reads and writes DB, M, I and Q with Read/Write Var jobs packed to the PDU size the
    CPU negotiated (:mod:`smartline.drivers.s7._planner`); ``CPU.STATE``/``CPU.RUN`` from
    SZL 0x0424; identity and blocks for ``smartline browse``. Every snap7 call runs in
    the driver's worker thread (:meth:`run_blocking`); a new client is made on every
    connect, so a call abandoned on a timeout never shares a client with the next.
    """

    family_plugin: ClassVar[DriverFamily | None] = FAMILY
    #: the client class for rack/slot connections (tests may wrap it)
    client_factory: ClassVar[Callable[[], Client]] = Client

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        problems = check_s7(self.spec.url.scheme, self.options)
        if problems:
            key, message = problems[0]
            raise ConfigError(ConfigIssue(str(self.spec.url), f"devices.{self.spec.name}.{key}",
                                          message))
        opts = self.options
        self.pdu = opts.pdu_size  # what plans assume until the CPU answers
        self.limits = S7Limits(self.pdu, opts.max_items, opts.max_gap)
        self._client: Client | None = None
        self._ref = 0
        self._requests_last = 0
        self._item_errors: dict[int, int] = {}
        self._cpu_mode: int | None = None

    # -- connection -------------------------------------------------------------------------
    async def _connect(self) -> None:
        url = self.spec.url
        host = url.host or "127.0.0.1"
        port = url.port or 102
        opts = self.options
        timeout = max(0.05, self.spec.timeout_s)
        if opts.by_tsap:
            local, remote = opts.tsaps
            logo = Logo()
            logo.set_param(Parameter.PDURequest, opts.pdu_size)
            client: Client = logo

            def connect() -> None:
                logo.connect(host, local, remote, port)
                _set_timeout(logo, timeout)
        else:
            rack, slot = opts.rack_slot
            client = type(self).client_factory()
            client.set_param(Parameter.PDURequest, opts.pdu_size)

            def connect() -> None:
                client.connect(host, rack, slot, port)
                _set_timeout(client, timeout)

        try:
            await self.run_blocking(connect)
        except S7Error as exc:
            raise self._translate(exc, "connect") from exc
        self._client = client
        pdu = int(client.get_pdu_length())
        if pdu != self.pdu:
            log.info("%s: the CPU negotiated a PDU of %d bytes (asked %d); plans follow",
                     self.spec.name, pdu, opts.pdu_size)
            self.pdu = pdu
            self.limits = S7Limits(pdu, opts.max_items, opts.max_gap)
            self.renegotiated()

    async def _close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            await self.run_blocking(client.disconnect)
        except Exception as exc:  # a broken link closes regardless
            log.debug("%s: disconnect: %r", self.spec.name, exc)

    def _live(self) -> Client:
        if self._client is None:
            raise LinkBrokenError("not connected", device=self.spec.name)
        return self._client

    def _next_ref(self) -> int:
        self._ref = self._ref % 0xFFFF + 1
        return self._ref

    def _translate(self, exc: BaseException, what: str) -> SmartlineError:
        name = self.spec.name
        if isinstance(exc, S7TimeoutError):
            return DeviceTimeoutError(f"no answer to {what} within {self.spec.timeout_s:g} s",
                                      device=name)
        if isinstance(exc, S7ConnectionError):
            return LinkBrokenError(f"{what} failed: {exc}", device=name)
        if isinstance(exc, S7ProtocolError):
            code = getattr(exc, "error_code", None)
            if code:
                return DeviceError(f"{what}: the CPU answered {code:#06x} "
                                   f"({header_meaning(code)})", code=code, device=name)
            return ProtocolError(f"{what}: {exc}", device=name)
        return ProtocolError(f"{what} failed: {type(exc).__name__}: {exc}", device=name)

    # -- reads --------------------------------------------------------------------------------
    def _plan(self, points: Sequence[Point]) -> S7ReadPlan:
        return S7ReadPlan(points, self.limits)

    def _exchange(self, client: Client, job: bytes) -> bytes:
        conn = client.connection
        if conn is None:
            raise S7ConnectionError("not connected")
        conn.send_data(job)
        return bytes(conn.receive_data())

    def _blocking_read(self, client: Client, plan: S7ReadPlan
                       ) -> tuple[bytearray, list[tuple[int, int]], int | None, str | None]:
        """All jobs of a plan, in one trip to the worker thread. Returns the answer buffer
        (every answer frame, each item's data at its fixed place), the failed (piece,
        code), the CPU mode (or None) and why the mode could not be read.

        Each job's frame was encoded once (:class:`ReadJob`); its answer is received in
        place. An answer of the expected length and reference is checked after the last
        job by one comparison of all the answers' fixed bytes (headers, item codes and
        lengths); any other answer is parsed item by item (:func:`parse_read`)."""
        conn = client.connection
        if conn is None:
            raise S7ConnectionError("not connected")
        answers = bytearray(plan.answer_size)
        view = memoryview(answers)
        refs: list[int] = []
        parsed: dict[int, list[tuple[int, int]]] = {}
        for j, job in enumerate(plan.jobs):
            ref = self._next_ref()
            refs.append(ref)
            frame = bytearray(job.frame)
            frame[REF_AT] = ref >> 8
            frame[REF_AT + 1] = ref & 0xFF
            send_frame(conn, frame)
            at = plan.job_at[j]
            pdu = recv_frame_into(conn, view[at:at + job.answer_size])
            if pdu is not None or (answers[at + REF_AT] << 8 | answers[at + REF_AT + 1]) != ref:
                parsed[j] = self._parse_job(conn, plan, j, ref, pdu, answers=answers)
        if plan.jobs and not parsed:
            ok = bool(np.array_equal(np.frombuffer(answers, np.uint8)[plan.fixed_index],
                                     plan.fixed_value))
        else:
            ok = False
        if not ok:  # refused items, or an answer not as expected: job by job
            got = np.frombuffer(answers, np.uint8)
            for j, job in enumerate(plan.jobs):
                if j in parsed:
                    continue
                at = plan.job_at[j]
                if not np.array_equal(got[job.fixed[0] + at], job.fixed[1]):
                    parsed[j] = self._parse_job(conn, plan, j, refs[j], None,
                                                 answers=answers)
        failed = [f for j in sorted(parsed) for f in parsed[j]]
        mode: int | None = None
        why: str | None = None
        if plan.cpu:
            try:
                szl = client.read_szl(SZL_CPU_STATE, 0)
                data = bytes(b & 0xFF for b in szl.Data[:max(8, int(szl.Header.LengthDR))])
                mode = cpu_mode(data)
            except RuntimeError as exc:  # the CPU refused the SZL: not a link failure
                why = str(exc)
        return answers, failed, mode, why

    @staticmethod
    def _parse_job(conn: Any, plan: S7ReadPlan, j: int, ref: int, pdu: bytes | None, *,
                   answers: bytearray) -> list[tuple[int, int]]:
        """One answer item by item (not as expected): its failed (piece, code); the data of
        the answered items goes to their fixed places in ``answers``."""
        job = plan.jobs[j]
        if pdu is None:  # received in place
            at = plan.job_at[j]
            pdu = bytes(conn._parse_cotp_data(bytes(answers[at + 4:at + job.answer_size])))
        try:
            got = parse_read(pdu, ref, job.lengths)
        except HeaderError as exc:
            return [(k, exc.code) for k in job.pieces]
        failed: list[tuple[int, int]] = []
        for k, item in zip(job.pieces, got, strict=True):
            if item.code != 0xFF:
                failed.append((k, item.code))
                continue
            at = plan.piece_at[k]
            answers[at:at + len(item.data)] = item.data
        return failed

    async def _read(self, whole: ReadPlan[S7ReadPlan]) -> ReadResult:
        plan = whole.compiled
        if not isinstance(plan, S7ReadPlan):
            raise SmartlineError("this plan was not made by an S7 driver", device=self.spec.name)
        client = self._live()
        try:
            answers, failed, mode, why = await self.run_blocking(self._blocking_read, client,
                                                                 plan)
        except S7Error as exc:
            raise self._translate(exc, "read") from exc
        received = self.clock.wall_ns()
        self._requests_last = plan.request_count
        self.health.requests += plan.request_count
        raw = plan.raw0.copy()
        quality = plan.quality0.copy()
        reason = plan.reason0.copy()
        texts: dict[int, str] = {}
        exact: dict[int, int] = {}
        if plan.layout is not None:
            data = np.frombuffer(answers, np.uint8)
            if plan.gather is not None:
                src, dst = plan.gather
                buf = np.zeros(plan.planned.nbytes, np.uint8)
                buf[dst] = data[src]
                data = buf
            values, texts, exact = plan.layout.decode(data)
            raw[plan.layout_pos] = values
            if plan.text_pos.size:
                corrupt = plan.text_pos[np.isnan(raw[plan.text_pos])]
                quality[corrupt] = Quality.BAD
                reason[corrupt] = Reason.DECODE_ERROR
        for k, code in failed:
            self._item_errors[code] = self._item_errors.get(code, 0) + 1
            pos = plan.piece_positions[k]
            quality[pos] = Quality.BAD
            reason[pos] = Reason.DEVICE_ERROR
            raw[pos] = np.nan
            pc = plan.planned.pieces[k]
            self.health.last_error = (f"{pc.key[0]}{pc.key[1] or ''} bytes {pc.start}.."
                                      f"{pc.end - 1}: {item_meaning(code)} ({code:#04x})")
        for _, cpu, at in plan.cpu:
            if mode is None:
                quality[at] = Quality.BAD
                reason[at] = Reason.DEVICE_ERROR
                self.health.last_error = f"CPU state: {why}"
                continue
            self._cpu_mode = mode
            raw[at] = float(mode == 0x08) if cpu.dtype is DataType.BOOL else float(mode)
        if failed or plan.text_pos.size:
            bad_slots = set(plan.slots[quality != Quality.GOOD].tolist())
            texts = {s: t for s, t in texts.items() if s not in bad_slots}
            exact = {s: v for s, v in exact.items() if s not in bad_slots}
        return ReadResult(plan.slots, raw, quality, reason, received, texts=texts,
                          exact=exact, requests=plan.request_count)

    # -- writes -------------------------------------------------------------------------------
    def _prepare_write(self, items: Sequence[WriteItem]) -> _Prepared:
        spans: list[WriteSpan] = []
        for it in items:
            addr = it.point.address
            tag = it.point.tag
            if isinstance(addr, S7CpuAddress):
                raise WriteRefusedError(f"{addr.canonical()} is the CPU's own state: it "
                                        "cannot be written", tag=tag)
            if not isinstance(addr, S7Address):
                raise WriteRefusedError(f"{addr!r} is not an S7 address", tag=tag)
            if not addr.writable_area:
                raise WriteRefusedError(f"{addr.canonical()} is in the process input image "
                                        "(I): only DB, M and Q can be written", tag=tag)
            try:
                data = encode_s7(addr, it.value)
            except (ValueError, TypeError) as exc:
                raise WriteRefusedError(f"cannot encode {it.value!r} as {addr.canonical()}: "
                                        f"{exc}", tag=tag) from exc
            key = _key(addr)
            if addr.s7type == "BOOL":
                for e, b in enumerate(data):
                    byte, bit = divmod(int(addr.bit or 0) + e, 8)
                    spans.append(WriteSpan(key, addr.byte + byte, bytes([b]), bit, 1, tag))
            else:
                unit = len(data) if addr.is_text else addr.element_bytes
                spans.append(WriteSpan(key, addr.byte, data, None, unit, tag))
        try:
            planned = plan_writes(spans, self.limits)
        except PlanError as exc:
            raise WriteRefusedError(exc.message) from exc
        return _Prepared(spans, planned, self.pdu)

    def _blocking_write(self, client: Client, planned: PlannedWrites
                        ) -> list[tuple[int, int]]:
        failed: list[tuple[int, int]] = []
        for req in planned.requests:
            items = [(planned.items[k].key[0], planned.items[k].key[1], planned.items[k].start,
                      planned.items[k].data, planned.items[k].bit) for k in req]
            ref = self._next_ref()
            answer = self._exchange(client, encode_write(ref, items))
            try:
                codes = parse_write(answer, ref, len(items))
            except HeaderError as exc:
                failed.extend((k, exc.code) for k in req)
                continue
            failed.extend((k, c) for k, c in zip(req, codes, strict=True) if c != 0xFF)
        return failed

    async def _write(self, items: Sequence[WriteItem], prepared: _Prepared | None) -> None:
        if prepared is None:
            prepared = self._prepare_write(items)
        planned = prepared.planned
        if prepared.pdu != self.pdu:  # the CPU renegotiated since: cut again
            planned = plan_writes(prepared.spans, self.limits)
        client = self._live()
        try:
            failed = await self.run_blocking(self._blocking_write, client, planned)
        except S7Error as exc:
            raise self._translate(exc, "write") from exc
        self.health.requests += planned.request_count
        if failed:
            parts = []
            for k, code in failed:
                it = planned.items[k]
                what = ", ".join(it.tags) or f"{it.key[0]}{it.key[1] or ''}.{it.start}"
                meaning = (item_meaning(code) if code <= 0xFF else header_meaning(code))
                parts.append(f"{what}: {meaning} ({code:#04x})")
            raise DeviceError("the CPU refused the write of " + "; ".join(parts),
                              code=failed[0][1], device=self.spec.name)

    # -- browse -------------------------------------------------------------------------------
    def _blocking_browse(self, client: Client) -> BrowseResult:
        identity: dict[str, object] = {"pdu_size": int(client.get_pdu_length())}
        notes: list[str] = []
        try:
            order = client.get_order_code()
            identity["order_number"] = _text(order.OrderCode)
            identity["firmware"] = f"V{order.V1}.{order.V2}.{order.V3}"
        except Exception as exc:
            notes.append(f"order number (SZL 0x0011) not readable: {exc}")
        try:
            info = client.get_cpu_info()
            for key, value in (("module_type", info.ModuleTypeName), ("module", info.ModuleName),
                               ("serial_number", info.SerialNumber), ("as_name", info.ASName),
                               ("copyright", info.Copyright)):
                text = _text(value)
                if text:
                    identity[key] = text
        except Exception as exc:
            notes.append(f"component identification (SZL 0x001C) not readable: {exc}")
        try:
            szl = client.read_szl(SZL_CPU_STATE, 0)
            mode = cpu_mode(bytes(b & 0xFF for b in szl.Data[:8]))
            identity["state"] = CPU_MODES.get(mode, f"{mode:#04x}")
        except Exception as exc:
            notes.append(f"CPU state (SZL 0x0424) not readable: {exc}")
        points: list[BrowsedPoint] = [BrowsedPoint("cpu.state", "CPU.STATE", "r", "USINT",
                                                   description="operating mode: 8 RUN, 4 STOP")]
        try:
            count = int(client.list_blocks().DBCount)
            numbers = client.list_blocks_of_type(Block.DB, max(count, 1)) if count else []
        except Exception as exc:
            notes.append(f"blocks not listed (the CPU may not allow it): {exc}")
            numbers = []
        for db in sorted(int(n) for n in numbers):
            try:
                size = int(client.get_block_info(Block.DB, db).MC7Size)
            except Exception as exc:
                notes.append(f"DB{db}: size not readable: {exc}")
                continue
            if size <= 0:
                continue
            points.append(BrowsedPoint(f"db{db}", f"DB{db}.DBB0:BYTE[{size}]", "rw",
                                       f"BYTE[{size}]",
                                       description=f"data block DB{db}, {size} bytes "
                                                   "(replace by the DB's typed variables)"))
        identity["data_blocks"] = len(points) - 1
        return BrowseResult(identity=identity, points=tuple(points), notes=tuple(notes))

    async def _browse(self, depth: int) -> BrowseResult:
        client = self._live()
        try:
            return await self.run_blocking(self._blocking_browse, client)
        except S7Error as exc:
            raise self._translate(exc, "browse") from exc

    def _stats(self) -> dict[str, object]:
        return {
            "pdu": self.pdu,
            "items_per_request": self.limits.read_items,
            "requests_per_cycle": self._requests_last,
            "item_errors": dict(self._item_errors),
            "cpu_state": (CPU_MODES.get(self._cpu_mode, hex(self._cpu_mode))
                          if self._cpu_mode is not None else None),
        }


def _set_timeout(client: Client, seconds: float) -> None:
    conn = client.connection
    if conn is None:
        return
    conn.timeout = seconds
    sock = getattr(conn, "socket", None)
    if sock is not None:
        sock.settimeout(seconds)


def _text(value: object) -> str:
    if isinstance(value, bytes | bytearray):
        return bytes(value).split(b"\x00", 1)[0].decode("latin-1").strip()
    return str(value).strip()
