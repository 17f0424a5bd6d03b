"""The safe expression language: syntax, precedence, types, located errors, three-valued
evaluation, limits, and property tests against an independent reference."""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smartline import RecipeError
from smartline.recipes import expr as expr_module
from smartline.recipes.expr import (
    FUNCTIONS,
    MAX_DEPTH,
    MAX_LENGTH,
    STATES,
    Expr,
    ExprError,
    ExprType,
    parse,
)
from smartline.recipes.packml import State

N, B, S, ST = ExprType.NUMBER, ExprType.BOOL, ExprType.STRING, ExprType.STATE
ENV: Mapping[str, ExprType] = {
    "zone1.pv": N, "zone1.sp": N, "soak_temp": N, "count": N, "elapsed_s": N,
    "filler.state": ST, "filler.running": B, "filler.fault": B, "code": S,
}
REFERENCE = Path(__file__).parents[3] / "docs" / "reference" / "expressions.md"


def lookup_of(values: Mapping[str, object], bad: frozenset[str] = frozenset()
              ) -> Callable[[str], tuple[object, bool]]:
    """A lookup over ``values``; names in ``bad`` are not good."""
    def lookup(name: str) -> tuple[object, bool]:
        return values[name], name not in bad
    return lookup


def value(text: str, **values: object) -> object:
    return parse(text).evaluate(lookup_of(values))


def error_of(text: str, env: Mapping[str, ExprType] | None = None,
             want: ExprType | None = None) -> ExprError:
    with pytest.raises(ExprError) as caught:
        parse(text).check(ENV if env is None else env, want=want)
    return caught.value


# --- operators and precedence ---------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("12", 12.0), ("1.5", 1.5), ("2e3", 2000.0), ("1E-2", 0.01), (".5", 0.5), ("1.", 1.0),
    ("2.5e+1", 25.0), ("true", True), ("false", False), ("'a'", "a"), ('"b"', "b"),
    (r"'it\'s'", "it's"), (r'"a\"b"', 'a"b'), (r"'a\\b'", "a\\b"), (r"'\n\t\r'", "\n\t\r"),
    ("1 + 2", 3.0), ("5 - 7", -2.0), ("3 * 4", 12.0), ("7 / 2", 3.5), ("7 % 3", 1.0),
    ("-7 % 3", 2.0), ("7 % -3", -2.0), ("-3", -3.0), ("- -3", 3.0), ("2 - -3", 5.0),
    ("1 + 2 * 3", 7.0), ("(1 + 2) * 3", 9.0), ("10 - 4 - 3", 3.0), ("10 - (4 - 3)", 9.0),
    ("12 / 3 / 2", 2.0), ("12 / (3 / 2)", 8.0), ("2 * 7 % 4", 2.0), ("2 * (7 % 4)", 6.0),
    ("-2 * 3", -6.0), ("-(2 + 3) * 2", -10.0), ("1 + 2 < 4", True), ("2 * 3 == 6", True),
    ("1 == 1", True), ("1 == 2", False), ("1 != 2", True), ("1 != 1", False),
    ("1 < 2", True), ("2 < 1", False), ("1 <= 1", True), ("2 <= 1", False),
    ("2 > 1", True), ("1 > 1", False), ("1 >= 1", True), ("0 >= 1", False),
    ("'a' == 'a'", True), ("'a' != \"a\"", False), ("true == true", True),
    ("true != false", True), ("EXECUTE == 6", True), ("IDLE < EXECUTE", True),
    ("not true", False), ("not false", True), ("not not true", True),
    ("true and false", False), ("true and true", True), ("false or true", True),
    ("false or false", False), ("true or false and false", True),
    ("(true or false) and false", False), ("not true or true", True),
    ("not (true or true)", False), ("not 1 == 2", True), ("not 1 + 1 == 2", False),
    ("1 < 2 and 2 < 3", True), ("1 < 2 and not 3 < 2", True), ("true and (not false)", True),
    ("abs(-3)", 3.0), ("-abs(-3)", -3.0), ("abs(2 - 5) * 2", 6.0),
])
def test_constant_values(text: str, expected: object) -> None:
    expr = parse(text)
    assert expr.constant() == expected
    assert type(expr.constant()) is type(expected)
    assert expr.names == frozenset()


