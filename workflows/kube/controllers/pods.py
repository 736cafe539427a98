"""A predictor pod as a process: the model server of a Deployment's ReplicaSet (RawDeployment)
or of a Knative revision (Serverless), on a free loopback port.

What the pod runs comes from its template as KServe writes it: the model's URI in the
annotation `internal.serving.kserve.io/storage-initializer-sourceuri` (predictor.go
`addStorageInitializerAnnotations`; a custom container's STORAGE_URI env otherwise), which
the storage initializer downloads, and the batcher's limits in the
`internal.serving.kserve.io/batcher-*` annotations (component.go `addBatcherAnnotations`),
which the pod webhook turns into a batcher sidecar. Both are done here by the `serve`
hook: it gets the URI, the model's name, the port, the batcher's limits and a folder of
the pod, and returns the command and the environment (added to the controller's) that
serve the model. A hook that raises is a storage initializer that failed.

A pod is ready once it answered `GET /v1/models/<name>` (its readiness probe); a server
that exits is not restarted, so its pod stays failed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from workflows.kube.controllers.ports import free_ports
from workflows.local import processes

SOURCE_URI = "internal.serving.kserve.io/storage-initializer-sourceuri"
STORAGE_URI = "STORAGE_URI"
BATCHER = "internal.serving.kserve.io/batcher"
# The batcher annotations, by the InferenceService's batcher field they carry.
BATCHER_LIMITS = {
    "maxBatchSize": "internal.serving.kserve.io/batcher-max-batchsize",
    "maxLatency": "internal.serving.kserve.io/batcher-max-latency",
}
PROBE_TIMEOUT_S = 1.0

Serve = Callable[[str, str, int, Mapping[str, int], Path], tuple[list[str], dict[str, str]]]


def template_uri(template: Mapping[str, Any]) -> str | None:
    """The model URI a pod template is for: KServe's annotation, else a container's
    STORAGE_URI (a custom predictor)."""
    annotations = (template.get("metadata") or {}).get("annotations") or {}
    if annotations.get(SOURCE_URI):
        return str(annotations[SOURCE_URI])
    for container in (template.get("spec") or {}).get("containers") or []:
        for env in container.get("env") or []:
            if env.get("name") == STORAGE_URI and env.get("value"):
                return str(env["value"])
    return None


def batcher(template: Mapping[str, Any]) -> dict[str, int]:
    """The batcher's limits a pod template asks for ({} without a batcher)."""
    annotations = (template.get("metadata") or {}).get("annotations") or {}
    if annotations.get(BATCHER) != "true":
        return {}
    return {k: int(annotations[a]) for k, a in BATCHER_LIMITS.items() if a in annotations}


@dataclass
class Pod:
    """One model server: `error` says why it never started (the storage initializer)."""

    name: str
    template: dict[str, Any]
    log: Path
    url: str = ""
    proc: processes.Process | None = None
    error: str = ""
    ready: bool = False

    @property
    def exited(self) -> bool:
        return bool(self.error) or (self.proc is not None and self.proc.poll() is not None)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exit_code(self) -> int:
        if self.proc is None or self.proc.returncode is None:
            return 1  # the storage initializer's failure
        return processes.exit_code(self.proc.returncode)

    def failure(self) -> str:
        """Why it exited: the initializer's error, else the server log's last lines."""
        return self.error or f"{processes.tail(self.log)} (log: {self.log})"

    def probe(self, model_name: str, session: requests.Session) -> bool:
        """Ready: it answered its readiness probe once, and still runs."""
        if self.exited:
            self.ready = False
        elif not self.ready:
            try:
                self.ready = session.get(
                    f"{self.url}/v1/models/{model_name}", timeout=PROBE_TIMEOUT_S
                ).ok
            except requests.RequestException:
                self.ready = False
        return self.ready

    def stop(self) -> bool:
        """Stop its server; True if it was running."""
        return self.proc is not None and processes.stop(self.proc)


class Servers:
    """Starts pods: `serve` is the hook above, `env` the base environment of every server,
    logs go to `<logs_dir>/<pod>-server.log`, each pod's folder is `<work_dir>/<pod>`."""

    def __init__(self, serve: Serve, logs_dir: Path, work_dir: Path, env: Mapping[str, str]):
        self.serve, self.logs_dir, self.work_dir, self.env = serve, logs_dir, work_dir, dict(env)
        # The kubelet probes the pod directly: no HTTP_PROXY of this process in between.
        self.probes = requests.Session()
        self.probes.trust_env = False

    def probe(self, pod: Pod, model_name: str) -> bool:
        return pod.probe(model_name, self.probes)

    def start(self, name: str, template: dict[str, Any], model_name: str) -> Pod:
        pod = Pod(name, template, self.logs_dir / f"{name}-server.log")
        (port,) = free_ports(1)
        pod.url = f"http://127.0.0.1:{port}"
        try:
            uri = template_uri(template)
            if not uri:
                raise ValueError("the pod template names no model (no storage URI)")
            command, env = self.serve(
                uri, model_name, port, batcher(template), self.work_dir / name
            )
        except Exception as e:  # the storage initializer failed: the pod never serves
            pod.error = f"{type(e).__name__}: {e}"
            return pod
        pod.proc = processes.start(command, pod.log, {**self.env, **env})
        return pod
