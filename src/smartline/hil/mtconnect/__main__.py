"""``python -m smartline.hil.mtconnect``: a simulated MTConnect agent in its own process.

Serves one CNC machine (``--machines N`` for more), prints one JSON line per machine
``{"device", "url"}`` and runs until SIGINT/SIGTERM. ``--flood-per-s R`` records R extra
position samples per second (benchmarks: a busy agent).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys

from smartline.core import MonotonicClock

from ._agent import MtConnectAgentSim
from ._model import CncMachineModel


async def _serve(args: argparse.Namespace) -> None:
    machines = [CncMachineModel(name="VMC-3Axis" if i == 0 else f"VMC-{i + 1}",
                                uuid=f"vmc-{i + 1:04d}", id_prefix=f"d{i + 1}_",
                                cycle_s=args.cycle_s)
                for i in range(args.machines)]
    sim = MtConnectAgentSim(machines, buffer_size=args.buffer_size, port=args.port,
                            clock=MonotonicClock(), tick_s=args.tick_ms / 1000)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with sim:
        for m in machines:
            print(json.dumps({"device": m.name, "url": sim.url(m.name)}), flush=True)
        if args.flood_per_s > 0:
            period_s = 0.005
            batch = max(1, int(args.flood_per_s * period_s))
            start = loop.time()
            sent = 0
            while not stop.is_set():
                due = int((loop.time() - start) * args.flood_per_s)
                if due > sent:
                    n = min(due - sent, batch * 4)
                    sim.flood(n)
                    sent += n
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), period_s)
        else:
            await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m smartline.hil.mtconnect",
                                     description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--machines", type=int, default=1)
    parser.add_argument("--buffer-size", type=int, default=131072)
    parser.add_argument("--cycle-s", type=float, default=10.0)
    parser.add_argument("--tick-ms", type=float, default=50.0)
    parser.add_argument("--flood-per-s", type=float, default=0.0)
    args = parser.parse_args(argv)
    try:
        asyncio.run(_serve(args))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
