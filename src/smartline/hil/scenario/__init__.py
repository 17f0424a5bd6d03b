"""HIL scenarios: plant files and scenario files, and the runner that plays them.

A plant file (``hil_sim/plants/NAME.yaml``, ``smartline-plant: 1``) builds plant blocks and
wires their signals to device points by name; a scenario file (``hil_sim/scenarios/``,
``smartline-scenario: 1``) adds the devices, the initial state, a timeline of faults and the
expected outcomes. :class:`ScenarioRunner` serves it in real time or in lock-step with the
cycle engine's virtual clock::

    scenario = Scenario.load("hil_sim/scenarios/tank-demo.yaml")
    async with ScenarioRunner(scenario, clock=clock) as sim:   # clock: a VirtualClock
        line, engine = build_engine(with_device_urls(config, sim.urls()), clock=clock,
                                    on_advance=[sim.advance_to])
        ...
    sim.results()                                              # the expectations

See docs/reference/scenarios.md.
"""

from __future__ import annotations

from ._check import FILE_KINDS
from ._endpoints import (
    Endpoint,
    GrblEndpoint,
    ModbusEndpoint,
    MtConnectEndpoint,
    OpcUaEndpoint,
    S7Endpoint,
    SerialEndpoint,
    make_endpoint,
)
from ._files import (
    DEVICE_FAULTS,
    PLANT_FORMAT_KEY,
    PROTOCOLS,
    SCENARIO_FORMAT_KEY,
    BlockSpec,
    DeviceSpec,
    Expectation,
    LinkSpec,
    PlantSpec,
    Scenario,
    TimelineEvent,
    WireSpec,
    check_plant_document,
    check_scenario_document,
    load_plant,
    parse_duration_ns,
)
from ._runner import ExpectResult, ExpectTracker, PlantModel, ScenarioRunner
from ._serve import serve_scenario

__all__ = [
    "DEVICE_FAULTS",
    "FILE_KINDS",
    "PLANT_FORMAT_KEY",
    "PROTOCOLS",
    "SCENARIO_FORMAT_KEY",
    "BlockSpec",
    "DeviceSpec",
    "Endpoint",
    "ExpectResult",
    "ExpectTracker",
    "Expectation",
    "GrblEndpoint",
    "LinkSpec",
    "ModbusEndpoint",
    "MtConnectEndpoint",
    "OpcUaEndpoint",
    "PlantModel",
    "PlantSpec",
    "S7Endpoint",
    "Scenario",
    "ScenarioRunner",
    "SerialEndpoint",
    "TimelineEvent",
    "WireSpec",
    "check_plant_document",
    "check_scenario_document",
    "load_plant",
    "make_endpoint",
    "parse_duration_ns",
    "serve_scenario",
]
