"""Device profiles (``drivers/vendor/model.yaml``): a device model's points and option defaults."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

from smartline.core import ConfigError, DriverFamily, DriverNotAvailableError, DriverRegistry
from smartline.tags import Access, DataType, default_registry

from ._common import Issues, data_dir, make_scale, model_keys
from ._schema import (
    DOTTED,
    PROFILE_FORMAT_KEY,
    PROFILE_NAME,
    PROFILE_VERSIONS,
    PointModel,
    ProfileDefaultsModel,
    ProfileFileModel,
)
from ._source import Document, KeyPath, read_document, sort_issues
from ._types import OptionValue, Profile, ProfileManual, ProfilePoint

__all__ = ["build_profile", "find_profile", "load_profile"]



def find_profile(name: str, search_paths: Sequence[Path], *,
                 registry: DriverRegistry | None = None) -> Path:
    """The file of profile ``vendor/model``: ``<path>/vendor/model.yaml`` in the first of
    ``search_paths`` that has it, then in the built-in ``drivers`` folder, then in the
    profile folders the installed driver families ship.

    Raises ``ValueError`` for a malformed name and ``FileNotFoundError`` (listing every
    place it looked) when no folder has it.
    """
    m = PROFILE_NAME.fullmatch(name)
    if m is None:
        raise ValueError(f"profile name {name!r}: expected 'vendor/model' in lower case "
                         "(letters, digits, '.', '_', '-')")
    vendor, model = m.groups()
    reg = registry if registry is not None else default_registry()
    shipped = [Path(d) for f in reg.families.values() for d in f.profile_dirs]
    candidates = [Path(p) / vendor / f"{model}.yaml"
                  for p in (*search_paths, data_dir("drivers"), *shipped)]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"device profile {name!r} not found; looked for "
                            + ", ".join(str(c) for c in candidates)
                            + " (profile_paths adds folders to look in)")


def load_profile(path: str | os.PathLike[str], *,
                 registry: DriverRegistry | None = None) -> Profile:
    """Load and validate one device profile; raises ``ConfigError`` with every problem."""
    doc = read_document(path, what="device profile")
    profile, issues = build_profile(doc, registry=registry)
    if issues.items or profile is None:
        raise ConfigError(sort_issues(issues.items, doc.file))
    return profile


def build_profile(doc: Document, *, registry: DriverRegistry | None = None
                  ) -> tuple[Profile | None, Issues]:
    """Validate a parsed profile; the profile is None when anything is wrong."""
    issues = Issues(doc)
    if not issues.version(PROFILE_FORMAT_KEY, PROFILE_VERSIONS, "device profile"):
        return None, issues
    data = doc.data
    assert isinstance(data, dict)
    top = issues.validate(ProfileFileModel, data, ())
    family_name = data.get("family")
    if not isinstance(family_name, str):
        return None, issues  # reported by the model; points need their grammar
    reg = registry if registry is not None else default_registry()
    try:
        family = reg.family(family_name)
    except DriverNotAvailableError as exc:
        package = data.get("package")
        if isinstance(package, str) and family_name not in reg.families:
            issues.add(("family",), f"driver family {family_name!r} is not installed; it comes "
                                    f"from the package {package!r}: install it with pip "
                                    f"install '{package}'")
        else:
            issues.add(("family",), exc.message)
        return None, issues
    defaults = _defaults(issues, data.get("defaults"), family)
    raw_points = data.get("points")
    points: dict[str, ProfilePoint] = {}
    if isinstance(raw_points, dict):
        if not raw_points:
            issues.add(("points",), "a profile needs at least one point")
        for name, raw in raw_points.items():
            point = _point(issues, name, raw, family, ("points", name))
            if point is not None:
                points[point.name] = point
    protocol = _protocol(issues, data.get("protocol"), family, points)
    if top is None or defaults is None or issues.items:
        return None, issues
    return Profile(
        name=f"{top.vendor}/{top.model}", vendor=top.vendor, model=top.model, family=family.name,
        manual=ProfileManual(title=top.manual.title, document=top.manual.document,
                             revision=top.manual.revision, url=top.manual.url),
        source=doc.path.absolute(), description=top.description,
        defaults=MappingProxyType(defaults), points=MappingProxyType(points), protocol=protocol,
    ), issues


def _protocol(issues: Issues, raw: object, family: DriverFamily,
              points: Mapping[str, ProfilePoint]) -> object:
    """The ``protocol:`` section, validated by the family's model, then checked against
    the points; None where the family has none (a section given anyway is an error)."""
    path: KeyPath = ("protocol",)
    model = family.profile_protocol
    if model is None:
        if raw is not None:
            issues.add(path, f"{family.name} profiles have no protocol section: their points' "
                             "addresses say where each value lives", at_key=True)
        return None
    if raw is None:
        issues.add((), f"a {family.name} profile needs a 'protocol' section: the commands the "
                       "instrument understands and how its replies map to points")
        return None
    protocol = issues.validate(model, raw, path)
    if protocol is None or family.profile_check is None:
        return protocol
    try:
        problems = list(family.profile_check(protocol, points))
    except Exception as exc:  # a plug-in's fault, reported where it applies
        issues.add(path, f"the {family.name} family ({family.package}) failed checking this "
                         f"protocol: {type(exc).__name__}: {exc}")
        return None
    for key_path, message in problems:
        issues.add(tuple(key_path), message)
    return protocol if not problems else None


def _defaults(issues: Issues, raw: object, family: DriverFamily
              ) -> dict[str, OptionValue] | None:
    """Device options the profile sets for every device of its model (the line may override)."""
    if not isinstance(raw, dict):
        return {} if raw is None else None  # a wrong type is reported by the top-level model
    path: KeyPath = ("defaults",)
    own_keys = model_keys(ProfileDefaultsModel)
    own = issues.validate(ProfileDefaultsModel, {k: v for k, v in raw.items() if k in own_keys},
                          path)
    options = issues.options({k: v for k, v in raw.items() if k not in own_keys}, family, path,
                             common=own_keys)
    if options is None or own is None:
        return None
    nested = [k for k, v in options.items() if not isinstance(v, (bool, int, float, str))]
    for key in nested:
        issues.add((*path, key), f"{key} is set per device in the line file, not in a profile",
                   at_key=True)
    if nested:
        return None
    own_set = {k: getattr(own, k) for k in own.model_fields_set}
    return {**own_set, **options}


def _point(issues: Issues, name: Any, raw: object, family: DriverFamily,
           path: KeyPath) -> ProfilePoint | None:
    """One validated point, or None (with issues recorded)."""
    if not isinstance(name, str) or not DOTTED.fullmatch(name):
        issues.add(path, f"{name!r} is not a valid point name: expected letters, digits and "
                         "'_', dots between parts (status.ready)", at_key=True)
        return None
    model = issues.validate(PointModel, raw, path)
    address_text = raw.get("address") if isinstance(raw, dict) else None
    if address_text is None and isinstance(raw, dict):
        if not family.named_points:
            issues.add(path, f"missing required key 'address' (a {family.name} address)",
                       at_key=True)
            return None
        address_text = name  # instrument profiles: the point's name is its address
    if not isinstance(address_text, str) or not address_text:
        return None  # reported by the model
    address = issues.address(family, address_text, (*path, "address"))
    if model is None or address is None:
        return None
    point = ProfilePoint(
        name=name, address=address, access=Access(model.access), scale=make_scale(model.scale),
        limits=model.limits, unit=model.unit, description=model.description, safe=model.safe,
        deadband=model.deadband, enum=MappingProxyType(dict(model.enum)),
        bits=MappingProxyType(dict(model.bits)), sim=MappingProxyType(dict(model.sim)))
    before = len(issues)
    issues.spec_problems(point.tag(name, "profile"), path)
    _check_codes(issues, point, path)
    return point if len(issues) == before else None


def _check_codes(issues: Issues, point: ProfilePoint, path: KeyPath) -> None:
    """``enum`` values must fit the raw type; ``bits`` must exist in it."""
    dtype = getattr(point.address, "dtype", None)
    if not isinstance(dtype, DataType) or dtype is DataType.STRING:
        if point.enum or point.bits:
            issues.add((*path, "enum" if point.enum else "bits"),
                       "enum and bits describe integer points; this point has no integer type")
        return
    if point.bits:
        if not dtype.is_integer:
            issues.add((*path, "bits"), f"bits need an integer type, this point is {dtype}")
        else:
            width = 8 * (dtype.nbytes or 0)
            for bit in point.bits:
                if not 0 <= bit < width:
                    issues.add((*path, "bits", bit), f"bit {bit} does not exist in {dtype}: "
                                                     f"expected 0..{width - 1}", at_key=True)
    if point.enum:
        if not (dtype.is_integer or dtype is DataType.BOOL):
            issues.add((*path, "enum"), f"enum needs an integer type, this point is {dtype}")
        else:
            low, high = dtype.range
            for code in point.enum:
                if not low <= code <= high:
                    issues.add((*path, "enum", code), f"enum value {code} does not fit {dtype} "
                                                      f"({dtype.describe_range()})", at_key=True)

