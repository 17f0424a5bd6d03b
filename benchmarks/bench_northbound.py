"""The Sparkplug B edge node against a real mosquitto on 127.0.0.1 (issue #13).

In one run, against one broker:

* **metrics/s published**: a memory line of ``TAGS`` float tags, every tag changed before
  each step; only ``EdgeNode.step`` is timed (feed changes → ``SampleStore.add``, one
  committed SQLite transaction, fsync'd → one DDATA → ``mark_sent``); a subscriber checks
  that every metric arrived;
* **latency tag change → subscriber**: one tag changed, ``line.read()`` + ``step`` and the
  DDATA's arrival at a subscriber in the same process (p50/p99), beside the **baseline**: a
  bare aiomqtt publish of a payload of the same size to the same subscriber;
* **replay rate**: ``REPLAY`` samples waiting in the store when the node connects: from
  ``start()`` until the subscriber has every historical metric and the store is empty.

A reference thread measures the machine's timer noise (overshoot of a 1 ms sleep-and-spin
wait, p50/p99) while the latencies are taken, so a noisy machine shows in the figures::

    python -m pytest benchmarks/bench_northbound.py -p no:cacheprovider -s

The assertions are loose bounds that cannot flake; the figures go to the report.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiomqtt
import pytest

from smartline.core import MonotonicClock
from smartline.line import Line
from smartline.northbound import _config as nb
from smartline.northbound.sparkplug import EdgeNode, SampleStore, StoredSample

TAGS = 200
STEPS = 100
LATENCY_SAMPLES = 300
REPLAY = 20_000
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def broker(folder: Path) -> Iterator[int]:
    """mosquitto on a free loopback port, anonymous, no persistence."""
    port = _free_port()
    conf = folder / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "user root\nmax_queued_messages 100000\n", encoding="utf-8")
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port),
                                                                         timeout=0.2):
                break
            assert time.monotonic() < deadline and proc.poll() is None, "mosquitto"
            time.sleep(0.02)
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(5)


def _line(folder: Path) -> Line:
    tags = "\n".join(f"  t{i}: {{device: plc, address: \"t{i}\"}}" for i in range(TAGS))
    p = folder / "line.yaml"
    p.write_text(f"smartline: 1\nline: bench\ndevices:\n  plc: {{url: \"memory://plc\"}}\n"
                 f"tags:\n{tags}\n", encoding="utf-8")
    return Line.load(p, clock=MonotonicClock())


def _config(port: int, store: Path, node: str) -> nb.SparkplugConfig:
    return nb.SparkplugConfig(
        host="127.0.0.1", port=port, tls=None, group="bench", node=node, primary_host=None,
        store=nb.StoreConfig(store, 512 * 1024 * 1024, "drop-oldest"), user=None,
        password_env=None, mqtt="3.1.1", keepalive_s=30.0, period_ms=100.0,
        devices=("plc",), client_id=f"bench-{node}")


class Subscriber:
    """Counts DDATA metrics (from the payload's length prefix walk: cheap) and stamps
    arrival times."""

    def __init__(self) -> None:
        self.arrivals: list[int] = []
        self.messages = 0
        self.event = asyncio.Event()


@contextlib.asynccontextmanager
async def subscribe(port: int, topic: str) -> AsyncIterator[Subscriber]:
    sub = Subscriber()
    async with aiomqtt.Client("127.0.0.1", port, max_queued_incoming_messages=0) as c:
        await c.subscribe(topic, qos=0)

        async def pump() -> None:
            async for _ in c.messages:
                sub.arrivals.append(time.perf_counter_ns())
                sub.messages += 1
                sub.event.set()

        task = asyncio.create_task(pump())
        try:
            yield sub
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task


async def _wait(pred: object, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not pred():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.001)


def _count_metrics(data: bytes) -> int:
    """Payload field 2 (metrics) occurrences, walking the top-level wire format."""
    pos = n = 0
    while pos < len(data):
        key = 0
        shift = 0
        while True:
            b = data[pos]
            pos += 1
            key |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        wt = key & 7
        if wt == 0:
            while data[pos] & 0x80:
                pos += 1
            pos += 1
        elif wt == 2:
            length = shift = 0
            while True:
                b = data[pos]
                pos += 1
                length |= (b & 0x7F) << shift
                shift += 7
                if not b & 0x80:
                    break
            pos += length
            n += key >> 3 == 2
        elif wt == 1:
            pos += 8
        else:
            pos += 4
    return n


async def _throughput(port: int, folder: Path) -> float:
    line = _line(folder)
    bus = line.io.driver("plc").bus  # type: ignore[attr-defined]
    await line.read()
    node = EdgeNode(_config(port, folder / "store-t", "tput"), line, clock=line.clock)
    got = {"metrics": 0}
    async with aiomqtt.Client("127.0.0.1", port) as c:
        await c.subscribe("spBv1.0/bench/DDATA/tput/#", qos=0)

        async def pump() -> None:
            async for m in c.messages:
                got["metrics"] += _count_metrics(bytes(m.payload))  # type: ignore[arg-type]

        task = asyncio.create_task(pump())
        await node.start()
        await _wait(lambda: node.status()["live"])
        spent = 0
        for k in range(STEPS):
            for i in range(TAGS):
                bus.set(f"t{i}", float((k + 1) * 1000 + i))
            await line.read()
            t0 = time.perf_counter_ns()
            await node.step(0)
            spent += time.perf_counter_ns() - t0
        await _wait(lambda: got["metrics"] >= STEPS * TAGS)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
            await task
    await node.aclose()
    await line.close()
    return STEPS * TAGS / (spent / 1e9)


async def _latency(port: int, folder: Path) -> tuple[list[float], list[float], int]:
    """(node latencies µs, bare aiomqtt latencies µs, DDATA size)."""
    line = _line(folder)
    bus = line.io.driver("plc").bus  # type: ignore[attr-defined]
    await line.read()
    node = EdgeNode(_config(port, folder / "store-l", "lat"), line, clock=line.clock)
    ours: list[float] = []
    size = 0
    async with aiomqtt.Client("127.0.0.1", port) as c:
        await c.subscribe("spBv1.0/bench/DDATA/lat/#", qos=0)
        await node.start()
        await _wait(lambda: node.status()["live"])
        it = c.messages.__aiter__()
        for k in range(LATENCY_SAMPLES):
            bus.set("t0", 1000.0 + k)
            t0 = time.perf_counter_ns()
            await line.read()
            await node.step(0)
            m = await asyncio.wait_for(it.__anext__(), 5)
            ours.append((time.perf_counter_ns() - t0) / 1e3)
            size = len(bytes(m.payload))  # type: ignore[arg-type]
    await node.aclose()
    await line.close()
    base: list[float] = []
    payload = bytes(size)
    async with aiomqtt.Client("127.0.0.1", port) as pub, \
            aiomqtt.Client("127.0.0.1", port) as c:
        await c.subscribe("bench/bare", qos=0)
        it = c.messages.__aiter__()
        for _ in range(LATENCY_SAMPLES):
            t0 = time.perf_counter_ns()
            await pub.publish("bench/bare", payload, qos=0)
            await asyncio.wait_for(it.__anext__(), 5)
            base.append((time.perf_counter_ns() - t0) / 1e3)
    return ours, base, size


async def _replay(port: int, folder: Path) -> float:
    line = _line(folder)
    await line.read()
    store_dir = folder / "store-r"
    store = SampleStore(store_dir, max_bytes=512 * 1024 * 1024)
    t_ms = time.time_ns() // 1_000_000 - REPLAY
    batch = [StoredSample("plc", f"t{i % TAGS}", t_ms + i, float(i), 192, 10)
             for i in range(REPLAY)]
    for k in range(0, REPLAY, 1000):
        store.add(batch[k:k + 1000])
    got = {"metrics": 0}
    async with aiomqtt.Client("127.0.0.1", port) as c:
        await c.subscribe("spBv1.0/bench/DDATA/replay/#", qos=0)

        async def pump() -> None:
            async for m in c.messages:
                got["metrics"] += _count_metrics(bytes(m.payload))  # type: ignore[arg-type]

        task = asyncio.create_task(pump())
        node = EdgeNode(_config(port, store_dir, "replay"), line, clock=line.clock,
                        store=store)
        t0 = time.perf_counter()
        await node.start()
        await _wait(lambda: got["metrics"] >= REPLAY and node.status()["buffered"] == 0, 120)
        elapsed = time.perf_counter() - t0
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
            await task
    await node.aclose()
    await line.close()
    return REPLAY / elapsed


class TimerNoise(threading.Thread):
    """Overshoot of 1 ms sleep-and-spin waits while the measurement runs."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.over_us: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            deadline = time.perf_counter() + 0.001
            time.sleep(0.0008)
            while time.perf_counter() < deadline:
                pass
            self.over_us.append((time.perf_counter() - deadline) * 1e6)


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


@pytest.mark.skipif(not Path(MOSQUITTO).exists(), reason="mosquitto not installed")
def test_northbound_sparkplug() -> None:
    with tempfile.TemporaryDirectory() as tmp, broker(Path(tmp)) as port:
        folder = Path(tmp)
        rate = asyncio.run(_throughput(port, folder))
        noise = TimerNoise()
        noise.start()
        ours, base, size = asyncio.run(_latency(port, folder))
        noise.stop.set()
        noise.join()
        replay = asyncio.run(_replay(port, folder))
    print(f"\nSparkplug B edge node, mosquitto on loopback ({TAGS} tags, {STEPS} steps)")
    print(f"  published        {rate:>10.0f} metrics/s (step: feed → store commit → DDATA "
          "→ mark_sent)")
    print(f"  change→subscriber p50 {_pct(ours, 0.5):>8.0f} µs   p99 {_pct(ours, 0.99):>8.0f} µs"
          f"   (read + step + broker, {size} B DDATA)")
    print(f"  bare aiomqtt      p50 {_pct(base, 0.5):>8.0f} µs   p99 {_pct(base, 0.99):>8.0f} µs"
          f"   (publish → subscriber, same size)")
    print(f"  replay            {replay:>10.0f} samples/s ({REPLAY} historical samples)")
    print(f"  timer noise       p50 {_pct(noise.over_us, 0.5):>8.1f} µs   p99 "
          f"{_pct(noise.over_us, 0.99):>8.1f} µs   ({len(noise.over_us)} waits, median of "
          f"bare {statistics.median(base):.0f} µs)")
    assert rate > 500
    assert _pct(ours, 0.5) < 50_000
    assert replay > 500
