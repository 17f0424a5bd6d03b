"""The Sparkplug B edge node against a real mosquitto on loopback, every payload decoded
by the independent decoder (tests/northbound_decoder.py): session rules (birth before
data, bdSeq, seq, death, rebirth, primary host), report by exception, commands through
the write guard and audit, two nodes, TLS with credentials, MQTT 3.1.1 and 5."""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from smartline.core import ConfigError, MonotonicClock, Quality
from smartline.line import Line
from smartline.northbound import _config as nb
from smartline.northbound.sparkplug import EdgeNode

LINE = """\
smartline: 1
line: sp-test
devices:
  plc: {url: "memory://plc"}
  press: {url: "memory://press"}
tags:
  temp: {device: plc, address: "temp", deadband: 0.5, unit: degC}
  count: {device: plc, address: "count:int32"}
  neg: {device: plc, address: "neg:int16"}
  big: {device: plc, address: "big:uint64"}
  run: {device: plc, address: "run:bool"}
  f32: {device: plc, address: "f32:float32"}
  label: {device: plc, address: "label:string<16>"}
  setpoint: {device: plc, address: "setpoint", access: rw, limits: [0, 100], safe: 0}
  speeds: {device: plc, address: "speeds:float64[3]"}
  force: {device: press, address: "force"}
  mode: {device: press, address: "mode:uint16", access: rw, safe: 0}
"""

TYPES = {"temp": 10, "count": 3, "neg": 2, "big": 8, "run": 11, "f32": 9, "label": 12,
         "setpoint": 10, "force": 10, "mode": 6}
GROUP = "plant"


class AuditList:
    """An audit sink keeping the entries in memory."""

    def __init__(self) -> None:
        self.entries: list[Mapping[str, object]] = []

    def record(self, entry: Mapping[str, object]) -> None:
        self.entries.append(dict(entry))


@pytest.fixture
def audit() -> AuditList:
    return AuditList()


@pytest.fixture
async def line(tmp_path: Path, audit: AuditList) -> AsyncIterator[Line]:
    p = tmp_path / "line.yaml"
    p.write_text(LINE, encoding="utf-8")
    ln = Line.load(p, clock=MonotonicClock(), audit=audit)
    bus_set(ln, "plc", temp=20.0, count=1, neg=-1, big=2**63 + 5, run=True, f32=1.5,
            label="hello", setpoint=10.0)
    bus_set(ln, "press", force=3.0, mode=2)
    await ln.read()
    yield ln
    await ln.close()


def bus_set(line: Line, device: str, **values: object) -> None:
    bus = line.io.driver(device).bus  # type: ignore[attr-defined]
    for k, v in values.items():
        bus.set(k, v)


def config(broker: Any, tmp_path: Path, node: str = "line-1", **kw: Any) -> nb.SparkplugConfig:
    base = nb.SparkplugConfig(
        host=broker.host, port=broker.port, tls=None, group=GROUP, node=node,
        primary_host=None,
        store=nb.StoreConfig(tmp_path / f"store-{node}", 16 * 1024 * 1024, "drop-oldest"),
        user=None, password_env=None, mqtt="3.1.1", keepalive_s=5.0, period_ms=50.0,
        devices=("plc", "press"), client_id=f"edge-{node}")
    return replace(base, **kw)


async def scan(line: Line, node: EdgeNode) -> None:
    """One look at the devices and one report-by-exception step."""
    await line.read()
    await node.step(time.monotonic_ns())


def births_types(dec: ModuleType, raw: list[bytes]) -> dict[int, int]:
    """alias -> datatype from DBIRTH payloads (to type DATA values)."""
    out: dict[int, int] = {}
    for b in raw:
        for m in dec.decode(b).metrics:
            if m.alias is not None and m.datatype is not None:
                out[m.alias] = m.datatype
    return out


async def started(cfg: nb.SparkplugConfig, line: Line, rec: Any, *,
                  env: Mapping[str, str] | None = None, births: bool = True) -> EdgeNode:
    node = EdgeNode(cfg, line, clock=line.clock, env=env)
    await node.start()
    if births:
        await rec.wait(lambda ms: len([m for m in ms if m.topic.startswith(
            f"spBv1.0/{GROUP}/DBIRTH/{cfg.node}/")]) >= len(cfg.devices))
    return node


