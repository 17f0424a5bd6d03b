import pytest

from smartline.core import parse_url


@pytest.mark.parametrize(
    ("text", "scheme", "host", "port", "path", "params"),
    [
        ("modbus+tcp://127.0.0.1:5020?unit=1", "modbus+tcp", "127.0.0.1", 5020, "", {"unit": "1"}),
        ("s7://10.0.0.5?rack=0&slot=1", "s7", "10.0.0.5", None, "", {"rack": "0", "slot": "1"}),
        ("opc.tcp://plc.local:4840/smartline/", "opc.tcp", "plc.local", 4840, "/smartline/", {}),
        ("mtconnect+http://127.0.0.1:5000/mill", "mtconnect+http", "127.0.0.1", 5000, "/mill", {}),
        ("modbus+rtu:///dev/ttyUSB0?baudrate=19200&parity=E&unit=3", "modbus+rtu", None, None,
         "/dev/ttyUSB0", {"baudrate": "19200", "parity": "E", "unit": "3"}),
        ("modbus+rtu://socket://127.0.0.1:4001?unit=2", "modbus+rtu", None, None,
         "socket://127.0.0.1:4001", {"unit": "2"}),
        ("serial://loop://?baudrate=9600", "serial", None, None, "loop://", {"baudrate": "9600"}),
        ("opc.tcp://[::1]:4840", "opc.tcp", "::1", 4840, "", {}),
    ],
)
def test_parse_url(text, scheme, host, port, path, params):
    url = parse_url(text)
    assert (url.scheme, url.host, url.port, url.path, dict(url.params)) == (
        scheme, host, port, path, params)


def test_url_round_trips_through_str():
    for text in ("modbus+tcp://127.0.0.1:5020?unit=1", "modbus+rtu:///dev/ttyUSB0?baudrate=19200",
                 "opc.tcp://[::1]:4840/x"):
        assert str(parse_url(text)) == text


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("127.0.0.1:502", "expected a URL"),
        ("modbus+tcp://127.0.0.1:99999", "port"),
        ("modbus+tcp://127.0.0.1:abc", "port must be a number"),
        ("modbus+tcp://:502", "expected a host"),
        ("modbus+rtu://?unit=1", "expected a serial port"),
        ("mod bus://x", "bad URL scheme"),
    ],
)
def test_bad_urls_say_what_is_wrong(text, fragment):
    with pytest.raises(ValueError, match=fragment):
        parse_url(text)
