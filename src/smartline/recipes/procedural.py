"""ISA-88 procedural element states: the state model a procedure, unit procedure, operation
or phase goes through (IEC 61512-1 as batch systems implement it: DeltaV phase states,
Rockwell PhaseManager). Pure functions over one immutable table, no I/O.

Pause and Resume act at the next programmed transition, so ``RUNNING --PAUSE--> PAUSING``
waits for the element to reach a boundary (``DONE``) before it is ``PAUSED``. ``DONE`` is
the event that ends an acting state; in ``RUNNING`` it means the element has completed.
See docs/reference/packml.md for the table and its sources.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from enum import Enum
from types import MappingProxyType
from typing import TypeAlias, TypeVar

from ..core import RecipeError

__all__ = [
    "PROC_ACTING_STATES",
    "PROC_FINAL_STATES",
    "ProcCommand",
    "ProcEvent",
    "ProcState",
    "next_proc_state",
    "proc_accepted",
    "proc_command_by_name",
    "proc_state_by_name",
]


class ProcState(Enum):
    """The twelve ISA-88 procedural states."""

    IDLE = "idle"
    RUNNING = "running"
    COMPLETE = "complete"
    PAUSING = "pausing"
    PAUSED = "paused"
    HOLDING = "holding"
    HELD = "held"
    RESTARTING = "restarting"
    STOPPING = "stopping"
    STOPPED = "stopped"
    ABORTING = "aborting"
    ABORTED = "aborted"


class ProcCommand(Enum):
    """The eight ISA-88 procedural commands."""

    START = "start"
    STOP = "stop"
    HOLD = "hold"
    RESTART = "restart"
    ABORT = "abort"
    RESET = "reset"
    PAUSE = "pause"
    RESUME = "resume"


class ProcEvent(Enum):
    """Events the element raises itself: DONE ends an acting state (RUNNING: completed)."""

    DONE = "done"


_P = ProcState
_K = ProcCommand
_DONE = ProcEvent.DONE
_What: TypeAlias = ProcCommand | ProcEvent
_E = TypeVar("_E", ProcState, ProcCommand)

PROC_ACTING_STATES: frozenset[ProcState] = frozenset(
    {_P.RUNNING, _P.PAUSING, _P.HOLDING, _P.RESTARTING, _P.STOPPING, _P.ABORTING}
)
"""States that end by themselves with DONE."""

PROC_FINAL_STATES: frozenset[ProcState] = frozenset({_P.COMPLETE, _P.STOPPED, _P.ABORTED})
"""States that end the element's run; only Reset (to IDLE) leaves them."""


def _build_table() -> Mapping[tuple[ProcState, _What], ProcState]:
    """The explicit transitions, then Hold, Stop and Abort from the states that accept them."""
    table: dict[tuple[ProcState, _What], ProcState] = {
        (_P.IDLE, _K.START): _P.RUNNING,
        (_P.RUNNING, _DONE): _P.COMPLETE,
        (_P.RUNNING, _K.PAUSE): _P.PAUSING,
        (_P.PAUSING, _DONE): _P.PAUSED,
        (_P.PAUSING, _K.RESUME): _P.RUNNING,
        (_P.PAUSED, _K.RESUME): _P.RUNNING,
        (_P.HOLDING, _DONE): _P.HELD,
        (_P.HELD, _K.RESTART): _P.RESTARTING,
        (_P.RESTARTING, _DONE): _P.RUNNING,
        (_P.STOPPING, _DONE): _P.STOPPED,
        (_P.ABORTING, _DONE): _P.ABORTED,
    }
    for final in PROC_FINAL_STATES:
        table[(final, _K.RESET)] = _P.IDLE
    for state in (_P.RUNNING, _P.PAUSING, _P.PAUSED, _P.RESTARTING):
        table[(state, _K.HOLD)] = _P.HOLDING
    for state in (_P.RUNNING, _P.PAUSING, _P.PAUSED, _P.HOLDING, _P.HELD, _P.RESTARTING):
        table[(state, _K.STOP)] = _P.STOPPING
    for state in ProcState:
        if state not in {_P.IDLE, _P.ABORTING, _P.ABORTED} | PROC_FINAL_STATES:
            table[(state, _K.ABORT)] = _P.ABORTING
    return MappingProxyType(table)


_TABLE = _build_table()
_ORDER: tuple[_What, ...] = (*ProcCommand, _DONE)
_ACCEPTED: Mapping[ProcState, frozenset[_What]] = MappingProxyType(
    {s: frozenset(w for (st, w) in _TABLE if st is s) for s in ProcState}
)


def _names(items: Iterable[_What]) -> str:
    wanted = set(items)
    names = [w.name for w in _ORDER if w in wanted]
    return ", ".join(names) if names else "nothing"


def proc_accepted(state: ProcState) -> frozenset[ProcCommand | ProcEvent]:
    """The commands (and DONE) that ``state`` accepts."""
    return _ACCEPTED[state]


def next_proc_state(state: ProcState, what: ProcCommand | ProcEvent) -> ProcState:
    """The state ``what`` leads to from ``state``; RecipeError with the reason if refused."""
    target = _TABLE.get((state, what))
    if target is not None:
        return target
    if what is _DONE:
        lead = f"DONE refused: {state.name} is not an acting state, nothing to finish; "
    else:
        lead = f"command {what.name} refused: "
    raise RecipeError(
        f"{lead}a procedure in state {state.name} accepts: {_names(_ACCEPTED[state])}"
    )


def _by_name(kind: str, name: str, choices: Mapping[str, _E]) -> _E:
    key = name.strip().upper()
    found = choices.get(key)
    if found is not None:
        return found
    close = difflib.get_close_matches(key, list(choices), n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise RecipeError(f"unknown procedural {kind} {name!r}{hint}; {kind}s: {', '.join(choices)}")


def proc_state_by_name(name: str) -> ProcState:
    """The procedural state called ``name`` (case-insensitive); RecipeError listing the names."""
    return _by_name("state", name, {s.name: s for s in ProcState})


def proc_command_by_name(name: str) -> ProcCommand:
    """The procedural command called ``name`` (case-insensitive); RecipeError listing the names."""
    return _by_name("command", name, {c.name: c for c in ProcCommand})
