"""The Kubernetes Pod Security Standard "restricted" for every pod the DAG creates: the
workflow's step pods, the TFJob's replicas and the custom serving runtime. Plain camelCase
dicts, so a pod spec in a resource manifest takes them as they are.

The root filesystem is read-only too (beyond "restricted"): each pod writes only to an
emptyDir at /tmp, where the steps' artifacts, output parameters and Keras' cache live.
"""

from __future__ import annotations

from typing import Any

USER = 10001  # the images' user (containers/Dockerfile.*), numeric so runAsNonRoot can check it
POD: dict[str, Any] = {
    "runAsNonRoot": True,
    "runAsUser": USER,
    "runAsGroup": USER,
    "fsGroup": USER,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}
SCRATCH = "/tmp"
SCRATCH_VOLUME: dict[str, Any] = {"name": "tmp", "emptyDir": {}}
SCRATCH_MOUNT: dict[str, str] = {"name": "tmp", "mountPath": SCRATCH}
# Keras writes its cache under $KERAS_HOME (default ~/.keras, read-only here).
SCRATCH_ENV: dict[str, str] = {"KERAS_HOME": f"{SCRATCH}/keras"}
