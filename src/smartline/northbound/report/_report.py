"""``smartline report LINE``: one self-contained HTML file (issue #13) — KPIs per PackML unit
(OEE, MTBF, MTTR), downtime by stop reason, cycle times, and the line's digitalisation
figures, each with its definition on the page. Plots are inline SVG drawn by matplotlib
(its SVG backend, no pyplot state): the file needs no network, no other file, no script.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ...config import LineConfig
from ...core import default_audit_path
from ...tags import Access, DataType
from ._history import LineHistory, RunRow
from ._kpi import (
    NS,
    Bucket,
    Interval,
    Kpis,
    PeriodKpis,
    ReasonDowntime,
    best_observed_rate,
    downtime_by_reason,
    intervals,
    kpis,
    oee_by_period,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ...recipes._units import Units
    from .._config import NorthboundConfig

__all__ = ["PLOT_IDS", "DigitalFigure", "ReportData", "UnitReport", "build_report",
           "parse_design_speeds", "parse_since", "render_report"]

log = logging.getLogger(__name__)

_INTERNAL_SCHEMES = frozenset({"memory"})  # devices without a wire (the units' PackTags)
_PERIODS_S = (10, 30, 60, 300, 900, 1800, 3600, 4 * 3600, 86400)
_MAX_TREND_POINTS = 48
PLOT_IDS = ("plot-cycle-time", "plot-oee-trend", "plot-downtime-pareto")
"""The ids of the three plots' ``<svg>`` elements (each also has an ``aria-label``)."""


@dataclass(frozen=True, slots=True)
class DigitalFigure:
    """One digitalisation figure: ``numerator / denominator`` with its definition."""

    key: str
    title: str
    numerator: float
    denominator: float
    definition: str
    detail: str = ""

    @property
    def share(self) -> float | None:
        return self.numerator / self.denominator if self.denominator else None


@dataclass(frozen=True, slots=True)
class UnitReport:
    """One unit's KPIs, its OEE trend and where its ideal rate comes from."""

    unit: str
    kpis: Kpis
    trend: tuple[PeriodKpis, ...]
    rate_source: str  # "design speed" | "best observed" | "none"


@dataclass(frozen=True, slots=True)
class ReportData:
    """Everything the report shows, computed (what :func:`render_report` renders)."""

    line: str
    since_ns: int | None
    start_ns: int | None
    end_ns: int | None
    runs: tuple[RunRow, ...]
    units: tuple[UnitReport, ...]
    downtime: tuple[ReasonDowntime, ...]
    period_ns: int
    figures: tuple[DigitalFigure, ...]
    cycles: Mapping[str, Mapping[str, object]]  # task -> stats (latest run)
    cycle_histograms: Mapping[str, tuple[tuple[float, int], ...]]  # task -> (ms, count)
    devices: Mapping[str, float | None]  # device -> share of run time connected
    tag_good: Mapping[str, float | None]  # tag -> share of samples GOOD
    notes: tuple[str, ...] = field(default_factory=tuple)


def _period_ns(span_ns: int, period_s: float | None) -> int:
    if period_s is not None:
        return max(1, round(period_s * NS))
    for p in _PERIODS_S:
        if span_ns / (p * NS) <= _MAX_TREND_POINTS:
            return p * NS
    return _PERIODS_S[-1] * NS


