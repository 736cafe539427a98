"""What every pod of a distributed training job runs, and on what: one description for the
TFJob's replicas (tfjob.py) and the TrainJob's nodes (trainjob.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from textcnn.cpus import REQUEST_ENV as CPU_REQUEST_ENV
from workflows.dag.gpu import GpuScheduling

WORKFLOW_LABEL = "workflows.argoproj.io/workflow"
# TensorFlow's threads follow the pod's CPU request (textcnn.cpus), given by the downward API.
CPU_REQUEST: dict[str, Any] = {
    "name": CPU_REQUEST_ENV,
    "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1"}},
}


@dataclass(frozen=True)
class Workload:
    """The image and `command + args` each pod runs, its CPU and memory request (memory
    also its limit; no CPU limit: throttling one pod slows the collective for all), the
    claim mounted at `mount_path`, the job's deadline and the workflow it belongs to;
    `gpu` adds the GPU limit, node selector, toleration and /dev/shm, and nothing
    GPU-related appears without it. Values may be literal or Argo `{{...}}` references."""

    image: str
    command: Sequence[str]
    args: Sequence[str]
    cpu: str
    memory: str
    claim_name: str
    mount_path: str
    active_deadline_seconds: int | str
    workflow_name: str
    gpu: GpuScheduling | None = None
    env: Mapping[str, str] = field(default_factory=dict)

    def metadata(self, generate_name: str) -> dict[str, Any]:
        """The job's metadata: a generated name, and the workflow it belongs to."""
        return {
            "generateName": generate_name,
            "labels": {
                WORKFLOW_LABEL: self.workflow_name,
                "app.kubernetes.io/part-of": "textcnn",
            },
        }

    def resources(self) -> dict[str, dict[str, str]]:
        return {
            "requests": {"cpu": self.cpu, "memory": self.memory},
            "limits": {"memory": self.memory, **(self.gpu.limits if self.gpu else {})},
        }
