"""Read Var / Write Var jobs with many items, and their answers item by item.

python-snap7 3.3 owns the connection (TPKT, COTP, TSAPs, PDU negotiation, SZL, blocks), but
its ``read_multi_vars`` raises for the whole call when one item fails and its
``write_multi_vars`` sends one job per item; so the driver encodes these two jobs itself
(S7comm, function 0x04/0x05, S7ANY item addressing) and sends them through the snap7
connection (``client.connection.send_data/receive_data``).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence

from ...core import ProtocolError

__all__ = [
    "AREA_CODES",
    "HEADER_ERRORS",
    "ITEM_CODES",
    "ItemAnswer",
    "encode_read",
    "encode_write",
    "item_meaning",
    "parse_read",
    "parse_write",
]

AREA_CODES: Mapping[str, int] = {"I": 0x81, "Q": 0x82, "M": 0x83, "DB": 0x84}
_JOB = 0x01
_ACK_DATA = 0x03
_ACK = 0x02
_READ = 0x04
_WRITE = 0x05
_TS_BIT = 0x01  # item transport size in the address (S7ANY): BIT
_TS_BYTE = 0x02  # BYTE

#: item return codes of Read/Write Var (0xFF is success)
ITEM_CODES: Mapping[int, str] = {
    0x00: "reserved (no answer for this item)",
    0x01: "hardware fault",
    0x03: "access to the object not allowed (protection, or PUT/GET not enabled)",
    0x05: "address out of range (past the end of the data block or area)",
    0x06: "data type not supported",
    0x07: "data type inconsistent (size mismatch)",
    0x0A: "object does not exist (no such data block)",
}

#: error class/code of a job's header (selection; the rest is named by python-snap7)
HEADER_ERRORS: Mapping[int, str] = {
    0x8104: "function not supported or context not allowed",
    0x8500: "PDU size error (the job or its answer does not fit the negotiated PDU)",
    0x8404: "fatal error in the S7 protocol",
    0x8301: "resource unavailable",
    0x8000: "function being used",
}


def item_meaning(code: int) -> str:
    return ITEM_CODES.get(code, "unknown item error")


def _spec(area: str, db: int, start: int, length: int, bit: int | None) -> bytes:
    code = AREA_CODES[area]
    if bit is None:
        return struct.pack(">BBBBHHB", 0x12, 0x0A, 0x10, _TS_BYTE, length, db, code) + \
            (start * 8).to_bytes(3, "big")
    return struct.pack(">BBBBHHB", 0x12, 0x0A, 0x10, _TS_BIT, 1, db, code) + \
        (start * 8 + bit).to_bytes(3, "big")


def encode_read(ref: int, items: Sequence[tuple[str, int, int, int]]) -> bytes:
    """A Read Var job for ``(area, db, start, length)`` byte items."""
    params = bytes([_READ, len(items)]) + b"".join(
        _spec(a, db, s, n, None) for a, db, s, n in items)
    return struct.pack(">BBHHHH", 0x32, _JOB, 0, ref, len(params), 0) + params


def encode_write(ref: int, items: Sequence[tuple[str, int, int, bytes, int | None]]) -> bytes:
    """A Write Var job for ``(area, db, start, data, bit)`` items (bit: one bit, data 0/1)."""
    params = bytes([_WRITE, len(items)]) + b"".join(
        _spec(a, db, s, len(d), bit) for a, db, s, d, bit in items)
    data = bytearray()
    for k, (_, _, _, d, bit) in enumerate(items):
        if bit is None:
            data += struct.pack(">BBH", 0x00, 0x04, len(d) * 8) + d
        else:
            data += struct.pack(">BBH", 0x00, 0x03, 1) + d[:1]
        if (len(d) if bit is None else 1) & 1 and k < len(items) - 1:
            data.append(0)
    return struct.pack(">BBHHHH", 0x32, _JOB, 0, ref, len(params), len(data)) + params + data


class ItemAnswer(tuple[int, bytes]):
    """(return code, data) of one item."""

    __slots__ = ()

    @property
    def code(self) -> int:
        return self[0]

    @property
    def data(self) -> bytes:
        return self[1]


def _header(pdu: bytes, ref: int, function: int, count: int) -> tuple[int, int, int]:
    if len(pdu) < 12 or pdu[0] != 0x32:
        raise ProtocolError(f"not an S7 answer ({pdu[:12].hex() or 'empty'})")
    rosctr, _, got_ref, plen, dlen, eclass, ecode = struct.unpack(">BHHHHBB", pdu[1:12])
    if rosctr not in (_ACK, _ACK_DATA):
        raise ProtocolError(f"S7 answer of type {rosctr:#x}, expected an acknowledgement")
    if got_ref != ref:
        raise ProtocolError(f"S7 answer to job {got_ref}, expected {ref}")
    if 12 + plen + dlen != len(pdu):
        raise ProtocolError(f"S7 answer of {len(pdu)} bytes announces {12 + plen + dlen}")
    err = (eclass << 8) | ecode
    if err:
        return err, plen, dlen
    if plen < 2 or pdu[12] != function or pdu[13] != count:
        raise ProtocolError(f"S7 answer for function {pdu[12]:#x} with {pdu[13]} items, "
                            f"expected {function:#x} with {count}")
    return 0, plen, dlen


class HeaderError(Exception):
    """A job refused as a whole: ``code`` is error class << 8 | error code."""

    def __init__(self, code: int) -> None:
        super().__init__(f"{code:#06x}")
        self.code = code


def parse_read(pdu: bytes, ref: int, lengths: Sequence[int]) -> list[ItemAnswer]:
    """The items of a Read Var answer; raises HeaderError or ProtocolError."""
    err, plen, _ = _header(pdu, ref, _READ, len(lengths))
    if err:
        raise HeaderError(err)
    pos = 12 + plen
    out: list[ItemAnswer] = []
    for k, want in enumerate(lengths):
        if pos + 4 > len(pdu):
            raise ProtocolError(f"S7 answer ends at item {k} of {len(lengths)}")
        code, ts, n = struct.unpack(">BBH", pdu[pos:pos + 4])
        pos += 4
        if code != 0xFF:
            out.append(ItemAnswer((code, b"")))
            continue
        size = n // 8 if ts in (0x03, 0x04, 0x05) else n
        if ts == 0x03:
            size = (n + 7) // 8
        if size != want or pos + size > len(pdu):
            raise ProtocolError(f"S7 item {k}: {size} bytes in the answer, asked for {want}")
        out.append(ItemAnswer((code, bytes(pdu[pos:pos + size]))))
        pos += size + (size & 1 if k < len(lengths) - 1 else 0)
    return out


def parse_write(pdu: bytes, ref: int, count: int) -> list[int]:
    """The item return codes of a Write Var answer; raises HeaderError or ProtocolError."""
    err, plen, dlen = _header(pdu, ref, _WRITE, count)
    if err:
        raise HeaderError(err)
    codes = list(pdu[12 + plen:12 + plen + dlen])
    if len(codes) != count:
        raise ProtocolError(f"S7 write answer with {len(codes)} item codes, expected {count}")
    return codes
