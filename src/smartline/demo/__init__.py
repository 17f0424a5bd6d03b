"""``smartline demo``: a three-zone heat-treatment furnace run against its simulator.

``recipes/heat-treatment.yaml`` is the line; :mod:`smartline.demo.furnace` its program
(PID loops from ``smartline.logic`` in a 100 ms task); the HIL scenario
``hil_sim/scenarios/heat-treatment.yaml`` (plant ``hil_sim/plants/heat-treatment.yaml``:
oven zones wired to the E5CC controllers and the power controller) its simulated furnace,
served by ``python -m smartline.hil.scenario`` in a process of its own.
``smartline.run.run_demo`` ties them together. This package itself imports neither the
simulator nor pymodbus: the controller side of the demo is runtime code.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["DEMO_LINE", "DEMO_SCENARIO", "demo_line_path", "demo_scenario_path"]

DEMO_LINE = "heat-treatment.yaml"
DEMO_SCENARIO = "heat-treatment.yaml"


def demo_line_path() -> Path:
    """The demo's line file, shipped with the package's recipes."""
    from smartline.config import data_dir

    return data_dir("recipes") / DEMO_LINE



def demo_scenario_path() -> Path:
    """The demo's simulated furnace: a HIL scenario shipped with the package's data."""
    from smartline.config import data_dir

    return data_dir("hil_sim") / "scenarios" / DEMO_SCENARIO
