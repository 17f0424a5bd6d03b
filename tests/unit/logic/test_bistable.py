"""SR (set dominant) and RS (reset dominant) truth tables and latching."""

from __future__ import annotations

import numpy as np
import pytest

from smartline.logic import rs, rs_bank, sr, sr_bank

# (set, reset, q1 before) -> q1 after, for every combination
SR_TABLE = {
    (0, 0, 0): 0,
    (0, 0, 1): 1,
    (1, 0, 0): 1,
    (1, 0, 1): 1,
    (0, 1, 0): 0,
    (0, 1, 1): 0,
    (1, 1, 0): 1,  # set dominant
    (1, 1, 1): 1,
}
RS_TABLE = {**SR_TABLE, (1, 1, 0): 0, (1, 1, 1): 0}  # reset dominant


@pytest.mark.parametrize(
    ("name", "kernel", "factory", "table"),
    [
        ("sr", sr, sr_bank, SR_TABLE),
        ("rs", rs, rs_bank, RS_TABLE),
    ],
)
def test_truth_table_vectorised(jit, name, kernel, factory, table):
    rows = list(table)
    bank = factory(len(rows))
    s = np.array([r[0] for r in rows], np.bool_)
    r = np.array([r[1] for r in rows], np.bool_)
    bank.q1[:] = [r[2] for r in rows]
    jit(kernel)(s, r, *bank)
    assert bank.q1.astype(int).tolist() == [table[row] for row in rows], name


def test_sr_latches_until_reset(jit):
    bank = sr_bank(1)
    seen = []
    for s, r in [(0, 0), (1, 0), (0, 0), (0, 0), (0, 1), (0, 0)]:
        jit(sr)(np.array([bool(s)]), np.array([bool(r)]), *bank)
        seen.append(int(bank.q1[0]))
    assert seen == [0, 1, 1, 1, 0, 0]
