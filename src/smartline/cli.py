"""The ``smartline`` command (DESIGN §12).

Exit codes: 0 success, 2 bad input or refused action, 1 runtime failure.
Messages go to stderr, data (JSON) to stdout.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import click

from ._version import __version__
from .core import (
    ConfigError,
    DriverNotAvailableError,
    SmartlineError,
    WriteRefusedError,
)

__all__ = ["main"]

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2

_profile_path_option = click.option(
    "--profile-path", "profile_paths", multiple=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Extra folder to search for device profiles (repeatable); searched before drivers/.")


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"smartline: {message}", err=True)
    sys.exit(code)


def _fail_config(exc: ConfigError) -> NoReturn:
    """Every located problem of a bad file, one a line; exit 2."""
    for issue in exc.issues:
        click.echo(issue.format(), err=True)
    sys.exit(EXIT_BAD_INPUT)


def _load_line(path: str, profile_paths: Sequence[Path]) -> object:
    from .line import Line

    try:
        return Line.load(path, profile_paths=profile_paths)
    except ConfigError as exc:
        _fail_config(exc)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="smartline")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """smartline: drive a retrofitted production line from files, tested before it runs."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@_profile_path_option
def check(files: tuple[Path, ...], profile_paths: tuple[Path, ...]) -> None:
    """Validate line, device-profile, recipe, HIL scenario and plant files.

    Every problem is reported, one per line, as FILE:LINE:COL: key.path: message.
    Exits 2 if any file has a problem, 0 otherwise.
    """
    from .config import KINDS, check_file
    from .hil import scenario
    from .northbound import _config as northbound
    from .recipes import _load

    kinds = {**KINDS, **scenario.FILE_KINDS, **_load.FILE_KINDS, **northbound.FILE_KINDS}
    bad = False
    for f in files:
        try:
            summary = check_file(f, profile_paths=profile_paths, kinds=kinds)
        except ConfigError as exc:
            bad = True
            for issue in exc.issues:
                click.echo(issue.format(), err=True)
        else:
            click.echo(summary)
    sys.exit(EXIT_BAD_INPUT if bad else EXIT_OK)


@cli.command()
@click.argument("line", type=click.Path(path_type=Path))
@click.argument("tags", nargs=-1)
@click.option("--json", "as_json", is_flag=True,
              help='Print a JSON object tag → {"value", "quality", "timestamp", "received"} '
                   "(timestamp: when the device sampled the value; received: when it arrived).")
@_profile_path_option
def read(line: Path, tags: tuple[str, ...], as_json: bool, profile_paths: tuple[Path, ...]) -> None:
    """Read tags once (default: every tag of the line that can be read, i.e. all but the
    write-only ones).

    Exits 1 if a device could not be read (its tags are reported with quality "bad").
    """
    from .line import Line

    ln = _load_line(str(line), profile_paths)
    assert isinstance(ln, Line)
    unknown = [t for t in tags if t not in ln.config.tags]
    if unknown:
        _fail(f"{line}: unknown tag(s): {', '.join(unknown)}", EXIT_BAD_INPUT)
    from .tags import Access

    write_only = [t for t in tags if ln.config.tags[t].access is Access.W]
    if write_only:
        _fail(f"{line}: write-only tag(s) (access w) cannot be read: {', '.join(write_only)}",
              EXIT_BAD_INPUT)

    async def go() -> dict[str, object]:
        async with ln:
            values = await ln.read(tags)
        return {k: v for k, v in values.items()}

    try:
        values = asyncio.run(go())
    except DriverNotAvailableError as exc:
        _fail(str(exc), EXIT_BAD_INPUT)
    failed = [s for s in ln.last_read if not s.ok]
    for s in failed:
        click.echo(f"smartline: device {s.device!r}: {s.error}", err=True)
    if as_json:
        click.echo(json.dumps({k: v.as_json() for k, v in values.items()},  # type: ignore[attr-defined]
                              indent=2))
    else:
        _print_table(ln, values)
    sys.exit(EXIT_FAILURE if failed else EXIT_OK)


