"""What the API server and Kubeflow Trainer v2.3.0's webhooks accept of a TrainJob and a
ClusterTrainingRuntime (trainer.kubeflow.org/v1alpha1): the CRD schema with unknown keys
refused (crd.py), and the rules no JSON schema runs: the CRDs' CEL rules and the webhooks'.

- TrainJob: `metadata.name` an RFC 1035 label of at most 63 characters (CEL on the type);
  `runtimeRef` of a kind the trainer serves (`pkg/webhooks/trainjob_webhook.go`,
  `ValidateCreate`: "unsupported runtime: ..."); a referenced runtime that exists
  (`pkg/runtime/core/clustertrainingruntime.go`, `ValidateObjects`); and each
  `runtimePatches` entry (`pkg/runtime/framework/plugins/jobset/jobset.go`, `Validate`):
  `manager` a domain-prefixed path, unique, patching only replicated jobs and containers
  the runtime has, and no env for the `node` and initializer containers.
- ClusterTrainingRuntime (`pkg/webhooks/trainingruntime_webhook.go`,
  `validateReplicatedJobs`): a replicated job labelled as the trainer's ancestor has one
  replica and a container named `node`; at most one ML policy source (CEL).

Every function returns `path: message` strings; an empty list means accepted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from textcnn.params import DNS_SUBDOMAIN
from workflows.checks.admission import kind_errors, name_errors, object_name
from workflows.checks.crd import SCHEMA_DIR, validate_custom_resource
from workflows.checks.paths import as_map, as_maps, shown

GROUP = "trainer.kubeflow.org"
TRAINER_API_VERSION = f"{GROUP}/v1alpha1"
TRAINJOB_KIND, RUNTIME_KIND = "TrainJob", "ClusterTrainingRuntime"
RUNTIME_KINDS = (RUNTIME_KIND, "TrainingRuntime")  # the runtimes the trainer registers
_SCHEMAS = SCHEMA_DIR / "kubeflow" / "trainer-v2.3.0"
TRAINJOB_SCHEMA = _SCHEMAS / "trainjob-trainer.kubeflow.org-v1alpha1.schema.json"
RUNTIME_SCHEMA = _SCHEMAS / "clustertrainingruntime-trainer.kubeflow.org-v1alpha1.schema.json"
# The label that makes a replicated job the trainer's (pkg/constants/constants.go
# LabelTrainJobAncestor), and the container the TrainJob's trainer fields reach.
ANCESTOR_LABEL = "trainer.kubeflow.org/trainjob-ancestor-step"
ANCESTOR_CONTAINERS = {
    "trainer": "node",
    "dataset-initializer": "dataset-initializer",
    "model-initializer": "model-initializer",
}
TRAINER_CONTAINER = ANCESTOR_CONTAINERS["trainer"]
TRAINER_JOB = "node"  # our runtime's replicated job (any name would do; Trainer's use it)
ML_POLICY_SOURCES = ("torch", "mpi", "jax", "xgboost", "flux")
# apimachinery validation.go `IsDomainPrefixedPath`: a DNS-1123 subdomain, `/`, a path.
_HTTP_PATH = re.compile(r"^[A-Za-z0-9/\-._~%!$&'()*+,;=:]+$")


def _jobs(runtime_spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The replicated jobs of a runtime's (or a patch's) JobSet template."""
    return as_maps(as_map(as_map(runtime_spec.get("template")).get("spec")).get("replicatedJobs"))


def ancestor(job: Mapping[str, Any]) -> Any:
    """What a replicated job is to the trainer (its Job template's ancestor label):
    `trainer`, an initializer, or None."""
    return as_map(as_map(as_map(job.get("template")).get("metadata")).get("labels")).get(
        ANCESTOR_LABEL
    )


def _pod(job: Mapping[str, Any]) -> Mapping[str, Any]:
    """A replicated job's pod spec (its Job template's pod template's)."""
    job_spec = as_map(as_map(job.get("template")).get("spec"))
    return as_map(as_map(job_spec.get("template")).get("spec"))