def build_report(line_config: LineConfig, history: LineHistory, *,
                 since_ns: int | None = None, design_speed: Mapping[str, float] | None = None,
                 period_s: float | None = None, units: Units | None = None,
                 northbound: NorthboundConfig | None = None, audit_path: Path | None = None,
                 env: Mapping[str, str] | None = None) -> ReportData:
    """The report's numbers. ``design_speed``: unit → ideal parts per minute (else the best
    observed rate); ``units``/``northbound``: the line file's sections (read from the file
    when None); ``audit_path``: the audit trail (default ``$SMARTLINE_AUDIT`` or
    ``~/.local/state/smartline/audit.jsonl``). ``ConfigError`` for a bad section."""
    if units is None:
        from ...recipes._units import load_units
        units = load_units(line_config)
    if northbound is None:
        from .._config import load_northbound
        northbound = load_northbound(line_config)
    env = os.environ if env is None else env
    if audit_path is None:
        audit_path = default_audit_path(env)
    design = dict(design_speed or {})
    unknown = sorted(set(design) - set(units.names) - set(history.units()))
    notes = [f"--design-speed for unknown unit {u!r} ignored" for u in unknown]
    runs = tuple(history.runs(since_ns))
    if any(r.clock == "virtual" for r in runs):
        notes.append("Recorded in virtual time (a simulation): the clock does not move while "
                     "a cycle works, so cycle times read 0; times and KPIs are plant time.")
    if not runs:
        notes.append("No run recorded in this history (smartline run records it).")
    run_ids = {r.id for r in runs}
    ends = {r.id: r.end_ns for r in runs}
    start = min((r.started_ns for r in runs), default=None)
    if start is not None and since_ns is not None:
        start = max(start, since_ns)
    end = max((r.end_ns for r in runs), default=None)
    period = _period_ns((end - start) if start is not None and end is not None else 0, period_s)
    names = list(dict.fromkeys([*units.names, *history.units()]))
    by_unit: dict[str, list[Interval]] = {}
    reports: list[UnitReport] = []
    for u in names:
        ivs = intervals([s for s in history.states(u) if s.run in run_ids], ends,
                        since_ns=since_ns)
        deltas = [c for c in history.counters(u) if c.run in run_ids
                  and (since_ns is None or c.t_ns >= since_ns)]
        by_unit[u] = ivs
        rate: float | None
        if u in design:
            rate, source = design[u] / 60.0, "design speed"
        else:
            rate = best_observed_rate(ivs, deltas)
            source = "best observed" if rate is not None else "none"
        k = kpis(ivs, deltas, ideal_rate_per_s=rate)
        trend = oee_by_period(ivs, deltas, period_ns=period, ideal_rate_per_s=rate,
                              origin_ns=start)
        reports.append(UnitReport(u, k, tuple(trend), source))
    cycles, hists = _cycles(history, run_ids)
    tag_good = _tag_good(history, run_ids)
    figures = _figures(line_config, units, northbound, tag_good, audit_path)
    return ReportData(
        line=line_config.name, since_ns=since_ns, start_ns=start, end_ns=end, runs=runs,
        units=tuple(reports), downtime=tuple(downtime_by_reason(by_unit)), period_ns=period,
        figures=tuple(figures), cycles=cycles, cycle_histograms=hists,
        devices=_device_uptime(history, runs, since_ns), tag_good=tag_good,
        notes=tuple(notes))


def _cycles(history: LineHistory, run_ids: set[int]
            ) -> tuple[dict[str, dict[str, object]], dict[str, tuple[tuple[float, int], ...]]]:
    """Per task: the statistics and histogram of its latest run in the report."""
    from hdrh.histogram import HdrHistogram

    latest: dict[str, dict[str, object]] = {}
    hists: dict[str, tuple[tuple[float, int], ...]] = {}
    for row in history.cycle_stats():  # ordered by run
        if row.run not in run_ids:
            continue
        latest[row.task] = {"period_ms": row.period_ns / 1e6, "cycles": row.cycles,
                            "overruns": row.overruns, "mean_ms": row.mean_ns / 1e6,
                            "p50_ms": row.p50_ns / 1e6, "p99_ms": row.p99_ns / 1e6,
                            "max_ms": row.max_ns / 1e6, "run": row.run}
        points: tuple[tuple[float, int], ...] = ()
        if row.hdr:
            try:
                h = HdrHistogram.decode(row.hdr)
                points = tuple((it.value_iterated_to / 1e6, int(it.count_added_in_this_iter_step))
                               for it in h.get_recorded_iterator())
            except Exception:  # a damaged blob: the table still has the percentiles
                log.warning("task %s: cannot decode its cycle-time histogram", row.task)
        hists[row.task] = points
    return latest, hists


def _tag_good(history: LineHistory, run_ids: set[int]) -> dict[str, float | None]:
    good: dict[str, int] = {}
    samples: dict[str, int] = {}
    for r in history.tag_quality():
        if r.run in run_ids:
            good[r.tag] = good.get(r.tag, 0) + r.good_samples
            samples[r.tag] = samples.get(r.tag, 0) + r.samples
    return {t: good[t] / samples[t] if samples[t] else None for t in sorted(samples)}


