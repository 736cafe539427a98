"""A task made ready to run: every `{{...}}` substituted, pod paths remapped under
`<output_dir>/pods/<task>/`, its artifacts and output parameters located, its command and
environment as its container would have them.

Volumes: a persistent volume claim is the shared folder `<output_dir>/volumes/<claim>`
(the local cluster's claim controller makes it), which every task mounting the claim
sees; an emptyDir is a folder of the task's pod. Pod paths under a mount are remapped to
them."""

from __future__ import annotations

import copy
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workflows.credentials import without_credentials
from workflows.errors import WorkflowError
from workflows.local.downward import resource_env
from workflows.local.hooks import Hooks
from workflows.local.substitution import (
    artifact_key,
    check_key,
    claim_dir,
    expand_env_refs,
    pod_roots,
    remap_literal,
    remap_path,
    substitute,
)
from workflows.local.tasks import Retry, Task

# A local task with no activeDeadlineSeconds of its own is stopped after this: a run of
# the runner never hangs.
DEFAULT_DEADLINE_S = 24 * 3600.0
# Where Argo's executor points ARGO_PROGRESS_FILE in the main container.
PROGRESS_ENV, PROGRESS_PATH = "ARGO_PROGRESS_FILE", "/var/run/argo/progress"


@dataclass(frozen=True)
class Job:
    task: str
    template: dict[str, Any]  # substituted and remapped
    parameters: dict[str, str]  # its input parameters
    pod_dir: Path
    log: Path
    roots: frozenset[str]  # the pod's top folders that exist in it (/tmp and the like)
    inputs: list[tuple[str, str, Path]]  # artifact name, key, local path
    outputs: list[tuple[str, str, Path]]
    out_params: list[tuple[str, Path | None, str | None]]  # name, local path, default
    command: list[str] | None  # None: a resource template
    env: dict[str, str]
    volumes: list[Path] = field(default_factory=list)  # local folders of its volume mounts
    retry: Retry | None = None
    deadline_s: float = DEFAULT_DEADLINE_S  # its activeDeadlineSeconds
    # Its Prometheus metrics, unsubstituted: Argo resolves them once the task has ended
    # ({{status}}, {{duration}}, its outputs), in `scope` and those.
    metrics: list[dict[str, Any]] = field(default_factory=list)
    scope: dict[str, str] = field(default_factory=dict)

    def process_env(self) -> dict[str, str]:
        """Its environment, with ARGO_PROGRESS_FILE as Argo's executor sets it."""
        return {**self.env, PROGRESS_ENV: str(self.progress_file)}

    @property
    def progress_file(self) -> Path:
        return self.pod_dir / PROGRESS_PATH.lstrip("/")

    def fresh_pod(self) -> None:
        """The task's pod folder, empty, as a new pod has it."""
        shutil.rmtree(self.pod_dir, ignore_errors=True)
        for root in self.roots:  # a pod has /tmp and the like; deeper folders it must make
            (self.pod_dir / Path(root).parts[1]).mkdir(parents=True, exist_ok=True)
        for folder in self.volumes:  # a mounted volume exists, empty or not
            folder.mkdir(parents=True, exist_ok=True)


@dataclass(frozen=True)
class Context:
    """What preparing a job needs of the run."""

    output_dir: Path
    globals: dict[str, str]  # workflow.name, workflow.parameters.x, ...
    volumes: dict[str, dict[str, Any]]  # the workflow's, substituted
    env: dict[str, str]  # the runner's settings, over what a container declares
    hooks: Hooks
    workflow_name: str

    def log_path(self, task: str) -> Path:
        return self.output_dir / "logs" / f"{task}.log"

    def output_key(self, task: str, artifact: Mapping[str, Any]) -> str:
        """Where an output artifact goes: its own key, or one of the task's (Argo names
        the default by the pod; one per task and artifact is what matters here)."""
        return artifact_key(artifact) or f"{self.workflow_name}/{task}/{artifact['name']}"

    def volume(self, template: Mapping[str, Any], name: str) -> Mapping[str, Any]:
        """The volume `name` as the template sees it (its own, then the workflow's)."""
        volumes = {**self.volumes, **{v["name"]: v for v in template.get("volumes", [])}}
        return volumes.get(name, {})


