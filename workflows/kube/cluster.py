"""The local cluster of a run: the Kubernetes API on loopback (api.py) with our Role
enforced (authorizer.py), the controllers that do the work behind it (controllers/), and
the gateway that stands for the cluster's DNS (gateway.py). Steps reach it as pods do: a
kubeconfig with the workflow service account's token, and HTTP_PROXY for cluster names."""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workflows.checks import yaml_bounded
from workflows.checks.trainer import validate_training_runtime
from workflows.credentials import without_credentials
from workflows.errors import WorkflowError
from workflows.kube import authorizer, kubeconfig
from workflows.kube.admit import admit
from workflows.kube.api import KubeApi
from workflows.kube.controllers.claims import Claims
from workflows.kube.controllers.inference_services import InferenceServices, Serve
from workflows.kube.controllers.manager import Controller, Manager, log_to
from workflows.kube.controllers.replicas import Runs
from workflows.kube.controllers.tfjob import TFJobs
from workflows.kube.controllers.trainjob import TrainJobs
from workflows.kube.gateway import Gateway
from workflows.kube.objects import Objects
from workflows.local.plan import NAMESPACE
from workflows.local.resources import ClusterAccess


@dataclass(frozen=True)
class LocalCluster:
    access: ClusterAccess  # for the runner's resource templates and every container
    objects: Objects
    kserve: InferenceServices


def installed_runtimes(path: Path | None) -> dict[str, dict[str, Any]]:
    """The ClusterTrainingRuntimes of `path` by name, each admitted as the trainer's
    webhook admits it (WorkflowError naming the problems otherwise)."""
    if path is None:
        return {}
    docs = [d for d in yaml_bounded.read_all(path) if isinstance(d, dict)]
    problems = [f"{path}: {p}" for d in docs for p in validate_training_runtime(d)]
    if problems:
        raise WorkflowError("\n".join(problems))
    return {str(d["metadata"]["name"]): d for d in docs}


@contextlib.contextmanager
def local_cluster(
    run_dir: Path,
    rbac_file: Path,
    service_account: str,
    *,
    runs: Runs,
    serve: Serve,
    state_dir: Path,
    env: Mapping[str, str],
    runtimes_file: Path | None = None,
) -> Iterator[LocalCluster]:
    """The cluster for the run in `run_dir`, until the block ends (its processes stopped,
    unless the caller keeps serving inside the block). `rbac_file`: the Roles and
    RoleBindings, bound in the run's namespace, where every container runs as
    `service_account` (the workflow's serviceAccountName); `runs`: how an image's command
    runs here; `serve`: how KServe's model server runs here; `state_dir`: where endpoints
    outlive a run; `runtimes_file`: the ClusterTrainingRuntimes installed (checked as the
    trainer's webhook checks them)."""
    objects = Objects()
    # What every container here starts with: this machine's, less the client's secrets.
    env = without_credentials(os.environ) | dict(env)
    user = authorizer.service_account_user(NAMESPACE, service_account)
    rbac = authorizer.load(rbac_file, NAMESPACE)
    token = secrets.token_urlsafe(24)
    logs, pods = run_dir / "logs", run_dir / "pods"
    kserve = InferenceServices(
        objects, serve, logs_dir=logs, work_dir=pods, state_dir=state_dir, env=env
    )
    tfjobs = TFJobs(objects, runs, run_dir=run_dir, logs_dir=logs, pods_dir=pods, env=env)
    runtimes = installed_runtimes(runtimes_file)
    trainjobs = TrainJobs(
        objects, runs, runtimes, run_dir=run_dir, logs_dir=logs, pods_dir=pods, env=env
    )
    controllers: list[Controller] = [Claims(objects, run_dir), tfjobs, trainjobs, kserve]
    with (
        contextlib.ExitStack() as stack,
        KubeApi(
            objects,
            {token: user},
            rbac.authorize,
            admit=lambda kind, doc: admit(kind, doc, runtimes),
        ) as api,
        Gateway(kserve.routes) as gateway,
        Manager(objects, controllers, log_to(logs / "controllers.log")),
    ):
        # Outside the run folder, which the run empties first; it holds a secret.
        secrets_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="kube-"))
        config = kubeconfig.write_kubeconfig(
            Path(secrets_dir) / "kubeconfig", api.url, token, NAMESPACE, user
        )
        access = ClusterAccess(api.url, token, kubeconfig.step_environment(config, gateway.url))
        yield LocalCluster(access, objects, kserve)
