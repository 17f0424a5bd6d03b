"""The parts of the line's OPC UA server that need no server: engineering units, the
quality → StatusCode table, tag → DataType, logins and roles, the trust list, passwords
from the environment with located errors."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import pytest
from asyncua import ua
from asyncua.ua.status_codes import StatusCodes
from cryptography import x509

from smartline.config import LineConfig, load_line
from smartline.core import ConfigError, Quality, Reason
from smartline.cycle import TagValue
from smartline.drivers.opcua.certs import create_certificate
from smartline.northbound import _config as nb
from smartline.northbound.opcua import eu_information, node_type, status_code, unece_code, unit_id
from smartline.northbound.opcua._access import Account, LineUsers, TrustList, passwords
from smartline.northbound.opcua._server import _refusal, _resolve_port
from smartline.northbound.opcua._values import data_value

LINE = """\
smartline: 1
line: parts
devices:
  m: {url: "memory://parts"}
  ua: {url: "opc.tcp://127.0.0.1:4840"}
tags:
  temp: {device: m, address: "temp:float32", unit: degC}
  count: {device: m, address: "count:uint16", access: rw, limits: [0, 100]}
  torque: {device: m, address: "torque:int16", scale: {gain: 0.1}, unit: N.m}
  lamp: {device: m, address: "lamp:bool", access: rw}
  text: {device: m, address: "text:string<8>", access: rw}
  curve: {device: m, address: "curve:float32[3]"}
  remote: {device: ua, address: "ns=2;s=X"}
northbound:
  opcua:
    endpoint: "opc.tcp://127.0.0.1:0/"
    security: none
    users:
      op: {password_env: PARTS_OP_PW, role: operator}
      look: {password_env: PARTS_LOOK_PW}
