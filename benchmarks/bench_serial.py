"""Serial instrument polls per second: the smartline driver against a bare pyserial loop.

The MT-SICS scale simulator runs in a separate process (its own interpreter and GIL), served
on a pty and on ``socket://``. In the same run, against the same simulator:

* bare pyserial: ``ser.write(b"S\\r\\n"); ser.read_until(b"\\r\\n")`` in a loop on the
  calling thread, no parsing — the baseline;
* smartline: ``await driver.read(plan)`` in a loop, the plan reading the point ``weight``
  (the same ``S`` query): the port is drained, the frame written, the reply awaited on the
  event loop (``loop.add_reader``, no thread hop), matched against the profile's rules,
  the unit checked and a ``ReadResult`` built.

Rounds alternate between the two so that drift of the machine hits both; the best round of
each counts, and the spread of the bare rounds is shown as the noise reference::

    python -m pytest benchmarks/bench_serial.py -p no:cacheprovider -s

Target: ≥ 0.9× the bare loop; the assertion is a safe 0.5× so that it cannot flake.
"""

from __future__ import annotations

import asyncio
import statistics
import time

import serial

from smartline.config import data_dir, load_profile
from smartline.core import DeviceSpec, Point, Quality, parse_url
from smartline.drivers.serial import SerialInstrumentDriver
from smartline.hil.serial import SimProcess
from smartline.tags import parse_profile

SCALE = data_dir("drivers") / "mettler-toledo" / "mt-sics.yaml"
POLLS = 2000
ROUNDS = 5
FLOOR = 0.5


def bare_round(url: str, polls: int) -> float:
    """Polls per second of a bare pyserial loop."""
    ser = serial.serial_for_url(url, timeout=1.0)
    try:
        for _ in range(50):  # warm up
            ser.write(b"S\r\n")
            ser.read_until(b"\r\n")
        t0 = time.perf_counter()
        for _ in range(polls):
            ser.write(b"S\r\n")
            line = ser.read_until(b"\r\n")
        elapsed = time.perf_counter() - t0
        assert line.startswith(b"S S "), line
    finally:
        ser.close()
    return polls / elapsed


async def driver_round(url: str, polls: int) -> float:
    """Polls per second through ``SerialInstrumentDriver.read``."""
    profile = load_profile(SCALE)
    spec = DeviceSpec("scale", parse_url(f"serial://{url}"), timeout_s=1.0,
                      options={"baudrate": 9600}, protocol=profile.protocol)
    async with SerialInstrumentDriver(spec) as d:
        plan = d.plan([Point("weight", 0, parse_profile("weight", "serial"))])
        for _ in range(50):
            await d.read(plan)
        t0 = time.perf_counter()
        for _ in range(polls):
            r = await d.read(plan)
        elapsed = time.perf_counter() - t0
        assert r.quality[0] == Quality.GOOD
    return polls / elapsed


def measure(url: str) -> tuple[float, float, float]:
    """(best bare polls/s, best driver polls/s, bare spread in %)."""
    bare: list[float] = []
    drv: list[float] = []
    for _ in range(ROUNDS):
        bare.append(bare_round(url, POLLS))
        drv.append(asyncio.run(driver_round(url, POLLS)))
    spread = 100.0 * (max(bare) - min(bare)) / statistics.median(bare)
    return max(bare), max(drv), spread


def test_serial_polls_per_second() -> None:
    with SimProcess(SCALE) as urls:
        lines = []
        ratios = {}
        for name in ("pty", "socket"):
            bare, drv, spread = measure(urls[name])
            ratios[name] = drv / bare
            lines.append(f"{name:6s}  bare pyserial {bare:8.0f} polls/s   smartline "
                         f"{drv:8.0f} polls/s   ratio {drv / bare:.2f}x   "
                         f"(bare run-to-run spread {spread:.0f} %)")
    print("\nserial polls per second (MT-SICS 'S', simulator in another process)")
    for line in lines:
        print(line)
    for name, ratio in ratios.items():
        assert ratio >= FLOOR, f"{name}: driver at {ratio:.2f}x of bare pyserial"


if __name__ == "__main__":
    test_serial_polls_per_second()
