"""The vendor's simulator on its own: its command line, its answers on a raw socket (no
driver code involved), and its agreement with the Tally-4 profile the package ships."""

from __future__ import annotations

import asyncio
import json
import select
import signal
import subprocess
import sys
from pathlib import Path

import acme_tally
import pytest
from acme_tally.address import TYPES
from acme_tally.sim import KINDS, TALLY_4, TallySim

from smartline.config import load_profile

PROFILE = Path(acme_tally.__file__).parent / "profiles" / "acme" / "tally-4.yaml"


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_the_command_line_prints_one_json_line_per_station_and_stops_on_a_signal(
        stop: signal.Signals) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "acme_tally.sim", "--port", "0",
                             "--station", "1", "--station", "5"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready, "the simulator printed nothing within 30 s"
        # both lines are written at once: the first readline may buffer the second
        lines = [json.loads(proc.stdout.readline()) for _ in range(2)]
    finally:
        proc.send_signal(stop)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert [x["device"] for x in lines] == ["tally-1", "tally-5"]
    port = lines[0]["url"].split(":")[2].split("?")[0]
    assert [x["url"] for x in lines] == [f"acme+tcp://127.0.0.1:{port}?station=1",
                                         f"acme+tcp://127.0.0.1:{port}?station=5"]
    assert "smartline" not in err and "Traceback" not in err


def test_the_simulator_imports_neither_smartline_nor_the_driver() -> None:
    code = ("import sys, acme_tally.sim; "
            "print(sorted(m for m in sys.modules if m.startswith(('smartline', 'acme_tally'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=60)
    assert done.stdout.strip() == "['acme_tally', 'acme_tally.sim']"


async def ask(sim: TallySim, *requests: bytes) -> list[str]:
    """Send raw request lines; return the greeting and every line answered."""
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
    try:
        out = [(await reader.readline()).decode()]
        for r in requests:
            writer.write(r)
            await writer.drain()
            out.append((await reader.readline()).decode())
        return [x.removesuffix("\r\n") for x in out]
    finally:
        writer.close()


async def test_the_simulator_answers_by_the_protocol_reference() -> None:
    async with TallySim(max_items=3) as sim:
        sim.set(8, "a b")
        stamp = sim.stations[1].channels[8].changed_ns
        hello, *answers = await ask(
            sim,
            b"RD 1 CH8 CH99 XX\r\n",
            b"RD 1 CH1 CH2 CH3 CH4\r\n",
            b"RD 2 CH1\r\n",
            b"WR 1 ST=3\r\n",
            b"WR 1 CH6=12 CH7=2\r\n",
            b"WR 1 CH6=12 CH8=%C3%BC\n",  # LF alone is accepted too
            b"NOPE 1\r\n",
            b"RD 1  CH1\r\n",
            b"RD\r\n",
        )
        assert hello == "HELLO ACME-TALLY/1 MAXITEMS=3"
        assert answers == [
            f"OK CH8=a%20b@{stamp} CH99=ERR:02 XX=ERR:01",
            "ER 06 too many items: at most 3 per request",
            "ER 04 no station 2",
            "ER 05 ST is read-only",
            "ER 03 bad value for CH7: expected 0 or 1, found 2",
            "OK",
            "ER 01 syntax: unknown command NOPE",
            "ER 01 syntax: items are separated by one space",
            "ER 01 syntax: expected COMMAND STATION ITEM...",
        ]
        assert sim.get(6) == 12 and sim.get(8) == "ü"
        assert list(sim.writes) == [(1, "CH6", 12), (1, "CH8", "ü")]


async def test_the_simulator_refuses_values_outside_a_channels_kind() -> None:
    async with TallySim() as sim:
        _, *answers = await ask(
            sim, b"WR 1 CH1=-1\r\n", b"WR 1 CH9=9223372036854775808\r\n",
            b"WR 1 CH5=1,5\r\n", b"WR 1 CH8=%FF\r\n", b"WR 1 CH8=a b\r\n",
            b"WR 1 CH8=" + b"%41" * 65 + b"\r\n")
    assert [a[:24] for a in answers] == [
        "ER 03 bad value for CH1:", "ER 03 bad value for CH9:", "ER 03 bad value for CH5:",
        "ER 03 bad value for CH8:", "ER 01 syntax: expected I", "ER 03 bad value for CH8:"]
    assert not sim.writes


def test_the_tally_4_profile_names_the_simulators_channels() -> None:
    profile = load_profile(PROFILE)
    kind_of = {dtype: name for name, dtype in TYPES.items()}
    channels = set()
    for point in profile.points.values():
        address = point.address
        if address.channel is None:  # type: ignore[attr-defined]
            continue
        channel = address.channel  # type: ignore[attr-defined]
        channels.add(channel)
        assert TALLY_4[channel][0] == kind_of[address.dtype], point.name
    assert channels == set(TALLY_4)
    assert set(KINDS) == set(TYPES)
