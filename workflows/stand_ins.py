"""Local stand-ins for the TFJob branch's cluster objects, for `python -m workflows run`.

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
runs the step's real polling and decision (`textcnn.tfjob_wait`) over that object, in
place of the Kubernetes API.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
import yaml

from textcnn import cli, storage
from textcnn.cluster import inference_service, tfjob
from textcnn.errors import InputError
from workflows.crd import validate_inference_service
from workflows.inference_service import RUNTIMES
from workflows.lint import kubernetes_problems
from workflows.runner import StandIn, StandInContext, remap_path
from workflows.tfjob import CONTAINER, GENERATED_SUFFIX, validate_tfjob

REPLICA_TYPES = ("Chief", "Worker")  # what MultiWorkerMirroredStrategy runs
NAMESPACE = "default"  # the local runner's {{workflow.namespace}}
POLL_S = 0.2
GRACE_S = 30.0  # workers get this long to finish after the chief before they are stopped
# Kubernetes' alphabet for generated name suffixes (no vowels, no look-alikes).
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def tfjob_record(output_dir: Path, name: str) -> Path:
    """Where the local TFJob object `name` is recorded."""
    return output_dir / "tfjobs" / f"{name}.json"


def _free_ports(count: int) -> list[int]:
    """`count` distinct free loopback ports (all held open at once while choosing)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _condition(kind: str, status: str, message: str, when: str) -> dict[str, str]:
    return {"type": kind, "status": status, "reason": f"TFJob{kind}", "message": message,
            "lastUpdateTime": when, "lastTransitionTime": when}


def _mounts(ctx: StandInContext, pod_spec: Mapping[str, Any], container: Mapping[str, Any],
            replica: str) -> dict[str, Path]:
    volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}
    mounts = {}
    for m in container.get("volumeMounts", []):
        volume = volumes.get(m["name"], {})
        if "persistentVolumeClaim" in volume:
            local = ctx.claim_path(volume["persistentVolumeClaim"]["claimName"])
        elif "emptyDir" in volume:
            local = ctx.pod_dir / replica / "volumes" / m["name"]
        else:
            raise InputError(f"TFJob volume {m['name']!r}: the local stand-in mounts "
                             "persistentVolumeClaim and emptyDir volumes only")
        local.mkdir(parents=True, exist_ok=True)
        mounts[m["mountPath"]] = local / m.get("subPath", "")
    return mounts


class _Replica:
    """One replica's process."""

    def __init__(self, ctx: StandInContext, rtype: str, index: int,
                 pod_spec: Mapping[str, Any], tf_config: dict[str, Any]) -> None:
        self.rtype, self.index = rtype, index
        container = next(c for c in pod_spec["containers"] if c["name"] == CONTAINER)
        mounts = _mounts(ctx, pod_spec, container, f"{rtype.lower()}-{index}")
        command = [remap_path(str(a), mounts)
                   for a in (*container.get("command", []), *container.get("args", []))]
        if command and command[0] in ("python", "python3"):
            command[0] = sys.executable
        env = {**ctx.env, **{e["name"]: str(e["value"]) for e in container.get("env", [])
                             if "value" in e}}
        env["TF_CONFIG"] = json.dumps(tf_config)
        self.log = ctx.output_dir / "logs" / f"{ctx.task}-{rtype.lower()}-{index}.log"
        with self.log.open("w") as log:
            log.write(f"TF_CONFIG={env['TF_CONFIG']}\n$ {shlex.join(command)}\n")
            log.flush()
            # The runner's process group: a Ctrl-C in the terminal reaches the replicas too.
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env)

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


def _follow(replicas: list[_Replica], deadline: float | None, name: str,
            namespace: str) -> tuple[bool, str]:
    """Wait as the operator would: (succeeded, the Succeeded or Failed message)."""
    chief = replicas[0]
    while True:
        failed = [r for r in replicas if r.proc.poll() not in (None, 0)]
        if failed:
            types = sorted({r.rtype for r in failed})
            return False, (f"TFJob {namespace}/{name} has failed because {len(failed)} "
                           f"{'/'.join(types)} replica(s) failed.")
        if chief.proc.returncode == 0:
            end = time.monotonic() + GRACE_S
            while any(r.proc.poll() is None for r in replicas) and time.monotonic() < end:
                time.sleep(POLL_S)
            return True, f"TFJob {namespace}/{name} successfully completed."
        if deadline is not None and time.monotonic() > deadline:
            return False, (f"Job {name} has failed because it was active longer than "
                           "specified deadline")
        time.sleep(POLL_S)


