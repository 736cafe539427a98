"""Which parts of the DAG are cached, and the plan validate-params keys them by.

A stage is a set of artifacts and the tasks that write them; `train`'s `cnn` has three
writers (CPU, GPU, and the TFJob branch's collect-model), of which at most one runs. The
stage's tasks run only when validate-params says `run` (no entry for its key: see
textcnn.cache, which keys and reads entries; this module only says what goes in a key).

Always run: validate-params (it decides), log-training-metadata (this run's lineage,
reused stages marked CACHED), the gate (what serves may have changed), deploy, the wait,
the canary and the status record.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# The names of validate-params' outputs, and of a cached stage template's last output
# artifact (also its input parameter), are textcnn.cache's, which decides.
from textcnn.cache import ENTRY, LINEAGE, entry_parameter, key_parameter

# Stage -> the artifacts it writes, producers before consumers.
STAGES: dict[str, tuple[str, ...]] = {
    "prepare-data": ("prepared",),
    "dataset-metadata-train": ("train-report",),
    "dataset-metadata-test": ("test-report",),
    "check-data": ("data-checks",),
    "embeddings": ("embeddings",),
    "model-metadata": ("spec",),
    "train": ("cnn",),
    "fit-ngrams": ("ngrams",),
    "export": ("model", "training"),
    "evaluate": ("metrics",),
}
ARTIFACTS = {artifact: stage for stage, written in STAGES.items() for artifact in written}
# Options a stage's key takes besides its tasks' command lines: the image it runs on (its
# libraries; the code version covers only textcnn's sources), and for `train` the GPU
# image and the TFJob branch, which trains with the same step options, but how many
# replicas share the batch changes the model.
EXTRA_OPTIONS = {"train": ("image", "gpu_image", "dist_training", "workers")}
DEFAULT_EXTRA = ("image",)

_WORKFLOW_PARAMETER = re.compile(r"\{\{workflow\.parameters\.([A-Za-z0-9_]+)\}\}")
_ARTIFACT_PATH = re.compile(r"\{\{(inputs|outputs)\.artifacts\.([-A-Za-z0-9_]+)\.path\}\}")
# Where a run puts things, not what it computes: left out of the keys.
_RUN_SPECIFIC = (
    "--cache_entry=",
    "{{workflow.name}}",
    "{{workflow.namespace}}",
    "{{inputs.parameters.",
    "$(",
)


def stage_of(outputs: Iterable[str]) -> str | None:
    """The stage a template belongs to by the artifacts it writes (None: not cached)."""
    stages = {ARTIFACTS.get(a) for a in outputs if a != ENTRY}
    if not stages or None in stages:
        return None
    (stage,) = stages
    return stage


def key_arg(arg: str) -> str | None:
    """A command-line argument as it goes into a key (string.Template, options as
    `${name}`), or None for one that says where this run is, not what it computes."""
    if any(marker in arg for marker in _RUN_SPECIFIC):
        return None
    # No `$` of its own: Kubernetes would read `$$` in the plan's argument as `$`.
    if "{{" in _ARTIFACT_PATH.sub("", _WORKFLOW_PARAMETER.sub("", arg)) or "$" in arg:
        raise ValueError(f"argument {arg!r}: a reference the cache plan cannot key")
    return _WORKFLOW_PARAMETER.sub(r"${\1}", _ARTIFACT_PATH.sub(r"<\1:\2>", arg))


def plan(templates: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The cache plan (textcnn.cache.stage_keys) of the compiled step `templates`."""
    out: dict[str, dict[str, Any]] = {}
    for stage, artifacts in STAGES.items():
        writers = [
            t
            for t in templates
            if stage_of(a["name"] for a in _artifacts(t, "outputs") if a["name"] != ENTRY) == stage
        ]
        if not writers:
            raise ValueError(f"no template writes the artifacts of stage {stage!r}")
        args: list[str] = []
        reads: set[str] = set()
        for t in writers:
            for arg in t["container"].get("args", []):
                if (keyed := key_arg(arg)) is not None and keyed not in args:
                    args.append(keyed)
            read = (a["name"] for a in _artifacts(t, "inputs"))
            reads |= {ARTIFACTS[a] for a in read if a in ARTIFACTS}
        args += [f"--{o}=${{{o}}}" for o in EXTRA_OPTIONS.get(stage, DEFAULT_EXTRA)]
        out[stage] = {
            "args": args,
            "inputs": [s for s in STAGES if s in reads],
            "outputs": list(artifacts),
        }
    return out


def plan_json(templates: Sequence[Mapping[str, Any]]) -> str:
    """The plan as validate-params' `--cache_plan` (compact JSON, which never holds `{{`)."""
    return json.dumps(plan(templates), separators=(",", ":"))


def outputs() -> list[str]:
    """validate-params' cache outputs (textcnn.cache.decide)."""
    return [
        *STAGES,
        *(entry_parameter(s) for s in STAGES),
        *(key_parameter(a) for a in ARTIFACTS),
        LINEAGE,
    ]


def _artifacts(template: Mapping[str, Any], section: str) -> list[dict[str, Any]]:
    return list(template.get(section, {}).get("artifacts", []))
