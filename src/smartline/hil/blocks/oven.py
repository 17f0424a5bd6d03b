"""Oven zone: first order plus dead time (FOPDT) from heater power to temperature.

``tau_s · dT/dt = ambient_c + gain_c · u(t − dead_time_s)/100 + coupling · (T_nb − ambient_c) − T``
with ``u`` the heater power in % (0..100) and ``T_nb`` the temperature of zone ``neighbour`` of
the same bank (−1: none). The past inputs live in a ring per zone: ``delay_slots`` slots of
width ``dead_time_s / slots`` (never under ``min_slot_s``), each holding the mean power over its
slot, so the dead time is exact and the input is resolved to one slot.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from numba import njit

from ._core import BlockBank, BlockType, Event, Param, Signal, frozen, rows
from ._faults import apply_faults

__all__ = ["OVEN", "oven_step"]

SIZES = frozen(delay_slots=Param(1000, "slots", 1, 1_000_000,
                                 "ring length of past inputs per zone", "int"))
PARAMS = frozen(
    gain_c=Param(800.0, "°C", -1e4, 1e4, "rise above ambient at 100 % power, steady state"),
    tau_s=Param(60.0, "s", 0.0, 1e6, "time constant (0: no lag)"),
    dead_time_s=Param(5.0, "s", 0.0, 1e5, "dead time from heater to sensor"),
    ambient_c=Param(20.0, "°C", -100.0, 1000.0, "ambient temperature"),
    neighbour=Param(-1, "", -1, 1e7, "index of the coupled zone in this bank (−1: none)", "int"),
    coupling=Param(0.0, "", 0.0, 0.99, "share of the neighbour's rise above ambient felt here"),
    min_slot_s=Param(1e-3, "s", 1e-6, 10.0, "finest dead-time slot"),
)
INPUTS = frozen(power_pct=Signal("%", 0.0, "heater power (clamped to 0..100, NaN: off)"))
OUTPUTS = frozen(
    temperature_c=Signal("°C", 20.0, "zone temperature"),
    delayed_power_pct=Signal("%", 0.0, "power acting now (after dead time and heater faults)"),
)
STATES = frozen(
    temp_prev=Signal("°C", 20.0, "temperature at the start of the step (for the coupling)"),
    slot_time_s=Signal("s", 0.0, "time spent in the slot being written"),
    slot_sum=Signal("%·s", 0.0, "integral of the power over that slot"),
    heater_factor=Signal("", 1.0, "share of the power the heater delivers (1: healthy)"),
    tau_factor=Signal("", 1.0, "time constant multiplier (door open: < 1)"),
    ambient_offset_c=Signal("°C", 0.0, "added to the ambient (door open: cooler)"),
    write=Signal("", 0, "ring slot being written", "int"),
)

_P = rows(PARAMS)
P_GAIN, P_TAU, P_DEAD, P_AMB = _P["gain_c"], _P["tau_s"], _P["dead_time_s"], _P["ambient_c"]
P_NB, P_COUPLING, P_MIN_SLOT = _P["neighbour"], _P["coupling"], _P["min_slot_s"]
I_POWER = rows(INPUTS)["power_pct"]
_OF = rows(OUTPUTS)
O_TEMP, O_DELAYED = _OF["temperature_c"], _OF["delayed_power_pct"]
_SF, _SI = rows(STATES), rows(STATES, "int")
S_PREV, S_SLOT_T, S_SLOT_SUM = _SF["temp_prev"], _SF["slot_time_s"], _SF["slot_sum"]
S_HEATER, S_TAU_F, S_AMB_OFF, S_WRITE = (_SF["heater_factor"], _SF["tau_factor"],
                                         _SF["ambient_offset_c"], _SI["write"])


@njit(cache=True, nogil=True)  # type: ignore[misc]
def oven_step(pf, inf, inb, outf, outi, outb, sf, si, sb, buf, rng,  # type: ignore[no-untyped-def]  # noqa: PLR0917
              seenf, seeni, seenb, ff, fi, fb, frng, dt_s):  # pragma: no cover
    """Step n zones by ``dt_s``: exact exponential per piece of constant delayed input."""
    n = pf.shape[1]
    ring = buf.shape[1]
    for i in range(n):
        sf[S_PREV, i] = outf[O_TEMP, i]
    for i in range(n):
        u = inf[I_POWER, i]
        u = min(max(u, 0.0), 100.0) * sf[S_HEATER, i] if math.isfinite(u) else 0.0
        amb = pf[P_AMB, i] + sf[S_AMB_OFF, i]
        nb = int(pf[P_NB, i])
        base = amb
        if 0 <= nb < n and nb != i:
            base += pf[P_COUPLING, i] * (sf[S_PREV, nb] - pf[P_AMB, nb] - sf[S_AMB_OFF, nb])
        tau = pf[P_TAU, i] * sf[S_TAU_F, i]
        theta = pf[P_DEAD, i]
        slots = 1
        width = 0.0
        if theta > 0.0:
            slots = min(ring, max(1, int(theta / pf[P_MIN_SLOT, i])))
            width = theta / slots
        w = si[S_WRITE, i] % slots
        temp = outf[O_TEMP, i]
        ud = u
        remaining = dt_s
        while remaining > 0.0:
            if theta > 0.0:
                piece = min(remaining, width - sf[S_SLOT_T, i])
                ud = buf[i, w]
            else:
                piece = remaining
            target = base + pf[P_GAIN, i] * ud / 100.0
            temp = target + (temp - target) * math.exp(-piece / tau) if tau > 0.0 else target
            remaining -= piece
            if theta > 0.0:
                sf[S_SLOT_SUM, i] += u * piece
                sf[S_SLOT_T, i] += piece
                if sf[S_SLOT_T, i] >= width * (1.0 - 1e-9):
                    buf[i, w] = sf[S_SLOT_SUM, i] / sf[S_SLOT_T, i]
                    w = (w + 1) % slots
                    sf[S_SLOT_T, i] = 0.0
                    sf[S_SLOT_SUM, i] = 0.0
                    if remaining < width * 1e-9:
                        remaining = 0.0
        if theta > 0.0:
            ud = buf[i, w]
        si[S_WRITE, i] = w
        outf[O_TEMP, i] = temp
        outf[O_DELAYED, i] = ud
    apply_faults(outf, outi, outb, seenf, seeni, seenb, ff, fi, fb, frng, dt_s)


def _init(bank: BlockBank) -> None:
    bank.true_output("temperature_c")[:] = bank.param("ambient_c")
    bank.state("temp_prev")[:] = bank.param("ambient_c")


def _set_temperature(bank: BlockBank, i: int, args: Mapping[str, Any]) -> None:
    bank.true_output("temperature_c")[i] = args["temperature_c"]


def _heater_fail(bank: BlockBank, i: int, args: Mapping[str, Any]) -> None:
    bank.state("heater_factor")[i] = args["remaining"]


def _heater_repair(bank: BlockBank, i: int, args: Mapping[str, Any]) -> None:
    bank.state("heater_factor")[i] = 1.0


def _door_open(bank: BlockBank, i: int, args: Mapping[str, Any]) -> None:
    bank.state("tau_factor")[i] = args["tau_factor"]
    bank.state("ambient_offset_c")[i] = args["ambient_offset_c"]


def _door_close(bank: BlockBank, i: int, args: Mapping[str, Any]) -> None:
    bank.state("tau_factor")[i] = 1.0
    bank.state("ambient_offset_c")[i] = 0.0


def _slots(sizes: Mapping[str, int]) -> int:
    return sizes["delay_slots"]


OVEN = BlockType(
    name="oven",
    description="oven zone: first order plus dead time from heater power, optional coupling",
    params=PARAMS, inputs=INPUTS, outputs=OUTPUTS, states=STATES, sizes=SIZES,
    events=frozen(
        heater_fail=Event("heater elements fail: only a share of the power heats",
                          _heater_fail,
                          frozen(remaining=Param(0.0, "", 0.0, 1.0, "share still working"))),
        heater_repair=Event("heater healthy again", _heater_repair),
        door_open=Event("door open: faster heat loss toward a cooler ambient", _door_open,
                        frozen(tau_factor=Param(0.3, "", 0.01, 1.0, "time constant ×"),
                               ambient_offset_c=Param(0.0, "°C", -1000.0, 1000.0,
                                                      "ambient change"))),
        door_close=Event("door closed", _door_close),
        set_temperature=Event("the zone is at a temperature (initial state)",
                              _set_temperature,
                              frozen(temperature_c=Param(20.0, "°C", -1000.0, 1e4, "value"))),
    ),
    kernel=oven_step,
    init=_init,
    buffer_len=_slots,
    discretisation="exact zero-order-hold solution per piece of constant delayed input "
                   "(pieces end at the dead-time slot boundaries), so any dt gives the same "
                   "trace for an input held over each step; the neighbour coupling uses its "
                   "temperature at the start of the step (first order in dt)",
)
