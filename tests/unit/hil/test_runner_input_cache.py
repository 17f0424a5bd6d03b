"""The scenario runner reads the points the controller writes only when they may have changed,
and publishes only the block outputs that moved (issue #11); neither changes an output: a
fault scenario stepped in virtual time, with a "line" writing those points between the
advances as the cycle engine does, gives the same trace and the same plant arrays byte for
byte as the old read-every-step and compare-every-output."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from smartline.hil.scenario import Scenario, ScenarioRunner

ROOT = Path(__file__).resolve().parents[3]
SCENARIOS = ROOT / "hil_sim" / "scenarios"
CYCLE_NS = 100_000_000  # the line's 100 ms cycle: it writes between two advances

#: per scenario: plant seconds, and the points the "line" writes (value from cycle k)
WRITES = {
    # devices down, no answer, latency, a block event (55 s)
    "bottling-faults.yaml": (56.0, {
        "drive.control_word": lambda k: 0x047F if (k // 37) % 3 else 0x047E,
        "drive.speed_ref": lambda k: 900.0 + 10 * (k % 29)}),
    # device faults, sensor faults, a trip, a power loss (100 s) and a set entry (110 s)
    "tank-demo-faults.yaml": (115.0, {
        "plc.inlet_valve": lambda k: float(20 + k % 50),
        "plc.pump_run": lambda k: (k // 53) % 2 == 0}),
}


@pytest.fixture(autouse=True)
def _quiet() -> None:
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


class _Counted:
    """A block output array that counts its per-output look-ups (``item``)."""

    def __init__(self, array: np.ndarray, counter: list[int]) -> None:
        self.array, self.counter = array, counter

    def tobytes(self) -> bytes:
        return self.array.tobytes()

    def item(self, i: int) -> object:
        self.counter[0] += 1
        return self.array.item(i)


async def _run(name: str, *, every_step: bool, publish_all: bool = False
               ) -> tuple[bytes, bytes, int, int]:
    plant_s, writes = WRITES[name]
    scenario = Scenario.load(SCENARIOS / name)
    reads = [0]
    async with ScenarioRunner(scenario, virtual=True) as runner:
        runner._refresh_every_step = every_step
        read_inputs = runner._read_inputs
        publish = runner._publish

        def counted() -> None:
            reads[0] += 1
            read_inputs()

        def publish_every_output() -> None:  # the old behaviour: no array is skipped
            for _, _, last in runner._output_groups:
                last[0] = None
            publish()

        looked_up = [0]
        runner._output_groups = [(_Counted(array, looked_up), ks, last)
                                 for array, ks, last in runner._output_groups]
        runner._read_inputs = counted  # type: ignore[method-assign]
        if publish_all:
            runner._publish = publish_every_output  # type: ignore[method-assign]
        for k in range(round(plant_s * 1e9) // CYCLE_NS + 1):
            runner.advance_to(k * CYCLE_NS)
            await runner.settle()
            for ref, value in writes.items():
                device, _, point = ref.partition(".")
                runner.endpoints[device].set(point, value(k))
        return runner.trace_bytes(), runner.plant.snapshot_bytes(), reads[0], looked_up[0]


@pytest.mark.parametrize("name", sorted(WRITES))
async def test_cached_inputs_change_no_output(name: str) -> None:
    cached, cached_plant, cached_reads, _ = await _run(name, every_step=False)
    every, every_plant, every_reads, _ = await _run(name, every_step=True)
    steps = round(WRITES[name][0] * 1e9) // 10_000_000
    assert every_reads == steps
    assert cached_reads < steps // 5  # once per advance, and after timeline entries
    assert cached.count(b"\n") > 1000 and b"timeline start" in cached
    for ref in WRITES[name][1]:
        assert cached.count(f" {ref} ".encode()) > 10  # the writes reached the trace
    assert cached == every
    assert cached_plant == every_plant


@pytest.mark.parametrize("name", sorted(WRITES))
async def test_publishing_only_moved_outputs_changes_no_device_value(name: str) -> None:
    skipping, skipping_plant, _, looked_up = await _run(name, every_step=False)
    every, every_plant, _, every_looked_up = await _run(name, every_step=False,
                                                        publish_all=True)
    assert skipping.count(b"\n") > 1000
    steps = round(WRITES[name][0] * 1e9) // 10_000_000
    wired_out = [w for w in Scenario.load(SCENARIOS / name).plant.wiring if w.to_device]
    # the old way: every output at every step (counted from the first step)
    assert every_looked_up == len(wired_out) * steps
    assert looked_up < every_looked_up // 2  # most outputs hold still in most steps
    assert skipping == every  # every wired point's value at every step, byte for byte
    assert skipping_plant == every_plant


async def test_power_loss_feeds_zero_while_cached() -> None:
    scenario = Scenario.load(SCENARIOS / "tank-demo-faults.yaml")
    async with ScenarioRunner(scenario, virtual=True) as runner:
        bank, i = runner.plant.where["tank"]
        runner.advance_to(0)
        runner.advance_to(99_500_000_000)
        assert bank.input("inflow_valve_pct")[i] > 0.0
        runner.advance_to(101_000_000_000)  # power lost at 100 s for 3 s
        assert bank.input("inflow_valve_pct")[i] == 0.0
        runner.endpoints["plc"].set("inlet_valve", 30.0)  # written while powered off
        runner.advance_to(102_000_000_000)
        assert bank.input("inflow_valve_pct")[i] == 0.0
        runner.advance_to(103_500_000_000)  # power back: the point's value again
        assert bank.input("inflow_valve_pct")[i] == pytest.approx(30.0)
