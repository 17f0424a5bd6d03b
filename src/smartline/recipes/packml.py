"""The PackML machine state model (ISA-TR88.00.02-2015): 17 states, the control commands,
unit modes. Pure functions over immutable tables, no I/O, so every unit, the executor and
the checker agree on one transition table.

Numbering follows PackTags v3 (Beckhoff ``Tc3_PackML`` ``E_PMLState`` / ``E_CntrlCmd``),
the numbers a PackML PLC shows in ``Status.StateCurrent`` and takes in ``Command.CntrlCmd``.
``Command.STATE_COMPLETE`` is the internal *SC* event that ends an acting state; it is not
a ``CntrlCmd``. See docs/reference/packml.md for the tables and their sources.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum, IntEnum
from types import MappingProxyType
from typing import TypeVar

from ..core import RecipeError

__all__ = [
    "DEFAULT_MODES",
    "MODE_CHANGE_STATES",
    "Command",
    "ModeDef",
    "State",
    "StateClass",
    "UnitMode",
    "accepted",
    "accepted_in_mode",
    "command_by_name",
    "mode_problems",
    "next_state",
    "next_state_in_mode",
    "state_by_name",
    "state_class",
]


class State(IntEnum):
    """PackML states, numbered as PackTags ``StateCurrent`` (TR88.00.02-2015, ``E_PMLState``)."""

    CLEARING = 1
    STOPPED = 2
    STARTING = 3
    IDLE = 4
    SUSPENDED = 5
    EXECUTE = 6
    STOPPING = 7
    ABORTING = 8
    ABORTED = 9
    HOLDING = 10
    HELD = 11
    UNHOLDING = 12
    SUSPENDING = 13
    UNSUSPENDING = 14
    RESETTING = 15
    COMPLETING = 16
    COMPLETE = 17


class Command(IntEnum):
    """PackML commands, numbered as PackTags ``CntrlCmd``; ``STATE_COMPLETE`` is the internal SC."""

    RESET = 1
    START = 2
    STOP = 3
    HOLD = 4
    UNHOLD = 5
    SUSPEND = 6
    UNSUSPEND = 7
    ABORT = 8
    CLEAR = 9
    COMPLETE = 10
    STATE_COMPLETE = 100


class StateClass(Enum):
    """Acting states do something and end with SC; wait states wait for a command."""

    ACTING = "acting"
    WAIT = "wait"
    DUAL = "dual"  # EXECUTE: waits for commands and may also end by itself (SC)


class UnitMode(IntEnum):
    """The three modes the standard names; user-defined modes are :class:`ModeDef` numbers >= 4."""

    PRODUCTION = 1
    MAINTENANCE = 2
    MANUAL = 3


@dataclass(frozen=True, slots=True)
class ModeDef:
    """A unit mode: its name, its ``UnitMode`` number and the states it enables."""

    name: str
    number: int
    states: frozenset[State]


_S = State
_E = TypeVar("_E", State, Command)
_C = Command

_WAIT = frozenset({_S.STOPPED, _S.IDLE, _S.SUSPENDED, _S.HELD, _S.COMPLETE, _S.ABORTED})
_NO_STOP = frozenset({_S.STOPPED, _S.STOPPING, _S.ABORTING, _S.ABORTED, _S.CLEARING})
_NO_ABORT = frozenset({_S.ABORTING, _S.ABORTED})


def _build_table() -> Mapping[tuple[State, Command], State]:
    """The TR88.00.02-2015 transitions: the explicit ones, then Stop and Abort from their sets."""
    table: dict[tuple[State, Command], State] = {
        (_S.STOPPED, _C.RESET): _S.RESETTING,
        (_S.RESETTING, _C.STATE_COMPLETE): _S.IDLE,
        (_S.IDLE, _C.START): _S.STARTING,
        (_S.STARTING, _C.STATE_COMPLETE): _S.EXECUTE,
        (_S.EXECUTE, _C.STATE_COMPLETE): _S.COMPLETING,
        (_S.EXECUTE, _C.COMPLETE): _S.COMPLETING,
        (_S.EXECUTE, _C.HOLD): _S.HOLDING,
        (_S.EXECUTE, _C.SUSPEND): _S.SUSPENDING,
        (_S.COMPLETING, _C.STATE_COMPLETE): _S.COMPLETE,
        (_S.COMPLETE, _C.RESET): _S.RESETTING,
        (_S.HOLDING, _C.STATE_COMPLETE): _S.HELD,
        (_S.HELD, _C.UNHOLD): _S.UNHOLDING,
        (_S.UNHOLDING, _C.STATE_COMPLETE): _S.EXECUTE,
        (_S.SUSPENDING, _C.STATE_COMPLETE): _S.SUSPENDED,
        (_S.SUSPENDED, _C.UNSUSPEND): _S.UNSUSPENDING,
        (_S.SUSPENDED, _C.HOLD): _S.HOLDING,  # SuspendedToHolding, new in the 2015 model
        (_S.UNSUSPENDING, _C.STATE_COMPLETE): _S.EXECUTE,
        (_S.STOPPING, _C.STATE_COMPLETE): _S.STOPPED,
        (_S.ABORTING, _C.STATE_COMPLETE): _S.ABORTED,
        (_S.ABORTED, _C.CLEAR): _S.CLEARING,
        (_S.CLEARING, _C.STATE_COMPLETE): _S.STOPPED,
    }
    for state in State:
        if state not in _NO_STOP:
            table[(state, _C.STOP)] = _S.STOPPING
        if state not in _NO_ABORT:
            table[(state, _C.ABORT)] = _S.ABORTING
    return MappingProxyType(table)


_TABLE = _build_table()
_ACCEPTED: Mapping[State, frozenset[Command]] = MappingProxyType(
    {s: frozenset(c for (st, c) in _TABLE if st is s) for s in State}
)

DEFAULT_MODES: Mapping[str, ModeDef] = MappingProxyType(
    {
        "production": ModeDef("production", int(UnitMode.PRODUCTION), frozenset(State)),
        "maintenance": ModeDef(
            "maintenance",
            int(UnitMode.MAINTENANCE),
            frozenset(State) - {_S.SUSPENDING, _S.SUSPENDED, _S.UNSUSPENDING},
        ),
        "manual": ModeDef(
            "manual",
            int(UnitMode.MANUAL),
            frozenset(
                {
                    _S.STOPPED,
                    _S.STOPPING,
                    _S.ABORTING,
                    _S.ABORTED,
                    _S.CLEARING,
                    _S.RESETTING,
                    _S.IDLE,
                    _S.STARTING,
                    _S.EXECUTE,
                    _S.COMPLETING,
                    _S.COMPLETE,
                }
            ),
        ),
    }
)
"""Production enables all 17 states; maintenance runs a machine on its own, so without the
line-coupled Suspend states; manual also drops Hold (see docs/reference/packml.md)."""

MODE_CHANGE_STATES: frozenset[State] = frozenset({_S.STOPPED, _S.IDLE, _S.ABORTED})
"""States in which a unit accepts a mode change (the default barrier of a mode manager)."""


def _names(items: Iterable[State | Command]) -> str:
    ordered = sorted(items, key=int)
    return ", ".join(i.name for i in ordered) if ordered else "nothing"


def _as_state(state: State | int) -> State:
    try:
        return State(state)
    except ValueError:
        raise RecipeError(f"{state!r} is not a PackML state number (1..17)") from None


def _as_command(command: Command | int) -> Command:
    try:
        return Command(command)
    except ValueError:
        raise RecipeError(f"{command!r} is not a PackML command number (1..10, 100)") from None


def _what(command: Command) -> str:
    return "state complete (SC)" if command is _C.STATE_COMPLETE else f"command {command.name}"


def state_class(state: State) -> StateClass:
    """Whether ``state`` is acting (ends with SC), wait (waits for a command) or dual (EXECUTE)."""
    state = _as_state(state)
    if state is _S.EXECUTE:
        return StateClass.DUAL
    return StateClass.WAIT if state in _WAIT else StateClass.ACTING


def accepted(state: State) -> frozenset[Command]:
    """The commands (and SC) that ``state`` accepts."""
    return _ACCEPTED[_as_state(state)]


def next_state(state: State, command: Command) -> State:
    """The state ``command`` (or SC) leads to from ``state``; RecipeError saying why if refused."""
    state, command = _as_state(state), _as_command(command)
    target = _TABLE.get((state, command))
    if target is not None:
        return target
    why = ""
    if command is _C.STATE_COMPLETE:
        why = f"{state.name} is a wait state, nothing to complete; "
    raise RecipeError(
        f"{_what(command)} refused: {why}a unit in state {state.name} accepts: "
        f"{_names(_ACCEPTED[state])}"
    )


def next_state_in_mode(state: State, command: Command, mode: ModeDef) -> State:
    """:func:`next_state`, also refusing a target state that ``mode`` does not enable."""
    target = next_state(state, command)
    if target not in mode.states:
        state, command = _as_state(state), _as_command(command)
        raise RecipeError(
            f"{_what(command)} refused: in state {state.name} it leads to {target.name}, "
            f"which mode {mode.name} ({mode.number}) does not enable; in mode {mode.name} "
            f"a unit in state {state.name} accepts: {_names(accepted_in_mode(state, mode))}"
        )
    return target


def accepted_in_mode(state: State, mode: ModeDef) -> frozenset[Command]:
    """The commands (and SC) that ``state`` accepts in ``mode``: those whose target it enables."""
    state = _as_state(state)
    return frozenset(c for c in _ACCEPTED[state] if _TABLE[(state, c)] in mode.states)


def mode_problems(mode: ModeDef) -> tuple[str, ...]:
    """Why ``mode`` would trap a unit (empty if none): a loader reports these for user modes.

    A mode must enable STOPPED and, from every state it enables, the targets of Stop, Abort,
    Clear and of SC in acting states, so that a unit can always be stopped or aborted and
    never sticks in an acting state. EXECUTE's SC (to COMPLETING) is optional.
    """
    problems: list[str] = []
    if mode.number < 1:
        problems.append(f"mode {mode.name}: number {mode.number} is not >= 1")
    if _S.STOPPED not in mode.states:
        problems.append(f"mode {mode.name}: must enable STOPPED")
    missing: dict[State, list[str]] = {}
    for state in sorted(mode.states, key=int):
        for command in (_C.STOP, _C.ABORT, _C.CLEAR, _C.STATE_COMPLETE):
            if command is _C.STATE_COMPLETE and state is _S.EXECUTE:
                continue
            target = _TABLE.get((state, command))
            if target is not None and target not in mode.states:
                missing.setdefault(target, []).append(f"{_what(command)} in {state.name}")
    for target, reasons in sorted(missing.items(), key=lambda kv: int(kv[0])):
        problems.append(
            f"mode {mode.name}: must enable {target.name}, needed by {', '.join(reasons)}"
        )
    return tuple(problems)


def _by_name(kind: str, name: str, choices: Mapping[str, _E]) -> _E:
    found = choices.get(name.strip().upper())
    if found is not None:
        return found
    close = difflib.get_close_matches(name.strip().upper(), list(choices), n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise RecipeError(f"unknown PackML {kind} {name!r}{hint}; {kind}s: {', '.join(choices)}")


def state_by_name(name: str) -> State:
    """The state called ``name`` (case-insensitive); RecipeError listing the names otherwise."""
    return _by_name("state", name, {s.name: s for s in State})


def command_by_name(name: str, *, internal: bool = False) -> Command:
    """The command called ``name`` (case-insensitive); RecipeError listing the names otherwise.

    Only the ten ``CntrlCmd`` commands unless ``internal`` also admits ``STATE_COMPLETE``
    (alias ``SC``), which a unit raises itself and nobody commands.
    """
    choices: dict[str, Command] = {c.name: c for c in Command if c is not _C.STATE_COMPLETE}
    if internal:
        choices["STATE_COMPLETE"] = choices["SC"] = _C.STATE_COMPLETE
    return _by_name("command", name, choices)
