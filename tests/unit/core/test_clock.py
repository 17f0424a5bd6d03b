import asyncio
import time

import pytest

from smartline.core import Clock, MonotonicClock, VirtualClock


def test_both_clocks_satisfy_the_protocol():
    assert isinstance(MonotonicClock(), Clock)
    assert isinstance(VirtualClock(), Clock)


def test_virtual_clock_moves_only_when_told():
    c = VirtualClock(start_ns=1000)
    assert c.now_ns() == 1000
    c.advance_ns(500)
    assert c.now_ns() == 1500
    c.sleep_until_ns(10_000)
    assert c.now_ns() == 10_000
    c.set_ns(5)  # never backwards
    assert c.now_ns() == 10_000
    with pytest.raises(ValueError):
        c.advance_ns(-1)
    # the wall clock starts at the given epoch and moves with virtual time
    w = VirtualClock(start_ns=1000, wall_epoch_ns=5_000)
    assert w.wall_ns() == 5_000
    w.advance_ns(250)
    assert w.wall_ns() == 5_250


def test_virtual_asleep_advances_time():
    c = VirtualClock()
    asyncio.run(c.asleep(2.5))
    assert c.now_ns() == 2_500_000_000


def test_monotonic_sleep_until_is_not_early():
    c = MonotonicClock()
    deadline = c.now_ns() + 3_000_000
    c.sleep_until_ns(deadline)
    assert time.monotonic_ns() >= deadline
