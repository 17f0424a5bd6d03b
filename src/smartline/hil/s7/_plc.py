"""A simulated S7 PLC: memory areas (DBs from a profile, M, I, Q), values and faults.

The simulator packs values with its own ``struct`` code (big-endian, S7 STRING header),
never with smartline's decoding, so a byte-order bug cannot pass both ways.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...tags import S7Address, parse_s7

__all__ = ["S7Faults", "S7Identity", "S7PlcSim", "pack_value", "unpack_value"]

_FORMATS = {"BYTE": "B", "USINT": "B", "SINT": "b", "INT": "h", "UINT": "H", "WORD": "H",
            "DINT": "i", "UDINT": "I", "DWORD": "I", "REAL": "f", "LREAL": "d", "LINT": "q",
            "ULINT": "Q", "LWORD": "Q"}
MODE_RUN, MODE_STOP = 0x08, 0x04


@dataclass(slots=True)
class S7Faults:
    """Faults the simulated PLC injects (all off by default).

    ``latency_s`` delays every answer; ``no_answer`` stays silent; ``garbage`` answers bytes
    that are not S7; ``disconnect`` drops the connection when a job arrives; ``protected``
    DB numbers answer item code 0x03 (access denied); ``header_error`` answers every
    read/write job with that error class/code (e.g. 0x8500).
    """

    latency_s: float = 0.0
    no_answer: bool = False
    garbage: bool = False
    disconnect: bool = False
    protected: set[int] = field(default_factory=set)
    header_error: int | None = None

    def clear(self) -> None:
        self.latency_s = 0.0
        self.no_answer = self.garbage = self.disconnect = False
        self.protected = set()
        self.header_error = None


@dataclass(frozen=True, slots=True)
class S7Identity:
    """What the simulated CPU says about itself (SZL 0x0011 and 0x001C)."""

    order_number: str = "6ES7 214-1AG40-0XB0"
    firmware: tuple[int, int, int] = (4, 5, 2)
    as_name: str = "S7-1200 station_1"
    module_name: str = "PLC_1"
    module_type: str = "CPU 1214C DC/DC/DC"
    serial_number: str = "S V-J9AB12345678"
    copyright: str = "Original Siemens Equipment"


def _check_area(addr: S7Address) -> tuple[str, int]:
    return (addr.area, addr.db or 0)


def pack_value(addr: S7Address, value: Any, current: bytes) -> bytes:
    """The bytes ``addr`` holds for ``value`` (``current``: its bytes now, for BOOL bits)."""
    t = addr.s7type
    if t == "STRING":
        n = addr.strlen or 0
        data = str(value).encode("latin-1")[:n]
        return bytes([n, len(data)]) + data + bytes(n - len(data))
    if t == "CHAR":
        n = addr.count or 1
        data = str(value).encode("latin-1")[:n]
        return data + bytes(n - len(data))
    values = list(value) if isinstance(value, list | tuple) else [value]
    if t == "BOOL":
        out = bytearray(current)
        for e, v in enumerate(values):
            byte, bit = divmod(int(addr.bit or 0) + e, 8)
            out[byte] = (out[byte] | (1 << bit)) if v else (out[byte] & ~(1 << bit))
        return bytes(out)
    fmt = _FORMATS[t]
    cast = float if fmt in "fd" else int
    return struct.pack(f">{len(values)}{fmt}", *(cast(v) for v in values))


def unpack_value(addr: S7Address, data: bytes) -> Any:
    """The value ``addr``'s bytes hold (a list for arrays)."""
    t = addr.s7type
    if t == "STRING":
        return data[2:2 + min(data[1], addr.strlen or 0)].decode("latin-1")
    if t == "CHAR":
        return data.split(b"\x00", 1)[0].decode("latin-1")
    n = addr.count or 1
    if t == "BOOL":
        bits = [bool(data[(int(addr.bit or 0) + e) // 8] >> ((int(addr.bit or 0) + e) % 8) & 1)
                for e in range(n)]
        return bits if addr.count is not None else bits[0]
    values = list(struct.unpack(f">{n}{_FORMATS[t]}", data))
    return values if addr.count is not None else values[0]


class S7PlcSim:
    """The memory and state of one simulated S7 CPU (served by :class:`S7ServerSim`).

    ``points`` are name → address text (the S7 grammar); data blocks are as large as their
    points need (at least ``min_db_size``) unless ``dbs`` gives sizes. M, I and Q have
    ``m_size``/``i_size``/``q_size`` bytes. Every value starts at 0 or the profile's
    ``sim: {value: ...}`` hint.
    """

    def __init__(self, points: Mapping[str, str | S7Address] | None = None, *,
                 dbs: Mapping[int, int] | None = None, m_size: int = 256, i_size: int = 128,
                 q_size: int = 128, min_db_size: int = 16, identity: S7Identity | None = None,
                 name: str = "s7-plc") -> None:
        self.name = name
        self.points: dict[str, S7Address] = {}
        for key, p in (points or {}).items():
            self.points[key] = parse_s7(p) if isinstance(p, str) else p
        sizes: dict[int, int] = {}
        for a in self.points.values():
            if a.area == "DB":
                sizes[a.db or 0] = max(sizes.get(a.db or 0, min_db_size), a.end)
        for db, size in (dbs or {}).items():
            sizes[db] = max(sizes.get(db, 0), size)
        self.areas: dict[tuple[str, int], bytearray] = {
            ("DB", db): bytearray(size) for db, size in sorted(sizes.items())}
        self.areas[("M", 0)] = bytearray(m_size)
        self.areas[("I", 0)] = bytearray(i_size)
        self.areas[("Q", 0)] = bytearray(q_size)
        for a in self.points.values():
            if a.area != "DB" and a.end > len(self.areas[_check_area(a)]):
                raise ValueError(f"{a.canonical()} is past the end of the {a.area} area "
                                 f"({len(self.areas[_check_area(a)])} bytes)")
        self.faults = S7Faults()
        self.identity = identity or S7Identity()
        self.mode = MODE_RUN
        self.writes = 0

    @classmethod
    def from_profile(cls, profile: Any, *, dbs: Mapping[int, int] | None = None,
                     name: str = "") -> S7PlcSim:
        """A PLC serving a ``family: s7`` profile's points (a ``Profile`` or a file path)."""
        if isinstance(profile, str | os.PathLike | Path):
            from ...config import load_profile  # the simulator may read profiles

            profile = load_profile(profile)
        if profile.family != "s7":
            raise ValueError(f"profile {profile.name} is a {profile.family} profile, not s7")
        points = {n: p.address for n, p in profile.points.items()
                  if isinstance(p.address, S7Address)}  # CPU.* points come from the SZL
        plc = cls(points, dbs=dbs, name=name or profile.name)
        for n, p in profile.points.items():
            value = p.sim.get("value") if p.sim else None
            if value is not None and n in plc.points:
                plc.set(n, plc.to_raw(profile.points[n], value))
        return plc

    @staticmethod
    def to_raw(point: Any, eng: Any) -> Any:
        scale = getattr(point, "scale", None)
        if scale is None or isinstance(eng, str | bool):
            return eng
        return scale.to_raw(float(eng))

    # -- the plant's API ------------------------------------------------------------------------
    def address(self, name_or_address: str) -> S7Address:
        a = self.points.get(name_or_address)
        return a if a is not None else parse_s7(name_or_address)

    def set(self, name: str, value: Any) -> None:
        """Set a point (a name or an address text) to a raw value."""
        a = self.address(name)
        area = self.areas[_check_area(a)]
        area[a.byte:a.end] = pack_value(a, value, bytes(area[a.byte:a.end]))

    def get(self, name: str) -> Any:
        a = self.address(name)
        return unpack_value(a, bytes(self.areas[_check_area(a)][a.byte:a.end]))

    def set_bytes(self, area: str, db: int, start: int, data: Iterable[int]) -> None:
        buf = self.areas[(area, db)]
        data = bytes(data)
        buf[start:start + len(data)] = data

    def get_bytes(self, area: str, db: int, start: int, length: int) -> bytes:
        return bytes(self.areas[(area, db)][start:start + length])

    def run(self) -> None:
        self.mode = MODE_RUN

    def stop(self) -> None:
        self.mode = MODE_STOP
