import pytest

from smartline.core import DriverNotAvailableError, DriverRegistry, SchemeInfo


def test_builtin_schemes_map_to_families():
    reg = DriverRegistry(use_entry_points=False)
    assert reg.info("modbus+tcp").family == "modbus"
    assert reg.info("modbus+rtu").serial
    assert reg.info("s7").family == "s7"
    assert reg.info("opc.tcp").family == "opcua"
    assert reg.info("serial").family == "profile"
    assert reg.info("memory").family == "memory"


def test_unknown_scheme_lists_known_ones():
    with pytest.raises(DriverNotAvailableError, match=r"unknown URL scheme 'ftp'.*modbus\+tcp"):
        DriverRegistry(use_entry_points=False).info("ftp")


def test_load_is_lazy_and_returns_the_class():
    from smartline.drivers.memory import MemoryDriver

    assert DriverRegistry().load("memory") is MemoryDriver


def test_missing_dependency_names_the_extra():
    reg = DriverRegistry([SchemeInfo("x", "smartline.tests_nonexistent_mod:X", "modbus", "modbus")],
                         use_entry_points=False)
    with pytest.raises(DriverNotAvailableError, match="not available"):
        reg.load("x")
    reg = DriverRegistry([SchemeInfo("y", "json.decoder:NoSuchClass", "modbus", "modbus")],
                         use_entry_points=False)
    with pytest.raises(DriverNotAvailableError, match="does not exist"):
        reg.load("y")


def test_missing_third_party_module_names_the_extra(tmp_path, monkeypatch):
    (tmp_path / "needs_absent_lib.py").write_text("import absent_protocol_lib_xyz\nclass D: pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = DriverRegistry([SchemeInfo("z", "needs_absent_lib:D", "s7", "s7")],
                         use_entry_points=False)
    with pytest.raises(DriverNotAvailableError, match=r"pip install 'smartline\[s7\]'"):
        reg.load("z")


def test_entry_points_add_third_party_schemes(monkeypatch):
    import smartline.core._registry as r

    class EP:
        name = "acme"
        value = "acme_driver:AcmeDriver"

    monkeypatch.setattr(r, "entry_points",
                        lambda group: [EP()] if group == r.ENTRY_POINT_GROUP else [])
    assert DriverRegistry().info("acme").target == "acme_driver:AcmeDriver"
