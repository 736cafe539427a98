"""The plan of a local run: the compiled template's tasks, parameters, volumes and exit
handler, each task prepared (every `{{...}}` substituted, pod paths remapped) and
checked before anything runs; errors raise WorkflowError.

Volumes: a persistent volume claim (one a stand-in created, or an existing claim) is the
shared folder `<output_dir>/volumes/<claim>`, which every task and stand-in mounting it
sees; an emptyDir is a folder of the task's pod. Pod paths under a mount are remapped to
them.
"""

from __future__ import annotations

import copy
import os
import re
import secrets
import string
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workflows.credentials import CLIENT_CREDENTIALS
from workflows.errors import WorkflowError
from workflows.expressions import Depends, ancestors, cycles, heights
from workflows.local import images
from workflows.local.store import ArtifactStore
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

SUCCEEDED, FAILED, ERRORED = "Succeeded", "Failed", "Errored"
# A local task with no activeDeadlineSeconds of its own is stopped after this: a run of
# the runner never hangs.
DEFAULT_DEADLINE_S = 24 * 3600.0
DEADLINE_EXCEEDED = "Pod was active on the node longer than the specified deadline"  # Argo
SKIPPED, OMITTED = "Skipped", "Omitted"
# The one `valueFrom.expression` form the runner evaluates: a quoted string literal.
_QUOTED = re.compile(r"\s*(?:'([^']*)'|\"([^\"]*)\")\s*")
# Task fields whose meaning the runner does not reproduce; ignoring them would mislead.
UNSUPPORTED_TASK_FIELDS = (
    "withItems",
    "withParam",
    "withSequence",
    "templateRef",
    "inline",
    "continueOn",
)


@dataclass
class StandInContext:
    """What a stand-in gets: it does the template's work and returns output parameters."""

    task: str
    template: dict[str, Any]  # with every {{...}} substituted
    manifest: str | None  # the substituted resource manifest, for resource templates
    parameters: dict[str, str]  # the template's input parameters
    workflow_name: str
    output_dir: Path
    pod_dir: Path  # the task's remapped pod filesystem
    log_path: Path  # the task's log: append to it
    store: ArtifactStore
    env: dict[str, str]  # the environment a container of this template would get
    stopping: threading.Event = field(default_factory=threading.Event)  # set on an interrupt
    deadline: float = float("inf")  # time.monotonic() at which the task is out of time

    def check_stopping(self) -> None:
        """For a stand-in's polling loop: end the task when the run is interrupted, or at
        the template's activeDeadlineSeconds."""
        if self.stopping.is_set():
            raise WorkflowError(f"task {self.task!r} stopped: the run was interrupted")
        if time.monotonic() > self.deadline:
            raise WorkflowError(f"task {self.task!r}: {DEADLINE_EXCEEDED}")

    def local_path(self, pod_path: str) -> Path:
        """Where a pod path (an artifact or output parameter path) lives on this machine."""
        return self.pod_dir / pod_path.lstrip("/")

    def claim_path(self, claim_name: str) -> Path:
        """The folder standing in for persistent volume claim `claim_name`."""
        return claim_dir(self.output_dir, claim_name)


StandIn = Callable[[StandInContext], dict[str, str]]

# A running task as the live display gets it: its name (padded to the run's width), its
# latest progress ("N/M note", or "" before the first), its seconds so far, and the
# progress lines its log gained since the last call (none, one or more).
LiveTask = tuple[str, str, float, tuple[str, ...]]


@dataclass(frozen=True)
class InMemory:
    """A stand-in whose work lives only in the runner's process (a server it started):
    `--resume` runs its task again, since what it made ended with the earlier run."""

    stand_in: StandIn

    def __call__(self, ctx: StandInContext) -> dict[str, str]:
        return self.stand_in(ctx)


@dataclass
class Task:
    name: str
    spec: dict[str, Any]  # the DAG task
    template: dict[str, Any]
    stand_in: StandIn | None
    depends: Depends | None
    ancestors: frozenset[str] = frozenset()
    height: int = 1  # critical-path rank (workflows.expressions.heights)


