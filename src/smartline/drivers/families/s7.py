"""The ``s7`` family: Siemens S7 PLCs over ISO-on-TCP (python-snap7); docs/reference/s7.md.

Light on purpose (no snap7 import): the URL scheme and its parameters, the typed device
options, the checks that need them together, and the address grammar — STEP 7 absolute
addresses (:func:`smartline.tags.parse_s7`) plus the CPU's own points ``CPU.STATE`` (the
operating mode from SZL 0x0424: 8 RUN, 4 STOP, 0 unknown) and ``CPU.RUN`` (true in RUN).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

from pydantic import Field, field_validator

from smartline.config import DeviceOptions
from smartline.core import DriverFamily, Scheme, param_int
from smartline.tags import AddressError, DataType, S7Address, TypedAddress, parse_s7

__all__ = ["CPU_POINTS", "FAMILY", "S7CpuAddress", "S7Options", "check_s7", "param_tsap",
           "parse_s7_point"]

TSAP_MAX = 0xFFFF
DEFAULT_LOCAL_TSAP = 0x0100


def _tsap(text: str) -> int:
    t = text.strip()
    if re.fullmatch(r"0[xX][0-9a-fA-F]{1,4}", t):
        value = int(t, 16)
    elif re.fullmatch(r"[0-9]+", t):
        value = int(t)
    else:
        raise ValueError("expected a TSAP as hex (0x0100) or decimal (256), 0..0xFFFF")
    if not 0 <= value <= TSAP_MAX:
        raise ValueError("expected a TSAP as hex (0x0100) or decimal (256), 0..0xFFFF")
    return value


def param_tsap(text: str) -> int:
    """A TSAP URL parameter: hex like ``0x0100`` or decimal, 0..0xFFFF."""
    return _tsap(text)


class S7Options(DeviceOptions):
    """How to reach the CPU (rack/slot or TSAPs), the PDU size to ask for, and planning.

    ``rack``/``slot`` (default 0/1) and ``local_tsap``/``remote_tsap`` are two ways to name
    the CPU and exclude each other; ``local_tsap`` left out is 0x0100 (PG). ``pdu_size`` is
    what the driver proposes — the CPU's answer rules. ``max_gap``: bytes that belong to no
    tag a read item may span to merge two neighbours; ``max_items``: items per request
    (the protocol allows what fits the PDU; python-snap7 and most CPUs stop at 20).
    """

    rack: Annotated[int, Field(ge=0, le=7)] | None = None
    slot: Annotated[int, Field(ge=0, le=31)] | None = None
    local_tsap: Annotated[int, Field(ge=0, le=TSAP_MAX)] | None = None
    remote_tsap: Annotated[int, Field(ge=0, le=TSAP_MAX)] | None = None
    pdu_size: Annotated[int, Field(ge=240, le=960)] = 480
    max_gap: Annotated[int, Field(ge=0, le=65535)] = 0
    max_items: Annotated[int, Field(ge=1, le=20)] = 20

    @field_validator("local_tsap", "remote_tsap", mode="before")
    @classmethod
    def _hex_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            return _tsap(value)
        return value

    @property
    def by_tsap(self) -> bool:
        return self.remote_tsap is not None

    @property
    def rack_slot(self) -> tuple[int, int]:
        return (0 if self.rack is None else self.rack, 1 if self.slot is None else self.slot)

    @property
    def tsaps(self) -> tuple[int, int]:
        """(local, remote) TSAP the connection uses (PG connection from rack/slot)."""
        if self.remote_tsap is not None:
            local = DEFAULT_LOCAL_TSAP if self.local_tsap is None else self.local_tsap
            return local, self.remote_tsap
        rack, slot = self.rack_slot
        return DEFAULT_LOCAL_TSAP, 0x0100 | (rack << 5) | slot


def check_s7(scheme: str, options: S7Options) -> list[tuple[str, str]]:
    """rack/slot and TSAPs exclude each other; a local TSAP needs a remote one."""
    tsap = options.local_tsap is not None or options.remote_tsap is not None
    if tsap and (options.rack is not None or options.slot is not None):
        key = "remote_tsap" if options.remote_tsap is not None else "local_tsap"
        return [(key, "give the CPU either by rack/slot or by local_tsap/remote_tsap, "
                      "not both (the remote TSAP already names rack and slot)")]
    if options.local_tsap is not None and options.remote_tsap is None:
        return [("local_tsap", "local_tsap without remote_tsap: give the CPU's TSAP too "
                               "(remote_tsap=0x0101 for rack 0 slot 1), or use rack/slot")]
    return []


@dataclass(frozen=True, slots=True)
class S7CpuAddress(TypedAddress):
    """A point of the CPU itself rather than of its memory: ``CPU.STATE``, ``CPU.RUN``.

    Read from the system status list (SZL 0x0424); never written.
    """

    item: str
    dtype: DataType
    count: None = None
    text_encoding: ClassVar[str] = "latin-1"

    @property
    def family(self) -> str:
        return "s7"

    @property
    def writable_area(self) -> bool:
        return False

    def canonical(self) -> str:
        return f"CPU.{self.item}"

    def __str__(self) -> str:
        return self.canonical()


CPU_POINTS: dict[str, DataType] = {"STATE": DataType.UINT8, "RUN": DataType.BOOL}
"""The CPU points: STATE is the SZL 0x0424 mode byte (8 RUN, 4 STOP, 0 unknown)."""


def parse_s7_point(text: str) -> S7Address | S7CpuAddress:
    """An S7 address (:func:`smartline.tags.parse_s7`) or a CPU point (``CPU.STATE``)."""
    s = text.strip()
    if s.upper().startswith("CPU."):
        item = s[4:].upper()
        dtype = CPU_POINTS.get(item)
        if dtype is None:
            raise AddressError(f"unknown CPU point {s!r}: expected CPU.STATE or CPU.RUN",
                               column=text.find(s) + 4)
        return S7CpuAddress(item, dtype)
    return parse_s7(text)


_TSAP_PARAMS = {"local_tsap": param_tsap, "remote_tsap": param_tsap}

FAMILY = DriverFamily(
    name="s7",
    schemes=(Scheme("s7", "smartline.drivers.s7:S7Driver", 102,
                    params={"rack": param_int(0, 7), "slot": param_int(0, 31), **_TSAP_PARAMS,
                            "pdu_size": param_int(240, 960),
                            "max_gap": param_int(0, 65535)},
                    description="S7 over ISO-on-TCP (s7://host:port?rack=&slot= or "
                                "?local_tsap=&remote_tsap=)"),),
    parse_address=parse_s7_point,
    options=S7Options,
    check=check_s7,  # type: ignore[arg-type]  # narrower options type
    value_types=("bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64",
                 "uint64", "float32", "float64", "string"),
    requires="smartline[s7]",
    imports=("snap7",),
    description="Siemens S7-300/400/1200/1500 on python-snap7",
)