@pytest.mark.parametrize("mqtt", ["3.1.1", "5"])
async def test_births_then_data_with_aliases(mqtt: str, mosquitto: Any, tmp_path: Path,
                                             line: Line, sparkplug_decoder: ModuleType,
                                             sparkplug_recorder: Callable[..., Any]) -> None:
    dec = sparkplug_decoder
    async with sparkplug_recorder(mosquitto) as rec:
        node = await started(config(mosquitto, tmp_path, mqtt=mqtt), line, rec)
        try:
            nbirth = dec.decode(rec.on("NBIRTH")[0].payload)
            assert nbirth.seq == 0
            nm = nbirth.by_name()
            assert nm["bdSeq"].datatype == 4 and nm["bdSeq"].value == 0
            assert nm["Node Control/Rebirth"].datatype == 11
            assert nm["Node Control/Rebirth"].value is False
            assert all(m.alias is None for m in nbirth.metrics)
            births = {m.topic.rsplit("/", 1)[1]: dec.decode(m.payload) for m in rec.on("DBIRTH")}
            assert sorted(births) == ["plc", "press"]
            assert [births["plc"].seq, births["press"].seq] in ([1, 2], [2, 1])
            metrics = {m.name: m for b in births.values() for m in b.metrics}
            assert {n: m.datatype for n, m in metrics.items()} == TYPES  # arrays skipped
            aliases = [m.alias for m in metrics.values()]
            assert len(set(aliases)) == len(aliases) and None not in aliases
            assert metrics["neg"].value == -1 and metrics["big"].value == 2**63 + 5
            assert metrics["label"].value == "hello" and metrics["run"].value is True
            assert metrics["f32"].value == pytest.approx(1.5)
            assert all(not m.properties for m in metrics.values())  # all GOOD: no Quality
            now_ms = time.time_ns() // 1_000_000
            assert all(abs(m.timestamp - now_ms) < 10_000 for m in metrics.values())

            bus_set(line, "plc", temp=21.0, neg=-300, label="bye")
            await scan(line, node)
            data = await rec.wait_for("DDATA")
            assert data[0].topic == f"spBv1.0/{GROUP}/DDATA/line-1/plc"
            types = births_types(dec, [m.payload for m in rec.on("DBIRTH")])
            p = dec.decode(data[0].payload, types)
            assert p.seq == 3
            by_alias = {m.alias: m for m in p.metrics}
            assert set(by_alias) == {metrics[n].alias for n in ("temp", "neg", "label")}
            assert all(m.name is None and m.datatype is None and not m.is_historical
                       for m in p.metrics)
            assert by_alias[metrics["neg"].alias].value == -300
            assert by_alias[metrics["temp"].alias].value == 21.0
            assert by_alias[metrics["label"].alias].value == "bye"
            verbs = rec.verbs()
            assert verbs.index("DDATA") > max(i for i, v in enumerate(verbs) if v == "DBIRTH")
        finally:
            await node.aclose()


async def test_deadband_and_seq_continuity(mosquitto: Any, tmp_path: Path, line: Line,
                                           sparkplug_decoder: ModuleType,
                                           sparkplug_recorder: Callable[..., Any]) -> None:
    dec = sparkplug_decoder
    async with sparkplug_recorder(mosquitto) as rec:
        node = await started(config(mosquitto, tmp_path), line, rec)
        try:
            bus_set(line, "plc", temp=20.3)  # inside the 0.5 deadband
            await scan(line, node)
            bus_set(line, "plc", temp=20.45)
            await scan(line, node)
            await asyncio.sleep(0.2)
            assert rec.on("DDATA") == []
            bus_set(line, "plc", temp=20.6)  # 0.6 from the 20.0 last reported
            await scan(line, node)
            await rec.wait_for("DDATA")
            for k in range(300):
                bus_set(line, "plc", count=k + 10)
                await scan(line, node)
            await rec.wait_for("DDATA", 301)
        finally:
            await node.aclose()
    seqs = [dec.decode(m.payload).seq for m in rec.messages
            if m.topic.split("/")[2] in ("NBIRTH", "DBIRTH", "DDATA")]
    assert seqs[0] == 0
    assert all(b == (a + 1) % 256 for a, b in itertools.pairwise(seqs)), seqs
    assert len(seqs) == 3 + 301
    assert dec.decode(rec.on("NDEATH")[-1].payload).seq is None


