"""wait-tfjob: wait until the TFJob has succeeded, or fail with the operator's message
(the verdict is textcnn.cluster.tfjob's,
the polling textcnn.cluster.jobs')."""

from __future__ import annotations

from textcnn.cluster import jobs, tfjob
from textcnn.cluster.kube import custom_object_getter


def run(name: str, namespace: str, timeout_s: int, poll_s: float = 10.0) -> None:
    """Wait for TFJob NAME in NAMESPACE to succeed; fail with the operator's message."""
    get = custom_object_getter(tfjob.GROUP, tfjob.VERSION, tfjob.PLURAL, namespace, name)
    print(jobs.wait_for(get, tfjob.judge, timeout_s, poll_s), flush=True)
