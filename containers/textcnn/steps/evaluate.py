"""evaluate: score the held-out test CSV through the exported serving signature
(textcnn.evaluation), so an export that drifted from training shows here."""

from __future__ import annotations

import json
from pathlib import Path

from textcnn import storage
from textcnn.evaluation import score_csv
from textcnn.model import read_json
from textcnn.report import render_report


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
    result = score_csv(model_dir, test_path, text_column, label_column, classes)
    storage.write_text(storage.join(metrics_dir, "metrics.json"), json.dumps(result, indent=2))
    if training_dir:
        history = json.loads((Path(training_dir) / "history.json").read_text())
        training = json.loads((Path(training_dir) / "training.json").read_text())
        storage.write_text(
            storage.join(metrics_dir, "report.html"), render_report(result, history, training)
        )
    print(json.dumps({k: result[k] for k in ("accuracy", "macro_f1", "num_examples")}))
    return {"accuracy": result["accuracy"], "macro_f1": result["macro_f1"]}