def _created(doc: dict[str, Any]) -> tuple[str, str]:
    """Name and namespace of an object as the API server creates it: a name made from
    `generateName` and 5 random characters, the default namespace."""
    meta = doc.setdefault("metadata", {})
    if "name" not in meta:
        suffix = "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(GENERATED_SUFFIX))
        meta["name"] = f"{meta.pop('generateName', '')}{suffix}"
    meta.setdefault("namespace", NAMESPACE)
    return meta["name"], meta["namespace"]


def create_claim(ctx: StandInContext) -> dict[str, str]:
    """Create the PersistentVolumeClaim of `ctx.manifest`: checked as the API server would,
    then its folder in the run (`<run>/volumes/<claim>`); returns its name as `claim`."""
    if not ctx.manifest:
        raise InputError(f"task {ctx.task!r}: the resource template has no manifest")
    doc = yaml.safe_load(ctx.manifest)
    name, _ = _created(doc)
    problems = kubernetes_problems(doc)
    if problems:
        raise InputError(f"PersistentVolumeClaim {name} rejected: " + "; ".join(problems))
    ctx.claim_path(name).mkdir(parents=True)
    with ctx.log_path.open("a") as log:
        log.write(f"persistentvolumeclaim/{name} created: {ctx.claim_path(name)}\n")
    return {"claim": name}


def run_tfjob(ctx: StandInContext) -> dict[str, str]:
    """Create the TFJob of `ctx.manifest` here: run it to the end, record it, return its name."""
    if not ctx.manifest:
        raise InputError(f"task {ctx.task!r}: the resource template has no manifest")
    doc = yaml.safe_load(ctx.manifest)
    name, namespace = _created(doc)
    problems = validate_tfjob(doc)  # what the API server and the webhook would reject
    if problems:
        raise InputError(f"TFJob {name} rejected: " + "; ".join(problems))
    specs = doc["spec"]["tfReplicaSpecs"]
    unsupported = sorted(set(specs) - set(REPLICA_TYPES))
    if unsupported or "Chief" not in specs:
        raise InputError(f"TFJob {name}: the local stand-in runs one Chief and Workers, not "
                         f"{sorted(specs)}")
    roles = [(rtype, i) for rtype in REPLICA_TYPES
             for i in range(int(specs.get(rtype, {}).get("replicas", 1)))]
    ports = iter(_free_ports(len(roles)))
    cluster: dict[str, list[str]] = {}
    for rtype, _ in roles:  # the operator's TF_CONFIG: lower-case types, one address each
        cluster.setdefault(rtype.lower(), []).append(f"127.0.0.1:{next(ports)}")
    start, started = _now(), time.monotonic()
    run_policy = doc["spec"].get("runPolicy", {})
    deadline = run_policy.get("activeDeadlineSeconds")
    replicas: list[_Replica] = []
    try:
        for rtype, i in roles:
            tf_config = {"cluster": cluster, "task": {"type": rtype.lower(), "index": i},
                         "environment": "cloud"}
            replicas.append(_Replica(ctx, rtype, i, specs[rtype]["template"]["spec"],
                                     tf_config))
        succeeded, message = _follow(replicas, None if deadline is None else started + deadline,
                                     name, namespace)
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
        "startTime": start, "completionTime": end,
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
    args = parser.parse_args(ctx.template["container"].get("args", []))

    def get() -> dict[str, Any]:
        record = tfjob_record(ctx.output_dir, args.name)
        if not record.is_file():
            raise RuntimeError(f"tfjobs.kubeflow.org {args.name!r} not found in this run")
        doc = json.loads(record.read_text())
        if doc["metadata"]["namespace"] != args.namespace:
            raise RuntimeError(f"tfjobs.kubeflow.org {args.name!r} not found in namespace "
                               f"{args.namespace!r}")
        return doc

    message = tfjob.wait_for(get, args.timeout_s, args.poll_s)
    with ctx.log_path.open("a") as log:
        log.write(f"{message}\n")
    return {}


# Template name -> stand-in, for `run_workflow(stand_ins=...)`.
STAND_INS: dict[str, StandIn] = {
    "workdir-claim": create_claim, "tfjob": run_tfjob, "tfjob-gpu": run_tfjob,
    "wait-tfjob": wait_tfjob,
}


# ---- KServe ------------------------------------------------------------------------------