@pytest.mark.parametrize("mqtt", ["3.1.1", "5"])
async def test_abrupt_disconnect_publishes_the_will(mqtt: str, mosquitto: Any, tmp_path: Path,
                                                    line: Line, sparkplug_decoder: ModuleType,
                                                    sparkplug_recorder: Callable[..., Any]
                                                    ) -> None:
    dec = sparkplug_decoder
    async with sparkplug_recorder(mosquitto) as rec:
        node = await started(config(mosquitto, tmp_path, mqtt=mqtt), line, rec)
        try:
            # the TCP connection dies without DISCONNECT: the broker sends the Will
            sock = node._client._client.socket()  # type: ignore[union-attr]
            sock.shutdown(socket.SHUT_RDWR)
            deaths = await rec.wait_for("NDEATH")
            death = dec.decode(deaths[0].payload)
            assert death.seq is None
            assert death.by_name()["bdSeq"].value == 0
            assert death.by_name()["bdSeq"].datatype == 4
            # the node reconnects with the next bdSeq and is born again
            births = await rec.wait_for("NBIRTH", 2, timeout_s=8)
            second = dec.decode(births[1].payload)
            assert second.seq == 0 and second.by_name()["bdSeq"].value == 1
            assert node.status()["bd_seq"] == 1
        finally:
            await node.aclose()


@pytest.mark.parametrize("mqtt", ["3.1.1", "5"])
async def test_aclose_publishes_ndeath_then_disconnects(mqtt: str, mosquitto: Any,
                                                        tmp_path: Path, line: Line,
                                                        sparkplug_decoder: ModuleType,
                                                        sparkplug_recorder: Callable[..., Any]
                                                        ) -> None:
    dec = sparkplug_decoder
    async with sparkplug_recorder(mosquitto) as rec:
        node = await started(config(mosquitto, tmp_path, mqtt=mqtt), line, rec)
        bd = dec.decode(rec.on("NBIRTH")[0].payload).by_name()["bdSeq"].value
        await node.aclose()
        # 3.1.1: the clean DISCONNECT drops the Will, only the node's own NDEATH arrives;
        # 5: DISCONNECT reason 0x04 "with Will Message", so the broker publishes it too
        expected = 2 if mqtt == "5" else 1
        deaths = await rec.wait_for("NDEATH", expected)
        await asyncio.sleep(0.3)
        assert len(rec.on("NDEATH")) == expected
        assert [dec.decode(d.payload).by_name()["bdSeq"].value for d in deaths] == [bd] * expected
    log = mosquitto.log.read_text()
    assert "edge-line-1 disconnected" in log or "Client edge-line-1 disconnected" in log