def _containers(job: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    pod = _pod(job)
    return [*as_maps(pod.get("initContainers")), *as_maps(pod.get("containers"))]


def domain_prefixed_path_errors(value: Any, path: str) -> list[str]:
    host, _, rest = value.partition("/") if isinstance(value, str) else ("", "", "")
    if not host or not rest:
        return [f'{path}: {shown(value)} must be a domain-prefixed path (such as "acme.io/foo")']
    if not DNS_SUBDOMAIN.match(host) or len(host) > 253:
        return [f"{path}: {shown(host)} is not a DNS-1123 subdomain"]
    if not _HTTP_PATH.match(rest):
        return [f"{path}: {shown(rest)} is an invalid path"]
    return []


def _patch_errors(patches: Any, runtime: Mapping[str, Any] | None) -> list[str]:
    out: list[str] = []
    managers: set[Any] = set()
    known = (
        {
            str(j.get("name")): {str(c.get("name")) for c in _containers(j)}
            for j in _jobs(as_map(runtime.get("spec")))
        }
        if runtime is not None
        else None
    )
    for i, patch in enumerate(as_maps(patches)):
        at = f"spec.runtimePatches[{i}]"
        manager = patch.get("manager")
        out += domain_prefixed_path_errors(manager, f"{at}.manager")
        if manager in managers:
            out.append(f"{at}.manager: Duplicate value: {shown(manager)}")
        managers.add(manager)
        jobs = _jobs(as_map(patch.get("trainingRuntimeSpec")))
        for j, job in enumerate(jobs):
            where = f"{at}.trainingRuntimeSpec.template.spec.replicatedJobs[{j}]"
            name = str(job.get("name"))
            if known is not None and name not in known:
                out.append(
                    f"{where}: must not have replicated job that doesn't exist in the "
                    "runtime job template"
                )
                continue
            for c in _containers(job):
                if known is not None and str(c.get("name")) not in known[name]:
                    out.append(
                        f"{where}: must not have container that doesn't exist in the "
                        f"runtime job {name}"
                    )
                if c.get("name") in ANCESTOR_CONTAINERS.values() and c.get("env"):
                    out.append(
                        f"{where}: must not have envs for the dataset-initializer, "
                        "model-initializer, node containers"
                    )
    return out


def validate_trainjob(
    doc: Any, runtimes: Mapping[str, Mapping[str, Any]] | None = None
) -> list[str]:
    """All problems of a TrainJob: CRD schema, strict keys, CEL and webhook rules.
    `runtimes`: the cluster's ClusterTrainingRuntimes by name, when known (the webhook
    refuses a TrainJob whose runtime does not exist yet, and checks its patches against
    it); None skips those rules."""
    if not isinstance(doc, Mapping):
        return ["(root): a TrainJob must be an object"]
    out = kind_errors(doc, TRAINER_API_VERSION, TRAINJOB_KIND)
    out += validate_custom_resource(doc, TRAINJOB_SCHEMA)
    out += name_errors(doc)
    spec = as_map(doc.get("spec"))
    ref = as_map(spec.get("runtimeRef"))
    group, kind = ref.get("apiGroup", GROUP), ref.get("kind", RUNTIME_KIND)
    runtime = None
    if group != GROUP or kind not in RUNTIME_KINDS:
        out.append(f"spec.runtimeRef: unsupported runtime: {kind}.{group}")
    elif runtimes is not None and kind == RUNTIME_KIND:
        runtime = runtimes.get(str(ref.get("name")))
        if runtime is None:
            out.append(
                f"spec.RuntimeRef: {RUNTIME_KIND} {shown(ref.get('name'))} not found: "
                "specified clusterTrainingRuntime must be created before the TrainJob is "
                "created (kubectl apply -f manifests/trainer/training-runtime.yaml)"
            )
    return out + _patch_errors(spec.get("runtimePatches"), runtime) + _pod_name_errors(doc)


def _pod_name_errors(doc: Mapping[str, Any]) -> list[str]:
    """JobSet's webhook (`ValidateCreate`): the names of the pods it will make,
    `<jobset>-<job>-<index>-<pod index>` plus the API server's 5 characters, must be DNS-1035
    labels. The JobSet is named as the TrainJob and its Job `node` (ours); checked where
    the name and numNodes are literal. A cluster admits such a TrainJob and then never
    gets its JobSet (an event, no condition: the wait times out); the lint, and the local
    API, which admits with the lint's rules, refuse it at once."""
    name = object_name(doc)
    nodes = as_map(as_map(doc.get("spec")).get("trainer")).get("numNodes", 1)
    if not isinstance(name, str) or "{{" in name or not isinstance(nodes, int) or nodes < 1:
        return []
    pod = f"{name}-{TRAINER_JOB}-0-{nodes - 1}-abcde"
    if len(pod) > 63:
        return [
            f"metadata.name: JobSet name is too long, pod names generated for this JobSet "
            f"will exceed 63 characters ({pod!r} is {len(pod)})"
        ]
    return []


def validate_training_runtime(doc: Any) -> list[str]:
    """All problems of a ClusterTrainingRuntime: CRD schema, strict keys, CEL and webhook
    rules."""
    if not isinstance(doc, Mapping):
        return ["(root): a ClusterTrainingRuntime must be an object"]
    out = kind_errors(doc, TRAINER_API_VERSION, RUNTIME_KIND)
    out += validate_custom_resource(doc, RUNTIME_SCHEMA)
    name = as_map(doc.get("metadata")).get("name")
    if not isinstance(name, str) or not DNS_SUBDOMAIN.match(name):
        out.append(f"metadata.name: {shown(name)} is not a DNS-1123 subdomain")
    spec = as_map(doc.get("spec"))
    sources = [s for s in ML_POLICY_SOURCES if s in as_map(spec.get("mlPolicy"))]
    if len(sources) > 1:
        out.append("spec.mlPolicy: Only one of the policy can be configured")
    for i, job in enumerate(_jobs(spec)):
        step = ancestor(job)
        if step not in ANCESTOR_CONTAINERS:
            continue
        at = f"spec.template.spec.replicatedJobs[{i}]"
        if job.get("replicas", 1) != 1:
            out.append(f"{at}.replicas: always must be 1")
        if not any(c.get("name") == ANCESTOR_CONTAINERS[step] for c in _containers(job)):
            out.append(
                f"{at}.template.spec.template.spec.containers: must contain the required "
                f"container for the ancestor: {step}"
            )
    return out


def pod_specs(doc: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """The pod specs of a runtime, or of a TrainJob's runtime patches, each with its path:
    what Pod Security checks (a patch's pod spec is merged into the runtime's)."""
    if doc.get("kind") == RUNTIME_KIND:
        return [
            (f"spec.template.spec.replicatedJobs[{i}].template.spec.template.spec", _pod(job))
            for i, job in enumerate(_jobs(as_map(doc.get("spec"))))
        ]
    return [
        (
            f"spec.runtimePatches[{p}].trainingRuntimeSpec.template.spec.replicatedJobs[{i}]"
            ".template.spec.template.spec",
            _pod(job),
        )
        for p, patch in enumerate(as_maps(as_map(doc.get("spec")).get("runtimePatches")))
        for i, job in enumerate(_jobs(as_map(patch.get("trainingRuntimeSpec"))))
    ]
