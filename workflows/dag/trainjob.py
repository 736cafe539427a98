"""The Kubeflow Trainer v2 (trainer.kubeflow.org/v1alpha1, v2.3.0) TrainJob that trains on
several nodes, and the ClusterTrainingRuntime it runs on.

Trainer v2 has no TensorFlow runtime; a runtime without an ML policy source runs through
its PlainML plugin (`pkg/runtime/framework/plugins/plainml/plainml.go`,
`EnforceMLPolicy`), which sets the `node` Job's parallelism and completions from
`spec.trainer.numNodes` and adds `spec.trainer.env`, and nothing else: no TF_CONFIG. Each
node builds it from its JobSet names (textcnn.tf_config.jobset_tf_config), which the
runtime hands the container through the downward API.

- `training_runtime`: the ClusterTrainingRuntime (manifests/trainer/training-runtime.yaml). Its
  `mlPolicy` holds only `numNodes`: without an mlPolicy the trainer ignores
  `resourcesPerNode` (`pkg/runtime/core/trainingruntime.go`, `newRuntimeInfo`). Its
  replicated job `node` carries the label that makes it the trainer
  (`trainer.kubeflow.org/trainjob-ancestor-step: trainer`), has one replica (the
  runtime webhook's rule) and a container named `node`, the only one the TrainJob's
  image, command, args and env reach (`pkg/runtime/framework/plugins/jobset/builder.go`,
  `Trainer`).
- `build_trainjob`: the TrainJob of one run. What differs per run and the runtime cannot
  hold (the run's volume claim; the GPU node selector, toleration and /dev/shm) comes as
  a `runtimePatches` entry, which the trainer merges into the runtime's JobSet template
  as a strategic merge patch (`trainingruntime.go`, `mergeRuntimePatches`).

What the API server and the trainer's webhooks accept of both is checked by
workflows/checks/admission.py.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from textcnn import tf_config
from workflows.checks.trainer import (
    ANCESTOR_LABEL,
    RUNTIME_KIND,
    TRAINER_API_VERSION,
    TRAINER_CONTAINER,
    TRAINER_JOB,
    TRAINJOB_KIND,
)
from workflows.dag import security
from workflows.dag.gpu import GpuScheduling
from workflows.dag.manifest import manifest_yaml as resource_manifest
from workflows.dag.tfjob import NO_ISTIO_SIDECAR, WORKDIR_VOLUME
from workflows.dag.workload import CPU_REQUEST, Workload

# The JobSet's labels on every pod (jobset `api/jobset/v1alpha2/jobset_types.go`), which
# the downward API gives the node as the names its TF_CONFIG is built from.
JOBSET_LABELS = {
    tf_config.JOBSET_NAME: "jobset.sigs.k8s.io/jobset-name",
    tf_config.REPLICATED_JOB: "jobset.sigs.k8s.io/replicatedjob-name",
    tf_config.JOB_INDEX: "jobset.sigs.k8s.io/job-index",
}
# A failed node fails its Job at once (no pod restarts), and JobSet then recreates every
# Job: the collective needs all nodes from the first step on, as with the TFJob.
MAX_RESTARTS = 2
# Who owns the TrainJob's runtime patch: a domain-prefixed path, as the trainer's webhook
# requires (`pkg/runtime/framework/plugins/jobset/jobset.go`, `Validate`).
PATCH_MANAGER = "textcnn.github.io/pipeline"

# What a node gets unless the TrainJob's resourcesPerNode says otherwise (merged key by key;
# the DAG's TrainJob sets all three).
DEFAULT_RESOURCES = {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "2Gi"}}
# checkov's suppressions (its Kubernetes form is an annotation on the object), with reasons.
# checkov scans no ClusterTrainingRuntime: tests/test_trainjob.py checks the node pod
# template as the Job JobSet makes of it, carrying these.
CHECKOV_SKIPS = (
    "CKV_K8S_11=no CPU limit: throttling one node slows the collective for every node",
    "CKV_K8S_43=each TrainJob names its image (make images: an exact VERSION-COMMIT tag); "
    "pin a digest in --image when you mirror it",
    "CKV_K8S_15=the image tag is exact per release; Always would pull it again for every "
    "node of every run",
    "CKV2_K8S_6=a ClusterTrainingRuntime serves every namespace, and NetworkPolicies are "
    "namespaced: the nodes' policy belongs with the namespace that runs them",
)

# Fields typed integer: left unquoted in the manifest text so a parameter becomes a number.
INTEGER_FIELDS = ("numNodes", "activeDeadlineSeconds")


def training_runtime(name: str, image: str) -> dict[str, Any]:
    """The ClusterTrainingRuntime: one replicated job `node` of restricted pods, each
    with its JobSet names and CPU request in its environment and the TensorFlow port."""
    container: dict[str, Any] = {
        "name": TRAINER_CONTAINER,
        "image": image,  # the TrainJob's image replaces it
        "ports": [{"name": "tensorflow", "containerPort": tf_config.PORT}],
        "env": [
            *({"name": k, "value": v} for k, v in security.SCRATCH_ENV.items()),
            *(
                {
                    "name": variable,
                    "valueFrom": {"fieldRef": {"fieldPath": f"metadata.labels['{label}']"}},
                }
                for variable, label in JOBSET_LABELS.items()
            ),
            CPU_REQUEST,
        ],
        "resources": copy.deepcopy(DEFAULT_RESOURCES),
        "securityContext": dict(security.CONTAINER),
        "volumeMounts": [security.SCRATCH_MOUNT],
    }
    pod_spec = {
        "restartPolicy": "Never",
        "containers": [container],
        "volumes": [security.SCRATCH_VOLUME],
        "securityContext": dict(security.POD),
        # Training reads and writes the volume only; it never calls the Kubernetes API.
        "automountServiceAccountToken": False,
    }
    return {
        "apiVersion": TRAINER_API_VERSION,
        "kind": RUNTIME_KIND,
        "metadata": {
            "name": name,
            "labels": {"app.kubernetes.io/part-of": "textcnn"},
            "annotations": {
                f"checkov.io/skip{i}": skip for i, skip in enumerate(CHECKOV_SKIPS, start=1)
            },
        },
        "spec": {
            "mlPolicy": {"numNodes": 1},  # the TrainJob's numNodes replaces it
            "template": {
                "spec": {
                    "failurePolicy": {"maxRestarts": MAX_RESTARTS},
                    "replicatedJobs": [
                        {
                            "name": TRAINER_JOB,
                            "replicas": 1,
                            "template": {
                                "metadata": {"labels": {ANCESTOR_LABEL: "trainer"}},
                                "spec": {
                                    "backoffLimit": 0,
                                    "template": {
                                        "metadata": {"labels": dict(NO_ISTIO_SIDECAR)},
                                        "spec": pod_spec,
                                    },
                                },
                            },
                        }
                    ],
                }
            },
        },
    }


def _patch(claim_name: str, mount_path: str, gpu: GpuScheduling | None) -> dict[str, Any]:
    """The runtime patch of one run: its claim mounted, and the GPU scheduling."""
    pod: dict[str, Any] = {
        "volumes": [
            {"name": WORKDIR_VOLUME, "persistentVolumeClaim": {"claimName": claim_name}},
            *(gpu.volumes if gpu else []),
        ],
        "containers": [
            {
                "name": TRAINER_CONTAINER,
                "volumeMounts": [
                    {"name": WORKDIR_VOLUME, "mountPath": mount_path},
                    *(gpu.volume_mounts if gpu else []),
                ],
            }
        ],
    }
    if gpu:
        pod["nodeSelector"] = dict(gpu.node_selector)
        pod["tolerations"] = list(gpu.tolerations)
    job = {"name": TRAINER_JOB, "template": {"spec": {"template": {"spec": pod}}}}
    return {
        "manager": PATCH_MANAGER,
        "trainingRuntimeSpec": {"template": {"spec": {"replicatedJobs": [job]}}},
    }


def build_trainjob(
    work: Workload, *, generate_name: str, runtime: str, nodes: int | str
) -> dict[str, Any]:
    """The TrainJob: `nodes` nodes of `runtime` running `work`, the claim mounted on every
    node."""
    return {
        "apiVersion": TRAINER_API_VERSION,
        "kind": TRAINJOB_KIND,
        "metadata": work.metadata(generate_name),
        "spec": {
            "runtimeRef": {"name": runtime},
            "activeDeadlineSeconds": work.active_deadline_seconds,
            "trainer": {
                "image": work.image,
                "command": list(work.command),
                "args": list(work.args),
                "numNodes": nodes,
                "env": [
                    {"name": k, "value": v}
                    for k, v in {**work.env, tf_config.NUM_NODES: str(nodes)}.items()
                ],
                "resourcesPerNode": work.resources(),
            },
            "runtimePatches": [_patch(work.claim_name, work.mount_path, work.gpu)],
        },
    }


def manifest_yaml(doc: Mapping[str, Any]) -> str:
    """The TrainJob as resource-template text (`numNodes: {{workflow.parameters.workers}}`)."""
    return resource_manifest(doc, INTEGER_FIELDS)
