"""The KServe InferenceService (serving.kserve.io/v1beta1) that serves the trained model.

Built as a plain camelCase dict: kubernetes==37 serialises kserve's model classes in
snake_case, which the API server would prune. Two runtimes:

- "tensorflow": KServe's TF Serving runtime (`predictor.model`, modelFormat tensorflow)
  over the model base folder `<uri>/1/saved_model.pb`. `runtimeVersion` is pinned: the
  default image (2.6.2) cannot load a Keras 3 export; it must be at least the training TF.
- "custom": the project's own KServe Python server image (textcnn.serving), which also
  speaks the V2 protocol. With `STORAGE_URI` in the `kserve-container`'s env, KServe's
  storage initializer downloads the model to /mnt/models and rewrites the variable.

The deployment mode is explicit (`serving.kserve.io/deploymentMode`), never the
cluster's default: RawDeployment (a Deployment and an autoscaler) or Serverless (Knative).
Canary traffic and scale-to-zero work in Serverless mode only; KServe ignores them in
RawDeployment, so asking for them there is an error here.
"""

from __future__ import annotations

import json
from typing import Any

from textcnn.cluster.rollout import DEPLOYMENT_MODE, MODES, TAG_ROUTING
from workflows.checks.admission import validate_inference_service
from workflows.dag import security
from workflows.dag.manifest import manifest_yaml

# Fields typed integer that the DAG fills from parameters.
INTEGER_FIELDS = (
    "minReplicas",
    "maxReplicas",
    "canaryTrafficPercent",
    "maxBatchSize",
    "maxLatency",
)

RUNTIMES = ("tensorflow", "custom")
MODEL_MOUNT = "/mnt/models"  # where the storage initializer puts the model
PORT = 8080


def _resources(
    cpu_request: str, cpu_limit: str, memory_request: str, memory_limit: str
) -> dict[str, Any]:
    return {
        "requests": {"cpu": cpu_request, "memory": memory_request},
        "limits": {"cpu": cpu_limit, "memory": memory_limit},
    }


def build_inference_service(
    *,
    name: str,
    namespace: str,
    storage_uri: str,
    service_account: str,
    runtime: str = "tensorflow",
    deployment_mode: str = "RawDeployment",
    runtime_version: str = "2.19.1",
    image: str | None = None,
    min_replicas: int | str = 1,
    max_replicas: int | str = 1,
    canary_traffic_percent: int | str | None = None,
    max_batch_size: int | str = 32,
    max_latency_ms: int | str = 1,
    cpu_request: str = "500m",
    cpu_limit: str = "1",
    memory_request: str = "1Gi",
    memory_limit: str = "2Gi",
) -> dict[str, Any]:
    """The InferenceService manifest; ValueError naming the option when it is invalid.

    `storage_uri` is the versioned model base (e.g. gs://bucket/workflow/model), the name
    is also the model name in the /v1 and /v2 routes, and `service_account` must be able
    to read the bucket (KServe GCS credentials or Workload Identity). KServe's batcher
    (`max_batch_size`, `max_latency_ms`) gathers V1 requests for either runtime; the
    custom server batches V1 and V2 itself with the same limits.

    Values may be Argo `{{...}}` references (the DAG's resource template); such a
    manifest is validated once substituted (by `lint` and the local API), a concrete
    one here.
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime: {runtime!r} is not one of {', '.join(RUNTIMES)}")
    if runtime == "custom" and not image:
        raise ValueError("image: runtime 'custom' needs the serving image")
    if runtime == "tensorflow" and image:
        raise ValueError(
            "image: only runtime 'custom' takes an image; the tensorflow "
            "runtime's image follows runtime_version"
        )
    if not storage_uri:
        raise ValueError("storage_uri: empty; give the model base URI, e.g. gs://bucket/wf/model")
    if isinstance(canary_traffic_percent, int) and not 0 <= canary_traffic_percent <= 100:
        raise ValueError(f"canary_traffic_percent: {canary_traffic_percent} is not in 0..100")
    if deployment_mode == "RawDeployment":
        if isinstance(canary_traffic_percent, int) and canary_traffic_percent < 100:
            raise ValueError(
                "canary_traffic_percent: a canary needs deployment mode "
                "Serverless; KServe ignores it in RawDeployment"
            )
        if min_replicas == 0:
            raise ValueError("min_replicas: scale to zero needs deployment mode Serverless")
    elif "{{" not in deployment_mode and deployment_mode not in MODES:
        raise ValueError(f"deployment_mode: {deployment_mode!r} is not one of {', '.join(MODES)}")
    resources = _resources(cpu_request, cpu_limit, memory_request, memory_limit)
    predictor: dict[str, Any] = {
        "serviceAccountName": service_account,
        "minReplicas": min_replicas,
        "maxReplicas": max_replicas,
        "batcher": {"maxBatchSize": max_batch_size, "maxLatency": max_latency_ms},
        "securityContext": dict(security.POD),
    }
    if canary_traffic_percent is not None:
        predictor["canaryTrafficPercent"] = canary_traffic_percent
    # Tag routing gives each revision of a canary split its own address (tags latest and
    # prev), which the canary check probes; KServe acts on it in Serverless mode only.
    annotations = {DEPLOYMENT_MODE: deployment_mode, TAG_ROUTING: "true"}
    if runtime == "tensorflow":
        predictor["model"] = {
            "modelFormat": {"name": "tensorflow"},
            "runtimeVersion": runtime_version,
            "storageUri": storage_uri,
            "resources": resources,
            # TF Serving's image is not ours: restricted, but its root filesystem stays.
            "securityContext": {
                k: v for k, v in security.CONTAINER.items() if k != "readOnlyRootFilesystem"
            },
        }
    else:
        # The server binds only after the model has loaded, so a TCP probe means "model
        # ready". Explicit: RawDeployment has no default probe (Knative has this one).
        predictor["containers"] = [
            {
                "name": "kserve-container",
                "image": image,
                "command": ["python", "-m", "textcnn.serving"],
                "args": [
                    f"--model_dir={MODEL_MOUNT}",
                    f"--model_name={name}",
                    f"--port={PORT}",
                    "--host=0.0.0.0",
                    f"--max_batch_size={max_batch_size}",
                    f"--max_latency_ms={max_latency_ms}",
                ],
                "env": [{"name": "STORAGE_URI", "value": storage_uri}],
                "ports": [{"containerPort": PORT, "protocol": "TCP"}],
                "readinessProbe": {"tcpSocket": {"port": PORT}, "periodSeconds": 5},
                "resources": resources,
                "securityContext": dict(security.CONTAINER),
                "volumeMounts": [security.SCRATCH_MOUNT],
            }
        ]
        predictor["volumes"] = [security.SCRATCH_VOLUME]
        annotations["serving.kserve.io/enable-prometheus-scraping"] = "true"
    doc: dict[str, Any] = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/name": name,
                "app.kubernetes.io/part-of": "textcnn",
                "app.kubernetes.io/component": "model-server",
            },
            "annotations": annotations,
        },
        "spec": {"predictor": predictor},
    }
    problems = [] if "{{" in json.dumps(doc) else validate_inference_service(doc)
    if problems:
        raise ValueError(f"InferenceService {name!r}: " + "; ".join(problems))
    return doc


def inference_service_yaml(doc: dict[str, Any]) -> str:
    """The InferenceService as resource-template text."""
    return manifest_yaml(doc, INTEGER_FIELDS)
