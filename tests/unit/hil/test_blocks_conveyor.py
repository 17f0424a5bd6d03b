"""Conveyor block: transit time = length / speed, photo-eye edges, queueing, jams, infeed."""

from __future__ import annotations

import numpy as np
import pytest

from smartline.hil.blocks import BlockBank, make_bank


def run(bank: BlockBank, seconds: float, dt_s: float) -> None:
    steps = int(seconds / dt_s + 1e-9)
    for _ in range(steps):
        bank.step(dt_s)
    if seconds - steps * dt_s > 1e-12:
        bank.step(seconds - steps * dt_s)


def positions(bank: BlockBank, i: int = 0) -> list[float]:
    cap = bank.buf.shape[1]
    head = int(bank.state("head")[i])
    return [float(bank.buf[i, (head + j) % cap]) for j in range(int(bank.output("items")[i]))]


@pytest.mark.parametrize("dt", [0.01, 0.3])
def test_transit_time_is_length_over_speed(dt: float) -> None:
    bank = make_bank("conveyor", 1, {"length_m": 5.0, "speed_m_s": 0.5, "eye1_m": 0.1})
    bank.set_input("run", 0, True)
    bank.event("inject", 0)
    run(bank, 0.3, dt)
    assert positions(bank) == pytest.approx([0.15])
    assert bank.output("eye1_blocked")[0]  # body (0.07, 0.15] covers 0.1
    run(bank, 9.6, dt)
    assert positions(bank) == pytest.approx([4.95])
    assert bank.output("discharged")[0] == 0
    run(bank, 0.3, dt)
    assert bank.output("discharged")[0] == 1 and bank.output("items")[0] == 0
    assert bank.output("eye1_count")[0] == 1 and bank.output("eye2_count")[0] == 1


def test_rate_arrivals_and_edge_counts_do_not_depend_on_dt() -> None:
    results = []
    for dt in (0.001, 0.05, 0.7):
        bank = make_bank("conveyor", 1, {"length_m": 5.0, "speed_m_s": 0.5, "eye1_m": 2.0,
                                         "eye2_m": 0.0, "eye3_m": 5.0})
        bank.set_input("run", 0, True)
        bank.set_input("infeed_per_min", 0, 60.0)  # one item a second, 0.5 m apart
        run(bank, 20.5, dt)
        results.append((positions(bank), [int(bank.output(f"eye{k}_count")[0])
                                          for k in (1, 2, 3)],
                        int(bank.output("injected")[0]), int(bank.output("discharged")[0])))
    pos0, counts0, injected0, discharged0 = results[0]
    assert injected0 == 20 and discharged0 == 10  # arrivals at 1..20 s, out 10 s later
    assert counts0 == [16, 20, 10]  # eye at 2 m reached 4 s after arrival
    for pos, counts, injected, discharged in results[1:]:
        assert (counts, injected, discharged) == (counts0, injected0, discharged0)
        np.testing.assert_allclose(pos, pos0, rtol=1e-9)


def test_infeed_edges_need_room_behind_the_last_item() -> None:
    bank = make_bank("conveyor", 1, {"speed_m_s": 0.5, "item_length_m": 0.1,
                                     "min_gap_m": 0.1})
    bank.set_input("run", 0, True)
    bank.set_input("infeed_per_min", 0, 600.0)  # 10/s offered, room for 0.5/0.2 = 2.5/s
    run(bank, 10.0, 0.01)
    assert bank.output("injected")[0] == pytest.approx(25, abs=1)
    assert bank.output("infeed_blocked")[0]
    gaps = -np.diff(positions(bank))
    assert gaps.min() >= 0.2 - 1e-9
    edge = make_bank("conveyor", 1)
    edge.set_input("run", 0, True)
    for k in range(40):  # 20 rising edges, 0.4 s apart
        edge.set_input("infeed", 0, k % 2 == 0)
        run(edge, 0.2, 0.01)
    assert edge.output("injected")[0] == 20


def test_blocked_discharge_queues_items_nose_to_tail() -> None:
    bank = make_bank("conveyor", 1, {"length_m": 2.0, "speed_m_s": 1.0, "item_length_m": 0.1,
                                     "eye1_m": 1.95, "eye2_m": -1.0})
    bank.set_input("run", 0, True)
    bank.set_input("discharge_blocked", 0, True)
    bank.set_input("infeed_per_min", 0, 120.0)
    run(bank, 6.2, 0.05)
    # arrivals every 0.5 s: ten queued behind the front one, two still travelling
    assert positions(bank) == pytest.approx([2.0 - 0.1 * j for j in range(10)] + [0.7, 0.2])
    assert bank.output("discharged")[0] == 0
    assert bank.output("eye1_blocked")[0] and bank.output("eye1_count")[0] == 1
    bank.set_input("discharge_blocked", 0, False)
    bank.set_input("infeed_per_min", 0, 0.0)
    run(bank, 3.0, 0.05)
    assert bank.output("items")[0] == 0
    assert bank.output("discharged")[0] == bank.output("injected")[0]


def test_jam_stops_items_and_loads_a_coupled_motor() -> None:
    conv = make_bank("conveyor", 1, {"speed_scale": 0.01, "jam_load_pct": 250.0})
    motor = make_bank("motor", 1, {"accel_s": 0.0, "stall_s": 100.0})
    motor.set_input("run", 0, True)
    motor.set_input("ref_hz", 0, 50.0)
    conv.event("inject", 0, count=1)

    def couple(seconds: float) -> None:
        for _ in range(int(seconds / 0.01 + 1e-9)):
            conv.set_input("speed", 0, float(motor.output("speed_hz")[0]))
            motor.set_input("load_pct", 0, float(conv.output("load_pct")[0]))
            motor.step(0.01)
            conv.step(0.01)

    couple(2.0)
    assert conv.output("belt_speed_m_s")[0] == pytest.approx(0.5)
    before = positions(conv)
    current = float(motor.output("current_a")[0])
    conv.event("jam", 0)
    couple(1.0)
    assert conv.output("jammed")[0] and positions(conv) == before
    assert conv.output("load_pct")[0] == 250.0
    assert motor.output("current_a")[0] > 2 * current  # pulled to the drive's current limit
    conv.event("clear_jam", 0)
    couple(1.0)
    assert positions(conv)[0] > before[0]


def test_capacity_is_respected_and_clear_empties() -> None:
    bank = make_bank("conveyor", 1, {"capacity": 3, "speed_m_s": 0.1})
    bank.set_input("run", 0, True)
    bank.event("inject", 0, count=5)
    run(bank, 20.0, 0.1)
    assert bank.output("items")[0] == 3 and bank.state("pending")[0] == 2
    assert bank.output("infeed_blocked")[0]
    bank.event("clear", 0)
    assert bank.output("items")[0] == 0
