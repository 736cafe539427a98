"""TF_CONFIG, the cluster the training operator describes to each TFJob replica: which
task types there are, where each runs, and which one this process is. No TensorFlow here:
the training operator, and the local one, write the same."""

from __future__ import annotations

import json
from dataclasses import dataclass

from textcnn.errors import InputError

TF_CONFIG = "TF_CONFIG"
TASK_TYPES = ("chief", "worker")  # what MultiWorkerMirroredStrategy runs (no PS, evaluator)


@dataclass(frozen=True)
class Role:
    """This process's place in the cluster described by TF_CONFIG."""

    task_type: str
    index: int
    cluster: dict[str, list[str]]

    @property
    def is_chief(self) -> bool:
        """The chief, or worker 0 when the cluster has no chief (TensorFlow's convention)."""
        if self.task_type == "chief":
            return True
        return self.task_type == "worker" and self.index == 0 and "chief" not in self.cluster

    @property
    def num_workers(self) -> int:
        return sum(len(addresses) for addresses in self.cluster.values())


def parse_tf_config(text: str | None) -> Role:
    """The role TF_CONFIG gives this process; no TF_CONFIG means a cluster of one.

    InputError names TF_CONFIG and what is wrong with it.
    """
    if not text:
        return Role("chief", 0, {})
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(
            f"{TF_CONFIG}: not valid JSON ({e}); the training operator sets it "
            "on the container named `tensorflow`"
        ) from None
    cluster, task = (
        (config.get("cluster"), config.get("task")) if isinstance(config, dict) else (None, None)
    )
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise InputError(
            f'{TF_CONFIG}: expected {{"cluster": {{...}}, "task": {{...}}}}, got {text[:200]!r}'
        )
    for task_type, addresses in cluster.items():
        if task_type not in TASK_TYPES:
            raise InputError(
                f"{TF_CONFIG}: task type {task_type!r} is not supported; "
                f"MultiWorkerMirroredStrategy runs {' and '.join(TASK_TYPES)} "
                "replicas only"
            )
        if (
            not isinstance(addresses, list)
            or not addresses
            or not all(isinstance(a, str) and ":" in a for a in addresses)
        ):
            raise InputError(
                f"{TF_CONFIG}: cluster.{task_type} must be a list of host:port "
                f"addresses, got {addresses!r}"
            )
    if len(cluster.get("chief", [])) > 1:
        raise InputError(f"{TF_CONFIG}: a cluster has at most one chief, got {cluster['chief']}")
    task_type, index = task.get("type"), task.get("index")
    if (
        not isinstance(task_type, str)
        or task_type not in cluster
        or not isinstance(index, int)
        or not 0 <= index < len(cluster[task_type])
    ):
        raise InputError(
            f"{TF_CONFIG}: task {task!r} is not in the cluster "
            f"{ {k: len(v) for k, v in cluster.items()} }"
        )
    return Role(task_type, index, cluster)