def test_state_constants_are_the_packml_numbers() -> None:
    assert dict(STATES) == {s.name: int(s) for s in State}
    assert parse("EXECUTE").check({}) is ST
    assert parse("COMPLETE").constant() == 17.0
    assert value("filler.state == EXECUTE", **{"filler.state": State.EXECUTE}) is True
    assert value("filler.state == HELD", **{"filler.state": 6}) is False


def test_names_and_dotted_names() -> None:
    expr = parse("abs(zone1.pv - soak_temp) <= 2 and good(scanner.gtin) and not _x1.y_2.z3")
    assert expr.names == {"zone1.pv", "soak_temp", "scanner.gtin", "_x1.y_2.z3"}
    assert parse("max(a, b) > EXECUTE or true").names == {"a", "b"}


def test_whitespace_anywhere_between_tokens() -> None:
    assert parse(" \t1\n+\r\n2 ").constant() == 3.0
    assert parse("min( 1 ,2 )").constant() == 1.0


# --- functions ------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("abs(-2.5)", 2.5), ("abs(2.5)", 2.5), ("min(3, 1)", 1.0), ("min(3, 1, 2, -4)", -4.0),
    ("max(3, 1)", 3.0), ("max(3, 1, 7, 2)", 7.0), ("clamp(5, 0, 10)", 5.0),
    ("clamp(-5, 0, 10)", 0.0), ("clamp(50, 0, 10)", 10.0), ("clamp(3, 3, 3)", 3.0),
])
def test_functions(text: str, expected: float) -> None:
    assert parse(text).constant() == expected


def test_good_is_quality_and_never_unknown() -> None:
    expr = parse("good(zone1.pv)")
    assert expr.check(ENV) is B
    assert expr.evaluate(lookup_of({"zone1.pv": 1.0})) is True
    assert expr.evaluate(lookup_of({"zone1.pv": 1.0}, frozenset({"zone1.pv"}))) is False
    assert parse("not good(zone1.pv)").evaluate(
        lookup_of({"zone1.pv": None}, frozenset({"zone1.pv"}))) is True


def test_clamp_with_crossed_limits_at_run_time_is_unknown() -> None:
    assert value("clamp(x, lo, hi)", x=5, lo=10, hi=0) is None


def test_functions_are_documented() -> None:
    text = REFERENCE.read_text(encoding="utf-8")
    for signature in FUNCTIONS.values():
        assert f"`{signature}`" in text


@pytest.mark.parametrize(("text", "message"), [
    ("abs()", "abs() takes 1 argument, found 0"),
    ("abs(1, 2)", "abs() takes 1 argument, found 2"),
    ("min()", "min() takes at least 2 arguments, found 0"),
    ("min(1)", "min() takes at least 2 arguments, found 1"),
    ("max(1)", "max() takes at least 2 arguments, found 1"),
    ("clamp(1, 2)", "clamp() takes 3 arguments (x, lo, hi), found 2"),
    ("clamp(1, 2, 3, 4)", "clamp() takes 3 arguments (x, lo, hi), found 4"),
    ("good()", "good() takes 1 argument (a tag name), found 0"),
    ("good(a, b)", "good() takes 1 argument (a tag name), found 2"),
])
def test_argument_counts(text: str, message: str) -> None:
    with pytest.raises(ExprError) as caught:
        parse("1 + " + text)
    assert caught.value.message == message
    assert (caught.value.offset, caught.value.length) == (4, len(text))  # the whole call


# --- located errors -------------------------------------------------------------------

