"""What is ours in a local run, handed to the local Argo (workflows.local.hooks) and the
local cluster by the CLI: how our images run here (images.py), which steps start warm (the
`textcnn` CLI's `--warm`), what our steps' log lines say (textcnn.progress, the CLI's
`error: ...` line), and how KServe's model server runs here (serving.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path

from workflows.dag import pipeline
from workflows.dag.pipeline import SERVICE_ACCOUNT
from workflows.hooks import images, serving
from workflows.kube.cluster import LocalCluster, local_cluster
from workflows.local.hooks import Hooks

# The Roles the local cluster enforces, as a cluster would, and the runtime TrainJobs run
# on there, as `kubectl apply -f manifests/` installs them.
ROOT = Path(__file__).resolve().parents[2]
RBAC_FILE = ROOT / "manifests" / "rbac.yaml"
RUNTIME_FILE = ROOT / pipeline.RUNTIME_FILE

ERROR_PREFIX = "error: "  # textcnn.cli's one line saying why a step failed


def _warm(command: list[str]) -> tuple[list[str], list[str]] | None:
    """`python -m textcnn STEP ARGS...` starts as `python -m textcnn --warm STEP`, which
    imports the step and then reads `[STEP, ARGS...]` as one JSON line on stdin."""
    if len(command) < 4 or command[1:3] != ["-m", "textcnn"]:
        return None
    return [*command[:3], "--warm", command[3]], command[3:]


def _progress(line: str) -> str | None:
    from textcnn import progress

    found = progress.parse(line)
    if found is None:
        return None
    done, total, note = found
    return f"{done}/{total} {note}".rstrip()


def _error(line: str) -> str | None:
    return line if line.startswith(ERROR_PREFIX) else None


def project_hooks() -> Hooks:
    return Hooks(
        image=images.command_and_env,
        pull=images.pull,
        warm=_warm,
        progress=_progress,
        error=_error,
    )


@contextlib.contextmanager
def project_cluster(
    run_dir: Path, env: Mapping[str, str], rbac_file: Path = RBAC_FILE
) -> Iterator[LocalCluster]:
    """The local cluster of a run in `run_dir`: our images and model server, the Role of
    `rbac_file` for the workflow's service account, our ClusterTrainingRuntime, and the
    endpoints kept beside the run
    folders (`inferenceservices/`), as a cluster keeps them from one run to the next."""
    with local_cluster(
        run_dir,
        rbac_file,
        SERVICE_ACCOUNT,
        runtimes_file=RUNTIME_FILE,
        runs=lambda image, command, env: images.run_here(image, command, env, run_dir),
        serve=serving.serve,
        state_dir=run_dir.parent / "inferenceservices",
        env=env,
    ) as cluster:
        yield cluster