def _device_uptime(history: LineHistory, runs: Sequence[RunRow],
                   since_ns: int | None) -> dict[str, float | None]:
    """Per device: the share of the runs' time it was connected (from its changes)."""
    by_run = {r.id: r for r in runs}
    up: dict[str, int] = {}
    total: dict[str, int] = {}
    rows = [h for h in history.health() if h.run in by_run]
    for dev in sorted({h.device for h in rows}):
        mine = [h for h in rows if h.device == dev]
        for run in runs:
            changes = [h for h in mine if h.run == run.id]
            if not changes:
                continue
            lo = run.started_ns if since_ns is None else max(run.started_ns, since_ns)
            total[dev] = total.get(dev, 0) + max(0, run.end_ns - lo)
            for i, h in enumerate(changes):
                nxt = changes[i + 1].t_ns if i + 1 < len(changes) else run.end_ns
                a, b = max(h.t_ns, lo), nxt
                if h.connected and b > a:
                    up[dev] = up.get(dev, 0) + b - a
    return {d: up.get(d, 0) / total[d] if total[d] else None for d in total}


# -- the digitalisation figures ------------------------------------------------------------

def _acquired(config: LineConfig) -> set[str]:
    return {t for task in config.tasks.values() for t in (*task.tags, *task.inputs,
                                                          *task.outputs)}


def _figures(config: LineConfig, units: Units, northbound: NorthboundConfig,
             tag_good: Mapping[str, float | None], audit_path: Path) -> list[DigitalFigure]:
    from ...cycle._audit import verify_audit

    out: list[DigitalFigure] = []
    # key process steps under digital control
    commanded = [u for u, c in units.units.items() if c.commands]
    programs = [t for t, c in config.tasks.items() if c.program]
    steps = len(units.units) + len(programs)
    out.append(DigitalFigure(
        "steps-under-digital-control", "Key process steps under digital control",
        len(commanded) + len(programs), steps,
        "Steps are the line's PackML units and its program tasks. A step is under digital "
        "control when smartline can command it: a unit with commands mapped onto its "
        "machine (not only a state read from it), a task that runs a control program.",
        f"units with commands: {', '.join(commanded) or 'none'} of "
        f"{', '.join(units.units) or 'no unit'}; program tasks: {', '.join(programs) or 'none'}"))
    # equipment networked with data collection
    acquired = _acquired(config)
    devices = [d for d, c in config.devices.items() if c.url.scheme not in _INTERNAL_SCHEMES]
    collected = sorted({config.tags[t].device for t in acquired if t in config.tags}
                       & set(devices))
    out.append(DigitalFigure(
        "equipment-networked", "Equipment networked with data collection",
        len(collected), len(devices),
        "Devices (machines, PLCs, instruments) of the line file with at least one tag acquired "
        "by a task, over all its devices with a wire (in-memory devices left out).",
        f"collected: {', '.join(collected) or 'none'}; not: "
        f"{', '.join(sorted(set(devices) - set(collected))) or 'none'}"))
    # data coverage and quality
    tags = list(config.tags)
    covered = [t for t in tags if t in acquired]
    out.append(DigitalFigure(
        "data-coverage", "Data coverage", len(covered), len(tags),
        "Tags of the line file acquired by a task (read every cycle, or written as its "
        "output), over all the tags of the line file.",
        f"not acquired: {', '.join(sorted(set(tags) - set(covered))) or 'none'}"))
    shares = [tag_good[t] for t in covered if tag_good.get(t) is not None]
    good = sum(s for s in shares if s is not None)
    out.append(DigitalFigure(
        "data-quality", "Data quality (samples GOOD)", good, len(shares),
        "The recorder samples each acquired tag's quality once per period (about 1 s) "
        "while the line runs; the figure is the mean, over the acquired tags, of each "
        "tag's share of samples that were GOOD (not BAD, not STALE).",
        f"{len(shares)} tag(s) sampled"))
    # security posture
    links: list[tuple[str, bool, str]] = []
    for name in devices:
        dev = config.devices[name]
        if dev.url.scheme.startswith("opc.tcp"):
            mode = dev.security.get("mode", "None")
            links.append((f"device {name}", mode == "SignAndEncrypt",
                          f"OPC UA {dev.security.get('policy', 'None')}/{mode}"))
        else:
            links.append((f"device {name}", False,
                          f"{dev.url.scheme}: the protocol has no encryption"))
    sp = northbound.sparkplug
    if sp is not None:
        links.append(("Sparkplug broker", sp.tls is not None,
                      "mqtts (TLS)" if sp.tls is not None else "mqtt without TLS"))
    ua = northbound.opcua
    if ua is not None:
        links.append(("OPC UA server", ua.security == "sign-and-encrypt",
                      f"security {ua.security}"))
    out.append(DigitalFigure(
        "encrypted-links", "Encrypted links", sum(1 for _, e, _ in links if e), len(links),
        "Links of the line: one per device with a wire, plus the north-bound Sparkplug "
        "broker and OPC UA server when configured. Encrypted: OPC UA with "
        "SignAndEncrypt (Sign alone protects integrity only), MQTT over TLS (mqtts). "
        "Modbus, S7 PUT/GET and serial links carry no encryption.",
        "; ".join(f"{n}: {'encrypted' if e else 'not encrypted'} ({why})"
                  for n, e, why in links)))
    try:
        verdict = verify_audit(audit_path)
        ok, detail = verdict.ok, (f"{audit_path}: {verdict.records} record(s), "
                                  + ("hash chain intact" if verdict.ok else
                                     f"{len(verdict.problems)} problem(s): "
                                     + "; ".join(verdict.problems[:3])))
    except OSError as exc:
        ok, detail = False, f"{audit_path}: no audit trail ({exc.strerror or exc})"
    out.append(DigitalFigure(
        "audited-writes", "Writes audited", 1 if ok else 0, 1,
        "1 when the audit trail of writes exists and its hash chain verifies "
        "(smartline audit verify): every write (CLI, API, OPC UA, MQTT, recipes, programs) "
        "is recorded with who, where from, old and new value, accepted or refused.", detail))
    writable = [s for s in config.tags.values() if s.access is not Access.R
                and not s.is_text and s.dtype is not DataType.BOOL]
    limited = [s.name for s in writable if s.limits is not None]
    out.append(DigitalFigure(
        "writable-tags-limited", "Writable tags with limits", len(limited), len(writable),
        "Numeric tags the controller may write (access rw or w) that have limits, over all "
        "of them: a write outside the limits is refused (booleans and text have none).",
        "without limits: "
        + (", ".join(sorted({s.name for s in writable} - set(limited))) or "none")))
    return out


