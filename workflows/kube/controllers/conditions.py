"""Knative's living condition sets (knative.dev/pkg release-1.17, apis/condition_set.go),
which KServe's InferenceService and Knative's Service both keep their conditions in.

A set has a happy condition (Ready) and the conditions it depends on: marking a dependent
False makes Ready False with its reason and message; Unknown makes Ready Unknown unless a
dependent is False; Ready is True once every dependent is (`MarkTrue`,
`recomputeHappiness`, `MarkUnknown`, `MarkFalse`; a dependent never set counts as Unknown,
`InitializeConditions`). Other conditions carry severity Info. `SetCondition` keeps a
condition's lastTransitionTime when nothing else changed and stores them sorted by type.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from workflows.kube.objects import now

READY = "Ready"
Conditions = list[dict[str, Any]]


def status_of(ok: bool | None) -> str:
    return "Unknown" if ok is None else str(ok)


def get(conditions: Sequence[Mapping[str, Any]], kind: str) -> dict[str, Any]:
    return next((dict(c) for c in conditions if c.get("type") == kind), {})


class ConditionSet:
    """`apis.NewLivingConditionSet(*dependents)`, Ready its happy condition."""

    def __init__(self, *dependents: str) -> None:
        self.dependents = dependents

    def mark(
        self, conditions: Conditions, kind: str, status: str, reason: str = "", message: str = ""
    ) -> Conditions:
        """`MarkTrue`/`MarkUnknown`/`MarkFalse` of `kind`, Ready recomputed: a new list."""
        out = _set(conditions, self._condition(kind, status, reason, message))
        return out if kind == READY else _set(out, self._happy(out))

    def _condition(self, kind: str, status: str, reason: str, message: str) -> dict[str, Any]:
        found: dict[str, Any] = {"type": kind, "status": status}
        found.update({k: v for k, v in (("reason", reason), ("message", message)) if v})
        if kind != READY and kind not in self.dependents:
            found["severity"] = "Info"
        return found

    def _happy(self, conditions: Conditions) -> dict[str, Any]:
        """`recomputeHappiness`: a False dependent, else an Unknown (or unset) one, else
        True. (Upstream takes the most recently changed of them; here the first listed.)"""
        states = [get(conditions, d) or {"status": "Unknown"} for d in self.dependents]
        for wanted in ("False", "Unknown"):
            found = next((c for c in states if c["status"] == wanted), None)
            if found is not None:
                return self._condition(
                    READY, wanted, found.get("reason", ""), found.get("message", "")
                )
        return self._condition(READY, "True", "", "")


def _set(conditions: Conditions, condition: dict[str, Any]) -> Conditions:
    """`SetCondition`: replace the condition of its type, keeping lastTransitionTime when
    nothing else changed; sorted by type."""
    old = get(conditions, condition["type"])
    same = {k: v for k, v in old.items() if k != "lastTransitionTime"} == condition
    condition = {
        **condition,
        "lastTransitionTime": old["lastTransitionTime"] if same and old else now(),
    }
    others = [c for c in conditions if c.get("type") != condition["type"]]
    return sorted([*others, condition], key=lambda c: str(c["type"]))
