"""Argo's DAG rules, in one place for the local runner, the lint and the tests.

- `ancestors` and `cycles` of a DAG's tasks, from what each task's `depends` names: Argo
  resolves `{{tasks.T...}}` only for an ancestor T; `heights`, the critical-path rank by
  which the local runner starts ready tasks when slots are short.
- `depends` on a DAG task: `T.Succeeded`, `T.Failed`, `T.Errored`, `T.Skipped`,
  `T.Omitted`, `T.Daemoned`, `&&`, `||`, `!`, parentheses; a bare `T` means
  `(T.Succeeded || T.Skipped || T.Daemoned)`, as in Argo.
- `when` (after variable substitution), with govaluate's semantics as Argo uses them:
  `==`, `!=`, `<`, `>`, `<=`, `>=`, `&&`, `||`, `!`, parentheses; `'quoted'` or `"quoted"`
  strings, numbers, `true`/`false`, and bare words, which Argo turns into strings. Values
  of different types are never equal; ordering needs two numbers or two strings.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from workflows.errors import WorkflowError

RESULTS = frozenset({"Succeeded", "Failed", "Errored", "Skipped", "Omitted", "Daemoned"})
# What a bare task name in `depends` stands for.
BARE = frozenset({"Succeeded", "Skipped", "Daemoned"})


class ExpressionError(WorkflowError):
    """A `depends` or `when` expression that cannot be parsed or evaluated."""


def _tokenize(text: str, pattern: re.Pattern[str], kind: str) -> list[re.Match[str]]:
    tokens, pos = [], 0
    while pos < len(text):
        if text[pos].isspace():
            pos += 1
            continue
        match = pattern.match(text, pos)
        if match is None:
            raise ExpressionError(
                f"{kind} expression {text!r}: unexpected {text[pos:]!r} at position {pos}"
                + (
                    " (hint: quote values with spaces or symbols: 'like this')"
                    if kind == "when"
                    else ""
                )
            )
        tokens.append(match)
        pos = match.end()
    return tokens


class _Parser:
    """Recursive descent over `||` < `&&` < [comparison] < `!` < atom / `( ... )`."""

    def __init__(
        self,
        text: str,
        tokens: list[re.Match[str]],
        kind: str,
        atom: Callable[[re.Match[str]], Any],
        comparisons: bool,
    ) -> None:
        self.text, self.tokens, self.kind = text, tokens, kind
        self.atom, self.comparisons, self.pos = atom, comparisons, 0

    def fail(self, why: str) -> ExpressionError:
        return ExpressionError(f"{self.kind} expression {self.text!r}: {why}")

    def peek(self) -> str | None:
        return self.tokens[self.pos].group(0) if self.pos < len(self.tokens) else None

    def take(self) -> re.Match[str]:
        if self.pos >= len(self.tokens):
            raise self.fail("ends too early")
        self.pos += 1
        return self.tokens[self.pos - 1]

    def parse(self) -> tuple:
        if not self.tokens:
            raise self.fail("is empty")
        tree = self.disjunction()
        if self.pos < len(self.tokens):
            raise self.fail(f"unexpected {self.peek()!r}")
        return tree

    def disjunction(self) -> tuple:
        tree = self.conjunction()
        while self.peek() == "||":
            self.take()
            tree = ("||", tree, self.conjunction())
        return tree

    def conjunction(self) -> tuple:
        tree = self.comparison()
        while self.peek() == "&&":
            self.take()
            tree = ("&&", tree, self.comparison())
        return tree

    def comparison(self) -> tuple:
        tree = self.negation()
        while self.comparisons and self.peek() in _COMPARE:  # left to right, as govaluate
            op = self.take().group(0)
            tree = (op, tree, self.negation())
        return tree

    def negation(self) -> tuple:
        if self.peek() == "!":
            self.take()
            return ("!", self.negation())
        if self.peek() == "(":
            self.take()
            tree = self.disjunction()
            if self.peek() != ")":
                raise self.fail("missing ')'")
            self.take()
            return tree
        token = self.take()
        if token.group(0) in {"&&", "||", ")", *_COMPARE}:
            raise self.fail(f"unexpected {token.group(0)!r}")
        return ("atom", self.atom(token))


# ---- depends ----------------------------------------------------------------------------

_DEPENDS_TOKEN = re.compile(
    r"&&|\|\||!|\(|\)|(?P<task>[A-Za-z0-9_][A-Za-z0-9_-]*)"
    r"(?:\.(?P<result>[A-Za-z]+))?"
)


@dataclass(frozen=True)
class Depends:
    """A parsed `depends` expression: the tasks it names, and whether it holds."""

    text: str
    tasks: frozenset[str]
    tree: tuple

    @classmethod
    def parse(cls, text: str) -> Depends:
        tasks: set[str] = set()

        def atom(token: re.Match[str]) -> tuple[str, frozenset[str]]:
            task, result = token.group("task"), token.group("result")
            if task is None:
                raise ExpressionError(f"depends expression {text!r}: unexpected {token.group(0)!r}")
            if result is not None and result not in RESULTS:
                raise ExpressionError(
                    f"depends expression {text!r}: '{task}.{result}' is not supported; "
                    f"use one of {', '.join(sorted(RESULTS))}"
                )
            tasks.add(task)
            return task, frozenset({result}) if result else BARE

        tokens = _tokenize(text, _DEPENDS_TOKEN, "depends")
        tree = _Parser(text, tokens, "depends", atom, comparisons=False).parse()
        return cls(text, frozenset(tasks), tree)

    def holds(self, status: Mapping[str, str]) -> bool:
        """Evaluate against the final status of every task it names."""

        def value(node: tuple) -> bool:
            match node:
                case ("atom", (task, results)):
                    return status[task] in results
                case ("!", operand):
                    return not value(operand)
                case ("&&", left, right):
                    return value(left) and value(right)
                case ("||", left, right):
                    return value(left) or value(right)
            raise AssertionError(node)

        return value(self.tree)


def ancestors(parents: Mapping[str, Iterable[str]]) -> dict[str, frozenset[str]]:
    """Every task's ancestors, given each task's direct dependencies (a task outside the
    mapping has none); a cycle is not followed (see `cycles`)."""
    found: dict[str, frozenset[str]] = {}

    def visit(name: str, trail: frozenset[str]) -> frozenset[str]:
        if name not in found:
            result: set[str] = set()
            for parent in set(parents.get(name, ())) - trail:
                result |= {parent} | visit(parent, trail | {name})
            found[name] = frozenset(result)
        return found[name]

    for name in parents:
        visit(name, frozenset())
    return found


def heights(parents: Mapping[str, Iterable[str]]) -> dict[str, int]:
    """Each task's critical-path rank: how many tasks the longest chain that starts at it
    and follows its dependants holds (1 for a task nothing depends on). Acyclic input."""
    children: dict[str, set[str]] = {name: set() for name in parents}
    for name, deps in parents.items():
        for parent in deps:
            children.setdefault(parent, set()).add(name)
    found: dict[str, int] = {}

    def visit(name: str) -> int:
        if name not in found:
            found[name] = 1 + max((visit(c) for c in children[name]), default=0)
        return found[name]

    return {name: visit(name) for name in parents}


def cycles(parents: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The dependency cycles, each as the tasks in order (the first repeated last): each
    task depends on the next."""
    state: dict[str, str] = {}
    out: list[list[str]] = []

    def visit(name: str, trail: list[str]) -> None:
        state[name] = "open"
        for parent in sorted(parents.get(name, ())):
            if state.get(parent) == "open":
                out.append(trail[trail.index(parent) :] + [parent])
            elif parent not in state:
                visit(parent, trail + [parent])
        state[name] = "done"

    for name in parents:
        if name not in state:
            visit(name, [name])
    return out


