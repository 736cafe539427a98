"""Run a compiled Argo WorkflowTemplate (a dict) on this machine, with no cluster.

What passes here is what Argo runs: the same template dict, the same `depends` and `when`
semantics (see workflows.expressions), parameters and key-only artifacts passed through an
artifact root, each container's real command run as a subprocess. Pod paths are remapped
under `<output_dir>/pods/<task>/`, each task logs to `<output_dir>/logs/<task>.log`, and
resource templates (or any template named in `stand_ins`) call a local stand-in.

Everything that can be checked before a task runs (parameters, template references,
`depends`, every `{{...}}` variable) is checked first and raises InputError.

Volumes: a persistent volume claim (one a stand-in created, or an existing claim) is the
shared folder `<output_dir>/volumes/<claim>`, which every task and stand-in mounting it
sees; an emptyDir is a folder of the task's pod. Pod paths under a mount are remapped to them.
"""

from __future__ import annotations

import abc
import copy
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import string
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textcnn.errors import InputError
from workflows.expressions import Depends, ancestors, cycles, evaluate_when

SUCCEEDED, FAILED, ERRORED = "Succeeded", "Failed", "Errored"
SKIPPED, OMITTED = "Skipped", "Omitted"
TAIL_LINES = 20
# The one `valueFrom.expression` form the runner evaluates: a quoted string literal.
_QUOTED = re.compile(r"\s*(?:'([^']*)'|\"([^\"]*)\")\s*")
# Task fields whose meaning the runner does not reproduce; ignoring them would mislead.
UNSUPPORTED_TASK_FIELDS = ("withItems", "withParam", "withSequence", "templateRef", "inline",
                           "continueOn")


# ---- artifact store ---------------------------------------------------------------------

class ArtifactStore(abc.ABC):
    """Key-only artifacts under a root: `<root>/<key>`, each a file or a folder of files.

    Inputs are loaded as Argo's GCS driver loads them (`workflow/artifacts/gcs/gcs.go`):
    the object named `key` alone if it exists, else every object whose name starts with
    `key`, with no `/` added, each saved at `dest` + the rest of its name. So key `x/model`
    also brings `x/model-2/...`, as on a cluster; keys must not be prefixes of one another.
    """

    def __init__(self, root: str) -> None:
        self.root = root.rstrip("/")

    def uri(self, key: str) -> str:
        return f"{self.root}/{key}"

    @abc.abstractmethod
    def names(self, prefix: str) -> list[str]:
        """The keys of every object (file) whose key starts with `prefix`."""

    @abc.abstractmethod
    def fetch(self, key: str, dest: Path) -> None:
        """Copy the object (one file) at `key` to `dest`."""

    @abc.abstractmethod
    def upload(self, src: Path, key: str) -> None:
        """Store a file or folder at `key`, replacing what was there."""

    def download(self, key: str, dest: Path) -> None:
        """Load an input artifact at `key` into `dest`; FileNotFoundError when the key
        holds nothing."""
        names = self.names(key)
        if not names:
            raise FileNotFoundError(self.uri(key))
        if key in names:
            names = [key]
        for name in names:
            target = dest / name[len(key):].lstrip("/") if name != key else dest
            target.parent.mkdir(parents=True, exist_ok=True)
            self.fetch(name, target)


