"""evaluate: score the held-out test CSV through the exported serving signature.

The metrics are those of the model as TF Serving will run it (raw text in, tokenised in
the graph), not of the Keras object, so an export that drifted from training shows here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sklearn import metrics

from textcnn import storage
from textcnn.data import check_known_labels, load_csv
from textcnn.errors import InputError
from textcnn.export import load_serving_model
from textcnn.model import read_json
from textcnn.report import render_report

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


def predict_labels(model_dir: str, texts: list[str]) -> list[str]:
    predict = load_serving_model(latest_version(model_dir))
    labels: list[str] = []
    for i in range(0, len(texts), BATCH):
        labels += predict(texts[i : i + BATCH])["label"].tolist()
    return labels


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


def run(
    model_dir: str,
    prepared_dir: str,
    test_path: str,
    text_column: str,
    label_column: str,
    metrics_dir: str,
    training_dir: str | None = None,
) -> dict[str, float]:
    """Write metrics/metrics.json for the served model on the test CSV, and with
    `training_dir` an HTML report (metrics, confusion matrix, training curves)."""
    classes = read_json(Path(prepared_dir) / "labels.json", ("classes",), "prepare-data")["classes"]
    df = load_csv(test_path, text_column, label_column)
    check_known_labels(df, classes, test_path, label_column)
    truth = df["label"].tolist()
    result = compute_metrics(truth, predict_labels(model_dir, df["text"].tolist()), classes)
    storage.write_text(storage.join(metrics_dir, "metrics.json"), json.dumps(result, indent=2))
    if training_dir:
        history = json.loads((Path(training_dir) / "history.json").read_text())
        training = json.loads((Path(training_dir) / "training.json").read_text())
        storage.write_text(
            storage.join(metrics_dir, "report.html"), render_report(result, history, training)
        )
    print(json.dumps({k: result[k] for k in ("accuracy", "macro_f1", "num_examples")}))
    return {"accuracy": result["accuracy"], "macro_f1": result["macro_f1"]}
