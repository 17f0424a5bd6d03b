"""Helpers of the S7 integration tests."""

from __future__ import annotations

from typing import Any

from smartline.core import DeviceSpec, Point, RetryPolicy, parse_url
from smartline.drivers.families.s7 import parse_s7_point
from smartline.drivers.s7 import S7Driver
from smartline.hil.s7 import S7ServerSim

FAST_RETRY = RetryPolicy(backoff_initial_s=0.02, backoff_max_s=0.2, jitter=0.0,
                         demote_after=100)


def points(*texts: str, first_slot: int = 0) -> list[Point]:
    """Points named t0, t1 … for address texts, slots one after another."""
    out = []
    slot = first_slot
    for i, text in enumerate(texts):
        addr = parse_s7_point(text)
        out.append(Point(f"t{i}", slot, addr))
        slot += addr.elements
    return out


def driver(sim: S7ServerSim, query: str | None = None, *, timeout_s: float = 1.0,
           retry: RetryPolicy = FAST_RETRY, **options: Any) -> S7Driver:
    url = f"s7://{sim.host}:{sim.port}" + (f"?{query}" if query is not None else
                                            f"?rack={sim.rack}&slot={sim.slot}")
    return S7Driver(DeviceSpec("plc", parse_url(url), timeout_s=timeout_s, retry=retry,
                               options=options or None))


def value_at(result: Any, point: Point) -> Any:
    """The value a read gave ``point``: text, exact int, a list for arrays, else a float."""
    slots = result.slots.tolist()
    i = slots.index(point.slot)
    if point.slot in result.texts:
        return result.texts[point.slot]
    if point.slot in result.exact:
        return result.exact[point.slot]
    n = point.address.elements
    if getattr(point.address, "count", None) is not None and n >= 1:
        return [float(v) for v in result.raw[i:i + n]]
    return float(result.raw[i])
