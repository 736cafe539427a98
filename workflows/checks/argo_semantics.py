"""Argo's own validator, offline: the checks `argo lint` and the controller make of a
workflow that no JSON schema expresses (modelled on workflow/validate/validate.go).

Templates referenced exist, `depends` parses and names tasks of the DAG, without cycles,
a task that reads `{{tasks.X...}}` has X among its ancestors, arguments match the called
template's inputs and enums, workflow parameter values are in their enums, every `{{...}}`
resolves in its scope, `podSpecPatch`es are partial PodSpecs, CronWorkflow schedules, time
zone and `workflowTemplateRef`, templates' Prometheus metrics. The `manifest` of a
`resource` template (create, apply, replace; a patch is partial) is checked as a document
of its own after substituting sample values (the parameter defaults, `sample-wf-abcde`
for workflow.name, input defaults, "1" for what is only known at run time).

Variables are checked as Argo checks them: only tags starting with item., steps.,
inputs., outputs., pod., workflow. or tasks.; `{{=expression}}` tags are skipped (their
language is expr, whose identifiers cannot be told from operators without parsing it).
Unlike Argo, a WorkflowTemplate's `{{workflow.parameters.X}}` must be declared by it.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from croniter import croniter

from workflows.checks import pod_security, yaml_bounded
from workflows.checks.kubernetes import kubernetes_problems
from workflows.checks.paths import as_map, as_maps, child, names_of, shorten, shown
from workflows.expressions import Depends, ExpressionError, ancestors, cycles, evaluate_when

SAMPLE_WORKFLOW_NAME = "sample-wf-abcde"
MAIN_CONTAINER = "main"  # the name Argo gives a container template's container
SAMPLE_VALUE = "1"  # any other runtime value: task outputs, items, undefaulted inputs

WORKFLOW_KINDS = ("Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate", "CronWorkflow")
TEMPLATE_TYPES = (
    "container",
    "script",
    "resource",
    "dag",
    "steps",
    "suspend",
    "containerSet",
    "data",
    "http",
    "plugin",
)
POD_TYPES = frozenset({"container", "script", "resource", "containerSet", "data"})
RESULT_TYPES = frozenset({"container", "script", "containerSet", "data", "http", "plugin"})
RESOURCE_ACTIONS = ("get", "create", "apply", "delete", "replace", "patch")
VALIDATED_ACTIONS = frozenset({"create", "apply", "replace"})  # a patch is partial
CONCURRENCY_POLICIES = ("Allow", "Forbid", "Replace")
CRON_DESCRIPTORS = frozenset(
    {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
)
_EVERY = re.compile(r"^@every (\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")
_FIELD_NAME = re.compile(r"^[a-zA-Z0-9][-a-zA-Z0-9]*$")
_TAG = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
# Argo resolves only tags with these prefixes; anything else is left alone.
CHECKED_PREFIXES = ("item.", "steps.", "inputs.", "outputs.", "pod.", "workflow.", "tasks.")
# Globals Argo defines for every workflow (common.GlobalVar*), besides parameters,
# annotations and labels by name.
GLOBALS = frozenset(
    {
        "workflow.name",
        "workflow.namespace",
        "workflow.uid",
        "workflow.serviceAccountName",
        "workflow.mainEntrypoint",
        "workflow.priority",
        "workflow.parameters",
        "workflow.parameters.json",
        "workflow.annotations",
        "workflow.annotations.json",
        "workflow.labels",
        "workflow.labels.json",
        "tasks.name",
        "steps.name",
    }
)
# Globals with a suffix (creationTimestamp.Y, strftime characters) or set at run time.
GLOBAL_PREFIXES = ("workflow.creationTimestamp", "workflow.duration", "workflow.scheduledTime")
# Only an exit handler (onExit, hooks) sees how the workflow ended.
EXIT_GLOBALS = frozenset({"workflow.status", "workflow.failures"})


def _type(template: Mapping[str, Any]) -> str | None:
    return next((t for t in TEMPLATE_TYPES if template.get(t) is not None), None)


@dataclass(frozen=True)
class Context:
    """What a document is checked against besides itself."""

    templates: Mapping[tuple[str, str], Mapping[str, Any]]  # (kind, name): Workflow*Template
    folder: Path | None  # where the file lies, for a Kustomization's resources
    check: Callable[[Any], list[str]]  # the problems of an embedded document (a manifest)


# ---- Argo: scopes of {{...}} ----------------------------------------------------------------


@dataclass(frozen=True)
class _Scope:
    """The variables visible at one place, and what is needed to say why one is not."""

    names: frozenset[str]
    prefixes: tuple[str, ...] = GLOBAL_PREFIXES
    template: str = ""
    siblings: frozenset[str] = frozenset()  # the tasks (steps) of the enclosing DAG (steps)
    node: str = "tasks"  # "tasks" or "steps"

    def add(self, names: Any = (), prefixes: Sequence[str] = ()) -> _Scope:
        return replace(
            self, names=self.names | frozenset(names), prefixes=self.prefixes + tuple(prefixes)
        )

    def resolves(self, tag: str) -> bool:
        return tag in self.names or tag.startswith(self.prefixes)

    def reason(self, tag: str) -> str:
        parts = tag.split(".")
        if tag in EXIT_GLOBALS:
            return ": only exit handlers (onExit, hooks) see it"
        if tag.startswith("workflow.parameters."):
            return f": no workflow parameter {shown(tag.split('.', 2)[2])}"
        if parts[0] == "item":
            return ": no such key in withItems (or no withItems/withParam here)"
        if parts[0] in ("inputs", "outputs") and len(parts) > 2:
            return (
                f": template {shown(self.template)} declares no {parts[0][:-1]} "
                f"{parts[1][:-1]} {shown(parts[2])}"
            )
        if parts[0] == self.node and len(parts) > 1:
            name, noun = parts[1], self.node[:-1]
            if name not in self.siblings:
                return f": no {noun} {shown(name)} here"
            if not any(n.startswith(f"{self.node}.{name}.") for n in self.names):
                return (
                    f": {noun} {shown(name)} is not among the dependencies of this {noun}; "
                    "add it to depends"
                    if self.node == "tasks"
                    else f": {noun} {shown(name)} does not run in an earlier step group"
                )
            return f": the template of {noun} {shown(name)} has no such output"
        return ""


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every string in `value`, map keys included (Argo substitutes those too)."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            where = child(path, key)
            if isinstance(key, str):
                yield where, key
            yield from _strings(item, where)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, child(path, i, item))


def _unresolved(value: Any, path: str, scope: _Scope) -> list[str]:
    out = []
    for where, text in _strings(value, path):
        for match in _TAG.finditer(text):
            tag = match.group(1).strip()
            if tag.startswith("=") or not tag.startswith(CHECKED_PREFIXES):
                continue
            if not scope.resolves(tag):
                out.append(f"{where}: {{{{{shorten(tag)}}}}} does not resolve{scope.reason(tag)}")
    return out


def _local_names(template: Mapping[str, Any]) -> set[str]:
    """What a template may reference about itself."""
    inputs, outputs = as_map(template.get("inputs")), as_map(template.get("outputs"))
    names = {"outputs.result", "outputs.exitCode"}  # self-references in metrics
    parameters = names_of(inputs.get("parameters"))
    if parameters:
        names.add("inputs.parameters")
    names |= {f"inputs.parameters.{p}" for p in parameters}
    for a in names_of(inputs.get("artifacts")):
        names |= {f"inputs.artifacts.{a}", f"inputs.artifacts.{a}.path"}
    for p in names_of(outputs.get("parameters")):
        names |= {f"outputs.parameters.{p}", f"outputs.parameters.{p}.path"}
    for a in names_of(outputs.get("artifacts")):
        names |= {f"outputs.artifacts.{a}", f"outputs.artifacts.{a}.path"}
    if _type(template) in POD_TYPES:
        names.add("pod.name")
    return names


def _outputs(
    prefix: str, call: Mapping[str, Any], template: Mapping[str, Any] | None
) -> tuple[set[str], tuple[str, ...]]:
    """Names (and prefixes) a later task or step may reference about the task or step
    `prefix` that ran `template` (Argo's addOutputsToScope)."""
    names = {f"{prefix}.{k}" for k in ("id", "startedAt", "finishedAt", "hostNodeName", "status")}
    if template is None:
        return names, (f"{prefix}.",)  # its template is missing, which is reported already
    if _type(template) in RESULT_TYPES:
        names |= {f"{prefix}.outputs.result", f"{prefix}.exitCode"}
    if template.get("daemon"):
        names.add(f"{prefix}.ip")
    outputs = as_map(template.get("outputs"))
    names |= {f"{prefix}.outputs.parameters.{p}" for p in names_of(outputs.get("parameters"))}
    names |= {f"{prefix}.outputs.artifacts.{a}" for a in names_of(outputs.get("artifacts"))}
    if call.get("withItems") or call.get("withParam"):
        names.add(f"{prefix}.outputs.parameters")  # the aggregate of every item
    return names, ()


def _union(scopes: Iterable[tuple[set[str], tuple[str, ...]]]) -> tuple[set[str], tuple[str, ...]]:
    names: set[str] = set()
    prefixes: tuple[str, ...] = ()
    for more, more_prefixes in scopes:
        names |= more
        prefixes += more_prefixes
    return names, prefixes


def _item_scope(node: Mapping[str, Any]) -> tuple[set[str], tuple[str, ...]]:
    items = node.get("withItems")
    if isinstance(items, list) and items:
        names: set[str] = set()
        for item in items:
            if isinstance(item, Mapping):
                names |= {f"item.{k}" for k in item}
            elif isinstance(item, list):
                names |= {f"item.[{i}]" for i in range(len(item))}
            else:
                names.add("item")
        return names, ()
    if node.get("withParam"):
        return {"item"}, ("item.",)
    return ({"item"}, ()) if node.get("withSequence") else (set(), ())


# ---- Argo: workflow-level checks -----------------------------------------------------------


def _parameter_problems(parameters: Any, path: str, need_values: bool) -> list[str]:
    """Names unique, values present where needed and within their enums."""
    out, seen = [], set()
    for i, p in enumerate(as_maps(parameters)):
        name, where = p.get("name"), child(path, i, p)
        if name in seen:
            out.append(f"{where}.name: duplicate parameter {shown(name)}")
        seen.add(name)
        value = p.get("value")
        if need_values and value is None and p.get("valueFrom") is None:
            out.append(f"{where}.value: required (or valueFrom)")
        enum = p.get("enum")
        if isinstance(enum, list) and value is not None and value not in enum:
            out.append(f"{where}.value: {shown(value)} is not one of the enum {shown(enum)}")
    return out


def _cron_problems(spec: Mapping[str, Any]) -> list[str]:
    out = []
    schedules = [("spec.schedule", spec["schedule"])] if "schedule" in spec else []
    schedules += [(f"spec.schedules[{i}]", s) for i, s in enumerate(spec.get("schedules") or [])]
    for where, text in schedules:
        if not isinstance(text, str) or not _valid_cron(text):
            out.append(
                f"{where}: {shown(text)} is not a valid cron schedule (five fields: minute "
                "hour day-of-month month day-of-week, or @daily, @every 1h, ...)"
            )
    timezone = spec.get("timezone")
    if isinstance(timezone, str) and timezone:
        try:
            zoneinfo.ZoneInfo(timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            out.append(
                f"spec.timezone: {shown(timezone)} is not an IANA time zone "
                "(e.g. Etc/UTC, Europe/Paris)"
            )
    policy = spec.get("concurrencyPolicy")
    if policy is not None and policy not in CONCURRENCY_POLICIES:
        out.append(
            f"spec.concurrencyPolicy: {shown(policy)} is not one of "
            f"{', '.join(CONCURRENCY_POLICIES)}"
        )
    deadline = spec.get("startingDeadlineSeconds")
    if isinstance(deadline, int) and deadline < 0:
        out.append(f"spec.startingDeadlineSeconds: {deadline} is negative")
    return out


def _valid_cron(text: str) -> bool:
    """What Argo's cron.ParseStandard takes: five fields or a descriptor (croniter would
    also take a sixth, seconds, field)."""
    text = text.strip()
    if text.startswith("@"):
        return text in CRON_DESCRIPTORS or bool(_EVERY.match(text))
    return len(text.split()) == 5 and croniter.is_valid(text)


def _reference_problems(spec: Mapping[str, Any], base: str, ctx: Context) -> list[str]:
    """A spec that runs a WorkflowTemplate: the template exists, the arguments given are
    its parameters and within their enums, and every parameter ends up with a value."""
    ref = as_map(spec.get("workflowTemplateRef"))
    kind = "ClusterWorkflowTemplate" if ref.get("clusterScope") else "WorkflowTemplate"
    target = ctx.templates.get((kind, str(ref.get("name"))))
    if target is None:
        return [
            f"{base}.workflowTemplateRef.name: {kind} {shown(ref.get('name'))} is not among "
            "the linted documents"
        ]
    out = []
    if spec.get("templates"):
        out.append(f"{base}.templates: not allowed with workflowTemplateRef")
    target_spec = as_map(target.get("spec"))
    declared = {
        str(p.get("name")): p
        for p in as_maps(as_map(target_spec.get("arguments")).get("parameters"))
    }
    path = f"{base}.arguments.parameters"
    given = as_maps(as_map(spec.get("arguments")).get("parameters"))
    out += _parameter_problems(given, path, need_values=True)
    for i, p in enumerate(given):
        name, where = str(p.get("name")), child(path, i, p)
        enum = declared.get(name, {}).get("enum")
        if name not in declared:
            out.append(f"{where}: not a parameter of {kind} {ref.get('name')}")
        elif isinstance(enum, list) and p.get("value") is not None and p["value"] not in enum:
            out.append(
                f"{where}.value: {shown(p['value'])} is not one of the enum {shown(enum)} of "
                f"{kind} {ref.get('name')}"
            )
    supplied = {str(p.get("name")) for p in given}
    for name, p in declared.items():
        if p.get("value") is None and p.get("valueFrom") is None and name not in supplied:
            out.append(
                f"{path}: {kind} {ref.get('name')} parameter {shown(name)} has no value; supply one"
            )
    entrypoint = spec.get("entrypoint")
    if entrypoint and entrypoint not in names_of(target_spec.get("templates")):
        out.append(
            f"{base}.entrypoint: no template {shown(entrypoint)} in {kind} {ref.get('name')}"
        )
    return out


def workflow_problems(doc: Mapping[str, Any], ctx: Context) -> list[str]:
    spec, base, out = as_map(doc.get("spec")), "spec", []
    if doc.get("kind") == "CronWorkflow":
        out += _cron_problems(spec)
        spec, base = as_map(spec.get("workflowSpec")), "spec.workflowSpec"
    if spec.get("workflowTemplateRef") is not None:
        return out + _reference_problems(spec, base, ctx)
    return out + _WorkflowSpec(doc, spec, base, ctx).problems()


# ---- Argo: templates --------------------------------------------------------------------


@dataclass
class _WorkflowSpec:
    """Semantic checks of a workflow spec that holds its own templates."""

    doc: Mapping[str, Any]
    spec: Mapping[str, Any]
    base: str
    ctx: Context
    templates: dict[str, Mapping[str, Any]] = field(init=False)
    parameters: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.templates = {str(t.get("name")): t for t in as_maps(self.spec.get("templates"))}
        self.parameters = {
            str(p.get("name")): p.get("value")
            for p in as_maps(as_map(self.spec.get("arguments")).get("parameters"))
        }

    def problems(self) -> list[str]:
        spec, base = self.spec, self.base
        is_template = self.doc.get("kind") in ("WorkflowTemplate", "ClusterWorkflowTemplate")
        out = _parameter_problems(
            as_map(spec.get("arguments")).get("parameters"),
            f"{base}.arguments.parameters",
            need_values=not is_template,
        )
        out += self._name_problems(spec.get("templates"), f"{base}.templates", "template")
        entrypoint = spec.get("entrypoint")
        if entrypoint is None and not is_template:
            out.append(f"{base}.entrypoint: required")
        for key in ("entrypoint", "onExit"):
            name = spec.get(key)
            if name is not None and name not in self.templates:
                out.append(f"{base}.{key}: no template {shown(name)} in this workflow")
        for hook, value in as_map(spec.get("hooks")).items():
            name = as_map(value).get("template")
            if name is not None and name not in self.templates:
                out.append(
                    f"{base}.hooks.{hook}.template: no template {shown(name)} in this workflow"
                )
        exit_templates = self._exit_templates()
        for i, template in enumerate(as_maps(spec.get("templates"))):
            name = str(template.get("name"))
            scope = _Scope(
                frozenset(self._globals(name in exit_templates) | _local_names(template)),
                template=name,
            )
            out += self._template_problems(template, child(f"{base}.templates", i, template), scope)
        return out

    # -- helpers --

    def _globals(self, exit_handler: bool) -> set[str]:
        names = set(GLOBALS) | {f"workflow.parameters.{p}" for p in self.parameters}
        for meta in (as_map(self.doc.get("metadata")), as_map(self.spec.get("workflowMetadata"))):
            names |= {f"workflow.annotations.{k}" for k in as_map(meta.get("annotations"))}
            names |= {f"workflow.labels.{k}" for k in as_map(meta.get("labels"))}
        for template in self.templates.values():
            outputs = as_map(template.get("outputs"))
            for kind in ("parameters", "artifacts"):
                names |= {
                    f"workflow.outputs.{kind}.{o['globalName']}"
                    for o in as_maps(outputs.get(kind))
                    if o.get("globalName")
                }
        return names | EXIT_GLOBALS if exit_handler else names

    def _calls(self, template: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        """The tasks or steps of a DAG or steps template."""
        if _type(template) == "dag":
            return as_maps(as_map(template.get("dag")).get("tasks"))
        groups = template.get("steps") if _type(template) == "steps" else None
        return [s for group in (groups if isinstance(groups, list) else []) for s in as_maps(group)]

    def _exit_templates(self) -> set[str]:
        """Templates that run as exit handlers, and everything they call."""
        roots = [self.spec.get("onExit")] + [
            as_map(h).get("template") for h in as_map(self.spec.get("hooks")).values()
        ]
        for template in self.templates.values():
            for call in self._calls(template):
                roots += [call.get("onExit")] + [
                    as_map(h).get("template") for h in as_map(call.get("hooks")).values()
                ]
        seen: set[str] = set()
        todo = [r for r in roots if isinstance(r, str)]
        while todo:
            name = todo.pop()
            if name in seen or name not in self.templates:
                continue
            seen.add(name)
            todo += [
                c["template"]
                for c in self._calls(self.templates[name])
                if isinstance(c.get("template"), str)
            ]
        return seen

    def _name_problems(self, items: Any, path: str, noun: str) -> list[str]:
        out, seen = [], set()
        for i, item in enumerate(as_maps(items)):
            name = item.get("name")
            where = child(path, i, item)
            if not isinstance(name, str) or not _FIELD_NAME.match(name) or len(name) > 128:
                out.append(
                    f"{where}.name: {shown(name)} must be letters, digits and '-', starting "
                    "with a letter or digit, at most 128 characters"
                )
            elif name in seen:
                out.append(f"{where}.name: duplicate {noun} name {shown(name)}")
            seen.add(name)
        return out

    def _resolve(
        self, call: Mapping[str, Any], path: str
    ) -> tuple[Mapping[str, Any] | None, list[str]]:
        """The template a task or step runs, or why it cannot be found."""
        if isinstance(call.get("inline"), Mapping):
            return call["inline"], []
        ref = call.get("templateRef")
        if isinstance(ref, Mapping):
            kind = "ClusterWorkflowTemplate" if ref.get("clusterScope") else "WorkflowTemplate"
            other = self.ctx.templates.get((kind, str(ref.get("name"))))
            if other is None:
                return None, [
                    f"{path}.templateRef.name: {kind} {shown(ref.get('name'))} is not "
                    "among the linted documents"
                ]
            templates = as_maps(as_map(other.get("spec")).get("templates"))
            found = {str(t.get("name")): t for t in templates}
            if ref.get("template") not in found:
                return None, [
                    f"{path}.templateRef.template: no template {shown(ref.get('template'))} "
                    f"in {kind} {ref.get('name')}"
                ]
            return found[ref["template"]], []
        name = call.get("template")
        if name not in self.templates:
            return None, [f"{path}.template: no template {shown(name)} in this workflow"]
        return self.templates[name], []

    def _argument_problems(
        self, call: Mapping[str, Any], target: Mapping[str, Any], path: str
    ) -> list[str]:
        """Arguments against the called template's inputs (names, required, enums)."""
        out = []
        arguments, inputs = as_map(call.get("arguments")), as_map(target.get("inputs"))
        target_name = target.get("name")
        declared = {str(p.get("name")): p for p in as_maps(inputs.get("parameters"))}
        given = as_maps(arguments.get("parameters"))
        for i, p in enumerate(given):
            name, where = str(p.get("name")), child(f"{path}.arguments.parameters", i, p)
            value = p.get("value")
            if name not in declared:
                out.append(
                    f"{where}: template {shown(target_name)} has no input parameter {shown(name)}"
                )
                continue
            if value is None and p.get("valueFrom") is None:
                out.append(f"{where}.value: required (or valueFrom)")
            enum = declared[name].get("enum")
            if (
                isinstance(enum, list)
                and isinstance(value, str)
                and "{{" not in value
                and value not in enum
            ):
                out.append(
                    f"{where}.value: {shown(value)} is not one of the enum {shown(enum)} of "
                    f"template {shown(target_name)}"
                )
        supplied = {str(p.get("name")) for p in given}
        for name, p in declared.items():
            if (
                name not in supplied
                and p.get("value") is None
                and p.get("default") is None
                and p.get("valueFrom") is None
            ):
                out.append(
                    f"{path}.arguments.parameters: missing {shown(name)}, an input of "
                    f"template {shown(target_name)} without a default"
                )
        artifacts = {str(a.get("name")): a for a in as_maps(inputs.get("artifacts"))}
        given_artifacts = {str(a.get("name")) for a in as_maps(arguments.get("artifacts"))}
        for name in sorted(given_artifacts - artifacts.keys()):
            out.append(
                f"{path}.arguments.artifacts[{name}]: template {shown(target_name)} has no "
                f"input artifact {shown(name)}"
            )
        locations = {
            "from",
            "fromExpression",
            "optional",
            "raw",
            "s3",
            "gcs",
            "git",
            "http",
            "artifactory",
            "hdfs",
            "oss",
            "azure",
            "plugin",
        }
        for name, artifact in artifacts.items():
            if name not in given_artifacts and not locations & artifact.keys():
                out.append(
                    f"{path}.arguments.artifacts: missing {shown(name)}, an input artifact "
                    f"of template {shown(target_name)} without a location"
                )
        return out

    def _template_problems(
        self, template: Mapping[str, Any], path: str, scope: _Scope
    ) -> list[str]:
        kind = _type(template)
        metrics = _metric_problems(template, path)
        if kind == "dag":
            return metrics + self._dag_problems(template, path, scope)
        if kind == "steps":
            return metrics + self._steps_problems(template, path, scope)
        out = metrics + _unresolved(template, path, scope)
        if kind == "resource":
            out += self._resource_problems(template, path)
        if "podSpecPatch" in template:
            out += self._pod_spec_patch_problems(template, path)
        if kind in ("container", "script"):
            # The pod: the workflow's securityContext, then the template's; Argo's own
            # executor containers (init, wait) are the controller's configuration.
            pod = {
                **template,
                "securityContext": {
                    **as_map(self.spec.get("securityContext")),
                    **as_map(template.get("securityContext")),
                },
            }
            out += pod_security.problems(pod, [(f"{path}.{kind}", as_map(template[kind]))], path)
        return out

    def _call_problems(
        self, call: Mapping[str, Any], path: str, scope: _Scope
    ) -> tuple[Mapping[str, Any] | None, list[str]]:
        """What a task and a step share: the template called, its arguments, hooks,
        `{{...}}` in the call, and `when` with the parameter defaults."""
        target, out = self._resolve(call, path)
        if target is not None:
            out += self._argument_problems(call, target, path)
        exits = [("onExit", call.get("onExit"))] + [
            (f"hooks.{k}.template", as_map(h).get("template"))
            for k, h in as_map(call.get("hooks")).items()
        ]
        out += [
            f"{path}.{key}: no template {shown(name)} in this workflow"
            for key, name in exits
            if name is not None and name not in self.templates
        ]
        names, prefixes = _item_scope(call)
        out += _unresolved(call, path, scope.add(names, prefixes))
        out += self._when_problems(call.get("when"), f"{path}.when")
        return target, out

    def _when_problems(self, when: Any, path: str) -> list[str]:
        """Evaluate `when` as Argo would with the parameter defaults, when it only reads
        workflow parameters that have one."""
        if not isinstance(when, str):
            return []
        unknown = False

        def value(match: re.Match[str]) -> str:
            nonlocal unknown
            tag = match.group(1).strip()
            name = tag.removeprefix("workflow.parameters.")
            if name == tag or self.parameters.get(name) is None:
                unknown = True
                return ""
            return str(self.parameters[name])

        text = _TAG.sub(value, when)
        if unknown:
            return []
        try:
            evaluate_when(text)
        except ExpressionError as e:
            return [f"{path}: {e} (with the parameter defaults)"]
        return []

    def _dag_problems(self, template: Mapping[str, Any], path: str, scope: _Scope) -> list[str]:
        dag = as_map(template.get("dag"))
        tasks = {str(t.get("name")): t for t in as_maps(dag.get("tasks"))}
        tasks_path = f"{path}.dag.tasks"
        out = self._name_problems(dag.get("tasks"), tasks_path, "task")
        if not tasks:
            out.append(f"{tasks_path}: a DAG needs at least one task")
        parents: dict[str, set[str]] = {}
        uses_depends = any(t.get("depends") for t in tasks.values())
        for i, task in enumerate(as_maps(dag.get("tasks"))):
            name, where = str(task.get("name")), child(tasks_path, i, task)
            parents[name], errors = self._dependencies(task, tasks, where, uses_depends)
            out += errors
        found = ancestors(parents)
        out += _cycle_problems(parents, tasks_path)
        outputs = {
            name: _outputs(f"tasks.{name}", task, self._resolve(task, "")[0])
            for name, task in tasks.items()
        }
        dag_scope = replace(scope, siblings=frozenset(tasks), node="tasks")
        for i, task in enumerate(as_maps(dag.get("tasks"))):
            visible = _union(outputs[a] for a in found[str(task.get("name"))])
            out += self._call_problems(task, child(tasks_path, i, task), dag_scope.add(*visible))[1]
        target = dag.get("target")
        for name in target.split() if isinstance(target, str) else []:
            if "{{" not in name and name not in tasks:
                out.append(f"{path}.dag.target: no task {shown(name)} in this DAG")
        # The DAG's own outputs and settings may read any task.
        rest = {k: v for k, v in template.items() if k != "dag"}
        rest["dag"] = {k: v for k, v in dag.items() if k != "tasks"}
        return out + _unresolved(rest, path, dag_scope.add(*_union(outputs.values())))

    def _dependencies(
        self, task: Mapping[str, Any], tasks: Mapping[str, Any], path: str, uses_depends: bool
    ) -> tuple[set[str], list[str]]:
        out: list[str] = []
        depends, dependencies = task.get("depends"), task.get("dependencies")
        if uses_depends and dependencies:
            out.append(f"{path}: a DAG cannot use both depends and dependencies")
        names: set[str] = set()
        if isinstance(depends, str) and depends.strip():
            try:
                names = set(Depends.parse(depends).tasks)
            except ExpressionError as e:
                return set(), [f"{path}.depends: {e}"]
            where = f"{path}.depends"
        else:
            names = (
                {d for d in dependencies if isinstance(d, str)}
                if isinstance(dependencies, list)
                else set()
            )
            where = f"{path}.dependencies"
        for missing in sorted(names - tasks.keys()):
            out.append(f"{where}: no task {shown(missing)} in this DAG")
        return names & tasks.keys(), out

    def _steps_problems(self, template: Mapping[str, Any], path: str, scope: _Scope) -> list[str]:
        groups = [g if isinstance(g, list) else [] for g in template.get("steps") or []]
        every = [s for g in groups for s in as_maps(g)]
        out = self._name_problems(every, f"{path}.steps", "step")
        siblings = frozenset(str(s.get("name")) for s in every)
        step_scope = replace(scope, siblings=siblings, node="steps")
        earlier: tuple[set[str], tuple[str, ...]] = (set(), ())
        for i, group in enumerate(groups):
            produced = []
            for j, step in enumerate(group):
                if not isinstance(step, Mapping):
                    continue
                target, errors = self._call_problems(
                    step, child(f"{path}.steps[{i}]", j, step), step_scope.add(*earlier)
                )
                out += errors
                produced.append(_outputs(f"steps.{step.get('name')}", step, target))
            earlier = _union([earlier, *produced])
        rest = {k: v for k, v in template.items() if k != "steps"}
        return out + _unresolved(rest, path, step_scope.add(*earlier))

    # -- resource templates --

    def _samples(self, template: Mapping[str, Any]) -> dict[str, str]:
        """Sample values of the variables a resource manifest may use."""
        meta = as_map(self.doc.get("metadata"))
        samples = {
            "workflow.name": SAMPLE_WORKFLOW_NAME,
            "workflow.namespace": str(meta.get("namespace") or "default"),
            "workflow.uid": "00000000-0000-4000-8000-000000000000",
            "workflow.serviceAccountName": str(self.spec.get("serviceAccountName") or "default"),
            "workflow.creationTimestamp": "2024-01-01T00:00:00Z",
            "pod.name": f"{SAMPLE_WORKFLOW_NAME}-1234567890",
        }
        samples |= {
            f"workflow.parameters.{k}": str(v) for k, v in self.parameters.items() if v is not None
        }
        for p in as_maps(as_map(template.get("inputs")).get("parameters")):
            default = p.get("value", p.get("default"))
            if default is not None:
                samples[f"inputs.parameters.{p.get('name')}"] = str(default)
        return samples

    def _substituted(self, template: Mapping[str, Any], text: str) -> str:
        """`text` with every `{{...}}` replaced by its sample value; a YAMLError when that
        would be longer than a file the lint reads (many tags of one long default)."""
        samples = self._samples(template)
        values = [samples.get(m.group(1).strip(), SAMPLE_VALUE) for m in _TAG.finditer(text)]
        size = len(_TAG.sub("", text)) + sum(len(v) for v in values)
        if size > yaml_bounded.MAX_FILE_BYTES:
            raise yaml.YAMLError(
                f"{size:,} characters once substituted, past the "
                f"{yaml_bounded.MAX_FILE_BYTES:,} the lint reads"
            )
        found = iter(values)
        return _TAG.sub(lambda _: next(found), text)

    def _pod_spec_patch_problems(self, template: Mapping[str, Any], path: str) -> list[str]:
        """A `podSpecPatch` is substituted, then merged into the pod spec by container
        name: it must parse to a valid partial PodSpec whose containers the pod has."""
        where = f"{path}.podSpecPatch"
        raw = template["podSpecPatch"]
        try:
            patch = yaml_bounded.load(self._substituted(template, str(raw)))
        except yaml.YAMLError as e:
            return [
                f"{where}: not JSON or YAML after substituting sample values: "
                f"{' '.join(str(e).split())}"
            ]
        if not isinstance(patch, Mapping):
            return [f"{where}: must be a PodSpec object"]
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sample"}, "spec": patch}
        # A partial spec: its schema only (the pod it patches is checked as a whole).
        out = [f"{where}: {line.removeprefix('spec.')}" for line in kubernetes_problems(pod)]
        names = {MAIN_CONTAINER} | set(names_of(template.get("sidecars")))
        for i, container in enumerate(as_maps(patch.get("containers"))):
            if container.get("name") not in names:
                out.append(
                    f"{where}.containers[{i}].name: {shown(container.get('name'))} is not a "
                    f"container of this template ({', '.join(sorted(names))}): the "
                    "patch would add a container with no image"
                )
        return out

    def _resource_problems(self, template: Mapping[str, Any], path: str) -> list[str]:
        resource = as_map(template.get("resource"))
        action = resource.get("action")
        if action not in RESOURCE_ACTIONS:
            return [
                f"{path}.resource.action: {shown(action)} is not one of "
                f"{', '.join(RESOURCE_ACTIONS)}"
            ]
        manifest = resource.get("manifest")
        if action not in VALIDATED_ACTIONS or not isinstance(manifest, str):
            return []
        where = f"{path}.resource.manifest"
        try:
            docs = yaml_bounded.load_all(self._substituted(template, manifest))
        except yaml.YAMLError as e:
            return [
                f"{where}: not valid YAML after substituting sample values: "
                f"{' '.join(str(e).split())}"
            ]
        if len(docs) != 1:
            return [f"{where}: must hold exactly one document, found {len(docs)}"]
        return [f"{where}: {line}" for line in self.ctx.check(docs[0])]


def _metric_problems(template: Mapping[str, Any], path: str) -> list[str]:
    """A template's Prometheus metrics, as Argo's validator checks them beyond the schema
    (which requires a name and a help text, and in v4 checks names and label keys): one
    gauge, counter or histogram with a value, no `resourcesDuration` in a real-time gauge."""
    out = []
    metrics = as_maps(as_map(template.get("metrics")).get("prometheus"))
    for i, metric in enumerate(metrics):
        where = child(f"{path}.metrics.prometheus", i, metric)
        kinds = [k for k in ("gauge", "counter", "histogram") if k in metric]
        if len(kinds) != 1:
            out.append(f"{where}: give exactly one of gauge, counter, histogram")
        for kind in kinds:
            value = str(as_map(metric[kind]).get("value") or "")
            if not value:
                out.append(f"{where}.{kind}: missing value")
            realtime = as_map(metric[kind]).get("realtime")
            if kind == "gauge" and realtime and "resourcesDuration." in value:
                out.append(f"{where}.gauge: 'resourcesDuration.*' cannot be used in real time")
    return out


def _cycle_problems(parents: Mapping[str, set[str]], path: str) -> list[str]:
    return [
        f"{path}: dependency cycle (each task depends on the next): {' -> '.join(c)}"
        for c in cycles(parents)
    ]
