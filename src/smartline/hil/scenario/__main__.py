"""``python -m smartline.hil.scenario SCENARIO``: what ``smartline sim SCENARIO`` does."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from smartline.core import ConfigError, DriverNotAvailableError

from ._files import Scenario
from ._serve import serve_scenario


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m smartline.hil.scenario",
        description="Serve a HIL scenario's devices and plant in real time on 127.0.0.1.")
    parser.add_argument("scenario", help="scenario file (smartline-scenario: 1)")
    parser.add_argument("--stdin", action="store_true",
                        help="also stop when standard input closes (a parent process went away)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    try:
        scenario = Scenario.load(args.scenario)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        return asyncio.run(serve_scenario(scenario, stop_on_stdin_eof=args.stdin))
    except OSError as exc:  # a port in use, a pty that cannot be opened
        print(f"{args.scenario}: cannot start the simulated devices: {exc}", file=sys.stderr)
        return 1
    except DriverNotAvailableError as exc:  # a simulator's protocol library is missing
        print(f"{args.scenario}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
