"""Who may do what on the line's OPC UA server: logins from the line file's users (passwords
from the environment), the roles operator (may write, may command units) and viewer, read-only
anonymous sessions when asked for, and the client-certificate trust list."""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asyncua.crypto.permission_rules import User, UserRole
from asyncua.crypto.truststore import TrustStore
from asyncua.server.user_managers import UserManager
from cryptography import x509

from ...config._source import read_document
from ...core import ConfigError, ConfigIssue
from .._config import OpcUaServerConfig

__all__ = ["ANONYMOUS", "Account", "LineUsers", "TrustList", "passwords"]

log = logging.getLogger(__name__)

ANONYMOUS = "anonymous"
_CERT_SUFFIXES = (".der", ".pem", ".crt", ".cer")


@dataclass
class Account(User):  # type: ignore[misc]
    """A logged-in session's user: asyncua's ``User`` (role User, so asyncua lets it read and
    call) plus what smartline lets it do (``may_write``: the operator role)."""

    may_write: bool = False
    anonymous: bool = False

    @property
    def label(self) -> str:
        return ANONYMOUS if self.anonymous else str(self.name)


def passwords(config: OpcUaServerConfig, env: Mapping[str, str], source: Path) -> dict[str, str]:
    """Each user's password from its environment variable; ``ConfigError`` naming every
    variable that is not set (located at its ``password_env`` key in the line file)."""
    out: dict[str, str] = {}
    missing: list[tuple[str, str]] = []
    for user in config.users:
        value = env.get(user.password_env)
        if not value:
            missing.append((user.name, user.password_env))
        else:
            out[user.name] = value
    if missing:
        raise ConfigError(_missing_issues(missing, source))
    return out


def _missing_issues(missing: Iterable[tuple[str, str]], source: Path) -> list[ConfigIssue]:
    try:
        doc = read_document(source, what="line file")
    except (ConfigError, OSError):
        doc = None
    issues = []
    for name, var in missing:
        path = ("northbound", "opcua", "users", name, "password_env")
        message = (f"environment variable {var} is not set (the password of OPC UA user "
                   f"{name!r}); set it before starting the server")
        if doc is not None:
            issues.append(doc.issue(path, message))
        else:
            issues.append(ConfigIssue(file=str(source), path=".".join(path), message=message))
    return issues


class LineUsers(UserManager):  # type: ignore[misc]
    """asyncua's user manager for the line: a user name and its password, or an anonymous
    session when the line allows them; anything else is refused (BadUserAccessDenied)."""

    def __init__(self, config: OpcUaServerConfig, secrets: Mapping[str, str]) -> None:
        self._secrets = dict(secrets)
        self._roles = {u.name: u.role for u in config.users}
        self._anonymous = config.anonymous

    def get_user(self, iserver: Any, username: str | None = None, password: str | None = None,
                 certificate: Any = None) -> User | None:
        if username is None:
            if self._anonymous:
                return Account(role=UserRole.User, name=ANONYMOUS, anonymous=True)
            log.warning("OPC UA: anonymous login refused (anonymous: false)")
            return None
        secret = self._secrets.get(username)
        given = (password or "").encode()
        if secret is None or not hmac.compare_digest(secret.encode(), given):
            log.warning("OPC UA: login of user %r refused (unknown user or wrong password)",
                        username)
            return None
        return Account(role=UserRole.User, name=username,
                       may_write=self._roles[username] == "operator")


class TrustList(TrustStore):  # type: ignore[misc]
    """asyncua's TrustStore over the line's ``trust:`` entries, each a certificate file or a
    folder of them (files that are not certificates, such as private keys, are skipped);
    an empty list trusts nobody."""

    async def load_trust(self) -> None:
        certs: list[x509.Certificate] = []
        for location in self.trust_locations:
            files = sorted(Path(location).iterdir()) if Path(location).is_dir() \
                else [Path(location)]
            for f in files:
                if f.suffix.lower() not in _CERT_SUFFIXES or not f.is_file():
                    continue
                cert = _certificate(f)
                if cert is not None:
                    certs.append(cert)
        self._trust_store = x509.verification.Store(certs) if certs else None
        log.info("OPC UA: %d trusted client certificate(s)", len(certs))

    async def load_crl(self) -> None:
        self._revoked_list = []


def _certificate(path: Path) -> x509.Certificate | None:
    try:
        data = path.read_bytes()
        if data.lstrip().startswith(b"-----"):
            if b"CERTIFICATE-----" not in data:
                return None  # a key, not a certificate
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except (OSError, ValueError) as exc:
        log.warning("OPC UA: %s in the trust list is not a certificate: %s", path, exc)
        return None


def environment(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return env if env is not None else os.environ
