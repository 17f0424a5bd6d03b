"""Shared links: several units on one RS-485 line (one port, turns, inter-frame silence) and
several units behind one TCP gateway (one connection)."""

from __future__ import annotations

import asyncio
import time

import pytest
from modbus_support import FAST_RETRY, make_driver, points

from smartline.core import (
    CommunicationError,
    ConfigError,
    DeviceDemotedError,
    DeviceTimeoutError,
    LinkPool,
    ProtocolError,
    Quality,
    WriteItem,
)
from smartline.drivers.modbus import ModbusLink, silence_s
from smartline.drivers.modbus._link import SerialParams
from smartline.hil.modbus import ModbusDeviceSim

PTS = points("hr:0", "hr:1:float32", "ir:0:int16")


def unit(u: int) -> ModbusDeviceSim:
    return ModbusDeviceSim(u, {"a": "hr:0", "b": "hr:1:float32", "c": "ir:0:int16"},
                           initial={"a": u, "b": u / 2, "c": -u})


def test_silence_per_modbus_serial_line_spec() -> None:
    assert silence_s(SerialParams(9600, "E")) == pytest.approx(3.5 * 11 / 9600)
    assert silence_s(SerialParams(19200, "N", 2)) == pytest.approx(3.5 * 11 / 19200)
    assert silence_s(SerialParams(115200)) == 0.00175


