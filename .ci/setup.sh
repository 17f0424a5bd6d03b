#!/bin/sh
# Installs everything the test suite needs on a fresh Debian/Ubuntu machine:
# socat (links two ptys for the Modbus RTU tests), mosquitto (the MQTT broker the Sparkplug
# tests start on a free loopback port; mosquitto_passwd for its password files), chromium
# (the report is checked in a headless browser) and the package with its test extras in
# .venv. Safe to run again.
set -eu
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if ! command -v socat >/dev/null 2>&1 || ! command -v mosquitto_passwd >/dev/null 2>&1 \
        || ! command -v chromium >/dev/null 2>&1; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq socat mosquitto \
        mosquitto-clients chromium >/dev/null
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test]"
.venv/bin/python -m pip install -q --no-deps -e examples/vendor-driver
