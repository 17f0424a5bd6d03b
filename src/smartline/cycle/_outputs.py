"""Outputs on the I/O side: drain a task's output ring, write, confirm, audit (issue #8).

The compiled loop pushes every changed output tag — accepted (its raw values, one record
per element) or refused by its tag's rules (one record with a refusal code) — into the
task's ring and signals the engine's eventfd. On the I/O loop :meth:`OutputSide.drain`
takes the records: refusals are audited (when an output starts being refused) and raise
an ``io`` alarm the first time; accepted tags wait as the latest value per tag. At most one
batch per task is in flight: :meth:`OutputSide.pump` writes the waiting tags (guarded and
audited through ``LineIO.write_items``, changes only), and when the batch ends stores the
written values in the image as GOOD, or — for a device whose write failed — asks the loop
to write those outputs again (a release store into its ``retry`` flags).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from ..core import Point, WriteItem, WriteRefusedError, WriteValue
from ..tags import DataType, TagSpec
from . import _loop
from ._rt import store_release_i64
from ._stats import IoCounters

if TYPE_CHECKING:
    from ._bind import CompiledCycle
    from ._image import ProcessImage
    from ._io import LineIO

__all__ = ["OutputSide", "OutputTag"]

log = logging.getLogger(__name__)

_REASONS = {
    _loop.RC_READ_ONLY: "tag is read-only",
    _loop.RC_NOT_FINITE: "value is not a finite number",
    _loop.RC_LIMITS: "value outside limits",
    _loop.RC_NOT_WHOLE: "value is not a whole number for an integer tag",
    _loop.RC_RANGE: "value does not fit the tag's wire type",
}


@dataclass(frozen=True, slots=True)
class OutputTag:
    """One output tag of a task: its spec, its point, and its positions in the outputs."""

    name: str
    spec: TagSpec
    point: Point
    start: int
    stop: int


class OutputSide:
    """The I/O loop's half of a task's outputs."""

    def __init__(self, task: str, cycle: CompiledCycle, tags: Sequence[OutputTag],  # noqa: PLR0917
                 io: LineIO, image: ProcessImage, counters: IoCounters, *,
                 wall_ns: Callable[[], int], alarm: Callable[[str, str], None],
                 log_io: Callable[..., None]) -> None:
        self.task = task
        self.cycle = cycle
        self.tags = list(tags)
        self.io = io
        self.image = image
        self.counters = counters
        self.source = f"task {task}"
        self._wall_ns = wall_ns
        self._alarm = alarm
        self._log_io = log_io
        n = len(cycle.outputs)
        self._tag_of: NDArray[np.int64] = np.zeros(n, np.int64)
        for i, t in enumerate(self.tags):
            self._tag_of[t.start:t.stop] = i
        self._raw: NDArray[np.float64] = np.zeros(n)
        self._got: NDArray[np.int64] = np.full(n, -1, np.int64)  # cycle of each raw value
        self._ready: dict[int, tuple[WriteValue, object]] = {}  # tag → (raw, engineering)
        self._refused: set[str] = set()  # outputs refused at least once (alarmed)
        #: outputs audited on every write, not only when the outcome changes
        self._audit_each = frozenset(t.name for t in self.tags if t.spec.audit_each_write)
        self.batch: asyncio.Task[None] | None = None
        self.latched = False

    # -- records -------------------------------------------------------------------------
    def drain(self) -> int:
        """Take every record out of the ring (on the I/O loop); how many."""
        ring = self.cycle.ring
        total = 0
        while True:
            n = ring.pop()
            if n == 0:
                return total
            total += n
            for k in range(n):
                self._record(int(ring.out_slot[k]), float(ring.out_value[k]),
                             int(ring.out_code[k]), int(ring.out_cycle[k]))

    def _record(self, pos: int, value: float, code: int, cycle: int) -> None:
        t = int(self._tag_of[pos])
        tag = self.tags[t]
        if code != _loop.RC_OK:
            self._refuse(tag, value, code)
            return
        self._raw[pos] = value
        self._got[pos] = cycle
        if (self._got[tag.start:tag.stop] == cycle).all():  # every element of that cycle
            self._ready[t] = self._typed(tag)

    def _typed(self, tag: OutputTag) -> tuple[WriteValue, object]:
        """The raw value to send (typed for the wire) and its engineering value."""
        spec = tag.spec
        raw = self._raw[tag.start:tag.stop]
        eng = spec.scale.to_eng(raw) if spec.scale is not None else raw
        dtype = spec.dtype
        values: list[bool | int | float]
        if dtype is DataType.BOOL:
            values = [bool(v) for v in raw]
        elif dtype is not None and dtype.is_integer:
            values = [int(v) for v in raw]
        else:
            values = [float(v) for v in raw]
        if spec.is_array:
            return tuple(values), tuple(spec.typed(float(e)) for e in eng)
        return values[0], spec.typed(float(eng[0]))

    def _refuse(self, tag: OutputTag, value: float, code: int) -> None:
        """An output its tag's rules refuse: audited when it starts being refused; the first
        refusal of each output raises an ``io`` alarm."""
        self.counters.writes_refused += 1
        spec = tag.spec
        shown: object = (tuple(spec.typed(float(v)) for v in
                               self.cycle.outputs[tag.start:tag.stop])
                         if spec.is_array else spec.typed(value))
        try:
            spec.check_write(shown)
            message = _REASONS.get(code, f"refused (code {code})")
        except WriteRefusedError as exc:
            message = exc.message
        self._log_io(f"output refused: {tag.name}: {message}")
        self.io.audit_write(tag.name, shown, "refused", message, source=self.source,
                            changes_only=not spec.audit_each_write)
        if tag.name not in self._refused:
            self._refused.add(tag.name)
            self._alarm("io", f"output {tag.name} refused: {message}")

    # -- writing -------------------------------------------------------------------------
    def pump(self) -> asyncio.Task[None] | None:
        """Start a batch of the waiting tags unless one is in flight (on the I/O loop)."""
        if self.latched or not self._ready:
            return self.batch
        if self.batch is not None and not self.batch.done():
            self.counters.writes_deferred += 1
            return self.batch
        ready, self._ready = self._ready, {}
        self.batch = asyncio.ensure_future(self._write(ready))
        self.batch.add_done_callback(self._after_batch)
        return self.batch

    def _after_batch(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("task %s: writing outputs failed: %r", self.task, task.exception())
        if self._ready and not self.latched:
            self.pump()

    async def _write(self, ready: Mapping[int, tuple[WriteValue, object]]) -> None:
        items: dict[str, list[WriteItem]] = {}
        values: dict[str, object] = {}
        by_device: dict[str, list[int]] = {}
        for t, (raw, eng) in ready.items():
            tag = self.tags[t]
            items.setdefault(tag.spec.device, []).append(WriteItem(tag.point, raw))
            values[tag.name] = eng
            by_device.setdefault(tag.spec.device, []).append(t)
        self.counters.writes += 1
        self.counters.written_tags += len(ready)
        failed = await self.io.write_items(items, values, source=self.source, changes_only=True,
                                           audit_each=self._audit_each)
        now = self._wall_ns()
        for dev, tags in by_device.items():
            if dev in failed:
                self.counters.write_errors += 1
                self._log_io(f"writing outputs to {dev} failed: {failed[dev]!r}")
                for t in tags:  # the loop writes them again, even if they do not change
                    for i in range(self.tags[t].start, self.tags[t].stop):
                        store_release_i64(self.cycle.retry, i, 1)
                continue
            slots = np.concatenate([self.tags[t].point.slot + np.arange(
                self.tags[t].stop - self.tags[t].start) for t in tags]).astype(np.intp)
            eng = np.concatenate([self._eng_array(t, ready[t][1]) for t in tags])
            self.image.store(slots, eng, now)

    def _eng_array(self, t: int, eng: object) -> NDArray[np.float64]:
        vals = eng if isinstance(eng, tuple) else (eng,)
        return np.asarray([float(v) for v in vals], np.float64)  # type: ignore[arg-type]

    async def flush(self) -> None:
        """Drain the ring and wait for the writes it makes (virtual time, shutdown)."""
        self.drain()
        while True:
            batch = self.pump()
            if batch is None or batch.done():
                if batch is not None and self._ready and not self.latched:
                    continue
                return
            await asyncio.wait([batch])

    def latch(self) -> None:
        """The outputs are safe now: drop what waits, write nothing more for the program."""
        self.latched = True
        self._ready.clear()

    async def wait_idle(self, timeout_s: float) -> None:
        """Wait (bounded) for a batch in flight to end; its outcome does not matter here."""
        batch = self.batch
        if batch is not None and not batch.done():
            t0 = time.monotonic()
            await asyncio.wait([batch], timeout=timeout_s)
            if not batch.done():
                log.warning("task %s: output batch still running after %.1f s", self.task,
                            time.monotonic() - t0)