class LocalStore(ArtifactStore):
    """A folder; uploads are atomic (a temporary sibling, then a rename)."""

    def names(self, prefix: str) -> list[str]:
        base = Path(self.root)
        folder = (base / prefix).parent
        if not folder.is_dir():
            return []
        keys = (p.relative_to(base) for p in folder.rglob("*") if p.is_file())
        # Not the temporary folders of an upload in progress.
        return sorted(k.as_posix() for k in keys if k.as_posix().startswith(prefix) and not any(
            part.startswith(".") and part.endswith(".tmp") for part in k.parts))

    def fetch(self, key: str, dest: Path) -> None:
        shutil.copy2(self.uri(key), dest)

    def upload(self, src: Path, key: str) -> None:
        target = Path(self.uri(key))
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
        try:
            staged = tmp / target.name
            if src.is_dir():
                shutil.copytree(src, staged)
            else:
                shutil.copy2(src, staged)
            if target.exists():
                # rename() cannot replace a non-empty folder: move the old one aside first.
                os.replace(target, tmp / ".old")
            os.replace(staged, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


class GcsStore(ArtifactStore):
    """`gs://BUCKET/PREFIX`, through textcnn.storage (which honours STORAGE_EMULATOR_HOST)."""

    def names(self, prefix: str) -> list[str]:
        from textcnn import storage

        return [uri.removeprefix(f"{self.root}/") for uri in storage.list_prefix(self.uri(prefix))]

    def fetch(self, key: str, dest: Path) -> None:
        from textcnn import storage

        dest.write_bytes(storage.read_bytes(self.uri(key)))

    def upload(self, src: Path, key: str) -> None:
        from textcnn import storage

        if src.is_dir():
            storage.upload_dir(src, self.uri(key))
        else:
            storage.write_bytes(self.uri(key), src.read_bytes())


def open_store(root: str) -> ArtifactStore:
    return GcsStore(root) if root.startswith("gs://") else LocalStore(str(Path(root).resolve()))


# ---- results ----------------------------------------------------------------------------

@dataclass
class RunResult:
    """The run's outcome; `write()` saves it as run.json (with `extra` merged in)."""

    status: str
    workflow_name: str
    steps: dict[str, dict[str, Any]]
    outputs: dict[str, str]
    artifacts: dict[str, str]
    message: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "workflow_name": self.workflow_name,
                "message": self.message, "steps": self.steps, "outputs": self.outputs,
                "artifacts": self.artifacts, **self.extra}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def write(self, path: Path) -> None:
        """Write `to_json()` atomically."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_text(self.to_json() + "\n")
        os.replace(tmp, path)


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

    def local_path(self, pod_path: str) -> Path:
        """Where a pod path (an artifact or output parameter path) lives on this machine."""
        return self.pod_dir / pod_path.lstrip("/")

    def claim_path(self, claim_name: str) -> Path:
        """The folder standing in for persistent volume claim `claim_name`."""
        return claim_dir(self.output_dir, claim_name)


StandIn = Callable[[StandInContext], dict[str, str]]


# ---- variable substitution --------------------------------------------------------------

def substitute(value: Any, scope: Mapping[str, str], where: str) -> Any:
    """Replace every `{{name}}` in strings inside `value`; unknown names raise InputError."""
    if isinstance(value, dict):
        return {k: substitute(v, scope, where) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, scope, where) for v in value]
    if not isinstance(value, str):
        return value
    out, pos = [], 0
    while (start := value.find("{{", pos)) >= 0:
        end = value.find("}}", start)
        if end < 0:
            break
        name = value[start + 2:end].strip()
        if name not in scope:
            raise InputError(f"{where}: cannot resolve {{{{{name}}}}} in {value!r}")
        out += [value[pos:start], scope[name]]
        pos = end + 2
    return "".join(out) + value[pos:]


_ENV_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand_env_refs(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion in command and args: only variables the container
    declares are expanded, `$$` escapes, and an unknown reference stays as written."""
    def repl(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))
    return _ENV_REF.sub(repl, text)


def _artifact_key(artifact: Mapping[str, Any]) -> str | None:
    """The key of a key-only artifact (`gcs: {key}`, `s3: {key}`, ...), if it has one."""
    for spec in artifact.values():
        if isinstance(spec, dict) and "key" in spec:
            return str(spec["key"])
    return None


def _check_key(key: str, where: str) -> str:
    if not key or key.startswith("/") or ".." in key.split("/"):
        raise InputError(f"{where}: artifact key {key!r} must be a relative path without '..'")
    return key


def _pod_roots(template: Mapping[str, Any]) -> set[str]:
    """The pod's private folders: the first two levels of every declared pod path."""
    paths = [a["path"] for section in ("inputs", "outputs")
             for a in template.get(section, {}).get("artifacts", []) if "path" in a]
    paths += [p["valueFrom"]["path"] for p in template.get("outputs", {}).get("parameters", [])
              if "path" in p.get("valueFrom", {})]
    return {"/" + "/".join(Path(p).parts[1:3]) for p in paths if p.startswith("/")}


