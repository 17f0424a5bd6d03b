"""``parse_address(family, text)``: one entry point for every address grammar."""

from __future__ import annotations

from collections.abc import Callable

from ._memory import MemoryAddress, parse_memory
from ._modbus import ModbusAddress, parse_modbus
from ._opcua import OpcUaAddress, parse_opcua
from ._profile import ProfileAddress, parse_profile
from ._s7 import S7Address, parse_s7
from ._types import AddressError

__all__ = ["FAMILIES", "TagAddress", "parse_address"]

TagAddress = ModbusAddress | S7Address | OpcUaAddress | ProfileAddress | MemoryAddress

_PARSERS: dict[str, Callable[[str], TagAddress]] = {
    "modbus": parse_modbus,
    "s7": parse_s7,
    "opcua": parse_opcua,
    "memory": parse_memory,
    "profile": parse_profile,
}
#: The address families, as drivers name them in ``Driver.family``.
FAMILIES: tuple[str, ...] = tuple(_PARSERS)


def parse_address(family: str, text: str) -> TagAddress:
    """Parse ``text`` in the grammar of ``family``; every failure is an :class:`AddressError`."""
    parser = _PARSERS.get(family)
    if parser is None:
        raise AddressError(f"unknown address family {family!r}: expected modbus, s7, opcua, "
                           "memory or profile")
    if not isinstance(text, str):
        raise AddressError(f"expected the address as text, found {type(text).__name__} "
                           f"{text!r}; quote it in YAML")
    return parser(text)
