"""The plan of a local run: the compiled Workflow's tasks, parameters, volumes, exit
handler and mutexes, with every task prepared against placeholder outputs before anything
runs, so a template that cannot run fails the run up front (WorkflowError)."""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workflows.errors import WorkflowError
from workflows.local import resources
from workflows.local.hooks import Hooks
from workflows.local.jobs import Context, Job, prepare
from workflows.local.substitution import substitute
from workflows.local.tasks import Task, build_tasks, exit_handler, mutex_keys, workflow_parameters

NAMESPACE = "default"  # the local run's {{workflow.namespace}}
# The one `valueFrom.expression` form the runner evaluates: a quoted string literal.
_QUOTED = re.compile(r"\s*(?:'([^']*)'|\"([^\"]*)\")\s*")


@dataclass(frozen=True)
class Plan:
    context: Context
    parameters: dict[str, str]  # the workflow's, defaults filled in
    dag: dict[str, Any]  # the entrypoint template
    tasks: dict[str, Task]
    exit_handler: Task | None
    mutexes: list[str]
    scope: dict[str, str]  # what every task sees: globals and the DAG's inputs
    checked: dict[str, Job]  # each task prepared against placeholder outputs

    @property
    def workflow_name(self) -> str:
        return self.context.workflow_name

    @property
    def width(self) -> int:
        return max((len(n) for n in self.tasks), default=4)

    def prepare(self, task: Task, params: Mapping[str, str], keys: Mapping[str, str]) -> Job:
        """The task ready to run, given the run's parameters and artifact keys so far."""
        return prepare(self.context, task, visible(task, params), visible(task, keys))

    def prepare_exit_handler(self, status: str, failures: str) -> Job:
        assert self.exit_handler is not None
        # Two globals exist in exit handlers only.
        scope = {**self.context.globals, "workflow.status": status, "workflow.failures": failures}
        context = dataclasses.replace(self.context, globals=scope)
        return prepare(context, self.exit_handler, scope, {})

    def dag_outputs(self, params: Mapping[str, str]) -> dict[str, str]:
        return {
            p["name"]: _dag_output(p, params)
            for p in self.dag.get("outputs", {}).get("parameters", [])
        }


def visible(task: Task, scope: Mapping[str, str]) -> dict[str, str]:
    """Argo resolves `tasks.T...` only for T among the task's ancestors."""
    return {
        k: v
        for k, v in scope.items()
        if not k.startswith("tasks.") or k.split(".")[1] in task.ancestors
    }


def _dag_output(p: Mapping[str, Any], params: Mapping[str, str]) -> str:
    value_from = p.get("valueFrom", {})
    where = f"DAG output parameter {p['name']!r}"
    if "parameter" in value_from:
        try:
            return str(substitute(value_from["parameter"], params, where))
        except WorkflowError:
            if "default" not in value_from:
                raise
            return str(value_from["default"])
    if "value" in p:
        return str(substitute(str(p["value"]), params, where))
    if literal := _QUOTED.fullmatch(substitute(value_from.get("expression", ""), params, where)):
        return literal.group(1) or literal.group(2) or ""
    raise WorkflowError(
        f"{where}: the local runner supports valueFrom.parameter, value, or an expression "
        "that is one quoted string"
    )


def make_plan(
    template: Mapping[str, Any],
    parameters: Mapping[str, str],
    output_dir: Path,
    env: Mapping[str, str],
    hooks: Hooks,
    workflow_name: str,
) -> Plan:
    """Read and check the compiled Workflow (or WorkflowTemplate) `template`."""
    spec = template.get("spec")
    if not isinstance(spec, dict):
        raise WorkflowError("the workflow template has no spec")
    templates = {t["name"]: t for t in spec.get("templates", [])}
    dag = templates.get(spec.get("entrypoint", ""), {})
    if "dag" not in dag:
        raise WorkflowError(f"entrypoint {spec.get('entrypoint')!r} is not a DAG template")
    if spec.get("volumeClaimTemplates"):
        raise WorkflowError(
            "volumeClaimTemplates are not supported by the local runner: "
            "claim the volume with a resource template"
        )
    values = workflow_parameters(spec, parameters)
    globals_ = {
        "workflow.name": workflow_name,
        "workflow.namespace": NAMESPACE,
        "workflow.uid": str(uuid.uuid4()),
        **{f"workflow.parameters.{k}": v for k, v in values.items()},
    }
    volumes = {
        v["name"]: substitute(v, globals_, f"volume {v['name']!r}") for v in spec.get("volumes", [])
    }
    context = Context(output_dir, globals_, volumes, dict(env), hooks, workflow_name)
    tasks = build_tasks(dag["dag"], templates)
    scope = dict(globals_)
    for p in dag.get("inputs", {}).get("parameters", []):
        value = values.get(p["name"], p.get("value", p.get("default")))
        if value is None:
            raise WorkflowError(f"DAG input parameter {p['name']!r} has no value")
        scope[f"inputs.parameters.{p['name']}"] = str(value)
    plan = Plan(
        context,
        values,
        dag,
        tasks,
        exit_handler(spec, templates, tasks),
        mutex_keys(spec, globals_),
        scope,
        {},
    )
    plan.checked.update(_check(plan))
    return plan


def _check(plan: Plan) -> dict[str, Job]:
    """Every task prepared with placeholders for the outputs of the tasks before it."""
    params, keys = dict(plan.scope), {}
    for task in plan.tasks.values():
        outputs = task.template.get("outputs", {})
        for p in outputs.get("parameters", []):
            ref = f"tasks.{task.name}.outputs.parameters.{p['name']}"
            params[ref] = f"<{ref}>"
        for a in outputs.get("artifacts", []):
            keys[f"tasks.{task.name}.outputs.artifacts.{a['name']}"] = f"{task.name}/{a['name']}"
    checked = {}
    for task in plan.tasks.values():
        if task.is_resource:
            resources.check(task.template, f"task {task.name!r}")
        if "when" in task.spec:
            substitute(task.spec["when"], visible(task, params), f"task {task.name!r} when")
        checked[task.name] = plan.prepare(task, params, keys)
    plan.dag_outputs(params)
    if plan.exit_handler is not None:
        if plan.exit_handler.is_resource:
            resources.check(plan.exit_handler.template, f"onExit {plan.exit_handler.name!r}")
        plan.prepare_exit_handler("<workflow.status>", "<workflow.failures>")
    return checked
