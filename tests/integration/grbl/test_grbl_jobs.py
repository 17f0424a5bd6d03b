"""Streaming G-code jobs to the simulated controller: character counting and send-response,
the receive buffer never overflowed, and every way a job stops."""

from __future__ import annotations

import asyncio
import time

import pytest
import serial
from grbl_support import driver, points, program_text, until

from smartline.core import (
    ConfigError,
    DeviceSpec,
    MonotonicClock,
    RetryPolicy,
    VirtualClock,
    parse_url,
)
from smartline.drivers.cnc.grbl import (
    GcodeJob,
    GcodeProgram,
    GrblDriver,
    JobProgress,
    clean_line,
)
from smartline.hil.grbl import RX_BUFFER_SIZE, GrblController, GrblSim


def moves_executed(sim: GrblSim) -> list[str]:
    return [t for t in sim.controller.lines_executed if t.startswith("G1X")]


@pytest.mark.parametrize("mode", ["counting", "send-response"])
async def test_a_job_streams_every_line(sim: GrblSim, mode: str) -> None:
    program = GcodeProgram.from_text(program_text(120), "part.nc")
    seen: list[JobProgress] = []
    async with driver(sim) as d:
        job = GcodeJob(d, program, mode=mode, on_progress=seen.append)  # type: ignore[arg-type]
        outcome = await job.run()
        assert outcome.ok, outcome.message
        assert (outcome.total, outcome.sent, outcome.acked) == (124, 124, 124)
        assert outcome.mode == mode
        assert len(moves_executed(sim)) == 120
        assert sim.controller.overflow_bytes == 0
        assert seen[-1].percent == 100.0 and seen[-1].state == "done"
        assert seen[-1].file_line == program.lines[-1].number
        r = await d.read(d.plan(points("job.state", "job.lines", "job.acked", "job.percent")))
        assert r.texts[0] == "done" and r.raw[1:].tolist() == [124.0, 124.0, 100.0]


async def test_counting_keeps_the_buffer_full_and_never_overflows_it(frozen_sim) -> None:
    sim = frozen_sim
    program = GcodeProgram.from_text(program_text(80), "part.nc")
    async with driver(sim) as d:
        job = GcodeJob(d, program)
        task = asyncio.ensure_future(job.run())
        # motion is frozen: the planner fills (15 blocks), then the receive ring
        await until(lambda: sim.controller.planner_used() == 15 and d.grbl is not None
                    and d.grbl.inflight_bytes > RX_BUFFER_SIZE - 1 - 12, what="a full buffer")
        await asyncio.sleep(0.05)  # would the sender push more? it must not
        assert d.grbl is not None
        assert d.grbl.inflight_bytes <= RX_BUFFER_SIZE - 1
        assert sim.controller.rx_used() <= RX_BUFFER_SIZE - 1
        assert sim.controller.overflow_bytes == 0
        assert job.progress.sent < job.progress.total
        sim.set_fast_forward(True)  # let the machine run: the job completes
        outcome = await asyncio.wait_for(task, 10)
        assert outcome.ok, outcome.message
        assert sim.controller.overflow_bytes == 0
        assert sim.controller.rx_high_water > RX_BUFFER_SIZE - 1 - 2 * 12  # the ring was used
        assert len(moves_executed(sim)) == 80


async def test_a_naive_sender_overflows_the_receive_buffer(frozen_sim) -> None:
    sim = frozen_sim
    text = program_text(80)
    port = serial.serial_for_url(sim.port, timeout=0.1)
    try:
        port.write(text.encode())  # everything at once, no counting
        await until(lambda: sim.controller.overflow_bytes > 0, what="an overflow")
        sim.set_fast_forward(True)
        await asyncio.sleep(0.2)
        assert len(moves_executed(sim)) < 80  # lines were lost or mangled
    finally:
        port.close()


