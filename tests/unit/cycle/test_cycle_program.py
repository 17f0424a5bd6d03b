"""Programs: declaration, loading, binding, compile errors as FILE:LINE, numba's cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from smartline.cycle import Program, ProgramError, load_program, program
from smartline.testing.budget import assert_no_allocation

GOOD = '''\
from typing import NamedTuple

import numpy as np

from smartline.cycle import program
from smartline.logic import TonBank, ton_bank, ton_step


class State(NamedTuple):
    ton: TonBank
    pt_ns: np.ndarray
    run: np.ndarray


def init():
    return State(ton_bank(1), np.full(1, 50_000_000, np.int64), np.zeros(1, np.bool_))


@program(inputs=["start"], outputs=["motor"], init=init)
def starter(now_ns, inputs, outputs, state):
    state.run[0] = inputs[0] > 0.5
    ton_step(state.ton, state.run, state.pt_ns, now_ns)
    outputs[0] = 1.0 if state.ton.q[0] else 0.0


def plain(now_ns, inputs, outputs, state):
    outputs[0] = inputs[0] + state[0]


def plain_init():
    return (1.5,)
'''

BAD = '''\
from smartline.cycle import program


@program(inputs=["a"], outputs=["b"])
def broken(now_ns, inputs, outputs, state):
    x = inputs[0]
    outputs[0] = x.nope
'''


@pytest.fixture
def prog_dir(tmp_path: Path) -> Path:
    (tmp_path / "good.py").write_text(GOOD, encoding="utf-8")
    (tmp_path / "bad.py").write_text(BAD, encoding="utf-8")
    (tmp_path / "syntax.py").write_text("def f(:\n    pass\n", encoding="utf-8")
    (tmp_path / "raises.py").write_text("x = 1\nraise RuntimeError('at import')\n",
                                        encoding="utf-8")
    return tmp_path


def test_program_from_file_runs_with_its_state(prog_dir: Path) -> None:
    p = load_program("good.py:starter", prog_dir)
    assert p.inputs == ("start",) and p.outputs == ("motor",)
    assert p.file == str(prog_dir / "good.py") and p.line == 19
    st = p.new_state()
    p.compile(1, 1, st)
    out = np.full(1, np.nan)
    p(0, np.array([1.0]), out, st)
    assert out[0] == 0.0
    p(60_000_000, np.array([1.0]), out, st)
    assert out[0] == 1.0
    p.py_func(70_000_000, np.array([0.0]), out, st)  # testable without numba
    assert out[0] == 0.0
    assert_no_allocation(p.kernel, 80_000_000, np.array([1.0]), out, st)


def test_undeclared_function_with_companion_init(prog_dir: Path) -> None:
    p = load_program(f"{prog_dir / 'good.py'}:plain")
    assert p.inputs == () and p.init is not None
    b = p.bind(["x"], ["y"])
    assert b.inputs == ("x",) and b.kernel is p.kernel
    out = np.zeros(1)
    b(0, np.array([1.0]), out, b.new_state())
    assert out[0] == 2.5


def test_typing_error_points_at_the_users_file_and_line(prog_dir: Path) -> None:
    p = load_program("bad.py:broken", prog_dir)
    with pytest.raises(ProgramError) as ei:
        p.compile(1, 1, ())
    err = ei.value
    first = str(err).splitlines()[0]
    assert first.startswith(f"{prog_dir / 'bad.py'}:7: broken: ")
    assert "nope" in first
    assert "outputs[0] = x.nope" in str(err)
    assert err.file == str(prog_dir / "bad.py") and err.line == 7
    assert "Traceback" not in str(err) and "\x1b[" not in str(err)
    assert "nopython" in err.detail  # numba's full text is kept for -v


@pytest.mark.parametrize(("ref", "match", "line"), [
    ("syntax.py:f", r"syntax\.py:1: syntax error", 1),
    ("raises.py:f", r"raises\.py:2: importing the program failed: RuntimeError", 2),
    ("missing.py:f", "does not exist", None),
    ("good.py:nothere", "has no function 'nothere'", None),
    ("good.py:State", "'State' is a class, not a function", None),
    ("no.such.module:f", "cannot import program module 'no.such.module'", None),
    ("nocolon", "expected 'pkg.module:function'", None),
])
def test_load_errors(prog_dir: Path, ref: str, match: str, line: int | None) -> None:
    with pytest.raises(ProgramError, match=match) as ei:
        load_program(ref, prog_dir)
    assert ei.value.line == line


def test_state_numba_cannot_type(prog_dir: Path) -> None:
    @program(outputs=["y"], init=lambda: {"a": object()})
    def p(now_ns, inputs, outputs, state):  # type: ignore[no-untyped-def]
        pass

    with pytest.raises(ProgramError, match="cannot type the state"):
        p.compile(0, 1, p.new_state())


def test_init_failure_is_a_program_error() -> None:
    def init() -> object:
        raise ValueError("no")

    p = Program(lambda *a: None, init=init, jit=False)
    with pytest.raises(ProgramError, match=r"init\(\) failed: ValueError"):
        p.new_state()


def test_names_are_checked() -> None:
    with pytest.raises(TypeError):
        Program(lambda *a: None, inputs="ab")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="name a tag twice: a"):
        Program(lambda *a: None, inputs=["a", "a"])


def test_user_dispatcher_without_cache_gets_one(tmp_path: Path) -> None:
    (tmp_path / "own.py").write_text(textwrap.dedent('''\
        from numba import njit

        @njit
        def own(now_ns, inputs, outputs, state):
            outputs[0] = 1.0
        '''), encoding="utf-8")
    p = load_program("own.py:own", tmp_path)
    from numba.core.caching import NullCache

    assert not isinstance(p.kernel._cache, NullCache)


CACHE_SCRIPT = '''
import json, sys, time
t = time.perf_counter()
from smartline.cycle import load_program
p = load_program(sys.argv[1], sys.argv[2])
st = p.new_state()
hit = p.compile(1, 1, st)
print(json.dumps({"hit": hit, "hits": p.cache_hits, "misses": p.cache_misses,
                  "s": time.perf_counter() - t}))
'''


def test_a_second_process_loads_the_program_from_the_cache(prog_dir: Path) -> None:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(prog_dir / "numba-cache")}

    def run() -> dict[str, object]:
        out = subprocess.run([sys.executable, "-c", CACHE_SCRIPT, "good.py:starter",
                              str(prog_dir)], env=env, capture_output=True, text=True,
                             timeout=120, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]

    first, second = run(), run()
    assert first["misses"] == 1 and first["hits"] == 0 and first["hit"] is False
    assert second["misses"] == 0 and second["hits"] == 1 and second["hit"] is True
