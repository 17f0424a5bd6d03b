"""PackML (ISA-TR88.00.02-2015): every state x command against the standard's table, modes."""

from __future__ import annotations

import pytest

import smartline
from smartline.recipes.packml import (
    DEFAULT_MODES,
    MODE_CHANGE_STATES,
    Command,
    ModeDef,
    State,
    StateClass,
    UnitMode,
    accepted,
    accepted_in_mode,
    command_by_name,
    mode_problems,
    next_state,
    next_state_in_mode,
    state_by_name,
    state_class,
)

# The TR88.00.02-2015 state transition matrix, written out by hand as the standard draws
# it (rows: current state, columns: command; "-" = not accepted). SC = state complete.
COLUMNS = ["RESET", "START", "STOP", "HOLD", "UNHOLD", "SUSPEND", "UNSUSPEND", "ABORT", "CLEAR",
           "COMPLETE", "SC"]  # fmt: skip
STANDARD = """
CLEARING     -         -        -        -       -         -          -            ABORTING -        -          STOPPED
STOPPED      RESETTING -        -        -       -         -          -            ABORTING -        -          -
STARTING     -         -        STOPPING -       -         -          -            ABORTING -        -          EXECUTE
IDLE         -         STARTING STOPPING -       -         -          -            ABORTING -        -          -
SUSPENDED    -         -        STOPPING HOLDING -         -          UNSUSPENDING ABORTING -        -          -
EXECUTE      -         -        STOPPING HOLDING -         SUSPENDING -            ABORTING -        COMPLETING COMPLETING
STOPPING     -         -        -        -       -         -          -            ABORTING -        -          STOPPED
ABORTING     -         -        -        -       -         -          -            -        -        -          ABORTED
ABORTED      -         -        -        -       -         -          -            -        CLEARING -          -
HOLDING      -         -        STOPPING -       -         -          -            ABORTING -        -          HELD
HELD         -         -        STOPPING -       UNHOLDING -          -            ABORTING -        -          -
UNHOLDING    -         -        STOPPING -       -         -          -            ABORTING -        -          EXECUTE
SUSPENDING   -         -        STOPPING -       -         -          -            ABORTING -        -          SUSPENDED
UNSUSPENDING -         -        STOPPING -       -         -          -            ABORTING -        -          EXECUTE
RESETTING    -         -        STOPPING -       -         -          -            ABORTING -        -          IDLE
COMPLETING   -         -        STOPPING -       -         -          -            ABORTING -        -          COMPLETE
COMPLETE     RESETTING -        STOPPING -       -         -          -            ABORTING -        -          -
"""  # noqa: E501


def _command(column: str) -> Command:
    return Command.STATE_COMPLETE if column == "SC" else Command[column]


def _parse() -> dict[State, dict[Command, State | None]]:
    table: dict[State, dict[Command, State | None]] = {}
    for row in STANDARD.strip().splitlines():
        state, *cells = row.split()
        assert len(cells) == len(COLUMNS), row
        table[State[state]] = {
            _command(col): (None if cell == "-" else State[cell])
            for col, cell in zip(COLUMNS, cells, strict=True)
        }
    return table


EXPECTED = _parse()
PAIRS = [(s, c) for s in EXPECTED for c in EXPECTED[s]]


def test_the_table_covers_17_states_by_11_commands():
    assert len(EXPECTED) == 17
    assert set(EXPECTED) == set(State)
    assert len(PAIRS) == 187


def test_numbering_is_packtags_v3():
    # Beckhoff Tc3_PackML E_PMLState / E_CntrlCmd numbers, what a PackML PLC publishes
    assert [(s.name, s.value) for s in State] == [
        ("CLEARING", 1), ("STOPPED", 2), ("STARTING", 3), ("IDLE", 4), ("SUSPENDED", 5),
        ("EXECUTE", 6), ("STOPPING", 7), ("ABORTING", 8), ("ABORTED", 9), ("HOLDING", 10),
        ("HELD", 11), ("UNHOLDING", 12), ("SUSPENDING", 13), ("UNSUSPENDING", 14),
        ("RESETTING", 15), ("COMPLETING", 16), ("COMPLETE", 17),
    ]  # fmt: skip
    assert [(c.name, c.value) for c in Command] == [
        ("RESET", 1), ("START", 2), ("STOP", 3), ("HOLD", 4), ("UNHOLD", 5), ("SUSPEND", 6),
        ("UNSUSPEND", 7), ("ABORT", 8), ("CLEAR", 9), ("COMPLETE", 10), ("STATE_COMPLETE", 100),
    ]  # fmt: skip


@pytest.mark.parametrize(("state", "command"), PAIRS, ids=[f"{s.name}-{c.name}" for s, c in PAIRS])
def test_next_state_matches_the_standard(state, command):
    expected = EXPECTED[state][command]
    if expected is not None:
        assert next_state(state, command) is expected
        return
    with pytest.raises(smartline.RecipeError) as info:
        next_state(state, command)
    message = str(info.value)
    accepts = [col for col in COLUMNS if EXPECTED[state][_command(col)] is not None]
    shown = ", ".join("STATE_COMPLETE" if col == "SC" else col for col in accepts)
    assert f"in state {state.name} accepts: {shown}" in message
    if command is Command.STATE_COMPLETE:
        assert message.startswith("state complete (SC) refused")
        assert "wait state" in message
    else:
        assert message.startswith(f"command {command.name} refused")


