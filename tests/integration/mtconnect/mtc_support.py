"""Helpers of the MTConnect integration tests."""

from __future__ import annotations

from collections.abc import Sequence

from smartline.core import DeviceSpec, Point, ReadResult, RetryPolicy, parse_url
from smartline.drivers.cnc.mtconnect import MtConnectDriver
from smartline.tags import parse_profile


def points(*names: str, first_slot: int = 0) -> list[Point]:
    """Points addressed by data item id or name, in consecutive slots."""
    return [Point(n, first_slot + i, parse_profile(n, "cnc")) for i, n in enumerate(names)]


def driver(url: str, timeout_s: float = 1.0, **options: object) -> MtConnectDriver:
    retry = RetryPolicy(backoff_initial_s=0.05, backoff_max_s=0.2, demote_after=100)
    return MtConnectDriver(DeviceSpec("cnc", parse_url(url), timeout_s=timeout_s, retry=retry,
                                      options=options or None))


def values(result: ReadResult, pts: Sequence[Point]) -> dict[str, object]:
    """tag -> value (text, float or None for BAD)."""
    out: dict[str, object] = {}
    slots = result.slots.tolist()
    for p in pts:
        i = slots.index(p.slot)
        if result.quality[i] != 0:
            out[p.tag] = None
        elif p.slot in result.texts:
            out[p.tag] = result.texts[p.slot]
        else:
            out[p.tag] = float(result.raw[i])
    return out


def note(result: ReadResult, point: Point) -> str:
    return result.notes.get(point.slot, "")
