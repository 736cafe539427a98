"""The Kubeflow TFJob (kubeflow.org/v1, Training Operator 1.9) that trains on several workers.

`build_tfjob` returns the manifest as a plain camelCase dict: a Chief and `workers` Worker
replicas of one pod template, whose container is named `tensorflow` (the only container
the operator gives `TF_CONFIG`), with the shared volume mounted in every replica.
`manifest_yaml` turns it into the text of an Argo `resource` template, where Argo
substitutes `{{...}}` before the YAML is parsed, so integer fields may hold a parameter.

What the API server and the operator's webhook accept of it is checked by
workflows/checks/admission.py.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from workflows.checks.admission import CONTAINER, TFJOB_API_VERSION, TFJOB_KIND
from workflows.dag import security
from workflows.dag.manifest import manifest_yaml as resource_manifest
from workflows.dag.workload import CPU_REQUEST, WORKFLOW_LABEL, Workload

WORKDIR_VOLUME = "workdir"
# Istio's label (preferred over the older annotation): no sidecar, whose proxy would sit
# between the workers' gRPC collectives and keep the pods alive after training ends.
NO_ISTIO_SIDECAR = {"sidecar.istio.io/inject": "false"}
# Replica restarts, counted against runPolicy.backoffLimit; a restart reruns the whole
# training, since the collective needs every worker from the first step on.
RESTART_POLICY = "OnFailure"
# Workers still running when the chief has finished are deleted; finished pods keep logs.
CLEAN_POD_POLICY = "Running"

# Fields typed integer: left unquoted in the manifest text so a parameter becomes a number.
INTEGER_FIELDS = ("replicas", "backoffLimit", "activeDeadlineSeconds")


def _replica(
    replicas: int | str, pod_labels: Mapping[str, str], pod_spec: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        "replicas": replicas,
        "restartPolicy": RESTART_POLICY,
        # Copies: YAML would otherwise share one object between replicas as an alias.
        "template": {"metadata": {"labels": dict(pod_labels)}, "spec": copy.deepcopy(pod_spec)},
    }


def build_tfjob(
    work: Workload, *, generate_name: str, workers: int | str, backoff_limit: int | str
) -> dict[str, Any]:
    """The TFJob manifest: one Chief and `workers` Workers running `work`, the claim
    mounted in every replica."""
    gpu = work.gpu
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": work.image,
        "command": list(work.command),
        "args": list(work.args),
        "resources": work.resources(),
        "env": [
            *({"name": k, "value": v} for k, v in {**security.SCRATCH_ENV, **work.env}.items()),
            CPU_REQUEST,
        ],
        "securityContext": dict(security.CONTAINER),
        "volumeMounts": [
            {"name": WORKDIR_VOLUME, "mountPath": work.mount_path},
            security.SCRATCH_MOUNT,
            *(gpu.volume_mounts if gpu else []),
        ],
    }
    pod_spec: dict[str, Any] = {
        "containers": [container],
        "volumes": [
            {"name": WORKDIR_VOLUME, "persistentVolumeClaim": {"claimName": work.claim_name}},
            security.SCRATCH_VOLUME,
            *(gpu.volumes if gpu else []),
        ],
        "securityContext": dict(security.POD),
        # Training reads and writes the volume only; it never calls the Kubernetes API.
        "automountServiceAccountToken": False,
    }
    if gpu:
        pod_spec["nodeSelector"] = dict(gpu.node_selector)
        pod_spec["tolerations"] = list(gpu.tolerations)
    pod_labels = {WORKFLOW_LABEL: work.workflow_name, **NO_ISTIO_SIDECAR}
    return {
        "apiVersion": TFJOB_API_VERSION,
        "kind": TFJOB_KIND,
        "metadata": work.metadata(generate_name),
        "spec": {
            "runPolicy": {
                "cleanPodPolicy": CLEAN_POD_POLICY,
                "backoffLimit": backoff_limit,
                "activeDeadlineSeconds": work.active_deadline_seconds,
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
