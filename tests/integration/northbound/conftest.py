"""Fixtures of the north-bound integration tests: a real mosquitto broker on a free
127.0.0.1 port (plain, persistent, TLS + password), restartable on the same port, a
subscriber that records every Sparkplug message, and the independent payload decoder
(tests/northbound_decoder.py, never smartline's generated protobuf code)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import aiomqtt
import pytest

import northbound_decoder

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
STARTUP_S = 10.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class TlsFiles:
    """A CA and a server certificate for 127.0.0.1/localhost, PEM files in a folder."""

    ca: Path
    certificate: Path
    private_key: Path


def make_tls(folder: Path) -> TlsFiles:
    """A throw-away CA and a server certificate it signed (``cryptography``)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "smartline test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                       crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False,
                                       decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    files = TlsFiles(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.certificate.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.private_key.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return files


@dataclass
class Mosquitto:
    """A mosquitto broker on 127.0.0.1:``port``; ``restart()`` keeps the port (and, when
    ``persistent``, the retained messages and persistent sessions)."""

    folder: Path
    port: int = field(default_factory=free_port)
    persistent: bool = False
    tls: TlsFiles | None = None
    users: dict[str, str] = field(default_factory=dict)
    host: str = "127.0.0.1"
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    @property
    def log(self) -> Path:
        return self.folder / "mosquitto.log"

    def _config(self) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        lines = [f"listener {self.port} {self.host}", "user root" if _root() else "",
                 f"log_dest file {self.log}", "log_type error", "log_type warning",
                 "log_type notice", "log_type information", "connection_messages true"]
        if self.persistent:
            lines += ["persistence true", f"persistence_location {self.folder}/",
                      "autosave_interval 0"]
        else:
            lines += ["persistence false"]
        if self.users:
            pw = self.folder / "passwd"
            pw.write_text("", encoding="utf-8")
            for name, password in self.users.items():
                subprocess.run([MOSQUITTO_PASSWD, "-b", str(pw), name, password], check=True,
                               capture_output=True)
            lines += ["allow_anonymous false", f"password_file {pw}"]
        else:
            lines += ["allow_anonymous true"]
        if self.tls is not None:
            lines += [f"cafile {self.tls.ca}", f"certfile {self.tls.certificate}",
                      f"keyfile {self.tls.private_key}"]
        conf = self.folder / "mosquitto.conf"
        conf.write_text("\n".join(x for x in lines if x) + "\n", encoding="utf-8")
        return conf

    def start(self) -> None:
        """Start and wait until the port accepts connections."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        conf = self._config()
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + STARTUP_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                log = self.log.read_text(errors="replace") if self.log.exists() else ""
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}: {err}{log}")
            with contextlib.suppress(OSError), socket.create_connection(
                    (self.host, self.port), timeout=0.2):
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on {self.port} within {STARTUP_S} s")

    def stop(self) -> None:
        """SIGTERM (a clean shutdown: persistent brokers save their database), then wait."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def kill(self) -> None:
        """SIGKILL: the broker vanishes without a word."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(5)

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def _root() -> bool:
    import os
    return hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture
def mosquitto_factory(tmp_path: Path) -> Iterator[Callable[..., Mosquitto]]:
    """``mosquitto_factory(persistent=False, tls=None, users={})`` → a started broker
    (each in its own folder; all stopped at teardown)."""
    made: list[Mosquitto] = []

    def make(**kw: Any) -> Mosquitto:
        b = Mosquitto(tmp_path / f"mosquitto-{len(made)}", **kw)
        made.append(b)
        b.start()
        return b

    yield make
    for b in made:
        b.stop()


@pytest.fixture
def mosquitto(mosquitto_factory: Callable[..., Mosquitto]) -> Mosquitto:
    """A plain broker: anonymous, no persistence."""
    return mosquitto_factory()


@pytest.fixture
def mosquitto_persistent(mosquitto_factory: Callable[..., Mosquitto]) -> Mosquitto:
    """A broker keeping retained messages and persistent sessions across ``restart()``."""
    return mosquitto_factory(persistent=True)


@pytest.fixture
def mosquitto_tls(mosquitto_factory: Callable[..., Mosquitto], tmp_path: Path) -> Mosquitto:
    """TLS only (CA in ``broker.tls.ca``) with one user: ``edge`` / ``s3cret-edge``."""
    return mosquitto_factory(tls=make_tls(tmp_path / "pki"), users={"edge": "s3cret-edge",
                                                                    "host": "s3cret-host"})


@pytest.fixture
def sparkplug_decoder() -> ModuleType:
    """The independent Sparkplug B decoder/encoder (tests/northbound_decoder.py)."""
    return northbound_decoder


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool
    time_ns: int


class Recorder:
    """Every message on the subscribed filters, in arrival order (a host's view)."""

    def __init__(self) -> None:
        self.messages: list[Received] = []
        self._event = asyncio.Event()
        self.client: aiomqtt.Client | None = None

    def on(self, kind: str) -> list[Received]:
        """Messages whose topic has ``kind`` (NBIRTH, DDATA, …) as its verb."""
        return [m for m in self.messages if m.topic.split("/")[2:3] == [kind]]

    def verbs(self) -> list[str]:
        return [m.topic.split("/")[2] for m in self.messages if m.topic.count("/") >= 3]

    async def wait(self, predicate: Callable[[list[Received]], bool],
                   timeout_s: float = 5.0) -> None:
        """Until ``predicate(messages)`` holds (AssertionError with the topics if never)."""
        deadline = time.monotonic() + timeout_s
        while not predicate(self.messages):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("timed out; got " + ", ".join(
                    m.topic for m in self.messages[-30:]))
            self._event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), min(left, 0.1))

    async def wait_for(self, kind: str, count: int = 1, timeout_s: float = 5.0) -> list[Received]:
        await self.wait(lambda ms: len([m for m in ms if m.topic.split("/")[2:3] == [kind]])
                        >= count, timeout_s)
        return self.on(kind)

    def _add(self, m: aiomqtt.Message) -> None:
        payload = m.payload if isinstance(m.payload, bytes | bytearray) else b""
        self.messages.append(Received(str(m.topic), bytes(payload), bool(m.retain),
                                      time.perf_counter_ns()))
        self._event.set()


@contextlib.asynccontextmanager
async def record(broker: Mosquitto, *filters: str, username: str | None = None,
                 password: str | None = None, identifier: str | None = None
                 ) -> AsyncIterator[Recorder]:
    """Subscribe (QoS 1) to ``filters`` (default ``spBv1.0/#``) and record until exit."""
    rec = Recorder()
    tls = None
    if broker.tls is not None:
        import ssl
        tls = ssl.create_default_context(cafile=str(broker.tls.ca))
    async with aiomqtt.Client(broker.host, broker.port, identifier=identifier,
                              username=username, password=password, tls_context=tls) as c:
        rec.client = c
        for f in filters or ("spBv1.0/#",):
            await c.subscribe(f, qos=1)

        async def pump() -> None:
            async for m in c.messages:
                rec._add(m)

        task = asyncio.create_task(pump())
        try:
            yield rec
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task


@pytest.fixture
def sparkplug_recorder() -> Callable[..., contextlib.AbstractAsyncContextManager[Recorder]]:
    """``async with sparkplug_recorder(broker, *filters) as rec:`` records messages."""
    return record