def _remap_literal(text: str, roots: set[str], pod_dir: Path) -> str:
    """A literal pod path in an argument (`/p`, or `--opt=/p`) becomes its local path.

    Templates pass folders such as `--outputs /tmp/outputs/params` literally, so those
    must move under the task's pod folder just like `{{outputs.parameters.x.path}}` does.
    """
    prefix, eq, path = text.partition("=") if text.startswith("-") else ("", "", text)
    if any(path == r or path.startswith(r + "/") for r in roots):
        return f"{prefix}{eq}{pod_dir / path.lstrip('/')}"
    return text


def claim_dir(output_dir: Path, claim_name: str) -> Path:
    """The shared folder of a persistent volume claim in a run folder."""
    if not claim_name or "/" in claim_name or claim_name in (".", ".."):
        raise InputError(f"persistent volume claim name {claim_name!r} is not a valid name")
    return output_dir / "volumes" / claim_name


def remap_path(text: str, mounts: Mapping[str, Path]) -> str:
    """A pod path in an argument (`/p`, or `--opt=/p`) under a mount path becomes the same
    path under the mount's local folder; other text is returned as it is."""
    prefix, eq, path = text.partition("=") if text.startswith("-") else ("", "", text)
    for mount in sorted(mounts, key=len, reverse=True):
        base = mount.rstrip("/")
        if path == base or path.startswith(base + "/"):
            return f"{prefix}{eq}{mounts[mount]}{path[len(base):]}"
    return text


# ---- plan -------------------------------------------------------------------------------

@dataclass
class _Task:
    name: str
    spec: dict[str, Any]  # the DAG task
    template: dict[str, Any]
    stand_in: StandIn | None
    depends: Depends | None
    ancestors: frozenset[str] = frozenset()


@dataclass
class _Job:
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


@dataclass
class _Outcome:
    status: str
    seconds: float = 0.0
    outputs: dict[str, str] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)  # artifact name -> key
    message: str = ""
    ran: bool = False  # whether it has a log
    max_rss_mib: float | None = None  # peak resident memory of the task's process


def _generate_name(template: Mapping[str, Any]) -> str:
    meta = template.get("metadata", {})
    base = meta.get("name") or meta.get("generateName", "workflow").rstrip("-")
    alphabet = string.ascii_lowercase + string.digits
    return f"{base}-{''.join(secrets.choice(alphabet) for _ in range(5))}"


def _workflow_parameters(spec: Mapping[str, Any], given: Mapping[str, str]) -> dict[str, str]:
    declared = {p["name"]: p for p in spec.get("arguments", {}).get("parameters", [])}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise InputError(f"unknown workflow parameter(s): {', '.join(unknown)}; "
                         f"the template declares: {', '.join(sorted(declared)) or 'none'}")
    values: dict[str, str] = {}
    for name, param in declared.items():
        if name in given:
            values[name] = given[name]
        elif "value" in param:
            values[name] = str(param["value"])
        else:
            raise InputError(f"workflow parameter {name!r} has no default: pass a value")
        enum = param.get("enum")
        if enum and values[name] not in [str(e) for e in enum]:
            raise InputError(f"workflow parameter {name!r} is {values[name]!r}; "
                             f"allowed: {', '.join(map(str, enum))}")
    return values


def _build_tasks(dag: Mapping[str, Any], templates: Mapping[str, dict[str, Any]],
                 stand_ins: Mapping[str, StandIn]) -> dict[str, _Task]:
    tasks: dict[str, _Task] = {}
    for spec in dag.get("tasks", []):
        name = spec["name"]
        where = f"task {name!r}"
        if name in tasks:
            raise InputError(f"{where}: two DAG tasks have this name")
        bad = [f for f in UNSUPPORTED_TASK_FIELDS if f in spec]
        if bad:
            raise InputError(f"{where}: {', '.join(bad)} is not supported by the local runner")
        template = templates.get(spec.get("template", ""))
        if template is None:
            raise InputError(f"{where}: no template named {spec.get('template')!r}")
        stand_in = stand_ins.get(template["name"])
        if stand_in is None and "container" not in template:
            kind = next((k for k in ("resource", "script", "dag", "steps", "suspend")
                         if k in template), "this kind of")
            raise InputError(f"{where}: template {template['name']!r} is a {kind} template; "
                             "register a local stand-in for it")
        if "depends" in spec and "dependencies" in spec:
            raise InputError(f"{where}: use either depends or dependencies, not both")
        text = spec.get("depends") or " && ".join(spec.get("dependencies", []))
        depends = Depends.parse(text) if text else None
        tasks[name] = _Task(name, spec, template, stand_in, depends)
    for task in tasks.values():
        unknown = sorted((task.depends.tasks if task.depends else set()) - set(tasks))
        if unknown:
            raise InputError(f"task {task.name!r} depends on unknown task(s): "
                             f"{', '.join(unknown)}")
    _set_ancestors(tasks)
    return tasks


