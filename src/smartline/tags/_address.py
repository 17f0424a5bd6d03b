"""``parse_address(family, text)``: the address grammar of any installed driver family.

Grammars belong to their families (:class:`smartline.core.DriverFamily`); this looks the
family up in a registry — by default the one of installed families, built once per
process (the set of installed packages does not change while it runs).
"""

from __future__ import annotations

import functools

from ..core import DriverNotAvailableError, DriverRegistry
from ._base import TagAddress
from ._types import AddressError

__all__ = ["default_registry", "parse_address"]


@functools.cache
def default_registry() -> DriverRegistry:
    """The families installed in this Python environment (smartline's and plug-ins')."""
    return DriverRegistry()


def parse_address(family: str, text: str, *, registry: DriverRegistry | None = None
                  ) -> TagAddress:
    """Parse ``text`` in the grammar of ``family``; every failure is an :class:`AddressError`.

    A plug-in grammar that fails with anything but ``AddressError`` is reported as an
    ``AddressError`` naming the plug-in, never as its own exception.
    """
    reg = registry if registry is not None else default_registry()
    try:
        fam = reg.family(family)
    except DriverNotAvailableError as exc:
        raise AddressError(f"unknown address family {family!r}: {exc.message}") from None
    if not isinstance(text, str):
        raise AddressError(f"expected the address as text, found {type(text).__name__} "
                           f"{text!r}; quote it in YAML")
    try:
        address = fam.parse_address(text)
    except AddressError:
        raise
    except Exception as exc:  # a fault of the plug-in, not of the text
        raise AddressError(f"the {family} grammar (package {fam.package}) failed on "
                           f"{text!r}: {type(exc).__name__}: {exc}") from None
    if not isinstance(address, TagAddress):
        raise AddressError(f"the {family} grammar (package {fam.package}) returned a "
                           f"{type(address).__name__}, which is not an address (expected the "
                           "properties of smartline.tags.TagAddress)")
    return address
