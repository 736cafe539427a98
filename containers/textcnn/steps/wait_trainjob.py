"""wait-trainjob: wait until the TrainJob has succeeded, or fail with the trainer's message
(the verdict is textcnn.cluster.trainjob's, the polling textcnn.cluster.jobs')."""

from __future__ import annotations

from textcnn.cluster import jobs, trainjob
from textcnn.cluster.kube import custom_object_getter


def run(name: str, namespace: str, timeout_s: int, poll_s: float = 10.0) -> None:
    """Wait for TrainJob NAME in NAMESPACE to succeed; fail with the trainer's message."""
    get = custom_object_getter(trainjob.GROUP, trainjob.VERSION, trainjob.PLURAL, namespace, name)
    print(jobs.wait_for(get, trainjob.judge, timeout_s, poll_s), flush=True)
