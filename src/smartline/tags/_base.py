"""Address-protocol properties that several address families share (mixins, no fields)."""

from __future__ import annotations

from ._types import DataType

__all__ = ["TypedAddress", "UntypedAddress"]


class TypedAddress:
    """For addresses that fix their storage type and may be arrays (``dtype``, ``count``).

    Fields stay in the frozen slotted dataclass; ``__slots__ = ()`` keeps it slot-only.
    """

    __slots__ = ()
    dtype: DataType
    count: int | None

    @property
    def elements(self) -> int:
        """Image slots filled: the array length, else 1 (a string is one slot)."""
        return self.count if self.count is not None else 1

    @property
    def is_text(self) -> bool:
        return self.dtype is DataType.STRING


class UntypedAddress:
    """For addresses of one value whose type the device decides (OPC UA, device profiles).

    ``is_text`` is False as the address cannot tell (OPC UA: unknown until the server is
    asked; profiles: the profile decides); drivers deliver text through ``texts`` regardless.
    """

    __slots__ = ()

    @property
    def elements(self) -> int:
        return 1

    @property
    def is_text(self) -> bool:
        return False