async def test_rebirth_on_ncmd(mosquitto: Any, tmp_path: Path, line: Line,
                               sparkplug_decoder: ModuleType,
                               sparkplug_recorder: Callable[..., Any]) -> None:
    dec = sparkplug_decoder
    async with sparkplug_recorder(mosquitto) as rec:
        node = await started(config(mosquitto, tmp_path), line, rec)
        try:
            bus_set(line, "plc", count=5)
            await scan(line, node)
            await rec.wait_for("DDATA")
            cmd = dec.encode([dec.encode_metric(name="Node Control/Rebirth", datatype=11,
                                                value=True)])
            await rec.client.publish(f"spBv1.0/{GROUP}/NCMD/line-1", cmd, qos=0)
            births = await rec.wait_for("NBIRTH", 2)
            await rec.wait_for("DBIRTH", 4)
            again = dec.decode(births[1].payload)
            assert again.seq == 0 and again.by_name()["bdSeq"].value == 0  # same session
            later = [dec.decode(m.payload).seq for m in rec.on("DBIRTH")[2:]]
            assert sorted(later) == [1, 2]
            bus_set(line, "plc", count=6)
            await scan(line, node)
            data = await rec.wait_for("DDATA", 2)
            assert dec.decode(data[1].payload).seq == 3
            # other NCMD metrics and garbage are ignored, the node lives on
            await rec.client.publish(f"spBv1.0/{GROUP}/NCMD/line-1", b"\xff\xff\xff", qos=0)
            await rec.client.publish(f"spBv1.0/{GROUP}/DCMD/line-1/plc", b"\x0a\x05", qos=0)
            bus_set(line, "plc", count=7)
            await scan(line, node)
            await rec.wait_for("DDATA", 3)
            assert node.status()["connected"] is True
        finally:
            await node.aclose()


async def test_primary_host_state(mosquitto: Any, tmp_path: Path, line: Line,
                                  sparkplug_decoder: ModuleType,
                                  sparkplug_recorder: Callable[..., Any]) -> None:
    dec = sparkplug_decoder
    state_topic = "spBv1.0/STATE/scada-1"

    def state(online: bool, ts: int) -> bytes:
        return json.dumps({"online": online, "timestamp": ts}).encode()

    async with sparkplug_recorder(mosquitto) as rec:
        await rec.client.publish(state_topic, state(False, 1000), qos=1, retain=True)
        cfg = config(mosquitto, tmp_path, primary_host="scada-1")
        node = await started(cfg, line, rec, births=False)
        try:
            bus_set(line, "plc", count=100)
            await scan(line, node)  # buffered: the host is offline
            await asyncio.sleep(0.4)
            assert rec.on("NBIRTH") == [] and rec.on("DDATA") == []
            assert node.status()["buffered"] == 1
            await rec.client.publish(state_topic, state(True, 2000), qos=1, retain=True)
            await rec.wait_for("DDATA")
            verbs = [v for v in rec.verbs() if v != "STATE"]
            assert verbs[:4] == ["NBIRTH", "DBIRTH", "DBIRTH", "DDATA"]
            replay = dec.decode(rec.on("DDATA")[0].payload)
            assert [m.is_historical for m in replay.metrics] == [True]
            assert replay.metrics[0].value == 100
            # an older offline STATE is ignored
            await rec.client.publish(state_topic, state(False, 1500), qos=1, retain=True)
            await asyncio.sleep(0.3)
            assert rec.on("NDEATH") == []
            # a newer offline: NDEATH, reconnect, wait for online again
            await rec.client.publish(state_topic, state(False, 3000), qos=1, retain=True)
            deaths = await rec.wait_for("NDEATH")
            assert dec.decode(deaths[0].payload).by_name()["bdSeq"].value == 0
            bus_set(line, "plc", count=101)
            await asyncio.sleep(0.4)
            await scan(line, node)
            assert len(rec.on("NBIRTH")) == 1
            await rec.client.publish(state_topic, state(True, 4000), qos=1, retain=True)
            births = await rec.wait_for("NBIRTH", 2)
            assert dec.decode(births[1].payload).by_name()["bdSeq"].value == 1
            data = await rec.wait_for("DDATA", 2)
            assert dec.decode(data[1].payload).metrics[0].value == 101
        finally:
            await node.aclose()


