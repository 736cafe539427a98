"""The Kubernetes rights a workflow's service account needs, derived from what runs.

Three sources, each from upstream's own rules (argo-workflows v3.7.18 and v4.0):

- the executor: each pod reports its outputs as a WorkflowTaskResult it creates and then
  patches (`docs/workflow-rbac.md`, "for >= v3.4");
- each `resource` template: the executor runs kubectl in-process (`workflow/executor/
  resource.go`): `create` POSTs; client-side `apply` gets, then creates or patches;
  output parameters read by `jsonPath` or `jqFilter`, and success or failure conditions,
  get the object. `setOwnerReference` makes the controller add a controller reference
  with `blockOwnerDeletion: true`, which the OwnerReferencesPermissionEnforcement
  admission plugin allows only to whoever may update the owner's finalizers;
- the step code: every Kubernetes API call of the pod package goes through
  `textcnn.cluster.kube.custom_object_getter` (a `get`) or `custom_object_patcher` (a
  `patch`); their calls are found in the source.

`required_rules` gives (apiGroup, resource, verb) triples; `granted_rules` reads a Role.
"""

from __future__ import annotations

import ast
import importlib
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from workflows.checks import yaml_bounded

Rule = tuple[str, str, str]  # (apiGroup, resource, verb)

EXECUTOR: frozenset[Rule] = frozenset(
    {
        ("argoproj.io", "workflowtaskresults", "create"),
        ("argoproj.io", "workflowtaskresults", "patch"),
    }
)
# What kubectl calls for each action of a resource template (client-side apply).
ACTION_VERBS: dict[str, frozenset[str]] = {
    "create": frozenset({"create"}),
    "apply": frozenset({"get", "create", "patch"}),
    "get": frozenset({"get"}),
    "patch": frozenset({"patch"}),
    "replace": frozenset({"get", "update"}),
    "delete": frozenset({"delete"}),
}
OWNER_REFERENCE: Rule = ("argoproj.io", "workflows/finalizers", "update")
# textcnn.cluster.kube: the pod package's API calls, and the verb of each.
CLIENT_CALLS = {"custom_object_getter": "get", "custom_object_patcher": "patch"}
_TAG = re.compile(r"\{\{[^{}]*\}\}")


def _resource(manifest: str) -> tuple[str, str]:
    """(apiGroup, plural) of a resource template's manifest (its kind names no variable)."""
    doc = yaml_bounded.load(_TAG.sub("x", manifest))
    group = str(doc["apiVersion"]).rpartition("/")[0]
    return group, f"{str(doc['kind']).lower()}s"


def template_rules(templates: Iterable[Mapping[str, Any]]) -> set[Rule]:
    """The rights the `resource` templates among `templates` need."""
    rules: set[Rule] = set()
    for template in templates:
        resource = template.get("resource")
        if not resource:
            continue
        group, plural = _resource(resource["manifest"])
        verbs = set(ACTION_VERBS[resource["action"]])
        outputs = template.get("outputs", {}).get("parameters", [])
        if any({"jsonPath", "jqFilter"} & set(p.get("valueFrom", {})) for p in outputs) or (
            {"successCondition", "failureCondition"} & set(resource)
        ):
            verbs.add("get")
        rules |= {(group, plural, verb) for verb in verbs}
        if resource.get("setOwnerReference"):
            rules.add(OWNER_REFERENCE)
    return rules


def _constant(node: ast.expr, module: Any) -> str:
    """A literal, a module constant (`GROUP`) or another module's (`tfjob.GROUP`)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        return str(getattr(module, node.id))
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return str(getattr(getattr(module, node.value.id), node.attr))
    raise ValueError(
        f"{module.__name__}: {', '.join(CLIENT_CALLS)} need a literal or a module constant, "
        f"not {ast.unparse(node)}"
    )


def code_rules(package: str = "textcnn") -> set[Rule]:
    """The rights the pod package's code needs: a `get` per custom resource it reads, a
    `patch` per one it patches."""
    root = Path(importlib.import_module(package).__file__ or "").parent
    rules: set[Rule] = set()
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        calls = [
            n
            for n in ast.walk(tree)
            if isinstance(n, ast.Call)
            and isinstance(n.func, ast.Name)
            and n.func.id in CLIENT_CALLS
        ]
        if not calls:
            continue
        name = ".".join((package, *path.relative_to(root).with_suffix("").parts))
        module = importlib.import_module(name.removesuffix(".__init__"))
        for call in calls:
            group, _, plural = (_constant(a, module) for a in call.args[:3])
            assert isinstance(call.func, ast.Name)
            rules.add((group, plural, CLIENT_CALLS[call.func.id]))
    return rules


def required_rules(workflow: Mapping[str, Any], package: str = "textcnn") -> set[Rule]:
    """Everything the pods of `workflow` (a WorkflowTemplate or Workflow) call."""
    return set(EXECUTOR) | template_rules(workflow["spec"]["templates"]) | code_rules(package)


def granted_rules(role: Mapping[str, Any]) -> set[Rule]:
    """The (apiGroup, resource, verb) triples a Role grants."""
    return {
        (group, resource, verb)
        for rule in role.get("rules", [])
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
        for verb in rule.get("verbs", [])
    }
