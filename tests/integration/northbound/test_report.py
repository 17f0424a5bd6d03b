"""The history recorder on a real run and the HTML report in a real browser: the bottling
line against its faulty simulated plant (hil_sim/scenarios/bottling-faults.yaml) in virtual
time, recorded as an engine service the way ``smartline run`` does it, then reported and
opened in headless Chromium (the Debian package; ``.ci/setup.sh`` installs it)."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hdrh.histogram import HdrHistogram

from smartline.config import LineConfig, load_line
from smartline.cycle import JsonlAudit
from smartline.northbound.report import (
    PLOT_IDS,
    Bucket,
    LineHistory,
    build_report,
    render_report,
)
from smartline.northbound.report._history import CycleRow, StateRow
from smartline.recipes.packml import State
from smartline.run import LineServices, run_line_sim

ROOT = Path(__file__).resolve().parents[3]
LINE = ROOT / "recipes" / "bottling-line.yaml"
SCENARIO = ROOT / "hil_sim" / "scenarios" / "bottling-faults.yaml"
S = 1_000_000_000
T0 = 1_767_225_600 * S  # the virtual clock's wall epoch (2026-01-01)


@dataclass(frozen=True)
class Recorded:
    config: LineConfig
    db: Path
    audit: Path
    folder: Path


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    folder = tmp_path_factory.mktemp("report")
    db = folder / "history-bottling.db"
    code = run_line_sim(LINE, SCENARIO, virtual=True, duration_s=90,
                        make_attach=lambda cfg, units: LineServices(
                            cfg, units, history_path=db).attach)
    assert code == 0
    audit = folder / "audit.jsonl"
    trail = JsonlAudit(audit)
    trail.record({"tag": "drive.speed_ref", "value": 50.0, "outcome": "accepted",
                  "user": "test", "source": "test"})
    trail.close()
    yield Recorded(load_line(LINE), db, audit, folder)


def test_history_of_the_faulty_run(recorded: Recorded) -> None:
    with LineHistory(recorded.db) as h:
        [run] = h.runs()
        assert run.clock == "virtual" and run.stopped_ns is not None
        assert 89 * S <= run.stopped_ns - run.started_ns <= 91 * S
        assert h.units() == ["capper", "conveyor", "filler"]
        conveyor = [(s.t_ns - T0, State(s.state)) for s in h.states("conveyor")]
        # the drive trips at 75 s: the belt's unit goes from EXECUTE to ABORTED, for good
        assert conveyor[-1][1] is State.ABORTED and 75 * S <= conveyor[-1][0] <= 77 * S
        assert conveyor[-2][1] is State.EXECUTE
        filler = [State(s.state) for s in h.states("filler")]
        assert filler[-1] is State.SUSPENDED  # starved: the belt brings no bottles
        capper = h.counters("capper")
        assert sum(c.defective for c in capper) == 3  # three cross-threaded caps
        assert sum(c.produced for c in capper) >= 15
        # the capper PLC is down from 20 s for 5 s: its connection changes are recorded
        changes = [(round((x.t_ns - T0) / S), x.connected) for x in h.health()
                   if x.device == "capper"]
        assert changes[0] == (0, True)
        assert any(not up and 20 <= t <= 23 for t, up in changes)
        assert changes[-1][1] is True
        quality = {q.tag: q for q in h.tag_quality()}
        weight = quality["scale.weight"]  # no answer from 40 s to 45 s
        assert 0.85 < weight.good_samples / weight.samples < 0.97
        assert {c.task for c in h.cycle_stats()} == {"control", "monitor"}
        [control] = [c for c in h.cycle_stats() if c.task == "control"]
        assert control.cycles >= 890 and control.hdr


def test_kpis_and_figures_of_the_run(recorded: Recorded) -> None:
    with LineHistory(recorded.db) as h:
        data = build_report(recorded.config, h, audit_path=recorded.audit,
                            design_speed={"capper": 20.0})
    units = {u.unit: u for u in data.units}
    conveyor = units["conveyor"].kpis
    assert conveyor.failures == 1 and conveyor.open_failures == 1  # never restored
    assert conveyor.mtbf_s == pytest.approx(conveyor.run_ns / S)
    assert 70 <= conveyor.run_ns / S <= 76
    capper = units["capper"]
    assert capper.rate_source == "design speed"
    k = capper.kpis
    assert k.quality == pytest.approx(k.counts.good / k.counts.total)
    assert k.counts.defective == 3
    assert k.performance == pytest.approx(k.counts.total / (20 / 60 * k.run_ns / S))
    assert k.oee == pytest.approx(k.availability * k.performance * k.quality)
    filler = units["filler"]
    assert filler.rate_source == "best observed"
    # starved from the trip (75 s) on: not the filler's own planned time
    assert 5 * S <= filler.kpis.time_ns[Bucket.STARVED_BLOCKED] <= 16 * S
    assert filler.kpis.planned_ns == sum(filler.kpis.time_ns[b] for b in (
        Bucket.RUN, Bucket.DOWN, Bucket.SETUP))
    assert filler.kpis.performance is not None and filler.kpis.performance <= 1.0
    assert data.downtime[0].reason == "ABORTED (no stop reason)"
    assert data.downtime[0].units == ("conveyor",)
    with LineHistory(recorded.db) as h:  # the last 30 s only: the trip and after
        late = build_report(recorded.config, h, audit_path=recorded.audit,
                            since_ns=T0 + 60 * S)
    late_conveyor = next(u.kpis for u in late.units if u.unit == "conveyor")
    assert late.start_ns == T0 + 60 * S
    assert 14 * S <= late_conveyor.run_ns <= 17 * S and late_conveyor.failures == 1
    figures = {f.key: (f.numerator, f.denominator) for f in data.figures}
    assert figures["steps-under-digital-control"] == (1, 4)  # the control program only
    assert figures["equipment-networked"] == (5, 5)
    assert figures["data-coverage"] == (21, 30)
    assert figures["encrypted-links"] == (0, 5)
    assert figures["audited-writes"] == (1, 1)
    assert figures["writable-tags-limited"] == (4, 6)
    quality = next(f for f in data.figures if f.key == "data-quality")
    assert quality.share is not None and 0.85 < quality.share < 1.0


def test_altered_audit_trail_is_not_audited(recorded: Recorded, tmp_path: Path) -> None:
    bad = tmp_path / "audit.jsonl"
    text = recorded.audit.read_text(encoding="utf-8").replace("50.0", "51.0")
    bad.write_text(text, encoding="utf-8")
    head = recorded.audit.with_name(recorded.audit.name + ".head")
    if head.exists():
        shutil.copy(head, tmp_path / head.name)
    with LineHistory(recorded.db) as h:
        data = build_report(recorded.config, h, audit_path=bad)
    [fig] = [f for f in data.figures if f.key == "audited-writes"]
    assert fig.numerator == 0 and "problem" in fig.detail


class _Dom(HTMLParser):
    """Elements with an id (their attributes), and the page's text."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: dict[str, dict[str, str | None]] = {}
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids[str(a["id"])] = {"tag": tag, **a}

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("chromium is not installed: .ci/setup.sh installs it (Debian package "
                    "chromium); the report's browser test needs it")
    return exe


