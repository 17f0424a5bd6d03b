"""A driver built on a *synchronous* client library, the way the S7 (python-snap7) and
serial (pyserial) drivers are: every library call goes through ``DriverBase.run_blocking``.

``TallyClient`` stands in for a vendor's blocking library (plain sockets); the driver
around it is polled (no push) and passes the same conformance suite as the asyncio driver,
timeouts and cancellation included: a call past its deadline is abandoned, its worker
thread retired, and closing the socket in ``_close`` ends the abandoned call.
docs/how-to/write-a-driver.md shows this pattern.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Sequence
from typing import Any, ClassVar

import pytest
from acme_tally.address import STATUS, TallyAddress, parse_tally
from acme_tally.driver import TallyPlan, _by_item, _chunks, _encode, _entries, _Entry, _fill
from acme_tally.family import DEFAULT_PORT, TallyOptions
from acme_tally.sim import TallySim

from smartline.core import (
    DeviceError,
    DeviceSpec,
    DriverBase,
    Point,
    ProtocolError,
    ReadPlan,
    ReadResult,
    ResultBuilder,
    RetryPolicy,
    WriteItem,
    WriteRefusedError,
    WriteValue,
    parse_url,
)
from smartline.testing.conformance import PUSH_CHECKS, checks_for


class TallyClient:
    """A blocking ACME Tally client, as a vendor's C-extension library would be: every
    method blocks the calling thread until the station answers (or the socket times out)."""

    def __init__(self, host: str, port: int, timeout_s: float) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout_s)
        self.stream = self.sock.makefile("rb")
        hello = self.stream.readline()
        if not hello.startswith(b"HELLO ACME-TALLY/1 "):
            self.close()
            raise ConnectionRefusedError(f"no ACME Tally greeting: {hello[:40]!r}")

    def request(self, line: str) -> str:
        self.sock.sendall(line.encode("ascii") + b"\r\n")
        raw = self.stream.readline()
        if not raw.endswith(b"\n"):
            raise ConnectionResetError("the station closed the connection")
        return raw.decode("ascii").rstrip("\r\n")  # UnicodeDecodeError: a ProtocolError

    def close(self) -> None:
        self.stream.close()
        self.sock.close()


class BlockingTallyDriver(DriverBase[TallyPlan, TallyOptions]):
    """Polls an ACME Tally station through the blocking :class:`TallyClient`."""

    family: ClassVar[str] = "acme"
    options_type: ClassVar[type[Any]] = TallyOptions
    _client: TallyClient | None = None

    async def _connect(self) -> None:
        url = self.spec.url
        self._client = await self.run_blocking(
            TallyClient, url.host or "127.0.0.1", url.port or DEFAULT_PORT, self.spec.timeout_s)

    async def _close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()  # never blocks; also ends a call abandoned in a retired thread

    async def _ask(self, line: str) -> str:
        assert self._client is not None
        self.health.requests += 1
        reply = await self.run_blocking(self._client.request, line)
        if reply == "OK" or reply.startswith("OK "):
            return reply[3:]
        if reply.startswith("ER "):
            raise DeviceError(f"station {self.options.station}: {reply[3:]}")
        raise ProtocolError(f"expected OK or ER, found {reply[:40]!r}")

    def _plan(self, points: Sequence[Point]) -> TallyPlan:
        by_item = _by_item(points)
        return TallyPlan(tuple(_chunks(list(by_item), self.options.max_batch)), by_item)

    async def _read(self, plan: ReadPlan[TallyPlan]) -> ReadResult:
        entries: list[_Entry] = []
        for batch in plan.compiled.batches:
            body = await self._ask(f"RD {self.options.station} {' '.join(batch)}")
            entries += _entries(body, batch)
        builder = ResultBuilder(plan.points, self.clock.wall_ns())
        for entry in entries:
            for point in plan.compiled.points[entry.item]:
                _fill(builder, point, entry)
        return builder.build(requests=plan.compiled.request_count)

    def _prepare_write(self, items: Sequence[WriteItem]) -> list[str]:
        pairs = []
        for it in items:
            address = it.point.address
            assert isinstance(address, TallyAddress)
            if address.channel is None:
                raise WriteRefusedError("ST is read-only", tag=it.point.tag)
            try:
                pairs.append(f"{address.item}={_encode(address.dtype, it.value)}")
            except ValueError as exc:
                raise WriteRefusedError(str(exc), tag=it.point.tag) from None
        return pairs

    async def _write(self, items: Sequence[WriteItem], prepared: Any) -> None:
        for batch in _chunks(prepared, self.options.max_batch):
            await self._ask(f"WR {self.options.station} {' '.join(batch)}")


POINTS: dict[str, tuple[str, WriteValue]] = {
    "rate": ("CH5", 12.5), "target": ("CH6:u64", 4_000_000_000),
    "running": ("CH7:bool", True), "recipe": ("CH8:text", "cola 0,5l — ü"),
}


class BlockingHarness:
    timeout_s = 0.5

    def __init__(self, sim: TallySim | None = None) -> None:
        self.sim = sim

    def make_driver(self) -> BlockingTallyDriver:
        assert self.sim is not None
        spec = DeviceSpec(name="tally", url=parse_url(self.sim.url()), timeout_s=self.timeout_s,
                          retry=RetryPolicy(backoff_initial_s=0.05, backoff_max_s=0.2),
                          options={"max_batch": 3})
        return BlockingTallyDriver(spec)

    def points(self) -> Sequence[Point]:
        return [Point(tag, slot, parse_tally(text))
                for slot, (tag, (text, _)) in enumerate(POINTS.items())]

    def value_for(self, point: Point) -> WriteValue:
        return POINTS[point.tag][1]

    async def set_latency(self, seconds: float) -> None:
        assert self.sim is not None
        self.sim.faults.latency_s = seconds

    async def set_garbage(self, on: bool) -> None:
        assert self.sim is not None
        self.sim.faults.garbage = on

    def refused_write(self) -> WriteItem:
        return WriteItem(Point("status", 50, STATUS), 1)

    def failing_point(self) -> Point:
        return Point("missing", 100, parse_tally("CH99"))

    def exact_points(self) -> Sequence[tuple[Point, int]]:
        return [(Point("lane1", 200, parse_tally("CH1:u64")), 2**64 - 1)]

    def pushed_points(self) -> Sequence[Point]:
        return []  # polled

    async def change(self, point: Point, value: WriteValue) -> None:
        raise AssertionError("not a pushing device")

    async def break_link(self) -> None:
        raise AssertionError("not a pushing device")


@pytest.fixture
async def harness() -> AsyncIterator[BlockingHarness]:
    async with TallySim() as sim:
        yield BlockingHarness(sim)


def test_the_push_checks_do_not_apply_to_a_polled_driver() -> None:
    assert not set(PUSH_CHECKS) & set(checks_for(BlockingHarness()))


@pytest.mark.parametrize("check", checks_for(BlockingHarness()), ids=lambda c: c.__name__)
async def test_conformance_through_run_blocking(check, harness: BlockingHarness) -> None:
    await check(harness)


async def test_a_call_past_its_deadline_is_abandoned_and_the_next_gets_a_new_thread(
        harness: BlockingHarness) -> None:
    assert harness.sim is not None
    async with harness.make_driver() as d:
        plan = d.plan(harness.points())
        harness.sim.faults.latency_s = 2.0
        with pytest.raises(TimeoutError):
            await d.read(plan)
        assert d.health.blocking_abandoned == 1
        harness.sim.faults.latency_s = 0.0
        await asyncio.sleep(0.3)  # the reconnect backoff
        result = await d.read(plan)
        assert result.requests == 2
