"""The serial instrument simulator, spoken to with bare pyserial (no smartline driver):
replies written from the profiles, per-instrument state, and every fault on the wire."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import serial

from smartline.config import data_dir
from smartline.hil.serial import ScpiBehaviour, SerialInstrumentSim, u_expo_new

SCALE = data_dir("drivers") / "mettler-toledo" / "mt-sics.yaml"
GAUGE = data_dir("drivers") / "pfeiffer-vacuum" / "ppt-100.yaml"
SCANNER = data_dir("drivers") / "honeywell" / "xenon-1900.yaml"


@pytest.fixture
def scale() -> Iterator[tuple[SerialInstrumentSim, serial.Serial]]:
    with SerialInstrumentSim(SCALE) as sim:
        port = serial.Serial(sim.pty_path, timeout=0.5)
        yield sim, port
        port.close()


def ask(port: serial.Serial, text: str, end: bytes = b"\r\n") -> bytes:
    port.write(text.encode("ascii") + end)
    return port.read_until(end)


def test_mt_sics_state(scale: tuple[SerialInstrumentSim, serial.Serial]) -> None:
    sim, port = scale
    assert ask(port, "S") == b"S S     100.00 g\r\n"
    assert ask(port, "I4") == b'I4 A "B207696838"\r\n'
    sim.set("stable", False)
    assert ask(port, "S") == b"S I\r\n"
    assert ask(port, "SI") == b"S D     100.00 g\r\n"
    assert ask(port, "Z") == b"Z I\r\n"
    sim.set("stable", True)
    assert ask(port, "T") == b"T S     100.00 g\r\n"
    assert ask(port, "S") == b"S S       0.00 g\r\n"
    assert ask(port, "TA 30.00 g") == b"TA A      30.00 g\r\n"
    assert ask(port, "S") == b"S S      70.00 g\r\n"
    assert ask(port, "Z") == b"Z A\r\n"
    assert ask(port, "S") == b"S S       0.00 g\r\n"
    assert ask(port, "@") == b'I4 A "B207696838"\r\n'
    assert ask(port, "XYZ") == b"ES\r\n"
    assert list(sim.instrument.received)[-1] == "XYZ"


def test_faults_on_the_wire(scale: tuple[SerialInstrumentSim, serial.Serial]) -> None:
    sim, port = scale
    inst = sim.instrument
    inst.fault("no_reply")
    assert ask(port, "S") == b""
    inst.fault("partial")
    assert ask(port, "S") == b"S S     10"
    inst.fault("noise")
    assert ask(port, "S") == b"\x00\xff\x13\x7fS S     100.00 g\r\n"
    inst.fault("unexpected", text="Z A")
    assert ask(port, "S") == b"Z A\r\n"
    inst.fault("error", command="stable_weight", text="S +", count=2)
    assert ask(port, "SI") == b"S S     100.00 g\r\n"  # another command: untouched
    assert [ask(port, "S") for _ in range(3)] == [b"S +\r\n", b"S +\r\n",
                                                  b"S S     100.00 g\r\n"]
    inst.garbage = True
    assert ask(port, "S") == b"\x15\xfe#?~\r\n"
    inst.clear()
    inst.latency_s = 0.2
    t0 = time.monotonic()
    assert ask(port, "S") == b"S S     100.00 g\r\n"
    assert time.monotonic() - t0 >= 0.19


def test_the_same_instrument_over_tcp() -> None:
    with SerialInstrumentSim(SCALE) as sim:
        port = serial.serial_for_url(sim.socket_url(), timeout=0.5)
        assert ask(port, "S") == b"S S     100.00 g\r\n"
        assert sim.connections() == 1
        port.close()


def test_scpi_error_queue_overflow_rule() -> None:
    q = ScpiBehaviour(size=3)
    for code in (1, 2, 3, 4, 5):
        q.push(-code, f"e{code}")
    assert list(q.queue) == [(-1, "e1"), (-2, "e2"), (-350, "Queue overflow")]


def test_pfeiffer_gauge_checksums_and_no_def() -> None:
    assert u_expo_new(1000.0) == "100023" and u_expo_new(0.0015) == "150017"
    with SerialInstrumentSim(GAUGE) as sim:
        port = serial.Serial(sim.pty_path, timeout=0.3)
        assert ask(port, "0010074002=?106", b"\r") == b"0011074006100023025\r"
        assert ask(port, "0010074002=?107", b"\r") == b""  # bad checksum: ignored
        q = "0010034902=?"
        ck = f"{sum(q.encode()) % 256:03d}"
        reply = ask(port, q + ck, b"\r")
        assert reply[:-4] == b"0011034906NO_DEF"
        assert int(reply[-4:-1]) == sum(reply[:-4]) % 256
        sim.instrument.fault("bad_checksum")
        reply = ask(port, "0010074002=?106", b"\r")
        assert reply == b"0011074006100023026\r"
        port.close()


def test_scanner_prints_and_stops() -> None:
    with SerialInstrumentSim(SCANNER) as sim:
        port = serial.Serial(sim.pty_path, timeout=0.3)
        sim.scan("]E05901234123457")
        assert port.read_until(b"\r\n") == b"]E05901234123457\r\n"
        port.write(b"\x16T\r")  # serial trigger: prints the code in front of it
        assert port.read_until(b"\r\n") == b"]E05901234123457\r\n"
        sim.stop_stream()
        sim.scan("]E04006381333931")
        assert port.read_until(b"\r\n") == b""
        port.close()