# -- plots -------------------------------------------------------------------------------

def _svg(fig: Figure, plot_id: str, label: str) -> str:
    """The figure as an inline ``<svg>`` with ``plot_id`` and an aria-label; its own ids
    prefixed so that several plots can share one page."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None},
                bbox_inches="tight")
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.DOTALL)
    text = re.sub(r'\bid="', f'id="{plot_id}-', text)
    text = text.replace("url(#", f"url(#{plot_id}-").replace('href="#', f'href="#{plot_id}-')
    return text.replace("<svg ", f'<svg id="{plot_id}" role="img" aria-label='
                        f'"{html.escape(label)}" class="plot" ', 1)


def _new_figure(width_in: float, height_in: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), layout="constrained")


def _plot_cycles(data: ReportData) -> str:
    tasks = list(data.cycle_histograms) or ["(no task)"]
    fig = _new_figure(8.0, 2.4 * len(tasks))
    axes = fig.subplots(len(tasks), 1, squeeze=False)[:, 0]
    for ax, task in zip(axes, tasks, strict=True):
        pts = data.cycle_histograms.get(task, ())
        if pts and max(p[0] for p in pts) > 0:
            xs = [p[0] for p in pts]
            ws = [max(x * 0.02, 1e-4) for x in xs]
            ax.bar(xs, [p[1] for p in pts], width=ws, color="#3b6ea5")
            st = data.cycles.get(task, {})
            for key, color in (("p50_ms", "#2a9d8f"), ("p99_ms", "#e76f51")):
                v = st.get(key)
                if isinstance(v, float):
                    ax.axvline(v, color=color, linestyle="--", label=f"{key[:-3]} {v:.3f} ms")
            ax.legend(loc="upper right", fontsize=8)
        else:
            ax.text(0.5, 0.5, "no cycle time recorded" if not pts else
                    f"{sum(p[1] for p in pts)} cycles, all of 0 ms (virtual time)",
                    ha="center", va="center",
                    transform=ax.transAxes)
        ax.set_title(f"task {task}: cycle time", fontsize=10)
        ax.set_xlabel("cycle time (ms)")
        ax.set_ylabel("cycles")
    return _svg(fig, PLOT_IDS[0], "Cycle-time histogram per task")


def _plot_trend(data: ReportData) -> str:
    fig = _new_figure(8.0, 3.2)
    ax = fig.subplots()
    origin = data.start_ns or 0
    scale, unit = ((60.0, "min") if data.period_ns >= 60 * NS else (1.0, "s"))
    drawn = False
    for u in data.units:
        xs = [(p.start_ns - origin) / NS / scale for p in u.trend if p.oee is not None]
        ys = [100.0 * p.oee for p in u.trend if p.oee is not None]
        if xs:
            ax.plot(xs, ys, marker="o", markersize=3, label=u.unit)
            drawn = True
    if drawn:
        ax.legend(loc="lower right", fontsize=8)
    else:
        ax.text(0.5, 0.5, "no OEE: no unit ran and counted", ha="center", va="center",
                transform=ax.transAxes)
    ax.set_ylim(0, 105)
    ax.set_xlabel(f"time since start ({unit}), periods of {data.period_ns / NS / scale:g} {unit}")
    ax.set_ylabel("OEE (%)")
    ax.set_title("OEE per unit and period", fontsize=10)
    return _svg(fig, PLOT_IDS[1], "OEE trend per unit")


def _plot_pareto(data: ReportData) -> str:
    fig = _new_figure(8.0, 3.2)
    ax = fig.subplots()
    if data.downtime:
        labels = [d.reason for d in data.downtime]
        ax.bar(range(len(labels)), [d.down_ns / NS for d in data.downtime], color="#c0392b")
        ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right", fontsize=8)
        ax2 = ax.twinx()
        ax2.plot(range(len(labels)), [100 * d.cumulative for d in data.downtime],
                 color="#333333", marker="o")
        ax2.set_ylim(0, 105)
        ax2.set_ylabel("cumulative share (%)")
    else:
        ax.text(0.5, 0.5, "no down time recorded", ha="center", va="center",
                transform=ax.transAxes)
    ax.set_ylabel("down time (s)")
    ax.set_title("Down time by stop reason (Pareto)", fontsize=10)
    return _svg(fig, PLOT_IDS[2], "Downtime Pareto by stop reason")


# -- HTML --------------------------------------------------------------------------------

def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"


def _num(x: float | None, fmt: str = "{:.1f}") -> str:
    return "–" if x is None else fmt.format(x)


def _iso(ns: int | None) -> str:
    if ns is None:
        return "–"
    return dt.datetime.fromtimestamp(ns / NS, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{margin-bottom:0}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:.25em .6em;
font-size:.9em;
text-align:right}td:first-child,th:first-child{text-align:left}
.fig{display:grid;grid-template-columns:18em 7em 1fr;gap:.3em 1em;align-items:baseline;
margin:.8em 0;border-bottom:1px dotted #ccc;padding-bottom:.5em}.fig .v{font-size:1.4em;
font-weight:600}.def{color:#444}.detail{color:#777;font-size:.85em;grid-column:3}
svg.plot{max-width:100%;height:auto}.note{color:#a55}
"""


