"""The Sparkplug B 3.0 edge node of a line and its on-disk store-and-forward (issue #13):
``EdgeNode`` (ADR 0027, docs/reference/northbound.md) and ``SampleStore`` (ADR 0028)."""

from __future__ import annotations

from ._node import EdgeNode
from ._payload import QUALITY_CODE, SpType, topic
from ._store import SampleStore, StoredSample, StoreStats

__all__ = ["QUALITY_CODE", "EdgeNode", "SampleStore", "SpType", "StoreStats", "StoredSample",
           "topic"]
