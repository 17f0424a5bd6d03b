"""Loading line files: typed results, profiles, secrets, options, immutability."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

import pytest

from smartline.config import (
    LineConfig,
    TaskConfig,
    WatchdogConfig,
    check_file,
    data_dir,
    find_profile,
    load_line,
    load_profile,
)
from smartline.core import ConfigError, DeviceSpec, DriverRegistry, RetryPolicy
from smartline.tags import Access, ModbusAddress, ProfileAddress, Scale

GOOD = Path(__file__).parents[2] / "data" / "good"
PROFILES = GOOD / "profiles"
ENV = {"HMI_PASSWORD": "s3cret-value"}


@pytest.fixture(scope="module")
def with_profiles() -> LineConfig:
    return load_line(GOOD / "line-with-profiles.yaml")


@pytest.fixture(scope="module")
def families() -> LineConfig:
    return load_line(GOOD / "line-all-families.yaml", env=ENV)


def _line(tmp_path: Path, body: str, **kwargs: object) -> LineConfig:
    path = tmp_path / "line.yaml"
    path.write_text("smartline: 1\nline: t\n" + body)
    return load_line(path, **kwargs)  # type: ignore[arg-type]


def _issues(tmp_path: Path, body: str, **kwargs: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        _line(tmp_path, body, **kwargs)
    return [f"{i.path}: {i.message}" for i in info.value.issues]


def _given(options: object) -> dict[str, object]:
    """The options a device was given (by its keys, URL or profile), not the defaults."""
    fields = getattr(options, "model_fields_set", set())
    return {k: getattr(options, k) for k in fields}


# -- profiles -----------------------------------------------------------------------------

def test_tag_from_profile_point_inherits_what_it_does_not_override(
        with_profiles: LineConfig) -> None:
    tag = with_profiles.tags["conveyor_speed"]
    assert tag.address == ModbusAddress(area="hr", offset=0, dtype="uint16")  # type: ignore[arg-type]
    assert tag.limits == (0.0, 40.0)  # overridden
    assert tag.description == "conveyor belt"  # overridden
    assert (tag.unit, tag.access, tag.safe) == ("Hz", Access.RW, 0)  # from the point
    assert tag.scale == Scale(gain=0.01)
    weight = with_profiles.tags["net_weight"]
    assert weight.address == ProfileAddress("weight", "serial")
    assert (weight.unit, weight.description) == ("kg", "stable net weight")
    # an address that is not a point name is parsed with the family's grammar
    assert with_profiles.tags["raw_reg"].address == ModbusAddress(
        area="hr", offset=100, dtype="uint16")  # type: ignore[arg-type]


def test_points_make_device_dot_point_tags_after_the_explicit_tags(
        with_profiles: LineConfig) -> None:
    names = list(with_profiles.tags)
    assert names[:4] == ["conveyor_speed", "vfd_run", "raw_reg", "net_weight"]
    assert names[4:6] == ["vfd.speed", "vfd.status"]
    profile = load_profile(PROFILES / "acme" / "vfd-100.yaml")
    assert names[6:] == [f"pump.{p}" for p in profile.points]
    speed = with_profiles.tags["pump.speed"]
    assert (speed.device, speed.unit, speed.deadband) == ("pump", "Hz", 0.05)


def test_profile_defaults_merge_under_the_device_keys(with_profiles: LineConfig) -> None:
    vfd, pump = with_profiles.devices["vfd"], with_profiles.devices["pump"]
    assert _given(vfd.options) == {"max_gap": 4, "max_registers": 32, "inter_frame_ms": 2.0,
                                 "unit": 2}
    assert vfd.timeout_s == 0.25  # the profile's timeout_ms
    assert _given(pump.options) == {"max_gap": 4, "max_registers": 16, "inter_frame_ms": 2.0,
                                  "baudrate": 19200, "parity": "E"}
    assert pump.timeout_s == 0.4  # the device's own timeout_ms wins
    assert vfd.profile is pump.profile  # loaded once per line


def test_profile_contents() -> None:
    profile = load_profile(PROFILES / "acme" / "vfd-100.yaml")
    assert (profile.name, profile.vendor, profile.model, profile.family) == (
        "acme/vfd-100", "acme", "vfd-100", "modbus")
    assert profile.manual.document == "VFD100-UM-EN"
    assert dict(profile.points["status"].bits) == {0: "ready", 1: "running", 3: "fault",
                                                   15: "remote"}
    assert profile.points["fault_code"].enum[7] == "motor overtemperature"
    assert dict(profile.points["current"].sim) == {"value": 1.5, "noise": 0.02}
    assert profile.source == (PROFILES / "acme" / "vfd-100.yaml").absolute()
    balance = load_profile(PROFILES / "acme" / "balance.yaml")
    # the name is the address
    assert balance.points["tare"].address == ProfileAddress("tare", "serial")


def test_find_profile_search_order(tmp_path: Path) -> None:
    first = tmp_path / "first"
    (first / "acme").mkdir(parents=True)
    (first / "acme" / "vfd-100.yaml").write_text("x")
    assert find_profile("acme/vfd-100", [first, PROFILES]) == first / "acme" / "vfd-100.yaml"
    assert find_profile("acme/vfd-100", [tmp_path, PROFILES]) == PROFILES / "acme" / "vfd-100.yaml"
    with pytest.raises(FileNotFoundError) as info:
        find_profile("acme/none", [tmp_path])
    assert str(tmp_path / "acme" / "none.yaml") in str(info.value)
    assert str(data_dir("drivers") / "acme" / "none.yaml") in str(info.value)
    for bad in ("../etc/passwd", "acme", "Acme/VFD", "acme/vfd/x", "/abs/x"):
        with pytest.raises(ValueError, match="expected 'vendor/model'"):
            find_profile(bad, [PROFILES])


def test_explicit_profile_paths_come_before_the_files_own(tmp_path: Path) -> None:
    mine = tmp_path / "mine" / "acme"
    mine.mkdir(parents=True)
    text = (PROFILES / "acme" / "balance.yaml").read_text().replace("weight:", "mass:")
    (mine / "balance.yaml").write_text(text)
    body = (f"profile_paths: [{PROFILES}]\n"
            "devices:\n  b: {url: 'serial:///dev/ttyS0', profile: acme/balance, points: all}\n")
    assert "b.weight" in _line(tmp_path, body).tags
    assert "b.mass" in _line(tmp_path, body, profile_paths=[tmp_path / "mine"]).tags


def test_profile_name_must_match_its_file(tmp_path: Path) -> None:
    (tmp_path / "acme").mkdir()
    (tmp_path / "acme" / "other.yaml").write_text(
        (PROFILES / "acme" / "balance.yaml").read_text())
    body = "profile_paths: [.]\ndevices:\n  b: {url: 'serial:///dev/ttyS0', profile: acme/other}\n"
    assert _issues(tmp_path, body) == [
        f"devices.b.profile: {tmp_path / 'acme' / 'other.yaml'} declares profile 'acme/balance',"
        " expected 'acme/other': a profile's vendor and model must match its folder and file name"]


def test_point_tag_clashing_with_an_explicit_tag(tmp_path: Path) -> None:
    body = (f"profile_paths: [{PROFILES}]\n"
            "devices:\n  b: {url: 'serial:///dev/ttyS0', profile: acme/balance, "
            "points: [weight, nope, weight]}\n"
            "tags:\n  b.weight: {device: b, address: weight}\n")
    assert _issues(tmp_path, body) == [
        "devices.b.points[0]: tag 'b.weight' is made from point 'weight' and also defined under "
        "tags: remove one",
        "devices.b.points[1]: no point 'nope' in profile acme/balance",
        "devices.b.points[2]: point 'weight' is listed twice",
    ]


# -- devices ------------------------------------------------------------------------------

def test_device_config_and_spec(families: LineConfig) -> None:
    hmi = families.devices["hmi"]
    assert hmi.family == "opcua"
    assert hmi.retry == RetryPolicy(backoff_initial_s=0.05, backoff_max_s=2.0, jitter=0.1,
                                    demote_after=5, demote_period_s=10.0)
    assert dict(hmi.security) == {
        "policy": "Basic256Sha256", "mode": "SignAndEncrypt",
        "certificate": str((GOOD / "certs" / "client.der").absolute()),
        "private_key": str((GOOD / "certs" / "client.pem").absolute())}
    spec = hmi.spec()
    assert isinstance(spec, DeviceSpec)
    assert (spec.name, spec.url, spec.timeout_s, spec.retry) == (
        "hmi", hmi.url, 1.0, hmi.retry)
    assert (spec.username, spec.password) == ("operator", "s3cret-value")
    plc = families.devices["plc"]
    assert _given(plc.options) == {"rack": 0, "slot": 1, "pdu_size": 480}
    assert plc.timeout_s == 0.3
    rtu = families.devices["rtu"]
    assert _given(rtu.options) == {"baudrate": 9600, "parity": "N", "stopbits": 2,
                                 "bytesize": 8, "unit": 7, "inter_frame_ms": 4.0}


def test_secrets_come_from_the_environment_and_are_never_shown(
        families: LineConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    hmi = families.devices["hmi"]
    assert hmi.password == "s3cret-value"
    assert "s3cret" not in repr(hmi) and "s3cret" not in repr(hmi.spec())
    monkeypatch.setenv("HMI_PASSWORD", "from-os-environ")  # env=None reads os.environ
    assert load_line(GOOD / "line-all-families.yaml").devices["hmi"].password == "from-os-environ"
    monkeypatch.delenv("HMI_PASSWORD")
    with pytest.raises(ConfigError) as info:
        load_line(GOOD / "line-all-families.yaml")
    assert [i.path for i in info.value.issues] == ["devices.hmi.user.password_env"]
    assert "HMI_PASSWORD is not set" in str(info.value)


def test_unit_in_url_and_key_may_agree(tmp_path: Path) -> None:
    line = _line(tmp_path, "devices:\n  d: {url: 'modbus+tcp://h:502?unit=255', unit: 255}\n")
    assert line.devices["d"].options.unit == 255  # type: ignore[attr-defined]
    assert _issues(tmp_path, "devices:\n  d: {url: 'modbus+rtu:///dev/x', unit: 0}\n") == [
        "devices.d.unit: unit 0 on a serial line: expected 1..247 (0 is broadcast, which never "
        "answers)"]
    assert _issues(tmp_path, "devices:\n  d: {url: 'modbus+rtu:///dev/x?unit=248'}\n") == [
        "devices.d.url: URL parameter unit='248': expected an integer 1..247"]


def test_devices_on_one_serial_port_agree_on_its_settings(tmp_path: Path) -> None:
    # same settings (defaults spelt out or left out), or other ports / other schemes: fine
    line = _line(tmp_path, "devices:\n"
                 "  a: {url: 'modbus+rtu:///dev/x?unit=1'}\n"
                 "  b: {url: 'modbus+rtu:///dev/x?unit=2&baudrate=19200&parity=N'}\n"
                 "  c: {url: 'modbus+rtu:///dev/y?unit=3&baudrate=9600'}\n"
                 "  d: {url: 'modbus+tcp://h:502?unit=4'}\n")
    assert len(line.devices) == 4
    # a setting left out means the driver's default, which differs from the other's
    assert _issues(tmp_path, "devices:\n"
                   "  a: {url: 'modbus+rtu:///dev/x?unit=1&parity=E&stopbits=2'}\n"
                   "  b: {url: 'modbus+rtu:///dev/x?unit=2'}\n"
                   "  c: {url: 'modbus+rtu:///dev/x?unit=3&parity=E&stopbits=2'}\n") == [
        "devices.b.url: serial port '/dev/x' is already used by device 'a' with parity=E, "
        "stopbits=2 (here parity=N, stopbits=1): every device on one serial line needs the same "
        "baudrate, parity, stopbits and bytesize"]


def test_rtu_serial_defaults_are_the_drivers() -> None:
    from smartline.drivers.families.modbus import ModbusOptions
    from smartline.drivers.modbus._link import SerialParams

    defaults = ModbusOptions()
    assert {k: getattr(defaults, k) for k in dataclasses.asdict(SerialParams())} == \
        dataclasses.asdict(SerialParams())


def test_third_party_family_from_a_registry(tmp_path: Path) -> None:
    from smartline.core import DriverFamily, Scheme, param_int
    from smartline.tags import AddressError, parse_memory

    def grammar(text: str) -> object:
        if text == "explode":
            raise RuntimeError("bug in the plug-in")
        if text.startswith("!"):
            raise AddressError("no bangs here", column=0)
        return parse_memory(text)

    family = DriverFamily("acme", (Scheme("acme", "acme_driver:AcmeDriver",
                                          params={"station": param_int(1, 9)}),),
                          grammar, package="acme-things")
    registry = DriverRegistry([family], use_entry_points=False)
    line = _line(tmp_path, "devices:\n  d: {url: 'acme://box?station=3'}\n"
                           "tags:\n  x: {device: d, address: 'x:int32'}\n", registry=registry)
    assert line.devices["d"].scheme.scheme.driver == "acme_driver:AcmeDriver"
    assert line.devices["d"].family == "acme"
    issues = _issues(tmp_path, "devices:\n  d: {url: 'memory://m'}\n", registry=registry)
    assert issues[0].startswith("devices.d.url: unknown URL scheme 'memory'")
    # a bug inside the plug-in's grammar is a located error naming it, and the rest of
    # the file is still checked
    issues = _issues(tmp_path, "devices:\n  d: {url: 'acme://box?station=12'}\n"
                               "tags:\n  x: {device: d, address: explode}\n"
                               "  y: {device: d, address: '!'}\n", registry=registry)
    assert issues == [
        "devices.d.url: URL parameter station='12': expected an integer 1..9",
        "tags.x.address: the acme grammar (package acme-things) failed on 'explode': "
        "RuntimeError: bug in the plug-in",
        "tags.y.address: no bangs here"]
    issues = _issues(tmp_path, "devices:\n  d: {url: 'acme://box'}\n"
                               "tags:\n  x: {device: d, address: explode}\n"
                               "  y: {device: d, address: '!'}\n", registry=registry)
    assert issues == [
        "tags.x.address: the acme grammar (package acme-things) failed on 'explode': "
        "RuntimeError: bug in the plug-in",
        "tags.y.address: no bangs here"]


def test_one_mistake_is_reported_once(tmp_path: Path) -> None:
    # d's URL is unusable, so its tag cannot be checked and is not blamed; e's family is
    # known despite its bad key, so its tag's bad address is found too; the task is not
    # blamed for naming tags that failed
    body = ("devices:\n  d: {url: 'nope://x'}\n  e: {url: 'memory://m', colour: 1}\n"
            "tags:\n  a: {device: d, address: 'whatever'}\n  b: {device: e, address: '1x'}\n"
            "tasks:\n  t: {period_ms: 10, tags: [a, b]}\n")
    assert [i.split(":")[0] for i in _issues(tmp_path, body)] == [
        "devices.d.url", "devices.e.colour", "tags.b.address"]


def test_security_options_only_on_opcua(tmp_path: Path) -> None:
    assert _issues(tmp_path, "devices:\n  d: {url: 'memory://m', security: {policy: None}}\n") \
        == ["devices.d.security: security is not an option of memory devices; it is an option "
            "of opcua devices (memory devices take persist, push)"]


# -- tasks --------------------------------------------------------------------------------

def test_tasks(families: LineConfig) -> None:
    main, log = families.tasks["main"], families.tasks["log"]
    assert main.program == f"{(GOOD / 'logic' / 'main.py').absolute()}:scan"
    assert main.all_tags == ("level", "torque", "oven_temp", "motor_on")
    assert (main.io_deadline_ms, log.io_deadline_ms) == (10.0, 0.25)  # half the period
    assert (main.overrun, main.watchdog) == ("skip", None)


def test_task_config_defaults() -> None:
    task = TaskConfig(name="t", period_ms=8, tags=("a", "b"), inputs=("b", "c"), outputs=("a",),
                      watchdog=WatchdogConfig(time_ms=20))
    assert task.all_tags == ("a", "b", "c")
    assert task.io_deadline_ms == 4
    assert task.watchdog is not None and task.watchdog.sensitivity == 1


def test_module_programs_are_not_imported(tmp_path: Path) -> None:
    line = _line(tmp_path, "devices:\n  d: {url: 'memory://m'}\n"
                           "tasks:\n  t: {period_ms: 10, program: 'no_such_pkg.logic:run'}\n")
    assert line.tasks["t"].program == "no_such_pkg.logic:run"
    for bad in ("run", "pkg.logic:", "pkg..x:run", "pkg.logic:1run"):
        issues = _issues(tmp_path, "devices:\n  d: {url: 'memory://m'}\n"
                                   f"tasks:\n  t: {{period_ms: 10, program: '{bad}'}}\n")
        assert len(issues) == 1 and issues[0].startswith("tasks.t.program: ")


def test_write_only_tag_cannot_be_an_input(tmp_path: Path) -> None:
    body = ("devices:\n  d: {url: 'memory://m'}\ntags:\n  w: {device: d, address: w, access: w}\n"
            "tasks:\n  t: {period_ms: 10, inputs: [w, w]}\n")
    assert _issues(tmp_path, body) == [
        "tasks.t.inputs[0]: tag 'w' is write-only (access w): it cannot be read, so it cannot "
        "be in inputs",
        "tasks.t.inputs[1]: tag 'w' is listed twice in inputs (first at [0])"]


# -- results are frozen -------------------------------------------------------------------

def test_everything_is_immutable(with_profiles: LineConfig) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        with_profiles.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        with_profiles.tags["x"] = with_profiles.tags["vfd_run"]  # type: ignore[index]
    with pytest.raises(TypeError):
        with_profiles.devices["vfd"].options["unit"] = 9  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        with_profiles.devices["vfd"].timeout_s = 9  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        with_profiles.tasks["fast"].period_ms = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        with_profiles.devices["vfd"].profile.points["x"] = None  # type: ignore[index,union-attr]
    assert isinstance(with_profiles.tasks["fast"].outputs, tuple)


# -- check_file ----------------------------------------------------------------------------

def test_check_file_tells_kinds_apart_even_without_a_format_key(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("vendor: acme\nmodel: x\npoints: {}\n")
    with pytest.raises(ConfigError, match="a device profile starts with 'smartline-profile: 1'"):
        check_file(path)


def test_check_file_accepts_str_and_pathlike() -> None:
    path = GOOD / "line-with-profiles.yaml"
    assert check_file(str(path)) == check_file(path)
    assert check_file(path).endswith(": line 'profiles-1': 3 devices, 13 tags, 2 tasks")


def test_tags_of_a_device_whose_profile_failed_are_not_blamed(tmp_path: Path) -> None:
    body = ("devices:\n  v: {url: 'modbus+tcp://h:1', profile: acme/missing, points: all}\n"
            "tasks:\n  t: {period_ms: 10, tags: [v.speed, other]}\n")
    issues = _issues(tmp_path, body)
    assert [i.split(":")[0] for i in issues] == ["devices.v.profile", "tasks.t.tags[1]"]


def test_profile_defaults_hold_plain_options_only(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("smartline-profile: 1\nvendor: acme\nmodel: p\nfamily: opcua\n"
                    "manual: {title: t}\ndefaults: {timeout_ms: 300, user: {name: op}}\n"
                    "points:\n  a: {address: 'ns=2;i=1'}\n")
    with pytest.raises(ConfigError) as info:
        load_profile(path)
    assert [(i.path, i.message) for i in info.value.issues] == [
        ("defaults.user", "user is set per device in the line file, not in a profile")]


def test_a_missing_vendor_family_names_its_package(tmp_path: Path) -> None:
    issues = _issues(tmp_path, "devices:\n  d: {url: 'acme+ftp://box', package: acme-ftp>=2}\n")
    assert issues == ["devices.d.url: no installed driver family serves acme+ftp:// URLs; this "
                      "device's driver comes from the package 'acme-ftp>=2': install it with "
                      "pip install 'acme-ftp>=2'"]
    profile = tmp_path / "p.yaml"
    profile.write_text("smartline-profile: 1\nvendor: acme\nmodel: ftp-1\nfamily: acmeftp\n"
                       "package: acme-ftp\nmanual: {title: t}\npoints: {x: {address: x}}\n")
    with pytest.raises(ConfigError) as info:
        load_profile(profile)
    assert [f"{i.path}: {i.message}" for i in info.value.issues] == [
        "family: driver family 'acmeftp' is not installed; it comes from the package "
        "'acme-ftp': install it with pip install 'acme-ftp'"]


def test_check_notes_a_protocol_library_that_is_not_installed(tmp_path: Path) -> None:
    from smartline.config import check_file
    from smartline.core import DriverFamily, Scheme
    from smartline.tags import parse_memory

    family = DriverFamily("needy", (Scheme("needy", "needy:D"),), parse_memory,
                          requires="smartline[needy]", imports=("json", "no_such_lib_xyz"))
    line = tmp_path / "line.yaml"
    line.write_text("smartline: 1\nline: l\ndevices:\n  a: {url: 'needy://x'}\n"
                    "  b: {url: 'needy://y'}\ntags:\n  t: {device: a, address: t}\n")
    summary = check_file(line, registry=DriverRegistry([family], use_entry_points=False))
    assert summary.splitlines()[1:] == [
        "  note: devices a, b: the needy driver needs no_such_lib_xyz, which is not installed "
        "here: pip install 'smartline[needy]'"]


def test_a_family_can_describe_its_devices_by_a_protocol_section(tmp_path: Path) -> None:
    """DriverFamily.profile_protocol validates a profile's protocol section with located
    errors, profile_check ties it to the points, and the driver gets it in its spec."""
    from pydantic import BaseModel, ConfigDict

    from smartline.core import DriverFamily, Scheme
    from smartline.tags import parse_profile

    class Proto(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
        send: dict[str, str]

    def check(protocol: Proto, points: object) -> list[tuple[tuple[str | int, ...], str]]:
        assert isinstance(points, Mapping)
        return [(("points", name), f"no command reads {name!r}")
                for name in points if name not in protocol.send]

    family = DriverFamily("gauge", (Scheme("gauge", "gauge_driver:Gauge"),),
                          lambda text: parse_profile(text, family="gauge"), named_points=True,
                          profile_protocol=Proto, profile_check=check, package="acme-gauges")
    registry = DriverRegistry([family], use_entry_points=False)
    folder = tmp_path / "profiles" / "acme"
    folder.mkdir(parents=True)
    head = ("smartline-profile: 1\nvendor: acme\nmodel: g1\nfamily: gauge\n"
            "manual: {title: G1 manual}\n")
    (folder / "g1.yaml").write_text(head + "protocol:\n  send: {pressure: 'PR1'}\n"
                                    "points:\n  pressure: {unit: mbar}\n")
    body = ("profile_paths: [profiles]\ndevices:\n  g: {url: 'gauge://x', profile: acme/g1}\n"
            "tags:\n  p: {device: g, address: pressure}\n")
    line = _line(tmp_path, body, registry=registry)
    protocol = line.devices["g"].spec().protocol
    assert isinstance(protocol, Proto) and protocol.send == {"pressure": "PR1"}

    (folder / "g1.yaml").write_text(head + "protocol:\n  send: {pressure: 1}\n  colour: red\n"
                                    "points:\n  pressure: {}\n  temperature: {}\n")
    with pytest.raises(ConfigError) as info:
        load_profile(folder / "g1.yaml", registry=registry)
    found = [(i.line, i.path, i.message) for i in info.value.issues]
    assert [f[:2] for f in found] == [(7, "protocol.send.pressure"), (8, "protocol.colour")]
    assert "colour" in found[1][2]
    (folder / "g1.yaml").write_text(head + "protocol:\n  send: {pressure: 'PR1'}\n"
                                    "points:\n  pressure: {}\n  temperature: {}\n")
    with pytest.raises(ConfigError) as info:
        load_profile(folder / "g1.yaml", registry=registry)
    assert [(i.path, i.message) for i in info.value.issues] == [
        ("points.temperature", "no command reads 'temperature'")]
    (folder / "g1.yaml").write_text(head + "points:\n  pressure: {}\n")
    with pytest.raises(ConfigError, match="a gauge profile needs a 'protocol' section"):
        load_profile(folder / "g1.yaml", registry=registry)
    assert _issues(tmp_path, "devices:\n  g: {url: 'gauge://x'}\n", registry=registry) == [
        "devices.g: a gauge device needs 'profile: vendor/model': the profile describes the "
        "instrument's protocol"]


def test_a_protocol_section_where_the_family_has_none_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("smartline-profile: 1\nvendor: acme\nmodel: m\nfamily: memory\n"
                    "manual: {title: T}\nprotocol: {send: x}\npoints:\n  a: {address: a}\n")
    with pytest.raises(ConfigError) as info:
        load_profile(path)
    assert [(i.line, i.path) for i in info.value.issues] == [(6, "protocol")]
    assert "memory profiles have no protocol section" in info.value.issues[0].message


def test_grbl_and_mtconnect_keys_stay_with_their_scheme(tmp_path: Path) -> None:
    body = ("devices:\n"
            "  mill: {url: 'mtconnect+http://127.0.0.1:5000/mill', rx_buffer_bytes: 64}\n"
            "  cnc: {url: 'grbl:///dev/ttyUSB0', interval_ms: 50}\n"
            "  ok: {url: 'grbl:///dev/ttyUSB1', rx_buffer_bytes: 256}\n")
    assert _issues(tmp_path, body) == [
        "devices.mill.rx_buffer_bytes: rx_buffer_bytes applies to grbl controllers, not "
        "mtconnect+http agents",
        "devices.cnc.interval_ms: interval_ms applies to mtconnect+http URLs, not grbl"]
