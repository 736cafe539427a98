"""The TFJob stand-in, for the TFJob branch of `python -m workflows run`.

`run_tfjob` stands in for the Training Operator: it takes the resource template's TFJob
manifest (substituted), checks it as the API server and admission webhook would, and runs
every Chief and Worker replica as a local process: the `tensorflow` container's command,
with a real `TF_CONFIG` on free 127.0.0.1 ports, the volume claims mounted as the run's
shared folders (`<run>/volumes/<claim>`, where stage-data wrote) and one log per process
(`<run>/logs/<task>-<type>-<index>.log`). It follows the job as the operator would: the
job succeeds when the chief does (workers still running then are stopped, as
`cleanPodPolicy: Running` deletes them), fails when a replica fails or when
`activeDeadlineSeconds` passes. Replicas are not restarted: a restart reruns training
from scratch, which a local run can do by running again.

It returns the generated name (the template's output) and records the TFJob object with
the status the operator would write in `<run>/tfjobs/<name>.json`. `wait_tfjob` stands
in for the wait-tfjob pod: it parses the pod's arguments with the step's own parser and
runs the step's real polling and decision (`textcnn.cluster.tfjob`) over that object, in
place of the Kubernetes API.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from textcnn import cli
from textcnn.cluster import tfjob
from textcnn.tf_config import TASK_TYPES
from workflows.checks.admission import CONTAINER, validate_tfjob
from workflows.dag.lightweight import step_arguments
from workflows.errors import WorkflowError
from workflows.local import images
from workflows.local.plan import StandInContext
from workflows.local.stand_ins.objects import created, free_ports
from workflows.local.substitution import remap_path

REPLICA_TYPES = tuple(t.capitalize() for t in TASK_TYPES)  # Chief, Worker
POLL_S = 0.2
GRACE_S = 30.0  # workers get this long to finish after the chief before they are stopped


def tfjob_record(output_dir: Path, name: str) -> Path:
    """Where the local TFJob object `name` is recorded."""
    return output_dir / "tfjobs" / f"{name}.json"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _condition(kind: str, status: str, message: str, when: str) -> dict[str, str]:
    return {
        "type": kind,
        "status": status,
        "reason": f"TFJob{kind}",
        "message": message,
        "lastUpdateTime": when,
        "lastTransitionTime": when,
    }


def _mounts(
    ctx: StandInContext, pod_spec: Mapping[str, Any], container: Mapping[str, Any], replica: str
) -> dict[str, Path]:
    volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}
    mounts = {}
    for m in container.get("volumeMounts", []):
        volume = volumes.get(m["name"], {})
        if "persistentVolumeClaim" in volume:
            local = ctx.claim_path(volume["persistentVolumeClaim"]["claimName"])
        elif "emptyDir" in volume:
            local = ctx.pod_dir / replica / "volumes" / m["name"]
        else:
            raise WorkflowError(
                f"TFJob volume {m['name']!r}: the local stand-in mounts "
                "persistentVolumeClaim and emptyDir volumes only"
            )
        local.mkdir(parents=True, exist_ok=True)
        mounts[m["mountPath"]] = local / m.get("subPath", "")
    return mounts


class _Replica:
    """One replica's process."""

    def __init__(
        self,
        ctx: StandInContext,
        rtype: str,
        index: int,
        pod_spec: Mapping[str, Any],
        tf_config: dict[str, Any],
    ) -> None:
        self.rtype, self.index = rtype, index
        container = next(c for c in pod_spec["containers"] if c["name"] == CONTAINER)
        mounts = _mounts(ctx, pod_spec, container, f"{rtype.lower()}-{index}")
        command = [
            remap_path(str(a), mounts)
            for a in (*container.get("command", []), *container.get("args", []))
        ]
        env = {
            **ctx.env,
            **{
                e["name"]: remap_path(str(e["value"]), mounts)
                for e in container.get("env", [])
                if "value" in e
            },
        }
        image = str(container.get("image", ""))
        images.pull(image, ctx.output_dir)
        command, env = images.command_and_env(image, command, env, ctx.output_dir)
        env["TF_CONFIG"] = json.dumps(tf_config)
        self.log = ctx.output_dir / "logs" / f"{ctx.task}-{rtype.lower()}-{index}.log"
        with self.log.open("w") as log:
            log.write(f"TF_CONFIG={env['TF_CONFIG']}\n$ {shlex.join(command)}\n")
            log.flush()
            # The runner's process group: a Ctrl-C in the terminal reaches the replicas too.
            self.proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
            )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _replica_statuses(replicas: list[_Replica], succeeded: bool) -> dict[str, dict[str, int]]:
    """The operator's replicaStatuses when the job finished (before pods are cleaned up)."""
    out: dict[str, dict[str, int]] = {}
    for r in replicas:
        code = r.proc.poll()
        # As the operator does on success, replicas still active count as succeeded.
        state = "succeeded" if code == 0 or succeeded else "active" if code is None else "failed"
        counts = out.setdefault(r.rtype, {})
        counts[state] = counts.get(state, 0) + 1
    return out


