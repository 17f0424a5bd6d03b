"""``smartline sim SCENARIO``: serve a scenario in real time until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from typing import TextIO

from ._files import Scenario
from ._runner import ScenarioRunner

__all__ = ["serve_scenario"]


async def serve_scenario(scenario: Scenario, *, out: TextIO | None = None,
                         stop_on_stdin_eof: bool = False,
                         duration_s: float | None = None) -> int:
    """Start ``scenario`` in real time, print ``{"device", "url"}`` per endpoint (one JSON
    line each, once it serves), run until SIGINT/SIGTERM (or the end of standard input with
    ``stop_on_stdin_eof``, or ``duration_s``), stop every device, then print one
    ``{"expect", "ok", ...}`` line per expectation. Returns 0, or 1 if an expectation failed.
    """
    stream = out if out is not None else sys.stdout
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, done.set)
            installed.append(sig)
    waits: list[asyncio.Task[object]] = []
    try:
        async with ScenarioRunner(scenario, trace=False) as runner:
            for device, url in runner.urls().items():
                stream.write(json.dumps({"device": device, "url": url}) + "\n")
                stream.flush()
            waits.append(asyncio.create_task(done.wait()))
            if stop_on_stdin_eof:
                reader = asyncio.StreamReader()
                await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader),
                                             sys.stdin)
                waits.append(asyncio.create_task(reader.read()))
            if duration_s is not None:
                waits.append(asyncio.create_task(asyncio.sleep(duration_s)))
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        results = runner.results()
    finally:
        for t in waits:
            t.cancel()
        for sig in installed:
            loop.remove_signal_handler(sig)
    for r in results:
        stream.write(json.dumps(r.to_json()) + "\n")
    stream.flush()
    return 1 if any(r.ok is False for r in results) else 0
