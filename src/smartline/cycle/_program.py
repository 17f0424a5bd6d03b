"""Programs: user logic compiled with numba and bound to tags by name.

A program is a function ``fn(now_ns, inputs, outputs, state) -> None``:

* ``now_ns`` — the cycle's scheduled deadline (int64 ns, the engine's clock);
* ``inputs`` — float64 array, one element per input tag element, in declared order
  (an array tag of n elements takes n places); a BAD input is NaN;
* ``outputs`` — float64 array, same rule; it keeps its values between cycles and starts
  as NaN, and a NaN output is never written;
* ``state`` — whatever the program's ``init()`` returned (a NamedTuple of numpy arrays and
  ``smartline.logic`` banks); persistent across cycles, fresh at every start.

Declare it with :func:`program`; it is compiled with ``@njit(cache=True, nogil=True)``
before the first cycle, so a restart loads it from numba's cache, and a typing error is
reported as ``FILE:LINE: message`` in the user's file.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import logging
import re
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar, overload

import numpy as np
from numpy.typing import NDArray

from ..core import SmartlineError

__all__ = ["Program", "ProgramError", "load_program", "program"]

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_AT = re.compile(r" at (?P<file>.+?) \((?P<line>\d+)\)")
_FILE = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+)')


class ProgramError(SmartlineError):
    """A program failed to load, bind or compile; ``str()`` is ``FILE:LINE: message``."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 detail: str = "", task: str | None = None) -> None:
        super().__init__(message)
        self.file = file
        self.line = line
        self.detail = detail
        self.task = task

    def __str__(self) -> str:
        loc = ""
        if self.file is not None:
            loc = f"{self.file}:{self.line}: " if self.line is not None else f"{self.file}: "
        where = f"task {self.task!r}: " if self.task is not None else ""
        return f"{loc}{where}{self.message}"


def _is_dispatcher(obj: object) -> bool:
    from numba.core.dispatcher import Dispatcher

    return isinstance(obj, Dispatcher)


def _ensure_cached(dispatcher: Any) -> None:
    """Turn on numba's on-disk cache for a program compiled without ``cache=True``."""
    from numba.core.caching import NullCache

    if isinstance(getattr(dispatcher, "_cache", None), NullCache):
        try:
            dispatcher.enable_caching()
        except RuntimeError as exc:  # e.g. defined in a REPL: no file to cache beside
            log.debug("no numba cache for %s: %s", dispatcher.py_func.__qualname__, exc)


def _njit(fn: Callable[..., Any]) -> Any:
    from numba import njit

    return njit(cache=True, nogil=True)(fn)


