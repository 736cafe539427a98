"""The compiled Workflow read as Argo's controller reads it: its parameters, the DAG's
tasks with their `depends` and ancestry, the exit handler, the workflow-level mutexes and
the templates' retryStrategy. Everything here is data; nothing runs."""

from __future__ import annotations

import re
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from workflows.errors import WorkflowError
from workflows.expressions import Depends, ancestors, cycles, heights
from workflows.local.substitution import substitute

# Task fields whose meaning the runner does not reproduce; ignoring them would mislead.
UNSUPPORTED_TASK_FIELDS = (
    "withItems",
    "withParam",
    "withSequence",
    "templateRef",
    "inline",
    "continueOn",
)
RUNNABLE = ("container", "resource")  # the template kinds the local runner carries out


@dataclass(frozen=True)
class Task:
    name: str
    spec: dict[str, Any]  # the DAG task
    template: dict[str, Any]
    depends: Depends | None
    ancestors: frozenset[str] = frozenset()
    height: int = 1  # critical-path rank (workflows.expressions.heights)

    @property
    def is_resource(self) -> bool:
        return "resource" in self.template


@dataclass(frozen=True)
class Retry:
    """A template's retryStrategy, as Argo applies it: up to `limit` more attempts of a
    failure the policy covers and the expression allows, `duration * factor**n` apart,
    while the retries have taken less than `max_duration`."""

    limit: int
    policy: str  # Always, OnFailure, OnError, OnTransientError
    expression: str | None
    duration: float
    factor: float
    max_duration: float | None

    @classmethod
    def parse(cls, spec: Mapping[str, Any], where: str) -> Retry:
        backoff = spec.get("backoff") or {}
        try:
            return cls(
                int(spec.get("limit", 0)),
                str(spec.get("retryPolicy", "OnFailure")),
                spec.get("expression"),
                seconds(backoff.get("duration", "0s")),
                float(backoff.get("factor", 1)),
                seconds(backoff["maxDuration"]) if "maxDuration" in backoff else None,
            )
        except ValueError as e:
            raise WorkflowError(f"{where}: retryStrategy: {e}") from None


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def seconds(text: Any) -> float:
    """A Go duration such as `10s`, `1m30s` or `250ms`; a bare number is seconds."""
    text = str(text).strip()
    if text.replace(".", "", 1).isdigit():
        return float(text)
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{text!r} is not a duration such as 10s or 2m")
    return sum(float(n) * _UNIT_S[u] for n, u in parts)


def generate_name(template: Mapping[str, Any]) -> str:
    meta = template.get("metadata", {})
    base = meta.get("name") or meta.get("generateName", "workflow").rstrip("-")
    alphabet = string.ascii_lowercase + string.digits
    return f"{base}-{''.join(secrets.choice(alphabet) for _ in range(5))}"


def workflow_parameters(spec: Mapping[str, Any], given: Mapping[str, str]) -> dict[str, str]:
    """The workflow's parameters: the given values over the defaults, each in its enum."""
    declared = {p["name"]: p for p in spec.get("arguments", {}).get("parameters", [])}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise WorkflowError(
            f"unknown workflow parameter(s): {', '.join(unknown)}; "
            f"the template declares: {', '.join(sorted(declared)) or 'none'}"
        )
    values: dict[str, str] = {}
    for name, param in declared.items():
        if name in given:
            values[name] = given[name]
        elif "value" in param:
            values[name] = str(param["value"])
        else:
            raise WorkflowError(f"workflow parameter {name!r} has no default: pass a value")
        enum = param.get("enum")
        if enum and values[name] not in [str(e) for e in enum]:
            raise WorkflowError(
                f"workflow parameter {name!r} is {values[name]!r}; "
                f"allowed: {', '.join(map(str, enum))}"
            )
    return values


def _task(spec: Mapping[str, Any], templates: Mapping[str, dict[str, Any]]) -> Task:
    name = spec["name"]
    where = f"task {name!r}"
    bad = [f for f in UNSUPPORTED_TASK_FIELDS if f in spec]
    if bad:
        raise WorkflowError(f"{where}: {', '.join(bad)} is not supported by the local runner")
    template = templates.get(spec.get("template", ""))
    if template is None:
        raise WorkflowError(f"{where}: no template named {spec.get('template')!r}")
    if not any(kind in template for kind in RUNNABLE):
        kind = next((k for k in ("script", "dag", "steps", "suspend") if k in template), "this")
        raise WorkflowError(
            f"{where}: template {template['name']!r} is a {kind} template, which the local "
            "runner does not run (it runs container and resource templates)"
        )
    if "depends" in spec and "dependencies" in spec:
        raise WorkflowError(f"{where}: use either depends or dependencies, not both")
    text = spec.get("depends") or " && ".join(spec.get("dependencies", []))
    return Task(name, dict(spec), template, Depends.parse(text) if text else None)


def build_tasks(dag: Mapping[str, Any], templates: Mapping[str, dict[str, Any]]) -> dict[str, Task]:
    """The DAG's tasks, checked, with their ancestry and critical-path heights."""
    tasks: dict[str, Task] = {}
    for spec in dag.get("tasks", []):
        if spec["name"] in tasks:
            raise WorkflowError(f"task {spec['name']!r}: two DAG tasks have this name")
        tasks[spec["name"]] = _task(spec, templates)
    parents = {n: t.depends.tasks if t.depends else frozenset() for n, t in tasks.items()}
    for name, deps in parents.items():
        if unknown := sorted(deps - set(tasks)):
            raise WorkflowError(f"task {name!r} depends on unknown task(s): {', '.join(unknown)}")
    if found := cycles(parents):
        raise WorkflowError(f"dependency cycle: {' -> '.join(found[0])}")
    up, rank = ancestors(parents), heights(parents)
    return {
        n: Task(t.name, t.spec, t.template, t.depends, frozenset(up[n]), rank[n])
        for n, t in tasks.items()
    }


def exit_handler(
    spec: Mapping[str, Any], templates: Mapping[str, dict[str, Any]], tasks: Mapping[str, Task]
) -> Task | None:
    """The `onExit` template as a task named after it (Argo's node is `<wf>.onExit`)."""
    name = spec.get("onExit")
    if not name:
        return None
    if name in tasks:
        raise WorkflowError(f"onExit template {name!r} has the name of a DAG task")
    return _task({"name": name, "template": name}, templates)


def mutex_keys(spec: Mapping[str, Any], scope: Mapping[str, str]) -> list[str]:
    """The keys of the workflow-level mutexes (workflows.local.mutexes), their names and
    namespaces substituted with the global parameters as Argo's controller does."""
    sync = spec.get("synchronization") or {}
    unsupported = sorted(k for k in sync if k != "mutexes")
    unsupported += [f"templates[{t['name']}]" for t in spec["templates"] if "synchronization" in t]
    if unsupported:
        raise WorkflowError(
            "the local runner supports workflow-level synchronization.mutexes only, "
            f"not {', '.join(unsupported)}"
        )
    keys = []
    for i, mutex in enumerate(sync.get("mutexes", [])):
        where = f"spec.synchronization.mutexes[{i}]"
        name = substitute(str(mutex.get("name", "")), scope, f"{where}.name")
        namespace = substitute(
            str(mutex.get("namespace") or scope["workflow.namespace"]), scope, f"{where}.namespace"
        )
        keys.append(f"{namespace}/Mutex/{name}")
    return keys
