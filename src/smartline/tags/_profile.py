"""Profile addresses: the names a device profile defines (serial instruments, CNC)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ._base import UntypedAddress
from ._lex import strip_text
from ._types import AddressError, FieldError

__all__ = ["PROFILE_NAME_MAX", "ProfileAddress", "parse_profile"]

PROFILE_NAME_MAX = 128
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z_][A-Za-z0-9_-]*)*")


@dataclass(frozen=True, slots=True)
class ProfileAddress(UntypedAddress):
    """A name the device profile defines (``weight``, ``Sspeed``, ``axis.x.pos``); case matters."""

    name: str
    family: str = "profile"  # the family whose profiles define the name (serial, cnc …)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise FieldError(
                f"profile name {self.name!r} is not a name: expected letters, digits, '_' "
                "and '-', not starting with a digit or '-', optionally dotted (axis.x.pos)",
                "name", str(self.name))
        if len(self.name) > PROFILE_NAME_MAX:
            raise FieldError(f"profile name is {len(self.name)} characters long: expected "
                             f"at most {PROFILE_NAME_MAX}", "name", self.name[:20] + "...")

    def canonical(self) -> str:
        return self.name

    def __str__(self) -> str:
        return self.name


def parse_profile(text: str, family: str = "profile") -> ProfileAddress:
    """Parse a profile name (surrounding whitespace ignored) for ``family``'s devices."""
    s, lead = strip_text(text)
    try:
        return ProfileAddress(s, family)
    except FieldError as exc:
        raise AddressError(f"{exc.reason} in {text!r}", column=lead) from None
