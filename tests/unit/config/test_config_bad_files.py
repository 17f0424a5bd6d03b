"""Every bad-input fixture in tests/data/bad/ gives the expected located message, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from smartline.config import check_file, load_line, load_profile
from smartline.core import ConfigError

BAD = Path(__file__).parents[2] / "data" / "bad"

# fixture → "LINE:COL: key.path: start of the message"
EXPECTED: dict[str, str] = {
    # reading the file
    "empty-file.yaml": "1:1: <root>: file is empty",
    "top-level-list.yaml": "1:1: <root>: expected a mapping (key: value lines) at the top level, "
                           "found a list of 2 items",
    "yaml-syntax-error.yaml": "5:1: <root>: YAML syntax error: expected ',' or '}'",
    "not-utf8.yaml": "2:10: <root>: not UTF-8 text: byte 0xe9",
    "binary-garbage.yaml": "3:4: <root>: not UTF-8 text: byte 0xfe",
    "control-character.yaml": "3:20: <root>: character '\\x07' is not allowed",
    "recursive-alias.yaml": "2:7: <root>: recursive alias",
    "duplicate-tag.yaml": "8:3: tags.level: duplicate key 'level' (first defined on line 6)",
    "key-not-a-string.yaml": "6:3: tags.true: a key here must be a string, found boolean true",
    "not-a-smartline-file.yaml": "1:1: <root>: not a smartline file: expected a format key",
    # format version
    "version-missing.yaml": "1:1: <root>: missing format version: a line file starts with "
                            "'smartline: 1' (supported versions: 1)",
    "version-wrong.yaml": "1:12: smartline: unsupported format version 2",
    "version-not-a-number.yaml": "1:12: smartline: expected format version 1, found string '1'",
    # structure
    "unknown-key-top.yaml": "3:1: devics: unknown key 'devics' (did you mean 'devices'?)",
    "unknown-key-device.yaml": "6:5: devices.filler.timout_ms: unknown key 'timout_ms' "
                               "(did you mean 'timeout_ms'?)",
    "unknown-key-tag.yaml": "6:24: tags.level.adress: unknown key 'adress' "
                            "(did you mean 'address'?)",
    "unknown-key-task.yaml": "8:10: tasks.fast.period: unknown key 'period' "
                             "(did you mean 'period_ms'?)",
    "wrong-type-timeout.yaml": "4:60: devices.filler.timeout_ms: expected a number, "
                               "found string '200'",
    "wrong-type-section.yaml": "4:3: devices: expected a mapping, found a list of 1 item",
    # devices
    "bad-url.yaml": "4:17: devices.filler.url: bad URL: expected a URL like",
    "url-bad-port.yaml": "4:17: devices.filler.url: bad URL: port must be a number 1-65535",
    "unknown-scheme.yaml": "4:18: devices.filler.url: unknown URL scheme 'modbus+udp': no "
                           "installed driver family serves it (known schemes: ",
    "url-unknown-parameter.yaml": "4:45: devices.filler.url: unknown URL parameter 'unti' "
                                  "(did you mean 'unit'?)",
    "serial-bad-parity.yaml": "4:57: devices.oven.url: URL parameter parity='X': "
                              "expected N, E or O",
    "serial-port-mixed-settings.yaml": "5:43: devices.dryer.url: serial port '/dev/ttyUSB0' "
                                       "is already used by device 'oven' with baudrate=9600 "
                                       "(here baudrate=19200)",
    "s7-rack-out-of-range.yaml": "4:38: devices.capper.url: URL parameter rack='9': "
                                 "expected an integer 0..7",
    "option-of-other-family.yaml": "4:54: devices.capper.max_registers: max_registers is not "
                                   "an option of s7 devices",
    "modbus-option-out-of-range.yaml": "4:63: devices.filler.max_registers: must be at most 125, "
                                       "found integer 200",
    "unit-given-twice.yaml": "4:61: devices.filler.unit: unit 4 contradicts unit=3 in the url",
    "points-without-profile.yaml": "4:56: devices.filler.points: points are taken from a "
                                   "device profile",
    "unknown-profile.yaml": "4:50: devices.scale.profile: device profile "
                            "'mettler-toledo/no-such-model' not found; looked for",
    "profile-wrong-family.yaml": "5:45: devices.plc.profile: profile 'acme/vfd-100' describes "
                                 "modbus devices; this device's URL is s7",
    "missing-env-var.yaml": "6:36: devices.vision.user.password_env: environment variable "
                            "SMARTLINE_TEST_UNSET_PW is not set",
    "security-file-missing.yaml": "7:29: devices.vision.security.certificate: file "
                                  "'certs/missing.der' not found",
    "security-policy-without-mode.yaml": "6:15: devices.vision.security: policy Basic256Sha256 "
                                         "with mode None",
    # tags
    "tag-unknown-device.yaml": "6:19: tags.level.device: unknown device 'filer' "
                               "(did you mean 'filler'?); devices: filler",
    "bad-address-modbus.yaml": "6:37: tags.level.address: unknown Modbus area 'xr'",
    "bad-address-s7.yaml": "6:38: tags.torque.address: cannot read 'DB1.DBQ4'",
    "bad-address-opcua.yaml": "6:41: tags.reject.address: namespace index 'two' is not a number",
    "bad-address-memory.yaml": "6:34: tags.level.address: memory name '1level' is not an "
                               "identifier",
    "profile-point-unknown.yaml": "7:38: tags.weight.address: 'wieght' is not a point of profile "
                                  "acme/balance (did you mean 'weight'?)",
    "profile-point-unknown-modbus.yaml": "7:33: tags.speed.address: 'speed_reff' is neither a "
                                         "point of profile acme/vfd-100 (did you mean "
                                         "'speed_ref'?) nor a modbus address",
    "modbus-array-past-address-space.yaml": "6:54: tags.trend.address: float32[8] at hr:65530 "
                                            "spans 16 registers",
    "modbus-bit-out-of-range.yaml": "6:42: tags.alarm.address: bit index 16 out of range: "
                                    "expected 0..15",
    "unknown-data-type.yaml": "6:44: tags.level.address: unknown type 'float16'",
    "unknown-byte-order.yaml": "6:52: tags.level.address: unknown byte order 'abdc'",
    "limits-outside-scaled-range.yaml": "7:43: tags.speed_sp.limits: limits [0, 1000] reach "
                                        "outside what uint16 can hold",
    "limits-reversed.yaml": "6:76: tags.speed_sp.limits: limits [100, 0]: the low limit must "
                            "not exceed the high one",
    "safe-on-read-only.yaml": "6:55: tags.fill_valve.safe: safe value False on a read-only tag",
    "audit-on-read-only.yaml": "6:59: tags.level.audit: audit 'changes' on a read-only tag",
    "audit-unknown-mode.yaml": "6:71: tags.level.audit: expected 'changes' or 'outcome', "
                               "found string 'always'",
    "write-input-register.yaml": "6:59: tags.level.access: access rw on ir:3:uint16",
    "scale-ranges-and-gain.yaml": "7:18: tags.speed.scale: give either raw/eng ranges or "
                                  "gain/offset, not both",
    "scale-empty-raw-range.yaml": "6:60: tags.speed.scale: raw range [5, 5] is empty",
    # tasks
    "task-period-zero.yaml": "8:21: tasks.fast.period_ms: period_ms must be greater than 0, "
                             "found integer 0",
    "task-period-too-short.yaml": "8:21: tasks.fast.period_ms: period_ms 0.1 is below the "
                                  "shortest supported period 0.5 ms",
    "task-unknown-tag.yaml": "10:24: tasks.slow.tags[1]: unknown tag 'fil_level' "
                             "(did you mean 'fill_level'?)",
    "task-output-not-writable.yaml": "10:27: tasks.fast.outputs[1]: tag 'level' is read-only",
    "task-output-in-two-tasks.yaml": "9:71: tasks.slow.outputs[0]: tag 'valve' is already an "
                                     "output of task 'fast'",
    "task-io-deadline-too-long.yaml": "8:56: tasks.fast.io_deadline_ms: io_deadline_ms 10 must "
                                      "be shorter than period_ms 10",
    "task-program-file-missing.yaml": "6:34: tasks.fast.program: program file 'logic/missing.py' "
                                      "not found",
    "task-does-nothing.yaml": "6:3: tasks.idle: a task needs a program, or tags to acquire",
    # device profiles checked on their own
    "profile-bad-point.yaml": "8:25: points.temp.address: unknown type 'int12'",
    "profile-missing-manual.yaml": "1:1: <root>: missing required key 'manual'",
    "profile-unknown-family.yaml": "4:9: family: no driver family 'canbus' is installed "
                                   "(installed: ",
    # several problems: each one reported (the order is checked below)
    "several-errors.yaml": "12:39: tasks.fast.tags[1]: unknown tag 'nope'",
}


def _rendered(exc: ConfigError) -> list[str]:
    """Each issue as ``LINE:COL: key.path: message`` (the part after the file name)."""
    return [f"{i.line}:{i.column}: {i.path or '<root>'}: {i.message}" for i in exc.issues]


def test_every_fixture_has_an_expectation() -> None:
    assert sorted(p.name for p in BAD.glob("*.yaml")) == sorted(EXPECTED)
    assert len(EXPECTED) >= 30


@pytest.mark.parametrize("fixture", sorted(EXPECTED))
def test_bad_file_reports_located_message(fixture: str) -> None:
    path = BAD / fixture
    with pytest.raises(ConfigError) as info:
        check_file(path, env={})
    rendered = _rendered(info.value)
    assert any(r.startswith(EXPECTED[fixture]) for r in rendered), "\n".join(rendered)
    for issue in info.value.issues:
        assert issue.line is not None and issue.column is not None
        assert issue.format().startswith(f"{path}:{issue.line}:{issue.column}: ")
    # the exception's text is the whole list, one issue per line
    assert str(info.value).splitlines() == [i.format() for i in info.value.issues]


def test_several_errors_are_all_reported_sorted_by_line() -> None:
    with pytest.raises(ConfigError) as info:
        check_file(BAD / "several-errors.yaml", env={})
    assert _rendered(info.value) == [
        "4:60: devices.filler.timeout_ms: must be greater than 0, found integer -5",
        "5:45: devices.capper.url: URL parameter slot='99': expected an integer 0..31",
        "8:19: tags.speed.device: unknown device 'filer' (did you mean 'filler'?); devices: "
        "capper, filler",
        "10:56: tags.valve.colour: unknown key 'colour'; expected one of: device, address, "
        "access, unit, scale, limits, safe, description, deadband, audit",
        "12:21: tasks.fast.period_ms: period_ms must be greater than 0, found integer -1",
        "12:39: tasks.fast.tags[1]: unknown tag 'nope'; tags: level, speed, torque, valve",
    ]


def test_every_missing_certificate_file_is_named() -> None:
    with pytest.raises(ConfigError) as info:
        load_line(BAD / "security-file-missing.yaml")
    assert [i.path for i in info.value.issues] == [
        "devices.vision.security.certificate", "devices.vision.security.private_key"]


def test_load_line_refuses_a_profile_and_load_profile_a_line() -> None:
    with pytest.raises(ConfigError, match="missing format version: a line file"):
        load_line(BAD / "profile-bad-point.yaml")
    with pytest.raises(ConfigError, match="missing format version: a device profile"):
        load_profile(BAD / "version-wrong.yaml")


def test_a_broken_profile_is_reported_under_its_own_file(tmp_path: Path) -> None:
    vendor = tmp_path / "profiles" / "acme"
    vendor.mkdir(parents=True)
    (vendor / "broken.yaml").write_text((BAD / "profile-bad-point.yaml").read_text())
    line = tmp_path / "line.yaml"
    line.write_text("smartline: 1\nline: l\nprofile_paths: [profiles]\ndevices:\n"
                    "  a: {url: 'modbus+tcp://h:1', profile: acme/broken}\n"
                    "  b: {url: 'modbus+tcp://h:2', profile: acme/broken}\n"
                    "tags:\n  t: {device: a, address: speed}\n")
    with pytest.raises(ConfigError) as info:
        load_line(line)
    files = [i.file for i in info.value.issues]
    assert files == [str(line)] * 2 + [str(vendor / "broken.yaml")] * 2  # the line's first
    assert "has errors" in info.value.issues[0].message
    assert info.value.issues[0].path == "devices.a.profile"
    assert info.value.issues[1].path == "devices.b.profile"
    # the tag on the device is not blamed for its device's profile
    assert not any(i.path.startswith("tags.") for i in info.value.issues)
