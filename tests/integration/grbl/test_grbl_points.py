"""Status points, settings and every write point of the GRBL driver, against the simulator
on a pty."""

from __future__ import annotations

import pytest
from grbl_support import driver, points, until

from smartline.core import ConfigError, DeviceError, Quality, Reason, WriteItem, WriteRefusedError
from smartline.drivers.cnc.grbl import GRBL_POINTS, GrblDriver
from smartline.hil.grbl import GrblSim

STATUS = ("state", "substate", "alarm", "hold", "mpos.x", "mpos.y", "mpos.z", "wpos.x",
          "wpos.y", "wpos.z", "wco.x", "feed", "spindle", "line", "ov.feed", "ov.rapid",
          "ov.spindle", "pins", "accessories", "message", "job.state", "job.lines")


def value(result, point):
    i = result.slots.tolist().index(point.slot)
    if point.slot in result.texts:
        return result.texts[point.slot]
    return float(result.raw[i])


async def test_status_points_after_moves(sim: GrblSim) -> None:
    async with driver(sim) as d:
        await d.write([WriteItem(points("mdi")[0], "G10 L20 P1 X1 Y2 Z3")])
        await d.write([WriteItem(points("mdi")[0], "G0 X11 Y12 Z13")])
        await d.write([WriteItem(points("mdi")[0], "M3 S12000 M8")])
        pts = points(*STATUS)
        await until(lambda: sim.controller.state == "Idle", what="the move to end")
        await d.read(d.plan(pts))  # GRBL reports WCO: first, Ov:/A: one report later
        r = await d.read(d.plan(pts))
        got = {p.tag: value(r, p) for p in pts}
        bad = {p.tag for p in pts if r.quality[r.slots.tolist().index(p.slot)] != Quality.GOOD}
        assert bad == set()
        assert got["state"] == "Idle" and got["substate"] == 0 and got["alarm"] == 0
        assert got["hold"] == 0.0
        assert (got["mpos.x"], got["mpos.y"], got["mpos.z"]) == (10.0, 10.0, 10.0)
        assert (got["wpos.x"], got["wpos.y"], got["wpos.z"]) == (11.0, 12.0, 13.0)
        assert got["wco.x"] == -1.0
        assert got["spindle"] == 12000.0 and got["accessories"] == "SF"
        assert got["ov.feed"] == got["ov.rapid"] == got["ov.spindle"] == 100.0
        assert got["job.state"] == "none" and got["job.lines"] == 0.0


async def test_a_fresh_enough_report_is_reused(sim: GrblSim) -> None:
    async with driver(sim, status_max_age_ms=10_000) as d:
        plan = d.plan(points("state", "mpos.x"))
        await d.read(plan)
        asked = sim.controller.status_reports
        r = await d.read(plan)
        assert r.requests == 0 and sim.controller.status_reports == asked
        await d.write([WriteItem(points("ov.feed")[0], 110)])  # a write: ask again
        r = await d.read(plan)
        assert r.requests >= 1 and sim.controller.status_reports > asked


async def test_wpos_reports_and_inches(sim: GrblSim) -> None:
    with sim.lock:
        sim.controller.settings[10] = 0  # WPos instead of MPos
        sim.controller.settings[13] = 1  # report inches
        sim.controller.g54 = [25.4, 0.0, 0.0]
    async with driver(sim) as d:
        pts = points("mpos.x", "wpos.x")
        r = await d.read(d.plan(pts))
        assert r.quality.tolist() == [Quality.GOOD] * 2
        # the report says inches ($13=1); the points are millimetres
        assert value(r, pts[0]) == pytest.approx(0.0, abs=1e-3)
        assert value(r, pts[1]) == pytest.approx(-25.4, abs=1e-3)


