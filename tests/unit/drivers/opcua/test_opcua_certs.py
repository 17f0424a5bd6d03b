"""Application instance certificates and the trust list (smartline.drivers.opcua.certs)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from smartline.drivers.opcua.certs import (
    create_certificate,
    default_application_uri,
    default_pki_dir,
    trust_certificate,
)


@pytest.fixture
def made(tmp_path: Path) -> tuple[x509.Certificate, Path, Path]:
    cert, key = tmp_path / "own" / "cert.der", tmp_path / "own" / "key.pem"
    create_certificate(cert, key, application_uri="urn:smartline:test",
                       common_name="smartline test", hostnames=["plc-gw", "10.0.0.7"], days=30)
    return x509.load_der_x509_certificate(cert.read_bytes()), cert, key


def test_certificate_has_what_opc_ua_asks_for(made: tuple[x509.Certificate, Path, Path]
                                              ) -> None:
    cert, _, key_path = made
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["urn:smartline:test"]
    assert san.get_values_for_type(x509.DNSName) == ["plc-gw"]
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["10.0.0.7"]
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert (usage.digital_signature, usage.content_commitment, usage.key_encipherment,
            usage.data_encipherment) == (True, True, True, True)
    assert not usage.key_cert_sign
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.value.ca is False and basic.critical
    days = (cert.not_valid_after_utc - cert.not_valid_before_utc).days
    assert 30 <= days <= 31
    cn = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    assert cn == "smartline test"


def test_private_key_is_private(made: tuple[x509.Certificate, Path, Path]) -> None:
    _, _, key = made
    assert key.stat().st_mode & 0o077 == 0


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="days"):
        create_certificate(tmp_path / "c", tmp_path / "k", application_uri="urn:x",
                           common_name="x", days=0)


def test_trust_stores_der_named_by_thumbprint(made: tuple[x509.Certificate, Path, Path],
                                              tmp_path: Path) -> None:
    cert, cert_path, _ = made
    thumb = cert.fingerprint(hashes.SHA1()).hex()
    stored = trust_certificate(cert_path, tmp_path / "trusted")
    assert stored == tmp_path / "trusted" / f"{thumb}.der"
    assert stored.read_bytes() == cert.public_bytes(serialization.Encoding.DER)
    pem = tmp_path / "cert.pem"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    assert trust_certificate(pem, tmp_path / "trusted2").read_bytes() == stored.read_bytes()


def test_trust_refuses_what_is_not_a_certificate(tmp_path: Path) -> None:
    junk = tmp_path / "junk.der"
    junk.write_bytes(b"not a certificate")
    with pytest.raises(ValueError, match=r"junk\.der is not an X\.509 certificate"):
        trust_certificate(junk, tmp_path / "trusted")
    assert not (tmp_path / "trusted").exists() or not any((tmp_path / "trusted").iterdir())


def test_default_locations(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SMARTLINE_STATE_DIR", str(tmp_path))
    assert default_pki_dir() == tmp_path / "pki"
    monkeypatch.delenv("SMARTLINE_STATE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_pki_dir() == tmp_path / "home" / ".local" / "state" / "smartline" / "pki"
    assert default_application_uri() == f"urn:smartline:{socket.gethostname()}"
