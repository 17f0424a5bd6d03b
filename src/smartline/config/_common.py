"""Helpers shared by the line and profile loaders: model validation, versions, addresses."""

from __future__ import annotations

import types
import typing
from collections.abc import Hashable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from smartline.core import ConfigIssue, DriverFamily, DriverRegistry
from smartline.tags import AddressError, Scale, TagAddress, TagSpec, parse_address

from ._messages import describe, did_you_mean, one_of, pydantic_message
from ._schema import ScaleModel
from ._source import Document, KeyPath

__all__ = [
    "DataKind",
    "Issues",
    "data_dir",
    "make_scale",
    "model_keys",
]

M = TypeVar("M", bound=BaseModel)
DataKind = Literal["drivers", "recipes", "hil_sim"]
_DATA_KINDS = typing.get_args(DataKind)


def data_dir(kind: DataKind) -> Path:
    """The folder of shipped data files: ``drivers`` (device profiles), ``recipes``, ``hil_sim``.

    Inside the package they are symlinks to the repository's top-level folders, so an
    editable install and a wheel see the same files.
    """
    if kind not in _DATA_KINDS:
        raise ValueError(f"unknown data kind {kind!r}; expected {one_of(_DATA_KINDS)}")
    return Path(__file__).resolve().parent.parent / "_data" / kind


def model_keys(model: type[BaseModel]) -> list[str]:
    """The keys a model accepts, as written in files (aliases where set)."""
    return [f.alias or name for name, f in model.model_fields.items()]


def _model_at(model: type[BaseModel], loc: Iterable[Hashable]) -> type[BaseModel] | None:
    """The model class that validates the mapping at ``loc`` inside ``model``."""
    current: type[BaseModel] = model
    for elem in loc:
        field = next((f for n, f in current.model_fields.items() if elem in (n, f.alias)), None)
        if field is None:
            return None
        found = _model_in(field.annotation)
        if found is None:
            return None
        current = found
    return current


def _model_in(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, typing.Annotated):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


class _OneFamily(DriverRegistry):
    """A registry of one family already resolved (no entry point scan per address)."""

    def __init__(self, family: DriverFamily) -> None:
        super().__init__([family], use_entry_points=False)


class Issues:
    """Collects the issues of one load, with the document they are located in."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.items: list[ConfigIssue] = list(doc.issues)
        self.last_offset: int | None = None  # of the last address error, within the address

    def __len__(self) -> int:
        return len(self.items)

    def add(self, path: KeyPath, message: str, *, at_key: bool = False,
            offset: int | None = None) -> None:
        self.items.append(self.doc.issue(path, message, at_key=at_key, offset=offset))

    def extend(self, issues: Iterable[ConfigIssue]) -> None:
        self.items.extend(issues)

    def validate(self, model: type[M], data: object, path: KeyPath) -> M | None:
        """Validate ``data`` (found at ``path``) against ``model``; record every error."""
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                loc = tuple(error["loc"])
                kind = error["type"]
                allowed = None
                if kind == "extra_forbidden":
                    sub = _model_at(model, loc[:-1])
                    allowed = model_keys(sub) if sub is not None else None
                at_key = kind in ("extra_forbidden", "missing") or loc[-1:] == ("[key]",)
                self.add(self.doc.resolve((*path, *loc)), pydantic_message(error, allowed),
                         at_key=at_key)
            return None

    def version(self, key: str, versions: tuple[int, ...], what: str) -> bool:
        """Check the format key (``smartline: 1``); False when the file cannot be read on."""
        data = self.doc.data
        assert isinstance(data, dict)
        supported = one_of([str(v) for v in versions])
        if key not in data:
            self.add((), f"missing format version: a {what} starts with '{key}: {versions[-1]}' "
                         f"(supported versions: {supported})")
            return False
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, int):
            self.add((key,), f"expected format version {supported}, found {describe(value)}")
            return False
        if value not in versions:
            self.add((key,), f"unsupported format version {value}; this version of smartline "
                             f"reads {what}s of version {supported}")
            return False
        return True

    def address(self, family: DriverFamily, text: str, path: KeyPath) -> TagAddress | None:
        """Parse a tag address with the family's grammar; an error points into the address.

        A grammar that fails with anything but ``AddressError`` (a bug in a plug-in) is
        reported here, naming the plug-in, and the rest of the file is still checked.
        """
        try:
            return parse_address(family.name, text, registry=_OneFamily(family))
        except AddressError as exc:
            self.last_offset = exc.column if exc.column is not None else 0
            self.add(path, str(exc), offset=self.last_offset)
            return None

    def options(self, raw: Mapping[Any, Any], family: DriverFamily | None, path: KeyPath, *,
                common: Iterable[str], others: Iterable[DriverFamily] = ()
                ) -> dict[str, Any] | None:
        """Validate the option keys of a device of ``family`` (None: URL unusable).

        Returns the options given, typed, or None when any is wrong. A key that belongs to
        another family (of ``others``) is named as such; ``common`` lists the keys every
        device takes.
        """
        options_model = family.options if family is not None else None
        keys_here = model_keys(options_model) if options_model is not None else []
        ok = True
        for key in raw:
            if key in keys_here:
                continue
            if not isinstance(key, str):
                ok = False
                self.add((*path, key), f"a key here must be a string, found {describe(key)}: "
                                       "quote the name", at_key=True)
                continue
            owners = [f.name for f in others if f.options is not None
                      and key in model_keys(f.options)]
            if owners and family is None:
                continue  # which family it is for is unknown without a usable URL
            ok = False
            if owners and family is not None:
                here = (f"{family.name} devices take {', '.join(keys_here)}" if keys_here
                        else f"{family.name} devices have no options of their own")
                self.add((*path, key), f"{key} is not an option of {family.name} devices; it "
                                       f"is an option of {one_of(owners)} devices ({here})",
                         at_key=True)
            else:
                everything = [*common, *keys_here]
                self.add((*path, key), f"unknown key {key!r}{did_you_mean(key, everything)}; "
                                       f"expected one of: {', '.join(everything)}", at_key=True)
        if options_model is None:
            return None if family is None else ({} if ok else None)
        model = self.validate(options_model, {k: v for k, v in raw.items() if k in keys_here},
                              path)
        if model is None or not ok:
            return None
        return {k: getattr(model, k) for k in model.model_fields_set}

    def spec_problems(self, spec: TagSpec, path: KeyPath) -> None:
        """Record what :meth:`TagSpec.validate` finds, at the key each problem is about."""
        for message in spec.validate():
            key = field_of(message)
            self.add((*path, key) if key else path, message)


def field_of(message: str) -> str | None:
    """The tag key a consistency message from ``TagSpec.validate`` is about."""
    text = message.lower()
    for word, key in (("safe", "safe"), ("limits", "limits"), ("deadband", "deadband"),
                      ("scale", "scale"), ("access", "access"), ("read-only", "access"),
                      ("audit", "audit")):
        if text.startswith(word):
            return key
    for word, key in (("safe", "safe"), ("limit", "limits"), ("deadband", "deadband"),
                      ("scale", "scale")):
        if word in text:
            return key
    return None


def make_scale(model: ScaleModel | None) -> Scale | None:
    """The tags-layer Scale of a validated scale mapping."""
    if model is None:
        return None
    if model.raw is not None and model.eng is not None:
        return Scale.from_ranges(model.raw, model.eng)
    return Scale(gain=1.0 if model.gain is None else model.gain,
                 offset=0.0 if model.offset is None else model.offset)
