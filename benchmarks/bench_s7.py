"""S7 throughput: 400 tags of mixed types in four data blocks and M, one S7-1200-like CPU.

Two ways in the same run, against the same simulated CPU (python-snap7's server in a
separate process, so only the client side is measured here), at PDU 240 and 480:

* smartline: one ``driver.read(plan)`` per cycle — the planner's Read Var jobs, sent from
  the driver's worker thread, item return codes checked, every value decoded;
* raw python-snap7: the *same jobs* (same items) with a blocking ``snap7.Client`` on the
  calling thread (``protocol.build_multi_read_request`` + ``extract_multi_read_data``, what
  its own multi-read optimizer sends), no decoding — the baseline;
* the same raw jobs from an asyncio program, through one worker thread
  (``loop.run_in_executor``) as any event-loop program must run a blocking client — this
  shows what the thread hop alone costs.

Requests per cycle are compared with the optimum: the planner's exact search over its
pieces, and the lower bound from the bytes and items alone::

    python -m pytest benchmarks/bench_s7.py -p no:cacheprovider -s

writes the "S7" section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib.metadata import version

import pytest
from snap7.client import Client
from snap7.type import Area

from _support import write_section
from smartline.core import DeviceSpec, Point, parse_url
from smartline.drivers.families.s7 import parse_s7_point
from smartline.drivers.s7 import S7Driver, S7ReadPlan, read_cost

TYPES = ["REAL", "INT", "DINT", "BOOL", "REAL", "UINT", "LREAL", "WORD", "DWORD", "INT"]
WIDTH = {"REAL": 4, "INT": 2, "DINT": 4, "BOOL": 1, "UINT": 2, "LREAL": 8, "WORD": 2,
         "DWORD": 4}
SIZE = {"INT": "W", "UINT": "W", "WORD": "W", "REAL": "D", "DINT": "D", "DWORD": "D"}
TAGS_PER_DB = 90
ROUNDS = 200

SERVER = """
import sys, time, asyncio
from smartline.hil.s7 import S7PlcSim, S7ServerSim
async def main():
    plc = S7PlcSim(dbs={1: 1024, 2: 1024, 3: 1024, 4: 1024}, m_size=1024)
    async with S7ServerSim(plc, pdu_max=int(sys.argv[1])) as sim:
        print(sim.port, flush=True)
        while True:
            await asyncio.sleep(3600)
