"""The line's PackML units in the address space, after OPC 30050 (PackML) where practical:
per unit an object with ``Status`` (UnitModeCurrent, CurMachSpeed, StateCurrent), ``Admin``
(ProdProcessedCount, ProdDefectiveCount, StopReason) and ``BaseStateMachine`` (CurrentState
with its Number, and the command methods), plus ``SetUnitMode(Int32)`` on the unit.

Simplifications (ADR 0029): plain ObjectType/VariableType instances of our namespace, not the
30050 nodeset's types; the counters are plain numbers (not PackMLCountDataType); every command
method sits on BaseStateMachine (30050 nests Stop/Reset in MachineState and Start… in
ExecuteState).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from asyncua import ua
from asyncua.common.node import Node
from asyncua.ua.attribute_ids import AttributeIds

from ...recipes._units import UnitRuntime
from ...recipes.packml import Command, State
from ._values import nid

__all__ = ["METHODS", "PackMLNodes", "UnitMethod", "build_unit"]

#: OPC 30050 method name -> PackML command
METHODS: dict[str, Command] = {
    "Start": Command.START, "Stop": Command.STOP, "Hold": Command.HOLD,
    "Unhold": Command.UNHOLD, "Suspend": Command.SUSPEND, "Unsuspend": Command.UNSUSPEND,
    "Reset": Command.RESET, "Abort": Command.ABORT, "Clear": Command.CLEAR,
    "ToComplete": Command.COMPLETE,
}
SET_UNIT_MODE = "SetUnitMode"

_STATE_NAMES = {s: s.name.capitalize() for s in State}


@dataclass(frozen=True, slots=True)
class UnitMethod:
    """What a method node does: a command of ``unit``, or (``command`` None) SetUnitMode."""

    unit: str
    command: Command | None


@dataclass(slots=True)
class PackMLNodes:
    """The variables of one unit that :meth:`values` fills."""

    unit: str
    nodes: dict[str, ua.NodeId]
    types: dict[str, ua.VariantType]


def _qn(name: str, ns: int) -> ua.QualifiedName:
    return ua.QualifiedName(name, cast(Any, ns))


def node_id(ns: int, unit: str, path: str) -> ua.NodeId:
    """``ns=<ns>;s=PackML/<unit>/<path>`` ('/' is never in a tag name: no clash)."""
    return nid(f"PackML/{unit}/{path}", ns)


async def build_unit(parent: Node, ns: int, unit: str, description: str,
                     fallback: Callable[..., object]) -> tuple[PackMLNodes, dict[ua.NodeId,
                                                                                UnitMethod]]:
    """Create ``unit``'s object under ``parent``; its variables and its method nodes."""
    obj = await parent.add_object(node_id(ns, unit, ""), _qn(unit, ns))
    if description:
        await obj.write_attribute(AttributeIds.Description,
                                  ua.DataValue(ua.Variant(ua.LocalizedText(description))))
    status = await obj.add_object(node_id(ns, unit, "Status"), _qn("Status", ns))
    admin = await obj.add_object(node_id(ns, unit, "Admin"), _qn("Admin", ns))
    machine = await obj.add_object(node_id(ns, unit, "BaseStateMachine"),
                                   _qn("BaseStateMachine", ns))
    nodes: dict[str, ua.NodeId] = {}
    types: dict[str, ua.VariantType] = {}
    spec = [
        (status, "Status/UnitModeCurrent", "UnitModeCurrent", ua.VariantType.Int32),
        (status, "Status/CurMachSpeed", "CurMachSpeed", ua.VariantType.Float),
        (status, "Status/StateCurrent", "StateCurrent", ua.VariantType.Int32),
        (admin, "Admin/ProdProcessedCount", "ProdProcessedCount", ua.VariantType.Int32),
        (admin, "Admin/ProdDefectiveCount", "ProdDefectiveCount", ua.VariantType.Int32),
        (admin, "Admin/StopReason", "StopReason", ua.VariantType.Int32),
        (machine, "BaseStateMachine/CurrentState", "CurrentState",
         ua.VariantType.LocalizedText),
    ]
    current: Node | None = None
    for where, path, name, vt in spec:
        initial: object = ua.LocalizedText("") if vt == ua.VariantType.LocalizedText else (
            0.0 if vt == ua.VariantType.Float else 0)
        var = await where.add_variable(node_id(ns, unit, path), _qn(name, ns),
                                       ua.Variant(initial, vt), vt)
        nodes[path] = var.nodeid
        types[path] = vt
        if name == "CurrentState":
            current = var
    assert current is not None
    number = await current.add_property(node_id(ns, unit, "BaseStateMachine/CurrentState/Number"),
                                        _qn("Number", 0),
                                        ua.Variant(0, ua.VariantType.UInt32), ua.VariantType.UInt32)
    nodes["BaseStateMachine/CurrentState/Number"] = number.nodeid
    types["BaseStateMachine/CurrentState/Number"] = ua.VariantType.UInt32
    methods: dict[ua.NodeId, UnitMethod] = {}
    for name, command in METHODS.items():
        m = await machine.add_method(node_id(ns, unit, f"BaseStateMachine/{name}"),
                                     _qn(name, ns), fallback, [], [])
        methods[m.nodeid] = UnitMethod(unit, command)
    m = await obj.add_method(node_id(ns, unit, SET_UNIT_MODE), _qn(SET_UNIT_MODE, ns),
                             fallback, [ua.VariantType.Int32], [])
    methods[m.nodeid] = UnitMethod(unit, None)
    return PackMLNodes(unit, nodes, types), methods


def values(units: UnitRuntime, unit: str, image_value: Callable[[str], object]
           ) -> dict[str, object]:
    """The unit's variables now: state and mode from the runtime, counters, speed and stop
    reason from its PackTags tags in the image (0 while they have no value)."""
    state = units.state(unit)
    out: dict[str, object] = {
        "Status/UnitModeCurrent": units.mode(unit).number,
        "Status/StateCurrent": int(state),
        "BaseStateMachine/CurrentState": ua.LocalizedText(_STATE_NAMES[state]),
        "BaseStateMachine/CurrentState/Number": int(state),
    }
    for path, key in (("Status/CurMachSpeed", "speed"), ("Admin/ProdProcessedCount", "produced"),
                      ("Admin/ProdDefectiveCount", "defective"),
                      ("Admin/StopReason", "stop_reason")):
        value = image_value(f"{unit}.{key}")
        number = value if isinstance(value, int | float) and not isinstance(value, bool) else 0
        if path == "Status/CurMachSpeed":
            out[path] = float(number) if math.isfinite(number) else 0.0
        else:
            out[path] = int(number) if math.isfinite(number) and abs(number) < 2 ** 31 else 0
    return out
