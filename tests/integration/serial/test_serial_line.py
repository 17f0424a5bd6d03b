"""A line with a scale (polled) and a scanner (pushed) in the cycle: the scanner's tags are
pushed, so its task issues no reads; the scale's are polled; notes reach the image."""

from __future__ import annotations

import asyncio
from pathlib import Path

from smartline.core import MonotonicClock, Quality, Reason
from smartline.cycle import Engine, RealtimeOptions, TaskSpec
from smartline.hil.serial import SerialInstrumentSim
from smartline.line import Line

from .conftest import SCALE, SCANNER

NO_RT = RealtimeOptions(priority=None, timer_slack_ns=None, switch_interval_s=None)

LINE = """\
smartline: 1
line: packing
devices:
  scale: {{url: "serial://{scale}", profile: mettler-toledo/mt-sics, timeout_ms: 300}}
  scanner: {{url: "serial://{scanner}", profile: honeywell/xenon-1900}}
tags:
  weight: {{device: scale, address: weight, unit: g}}
  code: {{device: scanner, address: code}}
  gtin: {{device: scanner, address: gtin}}
tasks:
  weigh: {{period_ms: 20, tags: [weight]}}
  scan: {{period_ms: 20, tags: [code, gtin]}}
"""


def test_scanner_pushes_and_scale_polls(tmp_path: Path) -> None:
    with SerialInstrumentSim(SCALE) as scale, SerialInstrumentSim(SCANNER) as scanner:
        path = tmp_path / "line.yaml"
        path.write_text(LINE.format(scale=scale.pty_path, scanner=scanner.socket_url()),
                        encoding="utf-8")
        clock = MonotonicClock()
        line = Line.load(path, clock=clock)

        async def main() -> dict[str, object]:
            eng = Engine(line.image, [TaskSpec("weigh", 20, tags=("weight",)),
                                      TaskSpec("scan", 20, tags=("code", "gtin"))],
                         io=line.io, clock=clock, realtime=NO_RT)
            run = asyncio.ensure_future(eng.run(duration_s=1.2))
            for _ in range(80):  # the simulator (a thread of this process) took the link
                if scanner.connections():
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.1)
            scanner.scan("]d2010950110153000317261231\x1d10ABC-1")
            scale.instrument.fault("error", command="stable_weight", text="S +", count=None)
            return await run  # type: ignore[no-any-return]

        stats = asyncio.run(main())
        assert stats["scan"].io.reads == 0  # type: ignore[attr-defined]
        assert stats["weigh"].io.reads > 0  # type: ignore[attr-defined]
        code, gtin = line.image.get("code"), line.image.get("gtin")
        assert code.value == "]d2010950110153000317261231\x1d10ABC-1"
        assert gtin.value == "09501101530003" and gtin.quality is Quality.GOOD
        weight = line.image.get("weight")
        assert weight.quality is Quality.BAD and weight.reason is Reason.DEVICE_ERROR
        assert weight.note == "S +: overload"
