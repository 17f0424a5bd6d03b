"""Reading a YAML file into plain data while remembering where every key and value stands.

PyYAML's ``compose`` gives a node tree with marks; we build plain Python values from it
ourselves so that duplicate keys are caught (PyYAML silently keeps the last one), alias
bombs and recursive aliases are refused, and every key path keeps its line and column for
the ``FILE:LINE:COL: key.path: message`` format. Nothing in here raises anything but
:class:`~smartline.core.ConfigError`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from smartline.core import ConfigError, ConfigIssue

from ._messages import describe

__all__ = ["Document", "KeyPath", "Span", "format_path", "read_document", "sort_issues"]

KeyPath = tuple[Hashable, ...]
"""A key path: mapping keys and (for sequences) integer indexes, from the top of the file."""

MAX_BYTES = 16 * 1024 * 1024  # a line file is a few hundred kB at most; refuse runaway inputs
MAX_VALUES = 500_000  # values after alias expansion: stops "billion laughs" documents
MAX_DEPTH = 64  # nesting levels; real files use fewer than 8

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_INLINE = (None, "", "'", '"')  # plain (None in PyYAML, "" in libyaml) or quoted scalars
_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_.\-/+]+$")


@dataclass(frozen=True, slots=True)
class Span:
    """Where a key or value starts (1-based) and whether its characters map 1:1 to the text."""

    line: int
    column: int
    text_offset: int | None = None
    """Column of the value's first character, for a one-line scalar without escapes (so that
    an offset inside the value, such as an address error's, can be added to it)."""


class Document:
    """A parsed YAML file: plain data plus the span of every key and value by key path."""

    def __init__(self, file: str, path: Path, data: object, *, keys: dict[KeyPath, Span],
                 values: dict[KeyPath, Span],
                 problems: Sequence[tuple[KeyPath, Span, str]] = ()) -> None:
        self.file = file  # the name used in messages (as the user gave it)
        self.path = path
        self.data = data
        self._keys = keys
        self._values = values
        self.issues: list[ConfigIssue] = [
            ConfigIssue(file=file, path=format_path(data, p), message=m, line=s.line,
                        column=s.column) for p, s, m in problems]
        """Problems found while reading that did not stop it (duplicate keys, odd tags)."""

    @property
    def folder(self) -> Path:
        """The folder relative paths in the file are resolved against."""
        return self.path.parent

    def span(self, path: KeyPath, *, at_key: bool = False) -> Span | None:
        """The span of ``path`` (its key when ``at_key``), or of its nearest existing parent."""
        for n in range(len(path), -1, -1):
            sub = path[:n]
            found = self._keys.get(sub) if at_key and n == len(path) else None
            if found is None:
                found = self._values.get(sub)
            if found is not None:
                return found
        return None

    def issue(self, path: KeyPath, message: str, *, at_key: bool = False,
              offset: int | None = None) -> ConfigIssue:
        """An issue at ``path``; ``offset`` points inside a single-line scalar value."""
        span = self.span(path, at_key=at_key)
        line = column = None
        if span is not None:
            line, column = span.line, span.column
            if offset is not None and span.text_offset is not None and not at_key:
                column = span.text_offset + offset
        return ConfigIssue(file=self.file, path=format_path(self.data, path), message=message,
                           line=line, column=column)

    def resolve(self, loc: Iterable[Hashable]) -> KeyPath:
        """Map a validator's location (which may hold extra, non-key parts) onto a key path."""
        node = self.data
        out: list[Hashable] = []
        for elem in loc:
            if isinstance(node, dict) and _has_key(node, elem):
                key = next(k for k in node if k == elem)  # the file's own: pydantic says 1 for true
                node = node[key]
                out.append(key)
            elif (isinstance(node, list) and isinstance(elem, int) and not isinstance(elem, bool)
                  and 0 <= elem < len(node)):
                node = node[elem]
                out.append(elem)
        return tuple(out)


def _has_key(mapping: dict[Hashable, object], key: Hashable) -> bool:
    try:
        return key in mapping
    except TypeError:  # an unhashable location part
        return False


def format_path(data: object, path: KeyPath) -> str:
    """``devices.filler.url``, ``tasks.fast.tags[2]``; odd keys are quoted: ``tags['a b']``."""
    out = ""
    node = data
    for elem in path:
        if isinstance(node, list) and isinstance(elem, int):
            out += f"[{elem}]"
            node = node[elem] if 0 <= elem < len(node) else None
            continue
        text = elem if isinstance(elem, str) else describe_key(elem)
        if isinstance(elem, str) and not _PLAIN_KEY.fullmatch(elem):
            out += f"[{elem!r}]"
        else:
            out += ("." if out else "") + text
        node = node.get(elem) if isinstance(node, dict) else None
    return out


def describe_key(key: object) -> str:
    if key is None:
        return "null"
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(key)


