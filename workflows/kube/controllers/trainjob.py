"""The TrainJob controller: Kubeflow Trainer v2.3.0 with the JobSet (v0.12.0) and Job
controllers under it, over the store. A TrainJob's nodes (trainjob_pods.py) are local
processes; its status is what the trainer writes.

One reconcile of a TrainJob, in upstream's order:

1. A finished TrainJob (`Complete` or `Failed` True: `IsTrainJobFinished`,
   pkg/util/trainjob/trainjob.go) is left alone; its JobSet's pods are stopped (JobSet
   deletes the active Jobs of a finished JobSet).
2. Past `activeDeadlineSeconds` from its creation (trainjob_controller.go,
   `reconcileDeadline`): `Failed`, reason `DeadlineExceeded`, "TrainJob exceeded its
   active deadline", and the JobSet (its pods) deleted.
3. A new TrainJob gets its JobSet once its runtime is known (the trainer reconciles a
   missing one with an event only, no condition) and every claim its pods mount is Bound.
   Each node is a process with the host name, completion index and labels its pod would
   have; since there is no DNS here, each node's `<host>.<subdomain>` is given a
   loopback port, passed as LOCAL_CLUSTER_ADDRESSES (addresses.py).
4. The Job controller (job_controller.go, `syncJob`): with restartPolicy Never a failed
   pod is replaced until more than `backoffLimit` have failed; with OnFailure the
   kubelet restarts the container until the restarts reach it; then the Job fails
   (`BackoffLimitExceeded`) and its pods are stopped.
5. JobSet (pkg/controllers/failure_policy.go, `executeFailurePolicy`): a failed Job fails
   the JobSet (`FailedJobs`) when it has no failurePolicy; with one, every Job is
   recreated (`status.restarts` + 1) until `maxRestarts` is reached
   (`ReachedMaxRestarts`). All Jobs complete: `Completed`, `AllJobsCompleted`
   (`executeSuccessPolicy`, operator All).
6. The trainer copies the JobSet's `Completed` and `Failed` conditions as `Complete` and
   `Failed`, reason and message unchanged (pkg/runtime/framework/plugins/jobset/
   jobset.go, `Status`), and its replicatedJobsStatus as `jobsStatus`.

Also `spec.suspend` (no pods while suspended; the `Suspended` condition as the trainer
sets it) and `managedBy` (a TrainJob another controller manages is left alone). What a
cluster does and this does not: initializers, the runtime snapshot ConfigMap, the pod
failure back-off delays, and the deadline's restart on resume (here it counts from the
TrainJob's creation, resumed or not). A pod this machine cannot run (a volume type, a
downward-API field it cannot give) fails the TrainJob with reason `Unsupported`, ours.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workflows.checks.trainer import RUNTIME_KIND, TRAINER_CONTAINER
from workflows.errors import WorkflowError
from workflows.kube.controllers.addresses import (
    COMPLETION_INDEX_ENV,
    HOSTNAME_ENV,
    LOCAL_ADDRESSES_ENV,
)
from workflows.kube.controllers.claims import all_bound
from workflows.kube.controllers.conditions import get
from workflows.kube.controllers.kinds import TRAINJOB
from workflows.kube.controllers.ports import free_ports
from workflows.kube.controllers.replicas import Replica, Runs, Unsupported, replica, stop_all
from workflows.kube.controllers.trainjob_pods import NodeJob, node_job, pod_labels
from workflows.kube.objects import NotFound, Objects, age_seconds, now
from workflows.local.substitution import claim_dir

COMPLETE, FAILED = "Complete", "Failed"
# jobset pkg/constants/constants.go; the trainer's own (pkg/constants/constants.go).
COMPLETED_REASON, COMPLETED_MESSAGE = "AllJobsCompleted", "jobset completed successfully"
FAILED_JOBS_REASON = "FailedJobs"
FAILED_JOBS_MESSAGE = "jobset failed due to one or more job failures"
MAX_RESTARTS_REASON = "ReachedMaxRestarts"
MAX_RESTARTS_MESSAGE = "jobset failed due to reaching max number of restarts"
DEADLINE_REASON, DEADLINE_MESSAGE = "DeadlineExceeded", "TrainJob exceeded its active deadline"
SUSPENDED = "Suspended"
SUSPENDED_MESSAGE, RESUMED, RESUMED_MESSAGE = (
    "TrainJob is suspended",
    "Resumed",
    "TrainJob is resumed",
)
MANAGED_BY = "trainer.kubeflow.org/trainjob-controller"  # the trainer's own (the default)
UNSUPPORTED = "Unsupported"  # ours: what this machine cannot run, said as a failure


def _true(status: Mapping[str, Any], kind: str) -> bool:
    return get(status.get("conditions") or [], kind).get("status") == "True"


def finished(status: Mapping[str, Any]) -> bool:
    """`IsTrainJobFinished` (pkg/util/trainjob/trainjob.go): Complete or Failed."""
    return _true(status, COMPLETE) or _true(status, FAILED)


def _set(status: dict[str, Any], kind: str, value: str, reason: str, message: str) -> None:
    """`meta.SetStatusCondition`: the condition of that type replaced, or appended."""
    condition = {
        "type": kind,
        "status": value,
        "reason": reason,
        "message": message,
        "lastTransitionTime": now(),
    }
    status["conditions"] = [
        *(c for c in status.get("conditions") or [] if c.get("type") != kind),
        condition,
    ]


def _finish(status: dict[str, Any], kind: str, reason: str, message: str) -> None:
    _set(status, kind, "True", reason, message)


@dataclass
class JobSet:
    """A TrainJob's JobSet: its one trainer Job's pods, and its restarts."""

    job: NodeJob
    pods: list[Replica]
    restarts: int = 0  # status.restarts: how often every Job was recreated
    failed: int = 0  # this attempt's failed pods, against the Job's backoffLimit


class TrainJobs:
    """Runs the TrainJobs of `objects` on the ClusterTrainingRuntimes `runtimes` (by name:
    what `kubectl apply -f manifests/trainer/training-runtime.yaml` installed). `runs` stands in
    for an image (replicas.py); claims are folders of `run_dir`, node logs
    `<logs_dir>/<job>-<index>.log`, a node's own folders under `<pods_dir>/<job>-<index>/`,
    and `env` is every container's base environment."""

    def __init__(
        self,
        objects: Objects,
        runs: Runs,
        runtimes: Mapping[str, Mapping[str, Any]],
        *,
        run_dir: Path,
        logs_dir: Path,
        pods_dir: Path,
        env: Mapping[str, str],
    ) -> None:
        self.objects, self.runs, self.runtimes = objects, runs, dict(runtimes)
        self.run_dir, self.logs_dir, self.pods_dir = run_dir, logs_dir, pods_dir
        self.env = dict(env)
        self.sets: dict[str, JobSet] = {}  # by the TrainJob's uid

    def reconcile(self) -> None:
        seen, errors = set(), []
        for doc in self.objects.list_of(TRAINJOB):
            seen.add(doc["metadata"]["uid"])
            try:
                self._sync(doc)
            except NotFound:
                continue
            except Exception as e:  # one job's trouble must not stall the others
                errors.append(e)
        for uid in set(self.sets) - seen:  # deleted: its JobSet and pods go with it
            stop_all(self.sets.pop(uid).pods)
        if errors:
            raise errors[0]

    def close(self) -> None:
        for jobset in self.sets.values():
            stop_all(jobset.pods)

    def _sync(self, doc: dict[str, Any]) -> None:
        meta, spec = doc["metadata"], doc.get("spec") or {}
        if spec.get("managedBy", MANAGED_BY) != MANAGED_BY:
            return  # another controller's (Kueue's MultiKueue): the trainer skips it
        status = copy.deepcopy(doc.get("status") or {})
        jobset = self.sets.get(meta["uid"])
        if finished(status):
            if jobset is not None:
                stop_all(jobset.pods)
            return
        if _past_deadline(spec, meta):
            _finish(status, FAILED, DEADLINE_REASON, DEADLINE_MESSAGE)
            if jobset is not None:
                stop_all(jobset.pods)
            return self._write(doc, status)
        if _suspended(spec, status):  # the JobSet's Jobs suspended: no pods
            if jobset is not None:
                stop_all(self.sets.pop(meta["uid"]).pods)
            return self._write(doc, status)
        if jobset is None:
            ref = spec.get("runtimeRef") or {}
            runtime = (
                self.runtimes.get(str(ref.get("name")))
                if ref.get("kind", RUNTIME_KIND) == RUNTIME_KIND
                else None  # no namespaced TrainingRuntime is installed here
            )
            if runtime is None:
                return  # upstream: a TrainJobResourcesCreationFailed event, no condition
            try:
                job = node_job(doc, runtime)
                if not all_bound(self.objects, meta["namespace"], [job.pod.get("spec") or {}]):
                    return self._write(doc, status)  # its pods would be Pending
                pods = self._pods(job)
                _start(pods, self.runs)
            except (Unsupported, WorkflowError, ValueError) as e:
                # This machine's limit (a volume, a field it cannot give), not a verdict
                # of the trainer's: said as the TrainJob's failure, so the wait ends.
                _finish(status, FAILED, UNSUPPORTED, f"the local cluster cannot run it: {e}")
                return self._write(doc, status)
            jobset = self.sets[meta["uid"]] = JobSet(job, pods)
        self._step(jobset, status)
        self._write(doc, status)

    def _pods(self, job: NodeJob) -> list[Replica]:
        """The Job's pods: each with its labels, host name and completion index, and every
        node's name mapped to the loopback port its process listens on."""
        ports = free_ports(job.nodes)
        peers = {
            f"{job.hostname(i)}.{job.subdomain}": f"127.0.0.1:{ports[i]}" for i in range(job.nodes)
        }
        policy = str((job.pod.get("spec") or {}).get("restartPolicy"))
        pods = []
        for i in range(job.nodes):
            name = job.hostname(i)
            template = {
                "metadata": {**(job.pod.get("metadata") or {}), "labels": pod_labels(job, i, 0)},
                "spec": job.pod.get("spec") or {},
            }
            injected = {
                HOSTNAME_ENV: name,
                COMPLETION_INDEX_ENV: str(i),
                LOCAL_ADDRESSES_ENV: json.dumps(peers),
            }
            pods.append(
                replica(
                    template,
                    (job.replicated_job, i, policy),
                    self.env,
                    lambda claim: claim_dir(self.run_dir, claim),
                    self.pods_dir / name,
                    self.logs_dir / f"{name}.log",
                    container=TRAINER_CONTAINER,
                    injected=injected,
                )
            )
        return pods

    def _step(self, jobset: JobSet, status: dict[str, Any]) -> None:
        """Steps 4 to 6 of the module's list, on a JobSet that runs."""
        job, pods = jobset.job, jobset.pods
        for r in pods:
            if r.restart_due():  # the kubelet's restarts (OnFailure)
                r.start(self.runs, restart=True)
        # One look at the pods for the whole step: a pod that ends meanwhile is seen next
        # time, counted once, and replaced only once counted.
        phases = [r.phase for r in pods]
        jobset.failed += phases.count("Failed")
        restarts = sum(
            r.restarts for r, phase in zip(pods, phases, strict=True) if phase == "Running"
        )
        limit = job.backoff_limit
        job_failed = jobset.failed > limit or (restarts > 0 if limit == 0 else restarts >= limit)
        if job_failed:
            stop_all(pods)
            first = f" (first failed job: {job.name})"
            if job.max_restarts is None:
                _finish(status, FAILED, FAILED_JOBS_REASON, FAILED_JOBS_MESSAGE + first)
            elif jobset.restarts >= job.max_restarts:
                _finish(status, FAILED, MAX_RESTARTS_REASON, MAX_RESTARTS_MESSAGE + first)
            else:  # RestartJobSet: every Job recreated, its pods with them
                jobset.restarts += 1
                jobset.failed = 0
                _start(pods, self.runs)
                phases = ["Running"] * len(pods)
        else:
            for r, phase in zip(pods, phases, strict=True):
                if phase == "Failed":  # the Job controller's replacement pod
                    r.start(self.runs)
            if all(phase == "Succeeded" for phase in phases):
                _finish(status, COMPLETE, COMPLETED_REASON, COMPLETED_MESSAGE)
        done = finished(status)
        # calculateReplicatedJobStatuses: the Job is ready once all its pods run (or ran).
        ready = not done and all(phase in ("Running", "Succeeded") for phase in phases)
        status["jobsStatus"] = [
            {
                "name": job.replicated_job,
                "ready": int(ready),
                "succeeded": int(done and not job_failed),
                "failed": int(done and job_failed),
                "active": int(not done and "Running" in phases),
                "suspended": 0,
            }
        ]

    def _write(self, doc: dict[str, Any], status: dict[str, Any]) -> None:
        if status != (doc.get("status") or {}):
            meta = doc["metadata"]
            self.objects.write_status(TRAINJOB, meta["namespace"], meta["name"], status)


