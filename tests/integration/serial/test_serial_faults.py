"""Every fault a line instrument shows, against the simulator on a pty: the point goes BAD
with the reason and a note in words, and the next poll is clean again."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from smartline.config import load_profile
from smartline.core import (
    ConnectError,
    DeviceError,
    DeviceTimeoutError,
    ProtocolError,
    Quality,
    Reason,
    WriteItem,
)
from smartline.hil.serial import SerialInstrumentSim
from smartline.testing.conformance import RecordingSink

from .conftest import DMM, GAUGE, SCALE, SCANNER, make_driver, notes, points, value

SCALE_PROFILE = load_profile(SCALE)


async def recovered(d: object, plan: object) -> object:
    """Read until the driver is back (it reopens the port after its backoff)."""
    for _ in range(100):
        try:
            return await d.read(plan)  # type: ignore[attr-defined]
        except Exception:
            await asyncio.sleep(0.02)
    raise AssertionError("the driver did not recover")


async def test_no_reply_is_a_timeout_in_words(scale_sim: SerialInstrumentSim) -> None:
    async with make_driver(scale_sim.pty_path, SCALE_PROFILE, timeout_s=0.3) as d:
        plan = d.plan(points("weight"))
        scale_sim.instrument.fault("no_reply", command="stable_weight")
        t0 = time.monotonic()
        with pytest.raises(DeviceTimeoutError, match=r"no reply to 'S' within 300 ms$"):
            await d.read(plan)
        assert time.monotonic() - t0 < 0.45
        r = await recovered(d, plan)
        assert r.quality[0] == Quality.GOOD  # type: ignore[attr-defined]


async def test_partial_line_times_out_and_says_what_came(scale_sim: SerialInstrumentSim
                                                         ) -> None:
    async with make_driver(scale_sim.pty_path, SCALE_PROFILE) as d:
        plan = d.plan(points("weight"))
        scale_sim.instrument.fault("partial", command="stable_weight")
        with pytest.raises(DeviceTimeoutError, match=r"\(partial 'S S +10'\)$"):
            await d.read(plan)
        r = await recovered(d, plan)  # the half line is drained: the next reply is clean
        assert r.quality[0] == Quality.GOOD  # type: ignore[attr-defined]
        assert d.stats()["stale_bytes"] == 0  # the port was reopened and flushed


@pytest.mark.parametrize(("kind", "text", "note"), [
    ("noise", "", "unexpected bytes in reply"),
    ("unexpected", "I4 A \"X\"", "unexpected reply 'I4 A \"X\"' to 'SI'"),
])
async def test_noise_and_unexpected_replies_are_protocol_errors(
        scale_sim: SerialInstrumentSim, kind: str, text: str, note: str) -> None:
    async with make_driver(scale_sim.pty_path, SCALE_PROFILE) as d:
        pts = points("weight", "weight_now", "serial_number")
        plan = d.plan(pts)
        scale_sim.instrument.fault(kind, command="weight_now", text=text)  # type: ignore[arg-type]
        r = await d.read(plan)
        assert list(r.quality) == [Quality.GOOD, Quality.BAD, Quality.GOOD]
        assert r.reason[1] == Reason.PROTOCOL_ERROR
        assert note in notes(r, pts)[1]
        assert d.connected
        r = await d.read(plan)
        assert (r.quality == Quality.GOOD).all()


async def test_nothing_understood_raises_protocol_error(scale_sim: SerialInstrumentSim
                                                        ) -> None:
    async with make_driver(scale_sim.pty_path, SCALE_PROFILE) as d:
        plan = d.plan(points("weight"))
        scale_sim.instrument.fault("unexpected", text="S X 1", count=1)
        with pytest.raises(ProtocolError, match="unexpected reply 'S X 1' to 'S'"):
            await d.read(plan)
        r = await recovered(d, plan)
        assert r.quality[0] == Quality.GOOD  # type: ignore[attr-defined]


@pytest.mark.parametrize(("reply", "note"), [
    ("S +", "S +: overload"),
    ("S -", "S -: underload (weighing pan missing?)"),
    ("S I", "S I: not stable within the scale's timeout (or busy)"),
    ("ES", "ES: syntax error: the scale did not understand the command"),
    ("EL", "EL: logical error: the command cannot be executed"),
])
async def test_error_replies_mark_only_their_points(scale_sim: SerialInstrumentSim,
                                                    reply: str, note: str) -> None:
    async with make_driver(scale_sim.pty_path, SCALE_PROFILE) as d:
        pts = points("weight", "tare_weight")
        scale_sim.instrument.fault("error", command="stable_weight", text=reply)
        r = await d.read(d.plan(pts))
        assert r.quality[0] == Quality.BAD and r.quality[1] == Quality.GOOD
        assert notes(r, pts)[0] == note
        expected = Reason.PROTOCOL_ERROR if reply == "ES" else Reason.DEVICE_ERROR
        assert r.reason[0] == expected
        assert d.health.failures == 0


async def test_a_scale_switched_to_kg_is_bad_with_a_note(scale_sim: SerialInstrumentSim
                                                         ) -> None:
    scale_sim.instrument.units["weight"] = "kg"
    async with make_driver(scale_sim.pty_path, SCALE_PROFILE) as d:
        pts = points("weight")
        r = await d.read(d.plan(pts))
        assert r.quality[0] == Quality.BAD and r.reason[0] == Reason.DEVICE_ERROR
        assert "is in 'kg', the profile expects 'g'" in notes(r, pts)[0]


async def test_one_command_in_flight(scale_sim: SerialInstrumentSim) -> None:
    """MT-SICS loses pipelined commands: each is sent only after the previous reply."""
    scale_sim.instrument.latency_s = 0.03
    stamps: list[float] = []
    handle = scale_sim.instrument.handle

    def stamped(line: bytes) -> bytes | None:
        stamps.append(time.monotonic())
        return handle(line)

    scale_sim.instrument.handle = stamped  # type: ignore[method-assign]
    async with make_driver(scale_sim.pty_path, SCALE_PROFILE) as d:
        stamps.clear()
        r = await d.read(d.plan(points("weight", "weight_now", "serial_number",
                                       "tare_weight")))
        assert (r.quality == Quality.GOOD).all()
    assert len(stamps) == 4
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert min(gaps) >= 0.029, gaps


async def test_write_refused_by_the_device_raises_device_error(
        scale_sim: SerialInstrumentSim) -> None:
    async with make_driver(scale_sim.pty_path, SCALE_PROFILE) as d:
        (tare,) = points("tare", start=5)
        scale_sim.instrument.fault("error", command="tare", text="T +")
        with pytest.raises(DeviceError, match="upper limit of the taring range"):
            await d.write([WriteItem(tare, True)])


async def test_bad_checksum_is_a_protocol_error() -> None:
    profile = load_profile(GAUGE)
    with SerialInstrumentSim(profile) as sim:
        async with make_driver(sim.pty_path, profile) as d:
            pts = points("pressure")
            plan = d.plan(pts)
            r = await d.read(plan)
            assert value(r, pts[0]) == pytest.approx(1000.0)
            sim.instrument.fault("bad_checksum")
            with pytest.raises(ProtocolError, match="bad checksum in reply "
                               "'0011074006100023026': it ends in '026', the sum8 of the "
                               "rest is 025"):
                await d.read(plan)
            r = await recovered(d, plan)
            assert r.quality[0] == Quality.GOOD  # type: ignore[attr-defined]
            sim.set("pressure", 2.5e-3)
            r = await d.read(plan)
            assert value(r, pts[0]) == pytest.approx(2.5e-3)
            assert sim.instrument.received[-1] == "0010074002=?"


async def test_an_unknown_parameter_answers_no_def() -> None:
    profile = load_profile(GAUGE)
    with SerialInstrumentSim(profile, station=7) as sim:
        async with make_driver(sim.pty_path, profile, station=7) as d:
            pts = points("pressure")
            sim.instrument.forget("pressure")  # this gauge has no P:740
            r = await d.read(d.plan(pts))
            assert r.reason[0] == Reason.DEVICE_ERROR
            assert notes(r, pts)[0] == ("0071074006NO_DEF: NO_DEF: the parameter does not "
                                        "exist")


async def test_scpi_write_confirmed_by_the_error_queue() -> None:
    profile = load_profile(DMM)
    with SerialInstrumentSim(profile) as sim:
        async with make_driver(sim.socket_url(), profile) as d:
            nplc, text = points("nplc", "display_text")
            await d.write([WriteItem(nplc, 100.0), WriteItem(text, "HELLO 1")])
            r = await d.read(d.plan([nplc, text]))
            assert value(r, nplc) == 100.0 and value(r, text) == "HELLO 1"
            with pytest.raises(DeviceError, match=r'-222, Data out of range'):
                await d.write([WriteItem(nplc, 3.0)])
            # an unknown command lands in the queue (-113) and is read as a point
            assert d.port is not None
            for _ in range(25):
                d.port.write(b"BOGUS:CMD\n")
            await asyncio.sleep(0.05)
            code, msg = points("error_code", "error_text", start=4)
            first = await d.read(d.plan([code, msg]))
            assert (value(first, code), value(first, msg)) == (-113.0, "Undefined header")
            seen = [first]
            for _ in range(20):
                seen.append(await d.read(d.plan([code, msg])))
            texts = [value(s, msg) for s in seen]
            assert texts[:19] == ["Undefined header"] * 19  # 20 slots: the last one says
            assert texts[19:] == ["Queue overflow", "No error"]  # it overflowed (SCPI)


async def test_scanner_stream_holds_the_last_scan_and_a_lost_port_goes_stale() -> None:
    profile = load_profile(SCANNER)
    with SerialInstrumentSim(profile) as sim:
        d = make_driver(sim.socket_url(), profile)
        async with d:
            pts = points("code", "gtin", "batch", "expiry", "symbology")
            sink = RecordingSink()
            await d.subscribe(pts, sink)
            for _ in range(200):  # the simulator has taken the connection
                if sim.connections():
                    break
                await asyncio.sleep(0.01)
            sim.scan("]C10104012345000017\x1d10LOT-7")  # a code without a valid GTIN
            await sink.wait_for(lambda: sink.latest_equals(pts[0], "]C10104012345000017"
                                                           "\x1d10LOT-7"), 2, "the scan")
            last = sink.results[-1]
            assert last.quality[1] == Quality.BAD and last.reason[1] == Reason.DECODE_ERROR
            assert "check digit" in last.notes[1]
            good = "]d2010950110153000317261231\x1d10ABC-1"
            sim.scan(good)
            await sink.wait_for(lambda: sink.latest_equals(pts[1], "09501101530003"), 2,
                                "the GTIN")
            last = sink.results[-1]
            assert [last.texts.get(p.slot) for p in pts] == [
                good, "09501101530003", "ABC-1", "2026-12-31", "GS1 DataMatrix"]
            sim.stop_stream()  # a scanner is silent between scans: values stay GOOD
            sim.scan("]E05901234123457")
            await asyncio.sleep(0.1)
            r = await d.read(d.plan(pts))
            assert (r.quality == Quality.GOOD).all() and d.health.reads == 1
            assert r.texts[0] == good
            sim.kick()  # the serial server drops the connection
            await sink.wait_for(lambda: bool(sink.lost_slots), 2, "the stream to be lost")
            assert set(sink.lost_slots) >= {0, 1, 2, 3, 4}
            sim.resume_stream()
            (trigger,) = points("trigger", start=9)
            for _ in range(50):  # reconnected by itself; the trigger prints the code again
                if d.connected:
                    break
                await asyncio.sleep(0.02)
            sim.instrument.values["code"] = "]Q188.608.24061301/App_scxt0716"
            await d.write([WriteItem(trigger, True)])
            await sink.wait_for(lambda: sink.latest_equals(
                pts[0], "]Q188.608.24061301/App_scxt0716"), 2, "the triggered scan")
            assert sim.instrument.writes["trigger"] is True


async def test_a_missing_port_is_a_connect_error() -> None:
    d = make_driver("/dev/smartline-no-such-port", SCALE_PROFILE)
    with pytest.raises(ConnectError, match="cannot open /dev/smartline-no-such-port"):
        await d.connect()
    await d.close()


async def test_a_port_that_is_not_the_instrument_fails_to_connect() -> None:
    profile = load_profile(DMM)  # a SCPI meter where the scale should be
    with SerialInstrumentSim(profile) as sim:
        d = make_driver(sim.pty_path, SCALE_PROFILE)
        with pytest.raises(DeviceTimeoutError, match="no reply to 'I4'"):
            await d.connect()  # the meter puts 'I4' in its error queue and says nothing
        await d.close()


async def test_an_error_reply_is_an_answer_even_alone(scale_sim: SerialInstrumentSim) -> None:
    """A level-0 scale answers ES to TA: the point is BAD, but the link is fine."""
    scale_sim.instrument.forget("tare_query")
    async with make_driver(scale_sim.pty_path, SCALE_PROFILE) as d:
        pts = points("tare_weight")
        r = await d.read(d.plan(pts))
        assert r.reason[0] == Reason.PROTOCOL_ERROR
        assert notes(r, pts)[0].startswith("ES: syntax error")
        assert d.connected and d.health.failures == 0
