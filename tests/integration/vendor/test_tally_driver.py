"""The ACME Tally driver beyond the conformance suite: request planning, the station's
negotiated limit, per-item errors, refusals before I/O, faults, pushes — against the
vendor's simulator — and wire transcripts against a scripted station that shares no code
with either."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable, Sequence

import numpy as np
import pytest
from acme_tally.address import parse_tally
from acme_tally.driver import TallyDriver
from acme_tally.sim import STATUS_JAM, STATUS_READY, TallySim

from smartline.core import (
    ClosedError,
    ConnectError,
    DeviceError,
    DeviceSpec,
    LinkBrokenError,
    Point,
    ProtocolError,
    Quality,
    Reason,
    RetryPolicy,
    SmartlineError,
    WriteItem,
    WriteRefusedError,
    parse_url,
)
from smartline.testing.conformance import RecordingSink


def make(url: str, *, timeout_s: float = 0.5, **options: object) -> TallyDriver:
    spec = DeviceSpec(name="tally", url=parse_url(url), timeout_s=timeout_s,
                      retry=RetryPolicy(backoff_initial_s=0.02, backoff_max_s=0.05),
                      options=options)
    return TallyDriver(spec)


def pts(*texts: str, first: int = 0) -> list[Point]:
    return [Point(f"p{i}", first + i, parse_tally(t)) for i, t in enumerate(texts)]


@pytest.fixture
async def sim() -> AsyncIterator[TallySim]:
    async with TallySim() as s:
        yield s


# -- planning ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("max_batch", "requests"), [(1, 20), (3, 7), (16, 2), (20, 1)])
async def test_a_read_of_n_channels_takes_ceil_n_over_max_batch_requests(
        max_batch: int, requests: int) -> None:
    layout = {n: ("f64", float(n)) for n in range(1, 21)}
    async with TallySim(layout, max_items=32) as sim:
        points = pts(*(f"CH{n}" for n in range(1, 21)), "CH2")  # CH2 twice: asked once
        async with make(sim.url(), max_batch=max_batch) as d:
            plan = d.plan(points)
            assert plan.request_count == requests
            before = sim.requests
            result = await d.read(plan)
        assert sim.requests - before == requests == result.requests
        assert result.raw.tolist() == [*map(float, range(1, 21)), 2.0]
        assert (result.quality == Quality.GOOD).all()


async def test_the_station_limit_from_its_greeting_caps_the_batch() -> None:
    layout = {n: ("u64", n) for n in range(1, 11)}
    async with TallySim(layout, max_items=4) as sim:
        d = make(sim.url(), max_batch=16)
        plan = d.plan(pts(*(f"CH{n}:u64" for n in range(1, 11))))
        assert plan.request_count == 1  # made before the station said anything
        async with d:
            result = await d.read(plan)
            assert d.plan_epoch == 1 and d.stats()["batch"] == 4
        assert plan.request_count == 3 == result.requests  # made again, in place
        assert result.raw.tolist() == list(map(float, range(1, 11)))


# -- reading -----------------------------------------------------------------------------------

async def test_items_fail_alone_with_a_reason(sim: TallySim) -> None:
    sim.set(8, "abc")
    points = pts("CH5", "CH99", "CH8:u64", "CH5:i64", "ST", "CH8:text")
    async with make(sim.url()) as d:
        result = await d.read(d.plan(points))
        assert d.connected and d.health.failures == 0
    assert result.quality.tolist() == [Quality.GOOD, Quality.BAD, Quality.BAD, Quality.BAD,
                                       Quality.GOOD, Quality.GOOD]
    assert result.reason.tolist() == [Reason.NONE, Reason.DEVICE_ERROR, Reason.DECODE_ERROR,
                                      Reason.DECODE_ERROR, Reason.NONE, Reason.NONE]
    assert np.isnan(result.raw[1:4]).all()
    assert result.raw[4] == 1.0  # ST: ready
    assert dict(result.texts) == {5: "abc"}


async def test_source_times_are_the_stations(sim: TallySim) -> None:
    async with make(sim.url()) as d:
        plan = d.plan(pts("CH5", "CH6:u64"))
        first = await d.read(plan)
        sim.set(5, 3.5)
        second = await d.read(plan)
    assert second.sources()[0] > first.sources()[0]  # CH5 changed: a new source time
    assert second.sources()[1] == first.sources()[1]  # CH6 did not
    assert (second.sources() <= second.received_ns).all()


async def test_an_error_answer_raises_device_error_and_keeps_the_link(sim: TallySim) -> None:
    url = sim.url().replace("station=1", "station=7")  # not behind this port
    async with make(url) as d:
        with pytest.raises(DeviceError, match="no station 7") as info:
            await d.read(d.plan(pts("CH5")))
        assert info.value.code == 4 and info.value.device == "tally"
        assert d.connected and d.health.failures == 0


async def test_two_stations_share_a_port_but_not_their_channels() -> None:
    async with TallySim(stations=(1, 2)) as sim:
        async with make(sim.url(1)) as one, make(sim.url(2)) as two:
            await one.write([WriteItem(pts("CH6:u64")[0], 77)])
            r1 = await one.read(one.plan(pts("CH6:u64")))
            r2 = await two.read(two.plan(pts("CH6:u64")))
        assert (r1.raw[0], r2.raw[0]) == (77.0, 1000.0)
        assert (sim.get(6, 1), sim.get(6, 2)) == (77, 1000)


# -- writing -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("address", "value", "message"), [
    ("ST", 1, "read-only"),
    ("CH6:u64", -1, "does not fit uint64"),
    ("CH9:i64", 2**63, "does not fit int64"),
    ("CH9:i64", 1.5, "whole number"),
    ("CH5", "12", "expected a number"),
    ("CH5", True, "expected a number"),
    ("CH8:text", 12, "expected text"),
    ("CH8:text", "ü" * 33, "66 bytes long"),
    ("CH8:text", "\ud800", "UTF-8"),
    ("CH7:bool", 2, "bool"),
    ("CH5", (1.0, 2.0), "one value"),
])
async def test_writes_are_refused_before_anything_is_sent(sim: TallySim, address: str,
                                                         value: object, message: str) -> None:
    async with make(sim.url()) as d:
        sent = (sim.requests, d.health.requests)
        with pytest.raises(WriteRefusedError, match=message) as info:
            await d.write([WriteItem(pts("CH6:u64")[0], 5),
                           WriteItem(pts(address, first=1)[0], value)])  # type: ignore[arg-type]
        assert info.value.tag == "p0" and info.value.device == "tally"
        assert (sim.requests, d.health.requests) == sent
        assert d.connected and d.health.failures == 0
    assert sim.get(6) == 1000 and not sim.writes


async def test_the_station_refuses_a_value_its_channel_cannot_hold(sim: TallySim) -> None:
    async with make(sim.url()) as d:
        # an f64 address on the bool channel: the driver sends 0.5, the station says no
        with pytest.raises(DeviceError, match="bad value for CH7") as info:
            await d.write([WriteItem(pts("CH6:u64")[0], 5), WriteItem(pts("CH7")[0], 0.5)])
        assert info.value.code == 3
        with pytest.raises(DeviceError, match="no such item CH99"):
            await d.write([WriteItem(pts("CH99")[0], 1.0)])
        assert d.connected
    assert sim.get(6) == 1000 and not sim.writes  # all or nothing


async def test_floats_and_64_bit_integers_travel_exactly(sim: TallySim) -> None:
    async with make(sim.url()) as d:
        for value in (0.1, -1e-300, 1.7976931348623157e308, math.inf, -math.inf, math.nan):
            await d.write([WriteItem(pts("CH5")[0], value)])
            got = float((await d.read(d.plan(pts("CH5")))).raw[0])
            stored = sim.get(5)
            assert isinstance(stored, float)
            if math.isnan(value):
                assert math.isnan(got) and math.isnan(stored)
            else:
                assert got == value == stored
        big = [(pts("CH1:u64")[0], 2**64 - 1), (pts("CH9:i64", first=1)[0], -(2**63))]
        await d.write([WriteItem(p, v) for p, v in big])
        result = await d.read(d.plan([p for p, _ in big]))
    assert dict(result.exact) == {0: 2**64 - 1, 1: -(2**63)}
    assert (sim.get(1), sim.get(9)) == (2**64 - 1, -(2**63))


# -- faults ------------------------------------------------------------------------------------

async def test_a_refusing_station_fails_the_connect_with_its_reason(sim: TallySim) -> None:
    sim.faults.refuse = True
    d = make(sim.url())
    with pytest.raises(ConnectError, match="refused the connection: busy"):
        await d.connect()
    await d.close()


async def test_a_dropped_connection_is_a_broken_link_and_the_driver_recovers(
        sim: TallySim) -> None:
    async with make(sim.url()) as d:
        plan = d.plan(pts("CH5"))
        sim.faults.drop = True
        with pytest.raises(LinkBrokenError, match="closed the connection"):
            await d.read(plan)
        assert not d.connected
        sim.faults.drop = False
        await asyncio.sleep(0.1)  # the backoff
        assert (await d.read(plan)).quality[0] == Quality.GOOD
        assert d.health.connects == 2


# -- pushing -----------------------------------------------------------------------------------

async def test_changes_are_pushed_to_every_subscription_that_has_the_item(sim: TallySim) -> None:
    async with make(sim.url()) as d:
        a, b = RecordingSink(), RecordingSink()
        sub_a = await d.subscribe(pts("CH5", "CH6:u64"), a)
        await d.subscribe(pts("CH5:f64", "CH7:bool", first=10), b)
        # b's SUB makes the station send CH5's current value again: a may hear it twice
        await a.wait_for(lambda: a.covers(sub_a.points), 2, "a's current values")
        await b.wait_for(lambda: len(b.results) == 1, 2, "b's current values")
        na = len(a.results)
        sim.set(5, 2.5)
        await a.wait_for(lambda: len(a.results) == na + 1, 2, "a's change")
        await b.wait_for(lambda: len(b.results) == 2, 2, "b's change")
        assert a.results[-1].slots.tolist() == [0] and b.results[-1].slots.tolist() == [10]
        assert a.latest_equals(sub_a.points[0], 2.5)
        await d.unsubscribe(sub_a)
        sim.set(5, 3.5)
        sim.set(6, 7)  # only sub_a had CH6, and the station was told to stop sending it
        await b.wait_for(lambda: len(b.results) == 3, 2, "b's second change")
        await asyncio.sleep(0.05)
        assert len(a.results) == na + 1
        assert d.health.reads == 0 and d.stats()["events"] >= 4


async def test_the_status_word_is_pushed_too(sim: TallySim) -> None:
    async with make(sim.url()) as d:
        sink = RecordingSink()
        (status,) = pts("ST")
        await d.subscribe([status], sink)
        await sink.wait_for(lambda: sink.latest_equals(status, STATUS_READY), 2, "ST")
        sim.set_status(STATUS_READY | STATUS_JAM)
        await sink.wait_for(lambda: sink.latest_equals(status, 5), 2, "the jam bit")


async def test_subscribe_false_means_the_station_is_polled(sim: TallySim) -> None:
    async with make(sim.url(), subscribe=False) as d:
        assert not d.pushes(pts("CH5")[0])
        with pytest.raises(SmartlineError, match="does not push"):
            await d.subscribe(pts("CH5"), RecordingSink())


# -- wire transcripts against a scripted station -----------------------------------------------

class ScriptedStation:
    """A station that answers from a script and records every request line, for checking
    the driver's bytes against the protocol reference independently of the simulator."""

    def __init__(self, answer: Callable[[str], Sequence[str]],
                 hello: str = "HELLO ACME-TALLY/1 MAXITEMS=2") -> None:
        self.answer = answer
        self.hello = hello
        self.lines: list[str] = []
        self.writers: list[asyncio.StreamWriter] = []
        self.handlers: set[asyncio.Task[None]] = set()
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> ScriptedStation:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for w in self.writers:
            w.close()
        if self.handlers:  # they end at the end of their streams
            await asyncio.wait(self.handlers, timeout=5)

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"acme+tcp://127.0.0.1:{self.server.sockets[0].getsockname()[1]}?station=3"

    def send(self, line: str) -> None:
        for w in self.writers:
            w.write(line.encode() + b"\r\n")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self.handlers.add(handler)
        self.writers.append(writer)
        writer.write(self.hello.encode() + b"\r\n")
        while raw := await reader.readline():
            assert raw.endswith(b"\r\n"), raw
            line = raw.decode("ascii")[:-2]
            self.lines.append(line)
            for reply in self.answer(line):
                writer.write(reply.encode() + b"\r\n")


