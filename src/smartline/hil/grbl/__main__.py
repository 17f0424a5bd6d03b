"""``python -m smartline.hil.grbl [--tcp] [--port N] [--latency-ms MS] [--fast]``: serve a
simulated GRBL controller until SIGINT/SIGTERM; prints one JSON line ``{"url": ...}``."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from smartline.core import MonotonicClock, VirtualClock

from ._controller import GrblController
from ._server import GrblSim


def main(argv: list[str] | None = None) -> int:
    """Run the simulator in this process (the benchmark runs it apart from the sender)."""
    ap = argparse.ArgumentParser(prog="python -m smartline.hil.grbl")
    ap.add_argument("--tcp", action="store_true", help="serve socket://host:port, not a pty")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--latency-ms", type=float, default=0.0,
                    help="USB-serial link latency per direction (a real adapter adds ~1 ms)")
    ap.add_argument("--fast", action="store_true",
                    help="virtual time: motion completes as soon as the link is quiet")
    ap.add_argument("--set", action="append", default=[], metavar="N=V",
                    help="a $N setting (repeatable), e.g. --set 10=3")
    args = ap.parse_args(argv)
    settings = {int(k): float(v) for k, _, v in (s.partition("=") for s in args.set)}
    clock = VirtualClock() if args.fast else MonotonicClock()
    sim = GrblSim(GrblController(clock, settings=settings),
                  transport="tcp" if args.tcp else "pty", port=args.port,
                  fast_forward=args.fast, link_latency_s=args.latency_ms / 1e3)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    with sim:
        sys.stdout.write(json.dumps({"device": "grbl", "url": sim.url}) + "\n")
        sys.stdout.flush()
        done.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