@pytest.mark.parametrize("state", list(State), ids=lambda s: s.name)
def test_accepted_is_the_row_of_the_table(state):
    assert accepted(state) == {c for c, t in EXPECTED[state].items() if t is not None}


def test_state_classes():
    acting = {"CLEARING", "STARTING", "SUSPENDING", "UNSUSPENDING", "STOPPING", "ABORTING",
              "HOLDING", "UNHOLDING", "RESETTING", "COMPLETING"}  # fmt: skip
    wait = {"STOPPED", "IDLE", "SUSPENDED", "HELD", "COMPLETE", "ABORTED"}
    for state in State:
        if state is State.EXECUTE:
            assert state_class(state) is StateClass.DUAL
        elif state.name in acting:
            assert state_class(state) is StateClass.ACTING
        else:
            assert state.name in wait
            assert state_class(state) is StateClass.WAIT


def test_sc_is_refused_exactly_in_wait_states():
    for state in State:
        refused = Command.STATE_COMPLETE not in accepted(state)
        assert refused is (state_class(state) is StateClass.WAIT), state


def test_a_production_run_and_its_recovery_walk_the_model():
    walk = [
        (Command.RESET, State.RESETTING), (Command.STATE_COMPLETE, State.IDLE),
        (Command.START, State.STARTING), (Command.STATE_COMPLETE, State.EXECUTE),
        (Command.SUSPEND, State.SUSPENDING), (Command.STATE_COMPLETE, State.SUSPENDED),
        (Command.HOLD, State.HOLDING), (Command.STATE_COMPLETE, State.HELD),
        (Command.UNHOLD, State.UNHOLDING), (Command.STATE_COMPLETE, State.EXECUTE),
        (Command.COMPLETE, State.COMPLETING), (Command.STATE_COMPLETE, State.COMPLETE),
        (Command.ABORT, State.ABORTING), (Command.STATE_COMPLETE, State.ABORTED),
        (Command.CLEAR, State.CLEARING), (Command.STATE_COMPLETE, State.STOPPED),
    ]  # fmt: skip
    state = State.STOPPED
    for command, expected in walk:
        state = next_state(state, command)
        assert state is expected, command


def test_numbers_are_accepted_as_packtags_publish_them():
    assert next_state(6, 4) is State.HOLDING  # type: ignore[arg-type]
    assert accepted(11) == {Command.UNHOLD, Command.STOP, Command.ABORT}  # type: ignore[arg-type]
    with pytest.raises(smartline.RecipeError, match="0 is not a PackML state number"):
        next_state(0, Command.RESET)  # type: ignore[arg-type]
    with pytest.raises(smartline.RecipeError, match="11 is not a PackML command number"):
        next_state(State.IDLE, 11)  # type: ignore[arg-type]


def test_recipe_error_is_the_public_one():
    with pytest.raises(smartline.SmartlineError):
        next_state(State.IDLE, Command.HOLD)


# -- modes --------------------------------------------------------------------------------

ALL = {s.name for s in State}
MODES = {
    "production": (1, ALL),
    "maintenance": (2, ALL - {"SUSPENDING", "SUSPENDED", "UNSUSPENDING"}),
    "manual": (3, {"STOPPED", "STOPPING", "ABORTING", "ABORTED", "CLEARING", "RESETTING",
                   "IDLE", "STARTING", "EXECUTE", "COMPLETING", "COMPLETE"}),
}  # fmt: skip


def test_unit_mode_numbers():
    assert [(m.name, m.value) for m in UnitMode] == [
        ("PRODUCTION", 1),
        ("MAINTENANCE", 2),
        ("MANUAL", 3),
    ]


@pytest.mark.parametrize("name", list(MODES))
def test_default_modes_enable_their_states(name):
    number, states = MODES[name]
    mode = DEFAULT_MODES[name]
    assert (mode.name, mode.number) == (name, number)
    assert {s.name for s in mode.states} == states
    assert mode_problems(mode) == ()
    assert mode.states >= MODE_CHANGE_STATES


def test_default_modes_are_exactly_three_and_read_only():
    assert list(DEFAULT_MODES) == ["production", "maintenance", "manual"]
    with pytest.raises(TypeError):
        DEFAULT_MODES["cleaning"] = DEFAULT_MODES["manual"]  # type: ignore[index]


def test_mode_change_states():
    assert frozenset({State.STOPPED, State.IDLE, State.ABORTED}) == MODE_CHANGE_STATES


@pytest.mark.parametrize("name", list(MODES))
def test_next_state_in_mode_for_every_pair(name):
    mode = DEFAULT_MODES[name]
    for state, command in PAIRS:
        expected = EXPECTED[state][command]
        if expected is not None and expected in mode.states:
            assert next_state_in_mode(state, command, mode) is expected
        else:
            with pytest.raises(smartline.RecipeError):
                next_state_in_mode(state, command, mode)


