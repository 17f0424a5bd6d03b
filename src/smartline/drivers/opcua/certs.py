"""Application instance certificates and the trust list (OPC 10000-4 §6.1, 10000-6 §6.2).

``smartline certs create`` and ``smartline certs trust FILE`` call these; the OPC UA driver
uses :func:`default_pki_dir` for its own certificate and trust list when a device names
none. The layout under the PKI folder::

    own/cert.der     this application's certificate (DER)
    own/key.pem      its private key (PEM, unencrypted; keep the folder private)
    trusted/         trusted peer certificates, DER, named <SHA-1 thumbprint>.der
    rejected/        certificates of servers that were refused, to trust them by hand
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ...core import state_dir

__all__ = [
    "create_certificate",
    "default_application_uri",
    "default_pki_dir",
    "load_certificate",
    "thumbprint",
    "trust_certificate",
]


def default_pki_dir() -> Path:
    """``$SMARTLINE_STATE_DIR/pki``, else ``~/.local/state/smartline/pki``."""
    return state_dir() / "pki"


def default_application_uri() -> str:
    """``urn:smartline:<hostname>``: the ApplicationUri this installation presents."""
    return f"urn:smartline:{socket.gethostname()}"


def create_certificate(cert_path: Path, key_path: Path, *, application_uri: str,
                       common_name: str, hostnames: Sequence[str] = (),
                       days: int = 730) -> None:
    """Write a self-signed application instance certificate (DER) and its key (PEM).

    RSA 2048, SHA-256; subjectAltName holds ``application_uri`` and ``hostnames`` (DNS
    names, or IP addresses where they parse as one); key usages digitalSignature,
    nonRepudiation, keyEncipherment, dataEncipherment; extended usages serverAuth and
    clientAuth; basicConstraints CA false — what OPC 10000-6 §6.2.2 asks of an
    application instance certificate.
    """
    if days < 1:
        raise ValueError(f"days must be at least 1, found {days}")
    if not application_uri:
        raise ValueError("application_uri must not be empty")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    alt: list[x509.GeneralName] = [x509.UniformResourceIdentifier(application_uri)]
    for host in hostnames:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt.append(x509.DNSName(host))
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=True, key_encipherment=True,
            data_encipherment=True, key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                              ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path = Path(cert_path)
    key_path = Path(key_path)
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    key_path.parent.mkdir(parents=True, exist_ok=True)
    key_bytes = key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.TraditionalOpenSSL,
                                  serialization.NoEncryption())
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_bytes)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.DER))


def load_certificate(data: bytes) -> x509.Certificate:
    """An X.509 certificate from DER or PEM bytes; ``ValueError`` if it is neither."""
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


def thumbprint(cert: x509.Certificate) -> str:
    """The SHA-1 thumbprint of the DER encoding, lower-case hex (OPC UA's identifier)."""
    return cert.fingerprint(hashes.SHA1()).hex()


def trust_certificate(cert_file: Path, trust_dir: Path) -> Path:
    """Add ``cert_file`` (X.509, DER or PEM) to the trust list ``trust_dir``.

    Stored as DER named by its SHA-1 thumbprint (``<hex>.der``); returns that path. A file
    that is not a certificate raises ``ValueError`` naming it.
    """
    cert_file = Path(cert_file)
    data = cert_file.read_bytes()
    try:
        cert = load_certificate(data)
    except ValueError as exc:
        raise ValueError(f"{cert_file} is not an X.509 certificate (DER or PEM): {exc}"
                         ) from None
    trust_dir = Path(trust_dir)
    trust_dir.mkdir(parents=True, exist_ok=True)
    target = trust_dir / f"{thumbprint(cert)}.der"
    target.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    return target
