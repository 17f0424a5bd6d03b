"""``smartline browse`` for Modbus: device identification (FC 43 / MEI 14) and the probe of
which ranges answer — holes, a bounded number of requests, exception answers — against the
simulator on 127.0.0.1."""

from __future__ import annotations

import pytest
from modbus_support import make_driver

from smartline.browse import browse_url
from smartline.core import DeviceTimeoutError
from smartline.hil.modbus import ModbusDeviceSim

IDENT = {"VendorName": "ACME Automation", "ProductCode": "FX-100",
         "MajorMinorRevision": "2.1", "VendorUrl": "https://acme.example",
         "ProductName": "Filler controller", "ModelName": "FX-100/4"}


def ranges(result) -> list[str]:
    return [p.address for p in result.points]


async def test_identification_and_ranges_with_holes(sim_factory, transport) -> None:
    dev = ModbusDeviceSim(1, {"a": "hr:0:uint16[10]", "b": "hr:12:uint16[3]",
                              "c": "ir:0:float32[4]", "d": "co:3:bool[5]",
                              "e": "di:0:bool[16]", "f": "hr:5000:uint16"},
                          extra={"hr": [(100, 400)]}, identification=IDENT)
    sim = await sim_factory(dev, transport)
    async with make_driver(sim) as d:
        result = await d.browse()
    assert {k: result.identity[k] for k in IDENT} == IDENT
    assert result.identity["unit"] == 1
    assert ranges(result) == ["hr:0:uint16[10]", "hr:12:uint16[3]", "hr:100:uint16[300]",
                              "hr:5000:uint16", "ir:0:uint16[8]", "co:3:bool[5]",
                              "di:0:bool[16]"]
    names = [p.name for p in result.points]
    assert names[:4] == ["hr_0_9", "hr_12_14", "hr_100_399", "hr_5000"]
    assert all(p.access == "r" for p in result.points)
    sent = int(result.notes[-1].split()[0])
    assert sent == dev.stats.requests <= d.browse_max_requests


async def test_a_large_answering_area_costs_one_request_per_chunk(sim_factory) -> None:
    dev = ModbusDeviceSim(1, {"a": "hr:0:uint16"}, extra={"hr": [(0, 10_000)]},
                          identification=IDENT)
    sim = await sim_factory(dev)
    async with make_driver(sim) as d:
        d.browse_max_requests = 1000
        result = await d.browse()
    assert ranges(result) == ["hr:0:uint16[10000]"]
    hr_reads = -(-10_000 // 125)
    # identification (1) + hr in max-size chunks + a few probes per empty area
    assert dev.stats.requests < 1 + hr_reads + 3 * 40


async def test_requests_are_bounded_and_what_was_skipped_is_noted(sim_factory) -> None:
    dev = ModbusDeviceSim(1, {f"p{i}": f"hr:{i * 10}:uint16" for i in range(50)},
                          identification=IDENT)
    sim = await sim_factory(dev)
    async with make_driver(sim) as d:
        d.browse_max_requests = 25
        result = await d.browse()
    assert dev.stats.requests == 25
    assert ranges(result)[0] == "hr:0:uint16"
    # every range found exists (islands inside a gap may be stepped over: documented)
    assert set(ranges(result)) <= {f"hr:{i * 10}:uint16" for i in range(50)}
    skipped = " ".join(result.notes)
    assert "stopped after 25 requests" in skipped and "ir, co, di not probed" in skipped


async def test_no_identification_is_a_note_not_a_failure(sim_factory) -> None:
    dev = ModbusDeviceSim(1, {"a": "hr:0:uint16[4]"})  # answers FC 43 with exception 1
    sim = await sim_factory(dev)
    async with make_driver(sim) as d:
        result = await d.browse()
    assert ranges(result) == ["hr:0:uint16[4]"]
    assert "VendorName" not in result.identity
    assert any("FC 43 answered exception 1 (illegal function)" in n for n in result.notes)


@pytest.mark.parametrize("code", [2, 3])
async def test_identification_exceptions_2_and_3(sim_factory, code) -> None:
    dev = ModbusDeviceSim(1, {"a": "hr:0:uint16"}, identification=IDENT)
    dev.faults.exception = code
    dev.faults.remaining = 2  # both the regular and the basic stream are refused
    sim = await sim_factory(dev)
    async with make_driver(sim) as d:
        result = await d.browse()
    assert "VendorName" not in result.identity
    if code == 2:
        assert any("exception 2 (illegal data address)" in n for n in result.notes)
    else:  # the regular stream refused, then the basic one: still noted
        assert any("exception 3" in n for n in result.notes)
    assert ranges(result) == ["hr:0:uint16"]


async def test_basic_identification_when_the_regular_stream_is_refused(sim_factory) -> None:
    dev = ModbusDeviceSim(1, {"a": "hr:0:uint16"}, identification=IDENT)
    dev.faults.exception = 3
    dev.faults.remaining = 1  # only the first (regular) request is refused
    sim = await sim_factory(dev)
    async with make_driver(sim) as d:
        result = await d.browse()
    assert result.identity["VendorName"] == "ACME Automation"
    assert "VendorUrl" not in result.identity  # the basic stream has objects 0..2 only


async def test_identification_split_over_several_answers(sim_factory) -> None:
    long = {"VendorName": "V" * 120, "ProductCode": "P" * 120, "MajorMinorRevision": "1.0",
            "ModelName": "M" * 100}
    dev = ModbusDeviceSim(1, {"a": "hr:0:uint16"}, identification=long)
    sim = await sim_factory(dev)
    async with make_driver(sim) as d:
        result = await d.browse()
    assert {k: result.identity[k] for k in long} == long


async def test_exception_1_skips_an_area_and_exception_4_stops_it(sim_factory) -> None:
    # (the simulator applies injected exceptions to reads inside its tables only)
    dev = ModbusDeviceSim(1, {"a": "hr:0:uint16[200]"}, identification=IDENT)
    sim = await sim_factory(dev)
    async with make_driver(sim) as d:
        dev.faults.exception = 4  # server device failure: hr cannot be probed
        dev.faults.remaining = 2  # … the identification and the first hr read
        result = await d.browse()
    assert not any(p.address.startswith("hr:") for p in result.points)
    assert any("holding registers (hr): probing stopped at 0: exception 4" in n
               for n in result.notes)
    dev.faults.exception = 1  # illegal function: the device has no such table
    dev.faults.remaining = 2  # … the identification and the first hr read
    async with make_driver(sim) as d:
        result = await d.browse()
    assert not any(p.address.startswith("hr:") for p in result.points)
    assert any("holding registers (hr): not supported (exception 1" in n
               for n in result.notes)


async def test_a_silent_device_fails_the_browse(sim_factory) -> None:
    dev = ModbusDeviceSim(1, {"a": "hr:0:uint16"}, identification=IDENT)
    dev.faults.no_answer = True
    sim = await sim_factory(dev)
    async with make_driver(sim, timeout_s=0.2) as d:
        with pytest.raises(DeviceTimeoutError):
            await d.browse()


async def test_browse_url_and_profile_identity(sim_factory) -> None:
    from smartline.config import data_dir

    dev = ModbusDeviceSim.from_profile(data_dir("drivers") / "eastron" / "sdm630.yaml")
    sim = await sim_factory(dev)
    result = await browse_url(sim.url(), timeout_s=0.5, max_requests=120)
    assert result.identity["VendorName"] == "eastron"
    assert result.identity["ModelName"] == "sdm630"
    assert any(p.address.startswith("ir:0:uint16[") for p in result.points)
    assert dev.stats.requests <= 120
