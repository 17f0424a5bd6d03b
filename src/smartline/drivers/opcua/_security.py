"""Choosing the endpoint, the application certificate and the trust list of a connection."""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass, field
from pathlib import Path

from asyncua import ua
from asyncua.crypto import security_policies as sp
from cryptography import x509

from smartline.core import ConnectError

from ..families.opcua import POLICIES, OpcUaOptions, OpcUaSecurity
from .certs import (
    create_certificate,
    default_application_uri,
    default_pki_dir,
    load_certificate,
    thumbprint,
    trust_certificate,
)

__all__ = ["Channel", "choose_channel"]

log = logging.getLogger(__name__)

_BASE = "http://opcfoundation.org/UA/SecurityPolicy#"
#: strongest first (within a mode); SignAndEncrypt beats Sign whatever the policy
_RANK = ("Aes256_Sha256_RsaPss", "Basic256Sha256", "Aes128_Sha256_RsaOaep")
_CLASSES: dict[str, type[sp.SecurityPolicy]] = {
    "Basic256Sha256": sp.SecurityPolicyBasic256Sha256,
    "Aes128_Sha256_RsaOaep": sp.SecurityPolicyAes128Sha256RsaOaep,
    "Aes256_Sha256_RsaPss": sp.SecurityPolicyAes256Sha256RsaPss,
}
_MODES = {ua.MessageSecurityMode.Sign: "Sign",
          ua.MessageSecurityMode.SignAndEncrypt: "SignAndEncrypt"}


@dataclass(frozen=True, slots=True)
class Channel:
    """What the secure channel will use (``policy`` None: no security)."""

    policy: str | None = None
    mode: str | None = None
    policy_class: type[sp.SecurityPolicy] | None = None
    message_mode: ua.MessageSecurityMode = ua.MessageSecurityMode.None_
    certificate: Path | None = None
    private_key: Path | None = None
    application_uri: str | None = None
    server_certificate: bytes | None = field(default=None, repr=False)


def wants_no_security(options: OpcUaOptions) -> bool:
    sec = options.security
    return sec == "none" or (isinstance(sec, OpcUaSecurity) and sec.none)


def choose_channel(options: OpcUaOptions, security: dict[str, str], url: str,
                   endpoints: list[ua.EndpointDescription]) -> Channel:
    """The strongest secure endpoint offered (or the one asked for), its certificate
    checked against the trust list; ConnectError naming the key to change otherwise."""
    offered: list[tuple[str, ua.MessageSecurityMode, ua.EndpointDescription]] = []
    unsecured = False
    for ep in endpoints:
        uri = ep.SecurityPolicyUri or ""
        name = uri[len(_BASE):] if uri.startswith(_BASE) else uri
        if ep.SecurityMode == ua.MessageSecurityMode.None_ or name == "None":
            unsecured = True
        elif name in _CLASSES and ep.SecurityMode in _MODES:
            offered.append((name, ep.SecurityMode, ep))
    if not offered:
        if unsecured:
            raise ConnectError(
                f"{url} offers no secure endpoint (security policy None only); set "
                "'security: none' on the device to connect without security")
        raise ConnectError(f"{url} offers none of the security policies "
                           f"{', '.join(_RANK)}; check the server's endpoints")
    sec = options.security
    if isinstance(sec, OpcUaSecurity) and sec.policy is not None:
        policy = POLICIES[sec.policy]
        mode = {"Sign": ua.MessageSecurityMode.Sign,
                "SignAndEncrypt": ua.MessageSecurityMode.SignAndEncrypt}[str(sec.mode)]
        match = [o for o in offered if o[0] == policy and o[1] == mode]
        if not match:
            have = ", ".join(sorted({f"{n}/{_MODES[m]}" for n, m, _ in offered}))
            raise ConnectError(f"{url} does not offer security {policy}/{_MODES[mode]} "
                               f"(it offers {have}); change the device's 'security'")
        chosen = match[0]
    else:
        chosen = min(offered, key=lambda o: (o[1] != ua.MessageSecurityMode.SignAndEncrypt,
                                             _RANK.index(o[0])))
    name, mode, endpoint = chosen
    server_der = _first_certificate(bytes(endpoint.ServerCertificate or b""))
    pinned = security.get("server_certificate")
    _check_trust(options, url, server_der, Path(pinned) if pinned else None)
    cert, key = _own_certificate(options, security)
    app_uri = _application_uri(cert.read_bytes())
    return Channel(name, _MODES[mode], _CLASSES[name], mode, cert, key, app_uri, server_der)


