"""Every serial profile in drivers/: the simulator serves it from the profile, the driver
reads every readable point GOOD with the value the simulator holds, and writes every
writable point (the simulator records what it was told)."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest

from smartline.config import LineProtocol, data_dir, load_profile
from smartline.core import Quality, WriteItem
from smartline.hil.serial import SerialInstrumentSim
from smartline.testing.conformance import RecordingSink

from .conftest import make_driver, points, value

PROFILES = sorted(p for p in data_dir("drivers").glob("**/*.yaml")
                  if load_profile(p).family == "serial")


def test_the_four_real_profiles_are_there() -> None:
    names = {load_profile(p).name for p in PROFILES}
    assert {"mettler-toledo/mt-sics", "keysight/34461a", "honeywell/xenon-1900",
            "pfeiffer-vacuum/ppt-100"} <= names
    for p in PROFILES:
        profile = load_profile(p)
        assert profile.manual.title and profile.manual.url.startswith("https://")
        assert "Source:" in p.read_text(encoding="utf-8")  # the header cites the manual
        assert isinstance(profile.protocol, LineProtocol)
    assert any(load_profile(p).protocol.checksum is not None  # type: ignore[union-attr]
               for p in PROFILES)


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
async def test_profile_round_trip(path: Path) -> None:
    profile = load_profile(path)
    protocol = profile.protocol
    assert isinstance(protocol, LineProtocol)
    readable = [n for n, p in profile.points.items() if p.access.value in ("r", "rw")]
    writable = [n for n, p in profile.points.items() if p.access.value in ("rw", "w")]
    with SerialInstrumentSim(profile) as sim:
        expected = dict(sim.instrument.values)
        async with make_driver(sim.pty_path, profile, timeout_s=1.0) as d:
            pts = points(*readable)
            if protocol.mode == "streaming":
                sink = RecordingSink()
                await d.subscribe(pts, sink)
                line = str(expected[readable[0]])
                sim.emit(line)
                await sink.wait_for(lambda: sink.latest_equals(pts[0], line), 2,
                                    "the printed line")
                r = sink.results[-1]
            else:
                r = await d.read(d.plan(pts))
            if protocol.mode == "streaming":  # fields the printed line has (a sim value)
                pts = [p for p in pts if "value" in profile.points[p.tag].sim]
            slots = r.slots.tolist()
            bad = {p.tag: r.notes.get(p.slot) for p in pts
                   if r.quality[slots.index(p.slot)] != Quality.GOOD}
            assert not bad
            for p in pts:
                want, got = expected[p.tag], value(r, p)
                if isinstance(want, str):
                    assert got == want, p.tag
                else:
                    assert math.isclose(float(got), float(want), rel_tol=1e-6), p.tag
            assert writable
            wpts = points(*writable, start=100)
            items = []
            for p in wpts:
                hint = profile.points[p.tag].sim.get("value")
                items.append(WriteItem(p, hint if hint is not None else True))
            await d.write(items)
            for _ in range(100):  # a write without a reply (a trigger) is not acknowledged
                if all(it.point.tag in sim.instrument.writes for it in items):
                    break
                await asyncio.sleep(0.01)
            for it in items:
                assert sim.instrument.writes.get(it.point.tag) == it.value, it.point.tag


async def test_a_scan_with_an_identifier_handle_fills_the_handle_points() -> None:
    """A part's QR code with an industrial-internet identifier: the handle points are
    GOOD, the GS1 points of the same scan BAD with a note naming the missing field."""
    profile = load_profile(data_dir("drivers") / "honeywell" / "xenon-1900.yaml")
    names = ["code", "symbology", "handle", "handle_prefix", "handle_suffix", "gtin"]
    with SerialInstrumentSim(profile) as sim:
        async with make_driver(sim.pty_path, profile, timeout_s=1.0) as d:
            pts = points(*names)
            sink = RecordingSink()
            await d.subscribe(pts, sink)
            code = "]Q188.608.24161301/SN-2026-000123"
            sim.scan(code)
            await sink.wait_for(lambda: sink.latest_equals(pts[0], code), 2, "the scan")
            r = sink.results[-1]
            got = {p.tag: value(r, p) for p in pts[:5]}
            assert got == {"code": code, "symbology": "QR Code",
                           "handle": "88.608.24161301/SN-2026-000123",
                           "handle_prefix": "88.608.24161301",
                           "handle_suffix": "SN-2026-000123"}
            i = r.slots.tolist().index(pts[5].slot)
            assert r.quality[i] == Quality.BAD
            assert "has no gtin" in r.notes[pts[5].slot]
