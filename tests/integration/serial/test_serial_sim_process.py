"""``python -m smartline.hil.serial``: a simulated instrument as its own process."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import serial


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "smartline.hil.serial", *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_serves_a_profile_on_a_pty_and_tcp_until_sigterm() -> None:
    proc = _start("mettler-toledo/mt-sics")
    try:
        assert proc.stdout is not None
        urls = [json.loads(proc.stdout.readline())["url"] for _ in range(2)]
        assert urls[0].startswith("serial:///dev/") and urls[1].startswith("serial://socket://")
        for url in urls:
            with serial.serial_for_url(url.removeprefix("serial://"), timeout=2) as port:
                port.write(b"S\r\n")
                assert port.read_until(b"\r\n").split() == [b"S", b"S", b"100.00", b"g"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.wait()


def test_a_scanner_scans_what_is_typed() -> None:
    proc = _start("honeywell/xenon-1900")
    try:
        assert proc.stdout is not None and proc.stdin is not None
        url = json.loads(proc.stdout.readline())["url"]
        proc.stdout.readline()
        with serial.serial_for_url(url.removeprefix("serial://"), timeout=2) as port:
            proc.stdin.write("]C10109501101530003\n")
            proc.stdin.flush()
            assert port.read_until(b"\r\n") == b"]C10109501101530003\r\n"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.wait()


def test_an_unknown_profile_exits_2_naming_it() -> None:
    r = subprocess.run([sys.executable, "-m", "smartline.hil.serial", "acme/nothing"],
                       capture_output=True, text=True, timeout=30, check=False)
    assert r.returncode == 2 and "'acme/nothing' not found" in r.stderr
    assert "Traceback" not in r.stderr