def trust_dir(options: OpcUaOptions) -> Path:
    return Path(options.trust).absolute() if options.trust else default_pki_dir() / "trusted"


def _first_certificate(chain: bytes) -> bytes:
    """The leaf certificate of a DER chain (a DER SEQUENCE's own length)."""
    if len(chain) < 4 or chain[0] != 0x30:
        return chain
    first = chain[1]
    if first < 0x80:
        return chain[:2 + first]
    n = first & 0x7F
    length = int.from_bytes(chain[2:2 + n], "big")
    return chain[:2 + n + length]


def _check_trust(options: OpcUaOptions, url: str, server_der: bytes,
                 pinned: Path | None) -> None:
    if not server_der:
        raise ConnectError(f"{url} sent no server certificate with its secure endpoint")
    try:
        cert = load_certificate(server_der)
    except ValueError as exc:
        raise ConnectError(f"{url} sent a server certificate that does not parse: {exc}"
                           ) from None
    thumb = thumbprint(cert)
    if pinned is not None and _same(pinned, server_der):
        return
    folder = trust_dir(options)
    if (folder / f"{thumb}.der").is_file():
        return
    if folder.is_dir():
        for f in folder.iterdir():
            if f.suffix.lower() in (".der", ".pem", ".crt") and _same(f, server_der):
                return
    subject = cert.subject.rfc4514_string()
    if options.trust_on_first_use:
        stored = _store(server_der, folder, thumb)
        log.warning("trusting the certificate of %s on first use: %s (thumbprint %s), "
                    "stored as %s", url, subject, thumb, stored)
        return
    rejected = _store(server_der, default_pki_dir() / "rejected", thumb)
    raise ConnectError(
        f"the server certificate of {url} ({subject}, SHA-1 thumbprint {thumb}) is not "
        f"trusted (trust list {folder}); check it, then trust it with 'smartline certs "
        f"trust {rejected}' (the copy it sent; into {folder}), or set "
        "'trust_on_first_use: true' on the device")


def _same(path: Path, der: bytes) -> bool:
    try:
        cert = load_certificate(path.read_bytes())
    except (OSError, ValueError):
        return False
    from cryptography.hazmat.primitives.serialization import Encoding

    return cert.public_bytes(Encoding.DER) == der


def _store(der: bytes, folder: Path, thumb: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{thumb}.incoming"
    tmp.write_bytes(der)
    try:
        return trust_certificate(tmp, folder)
    finally:
        tmp.unlink(missing_ok=True)


def _own_certificate(options: OpcUaOptions, security: dict[str, str]) -> tuple[Path, Path]:
    cert = security.get("certificate") or options.certificate
    key = security.get("private_key") or options.private_key
    if (cert is None) != (key is None):
        raise ConnectError("give both 'certificate' and 'private_key', or neither (the "
                           "application certificate of 'smartline certs create' is used)")
    if cert is not None and key is not None:
        return Path(cert).absolute(), Path(key).absolute()
    pki = default_pki_dir()
    own_cert, own_key = pki / "own" / "cert.der", pki / "own" / "key.pem"
    if not (own_cert.is_file() and own_key.is_file()):
        host = socket.gethostname()
        create_certificate(own_cert, own_key, application_uri=default_application_uri(),
                           common_name=f"smartline@{host}", hostnames=[host])
        log.warning("created the application certificate %s (trust it on the server)",
                    own_cert)
    return own_cert, own_key


def _application_uri(data: bytes) -> str:
    try:
        cert = load_certificate(data)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
    except (ValueError, x509.ExtensionNotFound):
        uris = []
    return uris[0] if uris else default_application_uri()