def prepare(
    ctx: Context, task: Task, scope: Mapping[str, str], art_scope: Mapping[str, str]
) -> Job:
    """The task as its pod would run it, given what it can see: `scope` (parameters) and
    `art_scope` (artifact keys of the tasks before it)."""
    where = f"task {task.name!r}"
    tmpl, pod = task.template, ctx.output_dir / "pods" / task.name
    twhere = f"{where} (template {tmpl['name']!r})"
    given, given_art = _arguments(task, scope, art_scope, where)
    inputs = _input_parameters(ctx, tmpl, given, twhere)
    # An emptyDir is the pod's own: its literal mount paths remap like the pod's paths.
    roots = pod_roots(tmpl) | {
        m["mountPath"]
        for m in tmpl.get("container", {}).get("volumeMounts", [])
        if "emptyDir" in ctx.volume(tmpl, m["name"]) and "{{" not in m["mountPath"]
    }
    tscope = _template_scope(ctx, tmpl, inputs, pod)
    unresolved = copy.deepcopy(tmpl)
    if (container := unresolved.get("container")) is not None:
        # Literal pod paths move under the pod folder, before substitution adds real ones.
        _map_args(container, lambda a: remap_literal(a, roots, pod))
    metrics = (unresolved.pop("metrics", None) or {}).get("prometheus") or []
    resolved = substitute(unresolved, tscope, twhere)
    mounts, folders = _mounts(ctx, resolved, pod, twhere)
    if mounts:
        _map_args(resolved["container"], lambda a: remap_path(a, mounts))
    command, env = _command_and_env(ctx, resolved, twhere)
    deadline = resolved.get("activeDeadlineSeconds")
    try:
        deadline_s = DEFAULT_DEADLINE_S if deadline is None else float(deadline)
    except ValueError:
        raise WorkflowError(f"{twhere}: activeDeadlineSeconds {deadline!r} is no number") from None
    retry = resolved.get("retryStrategy")
    return Job(
        task=task.name,
        template=resolved,
        parameters=inputs,
        pod_dir=pod,
        log=ctx.log_path(task.name),
        roots=frozenset(roots),
        inputs=_input_artifacts(resolved, given_art, pod, twhere),
        outputs=_output_artifacts(ctx, task, resolved, pod, twhere),
        out_params=_output_parameters(resolved, pod),
        command=command,
        env=env,
        volumes=folders,
        retry=None if retry is None else Retry.parse(retry, twhere),
        deadline_s=deadline_s,
        metrics=metrics,
        scope=tscope,
    )


def output_keys(ctx: Context, task: Task, scope: Mapping[str, str]) -> dict[str, str]:
    """Where the task's output artifacts go (by name), the input parameters their keys
    name resolved from the task's arguments in `scope` (the globals and the outputs of
    the tasks before it), as `prepare` would put them."""
    where = f"task {task.name!r}"
    artifacts = task.template.get("outputs", {}).get("artifacts", [])
    given = {p["name"]: p for p in task.spec.get("arguments", {}).get("parameters", [])}
    tscope = dict(ctx.globals)
    for a in artifacts:
        for name in _INPUT_PARAMETER.findall(ctx.output_key(task.name, a)):
            if name not in given:
                raise WorkflowError(f"{where}: input parameter {name!r} was not supplied")
            value = substitute(str(given[name].get("value", "")), scope, f"{where} arguments")
            tscope[f"inputs.parameters.{name}"] = value
    return {a["name"]: substitute(ctx.output_key(task.name, a), tscope, where) for a in artifacts}


_INPUT_PARAMETER = re.compile(r"\{\{\s*inputs\.parameters\.([-\w]+)\s*\}\}")


def _arguments(
    task: Task, scope: Mapping[str, str], art_scope: Mapping[str, str], where: str
) -> tuple[dict[str, str], dict[str, str]]:
    """The task's arguments: parameter values, and artifact keys."""
    arguments = task.spec.get("arguments", {})
    given = {
        p["name"]: substitute(str(p.get("value", "")), scope, f"{where} arguments")
        for p in arguments.get("parameters", [])
    }
    given_art: dict[str, str] = {}
    for a in arguments.get("artifacts", []):
        if "from" in a:
            given_art[a["name"]] = substitute(a["from"], art_scope, f"{where} artifact from")
        elif (key := artifact_key(a)) is not None:
            given_art[a["name"]] = substitute(key, scope, f"{where} arguments")
    return given, given_art


def _input_parameters(
    ctx: Context, tmpl: Mapping[str, Any], given: Mapping[str, str], where: str
) -> dict[str, str]:
    inputs: dict[str, str] = {}
    for p in tmpl.get("inputs", {}).get("parameters", []):
        if p["name"] in given:
            inputs[p["name"]] = given[p["name"]]
        elif "value" in p or "default" in p:
            inputs[p["name"]] = substitute(
                str(p.get("value", p.get("default"))), ctx.globals, where
            )
        else:
            raise WorkflowError(f"{where}: input parameter {p['name']!r} was not supplied")
    return inputs


