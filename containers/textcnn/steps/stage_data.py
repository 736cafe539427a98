"""stage-data: the TFJob branch's inputs onto the shared volume.

It copies what the trainers read (the prepared shards, vocabulary and label map,
the embedding matrix, the model config) from the workflow's artifacts to a folder on the
ReadWriteMany volume that every TFJob replica mounts (not the texts: the replicas train
the CNN only, fit-ngrams fits the wide branch), and checks them against each other
there, so a mismatch fails before any replica is scheduled (textcnn.steps.collect_model is the
branch's other end).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from textcnn import storage
from textcnn.errors import InputError
from textcnn.model import CONFIG_FILE
from textcnn.training import load_inputs

# Folder -> (the files the trainers read, as glob patterns each matching at least one
# file; the step that writes them).
STAGED: dict[str, tuple[tuple[str, ...], str]] = {
    "prepared": (("train-*.bin", "val-*.bin", "vocab.json", "labels.json"), "prepare-data"),
    "embeddings": (("embeddings.npy",), "embeddings"),
    "spec": ((CONFIG_FILE,), "model-metadata"),
}


def run(
    prepared_dir: str,
    embeddings_dir: str,
    model_spec_dir: str,
    stage_dir: str,
    package: str | None = None,
) -> None:
    """Copy the trainers' inputs to STAGE_DIR/{prepared,embeddings,spec} (replacing
    what was there) and check that they fit together; with `package` (the lightweight
    variant's wheel) copy it to STAGE_DIR/package/ too, for the replicas to install."""
    sources = {"prepared": prepared_dir, "embeddings": embeddings_dir, "spec": model_spec_dir}
    with storage.atomic_dir(stage_dir) as tmp:
        if package:
            (tmp / "package").mkdir()
            shutil.copy2(package, tmp / "package" / Path(package).name)
        for folder, (patterns, producer) in STAGED.items():
            (tmp / folder).mkdir()
            for pattern in patterns:
                found = sorted(Path(sources[folder]).glob(pattern))
                if not found:
                    where = Path(sources[folder]) / pattern
                    raise InputError(f"{where}: not found; run the {producer} step first")
                for src in found:
                    shutil.copy2(src, tmp / folder / src.name)
        load_inputs(str(tmp / "prepared"), str(tmp / "embeddings"), str(tmp / "spec"))