async def test_dcmd_writes_through_the_guard(mosquitto: Any, tmp_path: Path, line: Line,
                                             audit: AuditList, sparkplug_decoder: ModuleType,
                                             sparkplug_recorder: Callable[..., Any]) -> None:
    dec = sparkplug_decoder
    bus = {d: line.io.driver(d).bus for d in ("plc", "press")}  # type: ignore[attr-defined]
    async with sparkplug_recorder(mosquitto) as rec:
        node = await started(config(mosquitto, tmp_path), line, rec)
        try:
            metrics = {m.name: m for b in rec.on("DBIRTH") for m in dec.decode(b.payload).metrics}
            # by alias (as a host must), on the press
            cmd = dec.encode([dec.encode_metric(alias=metrics["mode"].alias, datatype=6,
                                                value=7)])
            await rec.client.publish(f"spBv1.0/{GROUP}/DCMD/line-1/press", cmd, qos=0)
            # by name, on the plc: one within limits, one over them, one read-only
            cmd = dec.encode([dec.encode_metric(name="setpoint", datatype=10, value=42.5),
                              dec.encode_metric(name="temp", datatype=10, value=99.0)])
            await rec.client.publish(f"spBv1.0/{GROUP}/DCMD/line-1/plc", cmd, qos=0)
            cmd = dec.encode([dec.encode_metric(alias=metrics["setpoint"].alias, datatype=10,
                                                value=150.0)])
            await rec.client.publish(f"spBv1.0/{GROUP}/DCMD/line-1/plc", cmd, qos=0)
            deadline = time.monotonic() + 5
            while len([e for e in audit.entries if e["source"] == "sparkplug:DCMD"]) < 4:
                assert time.monotonic() < deadline, audit.entries
                await asyncio.sleep(0.02)
            assert bus["press"].values["mode"] == 7
            assert bus["plc"].values["setpoint"] == 42.5
            assert bus["plc"].values["temp"] == 20.0
            entries = {(e["tag"], e["value"]): e for e in audit.entries}
            assert entries[("mode", 7)]["outcome"] == "ok"
            assert entries[("setpoint", 42.5)]["outcome"] == "ok"
            assert entries[("setpoint", 42.5)]["old"] == 10.0
            assert entries[("temp", 99.0)]["outcome"] == "refused"
            assert entries[("setpoint", 150.0)]["outcome"] == "refused"
            assert all(e["source"] == "sparkplug:DCMD" for e in audit.entries)
            assert node.status()["connected"] is True
        finally:
            await node.aclose()


async def test_device_death_and_rebirth(mosquitto: Any, tmp_path: Path, line: Line,
                                        sparkplug_decoder: ModuleType,
                                        sparkplug_recorder: Callable[..., Any]) -> None:
    dec = sparkplug_decoder
    bus = line.io.driver("press").bus  # type: ignore[attr-defined]
    async with sparkplug_recorder(mosquitto) as rec:
        node = await started(config(mosquitto, tmp_path), line, rec)
        try:
            bus.garbage = True  # every read of the press fails: its tags go BAD
            for _ in range(3):
                await scan(line, node)
            assert line.image.get("force").quality is Quality.BAD
            deaths = await rec.wait_for("DDEATH")
            assert deaths[0].topic.endswith("/DDEATH/line-1/press")
            # the BAD samples went out before the DDEATH, null with Quality 0
            bad = dec.decode(rec.on("DDATA")[-1].payload)
            assert all(m.is_null and m.properties == {"Quality": 0} for m in bad.metrics)
            bus.garbage = False
            bus_set(line, "press", force=4.0)
            deadline = time.monotonic() + 5  # the driver reconnects after its backoff
            while line.image.get("force").quality is not Quality.GOOD:
                assert time.monotonic() < deadline
                await scan(line, node)
                await asyncio.sleep(0.05)
            await scan(line, node)
            births = await rec.wait_for("DBIRTH", 3)
            again = dec.decode(births[2].payload).by_name()
            assert again["force"].value == 4.0
            seqs = [dec.decode(m.payload).seq for m in rec.messages
                    if m.topic.split("/")[2] in ("NBIRTH", "DBIRTH", "DDATA", "DDEATH")]
            assert all(b == (a + 1) % 256 for a, b in itertools.pairwise(seqs))
        finally:
            await node.aclose()


