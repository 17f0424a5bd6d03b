"""The typed recipe: what the loader (:mod:`._load`) builds from a recipe file and the
executor (:mod:`._executor`) runs. Frozen dataclasses, no behaviour beyond small helpers.

ISA-88 procedural model: a :class:`Recipe` has a header, a formula (:class:`Parameter`),
equipment requirements and a procedure; the procedure is a chart of unit procedures, a
unit procedure a chart of operations, an operation a chart of phases. A *chart* is a
sequence whose items are either an element or a :class:`Parallel` block of branches, each
branch itself a chart (ISA-88 procedure function chart: sequences and parallel branches).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Generic, Literal, TypeVar

from .expr import Expr

__all__ = [
    "Action",
    "Chart",
    "CommandAction",
    "Equipment",
    "FailureRule",
    "Operation",
    "Parallel",
    "ParamType",
    "Parameter",
    "Phase",
    "ProgramAction",
    "Recipe",
    "RestartRule",
    "UnitProcedure",
    "WaitAction",
    "WriteAction",
]

E = TypeVar("E")


@dataclass(frozen=True, slots=True)
class Where:
    """Where an element stands in its file (for messages at run time)."""

    line: int = 0
    column: int = 0


@dataclass(frozen=True, slots=True)
class Parallel(Generic[E]):
    """Branches that run at the same time; the block ends when every branch has ended."""

    branches: tuple[tuple[E | Parallel[E], ...], ...]
    where: Where = Where()


Chart = tuple[E | Parallel[E], ...]
"""A sequence of elements and parallel blocks, run in order."""


class ParamType(Enum):
    NUMBER = "number"  # float
    INT = "int"
    BOOL = "bool"
    STRING = "string"


@dataclass(frozen=True, slots=True)
class Parameter:
    """A formula parameter: typed, with unit, limits and an optional default."""

    name: str
    type: ParamType = ParamType.NUMBER
    unit: str = ""
    default: float | int | bool | str | None = None
    limits: tuple[float, float] | None = None  # inclusive, numbers only
    choices: tuple[str, ...] = ()  # strings only: the allowed values (empty: any)
    description: str = ""


@dataclass(frozen=True, slots=True)
class Equipment:
    """Equipment requirements: what the line must have for the recipe to run."""

    units: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class WriteAction:
    """Guarded writes; each value an expression evaluated when the phase starts."""

    values: tuple[tuple[str, Expr], ...]  # (tag, expression), file order
    where: Where = Where()
    kind: Literal["write"] = "write"


@dataclass(frozen=True, slots=True)
class CommandAction:
    """A PackML command to a unit of the line (``smartline.recipes.packml.Command``)."""

    unit: str
    command: str  # a Command member name, upper case (START, HOLD ...)
    where: Where = Where()
    kind: Literal["command"] = "command"


@dataclass(frozen=True, slots=True)
class WaitAction:
    """A dwell: the phase lasts at least this many seconds (an expression)."""

    seconds: Expr
    where: Where = Where()
    kind: Literal["wait"] = "wait"


@dataclass(frozen=True, slots=True)
class ProgramAction:
    """Start a program on a device: a G-code file streamed to a CNC controller (GRBL),
    resolved against the recipe file's folder. The action ends when the job has ended."""

    device: str
    file: Path
    where: Where = Where()
    kind: Literal["program"] = "program"


Action = WriteAction | CommandAction | WaitAction | ProgramAction


@dataclass(frozen=True, slots=True)
class FailureRule:
    """What a failed phase (timeout, refused write, failed action) does.

    ``hold``: the procedure goes Holding → Held; Restart re-runs the failed phase.
    ``abort``: the procedure goes Aborting → Aborted. ``retry``: the phase runs again up to
    ``times`` more times, ``delay_s`` apart, then ``then`` (hold or abort).
    """

    action: Literal["hold", "abort", "retry"] = "hold"
    times: int = 0
    delay_s: float = 0.0
    then: Literal["hold", "abort"] = "hold"


@dataclass(frozen=True, slots=True)
class Phase:
    """The smallest procedural element: actions, then a completion condition.

    The phase starts its actions in order (writes, commands and programs are started in
    file order; a wait runs from the phase start); it is complete when every action has
    ended and ``until`` (if any) is true. ``timeout_s`` bounds the whole phase.
    """

    name: str
    actions: tuple[Action, ...] = ()
    until: Expr | None = None
    timeout_s: Expr | None = None
    on_failure: FailureRule = FailureRule()
    description: str = ""
    where: Where = Where()


@dataclass(frozen=True, slots=True)
class Operation:
    name: str
    phases: Chart[Phase]
    description: str = ""
    where: Where = Where()


@dataclass(frozen=True, slots=True)
class UnitProcedure:
    """Operations on one unit (``unit`` may be empty for line-level steps)."""

    name: str
    operations: Chart[Operation]
    unit: str = ""
    description: str = ""
    where: Where = Where()


class RestartRule(Enum):
    """What a restart of smartline does with a batch it finds unfinished."""

    ABORT = "abort"    # record the batch as aborted at restart
    RESUME = "resume"  # run again from the phase that was running, parameters as recorded


@dataclass(frozen=True, slots=True)
class Recipe:
    """A loaded, checked recipe. ``digest`` is the SHA-256 of the file's bytes."""

    name: str
    version: str
    product: str
    line: str
    parameters: tuple[Parameter, ...]
    equipment: Equipment
    procedure: Chart[UnitProcedure]
    source: Path
    digest: str
    description: str = ""
    identity: tuple[str, ...] = ()  # tags whose values are recorded when they change
    on_restart: RestartRule = RestartRule.ABORT
    extra: dict[str, str] = field(default_factory=dict)  # free-text header items

    def parameter(self, name: str) -> Parameter:
        for p in self.parameters:
            if p.name == name:
                return p
        raise KeyError(name)
