"""``smartline check``: validate any smartline file, whatever its kind, and summarise it."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from smartline.core import ConfigError, DriverRegistry

from ._line import build_line
from ._profile import build_profile
from ._schema import LINE_FORMAT_KEY, PROFILE_FORMAT_KEY
from ._source import Document, read_document, sort_issues
from ._types import LineConfig

__all__ = ["KINDS", "CheckOptions", "FileKind", "check_file", "check_line", "line_summary",
           "plural"]


@dataclass(frozen=True, slots=True)
class CheckOptions:
    """What ``check_file`` was asked, passed on to the checker of the file's kind."""

    profile_paths: Sequence[Path]
    env: Mapping[str, str] | None
    registry: DriverRegistry | None


@dataclass(frozen=True, slots=True)
class FileKind:
    """A kind of smartline file: its format key, keys that betray it, and its checker.

    ``hints`` recognise a file whose format key is missing, so that it gets the
    kind's own "missing format version" error instead of a generic one.
    """

    name: str
    hints: tuple[str, ...]
    check: Callable[[Document, CheckOptions], str]


def plural(n: int, word: str) -> str:
    """``1 device``, ``2 devices``: for summaries."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def check_line(doc: Document, options: CheckOptions) -> LineConfig:
    """Build a line file's config for ``smartline check`` (ConfigError if it is bad)."""
    return build_line(doc, profile_paths=options.profile_paths, env=options.env,
                      registry=options.registry)


def line_summary(doc: Document, line: LineConfig, more: str = "") -> str:
    """A checked line in one line (``more`` appended: the sections other layers check),
    then a note per driver whose dependencies are not installed here."""
    summary = (f"{doc.file}: line {line.name!r}: {plural(len(line.devices), 'device')}, "
               f"{plural(len(line.tags), 'tag')}, {plural(len(line.tasks), 'task')}{more}")
    notes: dict[str, list[str]] = {}
    for device in line.devices.values():
        family = device.scheme.family
        missing = family.missing_imports()
        if missing:
            hint = (f"pip install '{family.requires}'" if family.requires
                    else f"install {family.package}'s dependencies")
            key = (f"the {family.name} driver needs {', '.join(missing)}, which is not "
                   f"installed here: {hint}")
            notes.setdefault(key, []).append(device.name)
    for note, devices in notes.items():
        summary += f"\n  note: devices {', '.join(devices)}: {note}"
    return summary


def _check_line(doc: Document, options: CheckOptions) -> str:
    return line_summary(doc, check_line(doc, options))


def _check_profile(doc: Document, options: CheckOptions) -> str:
    profile, issues = build_profile(doc, registry=options.registry)
    if profile is None or issues.items:
        raise ConfigError(sort_issues(issues.items, doc.file))
    return (f"{doc.file}: profile {profile.name!r} ({profile.family}): "
            f"{plural(len(profile.points), 'point')}")


KINDS: Mapping[str, FileKind] = MappingProxyType({
    LINE_FORMAT_KEY: FileKind("line file", ("line", "devices", "tags", "tasks"), _check_line),
    PROFILE_FORMAT_KEY: FileKind("device profile", ("vendor", "model", "points"), _check_profile),
})
"""Format key → kind, for the files this layer knows. Layers above add theirs by passing
``kinds`` to :func:`check_file` (the HIL simulator's scenario and plant files:
``smartline.hil.scenario.FILE_KINDS``), so this layer never imports them."""


def check_file(path: str | os.PathLike[str], *, profile_paths: Sequence[Path] = (),
               env: Mapping[str, str] | None = None,
               registry: DriverRegistry | None = None,
               kinds: Mapping[str, FileKind] | None = None) -> str:
    """Validate one file of any kind; return its one-line summary or raise ``ConfigError``.

    The kind is told by the top-level format key (``smartline: 1`` for a line file,
    ``smartline-profile: 1`` for a device profile). The summary reads e.g.
    ``recipes/x.yaml: line 'bottling-1': 6 devices, 8 tags, 2 tasks``. ``profile_paths``,
    ``env`` and ``registry`` mean what they mean for :func:`load_line`; ``kinds`` replaces
    :data:`KINDS` (pass ``{**KINDS, **more}`` to add kinds).
    """
    doc = read_document(path, what="smartline file")
    options = CheckOptions(profile_paths=tuple(profile_paths), env=env, registry=registry)
    data = doc.data
    assert isinstance(data, dict)
    known = KINDS if kinds is None else kinds
    for key, kind in known.items():
        if key in data:
            return kind.check(doc, options)
    hinted = max(known.values(), key=lambda k: sum(hint in data for hint in k.hints))
    if any(hint in data for hint in hinted.hints):
        return hinted.check(doc, options)  # reports the missing format version
    expected = " or ".join(f"'{key}: 1' ({kind.name})" for key, kind in known.items())
    raise ConfigError(sort_issues([*doc.issues, doc.issue(
        (), f"not a smartline file: expected a format key at the top, {expected}")], doc.file))
