"""``smartline browse``: what a device offers, as a line file to paste from.

:func:`browse_url` connects to one device by its URL alone (the scheme picks the driver
family through the registry, the family parses the URL's parameters) and asks the driver's
``browse`` for its identity and points. :func:`render_yaml` turns the answer into a line
file that ``smartline check`` accepts (identity and notes as comments, one tag per point);
:func:`render_json` into plain data.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from typing import Any

import yaml

from .core import (
    BrowsedPoint,
    BrowseResult,
    ConfigError,
    ConfigIssue,
    DeviceSpec,
    DriverBase,
    DriverRegistry,
    SmartlineError,
    parse_url,
)

__all__ = ["BrowseUnsupportedError", "browse_url", "parse_option", "render_json",
           "render_yaml", "tag_names"]

DEVICE = "device"
"""The device name the rendered line file uses."""

_SEGMENT_BAD = re.compile(r"[^A-Za-z0-9_]")


class BrowseUnsupportedError(SmartlineError, NotImplementedError):
    """The URL's driver cannot browse its device."""


async def browse_url(url: str, *, depth: int = 3, timeout_s: float = 2.0,
                     registry: DriverRegistry | None = None,
                     env: Mapping[str, str] | None = None,
                     options: Mapping[str, object] | None = None,
                     max_requests: int | None = None) -> BrowseResult:
    """Browse the device at ``url`` ``depth`` levels deep (where it is a tree).

    ``options`` are device options of the URL's family (as in a line file's device entry:
    ``{"max_registers": 60}``, ``{"security": "none"}``), plus ``security`` (a mapping),
    ``username`` and
    ``password_env`` (the name of a variable in ``env``, default ``os.environ``).
    ``max_requests`` bounds the requests of drivers that probe (Modbus).

    Raises ``ConfigError`` for a bad URL or options, ``DriverNotAvailableError`` for an
    unknown scheme or a missing extra (naming it), :class:`BrowseUnsupportedError` when
    the driver cannot browse, and communication errors when the device does not answer.
    """
    try:
        parsed = parse_url(url)
    except ValueError as exc:
        raise ConfigError(ConfigIssue(url, "url", str(exc))) from None
    if registry is None:
        from .tags import default_registry

        registry = default_registry()
    cls = registry.load(parsed.scheme)  # DriverNotAvailableError names the extra
    if not (isinstance(cls, type) and issubclass(cls, DriverBase)):
        raise BrowseUnsupportedError(f"the {parsed.scheme}:// driver {cls.__qualname__} "
                                     "is not a smartline DriverBase: it cannot browse")
    if getattr(cls, "_browse", None) is DriverBase._browse:
        raise BrowseUnsupportedError(f"the {parsed.scheme}:// driver ({cls.__qualname__}) "
                                     "cannot browse its device yet")
    given = dict(options or {})
    protocol: object = None
    profile_name = given.pop("profile", None)
    if profile_name is not None:
        profile = _load_profile(url, str(profile_name), registry)
        if profile.family != registry.info(parsed.scheme).family.name:
            raise ConfigError(ConfigIssue(url, "profile", f"profile {profile.name!r} describes "
                                          f"{profile.family} devices, not {parsed.scheme}://"))
        protocol = profile.protocol
        given = {**{k: v for k, v in profile.defaults.items() if k != "timeout_ms"}, **given}
    security = given.pop("security", None) or {}
    if isinstance(security, str):  # ``security: none``: a device option of the family
        given["security"] = security
        security = {}
    username = given.pop("username", None)
    password_env = given.pop("password_env", None)
    password: str | None = None
    if password_env is not None:
        environ = os.environ if env is None else env
        password = environ.get(str(password_env))
        if password is None:
            raise ConfigError(ConfigIssue(url, "password_env",
                                          f"environment variable {password_env} is not set"))
    if not isinstance(security, Mapping):
        raise ConfigError(ConfigIssue(url, "security", "expected a mapping"))
    spec = DeviceSpec(name=DEVICE, url=parsed, timeout_s=timeout_s, options=given or None,
                      security={str(k): str(v) for k, v in security.items()},
                      username=None if username is None else str(username), password=password,
                      protocol=protocol)
    driver: DriverBase[Any, Any] = cls(spec)
    if max_requests is not None and hasattr(driver, "browse_max_requests"):
        driver.browse_max_requests = max_requests  # type: ignore[attr-defined]
    try:
        try:
            return await driver.browse(depth)
        except SmartlineError as exc:
            if isinstance(exc.__cause__, NotImplementedError):
                raise BrowseUnsupportedError(str(exc.__cause__)) from exc
            raise
    finally:
        await driver.close()


