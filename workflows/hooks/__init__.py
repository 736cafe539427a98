"""What is ours in a local run, handed to the local Argo (workflows.local.hooks) and the
local cluster by the CLI: how our images run here (images.py), which steps start warm (the
`textcnn` CLI's `--warm`), what our steps' log lines say (textcnn.progress, the CLI's
`error: ...` line), and how KServe's model server runs here (serving.py)."""

from __future__ import annotations

from workflows.hooks import images
from workflows.local.hooks import Hooks

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
