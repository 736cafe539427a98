"""Scoring a served model on a labelled CSV: the code `evaluate` runs on the candidate and
the gate runs on the model that serves now, so both figures are comparable.

Scores come from the exported serving signature (raw text in, tokenised in the graph),
as TF Serving will run it, not from the Keras object.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn import metrics

from textcnn.data import check_known_labels, iter_csv
from textcnn.errors import InputError
from textcnn.export import load_serving_model

BATCH = 256


def latest_version(model_dir: str) -> Path:
    """The highest numeric version folder: the one TF Serving would serve."""
    versions = [p for p in Path(model_dir).glob("*/saved_model.pb") if p.parent.name.isdigit()]
    if not versions:
        raise InputError(
            f"{model_dir}: no SavedModel version folder (<n>/saved_model.pb); run the train "
            "step first"
        )
    return max(versions, key=lambda p: int(p.parent.name)).parent


def compute_metrics(truth: list[str], predicted: list[str], classes: list[str]) -> dict:
    """accuracy, macro F1 over every class, per-class scores and the confusion matrix."""
    precision, recall, f1, support = metrics.precision_recall_fscore_support(
        truth, predicted, labels=classes, zero_division=0
    )
    return {
        "accuracy": float(metrics.accuracy_score(truth, predicted)),
        "macro_f1": float(np.mean(f1)),
        "per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(classes, precision, recall, f1, support, strict=True)
        },
        "confusion_matrix": {
            "labels": classes,  # rows: true class, columns: predicted class
            "matrix": metrics.confusion_matrix(truth, predicted, labels=classes).tolist(),
        },
        "num_examples": len(truth),
    }


def score_csv(
    model_dir: str, test_path: str, text_column: str, label_column: str, classes: list[str]
) -> dict[str, Any]:
    """`compute_metrics` of the model in `model_dir` (a versioned base folder) on the CSV,
    whose labels must all be among `classes`: checked in a first read, so a bad row fails
    before anything is predicted; the second read predicts a chunk of rows at a time."""
    check_known_labels(
        iter_csv(test_path, text_column, label_column), classes, test_path, label_column
    )
    predict = load_serving_model(latest_version(model_dir))
    truth: list[str] = []
    predicted: list[str] = []
    for chunk in iter_csv(test_path, text_column, label_column):
        texts = chunk["text"].tolist()
        truth += chunk["label"].tolist()
        for i in range(0, len(texts), BATCH):
            predicted += predict(texts[i : i + BATCH])["label"].tolist()
    return compute_metrics(truth, predicted, classes)