class LocalKServe:
    """Stands in for the KServe controller: `apply` checks the InferenceService as the API
    server and webhook would and starts the project's KServe model server on a free
    127.0.0.1 port over the model at its storageUri (for both runtimes: TF Serving and this
    server answer the same V1 REST route); `wait` runs the real deploy-wait step
    (`textcnn.cluster.inference_service.finish`: readiness judged on the service object, smoke prediction,
    endpoint recorded in ML Metadata) over an object whose status reflects that server.
    Servers stop with `stop()`, unless the caller keeps serving."""

    def __init__(self) -> None:
        self.servers: dict[str, tuple[subprocess.Popen[bytes], dict[str, Any], Path]] = {}

    def apply(self, ctx: StandInContext) -> dict[str, str]:
        doc = yaml.safe_load(ctx.manifest or "")
        problems = validate_inference_service(doc)
        if problems:
            raise InputError("InferenceService rejected: " + "; ".join(problems))
        name = doc["metadata"]["name"]
        predictor = doc["spec"]["predictor"]
        uri = (predictor["model"]["storageUri"] if "model" in predictor else next(
            e["value"] for e in predictor["containers"][0]["env"] if e["name"] == "STORAGE_URI"))
        model_dir = ctx.pod_dir / "mnt" / "models"  # the storage initializer's download
        storage.download_dir(uri, model_dir)
        generation = 1
        if name in self.servers:  # a re-apply makes a new generation, served anew
            generation = self.servers[name][1]["metadata"]["generation"] + 1
            self.stop(name)
        (port,) = _free_ports(1)
        log = ctx.output_dir / "logs" / f"{ctx.task}-server.log"
        command = [sys.executable, "-m", "textcnn.serving", f"--model_dir={model_dir}",
                   f"--model_name={name}", f"--port={port}", "--host=127.0.0.1"]
        with log.open("w") as out:
            out.write(f"$ {shlex.join(command)}\n")
            out.flush()
            proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=ctx.env,
                                    start_new_session=True)
        doc["metadata"].update(namespace=doc["metadata"].get("namespace", NAMESPACE),
                               generation=generation)
        doc["status"] = {"url": f"http://127.0.0.1:{port}"}
        self.servers[name] = (proc, doc, log)
        with ctx.log_path.open("a") as out:
            out.write(f"InferenceService {name} (generation {generation}) served by "
                      f"{shlex.join(command)}; log: {log}\n")
        return {}

    def _object(self, name: str) -> dict[str, Any]:
        """The service object with the status the controller would write for the server."""
        if name not in self.servers:
            raise RuntimeError(f"inferenceservices.serving.kserve.io {name!r} not found")
        proc, doc, log = self.servers[name]
        url, generation = doc["status"]["url"], doc["metadata"]["generation"]
        status: dict[str, Any] = {"observedGeneration": generation}
        if proc.poll() is not None:
            tail = " | ".join(log.read_text(errors="replace").splitlines()[-3:])
            status["modelStatus"] = {
                "states": {"targetModelState": "FailedToLoad"},
                "lastFailureInfo": {"reason": "ModelLoadFailed", "exitCode": proc.returncode,
                                    "message": f"{tail} (log: {log})"}}
        else:
            try:
                ready = requests.get(f"{url}/v1/models/{name}", timeout=2).ok
            except requests.RequestException:
                ready = False
            status["conditions"] = [{"type": "Ready", "status": "True" if ready else "False",
                                     **({} if ready else {"reason": "ModelLoading"})}]
            if ready:
                status.update(url=url, address={"url": url})
        return {**doc, "status": status}

    def wait(self, ctx: StandInContext) -> dict[str, str]:
        parser = cli.build_parser("deploy-wait", cli.load_step("deploy-wait"))
        args = vars(parser.parse_args(ctx.template["container"].get("args", [])))
        args.pop("outputs")
        outputs = inference_service.finish(lambda: self._object(args["name"]), **{
            k: v for k, v in args.items() if k != "poll_s"}, poll_s=0.5)
        with ctx.log_path.open("a") as out:
            out.write(f"endpoint {outputs['endpoint']} ready; smoke prediction answered\n")
        return outputs

    def stand_ins(self) -> dict[str, StandIn]:
        return {f"deploy-{runtime}": self.apply for runtime in RUNTIMES} | {
            "deploy-wait": self.wait}

    def serve_forever(self) -> None:
        """Block while the servers run (until Ctrl-C)."""
        with contextlib.suppress(KeyboardInterrupt):
            for proc, _, _ in list(self.servers.values()):
                proc.wait()

    def stop(self, name: str | None = None) -> None:
        for key in [name] if name else list(self.servers):
            proc = self.servers.pop(key)[0]
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
