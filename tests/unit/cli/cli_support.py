"""Running the ``smartline`` command as a real process, as a user does."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping


def sl(*args: object, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "smartline.cli", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=60, check=False)
