"""The ``memory`` family: ``memory://NAME`` devices with no wire, for tests and examples."""

from __future__ import annotations

from smartline.config import DeviceOptions
from smartline.core import DriverFamily, Scheme, param_flag
from smartline.tags import parse_memory

__all__ = ["FAMILY", "MemoryOptions"]


class MemoryOptions(DeviceOptions):
    """``persist``: keep the memory in a file between commands; ``push``: deliver changes
    made by other drivers on the same memory by push instead of polling."""

    persist: bool = False
    push: bool = False


FAMILY = DriverFamily(
    name="memory",
    schemes=(Scheme("memory", "smartline.drivers.memory:MemoryDriver",
                    params={"persist": param_flag, "push": param_flag},
                    description="in-memory device NAME (memory://NAME)"),),
    parse_address=parse_memory,
    options=MemoryOptions,
    value_types=("bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64",
                 "uint64", "float32", "float64", "string"),
    description="an in-memory device for tests and examples",
)
