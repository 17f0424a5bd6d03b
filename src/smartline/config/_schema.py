"""The shape of line files and device profiles, as pydantic models.

These models check structure: keys, types, ranges. Everything that needs more than one item
(does the device exist, does the address parse with the device's grammar, is the tag
writable) is checked by the loaders, which turn the result into the public frozen
dataclasses. Models are validated one item at a time so that one bad device does not hide
the problems of the others.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal, NoReturn

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainValidator, model_validator
from pydantic_core import PydanticCustomError

from smartline.core import RetryPolicy

from ._messages import describe

__all__ = [
    "LINE_FORMAT_KEY",
    "LINE_VERSIONS",
    "MIN_PERIOD_MS",
    "PROFILE_FORMAT_KEY",
    "PROFILE_NAME",
    "PROFILE_VERSIONS",
    "DeviceModel",
    "DeviceOptions",
    "LineFileModel",
    "ManualModel",
    "NoOptions",
    "PointModel",
    "ProfileDefaultsModel",
    "ProfileFileModel",
    "RetryModel",
    "ScaleModel",
    "SecurityModel",
    "TagModel",
    "TaskModel",
    "UserModel",
    "WatchdogModel",
]

LINE_FORMAT_KEY = "smartline"
LINE_VERSIONS = (1,)
PROFILE_FORMAT_KEY = "smartline-profile"
PROFILE_VERSIONS = (1,)

MIN_PERIOD_MS = 0.5
"""Shortest task period: below it the scheduler's wake-up jitter is a large share of the cycle."""

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
LINE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
PROFILE_PART = re.compile(r"^[a-z0-9][a-z0-9_.\-]*$")
PROFILE_NAME = re.compile(r"^([a-z0-9][a-z0-9_.\-]*)/([a-z0-9][a-z0-9_.\-]*)$")
ENV_NAME = IDENTIFIER


def fail(message: str) -> NoReturn:
    """Raise a validation error whose text is exactly ``message``."""
    raise PydanticCustomError("smartline", "{message}", {"message": message})


# -- field types ------------------------------------------------------------------------------

def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        fail(f"expected a number, found {describe(value)}")
    if not math.isfinite(value):
        fail(f"expected a finite number, found {describe(value)}")
    return float(value)


def _pair(value: object) -> tuple[float, float]:
    if not isinstance(value, list) or len(value) != 2:
        fail(f"expected a list of two numbers [low, high], found {describe(value)}")
    return _number(value[0]), _number(value[1])


def _limits(value: object) -> tuple[float, float]:
    low, high = _pair(value)
    if low > high:
        fail(f"limits [{low:g}, {high:g}]: the low limit must not exceed the high one")
    return low, high


def _scalar(value: object) -> bool | int | float | str:
    if isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    fail(f"expected a number, true/false or a string, found {describe(value)}")


def _pattern(regex: re.Pattern[str], what: str) -> AfterValidator:
    def check(value: str) -> str:
        if not regex.fullmatch(value):
            fail(f"{value!r} is not a valid {what}")
        return value
    return AfterValidator(check)


def _points_selection(value: object) -> Literal["all"] | tuple[str, ...]:
    if value == "all":
        return "all"
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    fail(f"expected 'all' or a list of point names, found {describe(value)}")


Number = Annotated[float, PlainValidator(_number)]
Pair = Annotated[tuple[float, float], PlainValidator(_pair)]
Limits = Annotated[tuple[float, float], PlainValidator(_limits)]
Scalar = Annotated[bool | int | float | str, PlainValidator(_scalar)]
PositiveMs = Annotated[float, Field(gt=0)]
LineName = Annotated[str, _pattern(LINE_NAME, "line name (letters, digits, '_', '-', '.')")]
ProfileName = Annotated[str, _pattern(PROFILE_NAME, "profile name: expected 'vendor/model' "
                                                     "in lower case")]
ProfilePart = Annotated[str, _pattern(PROFILE_PART, "name: use lower case letters, digits, "
                                                     "'.', '_' and '-'")]