def _follow(
    ctx: StandInContext,
    replicas: list[_Replica],
    deadline: float | None,
    name: str,
    namespace: str,
) -> tuple[bool, str]:
    """Wait as the operator would: (succeeded, the Succeeded or Failed message)."""
    chief = replicas[0]
    while True:
        ctx.check_stopping()  # the replicas are stopped on the way out
        failed = [r for r in replicas if r.proc.poll() not in (None, 0)]
        if failed:
            types = sorted({r.rtype for r in failed})
            return False, (
                f"TFJob {namespace}/{name} has failed because {len(failed)} "
                f"{'/'.join(types)} replica(s) failed."
            )
        if chief.proc.returncode == 0:
            end = time.monotonic() + GRACE_S
            while any(r.proc.poll() is None for r in replicas) and time.monotonic() < end:
                ctx.check_stopping()
                time.sleep(POLL_S)
            return True, f"TFJob {namespace}/{name} successfully completed."
        if deadline is not None and time.monotonic() > deadline:
            return False, (
                f"Job {name} has failed because it was active longer than specified deadline"
            )
        time.sleep(POLL_S)


def run_tfjob(ctx: StandInContext) -> dict[str, str]:
    """Create the TFJob of `ctx.manifest` here: run it to the end, record it, return its name."""
    if not ctx.manifest:
        raise WorkflowError(f"task {ctx.task!r}: the resource template has no manifest")
    doc = yaml.safe_load(ctx.manifest)
    name, namespace = created(doc)
    problems = validate_tfjob(doc)  # what the API server and the webhook would reject
    if problems:
        raise WorkflowError(f"TFJob {name} rejected: " + "; ".join(problems))
    specs = doc["spec"]["tfReplicaSpecs"]
    unsupported = sorted(set(specs) - set(REPLICA_TYPES))
    if unsupported or "Chief" not in specs:
        raise WorkflowError(
            f"TFJob {name}: the local stand-in runs one Chief and Workers, not {sorted(specs)}"
        )
    roles = [
        (rtype, i)
        for rtype in REPLICA_TYPES
        for i in range(int(specs.get(rtype, {}).get("replicas", 1)))
    ]
    ports = iter(free_ports(len(roles)))
    cluster: dict[str, list[str]] = {}
    for rtype, _ in roles:  # the operator's TF_CONFIG: lower-case types, one address each
        cluster.setdefault(rtype.lower(), []).append(f"127.0.0.1:{next(ports)}")
    start, started = _now(), time.monotonic()
    run_policy = doc["spec"].get("runPolicy", {})
    deadline = run_policy.get("activeDeadlineSeconds")
    replicas: list[_Replica] = []
    try:
        for rtype, i in roles:
            tf_config = {
                "cluster": cluster,
                "task": {"type": rtype.lower(), "index": i},
                "environment": "cloud",
            }
            replicas.append(_Replica(ctx, rtype, i, specs[rtype]["template"]["spec"], tf_config))
        succeeded, message = _follow(
            ctx, replicas, None if deadline is None else started + deadline, name, namespace
        )
        statuses = _replica_statuses(replicas, succeeded)
    finally:
        for r in replicas:
            r.stop()
    end = _now()
    doc["status"] = {
        "conditions": [
            _condition("Created", "True", f"TFJob {name} is created.", start),
            _condition("Running", "False", f"TFJob {namespace}/{name} is running.", end),
            _condition("Succeeded" if succeeded else "Failed", "True", message, end),
        ],
        "replicaStatuses": statuses,
        "startTime": start,
        "completionTime": end,
    }
    record = tfjob_record(ctx.output_dir, name)
    record.parent.mkdir(parents=True, exist_ok=True)
    tmp = record.with_name(f".{record.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, record)
    with ctx.log_path.open("a") as log:
        log.write(f"{message}\nreplica logs: {', '.join(str(r.log) for r in replicas)}\n")
    return {"name": name}


def wait_tfjob(ctx: StandInContext) -> dict[str, str]:
    """The wait-tfjob step, judging the local TFJob record instead of the API's object."""
    parser = cli.build_parser("wait-tfjob", cli.load_step("wait-tfjob"))
    args = parser.parse_args(step_arguments(ctx.template["container"]))

    def get() -> dict[str, Any]:
        ctx.check_stopping()
        record = tfjob_record(ctx.output_dir, args.name)
        if not record.is_file():
            raise RuntimeError(f"tfjobs.kubeflow.org {args.name!r} not found in this run")
        doc = json.loads(record.read_text())
        if doc["metadata"]["namespace"] != args.namespace:
            raise RuntimeError(
                f"tfjobs.kubeflow.org {args.name!r} not found in namespace {args.namespace!r}"
            )
        return doc

    message = tfjob.wait_for(get, args.timeout_s, args.poll_s)
    with ctx.log_path.open("a") as log:
        log.write(f"{message}\n")
    return {}
