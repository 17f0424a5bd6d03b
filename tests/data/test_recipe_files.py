"""Every recipe file shipped in recipes/ (and the good test recipes) loads against its line
and passes `smartline check`; every G-code program next to them is one a recipe uses."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from smartline.config import KINDS, check_file
from smartline.recipes._load import FILE_KINDS, RECIPE_FORMAT_KEY, find_line_for, load_recipe
from smartline.recipes._model import Parallel, ProgramAction, Recipe

ROOT = Path(__file__).resolve().parents[2]
_HEADER = re.compile(rf"^{re.escape(RECIPE_FORMAT_KEY)}:", re.MULTILINE)


def _recipes(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.yaml") if _HEADER.search(p.read_text()))


SHIPPED = _recipes(ROOT / "recipes")
TEST_GOOD = _recipes(ROOT / "tests" / "data" / "recipes" / "good")


def test_the_examples_are_there() -> None:
    names = {p.stem for p in SHIPPED}
    assert {"heat-treat-42crmo4", "bottling-500ml", "cnc-bracket"} <= names


@pytest.mark.parametrize("path", SHIPPED + TEST_GOOD,
                         ids=[p.name for p in SHIPPED + TEST_GOOD])
def test_recipe_file_loads_and_checks(path: Path) -> None:
    recipe = load_recipe(path)
    line = find_line_for(path)
    assert line.is_file()
    assert recipe.procedure and recipe.source == path.absolute()
    summary = check_file(path, kinds={**KINDS, **FILE_KINDS})
    assert summary.startswith(f"{path}: recipe {recipe.name!r} version {recipe.version} ")


def _programs(recipe: Recipe) -> set[Path]:
    found: set[Path] = set()

    def walk(chart: tuple[object, ...]) -> None:
        for item in chart:
            if isinstance(item, Parallel):
                for branch in item.branches:
                    walk(branch)
                continue
            for attr in ("operations", "phases"):
                if hasattr(item, attr):
                    walk(getattr(item, attr))
            for action in getattr(item, "actions", ()):
                if isinstance(action, ProgramAction):
                    found.add(action.file.resolve())

    walk(recipe.procedure)
    return found


def test_every_shipped_program_is_used_by_a_recipe() -> None:
    used = set().union(*(_programs(load_recipe(p)) for p in SHIPPED))
    shipped = {p.resolve() for p in (ROOT / "recipes" / "programs").glob("*.nc")}
    assert shipped and shipped <= used