class Program:
    """A compiled program with its declared tag names and state factory.

    Call it like the kernel (``prog(now_ns, inputs, outputs, state)``); ``py_func`` is the
    plain Python function for tests that want to step it without numba.
    """

    def __init__(self, fn: Callable[..., Any], inputs: Sequence[str] = (),
                 outputs: Sequence[str] = (), *, init: Callable[[], object] | None = None,
                 jit: bool = True, name: str | None = None) -> None:
        for label, names in (("inputs", inputs), ("outputs", outputs)):
            if isinstance(names, str):
                raise TypeError(f"{label} must be a sequence of tag names, not a string")
            dup = sorted({n for n in names if list(names).count(n) > 1})
            if dup:
                raise ValueError(f"{label} name a tag twice: {', '.join(dup)}")
        if _is_dispatcher(fn):
            kernel: Any = fn
            _ensure_cached(kernel)
            if not kernel.targetoptions.get("nogil"):
                log.warning("program %s is compiled without nogil=True: it holds the GIL, so "
                            "I/O and the watchdog wait while it runs",
                            kernel.py_func.__qualname__)
        elif jit:
            kernel = _njit(fn)
        else:
            kernel = fn
        self.kernel: Any = kernel
        self.py_func: Callable[..., Any] = getattr(kernel, "py_func", kernel)
        self.inputs: tuple[str, ...] = tuple(inputs)
        self.outputs: tuple[str, ...] = tuple(outputs)
        self.init = init
        self.name: str = name or self.py_func.__qualname__
        self.file: str | None
        self.line: int | None
        try:
            self.file = inspect.getsourcefile(self.py_func)
            self.line = inspect.getsourcelines(self.py_func)[1]
        except (OSError, TypeError):
            self.file, self.line = None, None

    def __repr__(self) -> str:
        return f"<Program {self.name} inputs={list(self.inputs)} outputs={list(self.outputs)}>"

    def __call__(self, now_ns: int, inputs: NDArray[np.float64], outputs: NDArray[np.float64],
                 state: object) -> None:
        self.kernel(now_ns, inputs, outputs, state)

    @property
    def jitted(self) -> bool:
        return _is_dispatcher(self.kernel)

    def bind(self, inputs: Sequence[str], outputs: Sequence[str]) -> Program:
        """The same program with tag names given by the task (for undeclared programs)."""
        p = Program.__new__(Program)
        p.__dict__.update(self.__dict__)
        p.inputs, p.outputs = tuple(inputs), tuple(outputs)
        return p

    def new_state(self) -> object:
        """A fresh state from ``init()`` (an empty tuple when the program has none)."""
        if self.init is None:
            return ()
        try:
            return self.init()
        except Exception as exc:
            file, line = _user_frame(exc, self.file)
            raise ProgramError(f"{self.name}: init() failed: {exc!r}", file=file,
                               line=line) from exc

    def compile(self, n_inputs: int, n_outputs: int, state: object) -> bool:
        """Compile (or load from numba's cache) for these array sizes' types and this state.

        Returns True on a cache hit or an already-compiled signature. A numba typing or
        lowering error becomes a :class:`ProgramError` located in the user's file.
        """
        if not self.jitted:
            return True
        import numba
        from numba.core.errors import NumbaError

        typeof: Callable[[object], Any] = numba.typeof
        types: Any = numba.types

        try:
            sig = (types.int64, typeof(np.zeros(max(n_inputs, 1))),
                   typeof(np.zeros(max(n_outputs, 1))), typeof(state))
        except ValueError as exc:
            raise ProgramError(f"{self.name}: numba cannot type the state returned by init(): "
                               f"{exc}", file=self.file, line=self.line) from exc
        if sig in self.kernel.overloads:
            return True
        hits_before = sum(self.kernel.stats.cache_hits.values())
        try:
            self.kernel.compile(sig)
        except NumbaError as exc:
            raise _program_error(exc, self) from None
        return bool(sum(self.kernel.stats.cache_hits.values()) > hits_before)

    @property
    def cache_hits(self) -> int:
        """Signatures loaded from numba's on-disk cache in this process."""
        return sum(self.kernel.stats.cache_hits.values()) if self.jitted else 0

    @property
    def cache_misses(self) -> int:
        """Signatures compiled in this process (each one a JIT compile)."""
        return sum(self.kernel.stats.cache_misses.values()) if self.jitted else 0


@overload
def program(fn: F, /) -> Program: ...


@overload
def program(*, inputs: Sequence[str] = (), outputs: Sequence[str] = (),
            init: Callable[[], object] | None = None, jit: bool = True
            ) -> Callable[[Callable[..., Any]], Program]: ...


def program(fn: Callable[..., Any] | None = None, /, *, inputs: Sequence[str] = (),
            outputs: Sequence[str] = (), init: Callable[[], object] | None = None,
            jit: bool = True) -> Program | Callable[[Callable[..., Any]], Program]:
    """Declare a program: its input and output tag names, in the order of its arrays.

    ::

        @program(inputs=["oven_temp", "oven_sp"], outputs=["heater"], init=make_state)
        def oven(now_ns, inputs, outputs, state):
            ...

    The function is wrapped in ``@njit(cache=True, nogil=True)`` unless it already is a
    numba function; ``jit=False`` keeps it plain Python (tests, prototypes).
    """
    def wrap(f: Callable[..., Any]) -> Program:
        return Program(f, inputs, outputs, init=init, jit=jit)

    return wrap(fn) if fn is not None else wrap