"""

Parts = tuple[LineConfig, nb.OpcUaServerConfig]


@pytest.fixture
def line(tmp_path: Path) -> Parts:
    path = tmp_path / "line.yaml"
    path.write_text(LINE)
    config = load_line(path)
    ua_config = nb.load_northbound(config).opcua
    assert ua_config is not None
    return config, ua_config


# -- engineering units ---------------------------------------------------------------------

@pytest.mark.parametrize(("unit", "code", "number"), [
    ("degC", "CEL", 4408652), ("%", "P1", 20529), ("m", "MTR", 5067858),
    ("kg", "KGM", 4933453), ("s", "SEC", 5457219), ("mm", "MMT", None), ("g", "GRM", None),
    ("N.m", "NU", None), ("A", "AMP", None), ("V", "VLT", None), ("bar", "BAR", None),
    ("rpm", "RPM", None),
])
def test_units_of_the_example_lines_have_their_unece_code(unit: str, code: str,
                                                          number: int | None) -> None:
    assert unece_code(unit) == code
    eu = eu_information(unit)
    assert eu.UnitId == unit_id(code)
    assert eu.NamespaceUri == "http://www.opcfoundation.org/UA/units/un/cefact"
    if number is not None:  # the folded numbers OPC 10000-8 and the research give
        assert eu.UnitId == number


def test_an_unknown_unit_is_minus_one_with_its_text() -> None:
    eu = eu_information("bottles/min")
    assert unece_code("bottles/min") is None
    assert (eu.UnitId, eu.DisplayName.Text) == (-1, "bottles/min")


# -- quality -> StatusCode -----------------------------------------------------------------

@pytest.mark.parametrize(("quality", "reason", "code"), [
    (Quality.GOOD, Reason.NONE, StatusCodes.Good),
    (Quality.UNCERTAIN, Reason.DEMOTED, StatusCodes.UncertainLastUsableValue),
    (Quality.UNCERTAIN, Reason.OUT_OF_RANGE, StatusCodes.UncertainEngineeringUnitsExceeded),
    (Quality.UNCERTAIN, Reason.SIMULATED, StatusCodes.UncertainSubstituteValue),
    (Quality.STALE, Reason.DEADLINE, StatusCodes.UncertainLastUsableValue),
    (Quality.BAD, Reason.NOT_READ, StatusCodes.BadWaitingForInitialData),
    (Quality.BAD, Reason.NOT_CONNECTED, StatusCodes.BadNotConnected),
    (Quality.BAD, Reason.TIMEOUT, StatusCodes.BadTimeout),
    (Quality.BAD, Reason.LINK_BROKEN, StatusCodes.BadNoCommunication),
    (Quality.BAD, Reason.PROTOCOL_ERROR, StatusCodes.BadCommunicationError),
    (Quality.BAD, Reason.DEVICE_ERROR, StatusCodes.BadDeviceFailure),
    (Quality.BAD, Reason.NONE, StatusCodes.Bad),
])
def test_quality_and_reason_give_the_status_code(quality: Quality, reason: Reason,
                                                 code: int) -> None:
    assert status_code(quality, reason) == code


def test_every_reason_of_a_bad_value_is_a_bad_code() -> None:
    for reason in Reason:
        assert status_code(Quality.BAD, reason) & 0xC0000000 == 0x80000000
        assert status_code(Quality.STALE, reason) & 0xC0000000 == 0x40000000


# -- types and values ----------------------------------------------------------------------

def test_each_tag_gets_the_type_of_its_engineering_value(line: Parts) -> None:
    config = line[0]
    tags = config.tags
    kinds = {n: (node_type(t).variant, node_type(t).length) for n, t in tags.items()}
    assert kinds == {
        "temp": (ua.VariantType.Float, None), "count": (ua.VariantType.UInt16, None),
        "torque": (ua.VariantType.Double, None),  # scaled: the value is a float
        "lamp": (ua.VariantType.Boolean, None), "text": (ua.VariantType.String, None),
        "curve": (ua.VariantType.Float, 3),
        "remote": (ua.VariantType.Double, None),  # the device decides: Number
    }
    assert node_type(tags["remote"]).data_type == ua.NodeId(ua.ObjectIds.Number)
    assert node_type(tags["count"]).data_type == ua.NodeId(ua.ObjectIds.UInt16)


def test_a_data_value_carries_status_and_source_time(line: Parts) -> None:
    tags = line[0].tags
    ns = 1_767_225_600_123_456_789
    good = data_value(node_type(tags["count"]), TagValue("count", 7, Quality.GOOD,
                                                         Reason.NONE, ns, ns), ns + 5)
    assert good.Value == ua.Variant(7, ua.VariantType.UInt16)
    assert good.StatusCode.value == StatusCodes.Good
    assert good.SourceTimestamp == dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC)
    stale = data_value(node_type(tags["temp"]), TagValue("temp", 3.5, Quality.STALE,
                                                         Reason.DEADLINE, ns, ns), ns)
    assert (stale.Value.Value, stale.StatusCode.value) == (3.5,
                                                          StatusCodes.UncertainLastUsableValue)
    bad = data_value(node_type(tags["temp"]), TagValue("temp", 3.5, Quality.BAD,
                                                       Reason.TIMEOUT, ns, ns), ns)
    assert (bad.Value.Value, bad.StatusCode.value) == (None, StatusCodes.BadTimeout)
    never = data_value(node_type(tags["temp"]), TagValue("temp", math.nan, Quality.BAD,
                                                         Reason.NOT_READ, 0, 0), ns)
    assert never.SourceTimestamp is None
    assert never.StatusCode.value == StatusCodes.BadWaitingForInitialData
    odd = data_value(node_type(tags["count"]), TagValue("count", 2.5, Quality.GOOD,
                                                        Reason.NONE, ns, ns), ns)
    assert odd.StatusCode.value == StatusCodes.BadDataEncodingInvalid
    curve = data_value(node_type(tags["curve"]), TagValue("curve", (1.0, 2.0, 3.0),
                                                          Quality.GOOD, Reason.NONE, ns, ns), ns)
    assert curve.Value.Value == [1.0, 2.0, 3.0] and curve.Value.is_array


def test_refusals_map_to_status_codes(line: Parts) -> None:
    tags = line[0].tags
    assert _refusal(tags["temp"], 5.0) == StatusCodes.BadNotWritable
    assert _refusal(tags["count"], 500) == StatusCodes.BadOutOfRange
    assert _refusal(tags["count"], "many") == StatusCodes.BadTypeMismatch
    assert _refusal(tags["text"], "much too long") == StatusCodes.BadOutOfRange
    assert _refusal(tags["lamp"], 3) == StatusCodes.BadTypeMismatch


# -- logins --------------------------------------------------------------------------------

def test_a_missing_password_variable_is_a_located_error(line: Parts) -> None:
    config, ua_config = line
    source = Path(config.source)
    with pytest.raises(ConfigError) as info:
        passwords(ua_config, {"PARTS_OP_PW": "x"}, source)
    [issue] = info.value.issues
    assert issue.path == "northbound.opcua.users.look.password_env"
    assert issue.line == LINE.splitlines().index(
        "      look: {password_env: PARTS_LOOK_PW}") + 1
    assert "PARTS_LOOK_PW is not set" in issue.message
    assert passwords(ua_config, {"PARTS_OP_PW": "x", "PARTS_LOOK_PW": "y"},
                     source) == {"op": "x", "look": "y"}


def test_roles_and_anonymous(line: Parts) -> None:
    ua_config = line[1]
    users = LineUsers(ua_config, {"op": "pw1", "look": "pw2"})
    op = users.get_user(None, "op", "pw1")
    look = users.get_user(None, "look", "pw2")
    assert isinstance(op, Account) and op.may_write and op.label == "op"
    assert isinstance(look, Account) and not look.may_write
    assert users.get_user(None, "op", "pw2") is None
    assert users.get_user(None, "nobody", "pw1") is None
    assert users.get_user(None) is None  # anonymous: false
    anon = LineUsers(nb.OpcUaServerConfig(
        ua_config.endpoint, "none", None, None, (), ua_config.users, anonymous=True), {})
    who = anon.get_user(None)
    assert isinstance(who, Account) and who.anonymous and not who.may_write
    assert who.label == "anonymous"


async def test_the_trust_list_takes_files_and_folders_and_skips_keys(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        create_certificate(tmp_path / f"{name}.der", tmp_path / "keys" / f"{name}.pem",
                           application_uri=f"urn:{name}", common_name=name)
    folder = tmp_path / "trusted"
    folder.mkdir()
    (folder / "a.der").write_bytes((tmp_path / "a.der").read_bytes())
    (folder / "a-key.pem").write_bytes((tmp_path / "keys" / "a.pem").read_bytes())
    (folder / "notes.txt").write_text("not a certificate")
    store = TrustList([folder, tmp_path / "b.der"], [])
    await store.load()

    def cert(name: str) -> x509.Certificate:
        return x509.load_der_x509_certificate((tmp_path / f"{name}.der").read_bytes())

    assert store.is_trusted(cert("a")) and store.is_trusted(cert("b"))
    assert not store.is_trusted(cert("c"))
    empty = TrustList([], [])
    await empty.load()
    assert not empty.is_trusted(cert("a"))


def test_port_zero_becomes_a_free_port() -> None:
    url = _resolve_port("opc.tcp://127.0.0.1:0/smartline/")
    assert url.startswith("opc.tcp://127.0.0.1:") and url.endswith("/smartline/")
    assert int(url.rsplit(":", 1)[1].split("/")[0]) > 0
    assert _resolve_port("opc.tcp://127.0.0.1:4841/x") == "opc.tcp://127.0.0.1:4841/x"
    assert _resolve_port("opc.tcp://example.org/") == "opc.tcp://example.org:4840/"
