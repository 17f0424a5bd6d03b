"""Reading YAML: locations, duplicate keys, aliases and merge keys, hostile inputs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from smartline.config._source import MAX_DEPTH, read_document
from smartline.core import ConfigError


@pytest.fixture(params=["libyaml", "python"])
def loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with libyaml composing (when installed) and with the pure-Python loader."""
    if request.param == "python":
        monkeypatch.setattr("smartline.config._source._C_LOADER", None)
    return str(request.param)


def _write(tmp_path: Path, text: str | bytes, name: str = "f.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def _single_issue(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        read_document(path)
    assert len(info.value.issues) == 1
    return info.value.issues[0].format()


def test_keys_and_values_keep_their_line_and_column(tmp_path: Path, loader: str) -> None:
    path = _write(tmp_path, "a:\n  b: [1, {c: 'x'}]\n  d: 2\n")
    doc = read_document(path)
    assert doc.data == {"a": {"b": [1, {"c": "x"}], "d": 2}}
    issue = doc.issue(("a", "b", 1, "c"), "m")
    assert (issue.line, issue.column, issue.path) == (2, 14, "a.b[1].c")
    assert doc.issue(("a", "d"), "m", at_key=True).column == 3
    # a path that does not exist is located at its nearest existing parent
    assert doc.issue(("a", "zz"), "m").line == 2
    # an offset points inside a single-line scalar, past the quote
    assert doc.issue(("a", "b", 1, "c"), "m", offset=0).column == 15


def test_offset_is_ignored_where_text_and_value_differ(tmp_path: Path, loader: str) -> None:
    doc = read_document(_write(tmp_path, 'a: "x\\ty"\nb: |\n  text\n'))
    assert doc.issue(("a",), "m", offset=3).column == 4  # escapes: stay at the value
    assert doc.issue(("b",), "m", offset=3).column == 4


def test_duplicate_keys_are_reported_at_any_depth(tmp_path: Path, loader: str) -> None:
    path = _write(tmp_path, "a: 1\nb:\n  x: 1\n  x: 2\na: 3\n")
    doc = read_document(path)
    assert doc.data == {"a": 1, "b": {"x": 1}}  # the first definition is kept
    assert [(i.line, i.column, i.path) for i in doc.issues] == [(4, 3, "b.x"), (5, 1, "a")]
    assert "first defined on line 3" in doc.issues[0].message


def test_aliases_and_merge_keys(tmp_path: Path, loader: str) -> None:
    text = ("base: &base {timeout_ms: 100, max_gap: 4}\n"
            "dev:\n  <<: *base\n  max_gap: 8\n"
            "list: [*base]\n")
    doc = read_document(_write(tmp_path, text))
    assert doc.data == {"base": {"timeout_ms": 100, "max_gap": 4},
                        "dev": {"max_gap": 8, "timeout_ms": 100},
                        "list": [{"timeout_ms": 100, "max_gap": 4}]}
    assert doc.issues == []


def test_alias_bomb_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("smartline.config._source.MAX_VALUES", 20_000)  # same check, faster
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    message = _single_issue(_write(tmp_path, "\n".join(lines) + "\n"))
    assert "values after expanding aliases" in message


@pytest.mark.parametrize("depth", [MAX_DEPTH + 5, 500])
def test_deep_nesting_is_refused(tmp_path: Path, depth: int, loader: str) -> None:
    message = _single_issue(_write(tmp_path, "a: " + "[" * depth + "]" * depth + "\n"))
    assert "nesting" in message


@pytest.mark.parametrize(("text", "expected"), [
    ("!!python/object:os.system {}\n", "unsupported YAML tag"),
    ("a: !custom 5\n", "unsupported YAML value '5' tagged '!custom'"),
    ("a: !!set {x, y}\n", "unsupported YAML tag 'tag:yaml.org,2002:set'"),
    ("a: !!int nope\n", "unsupported YAML value 'nope'"),
    ("? [a, b]\n: 1\n", "a key must be a plain name, found a list"),
])
def test_odd_yaml_is_an_issue_not_a_crash(tmp_path: Path, text: str, expected: str) -> None:
    doc = read_document(_write(tmp_path, text))
    assert any(expected in i.message for i in doc.issues), doc.issues


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    assert read_document(_write(tmp_path, b"\xef\xbb\xbfa: 1\n")).data == {"a": 1}


def test_file_not_found_and_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    assert _single_issue(missing) == f"{missing}: <root>: no such file"
    assert "is a directory" in _single_issue(tmp_path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes need POSIX")
def test_special_files_are_not_read(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    assert "not a regular file" in _single_issue(fifo)


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, "a: 1\n")

    def refuse(self: Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "open", refuse)  # chmod 0 does not stop root
    assert _single_issue(path).endswith("cannot read the file: Permission denied")


def test_several_documents_are_refused(tmp_path: Path, loader: str) -> None:
    assert "YAML syntax error" in _single_issue(_write(tmp_path, "a: 1\n---\nb: 2\n"))


def test_errors_read_the_same_with_either_loader(tmp_path: Path, loader: str) -> None:
    path = _write(tmp_path, 'a: "caf\u00e9"\nb: [1, 2\nc: 3\n')
    assert _single_issue(path).startswith(f"{path}:3:2: <root>: YAML syntax error: ")
    path = _write(tmp_path, "a: caf\u00e9\nb: \x07\n")
    assert _single_issue(path) == (f"{path}:2:4: <root>: character '\\x07' is not allowed in a "
                                   "YAML file: expected printable text")
