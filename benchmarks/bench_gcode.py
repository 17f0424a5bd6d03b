"""G-code streaming: lines per second with character counting versus send-and-wait-for-ok.

Both modes stream the same program through :class:`smartline.drivers.cnc.grbl.GcodeJob`
in the same run, against the same simulated GRBL controller running in a separate process
(so it does not share the GIL with the sender), in GRBL's check mode (``$C``: every line
parsed and answered, nothing moves, so motion does not bound the rate). Two links:

* a pty with no added latency (the simulator answers as fast as it parses);
* the same with 1 ms per direction, what a USB-serial adapter (FTDI, CH340) adds — the
  case character counting exists for: send-response pays the round trip per line.

Character counting can have at most 127 bytes unanswered — about 5.7 of these 22-byte
lines — so its gain over send-response is bounded by that window: counting moves a window
per round trip, send-response one line. With no link latency the round trip is mostly the
simulator parsing the window (~40 µs a line), so the ratio stays near 2-3x; with 1 ms per
direction it approaches the window. A profile of the driver in the no-latency case shows its
event loop idle in ``epoll`` 40 % of the time: the window, not the sender, sets the pace.

A bare pyserial loop doing send-and-wait-for-ok on the calling thread (no asyncio, no
driver) is the baseline for the driver's own per-line cost::

    python -m pytest benchmarks/bench_gcode.py -p no:cacheprovider -s
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import serial

from smartline.core import DeviceSpec, parse_url
from smartline.drivers.cnc.grbl import GcodeJob, GcodeProgram, GrblDriver

LINES = 1000
ROUNDS = 3


def program(n: int = LINES) -> GcodeProgram:
    """Typical CAM output: short G1 moves with coordinates and a feed."""
    text = "\n".join(f"G1 X{(i * 7) % 100 + 0.123:.3f} Y{(i * 13) % 100 + 0.456:.3f} F3000"
                     for i in range(n))
    return GcodeProgram.from_text(text, "bench.nc")


@pytest.fixture(params=[0.0, 1.0], ids=["no-latency", "usb-1ms"])
def sim_url(request: pytest.FixtureRequest) -> Iterator[tuple[float, str]]:
    latency_ms = float(request.param)
    proc = subprocess.Popen([sys.executable, "-m", "smartline.hil.grbl", "--latency-ms",
                             str(latency_ms)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    url = json.loads(proc.stdout.readline())["url"]
    try:
        yield latency_ms, url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def _stream(url: str, mode: str, prog: GcodeProgram) -> float:
    d = GrblDriver(DeviceSpec("bench", parse_url(url), timeout_s=2.0))
    async with d:
        t0 = time.perf_counter()
        outcome = await GcodeJob(d, prog, mode=mode, check=True).run()  # type: ignore[arg-type]
        elapsed = time.perf_counter() - t0
        assert outcome.ok, outcome.message
        assert outcome.acked == len(prog.lines)
    return len(prog.lines) / elapsed


def _bare_send_response(url: str, prog: GcodeProgram) -> float:
    """Send a line, read until its ok, repeat: pyserial on this thread, nothing else."""
    port = serial.serial_for_url(parse_url(url).path, baudrate=115200, timeout=2.0)
    try:
        port.reset_input_buffer()
        port.write(b"$C\n")
        assert b"ok" in port.read_until(b"ok\r\n")
        t0 = time.perf_counter()
        for line in prog.lines:
            port.write(line.text.encode() + b"\n")
            answer = port.read_until(b"\r\n")
            assert answer == b"ok\r\n", answer
        elapsed = time.perf_counter() - t0
        port.write(b"$C\n")  # leaves check mode (GRBL resets)
        port.read_until(b"help]\r\n")
    finally:
        port.close()
    return len(prog.lines) / elapsed


def test_gcode_streaming(sim_url: tuple[float, str]) -> None:
    latency_ms, url = sim_url
    prog = program()
    counting = max(asyncio.run(_stream(url, "counting", prog)) for _ in range(ROUNDS))
    send_response = max(asyncio.run(_stream(url, "send-response", prog))
                        for _ in range(ROUNDS))
    bare = max(_bare_send_response(url, prog) for _ in range(ROUNDS))
    ratio = counting / send_response
    print(f"\nG-code streaming, link latency {latency_ms:g} ms per direction, "
          f"{LINES} lines of {sum(len(ln.text) + 1 for ln in prog.lines) / LINES:.0f} bytes, "
          f"GRBL check mode, simulator in its own process:\n"
          f"  character counting      {counting:9.0f} lines/s\n"
          f"  send-response (driver)  {send_response:9.0f} lines/s\n"
          f"  send-response (bare pyserial loop) {bare:9.0f} lines/s\n"
          f"  counting / send-response = {ratio:.1f}x; driver send-response / bare = "
          f"{send_response / bare:.2f}")
    # bounds that cannot flake: a 1 ms link costs send-response >= 2 ms a line, while
    # counting keeps several lines in flight; without latency counting must still win
    if latency_ms >= 1.0:
        assert ratio >= 3.0, f"counting only {ratio:.1f}x send-response over a 1 ms link"
    else:
        assert ratio >= 1.2, f"counting only {ratio:.1f}x send-response"
