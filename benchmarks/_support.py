"""Helpers the benchmarks share: the simulated Modbus devices and the sections of RESULTS.md.

pytest runs with ``--import-mode=importlib``: ``conftest.py`` next to this file puts this
folder on ``sys.path`` so the benchmarks can ``import _support`` (as a script, Python does).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


@contextmanager
def modbus_servers(devices: int, registers: int, stop_timeout_s: float) -> Iterator[list[str]]:
    """``devices`` simulated Modbus/TCP devices served by a separate process
    (``python -m smartline.hil.modbus``); yields their URLs, stops the process on exit."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "smartline.hil.modbus", "--devices", str(devices),
         "--registers", str(registers)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    urls: list[str] = []
    for line in proc.stdout:
        msg = json.loads(line)
        if msg.get("ready"):
            break
        urls.append(msg["url"])
    try:
        yield urls
    finally:
        proc.terminate()
        proc.wait(stop_timeout_s)


def write_section(name: str, text: str, *, after: str | None = None) -> None:
    """Replace (or add) the section ``name`` of RESULTS.md; other sections stay.

    A new section goes right after the section ``after`` when that one is there, else at the end.
    """
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{text.rstrip()}\n{end}"
    old = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
    after_end = f"<!-- {after}:end -->" if after is not None else None
    if begin in old and end in old:
        head, rest = old.split(begin, 1)
        new = head + block + rest.split(end, 1)[1]
    elif after_end is not None and after_end in old:
        head, rest = old.split(after_end, 1)
        new = head + after_end + "\n\n" + block + rest
    else:
        new = old.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(new, encoding="utf-8")
