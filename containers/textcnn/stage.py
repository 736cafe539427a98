"""stage-data and collect-model: the two ends of the TFJob branch, on the shared volume.

stage-data copies what the trainers read (the prepared arrays, vocabulary and label map,
the embedding matrix, the model config) from the workflow's artifacts to a folder on the
ReadWriteMany volume that every TFJob replica mounts, and checks them against each other
there, so a mismatch fails before any replica is scheduled. collect-model publishes the
model and training record the chief wrote on that volume as the `model` and `training`
artifacts, the very outputs of the single-pod train step, so evaluation and deployment do
not care which branch trained.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from textcnn import storage
from textcnn.errors import InputError
from textcnn.model import CONFIG_FILE
from textcnn.train import load_inputs

# Folder -> (files the trainers read, the step that writes them).
STAGED: dict[str, tuple[tuple[str, ...], str]] = {
    "prepared": (("train.npz", "val.npz", "vocab.json", "labels.json"), "prepare-data"),
    "embeddings": (("embeddings.npy",), "embeddings"),
    "spec": ((CONFIG_FILE,), "model-metadata"),
}
TRAINING_FILES = ("training.json", "history.json", "model.keras")


def stage_data(prepared_dir: str, embeddings_dir: str, model_spec_dir: str,
               stage_dir: str) -> None:
    """Copy the trainers' inputs to STAGE_DIR/{prepared,embeddings,spec} (replacing
    what was there) and check that they fit together."""
    sources = {"prepared": prepared_dir, "embeddings": embeddings_dir,
               "spec": model_spec_dir}
    with storage.atomic_dir(stage_dir) as tmp:
        for folder, (files, producer) in STAGED.items():
            (tmp / folder).mkdir()
            for name in files:
                src = Path(sources[folder]) / name
                if not src.is_file():
                    raise InputError(f"{src}: not found; run the {producer} step first")
                shutil.copy2(src, tmp / folder / name)
        load_inputs(str(tmp / "prepared"), str(tmp / "embeddings"), str(tmp / "spec"))


def collect_model(source_dir: str, model_dir: str, training_dir: str) -> None:
    """Publish SOURCE_DIR/model (the TF-Serving base folder) and SOURCE_DIR/training, as the
    TFJob's chief wrote them, to MODEL_DIR and TRAINING_DIR."""
    model, training = Path(source_dir) / "model", Path(source_dir) / "training"
    if not any(p.parent.name.isdigit() for p in model.glob("*/saved_model.pb")):
        raise InputError(f"{model}: no SavedModel version folder (<n>/saved_model.pb); the "
                         "TFJob's chief writes it when training succeeds: read its log")
    missing = [name for name in TRAINING_FILES if not (training / name).is_file()]
    if missing:
        raise InputError(f"{training}: missing {', '.join(missing)}; the TFJob's chief "
                         "writes them when training succeeds: read its log")
    storage.upload_dir(model, model_dir)
    storage.upload_dir(training, training_dir)