asyncio.run(main())
"""


def layout() -> list[str]:
    """Address texts: 90 mixed tags per DB, packed, a 6-byte hole every 10 tags, + 40 MWs."""
    out: list[str] = []
    for db in (1, 2, 3, 4):
        offset = 0
        for k in range(TAGS_PER_DB):
            t = TYPES[k % len(TYPES)]
            if k and k % 10 == 0:
                offset += 6
            offset += offset & 1
            if t == "BOOL":
                out.append(f"DB{db}.DBX{offset}.{k % 8}")
            elif t == "LREAL":
                out.append(f"DB{db}.DBB{offset}:LREAL")
            else:
                out.append(f"DB{db}.DB{SIZE[t]}{offset}:{t}")
            offset += WIDTH[t]
    out += [f"MW{20 * k}:INT" for k in range(40)]
    return out


@pytest.fixture(params=[240, 480], ids=lambda p: f"pdu{p}")
def server(request: pytest.FixtureRequest) -> Iterator[tuple[int, int]]:
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(request.param)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    try:
        yield port, int(request.param)
    finally:
        proc.terminate()
        proc.wait(10)


def lower_bound(plan: S7ReadPlan) -> int:
    pieces = plan.planned.pieces
    costs = [read_cost(p.length) for p in pieces]
    return max(math.ceil(sum(costs) / plan.limits.read_capacity),
               math.ceil(len(costs) / plan.limits.read_items))


_CODES = {"DB": Area.DB, "M": Area.MK, "I": Area.PE, "Q": Area.PA}
RESULTS: dict[int, dict[str, float]] = {}


def test_s7_throughput(server: tuple[int, int]) -> None:
    port, pdu = server
    texts = layout()
    pts = []
    slot = 0
    for i, text in enumerate(texts):
        addr = parse_s7_point(text)
        pts.append(Point(f"t{i}", slot, addr))
        slot += addr.elements
    loop = asyncio.new_event_loop()
    d = S7Driver(DeviceSpec("plc", parse_url(f"s7://127.0.0.1:{port}?rack=0&slot=1&max_gap=8"),
                            timeout_s=2.0))
    raw = Client()
    try:
        loop.run_until_complete(d.connect())
        plan = d.plan(pts)
        compiled = plan.compiled
        raw.connect("127.0.0.1", 0, 1, tcp_port=port)
        assert raw.get_pdu_length() == d.pdu == pdu
        jobs = [[(int(_CODES[a]), db, s, n) for a, db, s, n in items]
                for items, _ in compiled.requests]

        def raw_cycle() -> int:
            for specs in jobs:
                response = raw._send_receive(raw.protocol.build_multi_read_request(specs))
                raw.protocol.extract_multi_read_data(response, len(specs))
            return len(jobs)

        executor = concurrent.futures.ThreadPoolExecutor(1)

        def hop_cycle() -> int:
            return loop.run_until_complete(loop.run_in_executor(executor, raw_cycle))

        def sl_cycle() -> int:
            r = loop.run_until_complete(d.read(plan))
            return r.requests

        from smartline.core import Quality

        first = loop.run_until_complete(d.read(plan))
        assert (first.quality == Quality.GOOD).all()
        for _ in range(10):
            raw_cycle()
            sl_cycle()
        sl_t: list[float] = []
        raw_t: list[float] = []
        hop_t: list[float] = []
        for _ in range(ROUNDS):  # interleaved, so drift hits all alike
            t0 = time.perf_counter()
            sl_cycle()
            sl_t.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            raw_cycle()
            raw_t.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            hop_cycle()
            hop_t.append(time.perf_counter() - t0)
        executor.shutdown()
        RESULTS[pdu] = {"requests": compiled.request_count, "bound": lower_bound(compiled),
                        "optimal": float(compiled.optimal), "pieces": len(compiled.planned.pieces),
                        "sl": statistics.median(sl_t), "raw": statistics.median(raw_t),
                        "hop": statistics.median(hop_t),
                        "items": compiled.limits.read_items}
    finally:
        raw.disconnect()
        loop.run_until_complete(d.close())
        loop.close()
    r = RESULTS[pdu]
    assert r["optimal"] == 1.0 and r["requests"] >= r["bound"]
    if len(RESULTS) == 2:
        _report(len(texts))


def _report(tags: int) -> None:
    rows = []
    for pdu in (240, 480):
        r = RESULTS[pdu]
        ratio = r["raw"] / r["sl"]
        rows.append(
            f"| {pdu} | **{int(r['requests'])}** (optimum; lower bound from bytes and items: "
            f"{int(r['bound'])}; {int(r['pieces'])} items) | {int(r['items'])} | "
            f"{r['sl'] * 1e3:.2f} ms | {r['raw'] * 1e3:.2f} ms | {r['hop'] * 1e3:.2f} ms | "
            f"{tags / r['sl']:,.0f} | {tags / r['raw']:,.0f} | **{ratio:.1%}** | "
            f"{r['hop'] / r['sl']:.1%} |")
    table = (
        f"## S7 — {tags} tags (4 DBs + M), one simulated S7 CPU (issue #9)\n\n"
        "`python -m pytest benchmarks/bench_s7.py -p no:cacheprovider -s` · "
        f"{time.strftime('%Y-%m-%d')} · {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, python-snap7 {version('python-snap7')}. The CPU is "
        "python-snap7's server (smartline.hil.s7) in a separate process on 127.0.0.1; "
        f"max_gap 8; medians of {ROUNDS} interleaved cycles.\n\n"
        "| PDU | requests per cycle | items per job | smartline cycle | raw python-snap7, "
        "same jobs, calling thread | raw, same jobs, via a worker thread | smartline "
        "points/s | raw points/s | smartline / raw (target ≥ 90 %) | smartline / raw via "
        "a thread |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
        "smartline's time includes the one hop per read to the driver's worker thread and "
        "back to the event loop (all of a plan's jobs in one blocking call; frames encoded "
        "once per plan, answers received in place and checked by one comparison), the item "
        "return codes, and the vectorised decode of every value with its quality; the raw "
        "client sends the same jobs from the calling thread and only splits the answers "
        "into byte arrays. The ≥ 90 % target of issue #9 is judged against the raw client "
        "in the calling thread (\"the raw library issuing the same requests\"); the last "
        "column, against raw via a worker thread, is reported too.\n")
    write_section("s7", table)
    print("\n" + table)