SYNTAX_ERRORS = [
    # text, offset, length, message (a fragment)
    ("", 0, 1, "empty expression"),
    ("  \t ", 0, 1, "empty expression"),
    ("a # b", 2, 1, "unexpected character '#'"),
    ("a $", 2, 1, "unexpected character '$'"),
    ("x = 1", 2, 1, "unexpected '=': write '==' to compare"),
    ("a && b", 2, 2, "unexpected '&&': write 'and'"),
    ("a & b", 2, 1, "unexpected '&': write 'and'"),
    ("a || b", 2, 2, "unexpected '||': write 'or'"),
    ("!a", 0, 1, "unexpected '!': write 'not'"),
    ("a == 'abc", 5, 1, "unclosed string: this ' is never closed"),
    ('"abc\\"', 0, 1, 'unclosed string: this " is never closed'),
    (r"code == 'a\qb'", 10, 2, r"unknown escape '\q' in a string"),
    ("(1 + 2", 0, 1, "'(' is never closed"),
    ("2 * ((1 + 2)", 4, 1, "'(' is never closed"),
    ("max(1, 2", 3, 1, "'(' is never closed"),
    ("1 + 2)", 5, 1, "unmatched ')'"),
    ("1 2", 2, 1, "expected an operator or the end, found number 2"),
    ("a b", 2, 1, "expected an operator or the end, found name 'b'"),
    ("(1 2)", 3, 1, "expected an operator or ')', found number 2"),
    ("min(1 2)", 6, 1, "expected ',' or ')', found number 2"),
    ("1 +", 2, 1, "expected a value after '+'"),
    ("not", 0, 3, "expected a value after 'not'"),
    ("1 + * 2", 4, 1, "expected a value, found '*'"),
    ("2 ** 3", 3, 1, "(there is no power operator)"),
    ("()", 1, 1, "expected a value, found ')'"),
    ("min(1,)", 6, 1, "expected a value, found ')'"),
    ("a and or b", 6, 2, "expected a value, found 'or'"),
    ("1e", 0, 2, "malformed number '1e'"),
    ("x + 1e+", 4, 3, "malformed number '1e+'"),
    ("12abc", 0, 5, "malformed number '12abc'"),
    ("1.2.3 > 0", 0, 5, "malformed number '1.2.3'"),
    ("1e999", 0, 5, "number 1e999 is out of range"),
    ("zone1. > 0", 0, 6, "malformed name 'zone1.'"),
    ("zone1.2pv > 0", 0, 9, "malformed name 'zone1.2pv'"),
    ("sqrt(2)", 0, 4, "unknown function 'sqrt'; functions: abs, clamp, good, max, min"),
    ("1 + mn(1, 2)", 4, 2, "unknown function 'mn' (did you mean 'min'?)"),
    ("zone1.pv(1)", 0, 8, "unknown function 'zone1.pv'"),
    ("good(1 + 2)", 5, 5, "good() takes a tag name"),
    ("good('a')", 5, 3, "good() takes a tag name"),
    ("a < b < c", 6, 1, "comparisons cannot be chained: write 'a < b and b < c'"),
    ("1 == x != 2 + 3", 7, 2, "comparisons cannot be chained: write '1 == x and x != 2 + 3'"),
    ("a < b < ", 6, 1, "comparisons cannot be chained: write 'a < b and b < ...'"),
    ("a == not b", 5, 3, "'not' binds looser than '==': put it in parentheses"),
    ("1 + not b", 4, 3, "'not' binds looser than '+'"),
    ("-not b", 1, 3, "'not' binds looser than '-'"),
]


@pytest.mark.parametrize(("text", "offset", "length", "message"), SYNTAX_ERRORS)
def test_syntax_errors_are_located(text: str, offset: int, length: int, message: str) -> None:
    with pytest.raises(ExprError) as caught:
        parse(text)
    error = caught.value
    assert message in error.message
    assert (error.offset, error.length) == (offset, length)
    assert error.text == text
    assert isinstance(error, RecipeError)
    assert str(error) == error.message


