"""What ``smartline recipe run|history|export`` do: recipes over a running line.

``recipe run`` loads the line (with its PackML units) and the recipes, checks every recipe
and its parameters before anything moves, then runs the line's tasks as ``smartline run``
does and the recipe executor beside them as a service of the I/O loop (never on the tick's
path). The recipes run one after the other (changeover without stopping the cycle); the
line stops when the last batch has ended. A batch left unfinished by an earlier run is
resumed or aborted first, by its recipe's ``on_restart`` rule, and that is said.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .core import ConfigError, RecipeError, default_audit_path
from .run import (
    EXIT_BAD_INPUT,
    EXIT_FAILURE,
    EXIT_OK,
    Attach,
    Hooks,
    LineServices,
    _error,
    line_units,
    run_line,
    run_line_sim,
)

if TYPE_CHECKING:
    from rich.console import RenderableType

    from .config import LineConfig
    from .cycle import Engine
    from .line import Line
    from .recipes._executor import RecipeExecutor
    from .recipes._journal import BatchJournal
    from .recipes._model import Recipe
    from .recipes._units import Units

__all__ = ["RECIPE_PERIOD_NS", "export_batch", "recipe_history", "run_recipes"]

log = logging.getLogger(__name__)

RECIPE_PERIOD_NS = 100_000_000  # the executor steps every 100 ms


def run_recipes(line_path: Path, recipe_paths: Sequence[Path], *,
                params: Mapping[str, str] | None = None,
                sim_path: Path | None = None, virtual: bool = False,
                duration_s: float | None = None, journal_path: Path | None = None,
                live: bool = False, profile_paths: Sequence[Path] = ()) -> int:
    """``smartline recipe run LINE RECIPE...``: the exit code (0 when every batch
    completed, 1 when one did not, 2 for bad input — nothing ran then)."""
    from .config import load_line
    from .recipes._journal import BatchJournal, default_journal_path
    from .recipes._load import load_recipe, validate_parameters

    try:
        config, units = line_units(load_line(line_path, profile_paths=profile_paths))
        recipes = [load_recipe(p, line=config, units=units) for p in recipe_paths]
    except ConfigError as exc:
        for issue in exc.issues:
            _error(issue.format())
        return EXIT_BAD_INPUT
    values = dict(params or {})
    unknown = sorted(k for k in values
                     if not any(k in {p.name for p in r.parameters} for r in recipes))
    if unknown:
        _error(f"unknown parameter(s) {', '.join(unknown)}: the recipes have "
               + ", ".join(sorted({p.name for r in recipes for p in r.parameters})))
        return EXIT_BAD_INPUT
    checked: list[tuple[Recipe, dict[str, object]]] = []
    try:
        for r in recipes:
            mine = {k: v for k, v in values.items() if k in {p.name for p in r.parameters}}
            checked.append((r, validate_parameters(r, mine)))
    except RecipeError as exc:
        _error(f"{r.source}: {exc}")
        return EXIT_BAD_INPUT
    path = journal_path if journal_path is not None else default_journal_path()
    try:  # a recipe version already used with other content is refused before anything runs
        if path.exists():
            with BatchJournal(path, read_only=True) as seen:
                for r, _ in checked:
                    seen.check_version(r.name, r.version, r.digest)
        BatchJournal(path).close()  # created (or opened) now: a path that cannot be is said
    except RecipeError as exc:
        _error(str(exc))
        return EXIT_BAD_INPUT
    except OSError as exc:
        _error(f"cannot open the batch journal {path}: {exc.strerror or exc}")
        return EXIT_FAILURE
    holder: list[RecipeExecutor] = []
    outcome: list[int] = [EXIT_OK]

    def make_attach(cfg: LineConfig, u: Units | None) -> Attach:
        audit = default_audit_path()
        return _attach(LineServices(cfg, u, audit_path=audit), checked, path, holder, outcome)

    def extra() -> RenderableType:
        return _progress(holder[0] if holder else None)

    if sim_path is not None:
        code = run_line_sim(line_path, sim_path, virtual=virtual, duration_s=duration_s,
                            live=live, profile_paths=profile_paths,
                            make_attach=make_attach, extra=extra, judge=False)
    else:
        code = run_line(line_path, duration_s=duration_s, live=live,
                        profile_paths=profile_paths, make_attach=make_attach, extra=extra)
    return code if code != EXIT_OK else outcome[0]


def _attach(services: LineServices, checked: Sequence[tuple[Recipe, dict[str, object]]],
            journal_path: Path, holder: list[RecipeExecutor], outcome: list[int]) -> Attach:
    """The services of a recipe run: the units' state machines, the executor, and a watch
    that stops the line once the last batch has ended, or when a batch is held (nobody
    here can restart it: it stays open, and the next run resumes or aborts it by its
    recipe's ``on_restart`` rule)."""
    def attach(line: Line, engine: Engine) -> Hooks:
        from .recipes._executor import RecipeExecutor
        from .recipes._journal import BatchJournal
        from .recipes.procedural import PROC_FINAL_STATES, ProcCommand, ProcState

        journal = BatchJournal(journal_path, clock=line.clock)
        service_hooks = services.attach(line, engine)
        runtime = services.unit_runtime
        executor = RecipeExecutor(line, units=runtime, journal=journal, clock=line.clock,
                                  alarms=engine.alarms)
        holder.append(executor)
        for said in executor.recover(recipes=[r for r, _ in checked]):
            _error(f"smartline: {said}")
        for r, values in checked:
            executor.submit(r, values)
        started = [False]

        async def step(now_ns: int) -> None:
            await executor.step(now_ns)
            if executor.state is ProcState.HELD:
                engine.stop()
            elif not executor.idle:
                started[0] = True
            elif started[0] or executor.batch is None:  # every batch has ended
                engine.stop()

        engine.add_service("recipe", RECIPE_PERIOD_NS, step)

        async def done() -> None:
            if executor.batch is not None and executor.state in PROC_FINAL_STATES:
                # stopped or aborted: this run acknowledges it, so the record closes
                executor.command(ProcCommand.RESET, source="smartline recipe run")
            p = executor.progress()
            await executor.aclose()
            for fn in service_hooks.close:
                await fn()
            finished = executor.finished()
            for summary in finished:
                _error(f"smartline: batch {summary.id} ({summary.recipe} version "
                       f"{summary.version}): {summary.state}")
                if summary.state.upper() != "COMPLETE":
                    outcome[0] = EXIT_FAILURE
            if p.batch is not None:
                _error(f"smartline: batch {p.batch} left {p.state.name} ({p.message}); the "
                       "next run of this line resumes or aborts it by its recipe's "
                       "on_restart rule")
                outcome[0] = EXIT_FAILURE
            elif len(finished) < len(checked):
                _error(f"smartline: {len(checked) - len(finished)} recipe(s) did not run: "
                       f"{p.message}")
                outcome[0] = EXIT_FAILURE
            journal.close()
        return Hooks(start=service_hooks.start, close=[done])
    return attach


def _progress(executor: RecipeExecutor | None) -> RenderableType:
    from rich.table import Table

    table = Table(title="recipe", show_header=True, header_style="bold")
    table.add_column("batch")
    table.add_column("state")
    table.add_column("phases")
    table.add_column("running")
    table.add_column("queued")
    if executor is None:
        return table
    p = executor.progress()
    table.add_row(f"{p.batch or '-'}\n{p.recipe or ''}", p.state.name.lower(),
                  f"{p.phases_done}/{p.phases_total}  {p.elapsed_s:.0f} s",
                  "\n".join(p.active) or p.message, ", ".join(p.queued) or "-")
    return table


def recipe_history(journal_path: Path | None, *, line: str | None, limit: int | None,
                   as_json: bool) -> int:
    """``smartline recipe history``: the batches in the journal, newest first."""
    import json

    journal = _read_journal(journal_path, "run a recipe first, or give --journal")
    if journal is None:
        return EXIT_BAD_INPUT
    try:
        batches = journal.batches(line=line, limit=limit)
    finally:
        journal.close()
    if as_json:
        print(json.dumps([_summary_json(b) for b in batches], indent=2, sort_keys=True))
        return EXIT_OK
    from rich.console import Console
    from rich.table import Table

    table = Table(show_header=True, header_style="bold")
    for col in ("batch", "recipe", "version", "state", "started (UTC)", "events"):
        table.add_column(col, no_wrap=True)  # ids are copied into `recipe export`
    for b in batches:
        table.add_row(b.id, b.recipe, b.version, b.state, _iso(b.started_ns), str(b.events))
    Console(width=max(Console().width, 120)).print(table)
    return EXIT_OK


def export_batch(batch: str, *, journal_path: Path | None, fmt: str,
                 out: Path | None) -> int:
    """``smartline recipe export BATCH``: the batch record as JSON or CSV."""
    journal = _read_journal(journal_path, "give --journal")
    if journal is None:
        return EXIT_BAD_INPUT
    path = journal.path
    try:
        try:
            journal.batch(batch)
        except KeyError:
            known = [b.id for b in journal.batches(limit=5)]
            _error(f"unknown batch {batch!r} in {path}; newest: {', '.join(known) or 'none'}")
            return EXIT_BAD_INPUT
        export = journal.export_json if fmt == "json" else journal.export_csv
        if out is None:
            export(batch, sys.stdout)
        else:
            with out.open("w", encoding="utf-8", newline="") as f:
                export(batch, f)
            _error(f"smartline: batch {batch} written to {os.fspath(out)}")
    finally:
        journal.close()
    return EXIT_OK


def _read_journal(journal_path: Path | None, missing: str) -> BatchJournal | None:
    """The batch journal opened for reading; None (said why) if there is none or it is not
    one. ``missing``: what to do when the file does not exist."""
    from .recipes._journal import BatchJournal, default_journal_path

    path = journal_path if journal_path is not None else default_journal_path()
    if not path.exists():
        _error(f"no batch journal at {path} ({missing})")
        return None
    try:
        return BatchJournal(path, read_only=True)
    except RecipeError as exc:  # another kind of file, another schema version
        _error(str(exc))
        return None


def _iso(ns: int | None) -> str:
    import datetime as dt

    if ns is None:
        return "-"
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _summary_json(b: object) -> dict[str, object]:
    import dataclasses

    assert dataclasses.is_dataclass(b) and not isinstance(b, type)
    return {k: (dict(v) if isinstance(v, Mapping) else v)
            for k, v in dataclasses.asdict(b).items()}