async def test_an_alarm_stops_the_job_at_its_line(sim: GrblSim) -> None:
    lines = program_text(60).splitlines()
    lines[next(i for i, ln in enumerate(lines) if "(move 24)" in ln)] = "G1 X5.5 Y3 (trips)"
    text = "\n".join(lines)
    program = GcodeProgram.from_text(text, "part.nc")
    trip = next(ln for ln in program.lines if ln.text == "G1X5.5Y3")
    sim.faults.alarm_on, sim.faults.alarm_code = "G1X5.5Y3", 1  # a hard limit
    async with driver(sim) as d:
        outcome = await GcodeJob(d, program).run()
        assert outcome.state == "alarm" and not outcome.ok
        assert outcome.alarm is not None
        assert (outcome.alarm.code, outcome.alarm.file_line) == (1, trip.number)
        assert "hard limit" in outcome.alarm.meaning
        assert f"part.nc:{trip.number}: G1X5.5Y3: ALARM:1 (hard limit" in outcome.message
        sent_at_end = outcome.sent
        received = sim.controller.lines_received
        await asyncio.sleep(0.1)
        assert sim.controller.lines_received == received  # nothing sent after the alarm
        # only what fit the buffer was sent past the tripping line
        past = program.lines[program.lines.index(trip) + 1:sent_at_end]
        assert sum(len(ln.text) + 1 for ln in past) <= RX_BUFFER_SIZE - 1
        assert sim.controller.critical and sim.controller.overflow_bytes == 0


async def test_an_error_stops_the_job_safely_and_names_the_line(sim: GrblSim) -> None:
    text = program_text(40).replace("G1 X3 Y3  (move 2)", "G1 X3 Y3 G5")
    program = GcodeProgram.from_text(text, "part.nc")
    bad = next(ln for ln in program.lines if ln.text == "G1X3Y3G5")
    async with driver(sim) as d:
        resets = sim.controller.resets
        outcome = await GcodeJob(d, program).run()
        assert outcome.state == "error"
        [err] = outcome.errors
        assert (err.file_line, err.code) == (bad.number, 20)
        assert outcome.message.startswith(f"part.nc:{bad.number}: G1X3Y3G5: error:20 (unsupported")
        assert outcome.acked < outcome.total
        assert sim.controller.resets == resets + 1  # the safe stop ends in a soft reset
        assert sim.controller.state == "Idle"  # held before the reset: no ALARM:3
        assert d.connected


async def test_errors_can_be_let_through(sim: GrblSim) -> None:
    text = program_text(20).replace("G1 X3 Y3  (move 2)", "G1 X3 Y3 G5")
    async with driver(sim) as d:
        outcome = await GcodeJob(d, GcodeProgram.from_text(text), stop_on_error=False).run()
        assert outcome.state == "error" and outcome.acked == outcome.total
        assert [e.code for e in outcome.errors] == [20]


async def test_pause_and_resume(frozen_sim) -> None:
    sim = frozen_sim
    async with driver(sim) as d:
        job = GcodeJob(d, GcodeProgram.from_text(program_text(30)))
        task = asyncio.ensure_future(job.run())
        await until(lambda: sim.controller.state == "Run", what="motion")
        await job.pause()
        assert job.progress.state == "paused"
        await until(lambda: sim.controller.state == "Hold", what="the hold")
        sim.advance(0.2)
        assert sim.controller.hold_phase == 0
        x = list(sim.controller.mpos)
        sim.advance(2.0)
        assert sim.controller.mpos == x  # held
        await job.resume()
        await until(lambda: sim.controller.state == "Run", what="the resume")
        sim.set_fast_forward(True)
        outcome = await asyncio.wait_for(task, 10)
        assert outcome.ok, outcome.message


async def test_cancel_is_the_safe_stop() -> None:
    # real time: the hold must decelerate while the driver waits for Hold:0
    with GrblSim(GrblController(MonotonicClock(), hold_decel_s=0.05)) as sim:
        async with driver(sim) as d:
            text = "G21G90\nG1F600\n" + "\n".join(f"G1X{i * 10}" for i in range(1, 30))
            job = GcodeJob(d, GcodeProgram.from_text(text, "slow.nc"))
            task = asyncio.ensure_future(job.run())
            await until(lambda: sim.controller.state == "Run", what="motion")
            await asyncio.sleep(0.1)
            job.cancel()
            outcome = await asyncio.wait_for(task, 5)
            assert outcome.state == "cancelled"
            assert "safe stop" in outcome.message
            assert sim.controller.resets == 1
            assert sim.controller.state == "Idle"  # stopped in Hold:0 first: no ALARM:3
            assert 0 < sim.controller.mpos[0] < 20


async def test_a_reset_mid_job_is_reported_and_nothing_is_resent(frozen_sim) -> None:
    sim = frozen_sim
    async with driver(sim) as d:
        job = GcodeJob(d, GcodeProgram.from_text(program_text(60), "part.nc"))
        task = asyncio.ensure_future(job.run())
        await until(lambda: sim.controller.planner_used() == 15, what="a full planner")
        sim.hard_reset()
        outcome = await asyncio.wait_for(task, 5)
        assert outcome.state == "reset"
        assert "lost (not resent)" in outcome.message
        received = sim.controller.lines_received
        await asyncio.sleep(0.1)
        assert sim.controller.lines_received == received
        assert d.grbl is not None and d.grbl.inflight_bytes == 0  # counters zeroed


