"""PackML units driving real simulated machines: the CNC cell's tending robot over Modbus/TCP
and its machining centre over MTConnect (HTTP), served by the HIL simulator on 127.0.0.1,
the units run as a service of the cycle engine in virtual time (as ``smartline run`` does)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

from smartline.config import load_line
from smartline.core import Quality, RecipeError, VirtualClock
from smartline.hil.scenario import Scenario, ScenarioRunner
from smartline.recipes._units import UnitRuntime, load_units, with_units
from smartline.recipes.packml import Command, State
from smartline.run import build_engine, with_device_urls

ROOT = Path(__file__).resolve().parents[3]
PERIOD_NS = 100_000_000


class _Audit:
    def __init__(self) -> None:
        self.entries: list[dict[str, object]] = []

    def record(self, entry: Mapping[str, object]) -> None:
        self.entries.append(dict(entry))


async def test_units_follow_and_command_the_simulated_cnc_cell() -> None:
    base = load_line(ROOT / "recipes" / "cnc-cell.yaml")
    units = load_units(base)
    scenario = Scenario.load(ROOT / "hil_sim" / "scenarios" / "cnc-cell.yaml")
    clock = VirtualClock()
    audit = _Audit()
    events: list[tuple[str, str, dict[str, object]]] = []
    seen: dict[float, dict[str, object]] = {}  # plant second -> what the test saw then
    refused: list[str] = []
    async with ScenarioRunner(scenario, clock=clock, trace=False) as runner:
        urls = runner.urls()
        config = with_device_urls(with_units(base, units),
                                  {n: urls[n] for n in base.devices})
        line, engine = build_engine(config, clock=clock, on_advance=[runner.advance_to])
        line.io.audit = audit
        rt = UnitRuntime(units, line, clock=clock,
                         on_event=lambda k, u, d: events.append((k, u, dict(d))))
        start: list[int] = []
        writes: list[asyncio.Task[None]] = []

        async def look(t: float) -> None:
            coil = (await line.read(["robot.start"]))["robot.start"]  # read back over Modbus
            seen[t] = {"tender": rt.state("tender"), "mill": rt.state("mill"),
                       "robot.start": coil.value,
                       "tender.state": line.image.get("tender.state"),
                       "tender.command": line.image.get("tender.command").value,
                       "mill.produced": line.image.get("mill.produced")}

        async def stop() -> None:
            rt.command("tender", Command.STOP, source="test")

        async def start_by_tag() -> None:  # as an HMI would: the CntrlCmd number, guarded
            writes.append(asyncio.ensure_future(line.io.write(
                {"tender.command": int(Command.START)}, source="hmi")))

        async def start_again() -> None:
            try:
                rt.command("tender", Command.START, source="test")
            except RecipeError as exc:
                refused.append(str(exc))

        plan: dict[float, Callable[[], Awaitable[None]]] = {
            3.0: lambda: look(3.0), 3.5: stop, 5.0: lambda: look(5.0), 5.5: start_by_tag,
            5.6: lambda: look(5.6), 7.5: lambda: look(7.5), 8.0: start_again}

        async def script(now_ns: int) -> None:
            if not start:
                start.append(now_ns)
            t = round((now_ns - start[0]) / 1e9, 1)
            action = plan.pop(t, None)
            if action is not None:
                await action()

        step: Callable[[int], Awaitable[None]] = rt.step
        engine.add_service("units", PERIOD_NS, step)
        engine.add_service("script", PERIOD_NS, script)
        await asyncio.to_thread(engine.prepare)
        try:
            await engine.run(duration_s=9.0)
        finally:
            await rt.aclose()
            await asyncio.gather(*writes, return_exceptions=True)
            await line.close()
    assert not plan, f"script steps not reached: {sorted(plan)}"

    # the scenario starts the robot: busy -> EXECUTE; the mill runs its program -> EXECUTE
    assert seen[3.0]["tender"] is State.EXECUTE and seen[3.0]["mill"] is State.EXECUTE
    state = seen[3.0]["tender.state"]
    assert state.value == int(State.EXECUTE) and state.quality is Quality.GOOD  # type: ignore[attr-defined]
    produced = seen[3.0]["mill.produced"]
    assert produced.quality is Quality.GOOD  # type: ignore[attr-defined]
    # Stop: the start coil is released over Modbus, the arm stops, the robot is ready: IDLE
    assert seen[5.0]["robot.start"] is False and seen[5.0]["tender"] is State.IDLE
    # Start written as CntrlCmd 2 to tender.command: taken (back to 0), the coil set again
    assert seen[5.6]["tender.command"] == 0
    assert seen[7.5]["tender"] is State.EXECUTE and seen[7.5]["robot.start"] is True
    # Start while executing: refused by the PackML state machine, nothing written
    assert len(refused) == 1 and "EXECUTE" in refused[0]
    commands = [(d["command"], d["source"], d["accepted"]) for k, u, d in events
                if k == "command" and u == "tender"]
    assert commands == [("STOP", "test", True), ("START", "tag:tender.command", True),
                        ("START", "test", False)]
    changes = [(d["from"], d["to"]) for k, u, d in events if k == "unit" and u == "tender"]
    # (at plant time 0 the arm may still be ready and not yet busy: IDLE first)
    assert changes[0][0] == "STOPPED"
    assert changes[-2:] == [("EXECUTE", "IDLE"), ("IDLE", "EXECUTE")]
    # every unit write went through the line's guard and audit, with the unit as source
    unit_writes = [(e["tag"], e["value"], e["outcome"], e["source"]) for e in audit.entries
                   if str(e["source"]).startswith("unit:")]
    assert unit_writes == [("robot.start", False, "ok", "unit:tender/test"),
                           ("robot.start", True, "ok", "unit:tender/tag:tender.command")]
