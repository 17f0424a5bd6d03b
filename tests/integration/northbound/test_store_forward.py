"""Store-and-forward against a real mosquitto: the Sparkplug edge node of a ``memory://``
line buffers while the broker is down and replays in order, historical, then goes live;
``kill -9`` of smartline loses no committed sample and repeats only samples in flight.

The subscriber is a paho client on its own thread, connected *synchronously* (the event loop
that runs the node does not run meanwhile), so after a broker start it is subscribed before
the node can reconnect: it sees every message of the new session. Payloads are decoded by
the independent decoder (tests/northbound_decoder.py), never by smartline's protobuf code.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import paho.mqtt.client as paho

from smartline.core import MonotonicClock
from smartline.line import Line
from smartline.northbound._config import load_northbound
from smartline.northbound.sparkplug import EdgeNode, SampleStore

TAGS = [f"c{j}" for j in range(8)]   # every tag changes every step: 8 samples per scan
MB = 1024 * 1024


def _line_file(folder: Path, port: int, name: str) -> Path:
    tags = "\n".join(f'  {t}: {{device: filler, address: "{t}:int32", access: rw}}'
                     for t in TAGS)
    text = f"""smartline: 1
line: {name}
devices:
  filler: {{url: "memory://{name}-filler"}}
tags:
{tags}
northbound:
  sparkplug:
    broker: "mqtt://127.0.0.1:{port}"
    group: plant
    node: {name}
    store: {{path: store, max_mb: 4}}