@dataclass
class Job:
    """A task ready to run: everything substituted and remapped."""

    task: str
    template: dict[str, Any]
    parameters: dict[str, str]
    pod_dir: Path
    log: Path
    roots: set[str]
    inputs: list[tuple[str, str, Path]]  # artifact name, key, local path
    outputs: list[tuple[str, str, Path]]
    out_params: list[tuple[str, Path | None, str | None]]  # name, local path, default
    command: list[str] | None  # None: call the stand-in
    stand_in: StandIn | None
    env: dict[str, str]
    volumes: list[Path] = field(default_factory=list)  # local folders of its volume mounts
    retry: Retry | None = None
    deadline_s: float = 0.0  # the template's activeDeadlineSeconds, or DEFAULT_DEADLINE_S
    # Its Prometheus metrics, unsubstituted: Argo resolves them once the task has ended
    # ({{status}}, {{duration}}, its outputs), in `scope` and those.
    metrics: list[dict[str, Any]] = field(default_factory=list)
    scope: dict[str, str] = field(default_factory=dict)


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
                _seconds(backoff.get("duration", "0s")),
                float(backoff.get("factor", 1)),
                _seconds(backoff["maxDuration"]) if "maxDuration" in backoff else None,
            )
        except ValueError as e:
            raise WorkflowError(f"{where}: retryStrategy: {e}") from None


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def _seconds(text: Any) -> float:
    """A Go duration such as `10s`, `1m30s` or `250ms`; a bare number is seconds."""
    text = str(text).strip()
    if text.replace(".", "", 1).isdigit():
        return float(text)
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{text!r} is not a duration such as 10s or 2m")
    return sum(float(n) * _UNIT_S[u] for n, u in parts)


@dataclass
class Outcome:
    status: str
    seconds: float = 0.0
    outputs: dict[str, str] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)  # artifact name -> key
    message: str = ""
    ran: bool = False  # whether it has a log
    max_rss_mib: float | None = None  # peak resident memory of the task's process
    exit_code: int = -1  # of the process; -1 when there was none (an error before it ran)
    retries: int = 0
    progress: str | None = None  # the last N/M the step wrote to ARGO_PROGRESS_FILE
    metrics: list[dict[str, Any]] = field(default_factory=list)  # as the controller emits them


def generate_name(template: Mapping[str, Any]) -> str:
    meta = template.get("metadata", {})
    base = meta.get("name") or meta.get("generateName", "workflow").rstrip("-")
    alphabet = string.ascii_lowercase + string.digits
    return f"{base}-{''.join(secrets.choice(alphabet) for _ in range(5))}"


def _workflow_parameters(spec: Mapping[str, Any], given: Mapping[str, str]) -> dict[str, str]:
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


def _build_tasks(
    dag: Mapping[str, Any],
    templates: Mapping[str, dict[str, Any]],
    stand_ins: Mapping[str, StandIn],
) -> dict[str, Task]:
    tasks: dict[str, Task] = {}
    for spec in dag.get("tasks", []):
        name = spec["name"]
        where = f"task {name!r}"
        if name in tasks:
            raise WorkflowError(f"{where}: two DAG tasks have this name")
        bad = [f for f in UNSUPPORTED_TASK_FIELDS if f in spec]
        if bad:
            raise WorkflowError(f"{where}: {', '.join(bad)} is not supported by the local runner")
        template = templates.get(spec.get("template", ""))
        if template is None:
            raise WorkflowError(f"{where}: no template named {spec.get('template')!r}")
        stand_in = stand_ins.get(template["name"])
        if stand_in is None and "container" not in template:
            kind = next(
                (k for k in ("resource", "script", "dag", "steps", "suspend") if k in template),
                "this kind of",
            )
            raise WorkflowError(
                f"{where}: template {template['name']!r} is a {kind} template; "
                "register a local stand-in for it"
            )
        if "depends" in spec and "dependencies" in spec:
            raise WorkflowError(f"{where}: use either depends or dependencies, not both")
        text = spec.get("depends") or " && ".join(spec.get("dependencies", []))
        depends = Depends.parse(text) if text else None
        tasks[name] = Task(name, spec, template, stand_in, depends)
    for task in tasks.values():
        unknown = sorted((task.depends.tasks if task.depends else set()) - set(tasks))
        if unknown:
            raise WorkflowError(
                f"task {task.name!r} depends on unknown task(s): {', '.join(unknown)}"
            )
    _set_ancestry(tasks)
    return tasks


