"""Quality and reason codes stored beside every value in the process image."""

from __future__ import annotations

from enum import IntEnum

__all__ = ["Quality", "Reason"]


class Quality(IntEnum):
    """How far a value can be trusted (stored as ``uint8`` in the image)."""

    GOOD = 0
    UNCERTAIN = 1  # read, but e.g. clamped, or a demoted device's last value
    STALE = 2  # last value kept; this cycle's read missed its deadline
    BAD = 3  # no usable value

    @property
    def label(self) -> str:
        return self.name.lower()


class Reason(IntEnum):
    """Why a value is not GOOD (``NONE`` when it is)."""

    NONE = 0
    NOT_READ = 1  # never read since start
    NOT_CONNECTED = 2  # connect failed / backing off
    TIMEOUT = 3  # device did not answer in time
    DEVICE_ERROR = 4  # exception response (illegal address, device failure ...)
    PROTOCOL_ERROR = 5  # garbage, truncated frame, bad CRC
    LINK_BROKEN = 6  # connection lost mid-session
    DEMOTED = 7  # device demoted after repeated failures: polled slowly
    DEADLINE = 8  # the device's share of the cycle ran out
    DECODE_ERROR = 9  # bytes arrived but do not form a valid value (NaN, bad string)
    OUT_OF_RANGE = 10  # value outside the scaled range
    CLOSED = 11  # the driver was closed
    SIMULATED = 12  # value forced or substituted (HIL, manual override)
    SUBSCRIPTION_LOST = 13  # pushed values stopped (link lost); re-subscribing, last value kept

    @property
    def label(self) -> str:
        return self.name.lower()
