"""The simulated agent writes its streams documents from pieces made once (each
observation's element, each stream's tags): the bytes must be exactly those of one
ElementTree of the whole document, whatever the values (escaping), the conditions and the
devices asked for."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence

from smartline.core import VirtualClock
from smartline.hil.mtconnect import MtConnectAgentSim
from smartline.hil.mtconnect._agent import _SECTIONS, Observation
from smartline.hil.mtconnect._model import CncMachineModel


def reference(agent: MtConnectAgentSim, obs: Sequence[Observation], next_seq: int,
              devices: Sequence[CncMachineModel]) -> bytes:
    """The document as one ElementTree, written at once (how the agent wrote it before)."""
    root = agent._root("Streams", nextSequence=next_seq, firstSequence=agent.first_sequence,
                       lastSequence=agent._next - 1)
    streams = ET.SubElement(root, "Streams")
    grouped: dict[str, dict[str, dict[str, list[Observation]]]] = {}
    for o in obs:
        grouped.setdefault(o.device.name, {}).setdefault(o.item.component_id, {}) \
            .setdefault(o.item.category, []).append(o)
    for m in devices:
        comps = grouped.get(m.name)
        if comps is None:
            continue
        ds = ET.SubElement(streams, "DeviceStream", name=m.name, uuid=m.uuid)
        for comp_id, cats in comps.items():
            d0 = next(iter(cats.values()))[0].item
            cs = ET.SubElement(ds, "ComponentStream", component=d0.component,
                               name=d0.component_name, componentId=comp_id)
            for cat in ("SAMPLE", "EVENT", "CONDITION"):
                if cats.get(cat):
                    box = ET.SubElement(cs, _SECTIONS[cat])
                    for o in cats[cat]:
                        box.append(agent._observation(o))
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return body


def test_streams_documents_are_byte_for_byte_one_element_tree() -> None:
    clock = VirtualClock()
    agent = MtConnectAgentSim([CncMachineModel(), CncMachineModel(name="M2", id_prefix="m2_")],
                              clock=clock, seed=1, tick_s=0, buffer_size=64)
    one = agent.machines[:1]
    checked = escaped = conditions = 0
    for i in range(250):
        clock.sleep_until_ns(clock.now_ns() + 100_000_000)
        agent.tick()
        if i % 7 == 0:
            agent.set("program", f'P{i}&<x>"q"\tz é', machine="VMC-3Axis")
        if i % 11 == 0:
            agent.set("program", "" if i % 22 == 0 else f"plain{i}", machine="M2")
        if i % 13 == 0:
            agent.raise_alarm(f"E{i}", f'over <temp> & "hot" {i}',
                              qualifier="HIGH" if i % 2 else None, native_severity="2")
        if i % 17 == 0:
            agent.clear_alarm()
        if i == 100:
            agent.disconnect_adapter()
        current = [o for o in agent._current.values()] + [
            o for active in agent._conditions.values() for o in active]
        start = max(agent.first_sequence, agent._next - 30)
        cases = [(current, agent._next, agent.machines),
                 ([o for o in current if o.device in one], agent._next, one),
                 (*agent._slice(start, 20, None, agent.machines), agent.machines),
                 ([], agent._next, agent.machines)]
        for obs, nxt, devices in cases:
            got = agent._streams_doc(obs, nxt, devices)
            assert got == reference(agent, obs, nxt, devices)
            checked += 1
            escaped += b"&amp;" in got
            conditions += b"<Fault" in got
        # the same document twice: the pieces made once are reused, the bytes unchanged
        assert agent._current_doc(agent.machines) == agent._current_doc(agent.machines)
    assert checked == 1000 and escaped > 100 and conditions > 100
