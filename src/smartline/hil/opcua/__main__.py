"""``python -m smartline.hil.opcua``: a simulated OPC UA server in its own process.

Serves a profile's points (``--profile FILE``) or ``--points N`` Double variables
``Bench.Tag000``…, prints one JSON line ``{"device", "url", "certificate"}`` and runs until
SIGINT/SIGTERM. ``--stamp-ms P`` writes the wall-clock time (ns, Int64) into
``Bench.Stamp`` every P ms, for latency measurements.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time

from ._server import OpcUaSim, SimVariable


async def _serve(args: argparse.Namespace) -> None:
    policies = () if args.no_security else ("Basic256Sha256",)
    kwargs = {"policies": policies, "allow_none": args.allow_none or args.no_security,
              "max_nodes_per_read": args.max_nodes_per_read, "proxy": False,
              "port": args.port or None}
    if args.profile:
        sim = OpcUaSim.from_profile(args.profile, **kwargs)  # type: ignore[arg-type]
    else:
        variables = [SimVariable(f"Bench.Tag{i:04d}", f"ns=2;s=Bench.Tag{i:04d}", float(i),
                                 "Double", True) for i in range(args.points)]
        variables.append(SimVariable("Bench.Stamp", "ns=2;s=Bench.Stamp", 0, "Int64"))
        sim = OpcUaSim(variables, name="bench", **kwargs)  # type: ignore[arg-type]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with sim:
        print(json.dumps({"device": sim.name, "url": sim.url(),
                          "certificate": str(sim.certificate)}), flush=True)
        if args.stamp_ms > 0:
            while not stop.is_set():
                await sim.set("Bench.Stamp", time.time_ns())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), args.stamp_ms / 1000)
        else:
            await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m smartline.hil.opcua",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--profile", help="an opcua device profile file")
    parser.add_argument("--points", type=int, default=100)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--max-nodes-per-read", type=int, default=0)
    parser.add_argument("--stamp-ms", type=float, default=0.0)
    parser.add_argument("--allow-none", action="store_true",
                        help="add an endpoint without security")
    parser.add_argument("--no-security", action="store_true",
                        help="only an endpoint without security")
    args = parser.parse_args(argv)
    try:
        asyncio.run(_serve(args))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
