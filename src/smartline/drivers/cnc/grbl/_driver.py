"""``GrblDriver``: a GRBL 1.1 controller over pyserial (device paths, ``socket://``,
``rfc2217://``) — state and positions as points, real-time commands and settings as writes."""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

from smartline.core import (
    BrowsedPoint,
    BrowseResult,
    Clock,
    ConfigError,
    ConfigIssue,
    DeviceError,
    DeviceSpec,
    DriverBase,
    DriverFamily,
    LinkBrokenError,
    LinkPool,
    Point,
    ReadPlan,
    ReadResult,
    Reason,
    ResultBuilder,
    WriteItem,
    WriteRefusedError,
)
from smartline.drivers.families.cnc import FAMILY, CncOptions

from ._codes import alarm_meaning
from ._link import GrblLink
from ._protocol import GrblStatus

if TYPE_CHECKING:
    from ._job import GcodeJob

__all__ = ["GRBL_POINTS", "GrblDriver"]

log = logging.getLogger(__name__)

_INCH_MM = 25.4
LINE_MAX_CHARS = 79  # LINE_BUFFER_SIZE 80 of grbl/protocol.h, less the terminating NUL

#: every point name the driver knows: name → (type, access, unit, description)
GRBL_POINTS: MappingProxyType[str, tuple[str, str, str, str]] = MappingProxyType({
    "state": ("string", "r", "", "machine state: Idle Run Hold Jog Alarm Door Check Home Sleep"),
    "substate": ("int64", "r", "", "Hold:0 stopped / Hold:1 decelerating; Door:0..3"),
    "alarm": ("int64", "r", "", "the ALARM:N code while in Alarm, 0 when none"),
    "hold": ("bool", "rw", "", "in feed hold; write true for '!' (hold), false for '~'"),
    "mpos.x": ("float64", "r", "mm", "machine position X"),
    "mpos.y": ("float64", "r", "mm", "machine position Y"),
    "mpos.z": ("float64", "r", "mm", "machine position Z"),
    "wpos.x": ("float64", "r", "mm", "work position X (MPos - WCO)"),
    "wpos.y": ("float64", "r", "mm", "work position Y (MPos - WCO)"),
    "wpos.z": ("float64", "r", "mm", "work position Z (MPos - WCO)"),
    "wco.x": ("float64", "r", "mm", "work coordinate offset X"),
    "wco.y": ("float64", "r", "mm", "work coordinate offset Y"),
    "wco.z": ("float64", "r", "mm", "work coordinate offset Z"),
    "feed": ("float64", "r", "mm/min", "current feed rate (FS:)"),
    "spindle": ("float64", "r", "rpm", "programmed spindle speed, overrides applied (FS:)"),
    "buffer.planner": ("int64", "r", "blocks", "free planner blocks (Bf:, needs $10 bit 2)"),
    "buffer.rx": ("int64", "r", "bytes", "free bytes of the receive buffer (Bf:)"),
    "line": ("int64", "r", "", "N line number of the running block (Ln:), 0 when none"),
    "ov.feed": ("int64", "rw", "%", "feed override 10..200 (real-time bytes 0x90..0x94)"),
    "ov.rapid": ("int64", "rw", "%", "rapid override 25, 50 or 100 (0x95..0x97)"),
    "ov.spindle": ("int64", "rw", "%", "spindle override 10..200 (0x99..0x9D)"),
    "pins": ("string", "r", "", "input pins triggered (Pn:), e.g. 'XZP'"),
    "accessories": ("string", "r", "", "spindle and coolant on (A:): S, C, F, M"),
    "message": ("string", "r", "", "the last [MSG:...] from the controller"),
    "resume": ("bool", "w", "", "write true: cycle start / resume ('~')"),
    "reset": ("bool", "w", "", "write true: soft reset (Ctrl-X)"),
    "unlock": ("bool", "w", "", "write true: $X kill alarm lock"),
    "home": ("bool", "w", "", "write true: $H homing cycle"),
    "mdi": ("string", "w", "", "write one G-code line (send-response)"),
    "job.state": ("string", "r", "", "the job's state: none running paused done error alarm "
                                     "cancelled reset broken"),
    "job.line": ("int64", "r", "", "file line of the last line the controller acknowledged"),
    "job.lines": ("int64", "r", "", "lines in the job"),
    "job.sent": ("int64", "r", "", "lines sent"),
    "job.acked": ("int64", "r", "", "lines acknowledged"),
    "job.percent": ("float64", "r", "%", "acknowledged lines as a percentage"),
})

