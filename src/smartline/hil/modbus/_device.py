"""A simulated Modbus device: a register map (from a profile), a plant-side API and faults.

The device owns its register store (numpy arrays per table). pymodbus's server serves it
through a :class:`~pymodbus.simulator.SimDevice` whose ``action`` hook copies the store
into pymodbus's buffers before every request and takes client writes back — so the plant
model can set and get values synchronously, between requests, without touching pymodbus.
Addresses the map does not define answer exception 2 (illegal data address), as a real
device does; that is what the driver's hole handling is tested against. A device with an
``identification`` answers FC 43 / MEI 14 (Read Device Identification) with it; one
without answers exception 1 (illegal function), as many simple devices do.
"""

from __future__ import annotations

import asyncio
import math
import os
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pymodbus.constants import ExcCodes
from pymodbus.simulator import DataType as SimType
from pymodbus.simulator import SimData, SimDevice

from ...tags import Access, DataType, ModbusAddress, Scale, parse_modbus
from ._values import decode_words, encode_words

__all__ = ["IDENTIFICATION_OBJECTS", "ModbusDeviceSim", "ModbusFaults", "SimPoint"]

#: Read Device Identification object names and ids (Modbus Application Protocol §6.21)
IDENTIFICATION_OBJECTS: Mapping[str, int] = {
    "VendorName": 0x00, "ProductCode": 0x01, "MajorMinorRevision": 0x02, "VendorUrl": 0x03,
    "ProductName": 0x04, "ModelName": 0x05, "UserApplicationName": 0x06,
}

_FC_AREA = {1: "co", 5: "co", 15: "co", 2: "di", 3: "hr", 6: "hr", 16: "hr", 22: "hr", 23: "hr",
            4: "ir"}
_CLIENT_WRITES = frozenset({5, 6, 15, 16, 22, 23})
#: register types encode_words stores rounded
_ROUNDED_TYPES = frozenset({DataType.INT16, DataType.UINT16, DataType.INT32, DataType.UINT32,
                            DataType.INT64, DataType.UINT64})


@dataclass(slots=True)
class ModbusFaults:
    """Faults a simulated device injects into its answers (all off by default).

    ``latency_s`` delays every answer; ``no_answer`` stays silent; ``exception`` answers
    that exception code; ``corrupt_crc`` flips the CRC of RTU frames (the whole frame is
    garbled on Modbus/TCP, which has no CRC); ``garbage`` answers bytes that are not a
    frame; ``truncate`` sends only the first N bytes; ``disconnect`` drops TCP connections
    as soon as a request arrives (and refuses none: stop the server for that).
    ``remaining`` limits the faults to the next N requests (None: until cleared).
    """

    latency_s: float = 0.0
    no_answer: bool = False
    exception: int | None = None
    corrupt_crc: bool = False
    garbage: bool = False
    truncate: int | None = None
    disconnect: bool = False
    remaining: int | None = None

    def clear(self) -> None:
        self.latency_s = 0.0
        self.no_answer = self.corrupt_crc = self.garbage = self.disconnect = False
        self.exception = self.truncate = self.remaining = None

    @property
    def active(self) -> bool:
        return bool(self.latency_s or self.no_answer or self.exception is not None
                    or self.corrupt_crc or self.garbage or self.truncate is not None
                    or self.disconnect)

    @property
    def mangles(self) -> bool:
        """Faults applied to the answer's bytes."""
        return bool(self.no_answer or self.corrupt_crc or self.garbage
                    or self.truncate is not None or self.disconnect)


@dataclass(frozen=True, slots=True)
class SimPoint:
    """A named value in the map: its address, scaling and access."""

    name: str
    address: ModbusAddress
    scale: Scale | None = None
    access: Access = Access.R

    def to_raw(self, eng: Any) -> Any:
        """Engineering units → raw, with the point's :class:`~smartline.tags.Scale`."""
        scale = self.scale
        if scale is None or isinstance(eng, str | bool):
            return eng
        if isinstance(eng, list | tuple):
            return [scale.to_raw(float(v)) for v in eng]
        return scale.to_raw(float(eng))

    def to_eng(self, raw: Any) -> Any:
        """Raw → engineering units, with the point's :class:`~smartline.tags.Scale`."""
        scale = self.scale
        if scale is None or isinstance(raw, str | bool):
            return raw
        if isinstance(raw, list | tuple):
            return [scale.to_eng(float(v)) for v in raw]
        return scale.to_eng(float(raw))


@dataclass(slots=True)
class _Table:
    values: NDArray[np.uint16] | NDArray[np.uint8]
    valid: NDArray[np.bool_]
    readonly: NDArray[np.bool_]


