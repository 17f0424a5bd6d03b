"""The driver's side of a line protocol without a port: framing, checksums, reading
replies into values or failures in words."""

from __future__ import annotations

import re

import pytest

from smartline.config import LineProtocol, data_dir, load_profile
from smartline.config._lineproto import FieldSpec
from smartline.core import ConfigError, Reason
from smartline.drivers.families.serial import SerialInstrumentOptions
from smartline.drivers.serial import compile_protocol
from smartline.drivers.serial._proto import convert


def compiled(name: str, **options: object):  # type: ignore[no-untyped-def]
    profile = load_profile(data_dir("drivers") / f"{name}.yaml")
    assert isinstance(profile.protocol, LineProtocol)
    opts = {k: v for k, v in profile.defaults.items() if k != "timeout_ms"}
    opts.update(options)
    return compile_protocol(profile.protocol, SerialInstrumentOptions.model_validate(opts))


def test_pfeiffer_frames_carry_the_manuals_checksum() -> None:
    p = compiled("pfeiffer-vacuum/ppt-100")
    sent = p.render(p.commands["pressure"].send)
    assert p.frame(sent) == b"0010074002=?106\r"  # the manual's example telegram
    text, why = p.text_of(b"0011074006100023025")
    assert text == "0011074006100023" and not why
    out = p.interpret(p.commands["pressure"].rules, text, ("pressure",), sent)
    assert out.values == {"pressure": pytest.approx(1000.0)}
    text, why = p.text_of(b"0011074006100023024")
    assert text is None and "the sum8 of the rest is 025" in why
    text, why = p.text_of(b"12")
    assert text is None and "shorter than its checksum" in why


def test_station_option_is_needed_where_commands_use_it() -> None:
    profile = load_profile(data_dir("drivers") / "pfeiffer-vacuum" / "ppt-100.yaml")
    assert isinstance(profile.protocol, LineProtocol)
    with pytest.raises(ConfigError, match="give the device a station option"):
        compile_protocol(profile.protocol, SerialInstrumentOptions())
    p = compiled("pfeiffer-vacuum/ppt-100", station=12)
    assert p.frame(p.render(p.commands["pressure"].send)).startswith(b"0120074002=?")


def test_mt_sics_replies() -> None:
    p = compiled("mettler-toledo/mt-sics")
    rules = p.commands["weight_now"].rules
    out = p.interpret(rules, "S D     -12.34 g", ("weight_now", "stable"), "SI")
    assert out.values == {"weight_now": -12.34, "stable": False}
    out = p.interpret(rules, "S +", ("weight_now",), "SI")
    assert (out.reason, out.note) == (Reason.DEVICE_ERROR, "S +: overload")
    out = p.interpret(rules, "ES", ("weight_now",), "SI")
    assert out.reason == Reason.PROTOCOL_ERROR and out.note.startswith("ES: syntax error")
    out = p.interpret(rules, "S S 1.0 kg", ("weight_now",), "SI")
    assert out.failed["weight_now"][0] == Reason.DEVICE_ERROR
    out = p.interpret(rules, "Z A", ("weight_now",), "SI")
    assert out.note == "unexpected reply 'Z A' to 'SI'"
    out = p.interpret(rules, "S S 1.0 g", ("weight_now", "stable"), "SI")
    assert out.values["stable"] is True


def test_scanner_lines_give_their_gs1_fields() -> None:
    p = compiled("honeywell/xenon-1900")
    out = p.stream_line("]C10109501101530003172612311012AB\x1d2199")
    assert out.values["gtin"] == "09501101530003" and out.values["batch"] == "12AB"
    assert out.values["expiry"] == "2026-12-31" and out.values["symbology"] == "GS1-128"
    out = p.stream_line("]C10109501101530004")  # wrong check digit: only the code stays
    assert out.values == {"code": "]C10109501101530004"}
    assert out.failed["gtin"][0] == Reason.DECODE_ERROR and "check digit" in out.failed[
        "gtin"][1]
    assert out.failed["batch"][0] == Reason.DECODE_ERROR


@pytest.mark.parametrize(("spec", "text", "want"), [
    ({"type": "int"}, "+42", 42),
    ({"type": "int", "scale": 0.5}, "5", 2),
    ({"type": "bool"}, "on", True),
    ({"type": "bool", "true_text": ["S"], "false_text": ["D"]}, "x", (Reason.DECODE_ERROR,)),
    ({"map": {"R": "run", "S": "stop"}}, "R", "run"),
    ({"map": {"R": "run"}}, "Q", (Reason.DECODE_ERROR,)),
    ({"type": "float"}, "abc", (Reason.DECODE_ERROR,)),
    ({"type": "string", "strip": False}, " a ", " a "),
])
def test_field_conversions(spec: dict[str, object], text: str, want: object) -> None:
    m = re.search("(?P<v>.*)", text)
    assert m is not None
    got = convert(FieldSpec.model_validate({"group": "v", **spec}), m)
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and got[0] == want[0]
    else:
        assert got == want
