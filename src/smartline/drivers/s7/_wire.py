"""Read Var / Write Var jobs with many items, and their answers item by item.

python-snap7 3.3 owns the connection (TPKT, COTP, TSAPs, PDU negotiation, SZL, blocks), but
its ``read_multi_vars`` raises for the whole call when one item fails and its
``write_multi_vars`` sends one job per item; so the driver encodes these two jobs itself
(S7comm, function 0x04/0x05, S7ANY item addressing) and sends them through the snap7
connection (``client.connection.send_data/receive_data``).
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from snap7.error import S7ConnectionError, S7TimeoutError

from ...core import ProtocolError

__all__ = [
    "AREA_CODES",
    "FRAME_HEADER",
    "HEADER_ERRORS",
    "ITEM_CODES",
    "REF_AT",
    "ItemAnswer",
    "ReadJob",
    "encode_read",
    "encode_write",
    "item_meaning",
    "parse_read",
    "parse_write",
    "recv_frame_into",
    "send_frame",
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


# -- the read hot path: whole frames, encoded once per plan ---------------------------------

FRAME_HEADER = 7
"""TPKT (4 bytes: version 3, 0, length) + COTP DT (3 bytes: 2, 0xF0, 0x80) before a PDU."""
REF_AT = FRAME_HEADER + 4
"""Where the PDU reference sits in a frame."""
_COTP_DT = b"\x02\xf0\x80"


def _frame(pdu: bytes) -> bytes:
    return struct.pack(">BBH", 3, 0, FRAME_HEADER + len(pdu)) + _COTP_DT + pdu


class ReadJob:
    """One Read Var job of a plan, encoded once: its whole frame (TPKT + COTP + PDU, PDU
    reference 0, set per exchange), and its whole answer frame when every item is
    answered — all of it but the PDU reference is known in advance, so an answer is
    checked by one comparison of its fixed bytes, and each item's data sits at a fixed
    place (``data_at``, from the frame's start)."""

    __slots__ = ("answer_size", "data_at", "fixed", "frame", "lengths", "pieces")

    def __init__(self, items: Sequence[tuple[str, int, int, int]], pieces: Sequence[int]
                 ) -> None:
        self.pieces = tuple(pieces)
        self.lengths = tuple(n for _, _, _, n in items)
        self.frame = _frame(encode_read(0, items))
        body = bytearray([_READ, len(items)])
        data_at: list[int] = []
        for k, n in enumerate(self.lengths):
            body += struct.pack(">BBH", 0xFF, 0x04, n * 8)
            data_at.append(FRAME_HEADER + 12 + len(body))
            body += bytes(n)
            if n & 1 and k < len(self.lengths) - 1:
                body.append(0)
        plen, dlen = 2, len(body) - 2
        pdu = struct.pack(">BBHHHHBB", 0x32, _ACK_DATA, 0, 0, plen, dlen, 0, 0) + body
        answer = _frame(pdu)
        self.answer_size = len(answer)
        self.data_at = tuple(data_at)
        # the bytes to compare: everything but the reference and the items' data
        mask = np.ones(len(answer), np.bool_)
        mask[REF_AT:REF_AT + 2] = False
        for at, n in zip(data_at, self.lengths, strict=True):
            mask[at:at + n] = False
        self.fixed: tuple[NDArray[np.intp], NDArray[np.uint8]] = (
            np.flatnonzero(mask), np.frombuffer(answer, np.uint8)[mask])


def send_frame(conn: Any, frame: bytes | bytearray) -> None:
    """Send one whole frame on python-snap7's connection (its errors, as ``send_data``)."""
    sock: socket.socket | None = conn.socket
    if not conn.connected or sock is None:
        raise S7ConnectionError("Not connected")
    try:
        sock.sendall(frame)
    except OSError as e:
        conn.connected = False
        raise S7ConnectionError(f"Send failed: {e}") from e


def _recv_into(conn: Any, sock: socket.socket, view: memoryview) -> None:
    got, size = 0, len(view)
    while got < size:
        try:
            n = sock.recv_into(view[got:])
        except TimeoutError as e:  # socket.timeout
            conn.connected = False
            raise S7TimeoutError("Receive timeout") from e
        except OSError as e:
            conn.connected = False
            raise S7ConnectionError(f"Receive error: {e}") from e
        if not n:
            conn.connected = False
            raise S7ConnectionError("Connection closed by peer")
        got += n


def recv_frame_into(conn: Any, view: memoryview) -> bytes | None:
    """Receive one answer frame on python-snap7's connection (its checks and errors, as
    ``receive_data``). When its length is ``len(view)`` it is received in place and None
    is returned; otherwise its PDU is returned (an answer with refused items, or an error:
    checked as python-snap7 does)."""
    sock: socket.socket | None = conn.socket
    if not conn.connected or sock is None:
        raise S7ConnectionError("Not connected")
    _recv_into(conn, sock, view[:4])
    if view[0] != 3:
        raise S7ConnectionError(f"Invalid TPKT version: {view[0]}")
    length = (view[2] << 8) | view[3]
    if length < 7:
        raise S7ConnectionError("Invalid TPKT length")
    if length == len(view):
        _recv_into(conn, sock, view[4:])
        return None
    payload = bytearray(length - 4)
    _recv_into(conn, sock, memoryview(payload))
    return bytes(conn._parse_cotp_data(bytes(payload)))
