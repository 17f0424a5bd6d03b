"""The registry of block types and :func:`make_bank`, which builds a validated bank by name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from ._core import BlockBank, BlockType, check_param, frozen
from .capper import CAPPER
from .cnc import CNC
from .conveyor import CONVEYOR
from .filler import FILLER
from .motor import MOTOR
from .oven import OVEN
from .tank import TANK

__all__ = ["BLOCK_TYPES", "make_bank"]

BLOCK_TYPES: Mapping[str, BlockType] = frozen(**{b.name: b for b in (
    CONVEYOR, TANK, OVEN, MOTOR, FILLER, CAPPER, CNC)})
"""Every block type by name (immutable)."""

MAX_INSTANCES = 10_000_000


def make_bank(type_name: str, n: int, params: Mapping[str, npt.ArrayLike] | None = None, *,
              seed: int = 0) -> BlockBank:
    """n instances of block type ``type_name``; ``params`` maps a parameter (or size) name to a
    scalar for every instance or one value per instance; defaults fill the rest.

    Raises ``ValueError`` naming the block type, the parameter and what was expected.
    """
    block = BLOCK_TYPES.get(type_name)
    if block is None:
        raise ValueError(f"no block type {type_name!r}; expected one of {', '.join(BLOCK_TYPES)}")
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or not 1 <= n <= MAX_INSTANCES:
        raise ValueError(f"{type_name}: the number of instances must be an int in "
                         f"1..{MAX_INSTANCES}, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise ValueError(f"{type_name}: seed must be an int, got {seed!r}")
    n = int(n)
    given = dict(params or {})
    unknown = [k for k in given if k not in block.params and k not in block.sizes]
    if unknown:
        raise ValueError(f"{type_name}: unknown parameter {unknown[0]!r}; expected one of "
                         f"{', '.join([*block.params, *block.sizes])}")
    sizes: dict[str, int] = {}
    for name, spec in block.sizes.items():
        value: Any = given.get(name, spec.default)
        if np.ndim(value) != 0:
            raise ValueError(f"{type_name}: parameter {name!r} is one number for the whole "
                             f"bank, got {value!r}")
        sizes[name] = int(check_param(type_name, name, spec, np.asarray(value).item()))
    pf = np.empty((len(block.params), n), np.float64)
    for k, (name, spec) in enumerate(block.params.items()):
        raw = np.asarray(given.get(name, spec.default), dtype=object)
        if raw.ndim == 0:
            pf[k] = check_param(type_name, name, spec, raw.item())
        elif raw.shape == (n,):
            for i in range(n):
                try:
                    pf[k, i] = check_param(type_name, name, spec, raw[i])
                except ValueError as exc:
                    raise ValueError(f"{exc} (instance {i})") from None
        else:
            raise ValueError(f"{type_name}: parameter {name!r}: expected a scalar or {n} "
                             f"values, got shape {raw.shape}")
    return BlockBank(block, n, pf, sizes, int(seed))