def _print_table(ln: object, values: dict[str, object]) -> None:
    from rich.console import Console
    from rich.table import Table

    from .cycle import TagValue
    from .line import Line

    assert isinstance(ln, Line)
    table = Table(box=None, header_style="bold")
    for col in ("tag", "value", "unit", "quality", "timestamp"):
        table.add_column(col, justify="right" if col == "value" else "left")
    for name, tv in values.items():
        assert isinstance(tv, TagValue)
        j = tv.as_json()
        quality = str(j["quality"]) + (f" ({j['reason']})" if "reason" in j else "") \
            + (f": {j['note']}" if "note" in j else "")
        table.add_row(name, "—" if tv.value is None else _fmt(tv.value),
                      ln.config.tags[name].unit or "", quality, str(j["timestamp"] or ""))
    Console().print(table)


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, tuple):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return str(v)


def _parse_assignment(text: str) -> tuple[str, object]:
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise click.BadParameter(f"expected TAG=VALUE, found {text!r}")
    value: object
    low = raw.strip().lower()
    if low in ("true", "on"):
        value = True
    elif low in ("false", "off"):
        value = False
    else:
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
    return name.strip(), value


@cli.command()
@click.argument("line", type=click.Path(path_type=Path))
@click.argument("assignments", nargs=-1, required=True)
@click.option("--audit", "audit_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Audit log file (JSON lines). Default: "
              "$SMARTLINE_AUDIT or ~/.local/state/smartline/audit.jsonl.")
@_profile_path_option
def write(line: Path, assignments: tuple[str, ...], audit_path: Path | None,
          profile_paths: tuple[Path, ...]) -> None:
    """Write TAG=VALUE (engineering units) to writable tags.

    Every value is checked first (access, type, limits); if any is refused, nothing is
    written and the command exits 2 with the reason. Every attempt is audited.
    """
    from .cycle import JsonlAudit
    from .line import Line

    values = dict(_parse_assignment(a) for a in assignments)
    path = audit_path or _default_audit_path()
    ln = _load_line(str(line), profile_paths)
    assert isinstance(ln, Line)
    try:
        ln.io.audit = JsonlAudit(path)  # opened now: no write goes out unaudited
    except OSError as exc:
        _fail(f"cannot open the audit log {path}: {exc.strerror or exc}", EXIT_BAD_INPUT)

    async def go() -> None:
        async with ln:
            await ln.write(values)

    try:
        asyncio.run(go())
    except (WriteRefusedError, DriverNotAvailableError) as exc:
        _fail(str(exc), EXIT_BAD_INPUT)
    except SmartlineError as exc:
        _fail(f"write failed: {exc}", EXIT_FAILURE)
    except OSError as exc:
        _fail(f"write failed: audit log {path}: {exc.strerror or exc}", EXIT_FAILURE)
    click.echo(f"wrote {', '.join(f'{k}={v!r}' for k, v in values.items())}", err=True)


@cli.command()
@click.argument("line", type=click.Path(path_type=Path))
@click.option("--cycles", type=click.IntRange(min=1), default=None,
              help="Stop after N cycles of the fastest task.")
@click.option("--duration", "duration_s", type=click.FloatRange(min=0, min_open=True),
              default=None, help="Stop after S seconds.")
@click.option("--stats", "stats_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Write timing statistics as JSON to FILE on exit.")
@click.option("--live/--no-live", default=None,
              help="Live statistics in the terminal (default: when stdout is a terminal).")
@click.option("--sim", "sim_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Run against this HIL scenario's simulated plant (the "
              "line's devices are mapped to its endpoints by name); exit 1 if an "
              "expectation fails.")
@click.option("--virtual", is_flag=True, default=False,
              help="With --sim: virtual time in lock-step with the plant, as fast as the CPU "
              "allows (needs --duration or --cycles).")
@click.option("--record", "record_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="With --sim --virtual: record every tag of the line, each "
              "cycle, to FILE (a tag trace, docs/reference/tag-trace.md).")
@click.option("--history", "history_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Record the line's history (unit states, counters, cycle "
              "times, data quality: what `smartline report` shows) to FILE. Real-time runs "
              "record to $SMARTLINE_STATE_DIR/history-LINE.db unless --no-history.")
@click.option("--no-history", is_flag=True, default=False,
              help="Do not record the line's history.")
@click.option("--audit", "audit_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Audit trail of every write (the tasks' outputs when their "
              "outcome changes, OPC UA and MQTT commands, units); default $SMARTLINE_AUDIT or "
              "~/.local/state/smartline/audit.jsonl.")