async def test_two_nodes_on_one_broker(mosquitto: Any, tmp_path: Path, line: Line,
                                       sparkplug_decoder: ModuleType,
                                       sparkplug_recorder: Callable[..., Any]) -> None:
    dec = sparkplug_decoder
    async with sparkplug_recorder(mosquitto) as rec:
        a = await started(config(mosquitto, tmp_path, node="line-a"), line, rec)
        b = await started(config(mosquitto, tmp_path, node="line-b", devices=("press",)),
                          line, rec)
        try:
            for k in range(5):
                bus_set(line, "press", force=10.0 + k)
                await line.read()
                await a.step(0)
                await b.step(0)
            await rec.wait(lambda ms: len([m for m in ms if "/DDATA/" in m.topic]) >= 10)
        finally:
            await a.aclose()
            await b.aclose()
    per_node: dict[str, list[int]] = {}
    for m in rec.messages:
        parts = m.topic.split("/")
        if parts[2] in ("NBIRTH", "DBIRTH", "DDATA"):
            per_node.setdefault(parts[3], []).append(dec.decode(m.payload).seq)
    assert per_node["line-a"] == list(range(3 + 5))
    assert per_node["line-b"] == list(range(2 + 5))
    assert {m.topic for m in rec.on("NBIRTH")} == {f"spBv1.0/{GROUP}/NBIRTH/line-a",
                                                   f"spBv1.0/{GROUP}/NBIRTH/line-b"}
    assert len(rec.on("NDEATH")) == 2


async def test_tls_and_password(mosquitto_tls: Any, tmp_path: Path, line: Line,
                                sparkplug_decoder: ModuleType,
                                sparkplug_recorder: Callable[..., Any]) -> None:
    broker = mosquitto_tls
    tls = nb.TlsConfig(ca=broker.tls.ca, certificate=None, private_key=None, insecure=False)
    cfg = config(broker, tmp_path, tls=tls, user="edge", password_env="EDGE_PW")
    with pytest.raises(ConfigError, match="EDGE_PW is not set"):
        await EdgeNode(cfg, line, clock=line.clock, env={}).start()
    async with sparkplug_recorder(broker, username="host", password="s3cret-host") as rec:
        node = await started(cfg, line, rec, env={"EDGE_PW": "s3cret-edge"})
        try:
            bus_set(line, "plc", count=77)
            await scan(line, node)
            data = await rec.wait_for("DDATA")
            assert 77 in [m.value for m in sparkplug_decoder.decode(data[0].payload).metrics]
        finally:
            await node.aclose()
        # a wrong password never connects: the node keeps buffering, no traceback
        bad = EdgeNode(replace(cfg, node="line-x", client_id="edge-x"), line, clock=line.clock,
                       env={"EDGE_PW": "wrong"})
        await bad.start()
        bus_set(line, "plc", count=78)
        await scan(line, bad)
        await asyncio.sleep(0.5)
        assert bad.status()["connected"] is False and bad.status()["buffered"] == 1
        await bad.aclose()
        assert not [m for m in rec.messages if "line-x" in m.topic]


async def test_broker_down_buffers_then_replays(mosquitto: Any, tmp_path: Path, line: Line,
                                                sparkplug_decoder: ModuleType,
                                                sparkplug_recorder: Callable[..., Any]) -> None:
    dec = sparkplug_decoder
    mosquitto.stop()
    # the next attempt comes 2 s after the first failed one: the recorder is there by then
    node = EdgeNode(config(mosquitto, tmp_path), line, clock=line.clock, backoff_s=(2.0, 2.0))
    await node.start()  # never raises for a broker that is down
    try:
        for k in range(5):
            bus_set(line, "plc", count=200 + k)
            await scan(line, node)
        assert node.status()["buffered"] == 5
        mosquitto.start()
        async with sparkplug_recorder(mosquitto) as rec:
            await rec.wait_for("DDATA", timeout_s=15)
            replay = dec.decode(rec.on("DDATA")[0].payload)
            assert [m.value for m in replay.metrics] == [200, 201, 202, 203, 204]
            assert all(m.is_historical for m in replay.metrics)
            assert node.status()["buffered"] == 0
            bus_set(line, "plc", count=300)
            await scan(line, node)
            live = dec.decode((await rec.wait_for("DDATA", 2))[1].payload)
            assert [(m.value, m.is_historical) for m in live.metrics] == [(300, False)]
    finally:
        await node.aclose()
