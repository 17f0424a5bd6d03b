"""Every test runs with its own smartline state folder: ``SMARTLINE_STATE_DIR`` and
``SMARTLINE_AUDIT`` point into a temporary folder for the whole session, set before
collection so that the environments tests copy for their subprocesses carry them too. A test
never reads or writes the user's ~/.local/state/smartline (histories, journals, the audit
trail); tests of those defaults pass their own environment."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

_VARS = ("SMARTLINE_STATE_DIR", "SMARTLINE_AUDIT")
_SAVED = pytest.StashKey[tuple[str, dict[str, str | None]]]()


def pytest_configure(config: pytest.Config) -> None:
    folder = tempfile.mkdtemp(prefix="smartline-test-state-")
    config.stash[_SAVED] = (folder, {var: os.environ.get(var) for var in _VARS})
    os.environ["SMARTLINE_STATE_DIR"] = folder
    os.environ["SMARTLINE_AUDIT"] = os.path.join(folder, "audit.jsonl")


def pytest_unconfigure(config: pytest.Config) -> None:
    folder, saved = config.stash[_SAVED]
    for var, value in saved.items():
        if value is None:
            os.environ.pop(var, None)
        else:
            os.environ[var] = value
    shutil.rmtree(folder, ignore_errors=True)
