"""GRBL 1.1 CNC controllers over a serial line (``grbl://PORT``; docs/reference/grbl.md).

:class:`GrblDriver` reads state, positions, overrides and settings as points and writes
real-time commands, overrides, settings and MDI lines; :class:`GcodeJob` streams a
:class:`GcodeProgram` with character counting and stops safely on an alarm or an error.
"""

from ._codes import ALARMS, CRITICAL_ALARMS, ERRORS, alarm_meaning, error_meaning
from ._driver import GRBL_POINTS, LINE_MAX_CHARS, GrblDriver, GrblPlan, line_problem, point_kind
from ._job import (
    GcodeJob,
    GcodeLine,
    GcodeProgram,
    JobAlarm,
    JobError,
    JobOutcome,
    JobProgress,
    StreamMode,
    clean_line,
)
from ._link import ControllerResetError, GrblLink
from ._protocol import GrblStatus, parse_status

__all__ = [
    "ALARMS",
    "CRITICAL_ALARMS",
    "ERRORS",
    "GRBL_POINTS",
    "LINE_MAX_CHARS",
    "ControllerResetError",
    "GcodeJob",
    "GcodeLine",
    "GcodeProgram",
    "GrblDriver",
    "GrblLink",
    "GrblPlan",
    "GrblStatus",
    "JobAlarm",
    "JobError",
    "JobOutcome",
    "JobProgress",
    "StreamMode",
    "alarm_meaning",
    "clean_line",
    "error_meaning",
    "line_problem",
    "parse_status",
    "point_kind",
]