EnvName = Annotated[str, _pattern(ENV_NAME, "environment variable name")]
NonEmpty = Annotated[str, Field(min_length=1)]
PointsSelection = Annotated[Literal["all"] | tuple[str, ...], PlainValidator(_points_selection)]
Access = Literal["r", "rw", "w"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


# -- line file --------------------------------------------------------------------------------

class LineFileModel(_Model):
    """Top level of a line file; sections are validated item by item by the loader."""

    smartline: int
    line: LineName
    description: str = ""
    profile_paths: list[str] = []
    devices: dict[str, Any] = {}
    tags: dict[str, Any] = {}
    tasks: dict[str, Any] = {}
    units: dict[str, Any] = {}
    """PackML units mapped onto the line's machines: checked by ``smartline.recipes``
    (a layer above this one), which reads the section from the file itself."""
    northbound: dict[str, Any] = {}
    """Sparkplug B and the OPC UA server: checked by ``smartline.northbound`` (a layer above
    this one), which reads the section from the file itself."""


_RETRY = RetryPolicy()


class RetryModel(_Model):
    """Reconnect backoff and demotion (``core.RetryPolicy`` in milliseconds)."""

    backoff_initial_ms: PositiveMs = _RETRY.backoff_initial_s * 1000
    backoff_max_ms: PositiveMs = _RETRY.backoff_max_s * 1000
    backoff_multiplier: Annotated[float, Field(ge=1)] = _RETRY.backoff_multiplier
    jitter: Annotated[float, Field(ge=0, le=1)] = _RETRY.jitter
    demote_after: Annotated[int, Field(ge=1)] = _RETRY.demote_after
    demote_period_ms: PositiveMs = _RETRY.demote_period_s * 1000

    @model_validator(mode="after")
    def _ordered(self) -> RetryModel:
        if self.backoff_max_ms < self.backoff_initial_ms:
            fail(f"backoff_max_ms {self.backoff_max_ms:g} is shorter than backoff_initial_ms "
                 f"{self.backoff_initial_ms:g}")
        return self

    def policy(self) -> RetryPolicy:
        return RetryPolicy(
            backoff_initial_s=self.backoff_initial_ms / 1000,
            backoff_max_s=self.backoff_max_ms / 1000,
            backoff_multiplier=self.backoff_multiplier,
            jitter=self.jitter,
            demote_after=self.demote_after,
            demote_period_s=self.demote_period_ms / 1000,
        )


class DeviceModel(_Model):
    """The keys every device has; protocol options are checked by the family models below."""

    url: str
    timeout_ms: PositiveMs = 1000.0
    profile: ProfileName | None = None
    points: PointsSelection | None = None
    description: str = ""
    retry: RetryModel = RetryModel()
    package: NonEmpty | None = None  # the pip package whose driver family serves the url


SecurityPolicy = Literal["None", "Basic256Sha256", "Aes128Sha256RsaOaep", "Aes256Sha256RsaPss"]
SecurityMode = Literal["None", "Sign", "SignAndEncrypt"]


class SecurityModel(_Model):
    """OPC UA secure channel; certificate paths are relative to the line file."""

    policy: SecurityPolicy = "None"
    mode: SecurityMode = "None"
    certificate: NonEmpty | None = None
    private_key: NonEmpty | None = None
    server_certificate: NonEmpty | None = None

    @model_validator(mode="after")
    def _consistent(self) -> SecurityModel:
        if (self.policy == "None") != (self.mode == "None"):
            fail(f"policy {self.policy} with mode {self.mode}: both must be None, or neither")
        if self.policy != "None" and (self.certificate is None or self.private_key is None):
            fail(f"policy {self.policy} needs a client certificate and private_key "
                 "(create them with 'smartline certs create')")
        return self


class UserModel(_Model):
    """OPC UA user identity; the password comes from an environment variable, never the file."""

    name: NonEmpty
    password_env: EnvName | None = None


class DeviceOptions(_Model):
    """Base of a driver family's typed device options (``DriverFamily.options``).

    Strict, frozen, unknown keys refused: the line loader validates a device's own keys,
    its URL parameters and its profile's defaults with it once, with located errors. Give
    every field a default; a field that is also a URL parameter (``?unit=3``) must be named
    as in the URL.
    """


class NoOptions(DeviceOptions):
    """For families without options of their own."""


RTU_UNITS = (1, 247)
"""Unit ids on a serial line: 0 is broadcast, which never answers; 248..255 are reserved."""


# -- tags and tasks ------------------------------------------------------------------------------

class ScaleModel(_Model):
    """Linear scaling: ``raw``/``eng`` ranges, or ``gain``/``offset``."""

    raw: Pair | None = None
    eng: Pair | None = None
    gain: Number | None = None
    offset: Number | None = None

    @model_validator(mode="after")
    def _one_form(self) -> ScaleModel:
        ranges = self.raw is not None or self.eng is not None
        linear = self.gain is not None or self.offset is not None
        if ranges and linear:
            fail("give either raw/eng ranges or gain/offset, not both")
        if not ranges and not linear:
            fail("empty scale: give raw and eng ranges, or gain and/or offset")
        if ranges:
            if self.raw is None or self.eng is None:
                fail("raw and eng ranges go together: give both")
            for key, (a, b) in (("raw", self.raw), ("eng", self.eng)):
                if a == b:
                    fail(f"{key} range [{a:g}, {b:g}] is empty: its ends must differ")
        if self.gain == 0:
            fail("gain 0 maps every raw value to the same number: use a non-zero gain")
        return self


class TagModel(_Model):
    """One tag of a line file."""

    device: str
    address: NonEmpty
    access: Access = "r"
    unit: str | None = None
    scale: ScaleModel | None = None
    limits: Limits | None = None
    safe: Scalar | None = None
    description: str = ""
    deadband: Annotated[float, Field(ge=0)] | None = None
    audit: Literal["changes", "outcome"] | None = None


class WatchdogModel(_Model):
    """Trips after ``sensitivity`` overruns in a row or a cycle longer than ``time_ms``."""

    time_ms: PositiveMs
    sensitivity: Annotated[int, Field(ge=1)] = 1


def _period(value: object) -> float:
    period = _number(value)
    if period <= 0:
        fail(f"period_ms must be greater than 0, found {describe(value)}")
    if period < MIN_PERIOD_MS:
        fail(f"period_ms {period:g} is below the shortest supported period {MIN_PERIOD_MS} ms")
    return period


class TaskModel(_Model):
    """One cyclic task of a line file."""

    period_ms: Annotated[float, PlainValidator(_period)]
    program: NonEmpty | None = None
    tags: list[str] = []
    inputs: list[str] = []
    outputs: list[str] = []
    overrun: Literal["skip", "catch_up", "fault"] = "skip"
    watchdog: WatchdogModel | None = None
    io_deadline_ms: PositiveMs | None = None
    description: str = ""


# -- device profiles ---------------------------------------------------------------------------

class ManualModel(_Model):
    """The public document a profile's map was taken from."""

    title: NonEmpty
    document: str = ""  # document / order number
    revision: str = ""
    url: str = ""


class ProfileFileModel(_Model):
    """Top level of a device profile; points are validated one by one."""

    smartline_profile: int = Field(alias="smartline-profile")
    vendor: ProfilePart
    model: ProfilePart
    family: Annotated[str, _pattern(PROFILE_PART, "family name (an installed driver family)")]
    package: NonEmpty | None = None  # the pip package that provides the family
    description: str = ""
    manual: ManualModel
    defaults: dict[str, Any] = {}
    protocol: dict[str, Any] | None = None  # validated by the family's profile_protocol
    points: dict[str, Any]


class ProfileDefaultsModel(_Model):
    """Device keys a profile may give defaults for, besides its family's options."""

    timeout_ms: PositiveMs = 1000.0


class PointModel(_Model):
    """One point (register, variable, instrument reading) of a device profile."""

    address: NonEmpty | None = None
    access: Access = "r"
    unit: str | None = None
    scale: ScaleModel | None = None
    limits: Limits | None = None
    safe: Scalar | None = None
    description: str = ""
    deadband: Annotated[float, Field(ge=0)] | None = None
    enum: dict[int, str] = {}
    bits: dict[int, str] = {}
    sim: dict[str, Scalar] = {}
