"""The safe expression language of recipes and units: conditions and setpoints over tag
names, parameters and PackML states (docs/reference/expressions.md, ADR 0025).

A hand-written tokenizer and precedence-climbing parser build a small tree of node
objects; nothing is ever handed to Python's ``eval``, ``exec``, ``compile`` or ``ast``.
:func:`parse` finds syntax errors, :meth:`Expr.check` finds unknown names, type errors and
division by a constant zero against what the line offers, :meth:`Expr.evaluate` computes
the value over a lookup of ``(value, good)`` pairs with three-valued (Kleene) logic: a
value that is not good is *unknown* (``None``), and so is anything that depends on it.
Every error is an :class:`ExprError` located by ``offset``/``length`` in the text.
"""

from __future__ import annotations

import difflib
import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from types import MappingProxyType

from ..core import RecipeError
from .packml import State

__all__ = [
    "FUNCTIONS",
    "MAX_DEPTH",
    "MAX_LENGTH",
    "STATES",
    "Expr",
    "ExprError",
    "ExprType",
    "Lookup",
    "Value",
    "parse",
]

MAX_LENGTH = 4096
"""The longest expression text accepted, in characters."""

MAX_DEPTH = 64
"""The deepest nesting accepted (parentheses, calls, prefix and right-hand operands)."""

STATES: Mapping[str, int] = MappingProxyType({s.name: int(s) for s in State})
"""PackML state constants usable in expressions: upper-case name -> PackTags number."""

FUNCTIONS: Mapping[str, str] = MappingProxyType({
    "abs": "abs(x)",
    "clamp": "clamp(x, lo, hi)",
    "good": "good(name)",
    "max": "max(a, b, ...)",
    "min": "min(a, b, ...)",
})
"""The built-in functions, name -> signature."""

Value = float | bool | str | None
"""What an expression evaluates to; ``None`` is *unknown*."""

Lookup = Callable[[str], tuple[object, bool]]
"""``lookup(name) -> (value, good)``: the current value of a tag, parameter or builtin."""


class ExprType(Enum):
    """The static type of an expression or a name."""

    NUMBER = "number"
    BOOL = "bool"
    STRING = "string"
    STATE = "state"


class ExprError(RecipeError):
    """A located problem in an expression: ``offset`` (0-based) and ``length`` (>= 1) of
    the characters at fault in ``text``. ``str()`` is the message alone, so a loader can
    put it behind its own ``FILE:LINE:COL: key.path:`` prefix."""

    def __init__(self, message: str, offset: int, length: int = 1, *, text: str = "") -> None:
        super().__init__(message)
        self.offset = max(0, offset)
        self.length = max(1, length)
        self.text = text

    def excerpt(self) -> str:
        """The expression with a line of carets under the characters at fault."""
        return f"{self.text}\n{' ' * self.offset}{'^' * self.length}"


_BOOL_WORDS: Mapping[str, bool] = MappingProxyType({"true": True, "false": False})
_KEYWORDS = frozenset({"and", "or", "not", *_BOOL_WORDS})

# binding powers, loosest first (precedence climbing)
_OR, _AND, _NOT, _CMP, _ADD, _MUL, _NEG = 1, 2, 3, 4, 5, 6, 7
_INFIX: Mapping[str, int] = MappingProxyType({
    "or": _OR, "and": _AND,
    "==": _CMP, "!=": _CMP, "<": _CMP, "<=": _CMP, ">": _CMP, ">=": _CMP,
    "+": _ADD, "-": _ADD, "*": _MUL, "/": _MUL, "%": _MUL,
})
_ORDERING = frozenset({"<", "<=", ">", ">="})
_NUMERIC = frozenset({ExprType.NUMBER, ExprType.STATE})

