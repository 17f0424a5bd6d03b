"""``Line``: a loaded line file with its process image and device I/O — the front door for
integrators' scripts and for ``smartline read/write``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from .config import LineConfig, load_line
from .core import Clock, DriverRegistry, MonotonicClock
from .cycle import AuditSink, DeviceReadStats, LineIO, ProcessImage, TagValue
from .tags import Access

__all__ = ["Line"]


class Line:
    """A line ready to talk to its devices. Use as ``async with Line.load(path) as line:``."""

    def __init__(self, config: LineConfig, *, clock: Clock | None = None,
                 registry: DriverRegistry | None = None, audit: AuditSink | None = None) -> None:
        self.config = config
        self.clock: Clock = clock if clock is not None else MonotonicClock()
        self.image = ProcessImage(config.tags.values())
        self.io = LineIO(config, self.image, registry=registry, clock=self.clock, audit=audit)
        self.last_read: list[DeviceReadStats] = []

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, profile_paths: Sequence[Path] = (),
             env: Mapping[str, str] | None = None, clock: Clock | None = None,
             registry: DriverRegistry | None = None, audit: AuditSink | None = None) -> Line:
        """Load and validate a line file (raises ``ConfigError`` listing every problem)."""
        config = load_line(path, profile_paths=profile_paths, env=env, registry=registry)
        return cls(config, clock=clock, registry=registry, audit=audit)

    async def read(self, tags: Iterable[str] = ()) -> dict[str, TagValue]:
        """Read the given tags (default: every tag but the write-only ones) once from
        their devices. ``KeyError`` for an unknown tag, ``ValueError`` for a write-only
        one (``access: w``: a command such as a scale's zero, nothing to read)."""
        names = list(tags) or [n for n, t in self.config.tags.items()
                               if t.access is not Access.W]
        for n in names:
            self.image.slot(n)  # KeyError for an unknown tag, before any I/O
            if self.config.tags[n].access is Access.W:
                raise ValueError(f"tag {n!r} is write-only (access w): it cannot be read")
        group = self.io.group(names)
        self.last_read = await self.io.read(group)
        return {n: self.image.get(n) for n in names}

    async def write(self, values: Mapping[str, object]) -> None:
        """Guarded, audited write of engineering values (all refused if one is refused)."""
        await self.io.write(values)

    async def close(self) -> None:
        await self.io.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()
