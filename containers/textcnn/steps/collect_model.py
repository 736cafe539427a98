"""collect-model: publish the model and training record that the TFJob's chief wrote on
the shared volume as the `model` and `training` artifacts, the very outputs of the
single-pod train step, so evaluation and deployment do not care which branch trained."""

from __future__ import annotations

from pathlib import Path

from textcnn import storage
from textcnn.errors import InputError

TRAINING_FILES = ("training.json", "history.json", "model.keras")


def run(source_dir: str, model_dir: str, training_dir: str) -> None:
    """Publish SOURCE_DIR/model (the TF-Serving base folder) and SOURCE_DIR/training, as the
    TFJob's chief wrote them, to MODEL_DIR and TRAINING_DIR."""
    model, training = Path(source_dir) / "model", Path(source_dir) / "training"
    if not any(p.parent.name.isdigit() for p in model.glob("*/saved_model.pb")):
        raise InputError(
            f"{model}: no SavedModel version folder (<n>/saved_model.pb); the "
            "TFJob's chief writes it when training succeeds: read its log"
        )
    missing = [name for name in TRAINING_FILES if not (training / name).is_file()]
    if missing:
        raise InputError(
            f"{training}: missing {', '.join(missing)}; the TFJob's chief "
            "writes them when training succeeds: read its log"
        )
    storage.upload_dir(model, model_dir)
    storage.upload_dir(training, training_dir)
