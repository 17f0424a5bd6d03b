"""``python -m smartline.hil.serial PROFILE``: a simulated instrument in its own process.

PROFILE is a profile name (``mettler-toledo/mt-sics``, looked up like a line file's
``profile:``) or a profile file. The instrument is served on a pty and on
``socket://127.0.0.1:PORT`` (``--rfc2217`` adds an RFC 2217 port); one JSON line per port
``{"device", "url"}`` is printed, ready for a line file's ``url:``. For a streaming
instrument (a scanner) every line typed on standard input is printed by the instrument as
a scan. Runs until SIGINT or SIGTERM (or, with ``--stdin-closes``, until standard input
closes).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from smartline.config import find_profile, load_profile
from smartline.core import ConfigError

from ._server import SerialInstrumentSim


def _profile_path(text: str) -> Path:
    path = Path(text)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        return path
    return find_profile(text, [Path.cwd()])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m smartline.hil.serial",
                                     description=(__doc__ or "").splitlines()[0])
    parser.add_argument("profile", help="vendor/model or a profile file")
    parser.add_argument("--rfc2217", action="store_true", help="also serve rfc2217://")
    parser.add_argument("--station", type=int, default=None,
                        help="the instrument's bus address (protocols that have one)")
    parser.add_argument("--stdin-closes", action="store_true",
                        help="stop when standard input closes (for a parent process)")
    args = parser.parse_args(argv)
    try:
        profile = load_profile(_profile_path(args.profile))
    except (ValueError, FileNotFoundError) as exc:  # ConfigError is a ValueError
        text = "\n".join(str(i) for i in exc.issues) if isinstance(exc, ConfigError) \
            else str(exc)
        print(f"smartline.hil.serial: {text}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    with SerialInstrumentSim(profile, station=args.station) as sim:
        urls = [f"serial://{sim.pty_path}", f"serial://{sim.socket_url()}"]
        if args.rfc2217:
            urls.append(f"serial://{sim.rfc2217_url()}")
        for url in urls:
            print(json.dumps({"device": profile.name, "url": url}), flush=True)
        streaming = sim.protocol.mode == "streaming"
        if streaming or args.stdin_closes:
            def feed() -> None:
                for line in sys.stdin:
                    if streaming and line.strip():
                        sim.scan(line.rstrip("\r\n"))
                if args.stdin_closes:
                    stop.set()

            threading.Thread(target=feed, daemon=True, name="serial-sim-stdin").start()
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
