"""Shared by the CLI tests: a private state folder and audit log per test, and ``sl`` (in
``cli_support``) to run the ``smartline`` command as a real process."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    e = dict(os.environ)
    e["SMARTLINE_STATE_DIR"] = str(tmp_path / "state")
    e["SMARTLINE_AUDIT"] = str(tmp_path / "audit.jsonl")
    return e