def ok_to_everything(line: str) -> list[str]:
    verb, _, rest = line.partition(" ")
    if verb == "RD":
        items = rest.split(" ")[1:]
        return ["OK " + " ".join(f"{i}=1@1700000000000000000" for i in items)]
    return ["OK"]


async def test_the_bytes_of_reads_writes_and_subscriptions() -> None:
    # the station allows 2 items per request, fewer than the driver's 16
    async with ScriptedStation(ok_to_everything) as station, \
            make(station.url, max_batch=16) as d:
        result = await d.read(d.plan(pts("CH5", "CH6:u64", "CH5:i64", "ST", "CH8:bool")))
        assert result.raw.tolist() == [1.0] * 5
        assert (result.sources() == 1_700_000_000_000_000_000).all()
        await d.write([
            WriteItem(pts("CH8:text")[0], "a b%@=ü~"),
            WriteItem(pts("CH6:u64")[0], 2**64 - 1),
            WriteItem(pts("CH7:bool")[0], True),
            WriteItem(pts("CH5")[0], 0.1),
            WriteItem(pts("CH9:i64")[0], -5),
        ])
        sub = await d.subscribe(pts("CH5", "CH6:u64", "ST"), RecordingSink())
        await d.unsubscribe(sub)
    assert station.lines == [
        "RD 3 CH5 CH6", "RD 3 ST CH8",
        "WR 3 CH8=a%20b%25%40%3D%C3%BC~ CH6=18446744073709551615", "WR 3 CH7=1 CH5=0.1",
        "WR 3 CH9=-5",
        "SUB 3 CH5 CH6", "SUB 3 ST",
        "UNSUB 3 CH5 CH6", "UNSUB 3 ST",
    ]


