"""Line files (DESIGN §3): devices, tags and tasks, each checked against the others.

The loader validates every item on its own first (so one bad device does not hide the
problems of the next), then the references between them: a tag's device and address, a
task's tags. An item that is already wrong is skipped by the checks that depend on it, so
one mistake is reported once, not again by everything that refers to it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, TypeGuard

from pydantic import ValidationError

from smartline.core import (
    SERIAL_PARAMS,
    ConfigError,
    ConnectionUrl,
    DriverFamily,
    DriverNotAvailableError,
    DriverRegistry,
    SchemeInfo,
    parse_url,
)
from smartline.tags import Access, TagAddress, TagSpec, default_registry

from ._common import Issues, make_scale, model_keys
from ._messages import describe, did_you_mean, one_of
from ._profile import build_profile, find_profile
from ._schema import (
    DOTTED,
    IDENTIFIER,
    LINE_FORMAT_KEY,
    LINE_VERSIONS,
    DeviceModel,
    LineFileModel,
    SecurityModel,
    TagModel,
    TaskModel,
    UserModel,
)
from ._source import Document, KeyPath, read_document, sort_issues
from ._types import (
    DeviceConfig,
    LineConfig,
    OptionValue,
    Profile,
    ProfilePoint,
    TaskConfig,
    WatchdogConfig,
)

__all__ = ["build_line", "load_line"]

_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_SECURITY_FILES = ("certificate", "private_key", "server_certificate")
_MAX_LISTED = 12  # names listed in "unknown ..." messages
#: the name rules of devices and tasks (IDENTIFIER) and of tags (DOTTED), as messages say them
_IDENTIFIER_RULE = "letters, digits and '_', not starting with a digit"
_DOTTED_RULE = "letters, digits and '_', dots between parts (oven.temp)"



def load_line(path: str | os.PathLike[str], *, profile_paths: Sequence[Path] = (),
              env: Mapping[str, str] | None = None,
              registry: DriverRegistry | None = None) -> LineConfig:
    """Load and validate a line file; raises ``ConfigError`` listing every problem found.

    Device profiles are looked up in ``profile_paths``, then in the file's own
    ``profile_paths`` (relative to the file), then in the built-in ``drivers`` folder.
    Secrets are read from ``env`` (default ``os.environ``). Drivers are not imported: the
    ``registry`` is only asked what each URL scheme is.
    """
    doc = read_document(path, what="line file")
    return build_line(doc, profile_paths=profile_paths, env=env, registry=registry)


def build_line(doc: Document, *, profile_paths: Sequence[Path] = (),
               env: Mapping[str, str] | None = None,
               registry: DriverRegistry | None = None) -> LineConfig:
    """Validate a parsed line file (see :func:`load_line`)."""
    return _LineLoader(doc, profile_paths, env, registry).load()


@dataclass(frozen=True, slots=True)
class _Device:
    """What tags need to know about a device that validated far enough to check them."""

    family: DriverFamily
    profile: Profile | None
    points: Literal["all"] | tuple[str, ...] | None


def _section(data: Mapping[Any, Any], key: str) -> dict[Any, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def _usable(data: Mapping[Any, Any], key: str) -> bool:
    """The section is absent or a mapping (a wrong type is reported by the top-level model)."""
    return key not in data or isinstance(data[key], dict)


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_MAX_LISTED])
    return shown + (f" and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else "")


class _LineLoader:
    """One load of one line file; collects issues as it goes."""

    def __init__(self, doc: Document, profile_paths: Sequence[Path],
                 env: Mapping[str, str] | None, registry: DriverRegistry | None) -> None:
        self.doc = doc
        self.issues = Issues(doc)
        self.env: Mapping[str, str] = os.environ if env is None else env
        self.registry = registry if registry is not None else default_registry()
        self.search: list[Path] = [Path(p) for p in profile_paths]
        self._profiles: dict[str, Profile | None] = {}
        self._unmade: set[Any] = set()  # devices whose `points` tags could not be made

    def error(self) -> ConfigError:
        return ConfigError(sort_issues(self.issues.items, self.doc.file))

    def load(self) -> LineConfig:
        if not self.issues.version(LINE_FORMAT_KEY, LINE_VERSIONS, "line file"):
            raise self.error()
        data = self.doc.data
        assert isinstance(data, dict)
        top = self.issues.validate(LineFileModel, data, ())
        self.search += self._profile_paths(data.get("profile_paths"))

        raw_devices = _section(data, "devices")
        devices: dict[str, DeviceConfig] = {}
        checked: dict[str, _Device] = {}
        for name, raw in raw_devices.items():
            config, device = self._device(name, raw, ("devices", name))
            if device is not None:
                checked[name] = device
            if config is not None:
                devices[name] = config
        self._serial_lines(devices, raw_devices)
        # with a broken section every reference into it would be a false alarm: don't check
        device_names = set(raw_devices) if _usable(data, "devices") else None
        # tags <device>.<point> of a device whose profile failed are not known either
        self._unmade = {n for n, raw in raw_devices.items()
                        if n not in checked and isinstance(raw, dict) and "points" in raw}

        raw_tags = _section(data, "tags")
        tags: dict[str, TagSpec] = {}
        for name, raw in raw_tags.items():
            spec = self._tag(name, raw, ("tags", name), checked, device_names)
            if spec is not None:
                tags[name] = spec
        known_tags = {n for n in raw_tags if isinstance(n, str)}
        for name, device in checked.items():
            known_tags |= self._point_tags(name, device, raw_tags, tags)
        tag_names = known_tags if _usable(data, "tags") else None

        tasks: dict[str, TaskConfig] = {}
        writers: dict[str, str] = {}
        for name, raw in _section(data, "tasks").items():
            task = self._task(name, raw, ("tasks", name), tags=tags, tag_names=tag_names,
                              writers=writers)
            if task is not None:
                tasks[name] = task

        if self.issues.items or top is None:
            raise self.error()
        return LineConfig(name=top.line, source=self.doc.path.absolute(),
                          description=top.description, devices=MappingProxyType(devices),
                          tags=MappingProxyType(tags), tasks=MappingProxyType(tasks))

    # -- profiles ---------------------------------------------------------------------------
    def _profile_paths(self, raw: object) -> list[Path]:
        if not isinstance(raw, list):
            return []
        found = []
        for i, item in enumerate(raw):
            if not isinstance(item, str):
                continue  # reported by the top-level model
            folder = self.doc.folder / item
            if not folder.is_dir():
                self.issues.add(("profile_paths", i), f"folder {item!r} not found (looked for "
                                                      f"{folder})")
            else:
                found.append(folder)
        return found

    def _profile(self, name: str, path: KeyPath) -> Profile | None:
        """The profile ``name`` (loaded once per line); its own problems carry its file name."""
        if name in self._profiles:
            profile = self._profiles[name]
            if profile is None:
                self.issues.add(path, f"device profile {name!r} did not load (see above)")
            return profile
        self._profiles[name] = None
        try:
            file = find_profile(name, self.search, registry=self.registry)
        except (FileNotFoundError, ValueError) as exc:
            self.issues.add(path, str(exc))
            return None
        try:
            doc = read_document(file, what="device profile")
        except ConfigError as exc:
            self.issues.extend(exc.issues)
            self.issues.add(path, f"device profile {name!r} in {file} could not be read")
            return None
        profile, issues = build_profile(doc, registry=self.registry)
        if profile is None:
            self.issues.extend(issues.items)
            self.issues.add(path, f"device profile {name!r} in {file} has errors (listed under "
                                  "its file name)")
            return None
        if profile.name != name:
            self.issues.add(path, f"{file} declares profile {profile.name!r}, expected {name!r}: "
                                  "a profile's vendor and model must match its folder and file "
                                  "name")
            return None
        self._profiles[name] = profile
        return profile

    def _settings(self, raw: object, path: KeyPath, *, what: str, name: Any,
                  pattern: re.Pattern[str], rule: str, hint: str) -> TypeGuard[dict[Any, Any]]:
        """Whether ``raw``, the settings of the ``what`` called ``name``, is a mapping.

        A string ``name`` that breaks ``pattern`` is reported too (non-strings are reported
        by the top-level model); ``hint`` names the settings expected.
        """
        if isinstance(name, str) and not pattern.fullmatch(name):
            self.issues.add(path, f"{name!r} is not a valid {what} name: expected {rule}",
                            at_key=True)
        if not isinstance(raw, dict):
            self.issues.add(path, f"expected the {what}'s settings ({hint}), found "
                                  f"{describe(raw)}")
            return False
        return True

    # -- devices ----------------------------------------------------------------------------
    def _device(self, name: Any, raw: object,
                path: KeyPath) -> tuple[DeviceConfig | None, _Device | None]:
        before = len(self.issues)
        if not self._settings(raw, path, what="device", name=name, pattern=IDENTIFIER,
                              rule=_IDENTIFIER_RULE, hint="url: ..."):
            return None, None
        common_keys = model_keys(DeviceModel)
        model = self.issues.validate(
            DeviceModel, {k: v for k, v in raw.items() if k in common_keys}, path)
        package = raw.get("package")
        url, info = self._url(raw.get("url"), (*path, "url"),
                              package if isinstance(package, str) else None)
        family = info.family if info is not None else None
        rest = {k: v for k, v in raw.items() if k not in common_keys}
        options = self.issues.options(rest, family, path, common=common_keys,
                                      others=self.registry.families.values())
        url_options = self._url_params(url, info, raw.get("url"), (*path, "url"))
        if options is not None and url_options is not None and info is not None:
            self._scheme_keys(info, options, url_options, path)

        profile: Profile | None = None
        wanted = raw.get("profile")
        usable = wanted is None  # no profile asked for, or one that loaded and fits
        if isinstance(wanted, str) and model is not None:
            profile = self._profile(wanted, (*path, "profile"))
            if profile is not None and info is not None and profile.family != info.family.name:
                self.issues.add((*path, "profile"), f"profile {wanted!r} describes "
                                f"{profile.family} devices; this device's URL is "
                                f"{info.family.name} ({info.name}://)")
                profile = None
            usable = profile is not None
        points = model.points if model is not None else None
        if points is not None and wanted is None:
            self.issues.add((*path, "points"), "points are taken from a device profile: add "
                                               "'profile: vendor/model'")
        if wanted is None and family is not None and family.profile_protocol is not None:
            self.issues.add(path, f"a {family.name} device needs 'profile: vendor/model': the "
                                  "profile describes the instrument's protocol")
        device = None
        if family is not None and model is not None and usable:
            device = _Device(family, profile, points if profile is not None else None)
        if model is None or url is None or info is None or options is None \
                or url_options is None or len(self.issues) > before:
            return None, device
        config = self._device_config(name, model, url=url, info=info, profile=profile,
                                     options=options, url_options=url_options, path=path)
        return (config if len(self.issues) == before else None), device

    def _scheme_keys(self, info: SchemeInfo, options: Mapping[str, Any],
                     url_options: Mapping[str, OptionValue], path: KeyPath) -> None:
        """Keys that are URL parameters of another scheme of the family only (baudrate on a
        TCP device), and keys given twice (in the URL and as a key) with different values."""
        mine = set(info.scheme.params)
        for key, value in options.items():
            others = [s.name for s in info.family.schemes
                      if s is not info.scheme and key in s.params]
            if others and key not in mine:
                self.issues.add((*path, key), f"{key} applies to {one_of(others)} URLs, not "
                                              f"{info.name}", at_key=True)
            if key in url_options and url_options[key] != value:
                self.issues.add((*path, key), f"{key} {value} contradicts {key}="
                                              f"{url_options[key]} in the url: give the {key} "
                                              "once")

    def _serial_lines(self, devices: Mapping[str, DeviceConfig],
                      raw_devices: Mapping[Any, Any]) -> None:
        """Devices on one serial port must agree on its settings: the port is opened once,
        with one baud rate, parity, stop bits and data bits."""
        first: dict[tuple[str, str], tuple[str, dict[str, object]]] = {}
        for name, config in devices.items():
            if not config.scheme.scheme.serial:
                continue
            settings = {key: getattr(config.options, key, None) for key in SERIAL_PARAMS}
            port = config.url.path
            where = (config.scheme.name, port)
            if where not in first:
                first[where] = (name, settings)
                continue
            other, expected = first[where]
            differ = [key for key in settings if settings[key] != expected[key]]
            if not differ:
                continue
            key = differ[0]
            text = raw_devices[name].get("url")
            found = ", ".join(f"{k}={settings[k]}" for k in differ)
            wanted = ", ".join(f"{k}={expected[k]}" for k in differ)
            self.issues.add(("devices", name, "url"),
                            f"serial port {port!r} is already used by device {other!r} with "
                            f"{wanted} (here {found}): every device on one serial line needs "
                            "the same baudrate, parity, stopbits and bytesize",
                            offset=_param_offset(text, key) if isinstance(text, str) else None)

    def _url(self, text: object, path: KeyPath, package: str | None = None
             ) -> tuple[ConnectionUrl | None, SchemeInfo | None]:
        if not isinstance(text, str):
            return None, None  # reported by the model
        try:
            url = parse_url(text)
        except ValueError as exc:
            self.issues.add(path, f"bad URL: {exc}")
            return None, None
        try:
            return url, self.registry.info(url.scheme)
        except DriverNotAvailableError as exc:
            message = exc.message
            if package is not None and url.scheme not in self.registry.schemes:
                message = (f"no installed driver family serves {url.scheme}:// URLs; this "
                           f"device's driver comes from the package {package!r}: install it "
                           f"with pip install '{package}'")
            self.issues.add(path, message, offset=0)
            return url, None

    def _url_params(self, url: ConnectionUrl | None, info: SchemeInfo | None, text: object,
                    path: KeyPath) -> dict[str, OptionValue] | None:
        """Typed values of the URL's query parameters, checked by the scheme's parsers."""
        if url is None or info is None or not isinstance(text, str):
            return None
        table = info.scheme.params
        out: dict[str, OptionValue] = {}
        ok = True
        for key, value in url.params.items():
            offset = _param_offset(text, key)
            parse = table.get(key)
            if parse is None:
                ok = False
                expected = (f"{info.name} URLs take {', '.join(table)}" if table
                            else f"{info.name} URLs take no parameters")
                self.issues.add(path, f"unknown URL parameter {key!r}"
                                      f"{did_you_mean(key, table)}; {expected}", offset=offset)
                continue
            try:
                out[key] = parse(value)
            except ValueError as exc:
                ok = False
                self.issues.add(path, f"URL parameter {key}={value!r}: {exc}", offset=offset)
            except Exception as exc:  # a plug-in's parser failing: its fault, located here
                ok = False
                self.issues.add(path, f"URL parameter {key}={value!r}: the {info.family.name} "
                                      f"plug-in (package {info.family.package}) failed: "
                                      f"{type(exc).__name__}: {exc}", offset=offset)
        return out if ok else None

    def _device_config(self, name: str, model: DeviceModel, *, url: ConnectionUrl,
                       info: SchemeInfo, profile: Profile | None, options: dict[str, Any],
                       url_options: dict[str, OptionValue], path: KeyPath) -> DeviceConfig:
        """Merge profile defaults, URL parameters and keys into the family's typed options."""
        merged: dict[str, object] = {}
        timeout_ms = model.timeout_ms
        if profile is not None:
            for key, value in profile.defaults.items():
                if key != "timeout_ms":
                    merged[key] = value
                elif "timeout_ms" not in model.model_fields_set:
                    timeout_ms = float(value)
        merged.update(url_options)
        merged.update(options)
        family = info.family
        typed: object = None
        if family.options is not None:
            try:
                typed = family.options.model_validate(merged)
            except ValidationError as exc:
                for error in exc.errors(include_url=False):
                    loc = ".".join(str(x) for x in error["loc"])
                    self.issues.add(path, f"options{' ' + loc if loc else ''}: {error['msg']} "
                                          "(with the profile's defaults and the URL's "
                                          "parameters)")
                typed = None
            if typed is not None and family.check is not None:
                try:
                    for key, message in family.check(info.name, typed):
                        self.issues.add((*path, key) if key in options else
                                        (*path, "url"), message)
                except Exception as exc:
                    self.issues.add(path, f"the {family.name} plug-in (package "
                                          f"{family.package}) failed checking the options: "
                                          f"{type(exc).__name__}: {exc}")
        security_model = getattr(typed, "security", None)
        user_model = getattr(typed, "user", None)
        security = self._security(security_model if isinstance(security_model, SecurityModel)
                                  else None, (*path, "security"))
        username = password = None
        if isinstance(user_model, UserModel):
            username = user_model.name
            if user_model.password_env is not None:
                password = self.env.get(user_model.password_env)
                if password is None:
                    self.issues.add((*path, "user", "password_env"),
                                    f"environment variable {user_model.password_env} is not set; "
                                    f"it must hold the password of user {username!r}")
        return DeviceConfig(
            name=name, url=url, scheme=info, timeout_s=timeout_ms / 1000, profile=profile,
            options=typed, retry=model.retry.policy(),
            security=MappingProxyType(security), username=username, password=password,
            description=model.description)

    def _security(self, model: SecurityModel | None, path: KeyPath) -> dict[str, str]:
        if model is None:
            return {}
        out: dict[str, str] = {"policy": model.policy, "mode": model.mode}
        for key in _SECURITY_FILES:
            value = getattr(model, key)
            if value is None:
                continue
            file = Path(value)
            full = file if file.is_absolute() else self.doc.folder / file
            if not full.is_file():
                self.issues.add((*path, key), f"file {value!r} not found (looked for {full})")
            out[key] = str(full.absolute())
        return out

    # -- tags -------------------------------------------------------------------------------
    def _tag(self, name: Any, raw: object, path: KeyPath, devices: Mapping[str, _Device],
             device_names: set[Any] | None) -> TagSpec | None:
        before = len(self.issues)
        if not self._settings(raw, path, what="tag", name=name, pattern=DOTTED,
                              rule=_DOTTED_RULE, hint="device: ..., address: ..."):
            return None
        model = self.issues.validate(TagModel, raw, path)
        device_name = raw.get("device")
        if not isinstance(device_name, str) or device_names is None:
            return None
        if device_name not in device_names:
            known = sorted(n for n in device_names if isinstance(n, str))
            self.issues.add((*path, "device"), f"unknown device {device_name!r}"
                                               f"{did_you_mean(device_name, known)}; devices: "
                                               f"{_names(known) or 'none'}")
            return None
        device = devices.get(device_name)
        text = raw.get("address")
        if device is None or not isinstance(text, str) or not text:
            return None  # the device's own problems are reported already
        resolved = self._address(device, text, (*path, "address"))
        if resolved is None or model is None or len(self.issues) > before:
            return None
        address, point = resolved
        spec = _tag_spec(str(name), device_name, address, point, model)
        self.issues.spec_problems(spec, path)
        return spec if len(self.issues) == before else None

    def _address(self, device: _Device, text: str,
                 path: KeyPath) -> tuple[TagAddress, ProfilePoint | None] | None:
        """A profile point name, or an address in the device's grammar."""
        profile = device.profile
        if profile is not None and text in profile.points:
            point = profile.points[text]
            return point.address, point
        if profile is None:
            address = self.issues.address(device.family, text, path)
            return (address, None) if address is not None else None
        points = list(profile.points)
        if device.family.named_points:
            self.issues.add(path, f"{text!r} is not a point of profile {profile.name}"
                                  f"{did_you_mean(text, points)}; its points: {_names(points)}")
            return None
        probe = Issues(self.doc)
        address = probe.address(device.family, text, path)
        if address is None:
            found = probe.items[-1] if probe.items else None
            reason = found.message if found is not None else "not an address"
            name = device.family.name
            article = "an" if name[:1].lower() in "aeio" else "a"
            self.issues.add(path, f"{text!r} is neither a point of profile {profile.name}"
                                  f"{did_you_mean(text, points)} nor {article} {name} "
                                  f"address: {reason}", offset=probe.last_offset)
            return None
        return address, None

    def _point_tags(self, device_name: str, device: _Device, raw_tags: Mapping[Any, Any],
                    tags: dict[str, TagSpec]) -> set[str]:
        """Tags ``<device>.<point>`` for a device's ``points: all | [names]``."""
        profile, selection = device.profile, device.points
        if profile is None or selection is None:
            return set()
        base: KeyPath = ("devices", device_name, "points")
        names = list(profile.points) if selection == "all" else list(selection)
        made: set[str] = set()
        for i, point_name in enumerate(names):
            path = base if selection == "all" else (*base, i)
            point = profile.points.get(point_name)
            if point is None:
                self.issues.add(path, f"no point {point_name!r} in profile {profile.name}"
                                      f"{did_you_mean(point_name, profile.points)}")
                continue
            tag_name = f"{device_name}.{point_name}"
            if tag_name in made:
                self.issues.add(path, f"point {point_name!r} is listed twice")
                continue
            made.add(tag_name)
            if tag_name in raw_tags:
                self.issues.add(path, f"tag {tag_name!r} is made from point {point_name!r} and "
                                      "also defined under tags: remove one")
                continue
            tags[tag_name] = point.tag(tag_name, device_name)
        return made

    # -- tasks ------------------------------------------------------------------------------
    def _task(self, name: Any, raw: object, path: KeyPath, *, tags: Mapping[str, TagSpec],
              tag_names: set[str] | None, writers: dict[str, str]) -> TaskConfig | None:
        before = len(self.issues)
        if not self._settings(raw, path, what="task", name=name, pattern=IDENTIFIER,
                              rule=_IDENTIFIER_RULE, hint="period_ms: ..."):
            return None
        model = self.issues.validate(TaskModel, raw, path)
        if tag_names is not None:
            for key in ("tags", "inputs", "outputs"):
                items = raw.get(key)
                if isinstance(items, list):
                    self._task_tags(str(name), key, items, (*path, key), tags=tags,
                                    tag_names=tag_names, writers=writers)
        if model is None:
            return None
        program = None
        if model.program is not None:
            program = self._program(model.program, (*path, "program"))
        elif not (model.tags or model.inputs or model.outputs):
            self.issues.add(path, "a task needs a program, or tags to acquire", at_key=True)
        if model.io_deadline_ms is not None and model.io_deadline_ms >= model.period_ms:
            self.issues.add((*path, "io_deadline_ms"),
                            f"io_deadline_ms {model.io_deadline_ms:g} must be shorter than "
                            f"period_ms {model.period_ms:g}")
        if len(self.issues) > before:
            return None
        watchdog = None
        if model.watchdog is not None:
            watchdog = WatchdogConfig(time_ms=model.watchdog.time_ms,
                                      sensitivity=model.watchdog.sensitivity)
        return TaskConfig(
            name=str(name), period_ms=model.period_ms, program=program, tags=tuple(model.tags),
            inputs=tuple(model.inputs), outputs=tuple(model.outputs), overrun=model.overrun,
            watchdog=watchdog, io_deadline_ms=model.io_deadline_ms,
            description=model.description)

    def _task_tags(self, task: str, key: str, items: list[Any], path: KeyPath, *,
                   tags: Mapping[str, TagSpec], tag_names: set[str],
                   writers: dict[str, str]) -> None:
        seen: dict[str, int] = {}
        for i, item in enumerate(items):
            if not isinstance(item, str):
                continue  # reported by the model
            item_path = (*path, i)
            if item in seen:
                self.issues.add(item_path, f"tag {item!r} is listed twice in {key} (first at "
                                           f"[{seen[item]}])")
                continue
            seen[item] = i
            if item not in tag_names:
                if item.partition(".")[0] in self._unmade:
                    continue  # its device's problem is reported already
                known = sorted(tag_names)
                self.issues.add(item_path, f"unknown tag {item!r}{did_you_mean(item, known)}; "
                                           f"tags: {_names(known) or 'none'}")
                continue
            spec = tags.get(item)
            if spec is None:
                continue  # the tag's own problems are reported already
            if key == "outputs":
                if spec.access is Access.R:
                    self.issues.add(item_path, f"tag {item!r} is read-only (access r): an output "
                                               "needs access rw or w")
                elif item in writers:
                    self.issues.add(item_path, f"tag {item!r} is already an output of task "
                                               f"{writers[item]!r}: two tasks must not write "
                                               "the same tag")
                else:
                    writers[item] = task
            elif spec.access is Access.W:
                self.issues.add(item_path, f"tag {item!r} is write-only (access w): it cannot "
                                           f"be read, so it cannot be in {key}")

    def _program(self, text: str, path: KeyPath) -> str | None:
        """``package.module:function`` as is; ``file.py:function`` with the file resolved."""
        target, sep, function = text.rpartition(":")
        if not sep or not IDENTIFIER.fullmatch(function) or not target:
            self.issues.add(path, f"expected 'package.module:function' or "
                                  f"'path/to/file.py:function', found {describe(text)}")
            return None
        if target.endswith(".py"):
            file = Path(target)
            full = file if file.is_absolute() else self.doc.folder / file
            if not full.is_file():
                self.issues.add(path, f"program file {target!r} not found (looked for {full})")
                return None
            return f"{full.absolute()}:{function}"
        if not _MODULE.fullmatch(target):
            self.issues.add(path, f"{target!r} is not a module name: expected "
                                  "'package.module:function' or 'path/to/file.py:function'")
            return None
        return text


