"""The ``northbound:`` section of a line file: typed, checked against the line, every
problem located, and part of ``smartline check``."""

from __future__ import annotations

from pathlib import Path

import pytest

from smartline.config import KINDS, check_file, load_line
from smartline.core import ConfigError
from smartline.northbound._config import FILE_KINDS, load_northbound

LINE = """\
smartline: 1
line: nb
devices:
  plc: {{url: "memory://nb"}}
tags:
  a: {{device: plc, address: "a"}}
northbound:
{section}
"""

GOOD = """\
  sparkplug:
    broker: "mqtts://broker.example:8883"
    group: plant-1
    node: line-1
    primary_host: scada-1
    store: {path: store, max_mb: 64}
    user: {name: edge, password_env: EDGE_PW}
    tls: {ca: ca.pem}
  opcua:
    endpoint: "opc.tcp://0.0.0.0:4840/smartline/"
    certificate: server.der
    private_key: server.pem
    users: {op: {password_env: OP_PW, role: operator}}
"""


def _line(tmp_path: Path, section: str) -> Path:
    p = tmp_path / "line.yaml"
    p.write_text(LINE.format(section=section), encoding="utf-8")
    for name in ("ca.pem", "server.der", "server.pem"):
        (tmp_path / name).write_text("x")
    return p


def test_a_good_section_is_typed_with_paths_from_the_line_file(tmp_path: Path) -> None:
    p = _line(tmp_path, GOOD)
    nb = load_northbound(load_line(p))
    sp, ua = nb.sparkplug, nb.opcua
    assert sp is not None and ua is not None
    assert (sp.host, sp.port, sp.group, sp.node) == ("broker.example", 8883, "plant-1", "line-1")
    assert sp.tls is not None and sp.tls.ca == tmp_path / "ca.pem"
    assert sp.store.path == tmp_path / "store" and sp.store.max_bytes == 64 * 1024 * 1024
    assert sp.devices == ("plc",) and sp.user == "edge" and sp.password_env == "EDGE_PW"
    assert ua.security == "sign-and-encrypt" and ua.certificate == tmp_path / "server.der"
    assert [(u.name, u.role) for u in ua.users] == [("op", "operator")]


@pytest.mark.parametrize(("section", "where", "message"), [
    ("  sparkplug: {broker: 'http://x', group: g, node: n, store: {path: s}}",
     "northbound.sparkplug.broker", "should match pattern"),
    ("  sparkplug: {broker: 'mqtt://x', group: 'a/b', node: n, store: {path: s}}",
     "northbound.sparkplug.group", "should match pattern"),
    ("  sparkplug: {broker: 'mqtt://x', group: g, node: n}",
     "northbound.sparkplug", "store"),
    ("  sparkplug: {broker: 'mqtt://x', group: g, node: n, store: {path: s},"
     " devices: [nope]}", "northbound.sparkplug.devices[0]", "unknown device 'nope'"),
    ("  opcua: {endpoint: 'opc.tcp://0.0.0.0:4840'}",
     "northbound.opcua", "needs the server's certificate and private_key"),
    ("  opcua: {endpoint: 'opc.tcp://0.0.0.0:4840', security: none, colour: red}",
     "northbound.opcua.colour", "colour"),
    ("  mqtt: {}", "northbound.mqtt", "mqtt"),
])
def test_bad_sections_are_located(tmp_path: Path, section: str, where: str,
                                  message: str) -> None:
    p = _line(tmp_path, section)
    with pytest.raises(ConfigError) as err:
        load_northbound(load_line(p))
    text = "\n".join(i.format() for i in err.value.issues)
    assert f"{p}:" in text and where in text and message in text, text
    issue = err.value.issues[0]
    assert issue.line is not None and issue.line >= 8  # inside the northbound section


def test_smartline_check_reports_the_section(tmp_path: Path) -> None:
    p = _line(tmp_path, GOOD)
    summary = check_file(p, kinds={**KINDS, **FILE_KINDS})
    assert "north-bound: Sparkplug B plant-1/line-1 via mqtts://broker.example:8883" in summary
    assert "OPC UA server opc.tcp://0.0.0.0:4840/smartline/ (sign-and-encrypt)" in summary
    bad = _line(tmp_path, "  opcua: {endpoint: 'opc.tcp://0.0.0.0:4840'}")
    with pytest.raises(ConfigError):
        check_file(bad, kinds={**KINDS, **FILE_KINDS})
