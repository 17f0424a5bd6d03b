"""Helpers of the serial instrument tests: profiles, drivers on the simulator's ports."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from smartline.config import Profile, data_dir, load_profile
from smartline.core import DeviceSpec, Point, RetryPolicy, parse_url
from smartline.drivers.serial import SerialInstrumentDriver
from smartline.hil.serial import SerialInstrumentSim
from smartline.tags import parse_profile

SCALE = data_dir("drivers") / "mettler-toledo" / "mt-sics.yaml"
DMM = data_dir("drivers") / "keysight" / "34461a.yaml"
SCANNER = data_dir("drivers") / "honeywell" / "xenon-1900.yaml"
GAUGE = data_dir("drivers") / "pfeiffer-vacuum" / "ppt-100.yaml"

FAST_RETRY = RetryPolicy(backoff_initial_s=0.01, backoff_max_s=0.05, jitter=0.0,
                         demote_after=1000)


def make_driver(port: str, profile: Profile, *, timeout_s: float = 0.3,
                name: str = "dev", **options: object) -> SerialInstrumentDriver:
    """A driver for ``serial://PORT`` with the profile's protocol and defaults."""
    opts = {k: v for k, v in profile.defaults.items() if k != "timeout_ms"}
    opts.update(options)
    return SerialInstrumentDriver(DeviceSpec(name, parse_url(f"serial://{port}"),
                                             timeout_s=timeout_s, retry=FAST_RETRY,
                                             options=opts, protocol=profile.protocol))


def points(*names: str, start: int = 0) -> list[Point]:
    return [Point(n, start + i, parse_profile(n, "serial")) for i, n in enumerate(names)]


def value(result: object, point: Point) -> object:
    """The value of ``point`` in a read result (text or number)."""
    slots = result.slots.tolist()  # type: ignore[attr-defined]
    i = slots.index(point.slot)
    if point.slot in result.texts:  # type: ignore[attr-defined]
        return result.texts[point.slot]  # type: ignore[attr-defined]
    return float(result.raw[i])  # type: ignore[attr-defined]


def notes(result: object, pts: Sequence[Point]) -> list[str]:
    return [result.notes.get(p.slot, "") for p in pts]  # type: ignore[attr-defined]


@pytest.fixture
def scale_sim() -> Iterator[SerialInstrumentSim]:
    with SerialInstrumentSim(load_profile(SCALE)) as sim:
        yield sim
