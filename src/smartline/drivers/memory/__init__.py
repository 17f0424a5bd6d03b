"""The in-memory driver (``memory://NAME``): a device with no wire, for tests and examples."""

from ._driver import MemoryBus, MemoryDriver

__all__ = ["MemoryBus", "MemoryDriver"]