async def test_a_stuck_controller_stops_the_job(frozen_sim) -> None:
    sim = frozen_sim
    async with driver(sim) as d:
        job = GcodeJob(d, GcodeProgram.from_text(program_text(60)), stall_timeout_s=0.4,
                       stop_timeout_s=0.3)
        task = asyncio.ensure_future(job.run())
        await until(lambda: sim.controller.planner_used() == 15, what="a full planner")
        sim.faults.silent = True
        t0 = time.monotonic()
        outcome = await asyncio.wait_for(task, 10)
        assert outcome.state == "error" and "stopped answering" in outcome.message
        assert time.monotonic() - t0 < 5


async def test_a_dropped_link_ends_the_job(frozen_sim) -> None:
    sim = frozen_sim
    async with driver(sim) as d:
        job = GcodeJob(d, GcodeProgram.from_text(program_text(60)))
        task = asyncio.ensure_future(job.run())
        await until(lambda: sim.controller.planner_used() == 15, what="a full planner")
        sim.drop_link()
        outcome = await asyncio.wait_for(task, 5)
        assert outcome.state == "broken"


async def test_garbage_mid_job_ends_it(frozen_sim) -> None:
    sim = frozen_sim
    async with driver(sim) as d:
        job = GcodeJob(d, GcodeProgram.from_text(program_text(60)))
        task = asyncio.ensure_future(job.run())
        await until(lambda: sim.controller.planner_used() == 15, what="a full planner")
        sim.inject(b"\x00\xff~~noise~~\r\n")
        outcome = await asyncio.wait_for(task, 5)
        assert outcome.state == "broken" and "not GRBL" in outcome.message


async def test_check_mode_moves_nothing(sim: GrblSim) -> None:
    async with driver(sim) as d:
        resets = sim.controller.resets
        outcome = await GcodeJob(d, GcodeProgram.from_text(program_text(50)), check=True).run()
        assert outcome.ok, outcome.message
        assert sim.controller.mpos == [0.0, 0.0, 0.0]
        assert sim.controller.resets == resets + 1  # $C off resets GRBL
        await until(lambda: sim.controller.state == "Idle")


async def test_check_mode_finds_errors(sim: GrblSim) -> None:
    text = program_text(10).replace("G1 X3 Y3  (move 2)", "G1 X3 Y3 Q7")
    async with driver(sim) as d:
        outcome = await GcodeJob(d, GcodeProgram.from_text(text, "p.nc"), check=True).run()
        assert outcome.state == "error" and outcome.errors[0].code == 20


async def test_dollar_lines_wait_for_the_machine_to_stand(sim: GrblSim) -> None:
    text = program_text(30) + "$110=612\nG1 X1 Y1\n"
    async with driver(sim) as d:
        outcome = await GcodeJob(d, GcodeProgram.from_text(text)).run()
        assert outcome.ok, outcome.message
        assert sim.controller.settings[110] == 612.0


async def test_writes_that_would_disturb_a_job_are_refused(frozen_sim) -> None:
    from smartline.core import WriteItem, WriteRefusedError

    sim = frozen_sim
    async with driver(sim) as d:
        job = GcodeJob(d, GcodeProgram.from_text(program_text(30)))
        task = asyncio.ensure_future(job.run())
        await until(lambda: sim.controller.planner_used() == 15, what="a full planner")
        mdi, setting, state = points("mdi", "setting.s110", "job.state")
        for item in (WriteItem(mdi, "G0 X0"), WriteItem(setting, 100)):
            with pytest.raises(WriteRefusedError, match="job"):
                await d.write([item])
        r = await d.read(d.plan([state]))
        assert r.texts[state.slot] == "running"
        with pytest.raises(RuntimeError, match="already streaming"):
            await GcodeJob(d, GcodeProgram.from_text("G0X0")).run()
        sim.set_fast_forward(True)
        assert (await asyncio.wait_for(task, 10)).ok


