"""A TFJob's status as the Training Operator writes it (kubeflow/training-operator v1.8.1;
the same code in v1.9.0): pure functions of the job, its replicas' phases and the time.

- `defaults`: `SetDefaults_TFJob` (pkg/apis/kubeflow.org/v1/tensorflow_defaults.go), which
  the controller applies to the job it reads (`onOwnerCreateFunc` calls Scheme.Default).
- `set_condition`: `UpdateJobConditions` (pkg/util/status.go): nothing changes once Failed;
  a condition of the same status and reason is left alone; a new one is appended after
  the others, and Succeeded or Failed turn Running False (`filterOutCondition`).
- `update_job_status`: `TFJobReconciler.UpdateJobStatus`
  (pkg/controller.v1/tensorflow/tfjob_controller.go): the Running, Succeeded and Failed
  conditions from the replicas' counts, decided by the Chief (or Master) if there is
  one, else by the Workers (worker 0, or all with successPolicy AllWorkers).
- The messages are the operator's, word for word.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from workflows.kube.objects import now

KIND = "TFJob"
# UpdateJobStatus's order of replica types (allTypes).
REPLICA_TYPES = ("Chief", "Evaluator", "Master", "PS", "Worker")
COUNTS = ("active", "succeeded", "failed")
# pkg/util/status.go: JobCreatedReason ...; the reason is the kind and this (NewReason).
CREATED, RUNNING, RESTARTING, SUCCEEDED, FAILED = (
    "Created",
    "Running",
    "Restarting",
    "Succeeded",
    "Failed",
)

Status = dict[str, Any]
Counts = dict[str, dict[str, int]]  # replica type -> active/succeeded/failed


def defaults(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The spec with `SetDefaults_TFJob`'s defaults: cleanPodPolicy None, successPolicy "",
    replica types in camel case, 1 replica and restartPolicy Never each."""
    out = copy.deepcopy(dict(spec))
    run_policy = out.setdefault("runPolicy", {})
    run_policy.setdefault("cleanPodPolicy", "None")
    out.setdefault("successPolicy", "")
    replicas = {}
    for key, replica in (out.get("tfReplicaSpecs") or {}).items():
        canonical = next((t for t in REPLICA_TYPES if t.lower() == str(key).lower()), key)
        replica.setdefault("replicas", 1)
        replica.setdefault("restartPolicy", "Never")
        replicas[canonical] = replica
    out["tfReplicaSpecs"] = replicas
    return out


def has_condition(status: Mapping[str, Any], kind: str) -> bool:
    """`isStatusConditionTrue`."""
    return any(
        c.get("type") == kind and c.get("status") == "True" for c in status.get("conditions") or []
    )


def finished(status: Mapping[str, Any]) -> bool:
    """`IsFinished`: Succeeded or Failed."""
    return has_condition(status, SUCCEEDED) or has_condition(status, FAILED)


def set_condition(status: Status, kind: str, true: bool, reason: str, message: str) -> None:
    """`UpdateJobConditions(jobStatus, kind, true, NewReason("TFJob", reason), message)`."""
    if has_condition(status, FAILED):  # setCondition: do nothing once Failed
        return
    conditions = status.get("conditions") or []
    value = "True" if true else "False"
    current = next((c for c in conditions if c.get("type") == kind), None)
    reason = f"{KIND}{reason}"
    if current and current.get("status") == value and current.get("reason") == reason:
        return
    when = now()
    changed = when if not current or current.get("status") != value else None
    condition = {
        "type": kind,
        "status": value,
        "reason": reason,
        "message": message,
        "lastUpdateTime": when,
        "lastTransitionTime": changed or (current or {}).get("lastTransitionTime", when),
    }
    kept = []
    for c in conditions:  # filterOutCondition
        if c.get("type") == kind or {kind, c.get("type")} == {RUNNING, RESTARTING}:
            continue
        if kind in (FAILED, SUCCEEDED) and c.get("type") == RUNNING:
            c = {**c, "status": "False"}
        kept.append(c)
    status["conditions"] = [*kept, condition]


def created(name: str) -> str:
    return f"{KIND} {name} is created."  # onOwnerCreateFunc


def running(namespace: str, name: str) -> str:
    return f"{KIND} {namespace}/{name} is running."


def completed(namespace: str, name: str) -> str:
    return f"{KIND} {namespace}/{name} successfully completed."


def replicas_failed(namespace: str, name: str, failed: int, rtype: str) -> str:
    return f"{KIND} {namespace}/{name} has failed because {failed} {rtype} replica(s) failed."


def backoff_limit(name: str) -> str:
    return f"Job {name} has failed because it has reached the specified backoff limit"


def deadline_exceeded(name: str) -> str:
    return f"Job {name} has failed because it was active longer than specified deadline"


def restarting(name: str, rtype: str) -> str:
    # pkg/controller.v1/common/pod.go ReconcilePods, restartPolicy ExitCode, retryable code.
    return f"job {name} is restarting because {rtype} replica(s) failed."


def failing(name: str, rtype: str) -> str:
    # ReconcilePods, restartPolicy ExitCode with a code that is not retryable (< 128).
    return f'job "{name}" is failing because "{rtype}" replica(s) failed.'


def update_job_status(
    status: Status,
    spec: Mapping[str, Any],
    counts: Counts,
    worker0_completed: bool,
    namespace: str,
    name: str,
) -> None:
    """`UpdateJobStatus`'s conditions from `counts` (the replicaStatuses of this reconcile);
    sets completionTime on Succeeded or Failed."""
    replicas = spec["tfReplicaSpecs"]
    led = "Chief" in replicas or "Master" in replicas  # ContainsChiefOrMasterSpec
    # A Restarting condition that Running is about to replace is put back below.
    restarting_before = next(
        (c for c in status.get("conditions") or [] if c.get("type") == RESTARTING), None
    )
    for rtype in REPLICA_TYPES:
        if rtype not in replicas:
            continue
        got = counts.get(rtype, {})
        expected = int(replicas[rtype]["replicas"]) - got.get("succeeded", 0)
        done = expected == 0 or (
            rtype == "Worker" and worker0_completed and spec["successPolicy"] != "AllWorkers"
        )
        if led and rtype in ("Chief", "Master"):
            if got.get("active", 0) > 0:
                set_condition(status, RUNNING, True, RUNNING, running(namespace, name))
            if expected == 0:
                _finish(status, SUCCEEDED, completed(namespace, name))
        elif not led and rtype == "Worker":
            if done:
                _finish(status, SUCCEEDED, completed(namespace, name))
            elif got.get("active", 0) > 0:
                set_condition(status, RUNNING, True, RUNNING, running(namespace, name))
        if got.get("failed", 0) == 0:
            continue
        if restarting_before:  # restarting, not failed: the pods are being recreated
            set_condition(status, RESTARTING, True, RESTARTING, restarting_before["message"])
        elif not (spec.get("enableDynamicWorker") and rtype == "Worker"):
            _finish(status, FAILED, replicas_failed(namespace, name, got["failed"], rtype))


def _finish(status: Status, kind: str, message: str) -> None:
    status.setdefault("completionTime", now())
    set_condition(status, kind, True, kind, message)


def fail(status: Status, message: str) -> None:
    """ReconcileJobs' failure past the backoff limit or the active deadline."""
    _finish(status, FAILED, message)