def test_report_in_headless_chromium(recorded: Recorded, tmp_path: Path) -> None:
    out = recorded.folder / "report.html"
    with LineHistory(recorded.db) as h:
        path = render_report(recorded.config, h, out, audit_path=recorded.audit)
    assert path == out
    page = out.read_text(encoding="utf-8")
    # self-contained: no script, nothing fetched (every reference is inside the page)
    assert "<script" not in page and "<link" not in page and " src=" not in page
    assert re.findall(r'href="([^#][^"]*)"', page) == []
    exe = _chromium()
    flags = [exe, "--headless", "--disable-gpu", "--no-sandbox", "--disable-dev-shm-usage",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*flags, "--dump-dom", out.as_uri()], capture_output=True,
                         text=True, timeout=120, check=True).stdout
    parser = _Dom()
    parser.feed(dom)
    labels = {"plot-cycle-time": "Cycle-time histogram per task",
              "plot-oee-trend": "OEE trend per unit",
              "plot-downtime-pareto": "Downtime Pareto by stop reason"}
    assert tuple(labels) == PLOT_IDS
    for pid, label in labels.items():
        el = parser.ids.get(pid)
        assert el is not None, f"{pid} not in the DOM"
        assert el["tag"] == "svg" and el["aria-label"] == label
    for key in ("steps-under-digital-control", "equipment-networked", "data-coverage",
                "data-quality", "encrypted-links", "audited-writes", "writable-tags-limited"):
        assert f"figure-{key}" in parser.ids
    assert parser.ids["figure-steps-under-digital-control"]["data-share"] == "0.2500"
    text = " ".join(parser.text)
    assert "Key process steps under digital control" in text and "25.0 %" in text
    assert "ABORTED (no stop reason)" in text
    shot = tmp_path / "report.png"
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1280,4000", out.as_uri()],
                   capture_output=True, timeout=120, check=True)
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000


def test_cycle_histogram_of_a_real_time_run(tmp_path: Path) -> None:
    """Real-time cycle times (hand-recorded here) are drawn as bars with p50 and p99."""
    hist = HdrHistogram(1, 60 * S, 3)
    for v_us, n in ((180, 500), (220, 300), (900, 5)):
        hist.record_value(v_us * 1000, n)
    blob = hist.encode()
    config = load_line(LINE)
    with LineHistory(tmp_path / "h.db") as h:
        run = h.begin_run("bottling", "MonotonicClock", T0)
        h.write(run, T0 + 60 * S, states=[StateRow(run, "filler", T0, int(State.EXECUTE), 1)],
                cycles=[CycleRow(run, "control", T0 + 60 * S, 100_000_000, 805, 0, 805,
                                 2.1e5, 180_000, 900_000, 900_000,
                                 blob.decode() if isinstance(blob, bytes) else str(blob))],
                stopped=True)
        out = render_report(config, h, tmp_path / "r.html", audit_path=tmp_path / "none")
        data = build_report(config, h, audit_path=tmp_path / "none")
    assert sum(n for _, n in data.cycle_histograms["control"]) == 805
    page = out.read_text(encoding="utf-8")
    svg = page[page.index('<svg id="plot-cycle-time"'):]
    svg = svg[:svg.index("</svg>")]
    assert "p99 0.900 ms" in svg and "all of 0 ms" not in svg
    [fig] = [f for f in data.figures if f.key == "audited-writes"]
    assert fig.numerator == 0 and "no audit trail" in fig.detail
