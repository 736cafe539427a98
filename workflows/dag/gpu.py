"""What puts a pod on a GPU node, from workflow parameters: one definition for the GPU
training pod and for the TFJob's GPU replicas."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from workflows.dag.parameters import wp

GPU_RESOURCE = "nvidia.com/gpu"
MAIN_CONTAINER = "main"  # what Argo names a container template's container


@dataclass(frozen=True)
class GpuScheduling:
    """What puts a pod on a GPU node, as Kubernetes (camelCase) dicts driven by workflow
    parameters: the GPU limit, the node selector, the toleration of the GPU taint and a
    memory-backed /dev/shm (NCCL, used by MirroredStrategy across GPUs, outgrows the
    container runtime's 64 MiB default).
    Plain dicts so a TFJob replica spec can take them as they are. A container template
    takes the GPU limit through `pod_spec_patch`: Argo decodes `resources` as quantities
    before it substitutes parameters, but substitutes the patch (a string) first."""

    limits: dict[str, str] = field(default_factory=lambda: {GPU_RESOURCE: wp("gpu_count")})
    # Argo substitutes parameters over the whole template JSON, map keys included.
    node_selector: dict[str, str] = field(
        default_factory=lambda: {
            wp("gpu_node_selector_key"): wp("gpu_node_selector_value"),
        }
    )
    tolerations: list[dict[str, str]] = field(
        default_factory=lambda: [
            {"key": wp("gpu_toleration_key"), "operator": "Exists", "effect": "NoSchedule"},
        ]
    )
    volumes: list[dict[str, Any]] = field(
        default_factory=lambda: [
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}},
        ]
    )
    volume_mounts: list[dict[str, str]] = field(
        default_factory=lambda: [
            {"name": "dshm", "mountPath": "/dev/shm"},
        ]
    )

    def pod_spec_patch(self) -> str:
        """The GPU limit as an Argo `podSpecPatch` of the template's `main` container."""
        return json.dumps(
            {"containers": [{"name": MAIN_CONTAINER, "resources": {"limits": self.limits}}]}
        )