@_profile_path_option
def run(  # noqa: PLR0917 (click passes one parameter per option)
        line: Path, cycles: int | None, duration_s: float | None, stats_path: Path | None,
        live: bool | None, sim_path: Path | None, virtual: bool,
        record_path: Path | None, history_path: Path | None, no_history: bool,
        audit_path: Path | None, profile_paths: tuple[Path, ...]) -> None:
    """Run the line's tasks until Ctrl-C (or --cycles / --duration); outputs go safe on stop.

    Beside the tasks run the line's PackML units, its north-bound publishers (`northbound:`
    in the line file) and the history recorder.
    """
    from .run import history_attach, run_line, run_line_sim

    record = not no_history and (history_path is not None or not virtual)
    audit = audit_path if audit_path is not None else _default_audit_path()
    services = history_attach(history_path, record=record, audit_path=audit)

    if cycles is not None and duration_s is not None:
        _fail("give --cycles or --duration, not both", EXIT_BAD_INPUT)
    if record_path is not None and (sim_path is None or not virtual):
        _fail("--record needs --sim SCENARIO --virtual", EXIT_BAD_INPUT)
    if sim_path is not None:
        if virtual and cycles is None and duration_s is None:
            _fail("--virtual runs as fast as it can: give --duration or --cycles",
                  EXIT_BAD_INPUT)
        sys.exit(run_line_sim(line, sim_path, virtual=virtual, cycles=cycles,
                              duration_s=duration_s, stats_path=stats_path,
                              live=sys.stdout.isatty() if live is None else live,
                              profile_paths=profile_paths, record_path=record_path,
                              make_attach=services))
    if virtual:
        _fail("--virtual needs --sim SCENARIO (virtual time runs against a simulated plant)",
              EXIT_BAD_INPUT)
    sys.exit(run_line(line, cycles=cycles, duration_s=duration_s, stats_path=stats_path,
                      live=sys.stdout.isatty() if live is None else live,
                      profile_paths=profile_paths, make_attach=services))


@cli.command()
@click.argument("scenario", type=click.Path(dir_okay=False, path_type=Path))
def sim(scenario: Path) -> None:
    """Serve a HIL scenario's devices and plant in real time on 127.0.0.1.

    Prints one JSON line per endpoint, {"device": NAME, "url": URL}, as soon as it answers;
    runs until SIGINT or SIGTERM, then stops every device (its ports are free again) and
    prints one JSON line per expectation. Exits 2 for a bad file, 1 if an expectation failed.
    """
    from .hil.scenario import Scenario, serve_scenario

    try:
        loaded = Scenario.load(scenario)
    except ConfigError as exc:
        _fail_config(exc)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    try:
        sys.exit(asyncio.run(serve_scenario(loaded)))
    except OSError as exc:  # a port in use, a pty that cannot be opened
        _fail(f"{scenario}: cannot start the simulated devices: {exc}", EXIT_FAILURE)
    except DriverNotAvailableError as exc:  # a simulator's protocol library is missing
        _fail(f"{scenario}: {exc}", EXIT_BAD_INPUT)


@cli.command()
@click.option("--cycles", type=click.IntRange(min=1), default=None,
              help="Stop after N cycles (unattended runs).")
@click.option("--stats", "stats_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Write timing statistics as JSON to FILE on exit.")
@click.option("--live/--no-live", default=None,
              help="Live statistics in the terminal (default: when stdout is a terminal).")
def demo(cycles: int | None, stats_path: Path | None, live: bool | None) -> None:
    """Run the demo line against its embedded simulator (Ctrl-C stops it cleanly)."""
    from .run import run_demo

    sys.exit(run_demo(cycles=cycles, stats_path=stats_path,
                      live=sys.stdout.isatty() if live is None else live))


@cli.command()
@click.argument("url")
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON (url, identity, points, notes) instead of YAML.")
@click.option("--depth", type=click.IntRange(min=0), default=3, show_default=True,
              help="Levels to descend where the device is a tree (OPC UA).")
@click.option("--timeout-ms", type=click.FloatRange(min=0, min_open=True), default=2000.0,
              show_default=True, help="Timeout of one request; the whole browse gets ten.")
@click.option("--max-requests", type=click.IntRange(min=1), default=None,
              help="At most N requests for devices that are probed (Modbus; default 300).")