def test_manual_refuses_hold_naming_the_mode_and_the_target():
    with pytest.raises(smartline.RecipeError) as info:
        next_state_in_mode(State.EXECUTE, Command.HOLD, DEFAULT_MODES["manual"])
    assert str(info.value) == (
        "command HOLD refused: in state EXECUTE it leads to HOLDING, which mode manual (3) "
        "does not enable; in mode manual a unit in state EXECUTE accepts: "
        "STOP, ABORT, COMPLETE, STATE_COMPLETE"
    )


def test_maintenance_refuses_suspend_but_accepts_hold():
    maintenance = DEFAULT_MODES["maintenance"]
    with pytest.raises(smartline.RecipeError, match="SUSPENDING, which mode maintenance"):
        next_state_in_mode(State.EXECUTE, Command.SUSPEND, maintenance)
    assert next_state_in_mode(State.EXECUTE, Command.HOLD, maintenance) is State.HOLDING


def test_a_mode_refusal_of_the_base_table_keeps_the_base_reason():
    with pytest.raises(smartline.RecipeError, match="in state IDLE accepts: START, STOP, ABORT"):
        next_state_in_mode(State.IDLE, Command.HOLD, DEFAULT_MODES["production"])


CLEANING_STATES = "STOPPED IDLE STARTING EXECUTE STOPPING ABORTING ABORTED CLEARING RESETTING"
CLEANING = ModeDef("cleaning", 4, frozenset(state_by_name(n) for n in CLEANING_STATES.split(" ")))


def test_a_user_mode_without_completing_keeps_executing_on_sc():
    assert mode_problems(CLEANING) == ()
    assert accepted_in_mode(State.EXECUTE, CLEANING) == {Command.STOP, Command.ABORT}
    with pytest.raises(smartline.RecipeError, match="COMPLETING, which mode cleaning \\(4\\)"):
        next_state_in_mode(State.EXECUTE, Command.STATE_COMPLETE, CLEANING)
    assert next_state_in_mode(State.EXECUTE, Command.STOP, CLEANING) is State.STOPPING


def test_accepted_in_mode_filters_by_target():
    manual = DEFAULT_MODES["manual"]
    assert accepted_in_mode(State.EXECUTE, manual) == {
        Command.STOP,
        Command.ABORT,
        Command.COMPLETE,
        Command.STATE_COMPLETE,
    }
    assert accepted_in_mode(State.STOPPED, manual) == {Command.RESET, Command.ABORT}


def test_mode_problems_name_what_would_trap_a_unit():
    no_abort = ModeDef("bad", 5, CLEANING.states - {State.ABORTING})
    assert mode_problems(no_abort) == (
        "mode bad: must enable ABORTING, needed by command ABORT in CLEARING, command ABORT in "
        "STOPPED, command ABORT in STARTING, command ABORT in IDLE, command ABORT in EXECUTE, "
        "command ABORT in STOPPING, command ABORT in RESETTING",
    )
    stuck = ModeDef("stuck", 6, CLEANING.states | {State.HOLDING})
    assert mode_problems(stuck) == (
        "mode stuck: must enable HELD, needed by state complete (SC) in HOLDING",
    )
    nothing = ModeDef("empty", 0, frozenset())
    assert mode_problems(nothing) == (
        "mode empty: number 0 is not >= 1",
        "mode empty: must enable STOPPED",
    )


# -- names --------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["EXECUTE", "execute", "Execute", " execute "])
def test_state_by_name_is_case_insensitive(text):
    assert state_by_name(text) is State.EXECUTE


def test_every_state_and_command_is_found_by_its_name():
    for state in State:
        assert state_by_name(state.name.lower()) is state
    for command in Command:
        if command is not Command.STATE_COMPLETE:
            assert command_by_name(command.name.title()) is command


def test_unknown_state_lists_the_names_and_suggests_one():
    with pytest.raises(smartline.RecipeError) as info:
        state_by_name("Executing")
    message = str(info.value)
    assert message.startswith("unknown PackML state 'Executing' (did you mean EXECUTE?)")
    assert "states: CLEARING, STOPPED, STARTING, IDLE" in message
    assert message.endswith("COMPLETING, COMPLETE")


def test_unknown_command_lists_the_commands():
    with pytest.raises(smartline.RecipeError) as info:
        command_by_name("go")
    assert str(info.value) == (
        "unknown PackML command 'go'; commands: RESET, START, STOP, HOLD, UNHOLD, SUSPEND, "
        "UNSUSPEND, ABORT, CLEAR, COMPLETE"
    )


def test_state_complete_is_internal_only():
    with pytest.raises(smartline.RecipeError, match="unknown PackML command 'state_complete'"):
        command_by_name("state_complete")
    assert command_by_name("state_complete", internal=True) is Command.STATE_COMPLETE
    assert command_by_name("sc", internal=True) is Command.STATE_COMPLETE