async def test_buffer_points_need_bf_in_the_report(sim: GrblSim) -> None:
    async with driver(sim) as d:
        pts = points("buffer.planner", "buffer.rx")
        r = await d.read(d.plan(pts))
        assert (r.quality == Quality.BAD).all()
        assert "$10" in r.notes[pts[0].slot]
        await d.write([WriteItem(points("setting.s10")[0], 3)])
        r = await d.read(d.plan(pts))
        assert r.quality.tolist() == [Quality.GOOD] * 2
        assert (value(r, pts[0]), value(r, pts[1])) == (15.0, 128.0)


async def test_unknown_point_names_are_refused_at_plan_time(sim: GrblSim) -> None:
    d = driver(sim)
    with pytest.raises(ConfigError, match=r"unknown GRBL point 'spindel'.*setting\.sN"):
        d.plan(points("state", "spindel"))
    assert "state" in GRBL_POINTS
    await d.close()


async def test_a_setting_the_controller_lacks_is_bad_alone(sim: GrblSim) -> None:
    async with driver(sim) as d:
        pts = points("setting.s110", "setting.s999")
        r = await d.read(d.plan(pts))
        assert r.quality.tolist() == [Quality.GOOD, Quality.BAD]
        assert r.reason[1] == Reason.DEVICE_ERROR
        assert "no setting $999" in r.notes[pts[1].slot]
        assert value(r, pts[0]) == 500.0


async def test_settings_writes_go_to_the_controller(sim: GrblSim) -> None:
    async with driver(sim) as d:
        await d.write([WriteItem(points("setting.s110")[0], 1234.5)])
        assert sim.controller.settings[110] == 1234.5
        with pytest.raises(DeviceError, match="error:3"):
            await d.write([WriteItem(points("setting.s77")[0], 1)])
        with pytest.raises(DeviceError, match=r"error:10.*homing"):
            await d.write([WriteItem(points("setting.s20")[0], 1)])  # soft limits need $22
        with pytest.raises(WriteRefusedError, match=">= 0"):
            await d.write([WriteItem(points("setting.s110")[0], -1)])
        assert d.connected


async def test_overrides_by_real_time_bytes(sim: GrblSim) -> None:
    async with driver(sim) as d:
        ov = points("ov.feed", "ov.rapid", "ov.spindle")
        await d.write([WriteItem(ov[0], 137), WriteItem(ov[1], 25), WriteItem(ov[2], 62)])
        r = await d.read(d.plan(ov))
        assert [value(r, p) for p in ov] == [137.0, 25.0, 62.0]
        assert (sim.controller.ov_feed, sim.controller.ov_rapid) == (137, 25)
        for bad, p in ((5, ov[0]), (201, ov[2]), (75, ov[1]), (1.5, ov[0])):
            with pytest.raises(WriteRefusedError):
                await d.write([WriteItem(p, bad)])


async def test_hold_resume_reset_unlock_home(frozen_sim: GrblSim) -> None:
    sim = frozen_sim
    async with driver(sim, status_max_age_ms=0) as d:  # every read asks: the clock jumps
        hold, resume, reset, unlock, home, mdi = points("hold", "resume", "reset", "unlock",
                                                        "home", "mdi")
        state = points("state", "substate", first_slot=10)
        await d.write([WriteItem(mdi, "G1 X50 F600")])  # 5 s of motion on the frozen clock
        await until(lambda: sim.controller.state == "Run", what="the move to start")
        sim.advance(0.5)
        await d.write([WriteItem(hold, True)])
        r = await d.read(d.plan(state))
        assert (value(r, state[0]), value(r, state[1])) == ("Hold", 1.0)
        sim.advance(0.2)
        r = await d.read(d.plan(state))
        assert (value(r, state[0]), value(r, state[1])) == ("Hold", 0.0)
        x_held = sim.controller.mpos[0]
        sim.advance(1.0)
        assert sim.controller.mpos[0] == x_held  # held: nothing moves
        await d.write([WriteItem(resume, True)])
        await until(lambda: sim.controller.state == "Run", what="the resume")
        sim.advance(0.5)
        r = await d.read(d.plan(state))
        assert value(r, state[0]) == "Run"
        assert sim.controller.mpos[0] > x_held
        # a soft reset while moving: ALARM:3, the banner, then Alarm until unlocked
        await d.write([WriteItem(reset, True)])
        alarm = points("alarm", "state", first_slot=20)
        await until(lambda: d.grbl is not None and d.grbl.banners >= 1, what="the banner")
        r = await d.read(d.plan(alarm))
        assert value(r, alarm[1]) == "Alarm"
        await d.write([WriteItem(unlock, True)])
        r = await d.read(d.plan(alarm))
        assert (value(r, alarm[0]), value(r, alarm[1])) == (0.0, "Idle")
        # homing needs $22
        with pytest.raises(DeviceError, match="error:5"):
            await d.write([WriteItem(home, True)])
        await d.write([WriteItem(points("setting.s22")[0], 1)])
        await d.write([WriteItem(home, True)])
        sim.advance(1.0)
        await until(lambda: sim.controller.state == "Idle", what="homing to end")
        assert sim.controller.mpos == [0.0, 0.0, 0.0]