def _exit_handler(
    spec: Mapping[str, Any],
    templates: Mapping[str, dict[str, Any]],
    stand_ins: Mapping[str, StandIn],
    tasks: Mapping[str, Task],
) -> Task | None:
    """The `onExit` template as a task named after it (Argo's node is `<wf>.onExit`)."""
    name = spec.get("onExit")
    if not name:
        return None
    (task,) = _build_tasks(
        {"tasks": [{"name": name, "template": name}]}, templates, stand_ins
    ).values()
    if name in tasks:
        raise WorkflowError(f"onExit template {name!r} has the name of a DAG task")
    return task


def _mutexes(spec: Mapping[str, Any], scope: Mapping[str, str]) -> list[str]:
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


def _set_ancestry(tasks: dict[str, Task]) -> None:
    parents = {
        name: task.depends.tasks if task.depends else frozenset() for name, task in tasks.items()
    }
    found = cycles(parents)
    if found:
        raise WorkflowError(f"dependency cycle: {' -> '.join(found[0])}")
    for name, task_ancestors in ancestors(parents).items():
        tasks[name].ancestors = task_ancestors
    for name, height in heights(parents).items():
        tasks[name].height = height


class Plan:
    """The run's tasks and how each one runs, checked up front."""

    def __init__(
        self,
        template: Mapping[str, Any],
        parameters: Mapping[str, str],
        output_dir: Path,
        store: ArtifactStore,
        env: Mapping[str, str],
        stand_ins: Mapping[str, StandIn],
        max_parallel: int,
        workflow_name: str,
        on_progress: Callable[[str], None],
        on_live: Callable[[list[LiveTask]], None] | None = None,
    ) -> None:
        spec = template.get("spec")
        if not isinstance(spec, dict):
            raise WorkflowError("the workflow template has no spec")
        templates = {t["name"]: t for t in spec.get("templates", [])}
        self.dag = templates.get(spec.get("entrypoint", ""), {})
        if "dag" not in self.dag:
            raise WorkflowError(f"entrypoint {spec.get('entrypoint')!r} is not a DAG template")
        values = self.parameters = _workflow_parameters(spec, parameters)
        self.globals = {
            "workflow.name": workflow_name,
            "workflow.namespace": "default",
            "workflow.uid": str(uuid.uuid4()),
            **{f"workflow.parameters.{k}": v for k, v in values.items()},
        }
        self.output_dir, self.store, self.env = output_dir, store, dict(env)
        self.max_parallel, self.workflow_name = max(1, max_parallel), workflow_name
        if spec.get("volumeClaimTemplates"):
            raise WorkflowError(
                "volumeClaimTemplates are not supported by the local runner: "
                "claim the volume with a resource template"
            )
        self.volumes: dict[str, dict[str, Any]] = {
            v["name"]: substitute(v, self.globals, f"volume {v['name']!r}")
            for v in spec.get("volumes", [])
        }
        self.on_progress, self.on_live = on_progress, on_live
        self.tasks = _build_tasks(self.dag["dag"], templates, stand_ins)
        self.exit_handler = _exit_handler(spec, templates, stand_ins, self.tasks)
        self.mutexes = _mutexes(spec, self.globals)
        self.width = max((len(n) for n in self.tasks), default=4)
        # Task-level scope: workflow globals, the DAG's own inputs, finished tasks' outputs.
        self.params: dict[str, str] = {**self.globals}
        for p in self.dag.get("inputs", {}).get("parameters", []):
            value = values.get(p["name"], p.get("value", p.get("default")))
            if value is None:
                raise WorkflowError(f"DAG input parameter {p['name']!r} has no value")
            self.params[f"inputs.parameters.{p['name']}"] = str(value)
        self._check()

    # -- static checks: every task prepared against placeholder outputs

    def _check(self) -> None:
        params, keys = dict(self.params), {}
        for task in self.tasks.values():
            outputs = task.template.get("outputs", {})
            for p in outputs.get("parameters", []):
                ref = f"tasks.{task.name}.outputs.parameters.{p['name']}"
                params[ref] = f"<{ref}>"
            for a in outputs.get("artifacts", []):
                ref = f"tasks.{task.name}.outputs.artifacts.{a['name']}"
                keys[ref] = f"{task.name}/{a['name']}"
        # The tasks whose process can start ahead of them (Run's warm start): a step of our
        # CLI whose interpreter is there and whose environment waits on no task's outputs.
        self.previews: dict[str, Job] = {}
        for task in self.tasks.values():
            scope, art_scope = self._visible(task, params), self._visible(task, keys)
            if "when" in task.spec:
                substitute(task.spec["when"], scope, f"task {task.name!r} when")
            job = self._prepare(task, scope, art_scope)
            if (
                job.command is not None
                and len(job.command) >= 4
                and job.command[1:3] == ["-m", "textcnn"]
                and Path(job.command[0]).is_file()  # a stock image's stand-in: once pulled
                and not any("<tasks." in v for v in job.env.values())
            ):
                self.previews[task.name] = job
        self._dag_outputs(params)
        if self.exit_handler is not None:
            self._prepare_exit_handler("<workflow.status>", "<workflow.failures>")

    def output_key(self, task: str, artifact: Mapping[str, Any]) -> str:
        """Where an output artifact goes: its own key, or one of the task's (Argo names
        the default by the pod; one per task and artifact is what matters here)."""
        return artifact_key(artifact) or f"{self.workflow_name}/{task}/{artifact['name']}"

    def _prepare_exit_handler(self, status: str, failures: str) -> Job:
        # Two globals exist in exit handlers only.
        scope = {**self.globals, "workflow.status": status, "workflow.failures": failures}
        saved, self.globals = self.globals, scope
        assert self.exit_handler is not None
        try:
            return self._prepare(self.exit_handler, scope, {})
        finally:
            self.globals = saved

    def _visible(self, task: Task, scope: Mapping[str, str]) -> dict[str, str]:
        """Argo resolves `tasks.T...` only for T among the task's ancestors."""
        return {
            k: v
            for k, v in scope.items()
            if not k.startswith("tasks.") or k.split(".")[1] in task.ancestors
        }

    def _prepare(self, task: Task, scope: Mapping[str, str], art_scope: Mapping[str, str]) -> Job:
        where = f"task {task.name!r}"
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

        tmpl = task.template
        twhere = f"{where} (template {tmpl['name']!r})"
        inputs: dict[str, str] = {}
        for p in tmpl.get("inputs", {}).get("parameters", []):
            if p["name"] in given:
                inputs[p["name"]] = given[p["name"]]
            elif "value" in p or "default" in p:
                raw = str(p.get("value", p.get("default")))
                inputs[p["name"]] = substitute(raw, self.globals, twhere)
            else:
                raise WorkflowError(f"{twhere}: input parameter {p['name']!r} was not supplied")

        pod = self.output_dir / "pods" / task.name
        # An emptyDir is the pod's own: its literal mount paths remap like the pod's paths.
        roots = pod_roots(tmpl) | {
            m["mountPath"]
            for m in tmpl.get("container", {}).get("volumeMounts", [])
            if "emptyDir" in self._volume(tmpl, m["name"]) and "{{" not in m["mountPath"]
        }

        def local(pod_path: str) -> Path:
            return pod / pod_path.lstrip("/")

        tscope = {**self.globals, **{f"inputs.parameters.{k}": v for k, v in inputs.items()}}
        for section in ("inputs", "outputs"):
            for a in tmpl.get(section, {}).get("artifacts", []):
                tscope[f"{section}.artifacts.{a['name']}.path"] = str(local(a["path"]))
        for p in tmpl.get("outputs", {}).get("parameters", []):
            if "path" in p.get("valueFrom", {}):
                tscope[f"outputs.parameters.{p['name']}.path"] = str(local(p["valueFrom"]["path"]))

        unresolved = copy.deepcopy(tmpl)
        if (pod_container := unresolved.get("container")) is not None:
            # Literal pod paths move under the pod folder, before substitution adds real ones.
            for part in ("command", "args"):
                pod_container[part] = [
                    remap_literal(str(a), roots, pod) for a in pod_container.get(part, [])
                ]
            for e in pod_container.get("env", []):
                if "value" in e:
                    e["value"] = remap_literal(str(e["value"]), roots, pod)
        metrics = (unresolved.pop("metrics", None) or {}).get("prometheus") or []
        resolved = substitute(unresolved, tscope, twhere)
        mounts, folders = self._mounts(resolved, pod, twhere)
        if mounts:
            c = resolved["container"]
            for part in ("command", "args"):
                c[part] = [remap_path(str(a), mounts) for a in c.get(part, [])]
            for e in c.get("env", []):
                if "value" in e:
                    e["value"] = remap_path(str(e["value"]), mounts)

        in_arts = []
        for a in resolved.get("inputs", {}).get("artifacts", []):
            key = given_art.get(a["name"]) or artifact_key(a)
            if key is None:
                raise WorkflowError(
                    f"{twhere}: input artifact {a['name']!r} has no key and no `from`; give it one"
                )
            in_arts.append((a["name"], check_key(key, twhere), local(a["path"])))
        out_arts = []
        for a in resolved.get("outputs", {}).get("artifacts", []):
            key = self.output_key(task.name, a)
            out_arts.append((a["name"], check_key(key, twhere), local(a["path"])))
        out_params = []
        for p in resolved.get("outputs", {}).get("parameters", []):
            value_from = p.get("valueFrom", {})
            path = local(value_from["path"]) if "path" in value_from else None
            default = value_from.get("default")
            out_params.append((p["name"], path, None if default is None else str(default)))

        c = resolved.get("container", {})
        declared = {e["name"]: str(e["value"]) for e in c.get("env", []) if "value" in e}
        # The runner's settings win (ARTIFACT_ROOT, metadata store).
        declared.update({k: v for k, v in self.env.items() if k in declared})
        inherited = {k: v for k, v in os.environ.items() if k not in CLIENT_CREDENTIALS}
        env = {**inherited, **declared, **self.env}
        command = None
        if task.stand_in is None:
            if not c.get("command"):
                raise WorkflowError(
                    f"{twhere}: the container has no command (the local runner "
                    "cannot use an image's entrypoint)"
                )
            command = [
                expand_env_refs(str(a), declared) for a in (*c["command"], *c.get("args", []))
            ]
            command, env = images.command_and_env(
                str(c.get("image", "")), command, env, self.output_dir
            )
        retry = resolved.get("retryStrategy")
        deadline = resolved.get("activeDeadlineSeconds")
        try:
            deadline_s = DEFAULT_DEADLINE_S if deadline is None else float(deadline)
        except ValueError:
            raise WorkflowError(
                f"{twhere}: activeDeadlineSeconds {deadline!r} is no number"
            ) from None
        return Job(
            task.name,
            resolved,
            inputs,
            pod,
            self._log_path(task.name),
            roots,
            in_arts,
            out_arts,
            out_params,
            command,
            task.stand_in,
            env,
            folders,
            None if retry is None else Retry.parse(retry, twhere),
            deadline_s,
            metrics,
            tscope,
        )

    def _volume(self, template: Mapping[str, Any], name: str) -> Mapping[str, Any]:
        """The volume `name` as the template sees it (its own, then the workflow's)."""
        volumes = {**self.volumes, **{v["name"]: v for v in template.get("volumes", [])}}
        return volumes.get(name, {})

    def _mounts(
        self, template: Mapping[str, Any], pod: Path, where: str
    ) -> tuple[dict[str, Path], list[Path]]:
        """(mount path -> local folder of each claim the container mounts, the local
        folders of all its volumes). An emptyDir is the pod's folder at its mount path,
        reached through the pod's own paths (see `_prepare`)."""
        mounts, folders = {}, []
        for m in template.get("container", {}).get("volumeMounts", []):
            volume = self._volume(template, m["name"])
            if "persistentVolumeClaim" in volume:
                local = claim_dir(self.output_dir, volume["persistentVolumeClaim"]["claimName"])
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

    def _dag_outputs(self, params: Mapping[str, str]) -> dict[str, str]:
        outputs = {}
        for p in self.dag.get("outputs", {}).get("parameters", []):
            value_from = p.get("valueFrom", {})
            where = f"DAG output parameter {p['name']!r}"
            if "parameter" in value_from:
                try:
                    outputs[p["name"]] = substitute(value_from["parameter"], params, where)
                except WorkflowError:
                    if "default" not in value_from:
                        raise
                    outputs[p["name"]] = str(value_from["default"])
            elif "value" in p:
                outputs[p["name"]] = substitute(str(p["value"]), params, where)
            elif literal := _QUOTED.fullmatch(
                substitute(value_from.get("expression", ""), params, where)
            ):
                outputs[p["name"]] = literal.group(1) or literal.group(2) or ""
            else:
                raise WorkflowError(
                    f"{where}: the local runner supports valueFrom.parameter, "
                    "value, or an expression that is one quoted string"
                )
        return outputs

    # -- execution

    def _log_path(self, task: str) -> Path:
        return self.output_dir / "logs" / f"{task}.log"
