"""No input whatsoever makes the loaders raise anything but ConfigError."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from smartline.config import check_file, load_line, load_profile
from smartline.config._common import model_keys
from smartline.config._schema import (
    DeviceModel,
    LineFileModel,
    PointModel,
    ProfileFileModel,
    ScaleModel,
    TagModel,
    TaskModel,
)
from smartline.core import ConfigError, DriverRegistry
from smartline.tags import default_registry

GOOD = Path(__file__).parents[2] / "data" / "good"
FUZZ = settings(max_examples=60, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

MODELS: tuple[type[BaseModel], ...] = (LineFileModel, DeviceModel, TagModel, TaskModel,
                                       ScaleModel, ProfileFileModel, PointModel,
                                       *(f.options for f in default_registry().families.values()
                                         if f.options is not None))
KEYS = sorted({k for m in MODELS for k in model_keys(m)} | {"<<"})
YAMLISH = st.text(alphabet=st.sampled_from(list(
    "abcdefsmrtline:-[]{}'\",.&*!|>#%@?~\n\t 0123456789_/=;\\\x00\x07é€")), max_size=300)

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
    st.sampled_from(["all", "r", "rw", "w", "memory://m", "modbus+tcp://h:502?unit=1",
                     "s7://h?rack=0&slot=1", "opc.tcp://h:4840", "serial:///dev/x",
                     "hr:1:float32", "co:5", "level", "DB1.DBD4:REAL", "ns=2;s=x",
                     "acme/vfd-100", "acme/balance", "None", "Basic256Sha256", "skip", "VAR"]))
keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=8), st.integers(0, 20), st.booleans())
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(keys, inner, max_size=5)),
    max_leaves=25)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "profiles").symlink_to(GOOD / "profiles")
    yield folder


REGISTRY = DriverRegistry()


def _only_config_errors(path: Path) -> None:
    for call in (lambda: check_file(path, env={"VAR": "x"}, registry=REGISTRY),
                 lambda: load_line(path, env={}, registry=REGISTRY),
                 lambda: load_profile(path)):
        try:
            call()
        except ConfigError as exc:
            assert exc.issues
            assert all(i.file and i.message for i in exc.issues)
            assert str(exc)


def _write(folder: Path, data: Any) -> Path:
    path = folder / "fuzz.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    return path


@FUZZ
@given(text=YAMLISH)
def test_random_yamlish_text(scratch: Path, text: str) -> None:
    path = scratch / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    _only_config_errors(path)


@FUZZ
@given(data=st.binary(max_size=200))
def test_random_bytes(scratch: Path, data: bytes) -> None:
    path = scratch / "fuzz.yaml"
    path.write_bytes(data)
    _only_config_errors(path)


@FUZZ
@given(body=st.dictionaries(keys, values, max_size=6),
       kind=st.sampled_from([None, {"smartline": 1}, {"smartline-profile": 1}]))
def test_random_structures(scratch: Path, body: dict[Any, Any],
                           kind: dict[str, int] | None) -> None:
    data = {**(kind or {}), **body}
    _only_config_errors(_write(scratch, data))


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


GOOD_LINE = yaml.safe_load((GOOD / "line-with-profiles.yaml").read_text())
GOOD_LINE["profile_paths"] = ["profiles"]
GOOD_PATHS = list(_paths(GOOD_LINE))[1:]


@FUZZ
@given(where=st.lists(st.sampled_from(GOOD_PATHS), min_size=1, max_size=3), new=values)
def test_mutated_good_line(scratch: Path, where: list[tuple[Any, ...]], new: Any) -> None:
    data = copy.deepcopy(GOOD_LINE)
    for path in where:
        node = data
        try:
            for part in path[:-1]:
                node = node[part]
            node[path[-1]] = new
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed this path
    _only_config_errors(_write(scratch, data))