def _template_scope(
    ctx: Context, tmpl: Mapping[str, Any], inputs: Mapping[str, str], pod: Path
) -> dict[str, str]:
    """What `{{...}}` in the template resolves to: globals, inputs, and the local paths of
    its artifacts and output parameter files."""
    scope = {**ctx.globals, **{f"inputs.parameters.{k}": v for k, v in inputs.items()}}
    for section in ("inputs", "outputs"):
        for a in tmpl.get(section, {}).get("artifacts", []):
            scope[f"{section}.artifacts.{a['name']}.path"] = str(pod / a["path"].lstrip("/"))
    for p in tmpl.get("outputs", {}).get("parameters", []):
        if "path" in p.get("valueFrom", {}):
            path = pod / p["valueFrom"]["path"].lstrip("/")
            scope[f"outputs.parameters.{p['name']}.path"] = str(path)
    return scope


def _map_args(container: dict[str, Any], change: Any) -> None:
    """Apply `change` to the container's command, args and literal env values."""
    for part in ("command", "args"):
        container[part] = [change(str(a)) for a in container.get(part, [])]
    for e in container.get("env", []):
        if "value" in e:
            e["value"] = change(str(e["value"]))


def _mounts(
    ctx: Context, template: Mapping[str, Any], pod: Path, where: str
) -> tuple[dict[str, Path], list[Path]]:
    """(mount path -> local folder of each claim the container mounts, the local
    folders of all its volumes). An emptyDir is the pod's folder at its mount path,
    reached through the pod's own paths (see `prepare`)."""
    mounts, folders = {}, []
    for m in template.get("container", {}).get("volumeMounts", []):
        volume = ctx.volume(template, m["name"])
        if "persistentVolumeClaim" in volume:
            local = claim_dir(ctx.output_dir, volume["persistentVolumeClaim"]["claimName"])
            mounts[m["mountPath"]] = local / m.get("subPath", "")
        elif "emptyDir" in volume:
            local = pod / m["mountPath"].lstrip("/")
        elif not volume:
            raise WorkflowError(f"{where}: volume mount {m['name']!r} names no volume")
        else:
            raise WorkflowError(
                f"{where}: volume {m['name']!r}: the local runner runs "
                "persistentVolumeClaim and emptyDir volumes only"
            )
        folders.append(local)
    return mounts, folders


def _input_artifacts(
    resolved: Mapping[str, Any], given: Mapping[str, str], pod: Path, where: str
) -> list[tuple[str, str, Path]]:
    found = []
    for a in resolved.get("inputs", {}).get("artifacts", []):
        key = given.get(a["name"]) or artifact_key(a)
        if key is None:
            raise WorkflowError(
                f"{where}: input artifact {a['name']!r} has no key and no `from`; give it one"
            )
        found.append((a["name"], check_key(key, where), pod / a["path"].lstrip("/")))
    return found


def _output_artifacts(
    ctx: Context, task: Task, resolved: Mapping[str, Any], pod: Path, where: str
) -> list[tuple[str, str, Path]]:
    return [
        (a["name"], check_key(ctx.output_key(task.name, a), where), pod / a["path"].lstrip("/"))
        for a in resolved.get("outputs", {}).get("artifacts", [])
    ]


def _output_parameters(
    resolved: Mapping[str, Any], pod: Path
) -> list[tuple[str, Path | None, str | None]]:
    found = []
    for p in resolved.get("outputs", {}).get("parameters", []):
        value_from = p.get("valueFrom", {})
        path = pod / value_from["path"].lstrip("/") if "path" in value_from else None
        default = value_from.get("default")
        found.append((p["name"], path, None if default is None else str(default)))
    return found


def _command_and_env(
    ctx: Context, resolved: Mapping[str, Any], where: str
) -> tuple[list[str] | None, dict[str, str]]:
    """The container's command line and environment here (None for a resource template,
    which the runner's own API client carries out)."""
    c = resolved.get("container", {})
    declared = {e["name"]: str(e["value"]) for e in c.get("env", []) if "value" in e}
    declared.update(resource_env(c, where))
    # The runner's settings win (ARTIFACT_ROOT, metadata store).
    declared.update({k: v for k, v in ctx.env.items() if k in declared})
    inherited = without_credentials(os.environ)
    env = {**inherited, **declared, **ctx.env}
    if "resource" in resolved:
        return None, env
    if not c.get("command"):
        raise WorkflowError(
            f"{where}: the container has no command (the local runner cannot use an "
            "image's entrypoint)"
        )
    command = [expand_env_refs(str(a), declared) for a in (*c["command"], *c.get("args", []))]
    return ctx.hooks.image(str(c.get("image", "")), command, env, ctx.output_dir)
