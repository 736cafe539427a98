"""The pods a TrainJob becomes: what Kubeflow Trainer v2.3.0 builds of the TrainJob and its
runtime, what JobSet v0.12.0 makes of that, and what the Job controller gives each pod.
Pure functions of the objects; the controller (trainjob.py) runs the pods.

- The trainer (`pkg/runtime/core/trainingruntime.go`, `mergeRuntimePatches` and
  `newRuntimeInfo`; `pkg/runtime/framework/plugins/plainml/plainml.go`,
  `EnforceMLPolicy`; `pkg/runtime/framework/plugins/jobset/builder.go`, `Trainer`, and
  jobset.go `SyncParallelCount`): the runtime's JobSet template with each runtime patch
  merged in (a strategic merge patch); in the replicated job labelled as the trainer's
  ancestor, the container `node` takes the TrainJob's image, command and args, its env
  upserted by name, and `resourcesPerNode` merged key by key (only when the runtime has
  an mlPolicy); numNodes (else the mlPolicy's numNodes, else the Job's parallelism, each
  1 by default) becomes the Job's parallelism and completions. The JobSet is named as the TrainJob.
- JobSet (`pkg/webhooks/jobset_webhook.go`, `Default`; `pkg/controllers/jobset_controller.go`,
  `constructJob`, `labelAndAnnotateObject`; `pkg/util/placement/placement.go`,
  `GenJobName`): Indexed completion, restartPolicy OnFailure when unset, DNS host names
  on with the JobSet's name as subdomain; Job `<jobset>-<job>-<index>`; its labels on
  every pod.
- The Job controller (`pkg/controller/job/job_controller.go`, `manageJob`;
  indexed_job_utils.go): pod i gets host name `<job>-<i>`, the completion index label,
  and JOB_COMPLETION_INDEX from it; backoffLimit 6 when unset (the Job API's default).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from workflows.checks.paths import as_map, as_maps
from workflows.checks.trainer import ANCESTOR_LABEL, TRAINER_CONTAINER, ancestor

# The list fields merged by key in a strategic merge patch (their patchMergeKey in
# k8s.io/api core/v1 and jobset's types); any other list is replaced.
MERGE_KEYS = {
    "replicatedJobs": "name",
    "containers": "name",
    "initContainers": "name",
    "volumes": "name",
    "env": "name",
    "ports": "containerPort",
    "volumeMounts": "mountPath",
}
COMPLETION_INDEX_LABEL = "batch.kubernetes.io/job-completion-index"
JOBSET_LABEL = "jobset.sigs.k8s.io/"
DEFAULT_BACKOFF_LIMIT = 6


def _by_key(
    base: list[Any], items: list[Any], key: str, combine: Callable[[Any, Any], Any]
) -> list[Any]:
    """`base` with each of `items` combined into the element of the same `key` where it
    stands, or appended."""
    out = list(base)
    for item in items:
        at = next((i for i, b in enumerate(out) if b.get(key) == item.get(key)), None)
        if at is None:
            out.append(item)
        else:
            out[at] = combine(out[at], item)
    return out


def strategic_merge(base: Any, patch: Any, field: str = "") -> Any:
    """`patch` merged into `base` as a strategic merge patch of the fields above."""
    if isinstance(base, Mapping) and isinstance(patch, Mapping):
        out = dict(base)
        for key, value in patch.items():
            out[key] = strategic_merge(base.get(key), value, key) if key in base else value
        return out
    if isinstance(base, list) and isinstance(patch, list) and field in MERGE_KEYS:
        return _by_key(base, patch, MERGE_KEYS[field], strategic_merge)
    return copy.deepcopy(patch)


def upsert(env: list[Mapping[str, Any]], new: list[Mapping[str, Any]]) -> list[Any]:
    """`apply.UpsertEnvVars` (pkg/apply/apply.go): a variable of the same name is replaced
    where it stands, a new one appended."""
    return _by_key([dict(e) for e in env], [dict(i) for i in new], "name", lambda _, i: i)


@dataclass(frozen=True)
class NodeJob:
    """The trainer's Job of a TrainJob: its name, pods, their template and policies."""

    name: str
    replicated_job: str
    subdomain: str
    nodes: int
    backoff_limit: int
    max_restarts: int | None  # the JobSet's failurePolicy.maxRestarts; None: no policy
    pod: dict[str, Any]  # the pod template (metadata and spec)

    def hostname(self, index: int) -> str:
        return f"{self.name}-{index}"


