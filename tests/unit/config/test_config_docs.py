"""The line-file reference page names every key the loaders accept."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from smartline.config._common import model_keys
from smartline.config._schema import (
    DeviceModel,
    LineFileModel,
    ManualModel,
    PointModel,
    ProfileDefaultsModel,
    ProfileFileModel,
    RetryModel,
    ScaleModel,
    SecurityModel,
    TagModel,
    TaskModel,
    UserModel,
    WatchdogModel,
)
from smartline.tags import default_registry

# smartline's own families (a vendor's family documents its own keys)
FAMILIES = [f for f in default_registry().families.values() if f.package == "smartline"]

REFERENCE = Path(__file__).parents[3] / "docs" / "reference" / "line-file.md"
MODELS: tuple[type[BaseModel], ...] = (
    LineFileModel, DeviceModel, RetryModel, SecurityModel, UserModel, ScaleModel, TagModel,
    WatchdogModel, TaskModel, ProfileFileModel, ProfileDefaultsModel, ManualModel, PointModel,
    *(f.options for f in FAMILIES if f.options is not None))
KEYS = sorted({k for m in MODELS for k in model_keys(m)}
              | {p for f in FAMILIES for s in f.schemes for p in s.params})
SCHEMES = sorted(s.name for f in FAMILIES for s in f.schemes)


@pytest.mark.parametrize("key", KEYS)
def test_reference_names_every_key(key: str) -> None:
    assert f"`{key}`" in REFERENCE.read_text(encoding="utf-8")


@pytest.mark.parametrize("scheme", SCHEMES)
def test_reference_names_every_scheme(scheme: str) -> None:
    assert f"`{scheme}://" in REFERENCE.read_text(encoding="utf-8")