"""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "line.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@dataclass
class Sample:
    """One DDATA metric as a host sees it."""

    tag: str
    value: int
    ts_ms: int
    historical: bool
    run: int          # which subscriber phase (or process) saw it


class Subscriber:
    """A Sparkplug host's view: every message on ``spBv1.0/#`` (paho, own thread)."""

    def __init__(self, port: int, decoder: ModuleType) -> None:
        self.decoder = decoder
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        subscribed = threading.Event()
        c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"host-{os.getpid()}-{port}")
        c.on_message = lambda _c, _u, m: self._add(m.topic, bytes(m.payload))
        c.on_subscribe = lambda *_a: subscribed.set()
        c.connect("127.0.0.1", port, keepalive=30)  # blocking: the node's loop does not run
        c.loop_start()
        c.subscribe("spBv1.0/#", qos=1)
        assert subscribed.wait(5), "no SUBACK"
        self.client = c

    def _add(self, topic: str, payload: bytes) -> None:
        with self._lock:
            self.messages.append((topic, payload))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def verbs(self) -> list[str]:
        with self._lock:
            return [t.split("/")[2] for t, _ in self.messages]

    def samples(self, run: int) -> list[Sample]:
        """DDATA metrics in arrival order, named through the DBIRTHs' aliases."""
        names: dict[int, str] = {}
        out: list[Sample] = []
        with self._lock:
            messages = list(self.messages)
        for topic, payload in messages:
            verb = topic.split("/")[2]
            p = self.decoder.decode(payload)
            if verb == "DBIRTH":
                names.update({m.alias: m.name for m in p.metrics})
            elif verb == "DDATA":
                out += [Sample(names[m.alias], int(m.value), int(m.timestamp),
                               m.is_historical, run) for m in p.metrics]
        return out

    def wait(self, predicate: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {self.verbs()}"
            time.sleep(0.01)


async def _until(predicate: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def _change(line: Line, node: EdgeNode, clock: MonotonicClock, value: int) -> None:
    await line.write(dict.fromkeys(TAGS, value))
    await line.read()
    await node.step(clock.now_ns())


async def test_broker_restart_replays_in_order_historical_then_live_each_sample_once(
        tmp_path: Path, mosquitto_factory: Callable[..., Any],
        sparkplug_decoder: ModuleType) -> None:
    broker = mosquitto_factory()
    line_file = _line_file(tmp_path, broker.port, "saf-restart")
    clock = MonotonicClock()
    line = Line.load(line_file, clock=clock)
    cfg = load_northbound(line.config).sparkplug
    assert cfg is not None
    store = SampleStore(cfg.store.path, max_bytes=cfg.store.max_bytes)
    node = EdgeNode(cfg, line, clock=clock, store=store)   # the node closes it
    before = Subscriber(broker.port, sparkplug_decoder)
    after: Subscriber | None = None
    try:
        await line.read()
        await node.start()
        await _until(lambda: bool(node.status()["live"]), "the node live")
        for v in range(1, 6):                      # live
            await _change(line, node, clock, v)
        before.wait(lambda: len(before.samples(0)) == 5 * len(TAGS), "live DDATA")

        broker.stop()                              # SIGTERM: the node sees the link drop
        await _until(lambda: not node.status()["connected"], "the node offline")
        for v in range(6, 26):                     # buffered
            await _change(line, node, clock, v)
        assert node.status()["buffered"] == 20 * len(TAGS)
        stored = store.unsent(10_000)
        assert [s.value for _, s in stored[:: len(TAGS)]] == list(range(6, 26))
        assert all(s.tag == t for (_, s), t in zip(stored, TAGS * 20, strict=True))

        broker.start()                             # same port
        after = Subscriber(broker.port, sparkplug_decoder)   # before the node can reconnect
        await _until(lambda: node.status()["buffered"] == 0 and bool(node.status()["live"]),
                     "the replay", timeout_s=20)
        for v in range(26, 31):                    # live again
            await _change(line, node, clock, v)
        sub = after
        after.wait(lambda: len(sub.samples(1)) == 25 * len(TAGS), "replay and live DDATA")
        assert node.status()["dropped"] == 0
    finally:
        await node.aclose()
        await line.close()
        before.close()
        if after is not None:
            after.close()

    seen = before.samples(0) + after.samples(1)
    for tag in TAGS:
        mine = [s for s in seen if s.tag == tag]
        assert [s.value for s in mine] == list(range(1, 31))        # each once, in order
        assert [s.historical for s in mine] == [False] * 5 + [True] * 20 + [False] * 5
        assert [s.ts_ms for s in mine] == sorted(s.ts_ms for s in mine)
        assert all(s.run == 1 for s in mine[5:])
    # the new session: births before any data, history before live data
    verbs = after.verbs()
    assert verbs[0] == "NBIRTH" and verbs[1] == "DBIRTH"
    hist = [s.historical for s in after.samples(1)]
    assert hist == sorted(hist, reverse=True)


# A smartline process: the line's edge node, stepping changes (mode "produce": every tag
# changes every step; prints the step's value once its add() is committed), or waiting
# for the backlog to drain (mode "drain"). With KILL_AT=n its store SIGKILLs the process
# inside the n-th mark_sent, after the publish and before the commit: those samples are
# in flight.
PROCESS = """
import asyncio, os, signal, sys, time
from pathlib import Path
from smartline.core import MonotonicClock
from smartline.line import Line
from smartline.northbound._config import load_northbound
from smartline.northbound.sparkplug import EdgeNode, SampleStore

line_file, mode = sys.argv[1], sys.argv[2]
kill_at = int(os.environ.get("KILL_AT", "0"))

class Store(SampleStore):
    calls = 0
    def mark_sent(self, ids):
        Store.calls += 1
        if Store.calls == kill_at:
            time.sleep(0.3)       # the event loop flushes the publish meanwhile
            print("killing", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        super().mark_sent(ids)

async def main():
    clock = MonotonicClock()
    line = Line.load(line_file, clock=clock)
    cfg = load_northbound(line.config).sparkplug
    store = Store(cfg.store.path, max_bytes=cfg.store.max_bytes)
    node = EdgeNode(cfg, line, clock=clock, store=store)
    await line.read()
    await node.start()
    tags = [t for t in line.config.tags]
    if mode == "produce":
        v = 0
        while True:
            v += 1
            await line.write(dict.fromkeys(tags, v))
            await line.read()
            await node.step(clock.now_ns())
            print(v, flush=True)
    t0 = time.monotonic()
    while not (node.status()["live"] and node.status()["buffered"] == 0):
        assert time.monotonic() - t0 < 20, node.status()
        await asyncio.sleep(0.01)
    print("drained", node.status()["replayed"], flush=True)
    await node.aclose()
    await line.close()

asyncio.run(main())
"""


def _run(line_file: Path, mode: str, env: dict[str, str], until: Callable[[str], bool]
         ) -> tuple[list[str], int]:
    """Run PROCESS; read its lines until ``until(line)`` (then SIGKILL it) or its end."""
    proc = subprocess.Popen([sys.executable, "-c", PROCESS, str(line_file), mode],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **env})
    out: list[str] = []
    try:
        assert proc.stdout is not None
        for raw in proc.stdout:
            out.append(raw.strip())
            if until(out[-1]):
                os.kill(proc.pid, signal.SIGKILL)
                break
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        err = proc.stderr.read() if proc.stderr else ""
        for f in (proc.stdout, proc.stderr):
            if f:
                f.close()
    assert proc.returncode in (0, -signal.SIGKILL), err[-3000:]
    return out, proc.returncode


def _rows(folder: Path) -> list[tuple[int, str, int, int]]:
    """(id, tag, value, ts_ms) of every sample in the store, oldest first."""
    with SampleStore(folder, max_bytes=4 * MB) as store:  # the dead process's lock is gone
        return [(i, s.tag, int(s.value), s.ts_ms)  # type: ignore[arg-type]
                for i, s in store.unsent(1_000_000)]


def test_kill_9_loses_nothing_committed_and_repeats_only_samples_in_flight(
        tmp_path: Path, mosquitto_factory: Callable[..., Any],
        sparkplug_decoder: ModuleType) -> None:
    broker = mosquitto_factory()
    broker.stop()                                  # down while the first process runs
    line_file = _line_file(tmp_path, broker.port, "saf-kill")
    store = tmp_path / "store"
    env = {"SMARTLINE_STATE_DIR": str(tmp_path / "state"),
           "NUMBA_CACHE_DIR": os.environ.get("NUMBA_CACHE_DIR", str(tmp_path / "numba"))}

    # 1. kill -9 while buffering: every step printed (= committed) is in the store
    out, rc = _run(line_file, "produce", env, lambda s: s.isdigit() and int(s) >= 200)
    assert rc == -signal.SIGKILL
    printed = int(out[-1])
    committed = _rows(store)
    steps = [v for _, t, v, _ in committed if t == TAGS[0]]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) >= printed  # no gap
    assert [t for _, t, _, _ in committed] == TAGS * len(steps)      # whole scans, in order
    assert len(committed) > 2 * 500                                  # > 2 replay batches
    ts_of = {(t, v): ts for _, t, v, ts in committed}

    # 2. broker up; a restarted process is killed inside its 2nd mark_sent: the 2nd replay
    #    batch was published and is still in the store (in flight)
    broker.start()
    host = Subscriber(broker.port, sparkplug_decoder)
    try:
        out, rc = _run(line_file, "drain", {**env, "KILL_AT": "2"}, lambda s: False)
        assert rc == -signal.SIGKILL and out[-1] == "killing"
        time.sleep(0.3)
        seen_b = host.samples(1)
        left = _rows(store)
        assert [r[0] for r in left] == [r[0] for r in committed[500:]]  # batch 1 marked sent
        in_flight = {(t, v) for _, t, v, _ in committed[500:1000]}

        # 3. restarted again: the rest arrives, historical, in order
        n_b = len(host.messages)
        out, rc = _run(line_file, "drain", env, lambda s: False)
        assert rc == 0 and out[-1].startswith("drained")
        host.wait(lambda: len(host.samples(2)) - len(seen_b) >= len(left), "the replay")
        seen_c = host.samples(2)[len(seen_b):]
        assert host.verbs()[n_b:n_b + 2] == ["NBIRTH", "DBIRTH"]
    finally:
        host.close()
        broker.stop()

    keys_b = [(s.tag, s.value) for s in seen_b]
    keys_c = [(s.tag, s.value) for s in seen_c]
    # (a) nothing committed is lost
    assert set(keys_b) | set(keys_c) == set(ts_of)
    # each run replays oldest first, exactly in the store's order
    order = [(t, v) for _, t, v, _ in committed]
    assert keys_b == order[: len(keys_b)] and 500 <= len(keys_b) <= 1000
    assert keys_c == [(t, v) for _, t, v, _ in left]
    # (b) duplicates are only of samples in flight at the kill, with identical timestamp
    #     and value; everything replayed is historical and carries its stored timestamp
    dups = {k for k, n in Counter(keys_b + keys_c).items() if n > 1}
    assert dups <= in_flight
    assert dups == set(keys_b) & in_flight
    for s in seen_b + seen_c:
        assert s.historical and s.ts_ms == ts_of[(s.tag, s.value)]