def _step_error(log: Path) -> str:
    """The failed step's own `error: ...` line (the textcnn CLI's convention), if any, so
    the reason shows above the log's library noise."""
    errors = [line for line in log.read_text(errors="replace").splitlines()
              if line.startswith("error: ")]
    return f" ({errors[-1]})" if errors else ""


def _exit_handler(spec: Mapping[str, Any], templates: Mapping[str, dict[str, Any]],
                  stand_ins: Mapping[str, StandIn], tasks: Mapping[str, _Task]) -> _Task | None:
    """The `onExit` template as a task named after it (Argo's node is `<wf>.onExit`)."""
    name = spec.get("onExit")
    if not name:
        return None
    (task,) = _build_tasks({"tasks": [{"name": name, "template": name}]}, templates,
                           stand_ins).values()
    if name in tasks:
        raise InputError(f"onExit template {name!r} has the name of a DAG task")
    return task


def _set_ancestors(tasks: dict[str, _Task]) -> None:
    parents = {name: task.depends.tasks if task.depends else frozenset()
               for name, task in tasks.items()}
    found = cycles(parents)
    if found:
        raise InputError(f"dependency cycle: {' -> '.join(found[0])}")
    for name, task_ancestors in ancestors(parents).items():
        tasks[name].ancestors = task_ancestors


# ---- the run ----------------------------------------------------------------------------

