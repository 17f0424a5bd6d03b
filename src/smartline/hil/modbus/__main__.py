"""Serve simulated Modbus devices from the command line (benchmarks, manual tests).

    python -m smartline.hil.modbus --devices 500 --registers 30
    python -m smartline.hil.modbus --profile drivers/omron/e5cc.yaml --transport rtu

Prints one JSON line per device, ``{"device": N, "url": "modbus+tcp://127.0.0.1:PORT?unit=1"}``,
then ``{"ready": true}``, and serves on 127.0.0.1 until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys

from ._device import ModbusDeviceSim
from ._server import ModbusServerSim


def _device(args: argparse.Namespace, index: int) -> ModbusDeviceSim:
    if args.profile:
        return ModbusDeviceSim.from_profile(args.profile, unit=args.unit)
    dev = ModbusDeviceSim(args.unit, extra={"hr": [(0, args.registers)],
                                            "ir": [(0, args.registers)]})
    words = [(index * 7919 + k * 104729) & 0x7FFF for k in range(args.registers)]
    dev.set_registers("hr", 0, words)
    dev.set_registers("ir", 0, words)
    return dev


async def _serve(args: argparse.Namespace) -> None:
    sims = [ModbusServerSim(_device(args, i), transport=args.transport)
            for i in range(args.devices)]
    for i, sim in enumerate(sims):
        await sim.start()
        sys.stdout.write(json.dumps({"device": i, "url": sim.url()}) + "\n")
    sys.stdout.write(json.dumps({"ready": True}) + "\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for sim in sims:
        await sim.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m smartline.hil.modbus",
                                     description="Serve simulated Modbus devices on 127.0.0.1.")
    parser.add_argument("--devices", type=int, default=1, help="devices, one endpoint each")
    parser.add_argument("--registers", type=int, default=100,
                        help="holding and input registers 0..N-1 (without --profile)")
    parser.add_argument("--profile", help="serve this device profile instead")
    parser.add_argument("--unit", type=int, default=1)
    parser.add_argument("--transport", choices=("tcp", "rtuovertcp", "rtu"), default="tcp")
    args = parser.parse_args(argv)
    import logging

    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