async def test_events_are_routed_between_answers_and_for_this_station_only() -> None:
    async with ScriptedStation(ok_to_everything) as station, make(station.url) as d:
        sink = RecordingSink()
        await d.subscribe(pts("CH5", "CH8:text"), sink)
        station.send("EV 4 CH5=9.5@5")  # another station behind the gateway
        station.send("EV 3 CH5=2.5@1700000000000000001 CH8=ok%20go@7 CH77=1@1")
        await sink.wait_for(lambda: len(sink.results) == 1, 2, "the event")
        # an answer still finds its request after unsolicited events
        result = await d.read(d.plan(pts("CH5")))
        assert result.raw[0] == 1.0
    (pushed,) = sink.results
    assert pushed.slots.tolist() == [0, 1]
    assert pushed.raw[0] == 2.5 and pushed.texts == {1: "ok go"}
    assert pushed.sources().tolist() == [1_700_000_000_000_000_001, 7]


@pytest.mark.parametrize("reply", [
    "OK CH5=1.0@1",  # one value for two items
    "OK CH6=1@1 CH5=1@1",  # in the wrong order
    "OK CH5=1.0 CH6=2@1",  # no time stamp
    "OK CH5=1.0@x CH6=2@1",  # a time stamp that is not a number
    "OK CH5=ERR:2 CH6=2@1",  # a malformed error code
    "OK CH5 CH6",  # no values
    "KO",  # neither OK nor ER
    "OK CH5=1.0@1 CH6=\xe9@1",  # not ASCII
])
async def test_malformed_answers_are_protocol_errors(reply: str) -> None:
    def answer(line: str) -> list[str]:
        return [reply] if line.startswith("RD") else ["OK"]

    async with ScriptedStation(answer) as station, make(station.url) as d:
        with pytest.raises(ProtocolError):
            await d.read(d.plan(pts("CH5", "CH6:u64")))
        assert not d.connected  # the stream cannot be trusted any more: start afresh


async def test_an_unsolicited_answer_breaks_the_link() -> None:
    async with ScriptedStation(ok_to_everything) as station, make(station.url) as d:
        sink = RecordingSink()
        await d.subscribe(pts("CH5"), sink)
        station.send("OK")  # nobody asked
        await sink.wait_for(lambda: bool(sink.lost_slots), 2, "the link to drop")
        assert "unsolicited" in d.health.last_error


async def test_a_bad_greeting_fails_the_connect() -> None:
    async with ScriptedStation(ok_to_everything, hello="HELLO ACME-TALLY/2") as station:
        d = make(station.url)
        with pytest.raises(ConnectError, match="expected the greeting"):
            await d.connect()
        await d.close()


async def test_close_during_a_read_ends_the_read_with_an_error_not_a_cancellation(
        sim: TallySim) -> None:
    d = make(sim.url())
    await d.connect()
    sim.faults.latency_s = 0.3
    read = asyncio.ensure_future(d.read(d.plan(pts("CH5"))))
    await asyncio.sleep(0.05)
    await d.close()
    with pytest.raises(ClosedError):
        await read
    assert d.closed and not read.cancelled()