def _load_profile(url: str, name: str, registry: DriverRegistry) -> Any:
    """The device profile ``vendor/model`` (built-in, a family's, or under ``./``)."""
    from pathlib import Path

    from .config import find_profile, load_profile

    try:
        return load_profile(find_profile(name, [Path.cwd()], registry=registry),
                            registry=registry)
    except (ValueError, FileNotFoundError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(ConfigIssue(url, "profile", str(exc))) from None


_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_option(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` of ``--option``: a top-level device key and a YAML scalar
    (``security=none`` → ``("security", "none")``, ``deadband=0.5`` → ``0.5``).
    ``ValueError`` names what is wrong."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep:
        raise ValueError(f"--option {text!r}: expected KEY=VALUE (e.g. security=none)")
    if not _KEY.fullmatch(key):
        raise ValueError(f"--option {text!r}: {key!r} is not a top-level device key "
                         "(letters, digits and underscores; no dots)")
    if key == "url":
        raise ValueError("--option url=...: the URL is the argument of browse")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ValueError(f"--option {text!r}: the value is not YAML: {exc}") from None
    if value is not None and not isinstance(value, bool | int | float | str):
        raise ValueError(f"--option {text!r}: the value must be a scalar (text, number, "
                         "true/false), not a mapping or a list")
    return key, value


def tag_names(points: tuple[BrowsedPoint, ...] | list[BrowsedPoint]) -> list[str]:
    """Valid (dotted identifiers, as a line file's tag names) and unique names, in order."""
    out: list[str] = []
    seen: set[str] = set()
    for p in points:
        segments = []
        for part in (p.name or "point").split("."):
            seg = _SEGMENT_BAD.sub("_", part.strip()) or "_"
            segments.append("_" + seg if seg[0].isdigit() else seg)
        base = ".".join(segments)
        name, k = base, 2
        while name in seen:
            name, k = f"{base}_{k}", k + 1
        seen.add(name)
        out.append(name)
    return out


def _plain(value: object) -> object:
    """A value YAML and JSON can hold as it is."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return str(value)


def _tag_entry(point: BrowsedPoint) -> dict[str, object]:
    entry: dict[str, object] = {"device": DEVICE, "address": point.address}
    if point.access != "r":
        entry["access"] = point.access
    if point.unit:
        entry["unit"] = point.unit
    if point.description:
        entry["description"] = point.description
    return entry


def _dump_line(key: str, value: object) -> str:
    """``key: value`` on one line (flow style), quoted by PyYAML where needed."""
    text = yaml.safe_dump({key: value}, default_flow_style=True, sort_keys=False,
                          allow_unicode=True, width=math.inf)
    return text.strip()[1:-1]  # drop the braces of the outer mapping


def _comments(title: str, value: object) -> list[str]:
    body = yaml.safe_dump({title: value}, default_flow_style=False, sort_keys=False,
                          allow_unicode=True, width=math.inf)
    return [f"# {line}".rstrip() for line in body.splitlines()]


def render_yaml(url: str, result: BrowseResult, *, line: str = "browsed",
                options: Mapping[str, object] | None = None) -> str:
    """A line file with one device (``url``, and ``options`` as its device keys, e.g.
    ``security: none``) and a tag per point; identity and notes as comments. Passes
    ``smartline check`` as it is; copy the parts you need."""
    device: dict[str, object] = {"url": url}
    for key, value in (options or {}).items():
        if key != "url":
            device[str(key)] = _plain(value)
    out = [f"# smartline browse {url}".rstrip()]
    if result.identity:
        out += _comments("identity", _plain(dict(result.identity)))
    if result.notes:
        out += _comments("notes", list(result.notes))
    out += ["smartline: 1", _dump_line("line", line), "devices:",
            "  " + _dump_line(DEVICE, device)]
    if not result.points:
        out.append("tags: {}")
    else:
        out.append("tags:")
        for name, point in zip(tag_names(result.points), result.points, strict=True):
            text = "  " + _dump_line(name, _tag_entry(point))
            if point.type and point.type not in point.address:
                text += f"  # {' '.join(point.type.split())}"
            out.append(text)
    return "\n".join(out) + "\n"


def render_json(url: str, result: BrowseResult) -> dict[str, object]:
    """The browse result as plain data: url, identity, points (with tag names), notes."""
    points = [{"name": name, "address": p.address, "access": p.access, "type": p.type,
               "unit": p.unit, "description": p.description}
              for name, p in zip(tag_names(result.points), result.points, strict=True)]
    return {"url": url, "identity": _plain(dict(result.identity)), "points": points,
            "notes": list(result.notes)}
