"""Shared pieces of the OPC UA integration tests: a client PKI and a spec maker."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from smartline.core import DeviceSpec, RetryPolicy, parse_url
from smartline.drivers.opcua.certs import create_certificate, trust_certificate
from smartline.hil.opcua import OpcUaSim, SimVariable

VARIABLES = [
    SimVariable("Line.Flag", "ns=2;s=Line.Flag", False, "Boolean", True),
    SimVariable("Line.Small", "ns=2;s=Line.Small", -7, "Int16", True),
    SimVariable("Line.Count", "ns=2;s=Line.Count", 100000, "Int32", True),
    SimVariable("Line.Total", "ns=2;s=Line.Total", -(2 ** 62), "Int64", True),
    SimVariable("Line.Serial", "ns=2;s=Line.Serial", 2 ** 64 - 2, "UInt64", True),
    SimVariable("Line.Ratio", "ns=2;s=Line.Ratio", 0.5, "Float", True),
    SimVariable("Line.Temp", "ns=2;s=Line.Temp", 21.25, "Double", True),
    SimVariable("Line.Recipe", "ns=2;s=Line.Recipe", "cola", "String", True),
    SimVariable("Line.Locked", "ns=2;s=Line.Locked", 5.0, "Double", False),
    SimVariable("Line.Id", "ns=2;i=1001", 42, "UInt32", True),
]


@dataclass(frozen=True)
class Pki:
    """A client certificate and a trust list of this test module."""

    root: Path
    certificate: Path
    private_key: Path
    trusted: Path

    def trust(self, sim: OpcUaSim) -> None:
        trust_certificate(sim.certificate, self.trusted)

    def options(self, **extra: Any) -> dict[str, Any]:
        return {"certificate": str(self.certificate), "private_key": str(self.private_key),
                "trust": str(self.trusted), **extra}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("pki")
    cert, key = root / "own" / "cert.der", root / "own" / "key.pem"
    create_certificate(cert, key, application_uri="urn:smartline:test-client",
                       common_name="smartline test client", hostnames=["localhost"])
    return Pki(root, cert, key, root / "trusted")


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the user's own PKI folder."""
    monkeypatch.setenv("SMARTLINE_STATE_DIR", str(tmp_path / "state"))


@pytest.fixture(autouse=True)
def quiet_asyncua() -> Iterator[None]:
    """asyncua logs every provoked fault with a traceback: keep the output readable."""
    logger = logging.getLogger("asyncua")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


def make_spec(url: str, options: dict[str, Any], *, timeout_s: float = 2.0,
              username: str | None = None, password: str | None = None,
              name: str = "ua") -> DeviceSpec:
    return DeviceSpec(name=name, url=parse_url(url), timeout_s=timeout_s,
                      retry=RetryPolicy(backoff_initial_s=0.05, backoff_max_s=0.3,
                                        demote_period_s=0.3),
                      options=options, username=username, password=password)