@click.option("--option", "option_texts", multiple=True, metavar="KEY=VALUE",
              help="A device key with a scalar YAML value (repeatable), as in a line file's "
                   "device entry, e.g. --option security=none; written into the YAML.")
@click.option("--profile", "profile", default=None, metavar="VENDOR/MODEL",
              help="The device profile of an instrument that is described by one (serial "
                   "instruments): browse lists what it can query; written into the YAML.")
def browse(url: str, as_json: bool, *, depth: int, timeout_ms: float,
           max_requests: int | None, option_texts: tuple[str, ...],
           profile: str | None) -> None:
    """What the device at URL offers, as a line file to paste from (or --json).

    OPC UA: the node tree; S7: the CPU's identity and blocks; Modbus: device identification
    (FC 43) and the register ranges that answer; MTConnect: devices and data items; a
    serial instrument (with --profile): its identity and what it can query. Exits 2 for a
    bad URL or --option, an unknown scheme or a missing extra, 1 when the device does not
    answer.
    """
    from .browse import (
        BrowseUnsupportedError,
        browse_url,
        parse_option,
        render_json,
        render_yaml,
    )

    options: dict[str, object] = {}
    for text in option_texts:
        try:
            key, value = parse_option(text)
        except ValueError as exc:
            _fail(str(exc), EXIT_BAD_INPUT)
        options[key] = value
    if profile is not None:
        options["profile"] = profile
    try:
        result = asyncio.run(browse_url(url, depth=depth, timeout_s=timeout_ms / 1e3,
                                        max_requests=max_requests, options=options or None))
    except ConfigError as exc:
        _fail("; ".join(i.message for i in exc.issues) or str(exc), EXIT_BAD_INPUT)
    except (DriverNotAvailableError, BrowseUnsupportedError) as exc:
        _fail(str(exc), EXIT_BAD_INPUT)
    except SmartlineError as exc:
        _fail(f"browse {url} failed: {exc}", EXIT_FAILURE)
    if as_json:
        click.echo(json.dumps(render_json(url, result), indent=2, ensure_ascii=False))
    else:
        click.echo(render_yaml(url, result, options=options), nl=False)


@cli.group()
def certs() -> None:
    """Application certificate and trust list (OPC UA security)."""


def _certs_module() -> Any:
    try:
        from .drivers.opcua import certs as module
    except ImportError as exc:
        _fail(f"certificates need the OPC UA extra ({exc.name or exc}): install it with "
              "pip install 'smartline[opcua]'", EXIT_BAD_INPUT)
    return module


@certs.command("create")
@click.option("--cert", "cert_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Certificate file to write (DER). Default: PKI/own/cert.der.")
@click.option("--key", "key_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Private key file to write (PEM). Default: PKI/own/key.pem.")
@click.option("--uri", default=None,
              help="ApplicationUri in the certificate. Default: urn:smartline:<hostname>.")
@click.option("--name", "common_name", default="smartline", show_default=True,
              help="Common name (CN) of the subject.")
@click.option("--host", "hosts", multiple=True,
              help="DNS name or IP address for subjectAltName (repeatable). "
                   "Default: this host's name.")
@click.option("--days", type=click.IntRange(min=1), default=730, show_default=True,
              help="Validity in days.")
@click.option("--force", is_flag=True, help="Overwrite an existing certificate or key.")
def certs_create(  # noqa: PLR0917 (click passes one parameter per option)
        cert_path: Path | None, key_path: Path | None, uri: str | None, common_name: str,
        hosts: tuple[str, ...], days: int, force: bool) -> None:
    """Make a self-signed application instance certificate and its private key.

    PKI is $SMARTLINE_STATE_DIR/pki (default ~/.local/state/smartline/pki). Servers must
    trust the certificate before they accept a secure session from smartline.
    """
    import socket

    module = _certs_module()
    pki = Path(module.default_pki_dir())
    cert = cert_path or pki / "own" / "cert.der"
    key = key_path or pki / "own" / "key.pem"
    existing = [str(p) for p in (cert, key) if p.exists()]
    if existing and not force:
        _fail(f"{' and '.join(existing)} already exist(s): give --force to replace "
              "(peers that trust the old certificate will refuse the new one)", EXIT_BAD_INPUT)
    application_uri = uri or str(module.default_application_uri())
    try:
        module.create_certificate(cert, key, application_uri=application_uri,
                                  common_name=common_name,
                                  hostnames=hosts or (socket.gethostname(),), days=days)
    except ValueError as exc:
        _fail(str(exc), EXIT_BAD_INPUT)
    except OSError as exc:
        _fail(f"cannot write {exc.filename or cert}: {exc.strerror or exc}", EXIT_FAILURE)
    click.echo(f"wrote certificate {cert} and key {key} (application URI "
               f"{application_uri})", err=True)