CHECK_ERRORS = [
    ("zone1.pvv > 1", 0, 9, "unknown name 'zone1.pvv' (did you mean 'zone1.pv'?)"),
    ("1 + frobnicate", 4, 10, "unknown name 'frobnicate'"),
    ("filler.state == execute", 16, 7, "unknown name 'execute' (did you mean 'EXECUTE'?)"),
    ("True", 0, 4, "unknown name 'True' (did you mean 'true'?)"),
    ("good(zone9.pv)", 5, 8, "unknown name 'zone9.pv'"),
    ("code + 1", 5, 1, "'+' needs two numbers, found string and number"),
    ("1 - filler.state", 2, 1, "'-' needs two numbers, found number and state"),
    ("count * true", 6, 1, "'*' needs two numbers, found number and bool"),
    ("1 + 2 + 'x'", 6, 1, "'+' needs two numbers, found number and string"),
    ("-filler.running", 0, 1, "'-' needs a number, found bool"),
    ("code < 'b'", 5, 1, "'<' compares numbers or states, found string and string"),
    ("filler.running >= true", 15, 2, "'>=' compares numbers or states, found bool and bool"),
    ("filler.running == 1", 15, 2, "'==' cannot compare bool with number"),
    ("code != 1", 5, 2, "'!=' cannot compare string with number"),
    ("filler.state == 'EXECUTE'", 13, 2, "'==' cannot compare state with string"),
    ("count and true", 0, 5, "'and' needs true/false, found number: write 'count != 0'"),
    ("true or zone1.pv - 1", 8, 12,
     "'or' needs true/false, found number: write 'zone1.pv - 1 != 0'"),
    ("not count", 4, 5, "'not' needs true/false, found number: write 'count != 0'"),
    ("not filler.state", 4, 12, "compare it, as in 'filler.state == EXECUTE'"),
    ("code and true", 0, 4, "'and' needs true/false, found string"),
    ("abs(code)", 4, 4, "abs() needs numbers, found string (argument 1)"),
    ("max(1, filler.state)", 7, 12, "max() needs numbers, found state (argument 2)"),
    ("min(1, 2, true)", 10, 4, "min() needs numbers, found bool (argument 3)"),
    ("clamp(x, 5, 2)", 0, 14, "clamp(): the low limit 5 is above the high limit 2"),
    ("clamp(count, 5, 2)", 0, 18, "clamp(): the low limit 5 is above the high limit 2"),
    ("count / 0", 8, 1, "division by zero"),
    ("count % 0.0", 8, 3, "modulo by zero"),
    ("1 / (2 - 2)", 4, 7, "division by zero: '(2 - 2)' is always 0"),
    ("count / -0", 8, 2, "division by zero: '-0' is always 0"),
    ("count % (abs(3 - 3) * 5)", 8, 16, "modulo by zero: '(abs(3 - 3) * 5)' is always 0"),
    ("count / 1 / min(0, 4 - 4)", 12, 13, "division by zero: 'min(0, 4 - 4)' is always 0"),
    ("count / (1 / 0)", 13, 1, "division by zero"),
]


@pytest.mark.parametrize(("text", "offset", "length", "message"), CHECK_ERRORS)
def test_check_errors_are_located(text: str, offset: int, length: int, message: str) -> None:
    env = {**ENV, "x": N}
    error = error_of(text, env)
    assert message in error.message
    assert (error.offset, error.length) == (offset, length)


def test_division_by_a_zero_that_is_not_constant_is_allowed() -> None:
    assert parse("count / (zone1.pv - zone1.pv)").check(ENV) is N
    assert parse("count / (1 - 0)").check(ENV) is N


def test_errors_point_into_the_text() -> None:
    error = error_of("soak_temp + code")
    assert error.excerpt() == "soak_temp + code\n          ^"


