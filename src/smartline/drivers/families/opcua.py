"""The ``opcua`` family: OPC UA servers (asyncua).

Light on purpose: the options below are validated by ``smartline check`` without asyncua.
Security is on by default (see ``docs/reference/opcua.md`` and ADR 0015): a device says
``security: none`` to use an endpoint without it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from smartline.config import DeviceOptions, SecurityModel, UserModel
from smartline.core import DriverFamily, Scheme
from smartline.tags import parse_opcua

__all__ = ["FAMILY", "POLICIES", "OpcUaOptions", "OpcUaSecurity"]

OpcUaPolicy = Literal["None", "Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss",
                      "Aes128Sha256RsaOaep", "Aes256Sha256RsaPss"]
OpcUaMode = Literal["None", "Sign", "SignAndEncrypt"]

POLICIES: dict[str, str] = {
    "Basic256Sha256": "Basic256Sha256",
    "Aes128_Sha256_RsaOaep": "Aes128_Sha256_RsaOaep",
    "Aes128Sha256RsaOaep": "Aes128_Sha256_RsaOaep",
    "Aes256_Sha256_RsaPss": "Aes256_Sha256_RsaPss",
    "Aes256Sha256RsaPss": "Aes256_Sha256_RsaPss",
}
"""Accepted policy spellings → the canonical name (the URI's last part)."""


class OpcUaSecurity(SecurityModel):
    """``security: {policy, mode}``: both or neither — left out, the strongest the server
    offers is taken; ``None``/``None`` means no security, as ``security: none`` does.
    Certificate files given here are resolved relative to the line file (it is a
    :class:`smartline.config.SecurityModel`); ``server_certificate`` pins the server's
    certificate (trusted in addition to the trust list)."""

    policy: OpcUaPolicy | None = None  # type: ignore[assignment]
    mode: OpcUaMode | None = None  # type: ignore[assignment]

    @model_validator(mode="after")
    def _consistent(self) -> OpcUaSecurity:  # replaces SecurityModel's check (by name)
        policy, mode = self.policy, self.mode
        if (policy is None) != (mode is None) or (policy == "None") != (mode == "None"):
            raise PydanticCustomError(
                "smartline", "{message}",
                {"message": f"policy {policy} with mode {mode}: give both (or neither, for "
                            "the strongest the server offers); None only with None"})
        return self

    @property
    def none(self) -> bool:
        """The mapping asks for no security (``policy: None, mode: None``)."""
        return self.policy == "None"


class OpcUaOptions(DeviceOptions):
    """The secure channel, the user identity, the trust list and subscriptions.

    ``certificate``, ``private_key`` and ``trust`` given as device keys are resolved
    relative to the current directory (the same files inside ``security:`` are resolved
    relative to the line file); left out, the application certificate and the trust list
    of ``smartline certs`` are used (``$SMARTLINE_STATE_DIR/pki``).
    """

    security: Literal["none"] | OpcUaSecurity | None = None
    user: UserModel | None = None
    certificate: Annotated[str, Field(min_length=1)] | None = None
    private_key: Annotated[str, Field(min_length=1)] | None = None
    trust: Annotated[str, Field(min_length=1)] | None = None
    trust_on_first_use: bool = False
    subscribe: bool = True
    sampling_interval_ms: Annotated[float, Field(ge=0)] = 0.0
    deadband: Annotated[float, Field(ge=0)] = 0.0

    @model_validator(mode="after")
    def _no_files_without_security(self) -> OpcUaOptions:
        if self.security == "none" and (self.certificate or self.private_key):
            raise ValueError("security: none uses no certificate; remove certificate and "
                             "private_key, or remove 'security: none'")
        return self


FAMILY = DriverFamily(
    name="opcua",
    schemes=(Scheme("opc.tcp", "smartline.drivers.opcua:OpcUaDriver", 4840,
                    description="OPC UA binary (opc.tcp://host:port/path)"),),
    parse_address=parse_opcua,
    options=OpcUaOptions,
    value_types=("bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64",
                 "uint64", "float32", "float64", "string"),
    requires="smartline[opcua]",
    imports=("asyncua",),
    description="OPC UA client on asyncua",
)