@certs.command("trust")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dir", "trust_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Trust list folder. Default: PKI/trusted.")
def certs_trust(file: Path, trust_dir: Path | None) -> None:
    """Add a peer's certificate (DER or PEM) to the trust list; prints where it went."""
    module = _certs_module()
    target_dir = trust_dir or Path(module.default_pki_dir()) / "trusted"
    try:
        target = module.trust_certificate(file, target_dir)
    except ValueError as exc:
        _fail(str(exc), EXIT_BAD_INPUT)
    except OSError as exc:
        _fail(f"cannot trust {file}: {exc.strerror or exc}", EXIT_FAILURE)
    click.echo(str(target))


@cli.group()
def cnc() -> None:
    """CNC controllers: stream G-code jobs to a GRBL controller."""


@cnc.command("send")
@click.argument("line", type=click.Path(path_type=Path))
@click.argument("device")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--mode", type=click.Choice(["counting", "send-response"]), default="counting",
              show_default=True,
              help="counting keeps GRBL's receive buffer full; send-response waits for each ok.")
@click.option("--check", is_flag=True,
              help="Run the job in GRBL's check mode ($C): every line parsed, nothing moves.")
@click.option("--continue-on-error", is_flag=True,
              help="Keep streaming after an error:N (default: stop safely at the first).")
@click.option("--progress/--no-progress", default=None,
              help="Show a progress bar on stderr (default: when stderr is a terminal).")
@_profile_path_option
def cnc_send(  # noqa: PLR0917 (click passes one parameter per option)
        line: Path, device: str, file: Path, mode: str, check: bool, continue_on_error: bool,
        progress: bool | None, profile_paths: tuple[Path, ...]) -> None:
    """Stream a G-code FILE to the GRBL controller DEVICE of LINE, with progress.

    Stops safely on an alarm or an error (feed hold, wait until stopped, soft reset) and on
    Ctrl-C. Exits 0 when every line was acknowledged, 1 on an alarm, an error or a broken
    link (naming the file line and GRBL's meaning), 2 on bad input.
    """
    from .line import Line

    ln = _load_line(str(line), profile_paths)
    assert isinstance(ln, Line)
    cfg = ln.config.devices.get(device)
    if cfg is None:
        known = ", ".join(ln.config.devices) or "none"
        _fail(f"{line}: unknown device {device!r}; devices: {known}", EXIT_BAD_INPUT)
    if cfg.scheme.name != "grbl":
        _fail(f"{line}: device {device!r} is a {cfg.scheme.name}:// device, not a GRBL "
              "controller (grbl://PORT)", EXIT_BAD_INPUT)
    try:
        from .drivers.cnc.grbl import GcodeJob, GcodeProgram, GrblDriver, JobOutcome
    except ImportError as exc:
        _fail(f"GRBL needs pyserial ({exc.name or exc}): install it with "
              "pip install 'smartline[cnc]'", EXIT_BAD_INPUT)
    try:
        program = GcodeProgram.load(file)
    except ConfigError as exc:
        _fail_config(exc)
    except OSError as exc:
        _fail(f"cannot read {file}: {exc.strerror or exc}", EXIT_BAD_INPUT)
    show = progress if progress is not None else sys.stderr.isatty()

    async def go() -> JobOutcome:
        import signal

        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        async with ln:
            drv = ln.io.driver(device)
            assert isinstance(drv, GrblDriver)
            await drv.connect()
            bar = Progress(TextColumn("{task.description}"), BarColumn(),
                           TextColumn("{task.completed}/{task.total} lines"),
                           TimeRemainingColumn(), console=Console(stderr=True),
                           transient=True, disable=not show)
            task = bar.add_task(f"{file.name} → {device}", total=len(program.lines))

            def on_progress(p: Any) -> None:
                bar.update(task, completed=p.acked,
                           description=f"{file.name} → {device} [{p.machine_state or '…'}]")

            job = GcodeJob(drv, program, mode=mode,  # type: ignore[arg-type]
                           stop_on_error=not continue_on_error, check=check,
                           on_progress=on_progress)
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGINT, job.cancel)
            try:
                with bar:
                    return await job.run()
            finally:
                loop.remove_signal_handler(signal.SIGINT)

    try:
        outcome = asyncio.run(go())
    except DriverNotAvailableError as exc:
        _fail(str(exc), EXIT_BAD_INPUT)
    except SmartlineError as exc:
        _fail(f"{device}: {exc}", EXIT_FAILURE)
    if outcome.ok:
        click.echo(f"smartline: {outcome.message} in {outcome.elapsed_s:.1f} s "
                   f"({outcome.mode}{', check mode' if check else ''})", err=True)
        sys.exit(EXIT_OK)
    click.echo(f"smartline: {outcome.message}", err=True)
    for err in outcome.errors[1:]:
        click.echo(f"smartline: {file}:{err.file_line}: {err.text}: error:{err.code} "
                   f"({err.meaning})", err=True)
    sys.exit(EXIT_FAILURE)


