"""Tag addresses, data types, byte/word order, scaling and tag specs (DESIGN §5).

The grammars of smartline's own families (``modbus``, ``s7``, ``opcua``, ``memory``, and
profile names for ``serial`` and ``cnc``), the address protocol every family's addresses
follow (:class:`TagAddress`), and :func:`parse_address` for any installed family. Every
address has one canonical spelling, and ``parse_address(f, a.canonical()) == a``. The
vectorised codecs live in :mod:`smartline.tags.codec`. This package imports only
:mod:`smartline.core` and numpy.
"""

from ._address import default_registry, parse_address
from ._base import TagAddress, TypedAddress, UntypedAddress
from ._memory import MemoryAddress, parse_memory
from ._modbus import MODBUS_TYPES, ModbusAddress, parse_modbus
from ._opcua import OpcUaAddress, parse_opcua
from ._profile import ProfileAddress, parse_profile
from ._s7 import S7_TYPES, S7Address, parse_s7
from ._scale import Scale
from ._spec import Access, TagSpec, text_capacity
from ._types import AddressError, ByteOrder, DataType, coerce_raw

__all__ = [
    "MODBUS_TYPES",
    "S7_TYPES",
    "Access",
    "AddressError",
    "ByteOrder",
    "DataType",
    "MemoryAddress",
    "ModbusAddress",
    "OpcUaAddress",
    "ProfileAddress",
    "S7Address",
    "Scale",
    "TagAddress",
    "TagSpec",
    "TypedAddress",
    "UntypedAddress",
    "coerce_raw",
    "default_registry",
    "parse_address",
    "parse_memory",
    "parse_modbus",
    "parse_opcua",
    "parse_profile",
    "parse_s7",
    "text_capacity",
]