@dataclass(slots=True)
class WriteRecord:
    """One client write the device accepted."""

    function_code: int
    area: str
    address: int
    values: list[int] | list[bool]


#: client writes a simulated device remembers (the oldest are dropped beyond): a long-running
#: simulator (the demo writes ~300 times a second) must not grow without bound
WRITES_KEPT = 10_000


def _write_history() -> deque[WriteRecord]:
    return deque(maxlen=WRITES_KEPT)


@dataclass(slots=True)
class _Stats:
    requests: int = 0
    #: client writes accepted, counting those no longer in ``writes``
    write_count: int = 0
    #: the last :data:`WRITES_KEPT` client writes, oldest first
    writes: deque[WriteRecord] = field(default_factory=_write_history)


class ModbusDeviceSim:
    """One simulated Modbus device (one unit id).

    Build it from a profile (:meth:`from_profile`) or from ``points`` (name → address text
    or :class:`SimPoint`); ``extra`` adds valid ranges with no name, e.g.
    ``{"hr": [(0, 1000)]}``. Every value starts at the point's ``sim.value`` hint (engineering
    units) or 0. ``identification`` (object name as in :data:`IDENTIFICATION_OBJECTS`, or
    an id 0x80..0xFF for private objects → text) is what FC 43 answers; ``None``: the
    device answers FC 43 with exception 1.
    """

    def __init__(self, unit: int = 1, points: Mapping[str, str | ModbusAddress | SimPoint]
                 | Iterable[SimPoint] = (), *, extra: Mapping[str, Iterable[tuple[int, int]]]
                 | None = None, initial: Mapping[str, Any] | None = None, name: str = "",
                 identification: Mapping[str | int, str] | None = None) -> None:
        if not 0 <= unit <= 247:
            raise ValueError(f"unit id must be 0..247, found {unit}")
        self.unit = unit
        self.name = name or f"unit{unit}"
        #: FC 43 objects by id (None: FC 43 answers exception 1)
        self.identification: dict[int, str] | None = (
            None if identification is None else _objects(identification))
        self.points: dict[str, SimPoint] = {}
        if isinstance(points, Mapping):
            for key, p in points.items():
                self.points[key] = self._point(key, p)
        else:
            for p in points:
                self.points[p.name] = p
        self.faults = ModbusFaults()
        self.stats = _Stats()
        self.on_write: Callable[[WriteRecord], None] | None = None
        self._current: ModbusFaults | None = None
        self._last_words: dict[str, tuple[int, list[int]]] = {}  # integer points
        self._applied = True
        self._read_bits: int | None = None
        ends: dict[str, int] = {"co": 0, "di": 0, "hr": 0, "ir": 0}
        for p in self.points.values():
            ends[p.address.area] = max(ends[p.address.area], p.address.end)
        for area, ranges in (extra or {}).items():
            for _, end in ranges:
                ends[area] = max(ends[area], end)
        self._tables: dict[str, _Table] = {}
        for area, end in ends.items():
            size = max(16, -(-end // 16) * 16)
            values: NDArray[np.uint16] | NDArray[np.uint8] = (
                np.zeros(size, dtype=np.uint8) if area in ("co", "di")
                else np.zeros(size, dtype=np.uint16))
            self._tables[area] = _Table(values, np.zeros(size, dtype=bool),
                                        np.zeros(size, dtype=bool))
        for p in self.points.values():
            a = p.address
            t = self._tables[a.area]
            t.valid[a.offset:a.end] = True
            if a.area == "hr" and p.access is Access.R and a.bit is None:
                t.readonly[a.offset:a.end] = True
        for area, ranges in (extra or {}).items():
            for start, end in ranges:
                self._tables[area].valid[start:end] = True
        for key, value in (initial or {}).items():
            self.set(key, value)

    @staticmethod
    def _point(name: str, p: str | ModbusAddress | SimPoint) -> SimPoint:
        if isinstance(p, SimPoint):
            return p
        addr = parse_modbus(p) if isinstance(p, str) else p
        return SimPoint(name, addr, access=Access.RW)

    @classmethod
    def from_profile(cls, profile: Any, unit: int = 1, *, name: str = "") -> ModbusDeviceSim:
        """A device serving a profile's points (a ``Profile`` or the path of a profile file).

        Initial values come from each point's ``sim: {value: ...}`` hint (engineering units).
        """
        if isinstance(profile, str | os.PathLike | Path):
            from ...config import load_profile  # the simulator may read profiles

            profile = load_profile(profile)
        if profile.family != "modbus":
            raise ValueError(f"profile {profile.name} is a {profile.family} profile, not modbus")
        points = [SimPoint(n, p.address, p.scale, p.access) for n, p in profile.points.items()]
        ident = {"VendorName": profile.vendor, "ProductCode": profile.model,
                 "MajorMinorRevision": profile.manual.revision,
                 "VendorUrl": profile.manual.url, "ProductName": profile.description,
                 "ModelName": profile.model}
        dev = cls(unit, points, name=name or profile.name,
                  identification={k: v for k, v in ident.items() if v})
        for n, p in profile.points.items():
            value = p.sim.get("value") if p.sim else None
            if value is not None:
                dev.set(n, value)
        return dev

    def identify(self, read_code: int, object_id: int) -> dict[int, bytes] | int:
        """The objects FC 43 / MEI 14 answers for ``read_code`` from ``object_id``, or an
        exception code: 1 without identification, 3 for a bad read code, 2 for an unknown
        object asked for individually. An unknown start object restarts the stream at 0."""
        objects = self.identification
        if objects is None:
            return 1
        if read_code == 4:
            text = objects.get(object_id)
            return 2 if text is None else {object_id: text.encode()}
        levels = {1: range(0x00, 0x03), 2: range(0x00, 0x07), 3: range(0x00, 0x100)}
        ids = levels.get(read_code)
        if ids is None:
            return 3
        start = object_id if object_id in ids and object_id in objects else ids.start
        return {i: objects[i].encode() for i in sorted(objects) if i in ids and i >= start}

    # -- the plant's API ------------------------------------------------------------------------
    def set(self, name: str, value: Any) -> None:
        """Set a point in engineering units (scaled back to raw with the point's scale)."""
        p = self.points[name]
        self.set_raw(name, p.to_raw(value))

    def get(self, name: str) -> Any:
        """A point's value in engineering units."""
        p = self.points[name]
        return p.to_eng(self.get_raw(name))

    def set_raw(self, name: str, raw: Any) -> None:
        """Set a point's raw (wire) value."""
        a = self.points[name].address
        if a.is_bit_area:
            values = raw if isinstance(raw, list | tuple) else [raw]
            self.set_bits(a.area, a.offset, [bool(v) for v in values])
        elif a.bit is not None:
            word = int(self._tables[a.area].values[a.offset])
            word = word | (1 << a.bit) if raw else word & ~(1 << a.bit)
            self.set_registers(a.area, a.offset, [word])
        else:
            self.set_registers(a.area, a.offset, self._encode(name, a, raw))

    def _encode(self, name: str, a: ModbusAddress, raw: Any) -> list[int]:
        """``encode_words(a, raw)``, remembering each integer point's last words: a plant
        setting a value every step mostly sets the same rounded value again."""
        if type(raw) not in (int, float) or a.count is not None or a.dtype not in _ROUNDED_TYPES:
            return encode_words(a, raw)
        if isinstance(raw, float):
            if not math.isfinite(raw):
                return encode_words(a, raw)  # refused there
            raw = round(raw)  # what encode_words stores for an integer type
        last = self._last_words.get(name)
        if last is not None and last[0] == raw:
            return last[1]
        words = encode_words(a, raw)
        self._last_words[name] = (raw, words)
        return words

    def get_raw(self, name: str) -> Any:
        a = self.points[name].address
        if a.is_bit_area:
            bits = self.get_bits(a.area, a.offset, a.elements)
            return bits if a.count is not None else bits[0]
        if a.bit is not None:
            return bool(int(self._tables[a.area].values[a.offset]) >> a.bit & 1)
        return decode_words(a, self.get_registers(a.area, a.offset, a.registers))

    def set_registers(self, area: str, offset: int, words: Iterable[int]) -> None:
        values = [int(w) & 0xFFFF for w in words]  # a list: no array built per plant step
        table = self._tables[area].values
        if len(values) == 1:
            table[offset] = values[0]
        else:
            table[offset:offset + len(values)] = values

    def get_registers(self, area: str, offset: int, count: int) -> list[int]:
        return [int(w) for w in self._tables[area].values[offset:offset + count]]

    def set_bits(self, area: str, offset: int, bits: Iterable[bool]) -> None:
        values = np.asarray([bool(b) for b in bits], dtype=np.uint8)
        self._tables[area].values[offset:offset + len(values)] = values

    def get_bits(self, area: str, offset: int, count: int) -> list[bool]:
        return [bool(b) for b in self._tables[area].values[offset:offset + count]]

    def valid(self, area: str, start: int, end: int) -> bool:
        """Whether every address in ``[start, end)`` exists in the map."""
        t = self._tables[area]
        return end <= len(t.valid) and bool(t.valid[start:end].all())

    @property
    def writes(self) -> list[WriteRecord]:
        """The last client writes accepted (oldest first; at most :data:`WRITES_KEPT`, the
        total is ``stats.write_count``). A copy: later writes do not change it."""
        return list(self.stats.writes)

    # -- pymodbus side ----------------------------------------------------------------------------
    def simdevice(self) -> SimDevice:
        """The pymodbus SimDevice that serves this device (one block per table)."""
        blocks: list[list[SimData]] = []
        for area in ("co", "di", "hr", "ir"):
            size = len(self._tables[area].values)
            if area in ("co", "di"):
                blocks.append([SimData(0, count=size, values=False, datatype=SimType.BITS)])
            else:
                blocks.append([SimData(0, count=size, values=0, datatype=SimType.REGISTERS)])
        return SimDevice(id=self.unit, simdata=(blocks[0], blocks[1], blocks[2], blocks[3]),
                         action=self._action)

    def begin_request(self, bits: int | None = None) -> ModbusFaults | None:
        """Called by the server for every request to this unit: the faults that apply to it.

        ``bits`` is the number of coils / discrete inputs a read asks for (pymodbus tells
        the ``action`` hook only how many 16-bit words hold them).
        """
        self.stats.requests += 1
        self._read_bits = bits
        f = self.faults
        current: ModbusFaults | None = None
        if f.active:
            if f.remaining is not None and f.remaining <= 0:
                f.clear()
            else:
                if f.remaining is not None:
                    f.remaining -= 1
                current = ModbusFaults(f.latency_s, f.no_answer, f.exception, f.corrupt_crc,
                                       f.garbage, f.truncate, f.disconnect)
        self._current, self._applied = current, False
        return current

    async def _action(self, function_code: int, start_address: int, address: int,  # noqa: PLR0917
                      count: int, registers: list[int], set_values: list[int] | list[bool] | None,
                      ) -> ExcCodes | None:
        """pymodbus hook: faults, validity, then sync the store with pymodbus's buffer."""
        area = _FC_AREA.get(function_code)
        if area is None:
            return ExcCodes.ILLEGAL_FUNCTION
        client_write = function_code in _CLIENT_WRITES and set_values is not None
        fault, self._applied = (None if self._applied else self._current), True
        if fault is not None:
            if fault.latency_s:
                await asyncio.sleep(fault.latency_s)
            if fault.exception is not None:
                return ExcCodes(fault.exception)
        t = self._tables[area]
        asked_bits, self._read_bits = self._read_bits, None
        if set_values is not None:
            end = address + len(set_values)
        elif area in ("co", "di") and asked_bits is not None:
            end = address + asked_bits
        else:
            end = address + count
        if end > len(t.valid) or not t.valid[address:end].all():
            return ExcCodes.ILLEGAL_ADDRESS
        if client_write and t.readonly[address:end].any():
            return ExcCodes.ILLEGAL_ADDRESS
        if area in ("co", "di"):
            first_reg = address // 16
            n_regs = (address % 16 + (end - address) + 15) // 16
            bits = t.values[first_reg * 16:(first_reg + n_regs) * 16]  # whole words: the
            # table is sized in 16s; bit i of a word is coil 16·word + i (little bit order)
            packed: list[int] = np.packbits(bits, bitorder="little").view("<u2").tolist()
            at = first_reg - start_address
            registers[at:at + n_regs] = packed
        else:
            at = address - start_address
            registers[at:end - start_address] = t.values[address:end].tolist()
        if client_write and set_values is not None:
            if area in ("co", "di"):
                self.set_bits(area, address, [bool(v) for v in set_values])
            else:
                self.set_registers(area, address, [int(v) for v in set_values])
            record = WriteRecord(function_code, area, address, list(set_values))
            self.stats.writes.append(record)  # drops the oldest beyond WRITES_KEPT
            self.stats.write_count += 1
            if self.on_write is not None:
                self.on_write(record)
        return None


def _objects(identification: Mapping[str | int, str]) -> dict[int, str]:
    out: dict[int, str] = {}
    for key, text in identification.items():
        oid = IDENTIFICATION_OBJECTS.get(key) if isinstance(key, str) else key
        if oid is None or not (0 <= oid <= 0x06 or 0x80 <= oid <= 0xFF):
            raise ValueError(f"identification object {key!r}: expected one of "
                             f"{', '.join(IDENTIFICATION_OBJECTS)} or an id 0x80..0xFF")
        out[oid] = str(text)
    return out
