"""The opcua family's device options: security by default, ``security: none`` as the one
way out, located errors naming ``security``."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from smartline.config import load_line
from smartline.core import ConfigError
from smartline.drivers.families.opcua import OpcUaOptions, OpcUaSecurity


def test_defaults_are_secure_and_subscribing() -> None:
    o = OpcUaOptions.model_validate({})
    assert o.security is None  # the strongest the server offers
    assert o.subscribe and not o.trust_on_first_use and o.deadband == 0


@pytest.mark.parametrize("given", ["none", {"policy": "None", "mode": "None"}])
def test_security_none(given: object) -> None:
    o = OpcUaOptions.model_validate({"security": given})
    assert o.security == "none" or (isinstance(o.security, OpcUaSecurity) and o.security.none)


@pytest.mark.parametrize("policy", ["Basic256Sha256", "Aes128_Sha256_RsaOaep",
                                    "Aes256_Sha256_RsaPss", "Aes256Sha256RsaPss"])
def test_policies_by_their_names(policy: str) -> None:
    o = OpcUaOptions.model_validate({"security": {"policy": policy, "mode": "Sign"}})
    assert isinstance(o.security, OpcUaSecurity) and o.security.policy == policy


@pytest.mark.parametrize("bad", ["None", "off", {"policy": "Basic128Rsa15", "mode": "Sign"},
                                 {"policy": "Basic256Sha256"}, {"policy": "None", "mode": "Sign"}])
def test_bad_security_is_refused_naming_the_key(bad: object) -> None:
    with pytest.raises(ValidationError) as info:
        OpcUaOptions.model_validate({"security": bad})
    assert all(e["loc"][0] == "security" for e in info.value.errors())


def test_line_file_errors_name_security(tmp_path: Path) -> None:
    line = tmp_path / "line.yaml"
    line.write_text("smartline: 1\nline: l\ndevices:\n  d: {url: 'opc.tcp://127.0.0.1:4840', "
                    "security: off}\ntags: {}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_line(line)
    assert "security" in str(info.value)


def test_files_in_security_are_relative_to_the_line_file(tmp_path: Path) -> None:
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "c.der").write_bytes(b"x")
    (tmp_path / "certs" / "k.pem").write_bytes(b"x")
    line = tmp_path / "line.yaml"
    line.write_text("smartline: 1\nline: l\ndevices:\n  d: {url: 'opc.tcp://127.0.0.1:4840', "
                    "security: {certificate: certs/c.der, private_key: certs/k.pem}, "
                    "trust: pki/trusted, trust_on_first_use: true, deadband: 0.5}\n"
                    "tags: {}\n", encoding="utf-8")
    device = load_line(line).devices["d"]
    assert device.security["certificate"] == str(tmp_path / "certs" / "c.der")
    options = device.options
    assert isinstance(options, OpcUaOptions)
    assert options.trust == "pki/trusted" and options.trust_on_first_use