def load_program(ref: str, base_dir: str | Path | None = None) -> Program:
    """Resolve ``"pkg.module:function"`` or ``"file.py:function"`` (relative to ``base_dir``).

    An undecorated function becomes a program with no declared names (the task's config
    names its inputs and outputs); a module-level ``<function>_init`` is its state factory.
    """
    target, sep, attr = ref.rpartition(":")
    if not sep or not target or not attr:
        raise ProgramError(f"program {ref!r}: expected 'pkg.module:function' or "
                           "'file.py:function'")
    if target.endswith(".py") or "/" in target or "\\" in target:
        path = Path(target)
        if not path.is_absolute() and base_dir is not None:
            path = Path(base_dir) / path
        module = _import_file(path.resolve())
    else:
        module = _import_module(target)
    try:
        obj = getattr(module, attr)
    except AttributeError:
        raise ProgramError(f"{module.__name__} has no function {attr!r}",
                           file=getattr(module, "__file__", None)) from None
    if isinstance(obj, Program):
        return obj
    if not (inspect.isfunction(obj) or _is_dispatcher(obj)):
        kind = "class" if isinstance(obj, type) else type(obj).__name__
        raise ProgramError(f"{attr!r} is a {kind}, not a function",
                           file=getattr(module, "__file__", None))
    init = getattr(module, f"{attr}_init", None)
    return Program(obj, init=init if callable(init) else None)


def _import_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            raise ProgramError(f"cannot import program module {name!r}: not found") from exc
        raise _import_error(exc, None) from exc
    except Exception as exc:
        raise _import_error(exc, None) from exc


def _import_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise ProgramError(f"program file {str(path)!r} does not exist")
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
    stem = re.sub(r"\W", "_", path.stem)
    name = f"smartline_program_{stem}_{digest}"
    existing = sys.modules.get(name)
    if existing is not None:
        return existing
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ProgramError(f"cannot load {str(path)!r} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # numba's cache unpickles the state's types by module name
    folder = str(path.parent)
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)  # let the program import its sibling modules
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:
        del sys.modules[name]
        if isinstance(exc, Exception):
            raise _import_error(exc, str(path)) from exc
        raise
    finally:
        if added:
            sys.path.remove(folder)
    return module


def _import_error(exc: Exception, file: str | None) -> ProgramError:
    if isinstance(exc, SyntaxError):
        return ProgramError(f"syntax error: {exc.msg}", file=exc.filename or file,
                            line=exc.lineno)
    f, line = _user_frame(exc, file)
    return ProgramError(f"importing the program failed: {exc!r}", file=f or file, line=line)


def _user_frame(exc: BaseException, file: str | None) -> tuple[str | None, int | None]:
    """The deepest traceback frame in ``file`` (or the deepest frame at all)."""
    frames = traceback.extract_tb(exc.__traceback__)
    for fr in reversed(frames):
        if file is None or Path(fr.filename) == Path(file):
            return fr.filename, fr.lineno
    return None, None


def _program_error(exc: Exception, prog: Program) -> ProgramError:
    """Turn a numba error into ``FILE:LINE: message`` pointing at the user's code."""
    text = _ANSI.sub("", str(exc))
    lines = [ln.rstrip() for ln in text.splitlines()]
    body = [ln for ln in lines if ln.strip() and not ln.startswith("Failed in ")]
    summary = body[0].strip() if body else type(exc).__name__
    user_file = prog.file
    file: str | None = None
    line: int | None = None
    candidates: list[tuple[str, int]] = []
    loc = getattr(exc, "loc", None)
    if loc is not None and getattr(loc, "filename", None):
        candidates.append((str(loc.filename), int(loc.line)))
    candidates += [(m["file"], int(m["line"])) for m in _AT.finditer(text)]
    candidates += [(m["file"], int(m["line"])) for m in _FILE.finditer(text)]
    if user_file is not None:
        for f, ln in candidates:
            if _same_file(f, user_file):
                file, line = user_file, ln
                break
    if file is None and candidates:
        file, line = candidates[0]
    if file is None:
        file, line = user_file, prog.line
    source = _source_line(file, line)
    message = summary if not source else f"{summary}\n    {source.strip()}"
    return ProgramError(f"{prog.name}: {message}", file=file, line=line, detail=text)


def _same_file(a: str, b: str) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve() or (
            not Path(a).is_absolute() and Path(b).name == Path(a).name)
    except OSError:
        return False


def _source_line(file: str | None, line: int | None) -> str:
    if file is None or line is None:
        return ""
    try:
        return Path(file).read_text(encoding="utf-8").splitlines()[line - 1]
    except (OSError, IndexError, UnicodeDecodeError):
        return ""