class _Run:
    def __init__(self, template: Mapping[str, Any], parameters: Mapping[str, str],
                 output_dir: Path, store: ArtifactStore, env: Mapping[str, str],
                 stand_ins: Mapping[str, StandIn], max_parallel: int, workflow_name: str,
                 on_progress: Callable[[str], None]) -> None:
        spec = template.get("spec")
        if not isinstance(spec, dict):
            raise InputError("the workflow template has no spec")
        templates = {t["name"]: t for t in spec.get("templates", [])}
        self.dag = templates.get(spec.get("entrypoint", ""), {})
        if "dag" not in self.dag:
            raise InputError(f"entrypoint {spec.get('entrypoint')!r} is not a DAG template")
        values = _workflow_parameters(spec, parameters)
        self.globals = {
            "workflow.name": workflow_name, "workflow.namespace": "default",
            "workflow.uid": str(uuid.uuid4()),
            **{f"workflow.parameters.{k}": v for k, v in values.items()},
        }
        self.output_dir, self.store, self.env = output_dir, store, dict(env)
        self.max_parallel, self.workflow_name = max(1, max_parallel), workflow_name
        if spec.get("volumeClaimTemplates"):
            raise InputError("volumeClaimTemplates are not supported by the local runner: "
                             "claim the volume with a resource template")
        self.volumes: dict[str, dict[str, Any]] = {
            v["name"]: substitute(v, self.globals, f"volume {v['name']!r}")
            for v in spec.get("volumes", [])}
        self.on_progress = on_progress
        self.tasks = _build_tasks(self.dag["dag"], templates, stand_ins)
        self.exit_handler = _exit_handler(spec, templates, stand_ins, self.tasks)
        self.width = max((len(n) for n in self.tasks), default=4)
        # Task-level scope: workflow globals, the DAG's own inputs, finished tasks' outputs.
        self.params: dict[str, str] = {**self.globals}
        for p in self.dag.get("inputs", {}).get("parameters", []):
            value = values.get(p["name"], p.get("value", p.get("default")))
            if value is None:
                raise InputError(f"DAG input parameter {p['name']!r} has no value")
            self.params[f"inputs.parameters.{p['name']}"] = str(value)
        self.artifact_keys: dict[str, str] = {}
        self.status: dict[str, str] = {}
        self.steps: dict[str, dict[str, Any]] = {}
        self.artifacts: dict[str, str] = {}
        self.procs: set[subprocess.Popen[bytes]] = set()
        self.lock = threading.Lock()
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
        for task in self.tasks.values():
            scope, art_scope = self._visible(task, params), self._visible(task, keys)
            if "when" in task.spec:
                substitute(task.spec["when"], scope, f"task {task.name!r} when")
            self._prepare(task, scope, art_scope)
        self._dag_outputs(params)
        if self.exit_handler is not None:
            self._prepare_exit_handler("<workflow.status>", "<workflow.failures>")

    def _prepare_exit_handler(self, status: str, failures: str) -> _Job:
        # Two globals exist in exit handlers only.
        scope = {**self.globals, "workflow.status": status, "workflow.failures": failures}
        saved, self.globals = self.globals, scope
        try:
            return self._prepare(self.exit_handler, scope, {})
        finally:
            self.globals = saved

    def _visible(self, task: _Task, scope: Mapping[str, str]) -> dict[str, str]:
        """Argo resolves `tasks.T...` only for T among the task's ancestors."""
        return {k: v for k, v in scope.items()
                if not k.startswith("tasks.") or k.split(".")[1] in task.ancestors}

    def _prepare(self, task: _Task, scope: Mapping[str, str],
                 art_scope: Mapping[str, str]) -> _Job:
        where = f"task {task.name!r}"
        arguments = task.spec.get("arguments", {})
        given = {p["name"]: substitute(str(p.get("value", "")), scope, f"{where} arguments")
                 for p in arguments.get("parameters", [])}
        given_art: dict[str, str] = {}
        for a in arguments.get("artifacts", []):
            if "from" in a:
                given_art[a["name"]] = substitute(a["from"], art_scope, f"{where} artifact from")
            elif (key := _artifact_key(a)) is not None:
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
                raise InputError(f"{twhere}: input parameter {p['name']!r} was not supplied")

        pod = self.output_dir / "pods" / task.name
        roots = _pod_roots(tmpl)

        def local(pod_path: str) -> Path:
            return pod / pod_path.lstrip("/")

        tscope = {**self.globals, **{f"inputs.parameters.{k}": v for k, v in inputs.items()}}
        for section in ("inputs", "outputs"):
            for a in tmpl.get(section, {}).get("artifacts", []):
                tscope[f"{section}.artifacts.{a['name']}.path"] = str(local(a["path"]))
        for p in tmpl.get("outputs", {}).get("parameters", []):
            if "path" in p.get("valueFrom", {}):
                tscope[f"outputs.parameters.{p['name']}.path"] = str(local(p["valueFrom"]["path"]))

        raw = copy.deepcopy(tmpl)
        container = raw.get("container")
        if container is not None:
            # Literal pod paths move under the pod folder, before substitution adds real ones.
            for part in ("command", "args"):
                container[part] = [_remap_literal(str(a), roots, pod)
                                   for a in container.get(part, [])]
            for e in container.get("env", []):
                if "value" in e:
                    e["value"] = _remap_literal(str(e["value"]), roots, pod)
        resolved = substitute(raw, tscope, twhere)
        mounts = self._mounts(resolved, pod, twhere)
        if mounts:
            c = resolved["container"]
            for part in ("command", "args"):
                c[part] = [remap_path(str(a), mounts) for a in c.get(part, [])]
            for e in c.get("env", []):
                if "value" in e:
                    e["value"] = remap_path(str(e["value"]), mounts)

        in_arts = []
        for a in resolved.get("inputs", {}).get("artifacts", []):
            key = given_art.get(a["name"]) or _artifact_key(a)
            if key is None:
                raise InputError(f"{twhere}: input artifact {a['name']!r} has no key and no "
                                 "`from`; give it one")
            in_arts.append((a["name"], _check_key(key, twhere), local(a["path"])))
        out_arts = []
        for a in resolved.get("outputs", {}).get("artifacts", []):
            key = _artifact_key(a) or f"{self.workflow_name}/{task.name}/{a['name']}"
            out_arts.append((a["name"], _check_key(key, twhere), local(a["path"])))
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
        env = {**os.environ, **declared, **self.env}
        command = None
        if task.stand_in is None:
            if not c.get("command"):
                raise InputError(f"{twhere}: the container has no command (the local runner "
                                 "cannot use an image's entrypoint)")
            command = [expand_env_refs(str(a), declared)
                       for a in (*c["command"], *c.get("args", []))]
            if command[0] in ("python", "python3"):
                command[0] = sys.executable
        return _Job(task.name, resolved, inputs, pod, self._log_path(task.name), roots,
                    in_arts, out_arts, out_params, command, task.stand_in, env,
                    list(mounts.values()))

    def _mounts(self, template: Mapping[str, Any], pod: Path, where: str) -> dict[str, Path]:
        """Mount path -> local folder, for each volume mount of the template's container."""
        volumes = {**self.volumes, **{v["name"]: v for v in template.get("volumes", [])}}
        mounts = {}
        for m in template.get("container", {}).get("volumeMounts", []):
            volume = volumes.get(m["name"])
            if volume is None:
                raise InputError(f"{where}: volume mount {m['name']!r} names no volume")
            if "persistentVolumeClaim" in volume:
                local = claim_dir(self.output_dir, volume["persistentVolumeClaim"]["claimName"])
            elif "emptyDir" in volume:
                local = pod / "volumes" / m["name"]
            else:
                raise InputError(f"{where}: volume {m['name']!r}: the local runner runs "
                                 "persistentVolumeClaim and emptyDir volumes only")
            mounts[m["mountPath"]] = local / m.get("subPath", "")
        return mounts

    def _dag_outputs(self, params: Mapping[str, str]) -> dict[str, str]:
        outputs = {}
        for p in self.dag.get("outputs", {}).get("parameters", []):
            value_from = p.get("valueFrom", {})
            where = f"DAG output parameter {p['name']!r}"
            if "parameter" in value_from:
                try:
                    outputs[p["name"]] = substitute(value_from["parameter"], params, where)
                except InputError:
                    if "default" not in value_from:
                        raise
                    outputs[p["name"]] = str(value_from["default"])
            elif "value" in p:
                outputs[p["name"]] = substitute(str(p["value"]), params, where)
            elif (literal := _QUOTED.fullmatch(
                    substitute(value_from.get("expression", ""), params, where))):
                outputs[p["name"]] = literal.group(1) or literal.group(2) or ""
            else:
                raise InputError(f"{where}: the local runner supports valueFrom.parameter, "
                                 "value, or an expression that is one quoted string")
        return outputs

    # -- execution

    def run(self) -> RunResult:
        pending = list(self.tasks)
        running: dict[Future[_Outcome], str] = {}
        failed = False
        with ThreadPoolExecutor(max_workers=self.max_parallel) as pool:
            try:
                while True:
                    while not failed and (ready := self._next(pending, len(running))):
                        name, job = ready
                        pending.remove(name)
                        if isinstance(job, _Job):
                            running[pool.submit(self._execute, job)] = name
                        else:
                            failed |= self._finish(name, job)
                    if not running:
                        break
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        failed |= self._finish(running.pop(future), future.result())
            except KeyboardInterrupt:
                self._kill_all()
                for future, name in running.items():
                    self._finish(name, future.result())
                self._omit(pending, "not started: interrupted")
                self._result(FAILED, "interrupted").write(self.output_dir / "run.json")
                raise
        self._omit(pending, "not started: the workflow failed")
        return self._run_exit_handler(self._dag_result(failed))

    def _dag_result(self, failed: bool) -> RunResult:
        if failed:
            failures = [n for n, s in self.status.items() if s in (FAILED, ERRORED)]
            return self._result(FAILED, f"task(s) failed: {', '.join(failures)}")
        try:
            outputs = self._dag_outputs(self.params)
        except InputError as e:  # e.g. an output of a task that was skipped
            self.on_progress(f"workflow failed: {e}")
            return self._result(FAILED, str(e))
        return self._result(SUCCEEDED, "", outputs)

    def _run_exit_handler(self, result: RunResult) -> RunResult:
        """Argo's `onExit`: runs after the DAG whatever its outcome, with
        `{{workflow.status}}` and `{{workflow.failures}}`; if it fails, so does the run."""
        task = self.exit_handler
        if task is None:
            return result
        failures = [{"displayName": n, "templateName": self.tasks[n].template["name"],
                     "phase": s, "message": self.steps[n].get("message", "")}
                    for n, s in self.status.items() if s in (FAILED, ERRORED)]
        try:
            outcome = self._execute(self._prepare_exit_handler(result.status,
                                                               json.dumps(failures)))
        except InputError as e:
            outcome = _Outcome(ERRORED, message=str(e))
        if self._finish(task.name, outcome) and result.status == SUCCEEDED:
            return self._result(FAILED, f"exit handler {task.name!r} failed")
        return result

    def _next(self, pending: list[str], busy: int) -> tuple[str, _Job | _Outcome] | None:
        """The next task to start (a job) or to settle (Omitted, Skipped, Errored), if any."""
        for name in pending:
            task = self.tasks[name]
            if task.depends is not None:
                if any(d not in self.status for d in task.depends.tasks):
                    continue
                if not task.depends.holds(self.status):
                    return name, _Outcome(OMITTED, message="depends condition not met")
            scope = self._visible(task, self.params)
            try:
                when = task.spec.get("when")
                if when and not evaluate_when(substitute(when, scope, f"task {name!r} when")):
                    return name, _Outcome(SKIPPED, message=f"when {when!r} was false")
                if busy < self.max_parallel:
                    return name, self._prepare(task, scope, self._visible(task, self.artifact_keys))
            except InputError as e:
                self._log_path(name).parent.mkdir(parents=True, exist_ok=True)
                self._log_path(name).write_text(f"error: {e}\n")
                return name, _Outcome(ERRORED, message=str(e), ran=True)
        return None

    def _log_path(self, task: str) -> Path:
        return self.output_dir / "logs" / f"{task}.log"

    def _execute(self, job: _Job) -> _Outcome:
        """Run one task (in a worker thread): stage inputs, run, collect outputs."""
        start = time.monotonic()
        job.log.parent.mkdir(parents=True, exist_ok=True)
        job.log.write_text("")
        # Append mode: a stand-in may append to the same log while the runner holds it.
        with job.log.open("a") as log:
            try:
                outcome = self._attempt(job, log)
            except Exception as e:  # e.g. a storage error: the task errors, the run goes on
                traceback.print_exc(file=log)
                outcome = _Outcome(ERRORED, message=f"{type(e).__name__}: {e}")
            if outcome.message and outcome.status != SUCCEEDED:
                log.write(f"error: {outcome.message}\n")
        outcome.seconds, outcome.ran = time.monotonic() - start, True
        return outcome

    def _attempt(self, job: _Job, log: Any) -> _Outcome:
        shutil.rmtree(job.pod_dir, ignore_errors=True)
        for root in job.roots:  # a pod has /tmp and the like; deeper folders it must make
            (job.pod_dir / Path(root).parts[1]).mkdir(parents=True, exist_ok=True)
        for folder in job.volumes:  # a mounted volume exists, empty or not
            folder.mkdir(parents=True, exist_ok=True)
        for name, key, path in job.inputs:
            try:
                self.store.download(key, path)
            except FileNotFoundError:
                return _Outcome(ERRORED, message=f"input artifact {name!r}: key {key!r} not "
                                f"found in {self.store.root} (task {job.task!r})")
        returned: dict[str, str] = {}
        max_rss_mib: float | None = None
        if job.command is not None:
            log.write(f"$ {shlex.join(job.command)}\n")
            log.flush()
            code, max_rss_mib = self._run_process(job, log)
            if code != 0:
                message = f"exit code {code}{_step_error(job.log)}"
                return _Outcome(FAILED, message=message, max_rss_mib=max_rss_mib)
        else:
            assert job.stand_in is not None
            resource = job.template.get("resource", {})
            context = StandInContext(
                job.task, job.template, resource.get("manifest"), job.parameters,
                self.workflow_name, self.output_dir, job.pod_dir, job.log, self.store, job.env)
            try:
                returned = {k: str(v) for k, v in (job.stand_in(context) or {}).items()}
            except Exception as e:  # the stand-in's failure is the task's failure
                traceback.print_exc(file=log)
                return _Outcome(FAILED, message=f"stand-in raised {type(e).__name__}: {e}")
        outputs = dict(returned)
        for name, path, default in job.out_params:
            if path is not None and path.is_file():
                value = path.read_text()
            elif name in returned:
                continue
            elif default is not None:
                value = default
            else:
                where = f"written to {path}" if path is not None else "returned by the stand-in"
                return _Outcome(ERRORED, message=f"output parameter {name!r} was not {where}")
            outputs[name] = value.removesuffix("\n")  # Argo trims one trailing newline
        keys = {}
        for name, key, path in job.outputs:
            if not path.exists():
                return _Outcome(ERRORED, message=f"output artifact {name!r}: {path} was not "
                                "written")
            self.store.upload(path, key)
            keys[name] = key
        return _Outcome(SUCCEEDED, outputs=outputs, artifacts=keys, max_rss_mib=max_rss_mib)

    def _run_process(self, job: _Job, log: Any) -> tuple[int, float | None]:
        """Run the job's command: (exit code, peak resident memory in MiB, if known)."""
        assert job.command is not None
        # Own session: Ctrl-C reaches the runner, which then kills whole process groups.
        proc = subprocess.Popen(job.command, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=job.env, start_new_session=True)
        with self.lock:
            self.procs.add(proc)
        try:
            # wait4 rather than wait: the kernel reports the process's peak RSS (KiB on Linux).
            # Linux starts that count at the runner's own resident size when it forks the
            # child (~75 MiB under `python -m workflows run`): a floor under small steps.
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, usage.ru_maxrss / 1024
        except ChildProcessError:  # already reaped by _kill_all's wait after an interrupt
            return proc.wait(), None
        finally:
            with self.lock:
                self.procs.discard(proc)

    def _kill_all(self) -> None:
        with self.lock:
            procs = list(self.procs)
        for proc in procs:
            for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, None)):
                try:
                    os.killpg(proc.pid, sig)
                    proc.wait(grace)
                    break
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    if proc.poll() is not None:
                        break

    def _finish(self, name: str, outcome: _Outcome) -> bool:
        """Record a settled task and report it; True when it failed the workflow."""
        self.status[name] = outcome.status
        log = self._log_path(name) if outcome.ran else None
        step: dict[str, Any] = {"status": outcome.status, "seconds": round(outcome.seconds, 3),
                                "log": str(log) if log else None, "outputs": outcome.outputs}
        if outcome.message:
            step["message"] = outcome.message
        if outcome.max_rss_mib is not None:
            step["max_rss_mib"] = round(outcome.max_rss_mib, 1)
        self.steps[name] = step
        if outcome.status == SUCCEEDED:
            for key, value in outcome.outputs.items():
                self.params[f"tasks.{name}.outputs.parameters.{key}"] = value
            for art, key in outcome.artifacts.items():
                self.artifact_keys[f"tasks.{name}.outputs.artifacts.{art}"] = key
                self.artifacts[art] = self.store.uri(key)
        self.on_progress(f"{name:<{self.width}}  {outcome.status:<9}  {outcome.seconds:7.1f}s")
        if outcome.status not in (FAILED, ERRORED):
            return False
        self.on_progress(f"task {name!r} {outcome.status.lower()}: {outcome.message}; log: {log}")
        if log is not None and log.exists():
            lines = log.read_text(errors="replace").splitlines()[-TAIL_LINES:]
            for line in lines:
                self.on_progress(f"  | {line}")
        return True

    def _omit(self, pending: list[str], message: str) -> None:
        for name in list(pending):
            pending.remove(name)
            self._finish(name, _Outcome(OMITTED, message=message))

    def _result(self, status: str, message: str,
                outputs: dict[str, str] | None = None) -> RunResult:
        return RunResult(status, self.workflow_name, self.steps, outputs or {}, self.artifacts,
                         message)


def run_workflow(
    template: Mapping[str, Any],
    parameters: Mapping[str, str],
    output_dir: Path,
    *,
    artifact_root: str | None = None,
    env: Mapping[str, str] | None = None,
    stand_ins: Mapping[str, StandIn] | None = None,
    max_parallel: int = 2,
    workflow_name: str | None = None,
    on_progress: Callable[[str], None] = print,
) -> RunResult:
    """Run the template's entrypoint DAG here; write and return the result (run.json).

    Raises InputError, before anything runs, for unknown or missing parameters, missing
    templates or stand-ins, bad `depends`, and `{{...}}` variables that cannot resolve.
    A task that fails makes the result "Failed" (it is not raised).
    """
    output_dir = Path(output_dir).resolve()
    name = workflow_name or _generate_name(template)
    store = open_store(artifact_root or str(output_dir / "artifacts"))
    run = _Run(template, parameters, output_dir, store, env or {}, stand_ins or {},
               max_parallel, name, on_progress)
    result = run.run()
    result.write(output_dir / "run.json")
    return result
