"""Plug-ins as a user meets them: real distributions (dist-info + entry points) on the path
of a real `smartline check` process, including plug-ins that are broken."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest


def _dist(site: Path, name: str, module: str, source: str, family: str) -> None:
    """Install a one-module distribution by hand: what pip would leave in site-packages."""
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        f"[smartline.drivers]\n{family} = {module}:FAMILY\n")


@pytest.fixture
def site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    _dist(site, "broken-plugin", "broken_fam", "raise RuntimeError('boom at import')\n",
          "broken")
    _dist(site, "greedy-plugin", "greedy_fam", """
        from smartline.core import DriverFamily, Scheme
        from smartline.tags import parse_memory
        FAMILY = DriverFamily("greedy", (Scheme("modbus+tcp", "greedy_fam:D"),), parse_memory)
        """, "greedy")
    _dist(site, "buggy-plugin", "buggy_fam", """
        from smartline.core import DriverFamily, Scheme
        def parse(text):
            raise ZeroDivisionError("bug in the grammar")
        FAMILY = DriverFamily("buggy", (Scheme("buggy", "buggy_fam:D"),), parse)
        """, "buggy")
    return site


def _check(site: Path, line: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(site))
    return subprocess.run([sys.executable, "-m", "smartline.cli", "check", str(line)],
                          capture_output=True, text=True, env=env, timeout=60, check=False)


def test_broken_plugins_give_located_errors_and_the_rest_is_checked(site: Path,
                                                                     tmp_path: Path) -> None:
    line = tmp_path / "line.yaml"
    line.write_text(textwrap.dedent("""\
        smartline: 1
        line: plugins
        devices:
          a: {url: "broken+tcp://h"}
          b: {url: "modbus+tcp://h:502"}
          c: {url: "buggy://h"}
          m: {url: "memory://m"}
        tags:
          x: {device: c, address: anything}
          y: {device: m, address: "1bad"}
        """))
    r = _check(site, line)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 4, r.stderr
    # a plug-in that fails to import: named where a URL could have needed it
    assert lines[0].startswith(f"{line}:4:")
    assert "devices.a.url: unknown URL scheme 'broken+tcp'" in lines[0]
    assert "plug-in 'broken'" in lines[0] and "broken-plugin 1.0" in lines[0]
    assert "RuntimeError: boom at import" in lines[0]
    # a plug-in that claims smartline's scheme: the URL that uses it is reported
    assert lines[1].startswith(f"{line}:5:") and "devices.b.url" in lines[1]
    assert "plug-in 'greedy'" in lines[1] and "claims URL scheme(s) modbus+tcp" in lines[1]
    # a grammar that raises: located at the address, naming the plug-in's package
    assert lines[2].startswith(f"{line}:9:") and "tags.x.address" in lines[2]
    assert "the buggy grammar (package buggy-plugin 1.0) failed" in lines[2]
    assert "ZeroDivisionError: bug in the grammar" in lines[2]
    # and the rest of the file is still checked
    assert lines[3].startswith(f"{line}:10:") and "tags.y.address" in lines[3]


def test_a_good_line_is_unaffected_by_broken_plugins_it_does_not_use(site: Path,
                                                                    tmp_path: Path) -> None:
    line = tmp_path / "line.yaml"
    line.write_text("smartline: 1\nline: ok\ndevices:\n  m: {url: 'memory://m'}\n"
                    "tags:\n  x: {device: m, address: x}\n")
    r = _check(site, line)
    assert r.returncode == 0, r.stderr
    assert "1 device, 1 tag, 0 tasks" in r.stdout