_SETTING = re.compile(r"^setting\.s?(\d{1,3})$")
_WRITE_ONLY = frozenset({"resume", "reset", "unlock", "home", "mdi"})
_RAPID = {100: 0x95, 50: 0x96, 25: 0x97}
_BUSY = ("Run", "Hold", "Home", "Jog", "Door")
_REPORTS_TO_LEARN = 32  # REPORT_WCO_REFRESH_BUSY_COUNT 30 (+ Ov one report after WCO)
_PROBE_NS = 1_000_000_000  # in a critical alarm: a `?` this often, to see the link fail


def point_kind(name: str) -> str | int:
    """A point name's kind: the name itself, or the setting number of ``setting.sN``;
    ``ConfigError`` naming the known points for anything else."""
    m = _SETTING.match(name)
    if m:
        return int(m.group(1))
    if name in GRBL_POINTS:
        return name
    known = ", ".join(GRBL_POINTS)
    raise ConfigError(ConfigIssue("<plan>", name, f"unknown GRBL point {name!r}: expected "
                                  f"setting.sN (a $N setting, e.g. setting.s110) or one of "
                                  f"{known}"))


@dataclass(frozen=True, slots=True)
class GrblPlan:
    """Points with their kinds; what a read must ask the controller."""

    points: tuple[tuple[Point, str | int], ...]
    needs_status: bool
    needs_settings: bool

    @property
    def request_count(self) -> int:
        return int(self.needs_status) + int(self.needs_settings)


def _override_bytes(target: int, kind: str) -> bytes:
    """Real-time bytes that take a feed or spindle override to ``target`` percent."""
    reset, up10, down10, up1, down1 = ((0x90, 0x91, 0x92, 0x93, 0x94) if kind == "feed"
                                       else (0x99, 0x9A, 0x9B, 0x9C, 0x9D))
    out = bytearray([reset])  # from 100 %: independent of where it was
    delta = target - 100
    tens, ones = divmod(abs(delta), 10)
    out += bytes([up10 if delta > 0 else down10]) * tens
    out += bytes([up1 if delta > 0 else down1]) * ones
    return bytes(out)