# --- types ----------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("zone1.pv", N), ("code", S), ("filler.state", ST), ("filler.running", B),
    ("zone1.pv + 1", N), ("-zone1.pv", N), ("abs(zone1.pv)", N), ("clamp(count, 0, 1)", N),
    ("zone1.pv > soak_temp", B), ("filler.state == EXECUTE", B), ("filler.state < 3", B),
    ("3 >= filler.state", B), ("filler.running == true", B), ("code == 'A1'", B),
    ("filler.running and not filler.fault", B), ("good(code)", B), ("EXECUTE", ST),
    ("'x'", S), ("(filler.running)", B),
])
def test_types(text: str, expected: ExprType) -> None:
    assert parse(text).check(ENV) is expected


@pytest.mark.parametrize(("text", "want"), [
    ("zone1.pv > 1", B), ("soak_temp - 10", N), ("code", S), ("filler.state", ST),
    ("filler.state", N), ("count", ST),  # a state is its PackML number
])
def test_wanted_type_accepted(text: str, want: ExprType) -> None:
    assert parse(text).check(ENV, want=want) in (want, N, ST)


@pytest.mark.parametrize(("text", "want", "offset", "length", "message"), [
    ("count", B, 0, 5, "expected a condition (true/false), found a number: write 'count != 0'"),
    (" (count + 1) ", B, 1, 11, "write '(count + 1) != 0'"),
    ("filler.state", B, 0, 12, "found a PackML state: compare it, as in 'filler.state == "
                               "EXECUTE'"),
    ("zone1.pv > 1", N, 0, 12, "expected a number, found a condition (true/false)"),
    ("count", S, 0, 5, "expected a string, found a number"),
    ("code", N, 0, 4, "expected a number, found a string"),
])
def test_wanted_type_refused(text: str, want: ExprType, offset: int, length: int,
                             message: str) -> None:
    error = error_of(text, want=want)
    assert message in error.message
    assert (error.offset, error.length) == (offset, length)


# --- three-valued evaluation ----------------------------------------------------------

T3 = (True, False, None)


def kleene_and(a: bool | None, b: bool | None) -> bool | None:
    if a is False or b is False:
        return False
    return None if a is None or b is None else True


def kleene_or(a: bool | None, b: bool | None) -> bool | None:
    if a is True or b is True:
        return True
    return None if a is None or b is None else False


def truth_lookup(**values: bool | None) -> Callable[[str], tuple[object, bool]]:
    """None is a name whose quality is not good (its last value is kept, but unknown)."""
    return lookup_of({k: (True if v is None else v) for k, v in values.items()},
                     frozenset(k for k, v in values.items() if v is None))


@pytest.mark.parametrize("a", T3)
@pytest.mark.parametrize("b", T3)
def test_kleene_and_or(a: bool | None, b: bool | None) -> None:
    assert parse("a and b").evaluate(truth_lookup(a=a, b=b)) is kleene_and(a, b)
    assert parse("a or b").evaluate(truth_lookup(a=a, b=b)) is kleene_or(a, b)


@pytest.mark.parametrize(("a", "expected"), [(True, False), (False, True), (None, None)])
def test_kleene_not(a: bool | None, expected: bool | None) -> None:
    assert parse("not a").evaluate(truth_lookup(a=a)) is expected


def test_kleene_runs_of_three() -> None:
    assert parse("a and b and c").evaluate(truth_lookup(a=None, b=True, c=False)) is False
    assert parse("a and b and c").evaluate(truth_lookup(a=None, b=True, c=True)) is None
    assert parse("a or b or c").evaluate(truth_lookup(a=None, b=False, c=True)) is True
    assert parse("a or b or c").evaluate(truth_lookup(a=None, b=False, c=False)) is None


def test_a_condition_holds_only_when_true() -> None:
    expr = parse("a and b")
    assert expr.holds(truth_lookup(a=True, b=True))
    assert not expr.holds(truth_lookup(a=True, b=None))
    assert not expr.holds(truth_lookup(a=True, b=False))
    assert not parse("x").holds(lookup_of({"x": 1.0}))  # a number is not True