def node_job(trainjob: Mapping[str, Any], runtime: Mapping[str, Any]) -> NodeJob:
    """The Job of the TrainJob's trainer nodes, as the trainer, JobSet and the Job
    controller make it. ValueError when the runtime has no trainer job or container."""
    name = str(trainjob["metadata"]["name"])
    spec = as_map(trainjob.get("spec"))
    trainer = as_map(spec.get("trainer"))
    runtime_spec = as_map(runtime.get("spec"))
    jobset: Any = copy.deepcopy(as_map(as_map(runtime_spec.get("template")).get("spec")))
    for patch in as_maps(spec.get("runtimePatches")):
        template = as_map(as_map(patch.get("trainingRuntimeSpec")).get("template"))
        jobset = strategic_merge(jobset, as_map(template.get("spec")))
    jobs = [j for j in as_maps(jobset.get("replicatedJobs")) if ancestor(j) == "trainer"]
    if len(jobs) != 1:
        raise ValueError(f"runtime has {len(jobs)} replicated jobs labelled {ANCESTOR_LABEL}")
    job_spec: dict[str, Any] = copy.deepcopy(
        dict(as_map(as_map(jobs[0].get("template")).get("spec")))
    )
    pod = job_spec.setdefault("template", {})
    pod_spec = pod.setdefault("spec", {})
    container: dict[str, Any] | None = next(
        (c for c in pod_spec.get("containers") or [] if c.get("name") == TRAINER_CONTAINER),
        None,
    )
    if container is None:
        raise ValueError(f"runtime's trainer job has no container {TRAINER_CONTAINER!r}")
    for key in ("image", "command", "args"):
        if trainer.get(key) is not None:  # set, even if empty
            container[key] = copy.deepcopy(trainer[key])
    container["env"] = upsert(as_maps(container.get("env")), as_maps(trainer.get("env")))
    ml_policy = runtime_spec.get("mlPolicy")
    if trainer.get("resourcesPerNode") and ml_policy is not None:
        container["resources"] = strategic_merge(
            as_map(container.get("resources")), trainer["resourcesPerNode"]
        )
    # newRuntimeInfo: the Job's parallelism (default 1), or the mlPolicy's numNodes
    # (default 1) for the trainer; PlainML's EnforceMLPolicy: the TrainJob's, when set.
    nodes = int(
        (as_map(ml_policy).get("numNodes", 1) if ml_policy is not None else None)
        or job_spec.get("parallelism", 1)
    )
    if trainer.get("numNodes") is not None:
        nodes = int(trainer["numNodes"])
    nodes = max(nodes, 0)
    pod_spec.setdefault("restartPolicy", "OnFailure")
    job_name = f"{name}-{jobs[0]['name']}-0"
    network = as_map(jobset.get("network"))
    pod.setdefault("metadata", {})["labels"] = {
        **as_map(as_map(pod.get("metadata")).get("labels")),
        f"{JOBSET_LABEL}jobset-name": name,
        f"{JOBSET_LABEL}replicatedjob-name": str(jobs[0]["name"]),
        f"{JOBSET_LABEL}job-index": "0",
    }
    policy = jobset.get("failurePolicy")
    return NodeJob(
        name=job_name,
        replicated_job=str(jobs[0]["name"]),
        subdomain=str(network.get("subdomain") or name),
        nodes=nodes,
        backoff_limit=int(job_spec.get("backoffLimit", DEFAULT_BACKOFF_LIMIT)),
        max_restarts=int(as_map(policy).get("maxRestarts", 0)) if policy is not None else None,
        pod=pod,
    )


def pod_labels(job: NodeJob, index: int, restarts: int) -> dict[str, str]:
    """Pod `index`'s labels: the JobSet's, its restart attempt and its completion index."""
    return {
        **as_map(as_map(job.pod.get("metadata")).get("labels")),
        f"{JOBSET_LABEL}restart-attempt": str(restarts),
        COMPLETION_INDEX_LABEL: str(index),
    }
