"""ISA-88 procedural states: every state x (command | DONE) against the written-out table."""

from __future__ import annotations

import pytest

import smartline
from smartline.recipes.procedural import (
    PROC_ACTING_STATES,
    PROC_FINAL_STATES,
    ProcCommand,
    ProcEvent,
    ProcState,
    next_proc_state,
    proc_accepted,
    proc_command_by_name,
    proc_state_by_name,
)

# The procedural state model as batch systems draw it (DeltaV phase states, Rockwell
# PhaseManager), written out by hand. Rows: current state; "-" = not accepted. DONE is the
# end of an acting state (RUNNING: the element completed; PAUSING: it reached a boundary).
COLUMNS = ["START", "STOP", "HOLD", "RESTART", "ABORT", "RESET", "PAUSE", "RESUME", "DONE"]
STANDARD = """
IDLE       RUNNING -        -       -          -        -    -       -       -
RUNNING    -       STOPPING HOLDING -          ABORTING -    PAUSING -       COMPLETE
COMPLETE   -       -        -       -          -        IDLE -       -       -
PAUSING    -       STOPPING HOLDING -          ABORTING -    -       RUNNING PAUSED
PAUSED     -       STOPPING HOLDING -          ABORTING -    -       RUNNING -
HOLDING    -       STOPPING -       -          ABORTING -    -       -       HELD
HELD       -       STOPPING -       RESTARTING ABORTING -    -       -       -
RESTARTING -       STOPPING HOLDING -          ABORTING -    -       -       RUNNING
STOPPING   -       -        -       -          ABORTING -    -       -       STOPPED
STOPPED    -       -        -       -          -        IDLE -       -       -
ABORTING   -       -        -       -          -        -    -       -       ABORTED
ABORTED    -       -        -       -          -        IDLE -       -       -
"""

What = ProcCommand | ProcEvent


def _what(column: str) -> What:
    return ProcEvent.DONE if column == "DONE" else ProcCommand[column]


def _parse() -> dict[ProcState, dict[What, ProcState | None]]:
    table: dict[ProcState, dict[What, ProcState | None]] = {}
    for row in STANDARD.strip().splitlines():
        state, *cells = row.split()
        assert len(cells) == len(COLUMNS), row
        table[ProcState[state]] = {
            _what(col): (None if cell == "-" else ProcState[cell])
            for col, cell in zip(COLUMNS, cells, strict=True)
        }
    return table


EXPECTED = _parse()
PAIRS = [(s, w) for s in EXPECTED for w in EXPECTED[s]]


def test_the_table_covers_12_states_by_9():
    assert set(EXPECTED) == set(ProcState)
    assert len(PAIRS) == 12 * 9
    assert [c.name for c in ProcCommand] == COLUMNS[:-1]


@pytest.mark.parametrize(("state", "what"), PAIRS, ids=[f"{s.name}-{w.name}" for s, w in PAIRS])
def test_next_proc_state_matches_the_table(state, what):
    expected = EXPECTED[state][what]
    if expected is not None:
        assert next_proc_state(state, what) is expected
        return
    with pytest.raises(smartline.RecipeError) as info:
        next_proc_state(state, what)
    message = str(info.value)
    accepts = ", ".join(col for col in COLUMNS if EXPECTED[state][_what(col)] is not None)
    assert message.endswith(f"a procedure in state {state.name} accepts: {accepts}")
    if what is ProcEvent.DONE:
        assert message.startswith(f"DONE refused: {state.name} is not an acting state")
    else:
        assert message.startswith(f"command {what.name} refused: ")


@pytest.mark.parametrize("state", list(ProcState), ids=lambda s: s.name)
def test_proc_accepted_is_the_row(state):
    assert proc_accepted(state) == {w for w, t in EXPECTED[state].items() if t is not None}


def test_acting_and_final_states():
    assert {s.name for s in PROC_ACTING_STATES} == {
        "RUNNING", "PAUSING", "HOLDING", "RESTARTING", "STOPPING", "ABORTING",
    }  # fmt: skip
    assert {s.name for s in PROC_FINAL_STATES} == {"COMPLETE", "STOPPED", "ABORTED"}
    for state in ProcState:
        assert (ProcEvent.DONE in proc_accepted(state)) is (state in PROC_ACTING_STATES)
        assert (proc_accepted(state) == {ProcCommand.RESET}) is (state in PROC_FINAL_STATES)


def test_hold_restart_then_pause_resume_then_complete():
    walk = [
        (ProcCommand.START, ProcState.RUNNING),
        (ProcCommand.HOLD, ProcState.HOLDING),
        (ProcEvent.DONE, ProcState.HELD),
        (ProcCommand.RESTART, ProcState.RESTARTING),
        (ProcEvent.DONE, ProcState.RUNNING),
        (ProcCommand.PAUSE, ProcState.PAUSING),
        (ProcEvent.DONE, ProcState.PAUSED),
        (ProcCommand.RESUME, ProcState.RUNNING),
        (ProcEvent.DONE, ProcState.COMPLETE),
        (ProcCommand.RESET, ProcState.IDLE),
    ]
    state = ProcState.IDLE
    for what, expected in walk:
        state = next_proc_state(state, what)
        assert state is expected, what


def test_an_idle_procedure_refuses_abort_saying_what_it_accepts():
    with pytest.raises(smartline.RecipeError) as info:
        next_proc_state(ProcState.IDLE, ProcCommand.ABORT)
    assert str(info.value) == "command ABORT refused: a procedure in state IDLE accepts: START"


@pytest.mark.parametrize("text", ["held", "HELD", "Held", " held "])
def test_proc_state_by_name(text):
    assert proc_state_by_name(text) is ProcState.HELD


def test_proc_command_by_name_and_its_errors():
    for command in ProcCommand:
        assert proc_command_by_name(command.name.lower()) is command
    with pytest.raises(smartline.RecipeError) as info:
        proc_command_by_name("unhold")
    assert str(info.value) == (
        "unknown procedural command 'unhold' (did you mean HOLD?); commands: START, STOP, HOLD, "
        "RESTART, ABORT, RESET, PAUSE, RESUME"
    )
    with pytest.raises(smartline.RecipeError, match="unknown procedural state 'done'"):
        proc_state_by_name("done")
