"""`python -m workflows run --resume DIR`: what an earlier local run may go on with.

A run folder is data, not code. What runs again is the template this code compiles from
the run's saved options (its parameters, validated as any option, and its rendering);
the folder's workflow.json, the template as it ran, must equal it, or the resume is
refused with the first difference. And the folder must be where it ran: its artifacts,
its ML Metadata and its endpoint's state live beside it, so a moved folder is refused.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textcnn.params import ParamsError, PipelineParams
from workflows.dag import pipeline
from workflows.errors import WorkflowError
from workflows.local.folder import WORKFLOW, check_not_running

# A workflow name as Argo makes one (generateName): it becomes artifact keys and paths.
WORKFLOW_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def store_beside(folder: Path) -> str:
    """The ML Metadata store of a local run in `folder` unless --metadata_store says
    otherwise: one SQLite file beside the run folders, which every run there shares."""
    return f"sqlite:{folder.parent / 'metadata.sqlite'}"


def artifacts_beside(folder: Path) -> str:
    """Its artifact root unless --artifact_root says otherwise: beside the run folders
    too, as a bucket, so a model outlives its run's folder."""
    return str(folder.parent / "artifacts")


@dataclass(frozen=True)
class Resumable:
    """An earlier run, checked: its run.json, and what runs again."""

    earlier: dict[str, Any]
    template: dict[str, Any]
    params: PipelineParams
    rendering: pipeline.Rendering
    artifact_root: str
    workflow_name: str


def saved_with(folder: Path, rendering: pipeline.Rendering) -> dict[str, Any]:
    """What run.json keeps beside the run's parameters, for `load` to check."""
    return {"output_dir": str(folder), "rendering": rendering.to_dict()}


def load(
    folder: Path, metadata_store: str | None = None, artifact_root: str | None = None
) -> Resumable:
    """The run in `folder` (absolute) that `--resume` goes on with; WorkflowError naming
    what is wrong otherwise. Its ML Metadata and artifacts must be where a new run there
    would keep them: beside the folder, or as `metadata_store` and `artifact_root` (the
    options given again) say."""
    check_not_running(folder)
    try:
        earlier = json.loads((folder / "run.json").read_text())
        saved = json.loads((folder / WORKFLOW).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise WorkflowError(
            f"--resume {folder}: no local run to resume there (its run.json and "
            f"{WORKFLOW}); give the --output_dir of an earlier run"
        ) from None
    if not isinstance(earlier, dict) or not isinstance(saved, dict):
        raise _unreadable(folder, "run.json or workflow.json is not a JSON object")
    if earlier.get("status") == "Succeeded":
        raise WorkflowError(f"--resume {folder}: that run succeeded; there is nothing to resume")
    name, root, made_in = (earlier.get(k) for k in ("workflow_name", "artifact_root", "output_dir"))
    if not isinstance(name, str) or not WORKFLOW_NAME.fullmatch(name):
        raise _unreadable(folder, f"workflow_name {str(name)[:80]!r} is not a workflow's name")
    if made_in != str(folder):
        raise WorkflowError(
            f"--resume {folder}: this run was made in {made_in[:200]}, and its artifacts, ML "
            "Metadata and endpoint state are beside that folder: move it back and resume "
            "it there, or start a new run"
            if isinstance(made_in, str)
            else f"--resume {folder}: its run.json does not say where the run was made "
            "(a run of an older version): start a new run"
        )
    if not isinstance(root, str) or not root:
        raise _unreadable(folder, "it names no artifact_root")
    _check_recorded(folder, "artifact_root", root, artifact_root, artifacts_beside(folder))
    parameters = earlier.get("parameters")
    if not isinstance(parameters, dict) or not all(isinstance(v, str) for v in parameters.values()):
        raise _unreadable(folder, "its parameters are not a map of strings")
    try:
        params = PipelineParams.parse(parameters)
        rendering = pipeline.Rendering.from_dict(earlier.get("rendering") or {})
    except (ParamsError, ValueError) as e:
        raise _unreadable(folder, str(e)) from None
    _check_recorded(
        folder, "metadata_store", params.metadata_store, metadata_store, store_beside(folder)
    )
    template = json.loads(json.dumps(pipeline.render(params, rendering)[0]))
    if (where := _first_difference(template, saved)) is not None:
        raise WorkflowError(
            f"--resume {folder}: its {WORKFLOW} is not the template this code compiles "
            f"from the run's options (they differ at {where}); a run folder is never "
            "run as it stands: start a new run"
        )
    return Resumable(earlier, template, params, rendering, root, name)


def _check_recorded(
    folder: Path, option: str, recorded: str, given: str | None, default: str
) -> None:
    """The run's `option` must be what a new run into `folder` gets: the default beside
    it, or the value given again. run.json is data: it cannot send the run's writes
    elsewhere."""
    if recorded != (given or default):
        raise WorkflowError(
            f"--resume {folder}: its --{option} is {recorded[:200]!r}"
            + (
                f", not {given!r}"
                if given
                else f"; give --{option} {recorded[:200]!r} to resume it"
            )
        )


def _unreadable(folder: Path, why: str) -> WorkflowError:
    return WorkflowError(f"--resume {folder}: its run.json cannot be resumed: {why}")


def _first_difference(a: Any, b: Any, path: str = "$") -> str | None:
    """The first place (a JSON path) where `a` and `b` differ, or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(a.keys() | b.keys()):
            if key not in a or key not in b:
                return f"{path}.{key}"
            if (found := _first_difference(a[key], b[key], f"{path}.{key}")) is not None:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if (found := _first_difference(x, y, f"{path}[{i}]")) is not None:
                return found
        return None
    return None if a == b else path
