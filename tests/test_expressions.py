"""Argo's `depends` and govaluate-style `when` evaluators, on tables of cases."""

from __future__ import annotations

import pytest

from workflows.expressions import (
    Depends,
    ExpressionError,
    evaluate_retry,
    evaluate_when,
    heights,
)

STATUS = {
    "a": "Succeeded",
    "b": "Failed",
    "c": "Skipped",
    "d": "Omitted",
    "e": "Errored",
    "train-gpu": "Skipped",
    "x1": "Succeeded",
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a", True),
        ("a.Succeeded", True),
        ("a.Failed", False),
        ("b", False),
        ("b.Failed", True),
        ("c", True),  # a bare name also accepts Skipped
        ("c.Succeeded", False),
        ("d", False),  # ... but not Omitted
        ("d.Omitted", True),
        ("e.Errored", True),
        ("e", False),
        ("a.Daemoned", False),
        ("train-gpu", True),  # hyphenated task names
        ("train-gpu.Succeeded || a.Succeeded", True),
        ("train-gpu.Succeeded || b.Succeeded", False),
        ("a && b", False),
        ("a && c && x1", True),
        ("!b", True),
        ("!a", False),
        ("!!a", True),
        ("b || a && c", True),  # && binds tighter: b || (a && c)
        ("(b || a) && d", False),
        ("b || a && d", False),
        ("!(b || d)", True),
        ("!b && !d", True),
        ("!(a && b) && (c.Skipped || e.Failed)", True),
        ("  a.Succeeded  ", True),
    ],
)
def test_depends_table(text: str, expected: bool) -> None:
    assert Depends.parse(text).holds(STATUS) is expected


def test_depends_names_its_tasks() -> None:
    assert Depends.parse("(a.Succeeded || train-gpu) && !b.Failed").tasks == {"a", "train-gpu", "b"}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("a &&", "ends too early"),
        ("a b", "unexpected 'b'"),
        ("(a || b", "missing ')'"),
        ("a.Finished", "'a.Finished' is not supported"),
        ("a.AnySucceeded", "is not supported"),
        ("a == b", "unexpected '== b'"),
        ("|| a", "unexpected '||'"),
    ],
)
def test_depends_errors(text: str, fragment: str) -> None:
    with pytest.raises(ExpressionError, match="depends expression") as info:
        Depends.parse(text)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("false", False),
        ("true == true", True),
        ("false == true", False),
        ("true != false", True),
        ("foo == foo", True),  # bare words are strings, as Argo makes them
        ("foo == bar", False),
        ("foo != bar", True),
        ("'foo' == foo", True),
        ("\"two words\" == 'two words'", True),
        ("'true' == true", False),  # a string never equals a boolean
        ("1 == 1.0", True),
        ("'1' == 1", False),
        ("2 < 10", True),  # numerically, not as text
        ("10 <= 10", True),
        ("3 > 4", False),
        ("4 >= 3.5", True),
        ("'b' > 'a'", True),
        ("v1.2.3 == v1.2.3", True),
        ("1.2.3 == '1.2.3'", True),
        ("!false", True),
        ("!(1 == 1)", False),
        ("!true == false", True),  # ! binds tighter than ==: (!true) == false
        ("false || true && false", False),  # && before ||
        ("(false || true) && true", True),
        ("1 < 2 && 3 > 2", True),
        ("a == b || c == c", True),
        ("a == b || c == d", False),
        ("!(a == b) && !(c != c)", True),
        ("1 == 1 == true", True),  # comparisons chain left to right: (1 == 1) == true
        ("1 < 2 < 3", None),  # (1 < 2) < 3 orders a boolean
    ],
)
def test_when_table(text: str, expected: bool | None) -> None:
    if expected is None:
        with pytest.raises(ExpressionError):
            evaluate_when(text)
    else:
        assert evaluate_when(text) is expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        (" == true", "unexpected '=='"),  # an empty substitution
        ("gs://bucket == x", "hint: quote"),
        ("foo", "'foo' is not true or false"),
        ("1 && true", "1.0 is not true or false"),
        ("!foo", "'foo' is not true or false"),
        ("'a' < 1", "cannot order"),
        ("true < false", "cannot order"),
        ("(true", "missing ')'"),
        ("true true", "unexpected 'true'"),
    ],
)
def test_when_errors(text: str, fragment: str) -> None:
    with pytest.raises(ExpressionError, match="when expression") as info:
        evaluate_when(text)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("exit_code", "status", "expected"),
    [
        (1, "Failed", True),
        (2, "Failed", False),  # a user error: not retried
        (143, "Failed", True),  # stopped by SIGTERM, as Kubernetes reports it
        (-1, "Errored", True),  # no exit code (Argo's -1): negative numbers parse
    ],
)
def test_retry_expression_over_the_last_attempt(
    exit_code: int, status: str, expected: bool
) -> None:
    assert evaluate_retry("asInt(lastRetry.exitCode) != 2", exit_code, status, 1.0) is expected
    assert evaluate_retry("lastRetry.status == 'Errored'", exit_code, status, 1.0) is (
        status == "Errored"
    )


def test_heights_count_the_longest_chain_of_dependants() -> None:
    parents = {"a": [], "b": ["a"], "c": ["b"], "d": ["a"], "side": [], "e": ["c", "d"]}
    assert heights(parents) == {"a": 4, "b": 3, "c": 2, "d": 2, "e": 1, "side": 1}