@pytest.mark.parametrize("text", [
    "x + 1", "1 - x", "x * 0", "0 / x", "x % 2", "-x", "abs(x)", "min(1, x)", "max(x, 1)",
    "clamp(x, 0, 1)", "clamp(1, x, 2)", "x == 1", "x != 1", "x < 1", "1 <= x", "x > 1",
    "x >= 1", "x == x", "(x + 1) * 2 > 3", "not x > 1", "x > 1 and true", "x > 1 or false",
])
def test_unknown_propagates(text: str) -> None:
    assert parse(text).evaluate(lookup_of({"x": 1.0}, frozenset({"x"}))) is None
    assert parse(text).evaluate(lookup_of({"x": None})) is None  # no value at all


def test_unknown_is_absorbed_only_by_a_decisive_operand() -> None:
    bad = lookup_of({"x": 1.0}, frozenset({"x"}))
    assert parse("x > 1 and false").evaluate(bad) is False
    assert parse("true or x > 1").evaluate(bad) is True
    assert parse("x * 0 == 0 or good(x)").evaluate(bad) is None


@pytest.mark.parametrize(("text", "values"), [
    ("x / y", {"x": 1.0, "y": 0.0}), ("x % y", {"x": 1.0, "y": 0}),
    ("x / (y - y)", {"x": 1, "y": 3.0}), ("x / y > 0", {"x": 1.0, "y": -0.0}),
    ("x * y", {"x": 1e308, "y": 10.0}), ("x / y", {"x": 1.0, "y": 5e-324}),
    ("x", {"x": math.nan}), ("x", {"x": math.inf}), ("x + 1", {"x": math.nan}),
    ("x", {"x": b"\x01"}), ("x + 1", {"x": "text"}), ("x > 'a'", {"x": "b"}),
    ("x == 1", {"x": "1"}),
])
def test_runtime_trouble_is_unknown_never_an_exception(text: str,
                                                       values: dict[str, object]) -> None:
    assert parse(text).evaluate(lookup_of(values)) is None


def test_values_of_any_numeric_kind() -> None:
    assert value("x + 1", x=2) == 3.0
    assert value("x + 1", x=State.IDLE) == 5.0
    assert value("x and y", x=1.0, y=True) is True  # a bool tag read from the image as 1.0
    assert value("not x", x=0.0) is True
    assert value("x == true", x=1.0) is True
    assert value("x", x=3) == 3.0
    assert type(value("x", x=3)) is float
    assert value("s == 'A1'", s="A1") is True


def test_constant_is_none_when_a_name_is_referenced() -> None:
    assert parse("x + 1").constant() is None
    assert parse("good(x)").constant() is None
    assert parse("1 / 0").constant() is None  # unknown, as at run time (check refuses it)


def test_expr_identity() -> None:
    a, b = parse("x + 1"), parse("x + 1")
    assert a == b and hash(a) == hash(b)
    assert a != parse("x+1")
    assert str(a) == "x + 1"
    assert "x + 1" in repr(a)
    assert isinstance(a, Expr)


# --- limits ---------------------------------------------------------------------------

def test_nesting_limit() -> None:
    ok = "(" * (MAX_DEPTH - 1) + "1" + ")" * (MAX_DEPTH - 1)
    assert parse(ok).constant() == 1.0
    too_deep = "(" * MAX_DEPTH + "1" + ")" * MAX_DEPTH
    with pytest.raises(ExprError) as caught:
        parse(too_deep)
    assert caught.value.message == f"expression nested too deeply (more than {MAX_DEPTH} levels)"
    assert (caught.value.offset, caught.value.length) == (MAX_DEPTH, 1)
    with pytest.raises(ExprError, match="nested too deeply"):
        parse("-" * 200 + "1")
    with pytest.raises(ExprError, match="nested too deeply"):
        parse("not " * 100 + "true")
    with pytest.raises(ExprError, match="nested too deeply"):
        parse("abs(" * 100 + "1" + ")" * 100)


