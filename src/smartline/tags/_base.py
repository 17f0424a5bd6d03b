"""The address protocol the tags layer relies on, and mixins that give its defaults.

Every family's grammar returns objects that satisfy :class:`TagAddress`: the core
``Address`` (family, elements, is_text, canonical) plus what a tag needs to check writes
and size its image slots — the storage ``dtype`` (None where the device decides), whether
the area can be written at all, and how much text it holds. A vendor's address class gets
all of it by subclassing :class:`TypedAddress` or :class:`UntypedAddress`.
"""

from __future__ import annotations

from typing import ClassVar, Protocol, runtime_checkable

from ._types import DataType

__all__ = ["TagAddress", "TypedAddress", "UntypedAddress"]


@runtime_checkable
class TagAddress(Protocol):
    """A parsed address of any family, as tags, the image and the line loader use it."""

    @property
    def family(self) -> str: ...

    @property
    def elements(self) -> int: ...

    @property
    def is_text(self) -> bool: ...

    @property
    def dtype(self) -> DataType | None:
        """The storage type the address fixes; None where the device decides."""

    @property
    def writable_area(self) -> bool:
        """False where the address names something nobody may write (an input area)."""

    @property
    def text_rule(self) -> tuple[int, str] | None:
        """(bytes it holds, encoding) for a text address of fixed size; None otherwise."""

    def canonical(self) -> str: ...


class TypedAddress:
    """For addresses that fix their storage type and may be arrays (``dtype``, ``count``).

    Fields stay in the frozen slotted dataclass; ``__slots__ = ()`` keeps it slot-only.
    ``strlen`` (bytes of a ``string<N>``) is read where the class has it;
    ``text_encoding`` says how its text is encoded.
    """

    __slots__ = ()
    dtype: DataType
    count: int | None
    text_encoding: ClassVar[str] = "utf-8"

    @property
    def elements(self) -> int:
        """Image slots filled: the array length, else 1 (a string is one slot)."""
        return self.count if self.count is not None else 1

    @property
    def is_text(self) -> bool:
        return self.dtype is DataType.STRING

    @property
    def writable_area(self) -> bool:
        return True

    @property
    def text_rule(self) -> tuple[int, str] | None:
        if not self.is_text:
            return None
        strlen = getattr(self, "strlen", None)
        return (strlen or 0), self.text_encoding


class UntypedAddress:
    """For addresses of one value whose type the device decides (OPC UA, device profiles).

    ``is_text`` is False as the address cannot tell; a driver delivers text through
    ``ReadResult.texts`` regardless, and the image keeps it as the tag's value.
    """

    __slots__ = ()

    @property
    def elements(self) -> int:
        return 1

    @property
    def is_text(self) -> bool:
        return False

    @property
    def dtype(self) -> DataType | None:
        return None

    @property
    def writable_area(self) -> bool:
        return True

    @property
    def text_rule(self) -> tuple[int, str] | None:
        return None