async def test_units_on_one_rs485_line_share_the_port_and_keep_silence(sim_factory) -> None:
    sim = await sim_factory([unit(1), unit(2), unit(3)], "rtu", baudrate=1200, record=True)
    pool = LinkPool()
    drivers = [make_driver(sim, u, links=pool, name=f"u{u}") for u in (1, 2, 3)]
    plans = [d.plan(PTS) for d in drivers]
    link = drivers[0].link
    assert all(d.link is link for d in drivers)
    gap = link.inter_frame_s
    assert gap == pytest.approx(3.5 * 10 / 1200)
    for _ in range(3):
        results = await asyncio.gather(*(d.read(p) for d, p in zip(drivers, plans, strict=True)))
        for u, r in zip((1, 2, 3), results, strict=True):
            assert (r.quality == Quality.GOOD).all()
            assert r.raw.tolist() == [u, u / 2, -u]
    assert link.opens == 1 and len(link.users) == 3
    events = sim.events
    assert events is not None
    kinds = [k for _, k, _ in events]
    assert kinds == ["rx", "tx"] * (len(kinds) // 2)  # one frame at a time on the line
    for (t_tx, k1, _), (t_rx, k2, _) in zip(events[1::2], events[2::2], strict=False):
        assert k1 == "tx" and k2 == "rx"
        assert t_rx - t_tx >= gap - 1e-4, (t_rx - t_tx, gap)
    for d in drivers:
        await d.close()
    assert not link.connected


async def test_dead_unit_on_the_line_costs_at_most_its_timeout_then_nothing(sim_factory) -> None:
    devs = [unit(1), unit(2), unit(3)]
    sim = await sim_factory(devs, "rtu")
    pool = LinkPool()
    drivers = [make_driver(sim, u, links=pool, timeout_s=0.15, retry=FAST_RETRY, name=f"u{u}")
               for u in (1, 2, 3)]
    plans = [d.plan(PTS) for d in drivers]
    devs[1].faults.no_answer = True
    times = []
    for _ in range(4):
        t0 = time.perf_counter()
        results = await asyncio.gather(*(d.read(p) for d, p in zip(drivers, plans, strict=True)),
                                       return_exceptions=True)
        times.append(time.perf_counter() - t0)
        assert not isinstance(results[0], BaseException)
        assert not isinstance(results[2], BaseException)
        assert isinstance(results[1], DeviceTimeoutError | DeviceDemotedError)
        await asyncio.sleep(0.06)  # let the backoff pass
    assert max(times[:3]) < 0.15 + 0.2  # the live units never wait more than its timeout
    assert drivers[1].health.demoted
    assert times[3] < 0.1  # demoted: skipped, the line is free for the others
    for d in drivers:
        await d.close()


async def test_units_behind_one_tcp_gateway_share_one_connection(sim_factory) -> None:
    sim = await sim_factory([unit(1), unit(2), unit(5)], "tcp")
    pool = LinkPool()
    drivers = [make_driver(sim, u, links=pool, name=f"u{u}") for u in (1, 2, 5)]
    results = await asyncio.gather(*(d.read(d.plan(PTS)) for d in drivers))
    assert [r.raw[0] for r in results] == [1, 2, 5]
    assert len(sim._server.active_connections) == 1  # type: ignore[union-attr]
    assert len(pool.links()) == 1 and pool.stats()
    assert isinstance(drivers[0].link, ModbusLink)
    assert pool.stats()[str(drivers[0].link.key)]["users"] == 3
    own = make_driver(sim, 1, links=pool, share_connection=False, name="own")
    await own.read(own.plan(PTS))
    assert len(sim._server.active_connections) == 2  # type: ignore[union-attr]
    for d in [*drivers, own]:
        await d.close()
    await pool.aclose()


async def test_a_line_with_mixed_serial_settings_is_refused(sim_factory) -> None:
    sim = await sim_factory(unit(1), "rtu")
    pool = LinkPool()
    make_driver(sim, 1, links=pool)
    url_sim = sim.serial
    url_sim["baudrate"] = 9600
    with pytest.raises(ConfigError, match="same settings") as info:
        make_driver(sim, 1, links=pool, name="other")
    assert info.value.issues[0].path == "devices.other.url"  # a located error, no traceback


@pytest.mark.parametrize("garbled", ["garbage", "disconnect"])
async def test_a_unit_sending_garbage_does_not_fail_the_others_on_its_gateway(
        sim_factory, garbled: str) -> None:
    devs = [unit(1), unit(2)]
    sim = await sim_factory(devs, "tcp")
    pool = LinkPool()
    d1, d2 = (make_driver(sim, u, links=pool, timeout_s=0.3, name=f"u{u}") for u in (1, 2))
    p1, p2 = d1.plan(PTS), d2.plan(PTS)
    for d, p in ((d1, p1), (d2, p2)):
        assert (await d.read(p)).quality.tolist() == [Quality.GOOD] * 3
    setattr(devs[0].faults, garbled, True)
    devs[0].faults.remaining = 1
    with pytest.raises(ProtocolError if garbled == "garbage" else CommunicationError):
        await d1.read(p1)
    assert not d1.link.connected  # the TCP stream was out of step: the link was closed
    result = await d2.read(p2)  # unit 2 re-opens the shared link, nothing is its fault
    assert (result.quality == Quality.GOOD).all()
    assert result.raw.tolist() == [2, 1.0, -2]
    assert d2.health.failures_in_row == 0 and d2.health.failures == 0
    assert d2.connected and d1.link.connected and d1.link.opens == 2
    await asyncio.sleep(0.06)  # unit 1's backoff
    assert (await d1.read(p1)).quality.tolist() == [Quality.GOOD] * 3
    for d in (d1, d2):
        await d.close()
    assert not d1.link.connected


async def test_drivers_reopen_their_link_after_the_pool_is_closed(sim_factory) -> None:
    sim = await sim_factory([unit(1), unit(2)], "tcp")
    pool = LinkPool()
    drivers = [make_driver(sim, u, links=pool, name=f"u{u}") for u in (1, 2)]
    plans = [d.plan(PTS) for d in drivers]
    for d, p in zip(drivers, plans, strict=True):
        await d.read(p)
    await pool.aclose()
    await drivers[0].write([WriteItem(PTS[0], 7)])  # a write re-opens it as well
    await drivers[0].link.aclose()  # closed under the drivers again (the pool let it go)
    for d, p in zip(drivers, plans, strict=True):
        assert (await d.read(p)).quality.tolist() == [Quality.GOOD] * 3
        assert d.health.failures == 0
    assert (await drivers[0].read(plans[0])).raw[0] == 7
    for d in drivers:
        await d.close()
