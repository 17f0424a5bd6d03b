"""The plant block contract (smartline.hil.blocks): registry, banks, validation, sensor faults,
determinism, snapshots, compiled versus ``.py_func`` and allocation-free steps."""

from __future__ import annotations

import math
from types import MappingProxyType

import numpy as np
import pytest

from smartline.hil.blocks import (
    BLOCK_TYPES,
    FAULT_EVENTS,
    KERNEL_ARGS,
    BlockBank,
    BlockType,
    make_bank,
)
from smartline.testing.budget import assert_no_allocation

# inputs that make every block do something (edges are toggled by the driver below)
ACTIVE_INPUTS: dict[str, dict[str, float | bool]] = {
    "conveyor": {"run": True, "infeed_per_min": 300.0},
    "tank": {"inflow_valve_pct": 60.0, "outflow_valve_pct": 40.0, "pump_run": True,
             "inflow_temp_c": 60.0},
    "oven": {"power_pct": 70.0},
    "motor": {"run": True, "ref_hz": 50.0, "load_pct": 80.0},
    "filler": {},
    "capper": {},
    "cnc": {"auto_cycle": True, "feed_override_pct": 120.0},
}
EDGES = {"filler": "fill", "capper": "cap", "cnc": "cycle_start", "conveyor": "infeed"}
SMALL = {"cnc": {"handling_s": 0.5, "width_mm": 10.0, "height_mm": 5.0, "depth_mm": 2.0},
         "oven": {"dead_time_s": 0.05, "tau_s": 0.5}}


