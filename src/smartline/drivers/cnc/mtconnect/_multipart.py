"""Incremental splitting of an MTConnect stream (``multipart/mixed`` or
``multipart/x-mixed-replace``) into whole documents, framed by boundary and Content-length."""

from __future__ import annotations

import re

from ....core import ProtocolError

__all__ = ["PartSplitter", "boundary_of"]

_HEADERS_MAX = 4096
_BOUNDARY = re.compile(r'boundary="?([^";,\s]+)"?', re.IGNORECASE)


def boundary_of(content_type: str) -> str | None:
    """The boundary of a ``multipart/…;boundary=…`` content type; None if it is not one."""
    if not content_type.lower().startswith("multipart/"):
        return None
    m = _BOUNDARY.search(content_type)
    return m.group(1) if m else None


class PartSplitter:
    """Feed it the stream's bytes as they come; it returns the documents completed.

    Each part is ``--BOUNDARY``, headers, a blank line and ``Content-length`` bytes of
    body. A part longer than ``max_part_bytes`` (by its Content-length, before its body
    is read), headers longer than 4 KiB, or a part without a Content-length raise
    :class:`ProtocolError`.
    """

    def __init__(self, boundary: str, max_part_bytes: int) -> None:
        self._delim = b"--" + boundary.encode("latin-1")
        self._max = max_part_bytes
        self._buf = bytearray()
        self._need: int | None = None
        self.parts = 0
        self.bytes = 0

    def feed(self, chunk: bytes) -> list[bytes]:
        self._buf += chunk
        self.bytes += len(chunk)
        out: list[bytes] = []
        buf = self._buf
        while True:
            if self._need is None:
                i = buf.find(self._delim)
                if i < 0:
                    if len(buf) > _HEADERS_MAX + len(self._delim):
                        raise ProtocolError(f"{len(buf)} bytes of the stream without a part "
                                            "boundary: not an MTConnect multipart stream")
                    break
                j = buf.find(b"\r\n\r\n", i)
                if j < 0:
                    if len(buf) - i > _HEADERS_MAX:
                        raise ProtocolError("a stream part's headers are longer than 4 KiB")
                    break
                head = bytes(buf[i + len(self._delim):j]).decode("latin-1")
                length: int | None = None
                for line in head.split("\r\n"):
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        try:
                            length = int(value.strip())
                        except ValueError:
                            raise ProtocolError(f"a stream part has Content-length "
                                                f"{value.strip()!r}") from None
                if length is None:
                    raise ProtocolError("a stream part without Content-length (headers "
                                        f"{head.strip()!r})")
                if length > self._max:
                    raise ProtocolError(f"a stream part of {length} bytes: more than "
                                        f"max_document_bytes ({self._max}); refused unread")
                del buf[:j + 4]
                self._need = length
            if len(buf) < self._need:
                break
            out.append(bytes(buf[:self._need]))
            del buf[:self._need]
            self._need = None
            self.parts += 1
        return out
