"""The out-of-tree driver example (examples/vendor-driver, the acme-tally package) installed
into the test environment exactly as a user installs a vendor's driver: with pip, after
which smartline finds it through its entry point.

The install happens when this conftest is loaded (``pytest_configure``), before the test
modules here are imported: they import ``acme_tally``, and the conformance tests are
parametrised over ``checks_for(harness)`` at collection time. ``.ci/setup.sh`` installs it
beforehand, so in CI this only checks.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import site
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest

from smartline.tags import default_registry

ROOT = Path(__file__).resolve().parents[3]
PACKAGE = ROOT / "examples" / "vendor-driver"
DIST = "acme-tally"


def ensure_installed() -> importlib.metadata.Distribution:
    """The acme-tally distribution, installed (editable, no dependencies) if it is not yet."""
    try:
        return importlib.metadata.distribution(DIST)
    except importlib.metadata.PackageNotFoundError:
        pass
    # build isolation fetches the build backend the package asks for (setuptools>=77)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "-e", str(PACKAGE)], check=True)
    # the editable install is a .pth file: read it into this running interpreter too
    site.addsitedir(sysconfig.get_paths()["purelib"])
    importlib.invalidate_caches()
    default_registry.cache_clear()  # the installed families changed while we run
    return importlib.metadata.distribution(DIST)


def pytest_configure(config: pytest.Config) -> None:
    ensure_installed()


@pytest.fixture(scope="session")
def acme_dist() -> importlib.metadata.Distribution:
    """The installed acme-tally distribution."""
    return ensure_installed()


@pytest.fixture(scope="session")
def smartline_cmd() -> Path:
    """The ``smartline`` console script of this environment."""
    path = Path(sys.executable).parent / "smartline"
    assert path.exists(), f"{path} is missing: install smartline into this environment"
    return path


@pytest.fixture
def audit_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Environment for CLI subprocesses: the audit log goes to tmp_path."""
    yield {**os.environ, "SMARTLINE_AUDIT": str(tmp_path / "audit.jsonl")}
