"""The Kubeflow TFJob (kubeflow.org/v1, Training Operator 1.9) that trains on several workers.

`build_tfjob` returns the manifest as a plain camelCase dict: a Chief and `workers` Worker
replicas of one pod template, whose container is named `tensorflow` (the only container
the operator gives `TF_CONFIG`), with the shared volume mounted in every replica.
`manifest_yaml` turns it into the text of an Argo `resource` template, where Argo
substitutes `{{...}}` before the YAML is parsed, so integer fields may hold a parameter.

`validate_tfjob` checks a manifest as the API server and the operator's admission webhook
would: the CRD schema (workflows/schemas/kubeflow/PROVENANCE.md), unknown keys (strict),
and the webhook's and defaulter's rules that the schema does not express.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from workflows.crd import SCHEMA_DIR, dns_1035_label_errors, validate_custom_resource
from workflows.manifest import manifest_yaml as resource_manifest

if TYPE_CHECKING:
    from workflows.templates import GpuScheduling

API_VERSION, KIND = "kubeflow.org/v1", "TFJob"
TFJOB_SCHEMA = SCHEMA_DIR / "kubeflow" / "v1.9.4" / "tfjob-kubeflow.org-v1.schema.json"
CONTAINER = "tensorflow"  # the operator injects TF_CONFIG into this container only
WORKDIR_VOLUME = "workdir"
WORKFLOW_LABEL = "workflows.argoproj.io/workflow"
# Istio's label (preferred over the older annotation): no sidecar, whose proxy would sit
# between the workers' gRPC collectives and keep the pods alive after training ends.
NO_ISTIO_SIDECAR = {"sidecar.istio.io/inject": "false"}
# Replica restarts, counted against runPolicy.backoffLimit; a restart reruns the whole
# training, since the collective needs every worker from the first step on.
RESTART_POLICY = "OnFailure"
# Workers still running when the chief has finished are deleted; finished pods keep logs.
CLEAN_POD_POLICY = "Running"

# The admission rules the CRD schema leaves out (tfjob_webhook.go and the defaulter, v1.9.4).
REPLICA_TYPES = ("Chief", "Master", "Worker", "PS", "Evaluator")
RESTART_POLICIES = ("Always", "OnFailure", "Never", "ExitCode")
CLEAN_POD_POLICIES = ("All", "Running", "None")
SUCCESS_POLICIES = ("", "AllWorkers")
GENERATED_SUFFIX = 5  # characters the API server appends to metadata.generateName
# Fields typed integer: left unquoted in the manifest text so a parameter becomes a number.
INTEGER_FIELDS = ("replicas", "backoffLimit", "activeDeadlineSeconds")


def _replica(replicas: int | str, pod_labels: Mapping[str, str],
             pod_spec: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "replicas": replicas,
        "restartPolicy": RESTART_POLICY,
        # Copies: YAML would otherwise share one object between replicas as an alias.
        "template": {"metadata": {"labels": dict(pod_labels)}, "spec": copy.deepcopy(pod_spec)},
    }


def build_tfjob(
    *,
    generate_name: str,
    image: str,
    command: Sequence[str],
    args: Sequence[str],
    workers: int | str,
    cpu: str,
    memory: str,
    claim_name: str,
    mount_path: str,
    backoff_limit: int | str,
    active_deadline_seconds: int | str,
    workflow_name: str,
    gpu: GpuScheduling | None = None,
) -> dict[str, Any]:
    """The TFJob manifest: one Chief and `workers` Workers running `command + args`.

    The claim is mounted at `mount_path` in every replica; `gpu` adds the GPU limit, node
    selector, toleration and /dev/shm, and nothing GPU-related appears without it. Values
    may be literal or Argo `{{...}}` references.
    """
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": image,
        "command": list(command),
        "args": list(args),
        # No CPU limit: throttling TensorFlow only slows the collective down for everyone.
        "resources": {"requests": {"cpu": cpu, "memory": memory},
                      "limits": {"memory": memory, **(gpu.limits if gpu else {})}},
        "volumeMounts": [{"name": WORKDIR_VOLUME, "mountPath": mount_path},
                         *(gpu.volume_mounts if gpu else [])],
    }
    pod_spec: dict[str, Any] = {
        "containers": [container],
        "volumes": [{"name": WORKDIR_VOLUME, "persistentVolumeClaim": {"claimName": claim_name}},
                    *(gpu.volumes if gpu else [])],
        # Training reads and writes the volume only; it never calls the Kubernetes API.
        "automountServiceAccountToken": False,
    }
    if gpu:
        pod_spec["nodeSelector"] = dict(gpu.node_selector)
        pod_spec["tolerations"] = list(gpu.tolerations)
    pod_labels = {WORKFLOW_LABEL: workflow_name, **NO_ISTIO_SIDECAR}
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "generateName": generate_name,
            "labels": {WORKFLOW_LABEL: workflow_name, "app.kubernetes.io/part-of": "textcnn"},
        },
        "spec": {
            "runPolicy": {
                "cleanPodPolicy": CLEAN_POD_POLICY,
                "backoffLimit": backoff_limit,
                "activeDeadlineSeconds": active_deadline_seconds,
            },
            "tfReplicaSpecs": {
                "Chief": _replica(1, pod_labels, pod_spec),
                "Worker": _replica(workers, pod_labels, pod_spec),
            },
        },
    }


def manifest_yaml(doc: Mapping[str, Any]) -> str:
    """The TFJob as resource-template text (`replicas: {{workflow.parameters.workers}}`)."""
    return resource_manifest(doc, INTEGER_FIELDS)


def _replica_key(key: Any) -> str | None:
    """The canonical replica type the defaulter makes of `key` (any capitalisation)."""
    return next((t for t in REPLICA_TYPES if isinstance(key, str) and key.lower() == t.lower()),
                None)


def _replica_errors(key: str, spec: Any) -> list[str]:
    where = f"spec.tfReplicaSpecs.{key}"
    if not isinstance(spec, Mapping):
        return []  # a type error, already reported by the schema
    out = []
    policy = spec.get("restartPolicy")
    if policy is not None and policy not in RESTART_POLICIES:
        out.append(f"{where}.restartPolicy: {policy!r} is not one of "
                   f"{', '.join(RESTART_POLICIES)}")
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers")
    if not isinstance(containers, list) or not containers:
        return [*out, f"{where}.template.spec.containers: must be specified"]
    for i, c in enumerate(containers):
        if isinstance(c, Mapping) and not c.get("image"):
            out.append(f"{where}.template.spec.containers[{i}].image: must be specified")
    if not any(isinstance(c, Mapping) and c.get("name") == CONTAINER for c in containers):
        out.append(f"{where}.template.spec.containers: needs a container named {CONTAINER!r} "
                   "(the only one that gets TF_CONFIG)")
    return out


def admission_errors(doc: Mapping[str, Any]) -> list[str]:
    """The TFJob webhook's and defaulter's rules that the CRD schema does not express."""
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), Mapping) else {}
    if "name" in meta or "generateName" not in meta:
        out = dns_1035_label_errors(meta.get("name"), "metadata.name")
    else:  # the name the API server will make: generateName plus 5 letters and digits
        prefix = meta["generateName"]
        out = dns_1035_label_errors(f"{prefix}{'x' * GENERATED_SUFFIX}"
                                    if isinstance(prefix, str) else prefix,
                                    "metadata.generateName (+ 5 generated characters)")
    spec = doc.get("spec")
    if not isinstance(spec, Mapping):
        return out
    replicas = spec.get("tfReplicaSpecs")
    if isinstance(replicas, Mapping):
        seen: dict[str, Any] = {}
        for key, replica in replicas.items():
            canonical = _replica_key(key)
            if canonical is None:
                out.append(f"spec.tfReplicaSpecs.{key}: not a replica type; use one of "
                           f"{', '.join(REPLICA_TYPES)}")
                continue
            if canonical in seen:
                out.append(f"spec.tfReplicaSpecs.{key}: {seen[canonical]!r} is the same "
                           "replica type")
            seen[canonical] = key
            out += _replica_errors(key, replica)
        if sum(t in seen for t in ("Chief", "Master")) > 1:
            out.append("spec.tfReplicaSpecs: at most one Chief or Master replica type")
    run_policy = spec.get("runPolicy")
    clean = run_policy.get("cleanPodPolicy") if isinstance(run_policy, Mapping) else None
    if clean is not None and clean not in CLEAN_POD_POLICIES:
        out.append(f"spec.runPolicy.cleanPodPolicy: {clean!r} is not one of "
                   f"{', '.join(CLEAN_POD_POLICIES)}")
    success = spec.get("successPolicy")
    if success is not None and success not in SUCCESS_POLICIES:
        out.append(f"spec.successPolicy: {success!r} is not one of "
                   f"{', '.join(repr(s) for s in SUCCESS_POLICIES)}")
    return out


def validate_tfjob(doc: Any) -> list[str]:
    """All problems of a kubeflow.org/v1 TFJob: CRD schema, strict keys and admission rules,
    as `path: message` strings (none: valid)."""
    if not isinstance(doc, Mapping):
        return ["(root): a TFJob must be an object"]
    out = []
    if doc.get("apiVersion") != API_VERSION:
        out.append(f"apiVersion: expected {API_VERSION}, got {doc.get('apiVersion')!r}")
    if doc.get("kind") != KIND:
        out.append(f"kind: expected {KIND}, got {doc.get('kind')!r}")
    return out + validate_custom_resource(doc, TFJOB_SCHEMA) + admission_errors(doc)