def _html(data: ReportData, plots: Sequence[str]) -> str:
    e = html.escape
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
             f"<title>smartline report: {e(data.line)}</title><style>{_CSS}</style></head><body>",
             f"<h1>Line {e(data.line)}</h1>",
             f"<p>From {_iso(data.start_ns)} to {_iso(data.end_ns)}: {len(data.runs)} run(s) "
             f"recorded. Generated by smartline report.</p>"]
    parts += [f"<p class='note'>{e(n)}</p>" for n in data.notes]
    # digitalisation
    parts.append("<h2 id='digitalisation'>Digitalisation figures</h2>")
    for f in data.figures:
        parts.append(
            f"<div class='fig' id='figure-{e(f.key)}' data-share='{_num(f.share, '{:.4f}')}'>"
            f"<span>{e(f.title)}</span><span class='v'>{_pct(f.share)}</span>"
            f"<span class='def'>{e(f.definition)}</span>"
            f"<span></span><span>{f.numerator:.4g} / {f.denominator:.4g}</span>"
            f"<span class='detail'>{e(f.detail)}</span></div>")
    # KPIs
    parts.append("<h2 id='kpis'>OEE, MTBF and MTTR per unit</h2>")
    parts.append(
        "<p class='def'>OEE = availability × performance × quality. Availability = run time "
        "/ planned time; run = EXECUTE in production mode; planned = production-mode time "
        "except starved/blocked (SUSPENDING, SUSPENDED, UNSUSPENDING: the cause is outside "
        "the machine). Performance = parts processed / (ideal rate × run time); ideal rate "
        "= the unit's design speed when given (--design-speed UNIT=N per minute), else the "
        "best rate observed over a minute of running. Quality = good / processed, good = "
        "processed − defective. MTBF = run time / failures; a failure is a change from "
        "EXECUTE to HOLDING, HELD, ABORTING or ABORTED; MTTR = mean time from a failure to "
        "the next EXECUTE (failures not restored are counted as open).</p>")
    parts.append("<table id='kpi-table'><tr><th>unit</th><th>OEE</th><th>availability</th>"
                 "<th>performance</th><th>quality</th><th>processed</th><th>good</th>"
                 "<th>ideal rate (/min)</th></tr>")
    for u in data.units:
        k = u.kpis
        rate = None if k.ideal_rate_per_s is None else k.ideal_rate_per_s * 60
        parts.append(
            f"<tr data-unit='{e(u.unit)}' data-oee='{_num(k.oee, '{:.4f}')}'>"
            f"<td>{e(u.unit)}</td><td>{_pct(k.oee)}</td>"
            f"<td>{_pct(k.availability)}</td><td>{_pct(k.performance)}</td>"
            f"<td>{_pct(k.quality)}</td><td>{k.counts.total:g}</td><td>{k.counts.good:g}</td>"
            f"<td>{_num(rate)} ({e(u.rate_source)})</td></tr>")
    parts.append("</table>")
    parts.append("<table id='time-table'><tr><th>unit</th><th>run (s)</th><th>down (s)</th>"
                 "<th>setup (s)</th><th>starved/ blocked (s)</th><th>other mode (s)</th>"
                 "<th>failures</th><th>MTBF (s)</th><th>MTTR (s)</th></tr>")
    for u in data.units:
        k = u.kpis
        parts.append(
            f"<tr data-unit='{e(u.unit)}'><td>{e(u.unit)}</td>"
            + "".join(f"<td>{k.time_ns[b] / NS:.1f}</td>" for b in
                      (Bucket.RUN, Bucket.DOWN, Bucket.SETUP, Bucket.STARVED_BLOCKED,
                       Bucket.OTHER_MODE))
            + f"<td>{k.failures}{f' ({k.open_failures} open)' if k.open_failures else ''}</td>"
            f"<td>{_num(k.mtbf_s)}</td><td>{_num(k.mttr_s)}</td></tr>")
    parts.append("</table>")
    parts.append("<h3>OEE trend</h3>")
    parts.append(plots[1])
    parts.append("<h2 id='downtime'>Down time by stop reason</h2>")
    parts.append("<p class='def'>Down: HOLDING, HELD, UNHOLDING, ABORTING, ABORTED, CLEARING, "
                 "STOPPING, STOPPED in production mode. A stop (consecutive down states) "
                 "goes to the unit's PackTags stop reason (Admin.StopReason.ID, "
                 "&lt;unit&gt;.stop_reason) first given in it, else to the down state it "
                 "entered.</p>")
    parts.append(plots[2])
    parts.append("<table id='downtime-table'><tr><th>reason</th><th>down (s)</th>"
                 "<th>stops</th><th>share</th><th>cumulative</th><th>units</th></tr>")
    for d in data.downtime:
        parts.append(f"<tr><td>{e(d.reason)}</td><td>{d.down_ns / NS:.1f}</td>"
                     f"<td>{d.stops}</td><td>{_pct(d.share)}</td><td>{_pct(d.cumulative)}</td>"
                     f"<td>{e(', '.join(d.units))}</td></tr>")
    parts.append("</table>")
    parts.append("<h2 id='cycles'>Cycle times</h2>")
    parts.append("<p class='def'>Per task, the time from a cycle's start to the end of its "
                 "work (inputs, logic, outputs), from the engine's histograms at the end of "
                 "the latest run in the report.</p>")
    parts.append(plots[0])
    parts.append("<table id='cycle-table'><tr><th>task</th><th>period (ms)</th>"
                 "<th>cycles</th><th>overruns</th><th>mean (ms)</th><th>p50 (ms)</th>"
                 "<th>p99 (ms)</th><th>max (ms)</th></tr>")
    for task, st in data.cycles.items():
        parts.append(f"<tr><td>{e(task)}</td>" + "".join(
            f"<td>{st[k]:.3f}</td>" if isinstance(st[k], float) else f"<td>{st[k]}</td>"
            for k in ("period_ms", "cycles", "overruns", "mean_ms", "p50_ms", "p99_ms",
                      "max_ms")) + "</tr>")
    parts.append("</table>")
    parts.append("<h2 id='devices'>Devices and tags</h2>")
    parts.append("<table id='device-table'><tr><th>device</th><th>connected</th></tr>")
    for dev, share in data.devices.items():
        parts.append(f"<tr><td>{e(dev)}</td><td>{_pct(share)}</td></tr>")
    parts.append("</table><table id='tag-table'><tr><th>tag</th><th>samples GOOD</th></tr>")
    for tag, share in sorted(data.tag_good.items(), key=lambda kv: (kv[1] or 0.0, kv[0])):
        parts.append(f"<tr><td>{e(tag)}</td><td>{_pct(share)}</td></tr>")
    parts.append("</table></body></html>\n")
    return "\n".join(parts)


