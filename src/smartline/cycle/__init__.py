"""The cycle: process image, scheduler, timing statistics, watchdog."""

from ._io import AuditSink, DeviceReadStats, JsonlAudit, LineIO, ReadGroup
from ._image import OutputTracker, ProcessImage, Snapshot, TagValue

__all__ = [
    "AuditSink",
    "DeviceReadStats",
    "JsonlAudit",
    "LineIO",
    "ReadGroup","OutputTracker", "ProcessImage", "Snapshot", "TagValue"]
