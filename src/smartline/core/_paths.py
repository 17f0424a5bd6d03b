"""Where smartline keeps its state on this machine: one place decides, every part asks."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["default_audit_path", "state_dir"]


def state_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$SMARTLINE_STATE_DIR``, else ``~/.local/state/smartline``: persisted memory
    devices, the PKI, batch records, line histories."""
    env = os.environ if env is None else env
    state = env.get("SMARTLINE_STATE_DIR")
    return Path(state) if state else Path.home() / ".local" / "state" / "smartline"


def default_audit_path(env: Mapping[str, str] | None = None) -> Path:
    """The audit trail: ``$SMARTLINE_AUDIT``, else ``~/.local/state/smartline/audit.jsonl``
    (the default state folder, whatever ``$SMARTLINE_STATE_DIR`` says, as documented)."""
    env = os.environ if env is None else env
    audit = env.get("SMARTLINE_AUDIT")
    return Path(audit) if audit else Path.home() / ".local" / "state" / "smartline" / "audit.jsonl"
