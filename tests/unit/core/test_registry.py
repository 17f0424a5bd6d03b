"""The family registry: built-in families, entry-point plug-ins, and plug-ins that fail."""

import sys
from pathlib import Path

import pytest

import smartline.core._registry as r
from smartline.core import DriverFamily, DriverNotAvailableError, DriverRegistry, Scheme
from smartline.tags import parse_memory


def _family(name: str, *schemes: str, driver: str = "json.decoder:JSONDecoder",
            requires: str | None = None) -> DriverFamily:
    return DriverFamily(name, tuple(Scheme(s, driver) for s in schemes), parse_memory,
                        requires=requires)


def test_builtin_schemes_map_to_families():
    reg = DriverRegistry(use_entry_points=False)
    assert reg.info("modbus+tcp").family.name == "modbus"
    assert reg.info("modbus+rtu").scheme.serial
    assert reg.info("modbus+tcp").scheme.default_port == 502
    assert reg.info("s7").family.name == "s7"
    assert reg.info("opc.tcp").family.name == "opcua"
    assert reg.info("serial").family.name == "serial"
    assert reg.info("mtconnect+http").family.name == "cnc"
    assert reg.info("memory").family.name == "memory"
    assert set(reg.families) == {"memory", "modbus", "s7", "opcua", "serial", "cnc"}
    assert reg.problems == ()


def test_builtin_families_are_registered_as_entry_points_too():
    # smartline's own families come through the same entry point group a vendor's do
    names = {ep.name: ep.value for ep in r.entry_points(group=r.ENTRY_POINT_GROUP)}
    for name, target in r.BUILTIN_FAMILIES.items():
        assert names.get(name) == target
    assert DriverRegistry().problems == ()  # no duplicate reported for them


def test_unknown_scheme_lists_known_ones_and_says_how_to_get_it():
    with pytest.raises(DriverNotAvailableError,
                       match=r"unknown URL scheme 'ftp'.*modbus\+tcp.*install the package"):
        DriverRegistry(use_entry_points=False).info("ftp")


def test_load_is_lazy_and_returns_the_class():
    from smartline.drivers.memory import MemoryDriver

    assert DriverRegistry().load("memory") is MemoryDriver


def test_missing_driver_module_is_not_available():
    reg = DriverRegistry([_family("x", "x", driver="smartline.tests_nonexistent_mod:X")],
                         use_entry_points=False)
    with pytest.raises(DriverNotAvailableError, match="not available in this version"):
        reg.load("x")
    reg = DriverRegistry([_family("y", "y", driver="json.decoder:NoSuchClass")],
                         use_entry_points=False)
    with pytest.raises(DriverNotAvailableError, match="does not exist"):
        reg.load("y")


def test_missing_third_party_module_names_the_requirement(tmp_path, monkeypatch):
    (tmp_path / "needs_absent_lib.py").write_text("import absent_protocol_lib_xyz\nclass D: pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = DriverRegistry([_family("z", "z", driver="needs_absent_lib:D",
                                  requires="smartline[s7]")], use_entry_points=False)
    with pytest.raises(DriverNotAvailableError, match=r"pip install 'smartline\[s7\]'"):
        reg.load("z")


class _EP:
    def __init__(self, name: str, value: str) -> None:
        self.name, self.value = name, value
        self.dist = None


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch):
    """Entry points pointing at modules written into tmp_path."""
    monkeypatch.syspath_prepend(str(tmp_path))
    eps: list[_EP] = []
    monkeypatch.setattr(r, "entry_points",
                        lambda group: list(eps) if group == r.ENTRY_POINT_GROUP else [])

    def add(name: str, module: str, source: str, attr: str = "FAMILY") -> None:
        (tmp_path / f"{module}.py").write_text(source)
        sys.modules.pop(module, None)
        eps.append(_EP(name, f"{module}:{attr}"))
    return add


GOOD_PLUGIN = """
from smartline.core import DriverFamily, Scheme
from smartline.tags import parse_memory
FAMILY = DriverFamily("acme", (Scheme("acme+tcp", "acme_drv:D", 7878),), parse_memory,
                      package="acme-tally")
"""


def test_entry_points_add_a_family_with_its_schemes(plugins):
    plugins("acme", "acme_fam", GOOD_PLUGIN)
    reg = DriverRegistry()
    info = reg.info("acme+tcp")
    assert info.family.name == "acme" and info.scheme.driver == "acme_drv:D"
    assert reg.family("acme").package == "acme-tally"
    assert "modbus" in reg.families  # the built-ins are still there


def test_a_plugin_that_fails_to_import_is_recorded_not_raised(plugins):
    plugins("broken", "broken_fam", "raise RuntimeError('boom at import')\n")
    reg = DriverRegistry()
    assert "modbus" in reg.families
    [problem] = reg.problems
    assert problem.plugin == "broken" and "RuntimeError: boom at import" in problem.message
    with pytest.raises(DriverNotAvailableError, match=r"plug-in 'broken'.*boom at import"):
        reg.info("broken+tcp")  # an unknown scheme names the broken plug-in
    with pytest.raises(DriverNotAvailableError, match=r"unusable.*boom"):
        reg.family("broken")


def test_a_plugin_claiming_another_familys_scheme_is_refused(plugins):
    plugins("evil", "evil_fam", """
from smartline.core import DriverFamily, Scheme
from smartline.tags import parse_memory
FAMILY = DriverFamily("evil", (Scheme("modbus+tcp", "evil:D"), Scheme("evil", "evil:D")),
                      parse_memory)
""")
    reg = DriverRegistry()
    assert "evil" not in reg.families
    [problem] = reg.problems
    assert "modbus+tcp" in problem.message and "'modbus'" in problem.message
    with pytest.raises(DriverNotAvailableError, match=r"plug-in 'evil'.*claims URL scheme"):
        reg.info("modbus+tcp")  # contested: the user learns about it where it matters
    assert reg.info("memory").family.name == "memory"


def test_a_plugin_that_is_not_a_family_or_misnamed_is_refused(plugins):
    plugins("thing", "thing_fam", "FAMILY = 42\n")
    plugins("wrongname", "wrong_fam", GOOD_PLUGIN)
    reg = DriverRegistry()
    messages = sorted(p.message for p in reg.problems)
    assert any("is a int, not a smartline.core.DriverFamily" in m for m in messages)
    assert any("declares family 'acme'" in m for m in messages)