async def test_mdi_errors_carry_grbls_meaning(sim: GrblSim) -> None:
    async with driver(sim) as d:
        mdi = points("mdi")[0]
        with pytest.raises(DeviceError, match=r"error:22 \(feed rate has not been set"):
            await d.write([WriteItem(mdi, "G1 X10")])
        with pytest.raises(DeviceError, match="error:20"):
            await d.write([WriteItem(mdi, "G5 X1")])
        with pytest.raises(WriteRefusedError, match="79"):
            await d.write([WriteItem(mdi, "G1 X1" + " Y1" * 40)])
        with pytest.raises(WriteRefusedError, match="real-time"):
            await d.write([WriteItem(mdi, "G0 X1 ?")])
        with pytest.raises(WriteRefusedError, match="read-only"):
            await d.write([WriteItem(points("state")[0], "Idle")])
        assert d.connected and d.health.failures == 0


async def test_reads_during_a_limit_alarm_use_the_last_report(sim: GrblSim) -> None:
    with sim.lock:
        sim.controller.settings.update({22: 1, 20: 1})  # homing and soft limits
        sim.controller.soft_reset(power=True)
    async with driver(sim, status_max_age_ms=0) as d:
        mdi, unlock, reset = points("mdi", "unlock", "reset")
        pts = points("alarm", "state", "mpos.x", first_slot=5)
        r = await d.read(d.plan(pts))
        assert value(r, pts[1]) == "Alarm"  # homing enabled: power-up locked
        await d.write([WriteItem(unlock, True)])
        await d.write([WriteItem(mdi, "G0 X-5")])
        with pytest.raises(DeviceError, match=r"ALARM:2 \(soft limit"):
            await d.write([WriteItem(mdi, "G0 X10")])  # beyond travel: GRBL halts
        assert d.connected
        r = await d.read(d.plan(pts))  # GRBL sends no reports now: the last one, UNCERTAIN
        assert value(r, pts[0]) == 2.0
        assert r.quality[2] == Quality.UNCERTAIN and "ALARM:2" in r.notes[pts[2].slot]
        # the alarm itself says the state, uncertain: no report confirms it
        assert value(r, pts[1]) == "Alarm" and r.quality[1] == Quality.UNCERTAIN
        await d.write([WriteItem(reset, True)])
        await d.write([WriteItem(unlock, True)])
        r = await d.read(d.plan(pts))
        assert (value(r, pts[0]), value(r, pts[1])) == (0.0, "Idle")
        assert r.quality.tolist() == [Quality.GOOD] * 3