def parse_since(text: str) -> int:
    """``--since``: an ISO-8601 date or time (``2026-01-01``, ``2026-01-01T06:00``, with
    ``Z`` or an offset; without one, UTC) as wall-clock ns; ``ValueError`` saying why."""
    try:
        when = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--since {text!r}: expected an ISO-8601 date or time such as "
                         "2026-01-01 or 2026-01-01T06:00:00Z") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return round(when.timestamp() * NS)


def parse_design_speeds(items: Sequence[str]) -> dict[str, float]:
    """``--design-speed UNIT=N`` options (parts per minute, > 0) as unit -> N;
    ``ValueError`` naming the bad item."""
    out: dict[str, float] = {}
    for item in items:
        unit, sep, value = item.partition("=")
        try:
            speed = float(value)
        except ValueError:
            speed = float("nan")
        if not sep or not unit.strip() or not speed > 0 or speed == float("inf"):
            raise ValueError(f"--design-speed {item!r}: expected UNIT=N with N the unit's "
                             "ideal parts per minute (> 0), e.g. filler=120")
        out[unit.strip()] = speed
    return out


def render_report(line_config: LineConfig, history: LineHistory,
                  out_path: str | os.PathLike[str], *, since_ns: int | None = None,
                  design_speed: Mapping[str, float] | None = None,
                  period_s: float | None = None, units: Units | None = None,
                  northbound: NorthboundConfig | None = None, audit_path: Path | None = None,
                  env: Mapping[str, str] | None = None) -> Path:
    """Write the HTML report of ``line_config``'s ``history`` to ``out_path`` (atomically);
    the path written. Options as :func:`build_report`."""
    import matplotlib

    data = build_report(line_config, history, since_ns=since_ns, design_speed=design_speed,
                        period_s=period_s, units=units, northbound=northbound,
                        audit_path=audit_path, env=env)
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "smartline",
                                "font.size": 9}):
        plots = [_plot_cycles(data), _plot_trend(data), _plot_pareto(data)]
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(_html(data, plots), encoding="utf-8")
    os.replace(tmp, out)
    return out