def sort_issues(issues: Sequence[ConfigIssue], first_file: str | None = None) -> list[ConfigIssue]:
    """Issues without duplicates, the main file first, then by file, line and column."""
    unique = list(dict.fromkeys(issues))
    return sorted(unique, key=lambda i: (i.file != first_file, i.file, i.line or 0,
                                         i.column or 0, i.path))


def read_document(path: str | os.PathLike[str], *, what: str = "YAML file") -> Document:
    """Read and parse one YAML file whose top level must be a mapping.

    Raises :class:`ConfigError` for anything that stops parsing (missing file, not UTF-8,
    syntax error, ...). Problems that do not (duplicate keys, odd keys) are kept in
    ``Document.issues`` so that validation can go on and report them together.
    """
    file = os.fspath(path)
    fs_path = Path(file)

    def fatal(message: str, line: int | None = None, column: int | None = None) -> ConfigError:
        return ConfigError(ConfigIssue(file=file, path="", message=message, line=line,
                                       column=column))

    try:
        if fs_path.is_dir():
            raise fatal(f"is a directory; expected a {what}")
        if not fs_path.exists():
            raise fatal("no such file")
        if not fs_path.is_file():
            raise fatal(f"not a regular file; expected a {what}")
        with fs_path.open("rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise fatal(f"cannot read the file: {exc.strerror or exc}") from None
    if len(raw) > MAX_BYTES:
        raise fatal(f"file is larger than {MAX_BYTES // (1024 * 1024)} MiB; expected a {what}")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line, column = _line_col(raw[: exc.start].decode("utf-8", "replace"))
        raise fatal(f"not UTF-8 text: byte 0x{raw[exc.start]:02x} cannot be decoded; "
                    f"save the file as UTF-8", line, column) from None

    loader: _Loader | None = None
    try:
        try:
            loader, root = _compose(text)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            problem = exc.problem or exc.context or "not valid YAML"
            context = ""
            if exc.context and exc.problem:
                started = exc.context_mark
                context = f" ({exc.context}" + (
                    f" that starts on line {started.line + 1})" if started is not None else ")")
            raise fatal(f"YAML syntax error: {problem}{context}",
                        mark.line + 1 if mark else None,
                        mark.column + 1 if mark else None) from None
        except yaml.reader.ReaderError as exc:
            line, column = _line_col(text[: exc.position])
            char = chr(exc.character) if isinstance(exc.character, int) else exc.character
            raise fatal(f"character {char!r} is not allowed in a YAML file: expected printable "
                        "text", line, column) from None
        except yaml.YAMLError as exc:
            raise fatal(f"YAML error: {exc}") from None
        except RecursionError:
            raise fatal(f"nesting too deep; expected at most {MAX_DEPTH} levels") from None
        except _UnusableError as stop:
            raise fatal(stop.message, stop.line, stop.column) from None
        if root is None:
            raise fatal(f"file is empty; expected a {what}", 1, 1)
        builder = _Builder(loader, text, file)
        try:
            data = builder.value(root, (), 0)
        except _UnusableError as stop:
            raise fatal(stop.message, stop.line, stop.column) from None
    finally:
        if loader is not None:
            loader.dispose()
    if not isinstance(data, dict):
        raise fatal(f"expected a mapping (key: value lines) at the top level, found "
                    f"{describe(data)}", root.start_mark.line + 1, root.start_mark.column + 1)
    return Document(file, fs_path, data, keys=builder.keys, values=builder.values,
                    problems=builder.problems)


_Loader = yaml.SafeLoader | Any
_C_LOADER: type[Any] | None = getattr(yaml, "CSafeLoader", None)
_OPENERS = frozenset({"BlockMappingStartToken", "BlockSequenceStartToken",
                      "FlowMappingStartToken", "FlowSequenceStartToken"})
_CLOSERS = frozenset({"BlockEndToken", "FlowMappingEndToken", "FlowSequenceEndToken"})


def _compose(text: str) -> tuple[_Loader, Node | None]:
    """The node tree, composed by libyaml when it is there (about 25x faster).

    libyaml's composer recurses in C and crashes the interpreter on very deep nesting, so
    its token stream is checked first. Any error is left to the pure-Python loader,
    whose messages and positions are the ones we report.
    """
    if _C_LOADER is not None:
        scanner = _C_LOADER(text)
        try:
            depth = 0
            while scanner.check_token():
                token = scanner.get_token()
                name = type(token).__name__
                if name in _OPENERS:
                    depth += 1
                    if depth > MAX_DEPTH:
                        raise _UnusableError(f"nesting deeper than {MAX_DEPTH} levels",
                                             token.start_mark)
                elif name in _CLOSERS:
                    depth -= 1
            loader = _C_LOADER(text)
            try:
                return loader, loader.get_single_node()
            except yaml.YAMLError:
                loader.dispose()
        except yaml.YAMLError:
            pass
        finally:
            scanner.dispose()
    loader = yaml.SafeLoader(text)  # checks for unprintable characters already
    return loader, loader.get_single_node()


def _line_col(before: str) -> tuple[int, int]:
    line = before.count("\n") + 1
    return line, len(before) - (before.rfind("\n") + 1) + 1


class _UnusableError(Exception):
    """Stops reading: the document is unusable as a whole."""

    def __init__(self, message: str, mark: yaml.Mark) -> None:
        super().__init__(message)
        self.message = message
        self.line = mark.line + 1
        self.column = mark.column + 1


class _Builder:
    """Turns the node tree into plain values, recording spans and non-fatal problems."""

    def __init__(self, loader: _Loader, text: str, file: str) -> None:
        self.loader = loader
        self.text = text
        self.file = file
        self.keys: dict[KeyPath, Span] = {}
        self.values: dict[KeyPath, Span] = {}
        self.problems: list[tuple[KeyPath, Span, str]] = []
        self._count = 0
        self._active: set[int] = set()

    def problem(self, node: Node, path: KeyPath, message: str) -> None:
        self.problems.append((path, self.span(node), message))

    def span(self, node: Node) -> Span:
        start, end = node.start_mark, node.end_mark
        text_offset = None
        if isinstance(node, ScalarNode) and start.line == end.line and node.style in _INLINE:
            quote = 1 if node.style else 0
            if self.text[start.index + quote: end.index - quote] == node.value:
                text_offset = start.column + 1 + quote
        return Span(start.line + 1, start.column + 1, text_offset)

    def value(self, node: Node, path: KeyPath, depth: int) -> object:
        self._count += 1
        if self._count > MAX_VALUES:
            raise _UnusableError(f"more than {MAX_VALUES} values after expanding aliases; "
                        "expected a configuration file", node.start_mark)
        if depth > MAX_DEPTH:
            raise _UnusableError(f"nesting deeper than {MAX_DEPTH} levels", node.start_mark)
        self.values[path] = self.span(node)
        if isinstance(node, ScalarNode):
            return self.scalar(node, path)
        if id(node) in self._active:
            raise _UnusableError("recursive alias: a value contains itself", node.start_mark)
        self._active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                if node.tag != _SEQ_TAG:
                    self.problem(node, path, f"unsupported YAML tag {node.tag!r}; "
                                             "expected a list")
                return [self.value(item, (*path, i), depth + 1)
                        for i, item in enumerate(node.value)]
            if isinstance(node, MappingNode):
                if node.tag != _MAP_TAG:
                    self.problem(node, path, f"unsupported YAML tag {node.tag!r}; "
                                             "expected a mapping")
                return self.mapping(node, path, depth)
        finally:
            self._active.discard(id(node))
        # PyYAML has exactly the three node kinds above
        raise _UnusableError("unknown YAML node", node.start_mark)  # pragma: no cover

    def scalar(self, node: ScalarNode, path: KeyPath) -> object:
        try:
            return self.loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError):
            # unknown tag, or a tagged value that does not construct ("!!int x", bad dates)
            self.problem(node, path, f"unsupported YAML value {node.value!r} tagged {node.tag!r}; "
                         "write a plain value")
            return node.value

    def mapping(self, node: MappingNode, path: KeyPath, depth: int) -> dict[Hashable, object]:
        out: dict[Hashable, object] = {}
        merges: list[Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merges.append(value_node)
                continue
            key = self.key(key_node, path)
            if key is _BAD_KEY:
                continue
            key_path = (*path, key)
            if key in out:
                first = self.keys[key_path]
                self.problem(key_node, key_path,
                             f"duplicate key {describe_key(key)!r} (first defined on line "
                             f"{first.line}); YAML would silently keep only the last one")
                continue
            self.keys[key_path] = self.span(key_node)
            out[key] = self.value(value_node, key_path, depth + 1)
        for merge in merges:
            sources = merge.value if isinstance(merge, SequenceNode) else [merge]
            for source in sources:
                if not isinstance(source, MappingNode):
                    self.problem(source, path,
                                 "a merge key '<<' takes a mapping or a list of mappings")
                    continue
                merged = self.mapping(source, path, depth + 1)
                for key, value in merged.items():
                    out.setdefault(key, value)
        return out

    def key(self, node: Node, path: KeyPath) -> Hashable:
        if not isinstance(node, ScalarNode):
            self.problem(node, path, "a key must be a plain name, found a "
                         + ("list" if isinstance(node, SequenceNode) else "mapping"))
            return _BAD_KEY
        value = self.scalar(node, path)
        if isinstance(value, (str, int, float, bool)) or value is None:
            return value
        self.problem(node, path, f"a key must be a plain name, found {describe(value)}")
        return _BAD_KEY


_BAD_KEY: Hashable = object()
