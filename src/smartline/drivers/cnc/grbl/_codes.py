"""GRBL 1.1 error and alarm codes with their meanings (gnea/grbl
``doc/csv/error_codes_en_US.csv`` and ``doc/csv/alarm_codes_en_US.csv``)."""

from __future__ import annotations

from types import MappingProxyType

__all__ = ["ALARMS", "CRITICAL_ALARMS", "ERRORS", "alarm_meaning", "error_meaning"]

ERRORS = MappingProxyType({
    1: "expected command letter (G-code words are a letter and a value)",
    2: "bad number format (missing or invalid numeric value)",
    3: "'$' system command not recognized or supported",
    4: "negative value received for an expected positive value",
    5: "homing cycle is not enabled ($22)",
    6: "minimum step pulse time must be greater than 3 usec",
    7: "EEPROM read failed; affected settings restored to defaults",
    8: "'$' command needs the controller Idle",
    9: "G-code locked out during alarm or jog state",
    10: "soft limits cannot be enabled without homing",
    11: "line too long (more than 79 characters); not executed",
    12: "setting would make the step rate exceed 30 kHz",
    13: "safety door opened",
    14: "build info or startup line too long for EEPROM; not stored",
    15: "jog target exceeds machine travel; jog ignored",
    16: "invalid jog command (no '=' or prohibited G-code)",
    17: "laser mode requires PWM output",
    20: "unsupported or invalid G-code command",
    21: "more than one G-code command from the same modal group",
    22: "feed rate has not been set or is undefined",
    23: "G-code command requires an integer value",
    24: "more than one G-code command that requires axis words",
    25: "repeated G-code word in block",
    26: "no axis words in block for a command that requires them",
    27: "line number value is invalid",
    28: "G-code command is missing a required value word",
    29: "G59.x work coordinate systems are not supported",
    30: "G53 only allowed with G0 and G1 motion modes",
    31: "axis words in block when no command or modal state uses them",
    32: "G2/G3 arcs require at least one in-plane axis word",
    33: "motion command target is invalid",
    34: "arc radius value is invalid",
    35: "G2/G3 arcs require at least one in-plane offset word",
    36: "unused value words in block",
    37: "G43.1 tool length offset not assigned to the tool length axis",
    38: "tool number greater than the maximum supported",
})
"""``error:N`` → meaning."""

ALARMS = MappingProxyType({
    1: "hard limit triggered; machine position likely lost, re-homing recommended",
    2: "soft limit: G-code motion target exceeds machine travel; position retained",
    3: "reset while in motion; position may be lost, re-homing recommended",
    4: "probe fail: probe not in the expected initial state",
    5: "probe fail: probe did not contact the workpiece",
    6: "homing fail: reset during the homing cycle",
    7: "homing fail: safety door opened during homing",
    8: "homing fail: pull-off failed to clear the limit switch",
    9: "homing fail: limit switch not found within the search distance",
})
"""``ALARM:N`` → meaning."""

CRITICAL_ALARMS = frozenset({1, 2})
"""Alarms after which GRBL answers nothing (not even ``?``) until a soft reset."""


def error_meaning(code: int) -> str:
    """The meaning of ``error:code`` in words."""
    return ERRORS.get(code, f"unknown error code {code}")


def alarm_meaning(code: int) -> str:
    """The meaning of ``ALARM:code`` in words."""
    return ALARMS.get(code, f"unknown alarm code {code}")