@cli.group()
def audit() -> None:
    """The audit trail of writes (hash-chained JSON lines)."""


@audit.command("verify")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
def audit_verify(file: Path | None) -> None:
    """Check the hash chain of the audit trail FILE (default $SMARTLINE_AUDIT or
    ~/.local/state/smartline/audit.jsonl). Exits 0 when intact, 1 when a record was
    edited, deleted, inserted or cut off (each named with its line), 2 if unreadable."""
    from .cycle._audit import verify_audit

    path = file or _default_audit_path()
    try:
        verdict = verify_audit(path)
    except OSError as exc:
        _fail(f"cannot read the audit trail {path}: {exc.strerror or exc}", EXIT_BAD_INPUT)
    for problem in verdict.problems:
        click.echo(problem, err=True)
    if not verdict.ok:
        _fail(f"{path}: the audit trail was altered ({len(verdict.problems)} problem(s))",
              EXIT_FAILURE)
    old = f", {verdict.unchained} from before the chain" if verdict.unchained else ""
    click.echo(f"{path}: {verdict.records} records, chain intact{old}")


def _default_audit_path() -> Path:
    from .core import default_audit_path

    return default_audit_path()


@cli.command()
@click.argument("line", type=click.Path(path_type=Path))
@click.option("--history", "history_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="The line's history (default $SMARTLINE_STATE_DIR/"
              "history-LINE.db, as `smartline run` records it).")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="The HTML file (default LINE-report.html here).")
@click.option("--since", default=None, metavar="ISO-TIME",
              help="Only what happened since then (UTC unless it says otherwise).")
@click.option("--design-speed", "design_speeds", multiple=True, metavar="UNIT=PER_MINUTE",
              help="A unit's ideal rate for OEE performance (repeatable); default: the best "
              "rate observed.")
@_profile_path_option
def report(  # noqa: PLR0917 (click passes one parameter per option)
        line: Path, history_path: Path | None, out_path: Path | None, since: str | None,
        design_speeds: tuple[str, ...], profile_paths: tuple[Path, ...]) -> None:
    """Write the line's HTML report: cycle times, OEE, MTBF/MTTR, downtime by stop reason,
    and its digitalisation figures (one self-contained file, plots inline)."""
    from .config import load_line
    from .northbound.report import (
        LineHistory,
        default_history_path,
        parse_design_speeds,
        parse_since,
        render_report,
    )

    try:
        config = load_line(line, profile_paths=profile_paths)
    except ConfigError as exc:
        _fail_config(exc)
    try:
        since_ns = parse_since(since) if since is not None else None
        speeds = parse_design_speeds(design_speeds)
    except ValueError as exc:
        _fail(str(exc), EXIT_BAD_INPUT)
    path = history_path or default_history_path(config.name)
    if not path.exists():
        _fail(f"no history of line {config.name!r} at {path}: run the line first "
              "(smartline run records it), or give --history", EXIT_BAD_INPUT)
    out = out_path or Path(f"{config.name}-report.html")
    try:
        import matplotlib  # noqa: F401 (the plots need it: say so before any work)
    except ImportError:
        _fail("the report's plots need matplotlib: pip install 'smartline[report]'",
              EXIT_BAD_INPUT)
    try:
        history = LineHistory(path)
    except SmartlineError as exc:  # another kind of file, another schema version
        _fail(str(exc), EXIT_BAD_INPUT)
    try:
        written = render_report(config, history, out, since_ns=since_ns, design_speed=speeds,
                                audit_path=_default_audit_path())
    except ConfigError as exc:
        _fail_config(exc)
    except OSError as exc:
        _fail(f"cannot write {out}: {exc.strerror or exc}", EXIT_FAILURE)
    finally:
        history.close()
    click.echo(f"smartline: report of line {config.name!r} written to {written}", err=True)


