"""``smartline check`` for the simulator's files: plant and scenario files as file kinds.

The configuration layer knows line files and device profiles only (it must not depend on
the simulator); the command line adds these kinds when it checks a file.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from smartline.config._check import CheckOptions, FileKind, plural
from smartline.config._source import Document, sort_issues
from smartline.core import ConfigError

from ._files import (
    PLANT_FORMAT_KEY,
    SCENARIO_FORMAT_KEY,
    check_plant_document,
    check_scenario_document,
)

__all__ = ["FILE_KINDS"]


def _check_plant(doc: Document, options: CheckOptions) -> str:
    plant, issues = check_plant_document(doc)
    if plant is None or issues.items:
        raise ConfigError(sort_issues(issues.items, doc.file))
    return (f"{doc.file}: plant {plant.name!r}: {plural(len(plant.blocks), 'block')}, "
            f"{plural(len(plant.links), 'link')}, {plural(len(plant.wiring), 'wire')}")


def _check_scenario(doc: Document, options: CheckOptions) -> str:
    scenario, issues = check_scenario_document(doc)
    if scenario is None or issues:
        raise ConfigError(sort_issues(issues, doc.file))
    return (f"{doc.file}: scenario {scenario.name!r} (plant {scenario.plant.name!r}): "
            f"{plural(len(scenario.devices), 'device')}, "
            f"{plural(len(scenario.timeline), 'timeline event')}, "
            f"{plural(len(scenario.expect), 'expectation')}")


FILE_KINDS: Mapping[str, FileKind] = MappingProxyType({
    SCENARIO_FORMAT_KEY: FileKind("HIL scenario", ("plant", "devices", "timeline", "expect"),
                                  _check_scenario),
    PLANT_FORMAT_KEY: FileKind("HIL plant", ("blocks", "wiring", "links"), _check_plant),
})
"""Format key → kind of the simulator's files, for ``check_file(..., kinds=...)``."""
