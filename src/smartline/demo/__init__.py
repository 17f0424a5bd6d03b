"""``smartline demo``: a three-zone heat-treatment furnace run against its simulator.

``recipes/heat-treatment.yaml`` is the line; :mod:`smartline.demo.furnace` its program
(PID loops from ``smartline.logic`` in a 10 ms task); :class:`smartline.demo.sim.FurnaceSim`
the simulated Modbus gateway with the zone controllers and the power controller, and the
thermal plant behind them (``python -m smartline.demo.sim`` runs it as a process).
``smartline.run.run_demo`` ties them together. This package itself imports neither the
simulator nor pymodbus: the controller side of the demo is runtime code.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["DEMO_LINE", "demo_line_path"]

DEMO_LINE = "heat-treatment.yaml"


def demo_line_path() -> Path:
    """The demo's line file, shipped with the package's recipes."""
    from smartline.config import data_dir

    return data_dir("recipes") / DEMO_LINE