class GrblDriver(DriverBase[GrblPlan, CncOptions]):
    """A GRBL 1.1 controller: ``grbl://PORT`` (a device path or a pyserial URL).

    Reads ask for a status report (``?``) unless one younger than ``status_max_age_ms``
    is at hand; settings come from ``$$`` (read on connect, again when older than a few
    seconds and the machine is not moving). Writes: real-time bytes (hold, resume, reset,
    overrides) go out at once; ``mdi``, ``unlock``, ``home`` and settings are lines sent
    send-response. G-code files stream through :class:`~smartline.drivers.cnc.grbl.GcodeJob`.
    """

    family_plugin: ClassVar[DriverFamily | None] = FAMILY
    settings_max_age_s: ClassVar[float] = 5.0

    def __init__(self, spec: DeviceSpec, *, clock: Clock | None = None,
                 rng: random.Random | None = None, links: LinkPool | None = None) -> None:
        super().__init__(spec, clock=clock, rng=rng, links=links)
        self.grbl: GrblLink | None = None
        self.job: GcodeJob | None = None  # the running (or last) job, for the job.* points
        self._probed_ns = -_PROBE_NS * 2  # the first read in a critical alarm probes
        self._invalidated = False

    @property
    def rx_limit(self) -> int:
        """Bytes that may be outstanding: the receive buffer less one (the ring's spare slot)."""
        return int(self.options.rx_buffer_bytes) - 1

    # -- hooks ---------------------------------------------------------------------------
    async def _connect(self) -> None:
        import serial

        o = self.options
        path = self.spec.url.path

        def open_port() -> Any:
            port = serial.serial_for_url(path, baudrate=o.baudrate, bytesize=o.bytesize,
                                         parity=o.parity, stopbits=o.stopbits, timeout=0.1,
                                         write_timeout=max(0.5, self.spec.timeout_s))
            port.reset_input_buffer()
            return port

        try:
            port = await self.run_blocking(open_port)
        except (serial.SerialException, ValueError) as exc:
            raise LinkBrokenError(f"cannot open {path}: {exc}", device=self.spec.name) from exc
        link = GrblLink(port, asyncio.get_running_loop(), self.spec.name, self._lost,
                        self.clock.now_ns)
        self.grbl = link
        link.start()
        status = await self._first_status(link)
        for _ in range(_REPORTS_TO_LEARN):  # WCO: and Ov: come every 10-30 reports
            if link.wco_known and link.overrides is not None:
                break
            status = await link.fresh_status()
        if status.state not in _BUSY:
            try:
                await link.command("$$")
            except DeviceError as exc:  # e.g. error:8 while busy: settings come later
                log.info("%s: $$ refused on connect: %s", self.spec.name, exc)

    async def _first_status(self, link: GrblLink) -> GrblStatus:
        """Ask until a report arrives (a controller that just reset ignores the first bytes)."""
        while True:
            try:
                async with asyncio.timeout(0.25):
                    return await link.fresh_status()
            except TimeoutError:
                continue

    def _lost(self, exc: BaseException) -> None:
        self.connection_lost(exc)

    async def _close(self) -> None:
        link, self.grbl = self.grbl, None
        if link is None:
            return
        if link.listener is not None:
            link.listener.on_broken(LinkBrokenError("driver closed the link",
                                                    device=self.spec.name))
        await self.run_blocking(link.close)

    def _plan(self, points: Sequence[Point]) -> GrblPlan:
        kinds: list[tuple[Point, str | int]] = []
        for p in points:
            try:
                kinds.append((p, point_kind(p.address.canonical())))
            except ConfigError as exc:
                exc.device, exc.tag = self.spec.name, p.tag
                raise
        status = any(isinstance(k, str) and not k.startswith("job.") and k not in _WRITE_ONLY
                     and k != "message" for _, k in kinds)
        settings = any(isinstance(k, int) for _, k in kinds)
        return GrblPlan(tuple(kinds), status, settings)

    async def _read(self, plan: ReadPlan[GrblPlan]) -> ReadResult:
        link = self._link()
        c = plan.compiled
        requests = 0
        status = link.status
        note_stale = ""
        if c.needs_status:
            status, requests, note_stale = await self._status_for_read(link)
        if c.needs_settings:
            requests += await self._refresh_settings(link, status)
        b = ResultBuilder(plan.points, self.clock.wall_ns())
        for p, kind in c.points:
            self._fill(b, p, kind, link, status, note_stale)
        self.health.requests += requests
        return b.build(requests=requests)

    async def _status_for_read(self, link: GrblLink) -> tuple[GrblStatus | None, int, str]:
        if link.homing or link.critical:
            why = ("homing: GRBL sends no reports until the cycle ends" if link.homing else
                   f"ALARM:{link.alarm}: GRBL sends no reports until a reset")
            requests = 0
            now = self.clock.now_ns()
            if link.critical and now - self._probed_ns >= _PROBE_NS:
                # silent until a reset, but the link must still be seen to fail, and a
                # controller that was power-cycled to be seen again (its banner answers)
                self._probed_ns = now
                link.check()  # a link that failed meanwhile: the read fails, reconnects
                link.write(b"?")  # ignored by GRBL until the reset; never waited for
                requests = 1
            return link.status, requests, f"last report before {why}"
        age_ns = self.clock.now_ns() - link.status_ns
        max_age_ns = int(self.options.status_max_age_ms * 1e6)
        if link.status is not None and not self._invalidated and age_ns <= max_age_ns \
                and link.wco_known and link.overrides is not None:
            return link.status, 0, ""
        self._invalidated = False
        requests = 0
        try:
            status = await link.fresh_status()
            requests = 1
            # WCO and Ov come every few reports (GRBL's refresh counters): ask until both known
            while (not link.wco_known or link.overrides is None) \
                    and requests < _REPORTS_TO_LEARN:
                status = await link.fresh_status()
                requests += 1
        except DeviceError:
            if not link.critical:
                raise
            # a critical ALARM came while we waited: no report follows until a reset
            return link.status, requests + 1, f"last report before ALARM:{link.alarm}: " \
                "GRBL sends no reports until a reset"
        return status, requests, ""

    async def _refresh_settings(self, link: GrblLink, status: GrblStatus | None) -> int:
        age_s = (self.clock.now_ns() - link.settings_ns) / 1e9
        busy = (status is not None and status.state in _BUSY) or link.fifo or (
            self.job is not None and self.job.running)
        if link.settings and (age_s < self.settings_max_age_s or busy):
            return 0
        if busy or link.critical:
            return 0
        try:
            await link.command("$$")
        except DeviceError as exc:
            log.info("%s: $$ refused: %s", self.spec.name, exc)
        return 1

    def _fill(self, b: ResultBuilder, p: Point, kind: str | int, link: GrblLink,  # noqa: PLR0917
              st: GrblStatus | None, note_stale: str) -> None:
        if isinstance(kind, int):
            setting = link.settings.get(kind)
            if setting is None:
                have = sorted(link.settings)
                b.fail(p, Reason.DEVICE_ERROR, note=(
                    f"GRBL has no setting ${kind} ($$ lists "
                    f"{', '.join(f'${n}' for n in have) or 'nothing'})"))
            else:
                b.set(p, setting)
            return
        if kind.startswith("job."):
            self._fill_job(b, p, kind)
            return
        if kind in _WRITE_ONLY:
            b.fail(p, Reason.NOT_READ, note=f"{kind} is a command: write it, it has no value")
            return
        if kind == "message":
            b.set(p, link.last_message)
            return
        if kind == "alarm":
            b.set(p, link.alarm)
            return
        if st is None:
            b.fail(p, Reason.NOT_READ, note="no status report yet")
            return
        inch = _INCH_MM if link.settings.get(13) else 1.0
        value: bool | int | float | str | None
        missing = ""
        axis = "xyz".find(kind[-1]) if kind[-2:-1] == "." else -1
        if kind == "state":
            # after ALARM:1/2 GRBL sends no report, but the alarm itself says the state;
            # uncertain all the same: a controller that went away would look the same
            value = "Alarm" if link.critical else st.state
        elif kind == "substate":
            value = st.substate
        elif kind == "hold":
            value = st.state == "Hold"
        elif kind.startswith(("mpos.", "wpos.")):
            value = self._position(kind[:4], axis, st, link)
            value = None if value is None else value * inch
            missing = "no MPos/WPos with a known WCO yet"
        elif kind.startswith("wco."):
            value = link.wco[axis] * inch if link.wco_known else None
            missing = "no WCO: field seen yet"
        elif kind == "feed":
            value = None if st.feed is None else st.feed * inch
            missing = "the report has no FS: or F: field"
        elif kind == "spindle":
            value = st.spindle
            missing = "the report has no FS: field (no variable spindle)"
        elif kind == "buffer.planner":
            value = st.planner_free
            missing = "the report has no Bf: field (set $10 bit 2: $10=3)"
        elif kind == "buffer.rx":
            value = st.rx_free
            missing = "the report has no Bf: field (set $10 bit 2: $10=3)"
        elif kind == "line":
            value = st.line or 0
        elif kind.startswith("ov."):
            ov = link.overrides
            value = None if ov is None else ov[("ov.feed", "ov.rapid", "ov.spindle").index(kind)]
            missing = "no Ov: field seen yet"
        elif kind == "pins":
            value = st.pins
        elif kind == "accessories":
            value = link.accessories
            missing = "no Ov:/A: fields seen yet"
        else:  # pragma: no cover - point_kind admits only the names above
            raise AssertionError(kind)
        if value is None:
            b.fail(p, Reason.NOT_READ, note=missing)
            return
        b.set(p, value)
        if note_stale:
            b.doubt(p, Reason.NOT_READ, note_stale)

    @staticmethod
    def _position(which: str, axis: int, st: GrblStatus, link: GrblLink) -> float | None:
        if which == "mpos":
            if st.mpos is not None:
                return st.mpos[axis]
            return st.wpos[axis] + link.wco[axis] if (st.wpos and link.wco_known) else None
        if st.wpos is not None:
            return st.wpos[axis]
        return st.mpos[axis] - link.wco[axis] if (st.mpos and link.wco_known) else None

    def _fill_job(self, b: ResultBuilder, p: Point, kind: str) -> None:
        job = self.job
        if job is None:
            values: dict[str, bool | int | float | str] = {
                "job.state": "none", "job.line": 0, "job.lines": 0, "job.sent": 0,
                "job.acked": 0, "job.percent": 0.0}
        else:
            pr = job.progress
            values = {"job.state": pr.state, "job.line": pr.file_line, "job.lines": pr.total,
                      "job.sent": pr.sent, "job.acked": pr.acked, "job.percent": pr.percent}
        b.set(p, values[kind])

    def _prepare_write(self, items: Sequence[WriteItem]) -> list[tuple[str, bytes | str]]:
        out: list[tuple[str, bytes | str]] = []
        for it in items:
            try:
                kind = point_kind(it.point.address.canonical())
            except ConfigError as exc:
                raise WriteRefusedError(str(exc.issues[0].message), tag=it.point.tag) from None
            v = it.value
            out.append(self._encode(it.point.tag, kind, v))
        return out

    def _encode(self, tag: str, kind: str | int, v: object) -> tuple[str, bytes | str]:
        def refuse(why: str) -> WriteRefusedError:
            return WriteRefusedError(f"{why} (wrote {v!r})", tag=tag)

        job_running = self.job is not None and self.job.running
        if isinstance(kind, int):
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise refuse(f"setting ${kind} takes a number")
            if v < 0:
                raise refuse(f"setting ${kind} takes a value >= 0 (GRBL error:4)")
            if job_running:
                raise refuse("settings are not written while a job streams")
            text = f"${kind}={int(v)}" if float(v).is_integer() else f"${kind}={v:.3f}"
            return "line", text
        access = GRBL_POINTS[kind][1]
        if access == "r":
            raise refuse(f"{kind} is read-only")
        if kind in ("hold", "resume", "reset", "unlock", "home"):
            if not isinstance(v, bool | int) or (isinstance(v, int) and v not in (0, 1)):
                raise refuse(f"{kind} takes true or false")
            on = bool(v)
            if kind == "hold":
                return "rt", b"!" if on else b"~"
            if not on:
                return "none", b""
            if kind == "resume":
                return "rt", b"~"
            if kind == "reset":
                return "reset", b"\x18"
            if job_running:
                raise refuse(f"{kind} is refused while a job streams")
            return "line", "$X" if kind == "unlock" else "$H"
        if kind == "mdi":
            if not isinstance(v, str):
                raise refuse("mdi takes one G-code line as text")
            from ._job import clean_line

            text = clean_line(v)
            if not text:
                raise refuse("mdi: the line is empty once comments and spaces are removed")
            problem = line_problem(text)
            if problem:
                raise refuse(f"mdi: {problem}")
            if job_running:
                raise refuse("mdi is refused while a job streams")
            return "line", text
        # overrides
        if isinstance(v, bool) or not isinstance(v, int | float) or not float(v).is_integer():
            raise refuse(f"{kind} takes a whole percentage")
        pct = int(v)
        if kind == "ov.rapid":
            if pct not in _RAPID:
                raise refuse("ov.rapid takes 25, 50 or 100 (%)")
            return "rt", bytes([_RAPID[pct]])
        if not 10 <= pct <= 200:
            raise refuse(f"{kind} takes 10..200 (%)")
        return "rt", _override_bytes(pct, kind[3:])

    async def _write(self, items: Sequence[WriteItem], prepared: Any) -> None:
        link = self._link()
        for (how, payload), it in zip(prepared, items, strict=True):
            self._invalidated = True
            if how == "none":
                continue
            if how in ("rt", "reset"):
                assert isinstance(payload, bytes)
                banners = link.banners
                if how == "reset":
                    link.expect_reset = True
                link.write(payload)
                self.health.requests += 1
                while how == "reset" and link.banners == banners:
                    await asyncio.sleep(0.002)  # nothing may be sent before the banner
                    link.check()
                continue
            assert isinstance(payload, str)
            self.health.requests += 1
            if payload == "$H":
                await self._home(link)
                continue
            try:
                await link.command(payload)
            except DeviceError as exc:
                exc.tag = it.point.tag
                raise
            m = re.match(r"^\$(\d+)=(.*)$", payload)
            if m:
                link.settings[int(m.group(1))] = float(m.group(2))
            if payload == "$X":
                link.alarm = 0

    async def _home(self, link: GrblLink) -> None:
        """``$H``: GRBL answers only when homing ends; wait up to most of the timeout, then
        leave the answer to arrive later (the cycle is under way, state ``Home``)."""
        await link.drained()
        fut = link.send_line("$H")
        assert fut is not None
        link.homing = True
        try:
            async with asyncio.timeout(self.spec.timeout_s * 0.8):
                await asyncio.shield(fut)
        except TimeoutError:
            fut.add_done_callback(lambda f: f.exception() if not f.cancelled() else None)
            log.info("%s: homing under way; its answer arrives when it ends", self.spec.name)

    async def _browse(self, depth: int) -> BrowseResult:
        """Identity from ``$I`` (build and options), the points, and every ``$N`` setting."""
        link = self._link()
        await link.command("$I")
        if not (link.status is not None and link.status.state in _BUSY):
            await link.command("$$")
        ver = link.feedback.get("VER", "")
        opt = link.feedback.get("OPT", "").split(",")
        identity: dict[str, object] = {"protocol": "GRBL", "version": ver.split(":")[0]}
        if len(opt) >= 3 and opt[1].isdigit() and opt[2].isdigit():
            identity.update(options=opt[0], planner_blocks=int(opt[1]),
                            rx_buffer_bytes=int(opt[2]))
        pts = [BrowsedPoint(name, name, access, typ, unit or None, desc)
               for name, (typ, access, unit, desc) in GRBL_POINTS.items()]
        pts += [BrowsedPoint(f"setting.s{n}", f"setting.s{n}", "rw", "float64", None,
                             f"${n} = {v:g}") for n, v in sorted(link.settings.items())]
        return BrowseResult(identity=identity, points=tuple(pts))

    def _stats(self) -> dict[str, object]:
        link = self.grbl
        if link is None:
            return {}
        return {"grbl_version": link.version, "inflight_bytes": link.inflight_bytes,
                "lines_in": link.lines_in, "bytes_out": link.bytes_out,
                "resets_seen": link.banners, "unmatched_answers": link.unmatched}

    # -- for jobs and the CLI ------------------------------------------------------------
    def _link(self) -> GrblLink:
        link = self.grbl
        if link is None:
            raise LinkBrokenError("not connected", device=self.spec.name)
        link.check()
        return link

    def job_link(self) -> GrblLink:
        """The open link, for :class:`GcodeJob` (connect first)."""
        self._check_open()
        if not self.connected:
            raise LinkBrokenError("connect before starting a job", device=self.spec.name)
        return self._link()

    @staticmethod
    def alarm_meaning(code: int) -> str:
        """GRBL's meaning of ``ALARM:code``."""
        return alarm_meaning(code)


def line_problem(text: str) -> str:
    """Why ``text`` (a cleaned line) cannot be sent to GRBL, or ``""``."""
    if len(text) > LINE_MAX_CHARS:
        return (f"line is {len(text)} characters long; GRBL's line buffer takes "
                f"{LINE_MAX_CHARS} (error:11)")
    for ch in text:
        if ch in "?!~":
            return f"{ch!r} is a GRBL real-time command and cannot be part of a line"
        if not (" " < ch < "\x7f"):
            return f"character {ch!r} is not printable ASCII"
    return ""
