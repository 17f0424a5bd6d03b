"""A wrong serial profile gives located errors (FILE:LINE:COL: key.path: message) from
``load_profile`` and ``smartline check``; the protocol language's templates and checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from smartline.cli import cli
from smartline.config import LineProtocol, load_profile
from smartline.config._lineproto import Template, TemplateError, format_value
from smartline.core import ConfigError

BASE = """\
smartline-profile: 1
vendor: acme
model: scale
family: serial
manual: {title: "ACME scale manual"}
protocol:
  terminator: "\\r\\n"
  errors:
    - {match: '^ES$', fail: "syntax error"}
  commands:
    weigh:
      send: "S"
      replies:
        - match: '^S S +(?P<value>[-+0-9.]+) +(?P<unit>\\S+)$'
          points: {weight: {group: value, unit: g, unit_group: unit}}
          format: "S S {weight:>10.2f} {weight.unit}"
        - {match: '^S \\+$', fail: "overload"}
    preset:
      point: tare
      send: "TA {value:.2f} g"
      replies: [{match: '^TA A', ok: true}]
    tare_query:
      send: "TA"
      replies:
        - match: '^TA A +(?P<value>[-+0-9.]+) g$'
          points: {tare: {group: value}}
points:
  weight: {unit: g, sim: {value: 12.5}}
  tare: {access: rw, unit: g}
"""


def issues(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "acme" / "scale.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_profile(path)
    return [i.format().removeprefix(str(path) + ":") for i in info.value.issues]


def line_of(text: str, marker: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if marker in line)


def test_the_base_profile_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "scale.yaml"
    path.write_text(BASE, encoding="utf-8")
    profile = load_profile(path)
    assert isinstance(profile.protocol, LineProtocol)
    assert set(profile.protocol.commands) == {"weigh", "preset", "tare_query"}


@pytest.mark.parametrize(("old", "new", "marker", "where", "message"), [
    ("'^S \\+$'", "'^S (+$'", "'^S (+$'", "protocol.commands.weigh.replies[1].match",
     "bad regular expression '^S (+$': nothing to repeat"),
    ("{group: value, unit: g, unit_group: unit}", "{group: valu, unit: g}", "group: valu,",
     "protocol.commands.weigh.replies[0].points.weight.group",
     "unknown group 'valu': the regex"),
    ("points: {tare: {group: value}}", "points: {tara: {group: value}}", "tara",
     "protocol.commands.tare_query.replies[0].points.tara", "unknown point 'tara'"),
    ("{group: value, unit: g, unit_group: unit}",
     "{group: value, decode: rot13, take: gtin}", "rot13",
     "protocol.commands.weigh.replies[0].points.weight.decode",
     "expected 'scan', found string 'rot13'"),
    ("{group: value, unit: g, unit_group: unit}",
     "{group: value, decode: scan, take: colour}", "colour",
     "protocol.commands.weigh.replies[0].points.weight", "'take: colour' is not a field"),
    ('send: "TA {value:.2f} g"', 'send: "TA {value:.2q} g"', "2q",
     "protocol.commands.preset.send", "bad template 'TA {value:.2q} g'"),
    ('send: "TA {value:.2f} g"', 'send: "TA {weight} g"', "TA {weight}",
     "protocol.commands.preset.send", "unknown field {weight}"),
    ("{match: '^S \\+$', fail: \"overload\"}", "{match: '^S \\+$'}", "'^S \\+$'}",
     "protocol.commands.weigh.replies[1]", "a reply rule needs exactly one of 'points'"),
    ('format: "S S {weight:>10.2f} {weight.unit}"', 'format: "S X {weight:>10.2f} g"',
     "S X", "protocol.commands.weigh.replies[0].format",
     "format renders 'S X      12.50 g', which the rule's match"),
    ("unit: g, unit_group: unit}", "unit: kg, unit_group: unit}", "unit: kg",
     "protocol.commands.weigh.replies[0].points.weight.unit",
     "unit 'kg' differs from point 'weight''s unit 'g'"),
])
def test_located_errors(tmp_path: Path, old: str, new: str, marker: str, where: str,
                        message: str) -> None:
    assert old in BASE
    text = BASE.replace(old, new, 1)
    got = issues(tmp_path, text)
    line = line_of(text, marker)
    assert any(g.startswith(f"{line}:") and f" {where}: {message}" in g for g in got), got


def test_points_without_a_command(tmp_path: Path) -> None:
    text = BASE.replace("  tare: {access: rw, unit: g}\n",
                        "  tare: {access: rw, unit: g}\n  level: {unit: mm}\n"
                        "  beep: {access: w}\n")
    got = issues(tmp_path, text)
    assert any(f"{line_of(text, 'level:')}:" in g and "points.level: no reply gives point "
               "'level'" in g for g in got), got
    assert any("points.beep: point 'beep' is writable but no command writes it" in g
               for g in got), got


def test_streaming_and_polled_sections_are_kept_apart(tmp_path: Path) -> None:
    text = BASE.replace('  terminator: "\\r\\n"\n', '  terminator: "\\r\\n"\n'
                        "  mode: streaming\n  stream: [{match: '^(?P<c>.*)$', points: "
                        "{weight: {group: c}}}]\n")
    got = issues(tmp_path, text)
    assert any("protocol.commands.weigh: a streaming instrument prints on its own" in g
               for g in got), got


def test_smartline_check_reports_the_location(tmp_path: Path) -> None:
    path = tmp_path / "scale.yaml"
    text = BASE.replace("'^S \\+$'", "'^S (+$'")
    path.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(cli, ["check", str(path)])
    assert result.exit_code == 2
    assert f"{path}:{line_of(text, '^S (+$')}:" in result.output
    assert "protocol.commands.weigh.replies[1].match: bad regular expression" in result.output


def test_templates_substitute_safely() -> None:
    t = Template.parse("{station:03d}0074002=?{{x}}")
    assert t.fields == ("station",)
    assert t.render({"station": 7}) == "0070074002=?{x}"
    with pytest.raises(TemplateError, match=r"no value for \{station\}"):
        t.render({})
    with pytest.raises(TemplateError, match="not a format spec"):
        Template.parse("{value:!r}")
    with pytest.raises(TemplateError, match="expected a name"):
        Template.parse("{__class__.__mro__[1]}")
    with pytest.raises(TemplateError, match="single '}'"):
        Template.parse("a}b")
    assert format_value(True, "d") == "1"
    assert format_value(3.0, "03d") == "003"
    with pytest.raises(TemplateError, match="whole number"):
        format_value(2.5, "d")
    with pytest.raises(TemplateError, match="cannot format 'x'"):
        format_value("x", ".2f")
    with pytest.raises(TemplateError, match="cannot be sent"):
        format_value(float("nan"), ".2f")


@given(st.text(max_size=40))
def test_any_template_text_parses_or_says_why(text: str) -> None:
    """No template text escapes as anything but a TemplateError, and rendering only ever
    substitutes the named values."""
    try:
        t = Template.parse(text)
    except TemplateError:
        return
    values = {name: 1 for name in t.fields}
    try:
        out = t.render(values)
    except TemplateError:
        return
    assert isinstance(out, str)