def test_long_flat_expressions_are_not_deep() -> None:
    text = " + ".join(["1"] * 1000)
    assert len(text) < MAX_LENGTH
    expr = parse(text)
    assert expr.check({}) is N
    assert expr.constant() == 1000.0
    assert parse(" and ".join(["true"] * 400)).constant() is True


def test_length_limit() -> None:
    longest = "1" + " " * (MAX_LENGTH - 1)
    assert parse(longest).constant() == 1.0
    with pytest.raises(ExprError) as caught:
        parse(longest + "+")
    assert caught.value.message == (
        f"expression too long ({MAX_LENGTH + 1} characters, at most {MAX_LENGTH})")
    assert (caught.value.offset, caught.value.length) == (MAX_LENGTH, 1)


def test_no_python_evaluation_in_the_module() -> None:
    source = Path(expr_module.__file__).read_text(encoding="utf-8")
    for word in ("eval", "exec", "compile", "ast", "__import__", "getattr"):
        assert not re.search(rf"(?<![.\w]){word}\s*\(", source), word
    assert "import ast" not in source


# --- properties -----------------------------------------------------------------------

NAMES = ("a", "b", "zone1.pv", "x_2")
Tree = tuple  # ("num", v) ("name", n) ("neg", t) ("bin", op, l, r) ("call", f, args...)
              # ("cmp", op, l, r) ("and"|"or", l, r) ("not", t) ("bool", v)
ARITH = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
         "%": operator.mod}
COMPARE = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
           ">": operator.gt, ">=": operator.ge}

literals = st.one_of(st.integers(0, 9), st.sampled_from([0.0, 0.5, 2.5, 1e-3, 1e300, 123456.0]),
                     st.floats(0, 1e6, allow_nan=False, allow_infinity=False))
numbers = st.recursive(
    st.one_of(literals.map(lambda v: ("num", v)),
              st.sampled_from(NAMES).map(lambda n: ("name", n))),
    lambda inner: st.one_of(
        inner.map(lambda t: ("neg", t)),
        st.tuples(st.just("bin"), st.sampled_from(list(ARITH)), inner, inner),
        st.tuples(st.just("call"), st.just("abs"), inner),
        st.tuples(st.just("call"), st.sampled_from(["min", "max"]), inner, inner),
        st.tuples(st.just("call"), st.sampled_from(["min", "max"]), inner, inner, inner),
        st.tuples(st.just("call"), st.just("clamp"), inner, inner, inner),
    ),
    max_leaves=12,
)
comparisons = st.tuples(st.just("cmp"), st.sampled_from(list(COMPARE)), numbers, numbers)
conditions = st.recursive(
    st.one_of(comparisons, st.booleans().map(lambda v: ("bool", v))),
    lambda inner: st.one_of(
        inner.map(lambda t: ("not", t)),
        st.tuples(st.sampled_from(["and", "or"]), inner, inner),
    ),
    max_leaves=6,
)
name_values = st.fixed_dictionaries({n: st.tuples(
    st.one_of(st.integers(-3, 3), st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
              st.sampled_from([0.0, -0.0, 1e300])),
    st.booleans()) for n in NAMES})

PREC = {"or": 1, "and": 2, "not": 3, "cmp": 4, "+": 5, "-": 5, "*": 6, "/": 6, "%": 6,
        "neg": 7}
ATOM = 8


def render(tree: Tree) -> tuple[str, int]:
    """Text for ``tree`` with only the parentheses precedence needs; (text, precedence)."""
    kind = tree[0]
    if kind == "num":
        return repr(tree[1]), ATOM
    if kind == "name":
        return tree[1], ATOM
    if kind == "bool":
        return ("true" if tree[1] else "false"), ATOM
    if kind == "call":
        return f"{tree[1]}({', '.join(render(a)[0] for a in tree[2:])})", ATOM
    if kind in ("neg", "not"):
        prec = PREC[kind]
        text, inner = render(tree[1])
        text = text if inner >= prec else f"({text})"
        return (f"-{text}" if kind == "neg" else f"not {text}"), prec
    op, left, right = (tree[1], tree[2], tree[3]) if kind in ("bin", "cmp") else (
        kind, tree[1], tree[2])
    prec = PREC["cmp" if kind == "cmp" else op]
    ltext, lprec = render(left)
    rtext, rprec = render(right)
    if lprec < prec or (kind == "cmp" and lprec == prec):
        ltext = f"({ltext})"
    if rprec <= prec:
        rtext = f"({rtext})"
    return f"{ltext} {op} {rtext}", prec