# ---- when -------------------------------------------------------------------------------

_COMPARE = ("==", "!=", "<=", ">=", "<", ">")
_WHEN_TOKEN = re.compile(
    r"&&|\|\||==|!=|<=|>=|<|>|!|\(|\)"
    r"|'(?P<sq>[^']*)'|\"(?P<dq>[^\"]*)\""
    r"|(?P<number>-?\d+(?:\.\d+)?)(?![A-Za-z0-9_.])"
    r"|(?P<word>[A-Za-z0-9_][A-Za-z0-9_.]*)"
)


def _when_atom(token: re.Match[str]) -> bool | float | str:
    if token.group("number") is not None:
        return float(token.group("number"))
    word = token.group("word")
    if word is not None:
        # govaluate's only boolean literals; any other bare word is a string in Argo.
        return {"true": True, "false": False}.get(word, word)
    quoted = token.group("sq") if token.group("sq") is not None else token.group("dq")
    if quoted is None:
        raise ExpressionError(f"unexpected {token.group(0)!r}")
    return quoted


def evaluate_when(text: str) -> bool:
    """Evaluate an already substituted `when` expression; raise ExpressionError if invalid."""
    tokens = _tokenize(text, _WHEN_TOKEN, "when")
    parser = _Parser(text, tokens, "when", _when_atom, comparisons=True)
    tree = parser.parse()

    def boolean(node: tuple) -> bool:
        result = value(node)
        if not isinstance(result, bool):
            raise parser.fail(f"{result!r} is not true or false")
        return result

    def value(node: tuple) -> bool | float | str:
        match node:
            case ("atom", literal):
                return literal
            case ("!", operand):
                return not boolean(operand)
            case ("&&", left, right):
                return boolean(left) & boolean(right)
            case ("||", left, right):
                return boolean(left) | boolean(right)
            case (op, left, right):
                return _compare(parser, op, value(left), value(right))
        raise AssertionError(node)

    return boolean(tree)


def _compare(parser: _Parser, op: str, left: Any, right: Any) -> bool:
    if op in ("==", "!="):
        # Like govaluate: 'true' (a string) never equals true (a boolean); 1 equals 1.0.
        equal = type(left) is type(right) and left == right
        return equal if op == "==" else not equal
    if type(left) is not type(right) or isinstance(left, bool):
        raise parser.fail(
            f"cannot order {left!r} and {right!r}: "
            "'<', '>', '<=', '>=' need two numbers or two strings"
        )
    return {"<": left < right, ">": left > right, "<=": left <= right, ">=": left >= right}[op]


# ---- retryStrategy.expression -------------------------------------------------------------

_RETRY_VARIABLES = re.compile(r"asInt\(lastRetry\.exitCode\)|lastRetry\.(exitCode|status|duration)")


def evaluate_retry(text: str, exit_code: int, status: str, duration: float) -> bool:
    """A retry strategy's `expression` over the last attempt (Argo's expr language, in the
    comparisons and logic that `when` shares with it): `asInt(lastRetry.exitCode)`,
    `lastRetry.exitCode` and `lastRetry.status` (strings), `lastRetry.duration` (seconds)."""

    def value(m: re.Match[str]) -> str:
        if m.group(0).startswith("asInt("):
            return str(exit_code)
        if m.group(1) == "duration":
            return f"{duration:.3f}"
        return f"'{exit_code if m.group(1) == 'exitCode' else status}'"

    return evaluate_when(_RETRY_VARIABLES.sub(value, text))
