"""The TFJob controller: the Training Operator's `ReconcileJobs` (kubeflow/training-operator
v1.8.1, pkg/controller.v1/common/job.go; the same in v1.9.0) over the store, each replica's
pod a local process (replicas.py) and the status as the operator writes it
(tfjob_status.py).

One reconcile of a job, in the operator's order:

1. A finished job (Succeeded or Failed) has its pods cleaned up as `cleanPodPolicy` says
   (`CleanUpResources`, `DeletePodsAndServices`: Running stops the running ones, All every
   one, None none); on success, replicas still active count as succeeded. (The operator
   does this on the reconcile after the one that finished the job; here the same
   reconcile does it, so the finished status is written once, in its final form.)
2. A new job gets its Created condition (`onOwnerCreateFunc`) and its pods, once every
   claim they mount is Bound (a pod with an unbound claim stays Pending).
3. The kubelet restarts a container its restartPolicy restarts (OnFailure, Always).
4. Past the backoff limit (`PastBackoffLimit`: the restarts of the running pods reach
   `backoffLimit`; or, with `backoffLimit` 0, a pod newly failed) or the active deadline
   (`PastActiveDeadline`, from startTime): Failed with the operator's message, every pod
   stopped.
5. Else `ReconcilePods` (restartPolicy ExitCode: a failed pod with a retryable code, 128 or
   more, is recreated and the job is Restarting; any other code fails it) and
   `UpdateJobStatus` (Running, Succeeded or Failed, replicaStatuses, startTime,
   completionTime).

What a cluster does and this does not: PS, Evaluator and Master replicas run like the
others but nothing here was tried with them; `ttlSecondsAfterFinished`, suspend, gang
scheduling and `enableDynamicWorker`'s sparse TF_CONFIG are not implemented.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import workflows.kube.controllers.tfjob_status as js
from workflows.errors import WorkflowError
from workflows.kube.controllers.claims import all_bound
from workflows.kube.controllers.kinds import TFJOB
from workflows.kube.controllers.replicas import (
    Replica,
    Runs,
    Unsupported,
    replica,
    stop_all,
    tf_configs,
)
from workflows.kube.objects import NotFound, Objects, age_seconds
from workflows.local.substitution import claim_dir

BACKOFF_POLICIES = ("OnFailure", "Always", "ExitCode")  # what PastBackoffLimit counts


@dataclass
class Job:
    name: str
    namespace: str
    replicas: list[Replica]


class TFJobs:
    """Runs the TFJobs of `objects`. `runs` stands in for an image (see replicas.py);
    claims are folders of `run_dir` (`claim_dir`), replica logs are
    `<logs_dir>/<tfjob>-<type>-<index>.log`, a replica's own folders (emptyDir) are under
    `<pods_dir>/<tfjob>-<type>-<index>/`, and `env` is every container's base environment."""

    def __init__(
        self,
        objects: Objects,
        runs: Runs,
        *,
        run_dir: Path,
        logs_dir: Path,
        pods_dir: Path,
        env: Mapping[str, str],
    ) -> None:
        self.objects, self.runs = objects, runs
        self.run_dir, self.logs_dir, self.pods_dir = run_dir, logs_dir, pods_dir
        self.env = dict(env)
        self.jobs: dict[str, Job] = {}  # by uid

    def reconcile(self) -> None:
        seen, errors = set(), []
        for doc in self.objects.list_of(TFJOB):
            seen.add(doc["metadata"]["uid"])
            try:
                self._sync(doc)
            except NotFound:  # deleted meanwhile: its pods go below, next time
                continue
            except Exception as e:  # one job's trouble must not stall the others
                errors.append(e)
        for uid in set(self.jobs) - seen:  # deleted: its pods are garbage-collected
            stop_all(self.jobs.pop(uid).replicas)
        if errors:
            raise errors[0]

    def close(self) -> None:
        for job in self.jobs.values():
            stop_all(job.replicas)

    # -- one job

    def _sync(self, doc: dict[str, Any]) -> None:
        meta = doc["metadata"]
        name, namespace, uid = meta["name"], meta["namespace"], meta["uid"]
        spec = js.defaults(doc.get("spec") or {})
        status = copy.deepcopy(doc.get("status") or {})
        job = self.jobs.get(uid)
        if js.finished(status):
            if job is not None:
                self._clean_up(job, spec, status)
            return self._write(doc, status)
        if not status.get("conditions"):
            js.set_condition(status, js.CREATED, True, js.CREATED, js.created(name))
        if job is None:
            replicas = spec["tfReplicaSpecs"].values()
            pods = [(r.get("template") or {}).get("spec") or {} for r in replicas]
            if not all_bound(self.objects, namespace, pods):
                return self._write(doc, status)  # its pods would be Pending
            try:
                job = self.jobs[uid] = self._start(name, namespace, spec)
            except (Unsupported, WorkflowError) as e:  # a volume, a field this machine lacks
                js.fail(status, f"{js.KIND} {namespace}/{name}: {e}")
                return self._write(doc, status)
        status.setdefault("startTime", js.now())
        self._step(job, spec, status)
        if js.finished(status):  # the operator's next reconcile, done at once
            self._clean_up(job, spec, status)
        self._write(doc, status)

    def _step(self, job: Job, spec: dict[str, Any], status: dict[str, Any]) -> None:
        """Steps 3 to 5 of the module's list, on a job that runs."""
        previous_failed = sum(c.get("failed", 0) for c in _statuses(status).values())
        due = [r for r in job.replicas if r.restart_due()]
        counts = _counts(job.replicas)
        failed = sum(c.get("failed", 0) for c in counts.values())
        active = sum(c.get("active", 0) for c in counts.values())
        run_policy = spec["runPolicy"]
        limit = run_policy.get("backoffLimit")
        restarts = sum(
            r.restarts + (r in due)
            for r in job.replicas
            if r.restart_policy in BACKOFF_POLICIES and r.phase == "Running"
        )
        over = limit is not None and (
            (failed > previous_failed and active != len(job.replicas) and int(limit) == 0)
            or (restarts > 0 if int(limit) == 0 else restarts >= int(limit))
        )
        if over or _past_deadline(run_policy, status):
            status["replicaStatuses"] = counts
            why = js.backoff_limit(job.name) if over else js.deadline_exceeded(job.name)
            js.fail(status, why)
            stop_all(job.replicas)
            return
        for r in due:  # the kubelet's restarts
            r.start(self.runs, restart=True)
        self._exit_code_policy(job, spec, status)
        counts = status["replicaStatuses"] = _counts(job.replicas)
        js.update_job_status(status, spec, counts, _worker0_done(job), job.namespace, job.name)

    def _exit_code_policy(self, job: Job, spec: dict[str, Any], status: dict[str, Any]) -> None:
        """`ReconcilePods` for restartPolicy ExitCode: a failed pod with a retryable exit
        code (`IsRetryableExitCode`: 128 or more) is recreated, and the job is
        Restarting; with any other code the job fails."""
        for r in job.replicas:
            if r.restart_policy != "ExitCode" or r.phase != "Failed":
                continue
            code = r.exit_code() or 0
            if code >= 128:
                message = js.restarting(job.name, r.rtype)
                js.set_condition(status, js.RESTARTING, True, js.RESTARTING, message)
                r.start(self.runs)
            else:
                js.set_condition(status, js.FAILED, True, js.FAILED, js.failing(job.name, r.rtype))

    def _clean_up(self, job: Job, spec: dict[str, Any], status: dict[str, Any]) -> None:
        """`CleanUpResources` of a finished job; on success, replicas still active count
        as succeeded (ReconcileJobs)."""
        policy = spec["runPolicy"]["cleanPodPolicy"]
        if policy != "None":  # Running and All both stop what still runs
            stop_all(job.replicas)
        if js.has_condition(status, js.SUCCEEDED):
            for counts in _statuses(status).values():
                counts["succeeded"] = counts.get("succeeded", 0) + counts.pop("active", 0)

    def _start(self, name: str, namespace: str, spec: Mapping[str, Any]) -> Job:
        """The job's pods, started: every replica of every type, with its TF_CONFIG."""
        rspecs = spec["tfReplicaSpecs"]
        order = [t for t in js.REPLICA_TYPES if t in rspecs]
        configs = tf_configs(name, {t: int(rspecs[t]["replicas"]) for t in order})
        found = []
        for rtype in order:
            for i in range(int(rspecs[rtype]["replicas"])):
                pod = f"{name}-{rtype.lower()}-{i}"  # the operator's GenGeneralName
                found.append(
                    replica(
                        rspecs[rtype].get("template") or {},
                        (rtype, i, rspecs[rtype]["restartPolicy"]),
                        self.env,
                        lambda claim: claim_dir(self.run_dir, claim),
                        self.pods_dir / pod,
                        self.logs_dir / f"{pod}.log",
                        injected={"TF_CONFIG": configs[rtype, i]} if (rtype, i) in configs else {},
                    )
                )
        try:
            for r in found:
                r.start(self.runs)
        except Exception:
            stop_all(found)
            raise
        return Job(name, namespace, found)

    def _write(self, doc: dict[str, Any], status: dict[str, Any]) -> None:
        if status != doc.get("status"):
            meta = doc["metadata"]
            self.objects.write_status(TFJOB, meta["namespace"], meta["name"], status)


def _statuses(status: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    return status.get("replicaStatuses") or {}


def _counts(replicas: list[Replica]) -> js.Counts:
    """replicaStatuses: each type's pods by phase (`UpdateJobReplicaStatuses`: Running is
    active; Pending pods count nowhere)."""
    out: js.Counts = {}
    for r in replicas:
        counts = out.setdefault(r.rtype, {})
        if r.started:
            key = {"Running": "active", "Succeeded": "succeeded", "Failed": "failed"}[r.phase]
            counts[key] = counts.get(key, 0) + 1
    return out


def _worker0_done(job: Job) -> bool:
    """`IsWorker0Completed`: no Worker type, or worker 0 exited 0."""
    workers = [r for r in job.replicas if r.rtype == "Worker"]
    return not workers or any(r.index == 0 and r.phase == "Succeeded" for r in workers)


def _past_deadline(run_policy: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    """`PastActiveDeadline` (pkg/core/job.go): activeDeadlineSeconds since startTime."""
    limit, start = run_policy.get("activeDeadlineSeconds"), status.get("startTime")
    if limit is None or start is None:
        return False
    return age_seconds(start) >= int(limit)
