"""The recipe engine (DESIGN §8, ADR 0024): PackML units over legacy machines, ISA-88
procedures run beside the cycle, the safe expression language, batch records.

``smartline.recipes.packml``, ``smartline.recipes.procedural`` and
``smartline.recipes.expr`` are public modules; the names below load on first use, so
that importing this package stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._executor import Progress, RecipeExecutor
    from ._journal import BatchEvent, BatchJournal, BatchSummary, default_journal_path
    from ._load import FILE_KINDS, RECIPE_FORMAT_KEY, load_recipe, validate_parameters
    from ._model import Recipe
    from ._units import UnitRuntime, Units, load_units, with_units

_LAZY = {
    "BatchEvent": "._journal",
    "BatchJournal": "._journal",
    "BatchSummary": "._journal",
    "default_journal_path": "._journal",
    "FILE_KINDS": "._load",
    "RECIPE_FORMAT_KEY": "._load",
    "load_recipe": "._load",
    "validate_parameters": "._load",
    "Recipe": "._model",
    "Progress": "._executor",
    "RecipeExecutor": "._executor",
    "UnitRuntime": "._units",
    "Units": "._units",
    "load_units": "._units",
    "with_units": "._units",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'smartline.recipes' has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)


__all__ = [
    "FILE_KINDS",
    "RECIPE_FORMAT_KEY",
    "BatchEvent",
    "BatchJournal",
    "BatchSummary",
    "Progress",
    "Recipe",
    "RecipeExecutor",
    "UnitRuntime",
    "Units",
    "default_journal_path",
    "load_recipe",
    "load_units",
    "validate_parameters",
    "with_units",
]
