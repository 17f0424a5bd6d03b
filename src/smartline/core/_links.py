"""Links several devices share — one serial port, one TCP gateway, one session — and the
pool that owns them for a line.

A :class:`LinkPool` is a plain object made by whoever creates a line's drivers and handed
to every driver's constructor; there is no module-level state. A driver asks the pool for
its link by key (:meth:`LinkPool.get`): the first asker creates it, the next ones share
it. Devices take turns on a shared link through ``link.turn``, which
:class:`~smartline.core.DriverBase` holds for the whole of each read or write.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Hashable
from typing import TypeVar

__all__ = ["LinkPool", "SharedLink"]

log = logging.getLogger(__name__)

L = TypeVar("L", bound="SharedLink")


class SharedLink:
    """A connection that several drivers use in turns.

    Subclasses hold the protocol library's client; they override :meth:`aclose` to
    release it. ``users`` are the names of the devices that joined (for statistics and to
    know when the last one leaves).
    """

    def __init__(self, key: Hashable) -> None:
        self.key = key
        self.turn = asyncio.Lock()  # one device's whole read or write at a time
        self.users: set[str] = set()

    async def aclose(self) -> None:
        """Release the connection (idempotent; must not raise for a broken one)."""
        self.users.clear()

    def stats(self) -> dict[str, object]:
        return {"users": len(self.users)}


class LinkPool:
    """The shared links of one line, by key; closed with the line."""

    def __init__(self) -> None:
        self._links: dict[Hashable, SharedLink] = {}

    def get(self, key: Hashable, kind: type[L], make: Callable[[], L]) -> L:
        """The link for ``key``, made with ``make()`` on first use.

        ``kind`` is the class the caller expects: a key that another driver family already
        uses for a different kind of link raises ``TypeError`` (keys should start with the
        family name to avoid that).
        """
        link = self._links.get(key)
        if link is None:
            link = self._links[key] = make()
            return link
        if not isinstance(link, kind):
            raise TypeError(f"link {key!r} is a {type(link).__name__}, not a {kind.__name__}: "
                            "two driver families use the same link key")
        return link

    def links(self) -> dict[Hashable, SharedLink]:
        return dict(self._links)

    def stats(self) -> dict[str, dict[str, object]]:
        return {str(k): v.stats() for k, v in self._links.items()}

    async def aclose(self) -> None:
        """Close every link (each close is idempotent and its failure only logged)."""
        links, self._links = list(self._links.values()), {}
        for link in links:
            try:
                await link.aclose()
            except Exception as exc:  # a link that fails to close is closed regardless
                log.debug("closing link %s: %r", link.key, exc)