def finite(v: float) -> float | None:
    return v if math.isfinite(v) else None


def reference(tree: Tree, names: Mapping[str, tuple[float, bool]]) -> object:
    """The value of ``tree`` computed with Python's operators, unknown as None."""
    kind = tree[0]
    if kind in ("num", "bool"):
        return float(tree[1]) if kind == "num" else tree[1]
    if kind == "name":
        v, good = names[tree[1]]
        return float(v) if good else None
    if kind == "neg":
        v = reference(tree[1], names)
        return None if v is None else -v
    if kind == "not":
        v = reference(tree[1], names)
        return None if v is None else not v
    if kind in ("and", "or"):
        a, b = reference(tree[1], names), reference(tree[2], names)
        return kleene_and(a, b) if kind == "and" else kleene_or(a, b)  # type: ignore[arg-type]
    if kind == "call":
        args = [reference(a, names) for a in tree[2:]]
        if any(a is None for a in args):
            return None
        if tree[1] == "abs":
            return abs(args[0])  # type: ignore[arg-type]
        if tree[1] == "clamp":
            x, lo, hi = args
            return None if lo > hi else min(max(x, lo), hi)  # type: ignore[operator]
        return (min if tree[1] == "min" else max)(args)  # type: ignore[type-var]
    a, b = reference(tree[2], names), reference(tree[3], names)
    if a is None or b is None:
        return None
    if kind == "cmp":
        return COMPARE[tree[1]](a, b)
    if tree[1] in "/%" and b == 0:
        return None
    return finite(ARITH[tree[1]](a, b))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=st.one_of(numbers, conditions), names=name_values)
def test_evaluate_matches_a_reference_on_the_same_tree(
        tree: Tree, names: dict[str, tuple[float, bool]]) -> None:
    text, _ = render(tree)
    expr = parse(text)
    got = expr.evaluate(lambda n: names[n])
    want = reference(tree, names)
    assert (got is None) == (want is None), text
    assert got == want, text
    assert type(got) is type(want), text
    try:  # type-correct by construction: only a constant zero divisor or crossed clamp
        expr.check(dict.fromkeys(NAMES, N))
    except ExprError as error:
        assert "by zero" in error.message or "clamp()" in error.message


ALPHABET = "()+-*/%<>=!&|.,'\"\\ \t0123456789eE_abcdnotrufslxzEXCUTIDL#"
TOKENS = ["(", ")", "+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=", ",", "and",
          "or", "not", "true", "false", "EXECUTE", "abs", "min", "max", "clamp", "good", "x",
          "zone1.pv", "1", "0", "2.5e3", "'s'", '"t"', " "]


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(st.text(max_size=40), st.text(ALPHABET, max_size=60),
                      st.lists(st.sampled_from(TOKENS), max_size=25).map(" ".join)))
def test_fuzz_parse_returns_an_expr_or_raises_expr_error(text: str) -> None:
    try:
        expr = parse(text)
    except ExprError as error:
        assert 0 <= error.offset <= len(text)
        assert error.length >= 1
        assert error.offset + error.length <= max(len(text), 1) or error.offset == len(text)
        return
    assert isinstance(expr, Expr)
    env = dict.fromkeys(expr.names, N) | {"x": B}
    try:
        expr.check(env)
    except ExprError as error:
        assert 0 <= error.offset < max(len(text), 1)
    result = expr.evaluate(lambda n: (1.0, n != "zone1.pv"))
    assert result is None or isinstance(result, (float, bool, str))