def test_programs_are_cleaned_and_checked(tmp_path) -> None:
    assert clean_line("  g1 x10 (to the edge) y2 ; done") == "G1X10Y2"
    assert clean_line("%") == "" and clean_line("(only a comment)") == ""
    assert clean_line("$110 = 500") == "$110=500"
    long = "G1 " + " ".join(f"X{i}" for i in range(30))
    f = tmp_path / "bad.nc"
    f.write_text(f"G21\n{long}\nG0 X1 (open\nG0 X!\n")
    with pytest.raises(ConfigError) as e:
        GcodeProgram.load(f)
    lines = [i.format() for i in e.value.issues]
    assert lines[0].startswith(f"{f}:2:1: gcode: line is") and "79" in lines[0]
    assert lines[1].startswith(f"{f}:3:1:") and "unbalanced" in lines[1]
    assert lines[2].startswith(f"{f}:4:1:") and "real-time" in lines[2]
    (tmp_path / "bin.nc").write_bytes(b"G0 X1\nG0 X\xe9\n")
    with pytest.raises(ConfigError, match=r"bin.nc:2:1: gcode: a byte that is not ASCII"):
        GcodeProgram.load(tmp_path / "bin.nc")


async def test_virtual_clock_is_what_the_fixture_uses(sim: GrblSim) -> None:
    assert isinstance(sim.clock, VirtualClock)


async def test_a_reset_written_during_a_job_ends_it(frozen_sim) -> None:
    from smartline.core import WriteItem

    sim = frozen_sim
    async with driver(sim) as d:
        job = GcodeJob(d, GcodeProgram.from_text(program_text(60)))
        task = asyncio.ensure_future(job.run())
        await until(lambda: sim.controller.planner_used() == 15, what="a full planner")
        await d.write([WriteItem(points("reset")[0], True)])  # the operator's reset, moving
        outcome = await asyncio.wait_for(task, 5)
        assert outcome.state == "alarm" and outcome.alarm is not None
        assert outcome.alarm.code == 3  # reset while in motion: GRBL says ALARM:3 first


async def test_cancelling_the_run_task_stops_the_machine(frozen_sim) -> None:
    sim = frozen_sim
    async with driver(sim) as d:
        job = GcodeJob(d, GcodeProgram.from_text(program_text(60)))
        task = asyncio.ensure_future(job.run())
        await until(lambda: sim.controller.planner_used() == 15, what="a full planner")
        resets = sim.controller.resets
        task.cancel()
        sim.set_fast_forward(True)  # the hold decelerates to Hold:0
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not job.running and job.progress.state == "cancelled"
        assert sim.controller.resets == resets + 1  # held, then reset: no ALARM:3
        assert sim.controller.state == "Idle"
        assert (await GcodeJob(d, GcodeProgram.from_text("G0X1")).run()).ok  # usable again


async def test_check_mode_refused_in_alarm_sends_nothing(sim: GrblSim) -> None:
    with sim.lock:
        sim.controller.settings[22] = 1
        sim.controller.soft_reset(power=True)  # homing enabled: locked in Alarm
    async with driver(sim) as d:
        resets = sim.controller.resets
        outcome = await GcodeJob(d, GcodeProgram.from_text(program_text(5)), check=True).run()
        assert outcome.state == "error" and "error:8" in outcome.message
        assert outcome.sent == 0 and sim.controller.resets == resets  # no needless reset


async def test_a_controller_in_lock_step_is_not_stuck_while_virtual_time_runs_ahead() -> None:
    # a simulator in lock-step with a virtual clock speaks only when asked; the job's
    # heartbeat ('?' every 200 ms of the loop's time) may come after many virtual seconds.
    # Silence nobody asked for is no stall: the 100 s dwell ends the job normally.
    clock = VirtualClock()
    with GrblSim(clock=clock, lockstep=True) as sim:
        spec = DeviceSpec("mill", parse_url(sim.url), timeout_s=1.0,
                          retry=RetryPolicy(backoff_initial_s=0.05, backoff_max_s=0.2))
        async with GrblDriver(spec, clock=clock) as d:
            job = GcodeJob(d, GcodeProgram.from_text("G4 P100\nG0 X1\nM2\n"),
                           stall_timeout_s=5.0)
            task = asyncio.ensure_future(job.run())
            while not task.done() and clock.now_ns() < 1000e9:
                clock.advance_ns(1_000_000_000)  # some 200 virtual seconds a wall second
                await asyncio.sleep(0.005)
            outcome = await asyncio.wait_for(task, 5.0)
        assert outcome.ok, outcome.message
        assert outcome.elapsed_s >= 100.0
        assert sim.controller.lines_executed[-3:] == ["G4P100", "G0X1", "M2"]
