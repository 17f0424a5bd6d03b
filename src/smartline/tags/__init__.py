"""Tag addresses, data types, byte/word order, scaling and tag specs (DESIGN §5).

One grammar per protocol family — ``modbus``, ``s7``, ``opcua``, ``memory``, ``profile`` —
behind :func:`parse_address`; every address has one canonical spelling, and
``parse_address(f, a.canonical()) == a``. The vectorised codecs live in
:mod:`smartline.tags.codec`. This package imports only :mod:`smartline.core` and numpy.
"""

from ._address import FAMILIES, TagAddress, parse_address
from ._memory import MemoryAddress, parse_memory
from ._modbus import MODBUS_TYPES, ModbusAddress, parse_modbus
from ._opcua import OpcUaAddress, parse_opcua
from ._profile import ProfileAddress, parse_profile
from ._s7 import S7_TYPES, S7Address, parse_s7
from ._scale import Scale
from ._spec import Access, TagSpec, text_capacity
from ._types import AddressError, ByteOrder, DataType, coerce_raw

__all__ = [
    "FAMILIES",
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
    "coerce_raw",
    "parse_address",
    "parse_memory",
    "parse_modbus",
    "parse_opcua",
    "parse_profile",
    "parse_s7",
    "text_capacity",
]