def _tag_spec(name: str, device: str, address: TagAddress, point: ProfilePoint | None,
              model: TagModel) -> TagSpec:
    """A tag's spec: its own keys, and for the keys it leaves out, its profile point's."""
    given = model.model_fields_set
    if point is None:
        return TagSpec(name=name, device=device, address=address, access=Access(model.access),
                       scale=make_scale(model.scale), limits=model.limits, safe=model.safe,
                       unit=model.unit, description=model.description, deadband=model.deadband,
                       audit=model.audit)
    return TagSpec(
        name=name, device=device, address=address,
        access=Access(model.access) if "access" in given else point.access,
        scale=make_scale(model.scale) if "scale" in given else point.scale,
        limits=model.limits if "limits" in given else point.limits,
        safe=model.safe if "safe" in given else point.safe,
        unit=model.unit if "unit" in given else point.unit,
        description=model.description if "description" in given else point.description,
        deadband=model.deadband if "deadband" in given else point.deadband,
        audit=model.audit)


def _param_offset(url: str, key: str) -> int | None:
    """Offset of ``key=`` in the URL's query, to point the column at it."""
    start = url.find("?")
    if start < 0:
        return None
    for m in re.finditer(re.escape(key) + "=", url[start:]):
        pos = start + m.start()
        if url[pos - 1] in "?&":
            return pos
    return None
