"""TF_CONFIG: the cluster a distributed trainer runs in (which task types there are, where
each runs, and which one this process is). No TensorFlow here.

- A TFJob replica gets it from the training operator (and from the local one).
- A TrainJob node builds it itself (`jobset_tf_config`): Kubeflow Trainer v2's PlainML
  runtime sets no TF_CONFIG, but the JobSet under the TrainJob gives every pod a stable
  DNS name, from which each pod derives the same cluster.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from textcnn.errors import InputError

TF_CONFIG = "TF_CONFIG"
TASK_TYPES = ("chief", "worker")  # what MultiWorkerMirroredStrategy runs (no PS, evaluator)

# What a TrainJob node's environment holds. JOB_COMPLETION_INDEX and HOSTNAME are
# Kubernetes' own (an Indexed Job's pod; the kubelet); the runtime
# (workflows/dag/trainjob.py) maps the JobSet's pod labels to the next three through the
# downward API, and the TrainJob sets the node count.
COMPLETION_INDEX = "JOB_COMPLETION_INDEX"
HOSTNAME = "HOSTNAME"
JOBSET_NAME = "JOBSET_NAME"
REPLICATED_JOB = "JOBSET_REPLICATED_JOB"
JOB_INDEX = "JOBSET_JOB_INDEX"
NUM_NODES = "TRAINJOB_NUM_NODES"
# Where a node's name resolves to another address: a JSON map of host name to `ip:port`
# that only the local cluster sets, since it has no DNS for the JobSet's headless Service
# and gives each node its own loopback port (workflows/kube/controllers/addresses.py).
PEER_ADDRESSES = "LOCAL_CLUSTER_ADDRESSES"
# The port every node's TensorFlow server listens on (the runtime's container port); the
# Training Operator's default for a TFJob is the same.
PORT = 2222


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


_NUMBER = re.compile(r"0|[1-9][0-9]{0,3}")  # ASCII digits only; a JobSet has no more nodes
_ADDRESS = re.compile(r"[A-Za-z0-9.-]+:[0-9]{1,5}")


def _int(env: Mapping[str, str], name: str) -> int:
    value = env.get(name, "")
    if not _NUMBER.fullmatch(value):
        raise InputError(
            f"{name}={value!r}: expected a number from 0 to 9999; a TrainJob node gets it from "
            "its runtime (manifests/trainer/training-runtime.yaml) and its Job"
        )
    return int(value)


def _resolved(env: Mapping[str, str]) -> dict[str, str]:
    """PEER_ADDRESSES, checked: a JSON object of host names to `ip:port` strings."""
    try:
        resolved = json.loads(env.get(PEER_ADDRESSES) or "{}")
    except json.JSONDecodeError as e:
        raise InputError(f"{PEER_ADDRESSES}: not valid JSON ({e})") from None
    if not isinstance(resolved, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and _ADDRESS.fullmatch(v)
        for k, v in resolved.items()
    ):
        raise InputError(
            f"{PEER_ADDRESSES}: expected {{host: ip:port, ...}}, got {resolved!r:.200}"
        )
    return resolved


def jobset_tf_config(env: Mapping[str, str]) -> str:
    """The TF_CONFIG of a TrainJob node, from what its pod's environment holds.

    JobSet names the Job of replicated job R, index j, `<jobset>-R-j` (placement.go,
    `GenJobName`); an Indexed Job's pod i has the host name `<job>-i`, and JobSet's
    headless Service, named as the JobSet by default, makes it resolvable as
    `<job>-i.<jobset>`. The cluster is every node as a `worker`, this pod's completion
    index its task: worker 0 is the chief (TensorFlow's rule without a chief task). The
    host name is checked against the name the index implies, so a pod of another job,
    or a wrong index, fails here rather than in a collective that never forms.
    """
    jobset = env.get(JOBSET_NAME, "")
    replicated = env.get(REPLICATED_JOB, "")
    if not jobset or not replicated:
        raise InputError(
            f"{JOBSET_NAME} and {REPLICATED_JOB} must name the JobSet and its replicated "
            "job (the runtime maps them from the pod's labels); is this a TrainJob node?"
        )
    job, index, nodes = (
        f"{jobset}-{replicated}-{_int(env, JOB_INDEX)}",
        _int(env, COMPLETION_INDEX),
        _int(env, NUM_NODES),
    )
    if not 0 <= index < nodes:
        raise InputError(
            f"{COMPLETION_INDEX}={index} is not a node of {nodes} ({NUM_NODES}): "
            "the Job's completions and the TrainJob's numNodes differ"
        )
    if env.get(HOSTNAME) != f"{job}-{index}":
        raise InputError(
            f"{HOSTNAME}={env.get(HOSTNAME)!r}, but node {index} of Job {job} is named "
            f"{job}-{index}: this pod is not the JobSet's node it claims to be"
        )
    hosts = [f"{job}-{i}.{jobset}" for i in range(nodes)]
    resolved = _resolved(env)
    workers = [resolved.get(host, f"{host}:{PORT}") for host in hosts]
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