@cli.group()
def recipe() -> None:
    """Recipes: run them over a line (ISA-88 procedures over PackML units), batch records."""


_journal_option = click.option(
    "--journal", "journal_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="The batch journal (SQLite); default $SMARTLINE_STATE_DIR/batches.db "
    "(~/.local/state/smartline/batches.db).")


@recipe.command("run")
@click.argument("line", type=click.Path(path_type=Path))
@click.argument("recipes", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--param", "-p", "param_texts", multiple=True, metavar="NAME=VALUE",
              help="A formula parameter (repeatable); applies to every recipe that has it.")
@click.option("--sim", "sim_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Run against this HIL scenario's simulated plant.")
@click.option("--virtual", is_flag=True, default=False,
              help="With --sim: virtual time, as fast as the CPU allows.")
@click.option("--duration", "duration_s", type=click.FloatRange(min=0, min_open=True),
              default=None, help="Stop after S seconds even if a batch is still running.")
@click.option("--live/--no-live", default=None,
              help="Live progress in the terminal (default: when stdout is a terminal).")
@_journal_option
@_profile_path_option
def recipe_run(  # noqa: PLR0917 (click passes one parameter per option)
        line: Path, recipes: tuple[Path, ...], param_texts: tuple[str, ...],
        sim_path: Path | None, virtual: bool, duration_s: float | None, live: bool | None,
        journal_path: Path | None, profile_paths: tuple[Path, ...]) -> None:
    """Run RECIPES one after the other over LINE (changeover without stopping the cycle).

    Every recipe and parameter is checked before anything moves. Exits 0 when every batch
    completed, 1 when one was held, stopped or aborted, 2 on bad input.
    """
    from .recipe_run import run_recipes

    params: dict[str, str] = {}  # text: each is converted to its parameter's type
    for text in param_texts:
        name, sep, value = text.partition("=")
        if not sep or not name.strip():
            _fail(f"--param {text!r}: expected NAME=VALUE", EXIT_BAD_INPUT)
        params[name.strip()] = value.strip()
    if virtual and sim_path is None:
        _fail("--virtual needs --sim SCENARIO", EXIT_BAD_INPUT)
    sys.exit(run_recipes(line, recipes, params=params, sim_path=sim_path, virtual=virtual,
                         duration_s=duration_s, journal_path=journal_path,
                         live=sys.stdout.isatty() if live is None else live,
                         profile_paths=profile_paths))


@recipe.command("history")
@click.option("--line", "line_name", default=None, help="Only this line's batches.")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="JSON on stdout.")
@_journal_option
def recipe_history(line_name: str | None, limit: int, as_json: bool,
                   journal_path: Path | None) -> None:
    """The batches in the journal, newest first."""
    from .recipe_run import recipe_history as history

    sys.exit(history(journal_path, line=line_name, limit=limit, as_json=as_json))


@recipe.command("export")
@click.argument("batch")
@click.option("--format", "fmt", type=click.Choice(["json", "csv"]), default="json",
              show_default=True)
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to FILE (default: stdout).")
@_journal_option
def recipe_export(batch: str, fmt: str, out: Path | None, journal_path: Path | None) -> None:
    """A batch record (every state change, command, write, parameter, alarm, identity)."""
    from .recipe_run import export_batch

    sys.exit(export_batch(batch, journal_path=journal_path, fmt=fmt, out=out))


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="smartline",
                 standalone_mode=True)
    except SmartlineError as exc:  # a last net: never a traceback for our own errors
        _fail(str(exc), EXIT_FAILURE)


if __name__ == "__main__":
    main()