def _start(pods: list[Replica], runs: Runs) -> None:
    """Create the pods (again, after a restart: new pods of the same names)."""
    try:
        for r in pods:
            r.restarts = 0  # a new pod's containers have not restarted
            r.start(runs)
    except Exception:
        stop_all(pods)
        raise


def _suspended(spec: Mapping[str, Any], status: dict[str, Any]) -> bool:
    """`setSuspendedCondition`: Suspended while spec.suspend; once resumed, the condition
    turns False ("Resumed"); a never-suspended TrainJob has none."""
    was = _true(status, SUSPENDED)
    now = bool(spec.get("suspend"))
    if now != was and (now or was):
        reason, message = (SUSPENDED, SUSPENDED_MESSAGE) if now else (RESUMED, RESUMED_MESSAGE)
        _set(status, SUSPENDED, "True" if now else "False", reason, message)
    return now


def _past_deadline(spec: Mapping[str, Any], meta: Mapping[str, Any]) -> bool:
    """`reconcileDeadline`: activeDeadlineSeconds from the TrainJob's creation (not while
    suspended: this controller starts the clock there, and resuming does not reset it)."""
    limit, created = spec.get("activeDeadlineSeconds"), meta.get("creationTimestamp")
    if not limit or not created or spec.get("suspend"):
        return False
    return age_seconds(created) >= int(limit)
