"""A CNC machining centre as an MTConnect device sees it: the device model (components and
data items) and a machine model that runs programs, turns the spindle and moves the axes.

The machine model is a pure function of time: :meth:`CncMachineModel.step` takes the
current time and returns the values that changed since the last step, so a test that
steps an injected clock gets the same observations every run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["CncMachineModel", "Condition", "DataItemDef", "camel_case"]


@dataclass(frozen=True, slots=True)
class DataItemDef:
    """One data item of the probe: what the agent publishes and how it is typed."""

    key: str  # the model's own name for it (``xpos``)
    id: str  # unique in the agent (``d1_xpos``)
    name: str  # the name the probe gives (``Xact``)
    type: str  # POSITION, EXECUTION …
    category: str  # SAMPLE, EVENT, CONDITION
    component: str  # the component element (Linear, Rotary, Controller, Path, Device)
    component_id: str
    component_name: str
    sub_type: str | None = None
    units: str | None = None


@dataclass(frozen=True, slots=True)
class Condition:
    """One active condition of a CONDITION data item."""

    level: str  # Warning, Fault
    native_code: str
    text: str = ""
    native_severity: str | None = None
    qualifier: str | None = None


def camel_case(type_: str) -> str:
    """The observation element of a data item type: ``ROTARY_VELOCITY`` → ``RotaryVelocity``."""
    return "".join(part.capitalize() for part in type_.split("_"))


# component element, component id suffix, component name, then its items:
# (key, name, type, category, subType, units)
_LAYOUT: tuple[tuple[str, str, str, tuple[tuple[str, str, str, str, str | None, str | None],
                                          ...]], ...] = (
    ("Device", "", "", (
        ("avail", "avail", "AVAILABILITY", "EVENT", None, None),
    )),
    ("Linear", "x", "X", (
        ("xpos", "Xact", "POSITION", "SAMPLE", "ACTUAL", "MILLIMETER"),
        ("xload", "Xload", "LOAD", "SAMPLE", None, "PERCENT"),
    )),
    ("Linear", "y", "Y", (
        ("ypos", "Yact", "POSITION", "SAMPLE", "ACTUAL", "MILLIMETER"),
        ("yload", "Yload", "LOAD", "SAMPLE", None, "PERCENT"),
    )),
    ("Linear", "z", "Z", (
        ("zpos", "Zact", "POSITION", "SAMPLE", "ACTUAL", "MILLIMETER"),
        ("zload", "Zload", "LOAD", "SAMPLE", None, "PERCENT"),
    )),
    ("Rotary", "c", "C", (
        ("sspeed", "Sspeed", "ROTARY_VELOCITY", "SAMPLE", "ACTUAL", "REVOLUTION/MINUTE"),
        ("sload", "Sload", "LOAD", "SAMPLE", None, "PERCENT"),
        ("stemp", "Stemp", "TEMPERATURE", "CONDITION", None, None),
    )),
    ("Controller", "cn", "controller", (
        ("estop", "estop", "EMERGENCY_STOP", "EVENT", None, None),
        ("mode", "mode", "CONTROLLER_MODE", "EVENT", None, None),
        ("system", "system", "SYSTEM", "CONDITION", None, None),
    )),
    ("Path", "p", "path", (
        ("execution", "execution", "EXECUTION", "EVENT", None, None),
        ("program", "program", "PROGRAM", "EVENT", None, None),
        ("part_count", "PartCount", "PART_COUNT", "EVENT", "ALL", None),
        ("feedrate", "Frt", "PATH_FEEDRATE", "SAMPLE", "ACTUAL", "MILLIMETER/SECOND"),
    )),
)


@dataclass
class CncMachineModel:
    """A 3-axis machining centre running one program over and over.

    Cycle: READY for ``ready_s`` → ACTIVE running ``program`` for ``cycle_s`` (spindle at
    ``spindle_rpm``, X/Y on a circle of ``radius_mm``, Z plunging) → PROGRAM_COMPLETED for
    ``completed_s`` (part count + 1 when it enters) → READY … A FAULT on the ``system``
    condition (:meth:`raise_alarm`) stops the program (execution STOPPED, spindle still);
    clearing it resumes where it stopped. ``id_prefix`` makes the ids unique when an agent
    serves several machines. ``external``: the values come from outside (a plant model or a
    test feeding the agent, :meth:`put`), so :meth:`step` runs no program and reports nothing.
    """

    name: str = "VMC-3Axis"
    uuid: str = "vmc-3axis-0001"
    id_prefix: str = "d1_"
    program: str = "O1001"
    cycle_s: float = 4.0
    ready_s: float = 1.0
    completed_s: float = 0.5
    spindle_rpm: float = 12000.0
    radius_mm: float = 50.0
    feed_mm_s: float = 80.0
    part_count: int = 0
    available: bool = True
    external: bool = False
    #: active conditions by data item key (``system``, ``stemp``), by native code
    conditions: dict[str, dict[str, Condition]] = field(default_factory=dict)
    _started_s: float | None = None
    _phase: str = "READY"
    _phase_s: float = 0.0  # time spent in the phase so far (frozen while stopped)
    _last_s: float | None = None
    _values: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.items: tuple[DataItemDef, ...] = tuple(
            DataItemDef(key=key, id=f"{self.id_prefix}{key}", name=name, type=type_,
                        category=category, component=element,
                        component_id=f"{self.id_prefix}{suffix or 'dev'}",
                        component_name=cname or self.name, sub_type=sub, units=units)
            for element, suffix, cname, entries in _LAYOUT
            for key, name, type_, category, sub, units in entries)
        self.by_key: dict[str, DataItemDef] = {i.key: i for i in self.items}

    # -- the device side -------------------------------------------------------------
    @property
    def phase(self) -> str:
        """READY, ACTIVE, PROGRAM_COMPLETED or STOPPED (a fault holds the program)."""
        return "STOPPED" if self._faulted() and self._phase == "ACTIVE" else self._phase

    def raise_alarm(self, native_code: str, text: str, *, level: str = "Fault",
                    key: str = "system", native_severity: str | None = None,
                    qualifier: str | None = None) -> None:
        """Activate a condition (``level`` Warning or Fault) on ``key`` (``system``,
        ``stemp``); a Fault on ``system`` stops the running program."""
        if level not in ("Warning", "Fault"):
            raise ValueError(f"condition level {level!r}: expected Warning or Fault")
        self.conditions.setdefault(key, {})[native_code] = Condition(
            level, native_code, text, native_severity, qualifier)

    def clear_alarm(self, native_code: str | None = None, *, key: str = "system") -> None:
        """Clear one condition (by native code) or all of ``key``'s."""
        active = self.conditions.get(key, {})
        if native_code is None:
            active.clear()
        else:
            active.pop(native_code, None)

    def step(self, now_s: float) -> dict[str, str]:
        """Advance the machine to ``now_s`` (seconds on the agent's clock); the event and
        sample values (by key) that changed since the last step."""
        if self._last_s is None:
            self._last_s = now_s
        dt = max(0.0, now_s - self._last_s)
        self._last_s = now_s
        if self.external:
            return {}
        if not self._faulted():
            self._advance(dt)
        values = self._snapshot()
        changed = {k: v for k, v in values.items() if self._values.get(k) != v}
        self._values.update(changed)
        return changed

    def values(self) -> dict[str, str]:
        """The last values of every event and sample (by key)."""
        return dict(self._values)

    def put(self, key: str, text: str) -> None:
        """Make ``text`` the last value of item ``key`` without publishing it (the agent
        publishes; while its adapter is away the value waits here for the reconnect)."""
        if key not in self.by_key:
            raise KeyError(f"{self.name} has no data item {key!r}")
        if key == "program":
            self.program = text
        elif key == "part_count":
            self.part_count = int(text)
        self._values[key] = text

    # -- helpers ---------------------------------------------------------------------
    def _faulted(self) -> bool:
        return any(c.level == "Fault" for c in self.conditions.get("system", {}).values())

    def _advance(self, dt: float) -> None:
        durations = {"READY": self.ready_s, "ACTIVE": self.cycle_s,
                     "PROGRAM_COMPLETED": self.completed_s}
        self._phase_s += dt
        # several phases may pass in one long step: walk them in order
        for _ in range(1000):
            length = durations[self._phase]
            if self._phase_s < length:
                return
            self._phase_s -= length
            if self._phase == "READY":
                self._phase = "ACTIVE"
            elif self._phase == "ACTIVE":
                self._phase = "PROGRAM_COMPLETED"
                self.part_count += 1
            else:
                self._phase = "READY"
        self._phase_s = 0.0

    def _snapshot(self) -> dict[str, str]:
        active = self._phase == "ACTIVE" and not self._faulted()
        if self._phase == "ACTIVE":
            angle = 2.0 * math.pi * self._phase_s / self.cycle_s
            x = self.radius_mm * math.cos(angle)
            y = self.radius_mm * math.sin(angle)
            z = -2.0 - 3.0 * math.sin(angle / 2.0)
        else:
            x, y, z = self.radius_mm, 0.0, 25.0
        speed = self.spindle_rpm if active else 0.0
        load = 30.0 + 10.0 * math.sin(4.0 * math.pi * self._phase_s / self.cycle_s) \
            if active else 0.0
        axis_load = 12.0 if active else 2.0
        return {
            "avail": "AVAILABLE" if self.available else "UNAVAILABLE",
            "xpos": f"{x:.3f}", "ypos": f"{y:.3f}", "zpos": f"{z:.3f}",
            "xload": f"{axis_load:.1f}", "yload": f"{axis_load:.1f}",
            "zload": f"{axis_load / 2:.1f}",
            "sspeed": f"{speed:.1f}", "sload": f"{load:.1f}",
            "estop": "ARMED", "mode": "AUTOMATIC",
            "execution": self.phase,
            "program": self.program,
            "part_count": str(self.part_count),
            "feedrate": f"{self.feed_mm_s if active else 0.0:.1f}",
        }
