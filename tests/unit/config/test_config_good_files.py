"""Every shipped data file (recipes/, drivers/) and every good test file validates."""

from __future__ import annotations

from pathlib import Path

import pytest

from smartline.config import check_file, data_dir, load_line, load_profile

GOOD = Path(__file__).parents[2] / "data" / "good"
GOOD_PROFILES = GOOD / "profiles"
# secrets the example files name; documented at the top of each file that needs one
ENV = {"VISION_PW": "not-a-real-password", "HMI_PASSWORD": "not-a-real-password"}

RECIPE_FILES = sorted(data_dir("recipes").glob("**/*.yaml"))
PROFILE_FILES = sorted(data_dir("drivers").glob("**/*.yaml")) + sorted(
    GOOD_PROFILES.glob("**/*.yaml"))
GOOD_LINES = sorted(GOOD.glob("*.yaml"))


def _id(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def test_the_data_folders_are_found() -> None:
    assert data_dir("recipes").is_dir()
    assert data_dir("drivers").is_dir()
    assert data_dir("hil_sim").is_dir()
    assert data_dir("recipes") / "example-line.yaml" in RECIPE_FILES
    with pytest.raises(ValueError, match="unknown data kind"):
        data_dir("nope")  # type: ignore[arg-type]


@pytest.mark.parametrize("path", RECIPE_FILES, ids=_id)
def test_every_recipe_file_checks(path: Path) -> None:
    # shipped lines need no secrets: `smartline check recipes/*.yaml` passes on any machine
    from smartline.config import KINDS
    from smartline.recipes import FILE_KINDS as RECIPE_KINDS

    summary = check_file(path, env={}, kinds={**KINDS, **RECIPE_KINDS})
    assert summary.startswith(f"{path}: ")


@pytest.mark.parametrize("path", PROFILE_FILES, ids=_id)
def test_every_profile_loads_and_is_where_its_name_says(path: Path) -> None:
    profile = load_profile(path)
    assert profile.name == f"{path.parent.name}/{path.stem}"
    assert profile.points
    assert profile.manual.title
    assert check_file(path) == (f"{path}: profile {profile.name!r} ({profile.family}): "
                                f"{len(profile.points)} point{'s' * (len(profile.points) != 1)}")


@pytest.mark.parametrize("path", GOOD_LINES, ids=_id)
def test_every_good_line_loads(path: Path) -> None:
    line = load_line(path, env=ENV)
    assert line.devices
    assert line.source == path.absolute()


def test_example_line_summary() -> None:
    path = data_dir("recipes") / "example-line.yaml"
    assert check_file(path) == f"{path}: line 'example-1': 1 device, 7 tags, 2 tasks"


def test_design_example_needs_its_password_variable() -> None:
    path = GOOD / "design-example.yaml"
    summary = check_file(path, env=ENV).splitlines()
    assert summary[0] == f"{path}: line 'bottling-1': 6 devices, 8 tags, 2 tasks"
    # the only other lines are notes on protocol libraries not installed here
    assert all(line.startswith("  note: devices ") for line in summary[1:])
    with pytest.raises(ValueError, match="environment variable VISION_PW is not set"):
        check_file(path, env={})