async def test_a_hard_limit_during_a_status_request_ends_the_read_at_once() -> None:
    # the '?' of a read is on its way (the USB adapter's latency) when a hard limit trips:
    # ALARM:1 reaches the driver first, the '?' then finds a controller that sends no report
    # until a reset. The read must not wait out its timeout (5 s here) for that report.
    import asyncio
    import time

    from smartline.core import VirtualClock
    from smartline.hil.grbl import GrblController

    with GrblSim(GrblController(VirtualClock()), link_latency_s=0.2) as sim:
        async with driver(sim, timeout_s=5.0, status_max_age_ms=0) as d:
            pts = points("alarm", "state", "mpos.x")
            await d.read(d.plan(pts))
            r = await d.read(d.plan(pts))  # WCO and Ov known: the next read asks once
            assert value(r, pts[1]) == "Idle" and d.grbl is not None
            sent = sim.bytes_in
            t0 = time.monotonic()
            read = asyncio.ensure_future(d.read(d.plan(pts)))
            await until(lambda: sim.bytes_in > sent, what="the read's '?'")
            with sim.lock:
                sim.controller.raise_alarm(1)
            r = await asyncio.wait_for(read, 4.0)
            assert time.monotonic() - t0 < 2.0
            assert d.connected and d.grbl.critical
            assert value(r, pts[0]) == 1.0  # the alarm line itself: GOOD
            # the alarm says the state, the position is the last report's: both uncertain
            assert value(r, pts[1]) == "Alarm" and r.quality[1] == Quality.UNCERTAIN
            assert value(r, pts[2]) == 0.0 and r.quality[2] == Quality.UNCERTAIN
            assert r.notes[pts[2].slot].startswith("last report before ALARM:1")


async def test_over_a_tcp_serial_server() -> None:
    from smartline.core import VirtualClock
    from smartline.drivers.cnc.grbl import GcodeJob, GcodeProgram
    from smartline.hil.grbl import GrblController

    with GrblSim(GrblController(VirtualClock()), transport="tcp", fast_forward=True) as sim:
        assert sim.url.startswith("grbl://socket://127.0.0.1:")
        async with driver(sim) as d:
            r = await d.read(d.plan(points("state", "mpos.x")))
            assert r.texts[0] == "Idle" and r.quality.tolist() == [Quality.GOOD] * 2
            text = "G21\nG1F2000\n" + "".join(f"G1X{i % 9}Y{i % 5}\n" for i in range(200))
            outcome = await GcodeJob(d, GcodeProgram.from_text(text)).run()
            assert outcome.ok and outcome.acked == 202
            assert sim.controller.overflow_bytes == 0


async def test_a_missing_port_is_a_connect_error(tmp_path) -> None:
    from smartline.core import ConnectError, DeviceSpec, parse_url

    d = GrblDriver(DeviceSpec("mill", parse_url(f"grbl://{tmp_path}/ttyNONE"), timeout_s=0.5))
    with pytest.raises(ConnectError, match="cannot open"):
        await d.connect()
    await d.close()


async def test_a_silent_controller_times_out(sim: GrblSim) -> None:
    from smartline.core import DeviceTimeoutError

    async with driver(sim, timeout_s=0.3) as d:
        plan = d.plan(points("state"))
        await d.read(plan)
        sim.faults.silent = True
        with pytest.raises(DeviceTimeoutError):
            await d.read(plan)
        assert not d.connected and d.health.failures == 1


async def test_connecting_to_a_silent_controller_times_out(sim: GrblSim) -> None:
    from smartline.core import DeviceTimeoutError

    sim.faults.silent = True
    d = driver(sim, timeout_s=0.4)
    with pytest.raises(DeviceTimeoutError, match="connect"):
        await d.connect()
    await d.close()
    assert d.grbl is None


async def test_browse_lists_identity_points_and_settings(sim: GrblSim) -> None:
    async with driver(sim) as d:
        result = await d.browse()
    assert result.identity["version"] == "1.1h.20190825"
    assert result.identity["rx_buffer_bytes"] == 128
    names = [p.name for p in result.points]
    assert names[:len(GRBL_POINTS)] == list(GRBL_POINTS)
    assert "setting.s110" in names and "setting.s132" in names
