"""KPIs and the digitalisation report (issue #13): the line's history (SQLite), OEE, MTBF,
MTTR and downtime by stop reason, and the self-contained HTML report."""

from __future__ import annotations

from ._history import (
    RECORD_PERIOD_NS,
    HistoryRecorder,
    LineHistory,
    default_history_path,
    recorder_attach,
)
from ._kpi import Bucket, Interval, Kpis, bucket_of, downtime_by_reason, failures, intervals, kpis
from ._report import (
    PLOT_IDS,
    ReportData,
    build_report,
    parse_design_speeds,
    parse_since,
    render_report,
)

__all__ = [
    "PLOT_IDS",
    "RECORD_PERIOD_NS",
    "Bucket",
    "HistoryRecorder",
    "Interval",
    "Kpis",
    "LineHistory",
    "ReportData",
    "bucket_of",
    "build_report",
    "default_history_path",
    "downtime_by_reason",
    "failures",
    "intervals",
    "kpis",
    "parse_design_speeds",
    "parse_since",
    "recorder_attach",
    "render_report",
]
