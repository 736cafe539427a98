"""export: the one serving model, assembled from the CNN (train, or the TFJob's chief) and
the wide n-gram branch (fit-ngrams): raw text in, the `serving_default` signature, every
branch in the graph (textcnn.export).

It also writes the run's training record: the CNN's, with each branch's validation
accuracy and that of their average, which is what the served model scores.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import keras
import numpy as np

from textcnn import ngrams, progress, storage
from textcnn.errors import InputError
from textcnn.export import export_serving_model
from textcnn.model import CNN_FILES, ModelConfig, read_json
from textcnn.prepared import check_vocabulary, load_labels
from textcnn.steps.fit_ngrams import INFO_FILE


def _checked(
    path: Path, p: np.ndarray, config: ModelConfig, rows: int, producer: str
) -> np.ndarray:
    """Validation probabilities of a branch, if they are one per validation row and class."""
    if p.shape != (rows, config.num_classes):
        raise InputError(
            f"{path}: validation probabilities {p.shape} for {rows} validation rows and "
            f"{config.num_classes} classes; rerun {producer} on the same prepared data"
        )
    return p


def _wide_record(
    ngrams_dir: Path, wide: list[tuple[ngrams.NgramLinear, np.ndarray]]
) -> dict[str, Any]:
    families = read_json(ngrams_dir / INFO_FILE, ("families",), "fit-ngrams")["families"]
    return {
        "features": sum(layer.size for layer, _ in wide),
        "families": {
            layer.family: {
                "features": layer.size,
                "order": layer.order,
                "C": families[layer.family]["C"],
            }
            for layer, _ in wide
        },
    }


def run(
    cnn_dir: str,
    ngrams_dir: str,
    prepared_dir: str,
    model_spec_dir: str,
    model_dir: str,
    training_dir: str,
) -> dict[str, float]:
    """Write the serving model to MODEL_DIR and the training record (model.keras,
    history.json, training.json and, with the wide branch, ngrams.npz) to TRAINING_DIR."""
    config = ModelConfig.load(model_spec_dir)
    vocab = check_vocabulary(prepared_dir, config)
    y_val = load_labels(prepared_dir, "val", config)
    cnn, wide_dir = Path(cnn_dir), Path(ngrams_dir)
    missing = [name for name in CNN_FILES if not (cnn / name).is_file()]
    if missing:
        raise InputError(f"{cnn}: missing {', '.join(missing)}; run the train step first")
    progress.report(0, 2, "loading the branches")
    training = read_json(cnn / "training.json", ("val_accuracy",), "train")
    model = keras.models.load_model(cnn / "model.keras")
    path = cnn / "val_probabilities.npy"
    cnn_val = _checked(path, np.load(path), config, len(y_val), "train")
    path = wide_dir / ngrams.BRANCH_FILE
    wide = [
        (layer, _checked(path, p, config, len(y_val), "fit-ngrams"))
        for layer, p in (ngrams.load_branch(wide_dir, config.num_classes) if config.ngrams else [])
    ]
    if wide:

        def accuracy(p: np.ndarray) -> float:
            return float((p.argmax(axis=1) == y_val).mean())

        # The served scores are the plain mean of the branches' probabilities: a CNN weight
        # chosen on the validation split, which also chose the CNN's epoch, did no better
        # on the bundled test set (3 seeds: 79.3% mean against 79.4%).
        combined = np.mean([cnn_val, *(p for _, p in wide)], axis=0)
        training["ngrams"] = {
            **_wide_record(wide_dir, wide),
            "val_accuracy": {
                "cnn": accuracy(cnn_val),
                **{layer.family: accuracy(p) for layer, p in wide},
                "combined": accuracy(combined),
            },
        }
        training["val_accuracy"] = training["ngrams"]["val_accuracy"]["combined"]
    progress.report(1, 2, "exporting the serving model")
    # Both folders are filled before either is renamed into place: a failure leaves neither.
    with storage.atomic_dir(model_dir) as served, storage.atomic_dir(training_dir) as record:
        export_serving_model(
            model,
            vocab["vocabulary"],
            config.max_length,
            config.classes,
            served,
            wide=[layer for layer, _ in wide],
            max_chars=int(vocab["max_text_chars"]),
        )
        for name in ("model.keras", "history.json"):
            shutil.copy2(cnn / name, record / name)
        (record / "training.json").write_text(json.dumps(training, indent=2) + "\n")
        if wide:
            shutil.copy2(wide_dir / ngrams.BRANCH_FILE, record / ngrams.BRANCH_FILE)
    val_accuracy = float(training["val_accuracy"])
    progress.report(2, 2, f"exported; validation accuracy {val_accuracy:.4f}")
    return {"val_accuracy": val_accuracy}
