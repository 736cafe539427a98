"""The model server hook of the InferenceService controller (workflows.kube.controllers.
pods `Serve`): what a predictor pod of this project runs here. KServe's storage
initializer is `textcnn.storage.download_dir` into the pod's folder; the container is the
project's server (`python -m textcnn.serving`, as the serving image runs it) on the
pod's loopback port. KServe's batcher sidecar gathers requests in front of either runtime;
here the server's own batching does that work, with the same limits."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from textcnn import storage

# The InferenceService's batcher fields -> the server's options.
BATCHER_OPTIONS = {"maxBatchSize": "max_batch_size", "maxLatency": "max_latency_ms"}


def serve(
    model_uri: str, model_name: str, port: int, batcher: Mapping[str, int], workdir: Path
) -> tuple[list[str], dict[str, str]]:
    """The model at `model_uri`, downloaded under `workdir`, served as `model_name` on
    127.0.0.1:`port`: the command, and no environment of its own."""
    model_dir = workdir / "mnt" / "models"
    storage.download_dir(model_uri, model_dir)
    command = [
        sys.executable,
        "-m",
        "textcnn.serving",
        f"--model_dir={model_dir}",
        f"--model_name={model_name}",
        f"--port={port}",
        "--host=127.0.0.1",
        *(
            f"--{option}={batcher[key]}"
            for key, option in BATCHER_OPTIONS.items()
            if key in batcher
        ),
    ]
    return command, {}