def drive(bank: BlockBank, steps: int, dt_s: float, *, python: bool = False) -> None:
    """Set the active inputs, then step, toggling the block's edge input every 7 steps."""
    for name, value in ACTIVE_INPUTS[bank.type.name].items():
        bank.set_input(name, None, value)
    edge = EDGES.get(bank.type.name)
    for k in range(steps):
        if edge is not None:
            bank.set_input(edge, None, (k // 7) % 2 == 1)
        if python:
            bank.type.kernel.py_func(*bank.kernel_args, dt_s)
            bank.time_s += dt_s
        else:
            bank.step(dt_s)


def noisy_bank(name: str, n: int, seed: int) -> BlockBank:
    bank = make_bank(name, n, SMALL.get(name), seed=seed)
    first_float = next(k for k, s in bank.type.outputs.items() if s.kind == "float")
    bank.fault(first_float, None, noise_sigma=0.1)
    return bank


def test_registry_is_immutable_and_complete() -> None:
    assert set(BLOCK_TYPES) == {"conveyor", "tank", "oven", "motor", "filler", "capper", "cnc"}
    assert isinstance(BLOCK_TYPES, MappingProxyType)
    with pytest.raises(TypeError):
        BLOCK_TYPES["x"] = BLOCK_TYPES["tank"]  # type: ignore[index]
    assert KERNEL_ARGS[-1] == "dt_s" and len(KERNEL_ARGS) == 19


@pytest.mark.parametrize("name", sorted(BLOCK_TYPES))
def test_block_types_are_documented_data(name: str) -> None:
    block: BlockType = BLOCK_TYPES[name]
    assert block.name == name and block.description and block.discretisation
    for table in (block.params, block.inputs, block.outputs, block.states, block.sizes):
        assert isinstance(table, MappingProxyType)
        for spec in table.values():
            assert spec.description
    for pname, p in block.params.items():
        assert isinstance(p.default, float | int)
        assert p.min <= p.default <= p.max, pname
    for ev in block.events.values():
        assert ev.description and callable(ev.apply)
    assert not set(block.events) & set(FAULT_EVENTS)
    # every name is unique across the tables a plant file wires
    names = [*block.params, *block.sizes, *block.inputs, *block.outputs]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("name", sorted(BLOCK_TYPES))
def test_same_seed_same_bytes_other_seed_differs(name: str) -> None:
    runs = []
    for seed in (7, 7, 8):
        bank = noisy_bank(name, 5, seed)
        drive(bank, 300, 0.01)
        runs.append(bank.snapshot().tobytes())
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


@pytest.mark.parametrize("name", sorted(BLOCK_TYPES))
def test_compiled_and_python_kernels_agree(name: str) -> None:
    a = noisy_bank(name, 3, 5)
    b = noisy_bank(name, 3, 5)
    drive(a, 60, 0.02)
    drive(b, 60, 0.02, python=True)
    for x, y in zip(a.snapshot().arrays, b.snapshot().arrays, strict=True):
        if x.dtype == np.float64:
            np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-12)
        else:
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("name", sorted(BLOCK_TYPES))
def test_step_does_not_allocate(name: str) -> None:
    bank = noisy_bank(name, 50, 1)
    drive(bank, 20, 0.01)
    assert_no_allocation(bank.type.kernel, *bank.kernel_args, 0.01)
    assert_no_allocation(bank.type.kernel, *bank.kernel_args, 0.7)


@pytest.mark.parametrize("name", sorted(BLOCK_TYPES))
def test_snapshot_restore_replays_exactly(name: str) -> None:
    bank = noisy_bank(name, 4, 3)
    drive(bank, 50, 0.01)
    snap = bank.snapshot()
    view = bank.output(next(iter(bank.type.outputs)))
    drive(bank, 80, 0.01)
    first = bank.snapshot().tobytes()
    bank.restore(snap)
    assert bank.snapshot().tobytes() == snap.tobytes()
    assert bank.time_s == snap.time_s
    drive(bank, 80, 0.01)
    assert bank.snapshot().tobytes() == first
    assert view.base is not None  # views handed out before stay live
    other = make_bank("tank" if name != "tank" else "oven", 4)
    with pytest.raises(ValueError, match="snapshot of another bank"):
        other.restore(snap)


def test_warm_up_leaves_the_bank_unchanged() -> None:
    bank = make_bank("conveyor", 2)
    bank.set_input("run", None, True)
    bank.event("inject", 0)
    before = bank.snapshot().tobytes()
    bank.warm_up()
    assert bank.snapshot().tobytes() == before


def test_parameter_errors_name_block_parameter_and_expectation() -> None:
    with pytest.raises(ValueError, match=r"no block type 'tnak'; expected one of conveyor"):
        make_bank("tnak", 1)
    with pytest.raises(ValueError, match=r"tank: unknown parameter 'aera_m2'; expected one of "
                                         r"area_m2"):
        make_bank("tank", 1, {"aera_m2": 1.0})
    with pytest.raises(ValueError, match=r"tank: parameter 'height_m' must be within "
                                         r"\[0.001, 1000\] m, got -1"):
        make_bank("tank", 2, {"height_m": -1})
    with pytest.raises(ValueError, match=r"tank: parameter 'height_m' .* got nan"):
        make_bank("tank", 2, {"height_m": math.nan})
    with pytest.raises(ValueError, match=r"\(instance 1\)"):
        make_bank("tank", 2, {"height_m": [1.0, 0.0]})
    with pytest.raises(ValueError, match=r"tank: parameter 'height_m': expected a scalar or 2 "
                                         r"values, got shape \(3,\)"):
        make_bank("tank", 2, {"height_m": [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match=r"tank: parameter 'area_m2' must be a number"):
        make_bank("tank", 1, {"area_m2": "big"})
    with pytest.raises(ValueError, match=r"conveyor: parameter 'capacity' must be a whole"):
        make_bank("conveyor", 1, {"capacity": 2.5})
    with pytest.raises(ValueError, match=r"conveyor: parameter 'capacity' is one number"):
        make_bank("conveyor", 2, {"capacity": [2, 3]})
    with pytest.raises(ValueError, match=r"filler: parameter 'anticipate' must be within"):
        make_bank("filler", 1, {"anticipate": 2})
    with pytest.raises(ValueError, match=r"motor: the number of instances"):
        make_bank("motor", 0)
    with pytest.raises(ValueError, match=r"motor: seed must be an int"):
        make_bank("motor", 1, seed=1.5)  # type: ignore[arg-type]


def test_signal_and_event_errors() -> None:
    bank = make_bank("motor", 2)
    with pytest.raises(ValueError, match=r"motor: no input 'speed'; expected one of run, ref_hz"):
        bank.set_input("speed", 0, 1.0)
    with pytest.raises(ValueError, match=r"motor: no output 'rpm'"):
        bank.output("rpm")
    with pytest.raises(ValueError, match=r"motor: input 'run' is a bool, got 2"):
        bank.set_input("run", 0, 2)
    with pytest.raises(ValueError, match=r"motor: input 'ref_hz' is a number, got 'x'"):
        bank.set_input("ref_hz", 0, "x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"motor: instance 2 outside 0..1"):
        bank.set_input("ref_hz", 2, 1.0)
    with pytest.raises(ValueError, match=r"motor: no event 'explode'; expected one of trip, "
                                         r"power_loss, power_restore, stuck"):
        bank.event("explode", 0)
    with pytest.raises(ValueError, match=r"motor: event 'trip' has no argument 'cod'"):
        bank.event("trip", 0, cod=1)
    with pytest.raises(ValueError, match=r"motor: parameter 'trip.code' must be a whole"):
        bank.event("trip", 0, code=1.5)
    with pytest.raises(ValueError, match=r"argument 'output' must be a name"):
        bank.event("stuck", 0, output=3)
    with pytest.raises(ValueError, match=r"output 'running' is bool: only stuck"):
        bank.fault("running", 0, noise_sigma=1.0)
    with pytest.raises(ValueError, match=r"motor: dt_s must be > 0"):
        bank.step(-0.1)
    with pytest.raises(ValueError, match=r"motor: dt_s must be finite"):
        bank.step(math.inf)
    with pytest.raises(ValueError, match=r"must be within \[1, 1000\] Hz"):
        bank.set_param("rated_hz", 0, 0.0)
    bank.set_param("rated_hz", 1, 60.0)
    assert bank.param("rated_hz").tolist() == [50.0, 60.0]
    bank.step(0.0)  # no time: nothing happens
    assert bank.time_s == 0.0


def test_sensor_faults_stuck_noise_offset_drift_and_clear() -> None:
    bank = make_bank("oven", 3, {"dead_time_s": 0.0, "tau_s": 0.0}, seed=2)
    bank.set_input("power_pct", None, 50.0)
    bank.event("stuck", 0, output="temperature_c", value=123.0)
    bank.event("noise", 1, output="temperature_c", sigma=2.0)
    bank.event("offset", 2, output="temperature_c", value=5.0)
    bank.event("drift", 2, output="temperature_c", rate_per_s=1.0)
    seen = bank.output("temperature_c")
    samples = []
    for _ in range(2000):
        bank.step(0.01)
        samples.append(seen[1])
    true = bank.true_output("temperature_c")
    assert true.tolist() == pytest.approx([420.0] * 3)
    assert seen[0] == 123.0
    assert np.mean(samples) == pytest.approx(420.0, abs=0.2)
    assert np.std(samples) == pytest.approx(2.0, rel=0.1)
    assert seen[2] == pytest.approx(420.0 + 5.0 + 20.0)
    bank.event("clear_fault", 2, output="temperature_c")
    bank.step(0.01)
    assert seen[2] == 420.0
    bank.clear_faults()
    bank.step(0.01)
    assert seen.tolist() == true.tolist()
    # int and bool outputs: stuck (and offset for ints) show at once, no step needed
    conv = make_bank("conveyor", 1)
    conv.fault("eye1_blocked", 0, stuck=True)
    conv.fault("discharged", 0, offset=10)
    assert conv.output("eye1_blocked")[0] and conv.output("discharged")[0] == 10
    assert not conv.true_output("eye1_blocked")[0]
    conv.fault("discharged", 0, stuck=3)
    assert conv.output("discharged")[0] == 3


def test_fault_noise_does_not_shift_the_plant_noise() -> None:
    a = make_bank("capper", 2, seed=4)
    b = make_bank("capper", 2, seed=4)
    b.fault("torque_nm", None, noise_sigma=0.3)
    for bank in (a, b):
        drive(bank, 200, 0.05)
    assert a.true_output("last_peak_nm").tolist() == b.true_output("last_peak_nm").tolist()
    assert a.output("torque_nm").tolist() != b.output("torque_nm").tolist() or not any(
        a.true_output("capping"))


def test_the_reference_documents_every_name() -> None:
    from pathlib import Path

    doc = (Path(__file__).parents[3] / "docs/reference/plant-blocks.md").read_text("utf-8")
    for name, block in BLOCK_TYPES.items():
        assert f"## {name}" in doc
        for table in (block.params, block.sizes, block.inputs, block.outputs, block.states,
                      block.events):
            for key in table:
                assert f"`{key}`" in doc, (name, key)
    for key in FAULT_EVENTS:
        assert f"`{key}`" in doc