_DIGITS = "0123456789"
_IDENT_START = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_"
_IDENT = _IDENT_START + _DIGITS
_SPACE = " \t\r\n\f\v"
_ESCAPES: Mapping[str, str] = MappingProxyType(
    {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t", "r": "\r"})
_TWO_CHAR = frozenset({"==", "!=", "<=", ">="})
_ONE_CHAR = frozenset("()+-*/%<>,")
_HINTS: Mapping[str, str] = MappingProxyType({
    "=": "write '==' to compare",
    "!": "write 'not' (or '!=' to compare)",
    "&": "write 'and'",
    "&&": "write 'and'",
    "|": "write 'or'",
    "||": "write 'or'",
})


# --- tokens ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "num" "str" "name" "op" "end"
    text: str
    start: int
    end: int
    value: float | str = 0.0

    def describe(self) -> str:
        if self.kind == "end":
            return "the end of the expression"
        if self.kind == "num":
            return f"number {self.text}"
        if self.kind == "str":
            return f"string {self.text}"
        if self.kind == "name" and self.text not in _KEYWORDS:
            return f"name {self.text!r}"
        return f"{self.text!r}"


def _error(text: str, message: str, start: int, end: int) -> ExprError:
    return ExprError(message, start, end - start, text=text)


def _run(text: str, i: int, chars: str) -> int:
    """The index after the run of ``chars`` starting at ``i``."""
    while i < len(text) and text[i] in chars:
        i += 1
    return i


def _number(text: str, i: int) -> _Token:
    n = len(text)
    j = _run(text, i, _DIGITS)
    if j < n and text[j] == "." and not (j + 1 < n and text[j + 1] in _IDENT_START):
        j = _run(text, j + 1, _DIGITS)
    if j < n and text[j] in "eE":
        k = j + 1
        if k < n and text[k] in "+-":
            k += 1
        j = _run(text, k, _DIGITS) if k < n and text[k] in _DIGITS else k
        malformed = j == k
    else:
        malformed = False
    if malformed or (j < n and text[j] in _IDENT + "."):
        end = _run(text, j, _IDENT + ".")
        raise _error(text, f"malformed number {text[i:end]!r}", i, end)
    value = float(text[i:j])
    if not math.isfinite(value):
        raise _error(text, f"number {text[i:j]} is out of range", i, j)
    return _Token("num", text[i:j], i, j, value)


def _name(text: str, i: int) -> _Token:
    j = _run(text, i, _IDENT)
    while j < len(text) and text[j] == ".":
        if j + 1 < len(text) and text[j + 1] in _IDENT_START:
            j = _run(text, j + 1, _IDENT)
            continue
        end = _run(text, j, _IDENT + ".")
        raise _error(text, f"malformed name {text[i:end]!r}: a dotted name is parts that "
                     "start with a letter or '_', joined by '.'", i, end)
    return _Token("name", text[i:j], i, j)


def _string(text: str, i: int) -> _Token:
    quote = text[i]
    out: list[str] = []
    j = i + 1
    while j < len(text):
        c = text[j]
        if c == quote:
            return _Token("str", text[i:j + 1], i, j + 1, "".join(out))
        if c == "\\" and j + 1 < len(text):
            escaped = _ESCAPES.get(text[j + 1])
            if escaped is None:
                raise _error(text, f"unknown escape '{text[j:j + 2]}' in a string (known: "
                             "\\\\ \\' \\\" \\n \\t \\r)", j, j + 2)
            out.append(escaped)
            j += 2
            continue
        out.append(c)
        j += 1
    raise _error(text, f"unclosed string: this {quote} is never closed", i, i + 1)


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in _SPACE:
            i += 1
            continue
        if c in _DIGITS or (c == "." and i + 1 < n and text[i + 1] in _DIGITS):
            token = _number(text, i)
        elif c in _IDENT_START:
            token = _name(text, i)
        elif c in "'\"":
            token = _string(text, i)
        elif text[i:i + 2] in _TWO_CHAR:
            token = _Token("op", text[i:i + 2], i, i + 2)
        elif c in _ONE_CHAR:
            token = _Token("op", c, i, i + 1)
        else:
            bad = text[i:i + 2] if text[i:i + 2] in _HINTS else c
            hint = _HINTS.get(bad)
            raise _error(text, f"unexpected {bad!r}: {hint}" if hint
                         else f"unexpected character {c!r}", i, i + len(bad))
        tokens.append(token)
        i = token.end
    tokens.append(_Token("end", "", n, n))
    return tokens


# --- values at run time ---------------------------------------------------------------


def _normal(value: object, good: bool) -> Value:
    """A looked-up value as the evaluator sees it: not good, non-finite or of no known
    kind is unknown (None); numbers are floats."""
    if not good or value is None:
        return None
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Real):
        number = float(value)
        return number if math.isfinite(number) else None
    return None


def _num(value: Value) -> float | None:
    if value is None or isinstance(value, str):
        return None
    return float(value)  # a bool counts 0/1, as a bool tag does in the process image


def _truth(value: Value) -> bool | None:
    if value is None or isinstance(value, str):
        return None
    if isinstance(value, bool):
        return value
    return value != 0.0  # a bool tag read from the image as 0.0/1.0


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _arith(op: str, a: float, b: float) -> float | None:
    if op == "+":
        return _finite(a + b)
    if op == "-":
        return _finite(a - b)
    if op == "*":
        return _finite(a * b)
    if b == 0.0:
        return None  # division or modulo by zero at run time: unknown, never an exception
    return _finite(a / b if op == "/" else a % b)


def _compare(op: str, a: Value, b: Value) -> bool | None:
    if a is None or b is None:
        return None
    if isinstance(a, str) or isinstance(b, str):
        if op in _ORDERING or not (isinstance(a, str) and isinstance(b, str)):
            return None
        return (a == b) == (op == "==")
    x, y = float(a), float(b)
    if op == "==":
        return x == y
    if op == "!=":
        return x != y
    if op == "<":
        return x < y
    if op == "<=":
        return x <= y
    if op == ">":
        return x > y
    return x >= y


def _no_lookup(name: str) -> tuple[object, bool]:
    raise KeyError(name)


# --- checking context -----------------------------------------------------------------


_A: Mapping[ExprType, str] = MappingProxyType({
    ExprType.NUMBER: "a number",
    ExprType.BOOL: "a condition (true/false)",
    ExprType.STRING: "a string",
    ExprType.STATE: "a PackML state",
})


@dataclass(frozen=True, slots=True)
class _Ctx:
    text: str
    env: Mapping[str, ExprType]

    def error(self, message: str, node: _Node) -> ExprError:
        return _error(self.text, message, node.start, node.end)

    def snippet(self, node: _Node, fallback: str = "x") -> str:
        part = self.text[node.start:node.end]
        return part if len(part) <= 40 and "\n" not in part else fallback

    def truth_error(self, op: str, node: _Node, found: ExprType) -> ExprError:
        """A non-bool where a truth value is needed, with the comparison to write."""
        message = f"{op} needs true/false, found {found.value}"
        if found is ExprType.NUMBER:
            message += f": write '{self.snippet(node)} != 0'"
        elif found is ExprType.STATE:
            message += f": compare it, as in '{self.snippet(node)} == EXECUTE'"
        return self.error(message, node)


def _fold(node: _Node) -> Value:
    """The constant value of ``node`` if it references no name, else None (not constant)."""
    if any(True for _ in node.names()):
        return None
    return node.compute(_no_lookup)


# --- nodes ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Node(ABC):
    """A node of the tree; ``start``/``end`` are its span in the text."""

    start: int
    end: int

    @abstractmethod
    def check(self, ctx: _Ctx) -> ExprType:
        """The node's type in ``ctx``; ExprError where it is wrong."""

    @abstractmethod
    def compute(self, lookup: Lookup) -> Value:
        """The node's value (None: unknown)."""

    def names(self) -> Iterator[str]:
        return iter(())


@dataclass(frozen=True, slots=True)
class _Const(_Node):
    value: float | bool | str
    type: ExprType

    def check(self, ctx: _Ctx) -> ExprType:
        return self.type

    def compute(self, lookup: Lookup) -> Value:
        return self.value


@dataclass(frozen=True, slots=True)
class _Name(_Node):
    name: str

    def check(self, ctx: _Ctx) -> ExprType:
        found = ctx.env.get(self.name)
        if found is None:
            raise ctx.error(f"unknown name {self.name!r}{_suggest(self.name, ctx.env)}", self)
        return found

    def compute(self, lookup: Lookup) -> Value:
        value, good = lookup(self.name)
        return _normal(value, good)

    def names(self) -> Iterator[str]:
        yield self.name


@dataclass(frozen=True, slots=True)
class _Neg(_Node):
    operand: _Node

    def check(self, ctx: _Ctx) -> ExprType:
        found = self.operand.check(ctx)
        if found is not ExprType.NUMBER:
            raise _error(ctx.text, f"'-' needs a number, found {found.value}",
                         self.start, self.start + 1)
        return ExprType.NUMBER

    def compute(self, lookup: Lookup) -> Value:
        value = _num(self.operand.compute(lookup))
        return None if value is None else -value

    def names(self) -> Iterator[str]:
        return self.operand.names()


@dataclass(frozen=True, slots=True)
class _Op:
    symbol: str
    start: int


@dataclass(frozen=True, slots=True)
class _Arith(_Node):
    """A left-associative run of operators of one level: ``a - b + c`` or ``a * b / c``."""

    operands: tuple[_Node, ...]
    ops: tuple[_Op, ...]

    def check(self, ctx: _Ctx) -> ExprType:
        types = [o.check(ctx) for o in self.operands]
        for i, op in enumerate(self.ops):
            left, right = types[i], types[i + 1]
            if left is not ExprType.NUMBER or right is not ExprType.NUMBER:
                raise _error(ctx.text, f"'{op.symbol}' needs two numbers, found {left.value} "
                             f"and {right.value}", op.start, op.start + 1)
        for op, divisor in zip(self.ops, self.operands[1:], strict=True):
            if op.symbol in "/%" and _fold(divisor) == 0.0:
                what = "division" if op.symbol == "/" else "modulo"
                literal = isinstance(divisor, _Const)
                raise ctx.error(f"{what} by zero" if literal else
                                f"{what} by zero: '{ctx.snippet(divisor, 'this')}' is always 0",
                                divisor)
        return ExprType.NUMBER

    def compute(self, lookup: Lookup) -> Value:
        acc = _num(self.operands[0].compute(lookup))
        for op, operand in zip(self.ops, self.operands[1:], strict=True):
            if acc is None:
                return None
            value = _num(operand.compute(lookup))
            if value is None:
                return None
            acc = _arith(op.symbol, acc, value)
        return acc

    def names(self) -> Iterator[str]:
        for o in self.operands:
            yield from o.names()


@dataclass(frozen=True, slots=True)
class _Compare(_Node):
    left: _Node
    op: _Op
    right: _Node

    def check(self, ctx: _Ctx) -> ExprType:
        left, right = self.left.check(ctx), self.right.check(ctx)
        ok = left in _NUMERIC and right in _NUMERIC
        if not ok and self.op.symbol not in _ORDERING:
            ok = left is right
        if not ok:
            symbol = self.op.symbol
            message = (f"'{symbol}' compares numbers or states, found {left.value} and "
                       f"{right.value}" if symbol in _ORDERING else
                       f"'{symbol}' cannot compare {left.value} with {right.value}")
            raise _error(ctx.text, message, self.op.start, self.op.start + len(symbol))
        return ExprType.BOOL

    def compute(self, lookup: Lookup) -> Value:
        return _compare(self.op.symbol, self.left.compute(lookup), self.right.compute(lookup))

    def names(self) -> Iterator[str]:
        yield from self.left.names()
        yield from self.right.names()


@dataclass(frozen=True, slots=True)
class _Logic(_Node):
    """``a and b and c`` or ``a or b or c``, with Kleene's three-valued logic."""

    op: str
    operands: tuple[_Node, ...]

    def check(self, ctx: _Ctx) -> ExprType:
        for operand in self.operands:
            found = operand.check(ctx)
            if found is not ExprType.BOOL:
                raise ctx.truth_error(f"'{self.op}'", operand, found)
        return ExprType.BOOL

    def compute(self, lookup: Lookup) -> Value:
        decisive = self.op == "or"  # true decides 'or', false decides 'and'
        unknown = False
        for operand in self.operands:
            value = _truth(operand.compute(lookup))
            if value is None:
                unknown = True
            elif value is decisive:
                return decisive
        return None if unknown else not decisive

    def names(self) -> Iterator[str]:
        for o in self.operands:
            yield from o.names()


@dataclass(frozen=True, slots=True)
class _Not(_Node):
    operand: _Node

    def check(self, ctx: _Ctx) -> ExprType:
        found = self.operand.check(ctx)
        if found is not ExprType.BOOL:
            raise ctx.truth_error("'not'", self.operand, found)
        return ExprType.BOOL

    def compute(self, lookup: Lookup) -> Value:
        value = _truth(self.operand.compute(lookup))
        return None if value is None else not value

    def names(self) -> Iterator[str]:
        return self.operand.names()


@dataclass(frozen=True, slots=True)
class _Call(_Node):
    """``abs``, ``min``, ``max`` or ``clamp`` over numbers."""

    function: str
    args: tuple[_Node, ...]

    def check(self, ctx: _Ctx) -> ExprType:
        for i, arg in enumerate(self.args, start=1):
            found = arg.check(ctx)
            if found is not ExprType.NUMBER:
                raise ctx.error(f"{self.function}() needs numbers, found {found.value} "
                                f"(argument {i})", arg)
        if self.function == "clamp":
            lo, hi = _fold(self.args[1]), _fold(self.args[2])
            if isinstance(lo, float) and isinstance(hi, float) and lo > hi:
                raise ctx.error(f"clamp(): the low limit {lo:g} is above the high limit "
                                f"{hi:g}", self)
        return ExprType.NUMBER

    def compute(self, lookup: Lookup) -> Value:
        values: list[float] = []
        for arg in self.args:
            value = _num(arg.compute(lookup))
            if value is None:
                return None
            values.append(value)
        if self.function == "abs":
            return abs(values[0])
        if self.function == "min":
            return min(values)
        if self.function == "max":
            return max(values)
        x, lo, hi = values
        return None if lo > hi else min(max(x, lo), hi)

    def names(self) -> Iterator[str]:
        for a in self.args:
            yield from a.names()


@dataclass(frozen=True, slots=True)
class _Good(_Node):
    """``good(name)``: whether the name's value is good; never unknown."""

    arg: _Name

    def check(self, ctx: _Ctx) -> ExprType:
        self.arg.check(ctx)
        return ExprType.BOOL

    def compute(self, lookup: Lookup) -> Value:
        return bool(lookup(self.arg.name)[1])

    def names(self) -> Iterator[str]:
        yield self.arg.name


def _suggest(name: str, env: Mapping[str, ExprType]) -> str:
    """`` (did you mean 'x'?)`` from the names, states and literals, or nothing."""
    choices = [*env, *STATES, *_BOOL_WORDS]
    folded = [c for c in choices if c.lower() == name.lower()]
    match = folded or difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


# --- parser ---------------------------------------------------------------------------


_ARITY: Mapping[str, tuple[int, int | None, str]] = MappingProxyType({
    "abs": (1, 1, "1 argument"),
    "min": (2, None, "at least 2 arguments"),
    "max": (2, None, "at least 2 arguments"),
    "clamp": (3, 3, "3 arguments (x, lo, hi)"),
    "good": (1, 1, "1 argument (a tag name)"),
})


class _Parser:
    """Precedence climbing over the token list; one instance per parse."""

    __slots__ = ("depth", "pos", "text", "tokens")

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.pos = 0
        self.depth = 0

    def peek(self) -> _Token:
        return self.tokens[self.pos]

    def take(self) -> _Token:
        token = self.tokens[self.pos]
        if token.kind != "end":
            self.pos += 1
        return token

    def fail(self, message: str, token: _Token) -> ExprError:
        return _error(self.text, message, token.start, max(token.end, token.start + 1))

    def parse(self) -> _Node:
        if self.peek().kind == "end":
            raise ExprError("empty expression", 0, 1, text=self.text)
        node = self.expr(0)
        token = self.peek()
        if token.kind != "end":
            if token.text == ")":
                raise self.fail("unmatched ')'", token)
            raise self.fail(f"expected an operator or the end, found {token.describe()}", token)
        return node

    def expr(self, min_bp: int) -> _Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(f"expression nested too deeply (more than {MAX_DEPTH} levels)",
                            self.peek())
        left = self.prefix(min_bp)
        while True:
            token = self.peek()
            bp = _INFIX.get(token.text) if token.kind in ("op", "name") else None
            if bp is None or bp < min_bp:
                break
            if bp == _CMP:
                left = self.comparison(left)
            elif bp in (_AND, _OR):
                left = self.logic(left, token.text, bp)
            else:
                left = self.arith(left, bp)
        self.depth -= 1
        return left

    def comparison(self, left: _Node) -> _Node:
        op = self.take()
        right = self.expr(_CMP + 1)
        node = _Compare(left.start, right.end, left, _Op(op.text, op.start), right)
        second = self.peek()
        if _INFIX.get(second.text) == _CMP and second.kind == "op":
            self.take()
            try:
                last = self.expr(_CMP + 1)
                third = self.text[last.start:last.end]
            except ExprError:
                third = "..."
            middle = self.text[right.start:right.end]
            raise self.fail(
                "comparisons cannot be chained: write "
                f"'{self.text[left.start:left.end]} {op.text} {middle} and {middle} "
                f"{second.text} {third}'", second)
        return node

    def logic(self, left: _Node, word: str, bp: int) -> _Node:
        operands = [left]
        while self.peek().kind == "name" and self.peek().text == word:
            self.take()
            operands.append(self.expr(bp + 1))
        return _Logic(left.start, operands[-1].end, word, tuple(operands))

    def arith(self, left: _Node, bp: int) -> _Node:
        operands = [left]
        ops: list[_Op] = []
        while self.peek().kind == "op" and _INFIX.get(self.peek().text) == bp:
            op = self.take()
            ops.append(_Op(op.text, op.start))
            operands.append(self.expr(bp + 1))
        return _Arith(left.start, operands[-1].end, tuple(operands), tuple(ops))

    def prefix(self, min_bp: int) -> _Node:
        token = self.take()
        if token.kind == "op" and token.text == "-":
            operand = self.expr(_NEG)
            return _Neg(token.start, operand.end, operand)
        if token.kind == "name" and token.text == "not":
            if min_bp > _NOT:
                before = self.tokens[self.pos - 2].text
                raise self.fail(f"'not' binds looser than '{before}': put it in parentheses, "
                                "as in '(not x)'", token)
            operand = self.expr(_NOT)
            return _Not(token.start, operand.end, operand)
        return self.primary(token)

    def primary(self, token: _Token) -> _Node:
        if token.kind == "num":
            return _Const(token.start, token.end, float(token.value), ExprType.NUMBER)
        if token.kind == "str":
            return _Const(token.start, token.end, str(token.value), ExprType.STRING)
        if token.kind == "name" and token.text not in _KEYWORDS - _BOOL_WORDS.keys():
            if token.text in _BOOL_WORDS:
                return _Const(token.start, token.end, _BOOL_WORDS[token.text], ExprType.BOOL)
            if token.text in STATES:
                return _Const(token.start, token.end, float(STATES[token.text]),
                              ExprType.STATE)
            if self.peek().text == "(" and self.peek().kind == "op":
                return self.call(token)
            return _Name(token.start, token.end, token.text)
        if token.text == "(" and token.kind == "op":
            inner = self.expr(0)
            close = self.take()
            if close.text == ")" and close.kind == "op":
                return replace(inner, start=token.start, end=close.end)
            if close.kind == "end":
                raise self.fail("'(' is never closed", token)
            raise self.fail(f"expected an operator or ')', found {close.describe()}", close)
        if token.kind == "end":
            before = self.tokens[self.pos - 1]
            raise self.fail(f"expected a value after {before.describe()}", before)
        message = f"expected a value, found {token.describe()}"
        if token.text == "*" and self.pos >= 2 and self.tokens[self.pos - 2].text == "*":
            message += " (there is no power operator)"
        raise self.fail(message, token)

    def call(self, name: _Token) -> _Node:
        if name.text not in FUNCTIONS:
            hint = difflib.get_close_matches(name.text, list(FUNCTIONS), n=1)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise self.fail(f"unknown function {name.text!r}{suggestion}; functions: "
                            f"{', '.join(FUNCTIONS)}", name)
        opening = self.take()
        args: list[_Node] = []
        close = self.peek()
        if close.text == ")" and close.kind == "op":
            self.take()
        else:
            while True:
                args.append(self.expr(0))
                close = self.take()
                if close.kind == "op" and close.text == ")":
                    break
                if close.kind == "op" and close.text == ",":
                    continue
                if close.kind == "end":
                    raise self.fail("'(' is never closed", opening)
                raise self.fail(f"expected ',' or ')', found {close.describe()}", close)
        low, high, wanted = _ARITY[name.text]
        if len(args) < low or (high is not None and len(args) > high):
            raise _error(self.text, f"{name.text}() takes {wanted}, found {len(args)}",
                         name.start, close.end)
        if name.text == "good":
            arg = args[0]
            if not isinstance(arg, _Name):
                raise _error(self.text, "good() takes a tag name, as in 'good(zone1.pv)'",
                             arg.start, arg.end)
            return _Good(name.start, close.end, arg)
        return _Call(name.start, close.end, name.text, tuple(args))


# --- the public face ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Expr:
    """A parsed expression: its text, the names it references, and what it can do.

    Equal and hashable by its text. Build one with :func:`parse`.
    """

    text: str
    names: frozenset[str]
    _root: _Node = field(repr=False, compare=False)

    def check(self, env: Mapping[str, ExprType], *, want: ExprType | None = None) -> ExprType:
        """The expression's type over ``env`` (name -> type); ExprError (located) for an
        unknown name, a type mismatch, division by a constant zero, or a type other than
        ``want`` (a state fits where a number is wanted and the other way round)."""
        ctx = _Ctx(self.text, env)
        found = self._root.check(ctx)
        if want is None or found is want or {found, want} == _NUMERIC:
            return found
        message = f"expected {_A[want]}, found {_A[found]}"
        if want is ExprType.BOOL and found is ExprType.NUMBER:
            message += f": write '{ctx.snippet(self._root)} != 0'"
        elif want is ExprType.BOOL and found is ExprType.STATE:
            message += f": compare it, as in '{ctx.snippet(self._root)} == EXECUTE'"
        raise ctx.error(message, self._root)

    def evaluate(self, lookup: Lookup) -> Value:
        """The value now; ``lookup(name)`` gives ``(value, good)``. ``None`` is unknown: a
        name whose value is not good, division by zero, a non-finite result."""
        return self._root.compute(lookup)

    def holds(self, lookup: Lookup) -> bool:
        """Whether the expression, as a condition, holds: it evaluates to True (unknown
        does not hold)."""
        return self._root.compute(lookup) is True

    def constant(self) -> Value:
        """The value if the expression references no name, else None."""
        return None if self.names else self._root.compute(_no_lookup)

    def __str__(self) -> str:
        return self.text


def parse(text: str) -> Expr:
    """Parse ``text`` into an :class:`Expr`; ExprError (located) on a syntax error."""
    if len(text) > MAX_LENGTH:
        raise ExprError(f"expression too long ({len(text)} characters, at most {MAX_LENGTH})",
                        MAX_LENGTH, len(text) - MAX_LENGTH, text=text)
    root = _Parser(text).parse()
    return Expr(text, frozenset(root.names()), root)
