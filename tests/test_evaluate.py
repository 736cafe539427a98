"""evaluate step: metrics of the served model on a test CSV, checked against a hand count."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import CLASSES, MAX_LENGTH, VOCABULARY, make_texts, run_train, write_inputs

from textcnn import evaluation, storage
from textcnn.errors import InputError
from textcnn.steps import evaluate
from textcnn.text import make_vectorizer


def write_csv(
    path: Path, rows: list[tuple[str, str]], header: tuple[str, str] = ("text", "label")
) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([header, *rows])
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("evaluate")
    # The plain CNN, so the Keras model alone is the reference (both branches together are
    # compared with the export in test_train.py).
    run_train(write_inputs(root, architecture="cnn"), root, epochs=3)
    return root


def run_evaluate(root: Path, test_path: str, out: Path, **columns: str) -> dict[str, float]:
    cols = {"text_column": "text", "label_column": "label"} | columns
    return evaluate.run(
        model_dir=str(root / "model"),
        prepared_dir=str(root / "prepared"),
        test_path=test_path,
        metrics_dir=str(out / "metrics"),
        **cols,
    )


def test_metrics_match_a_hand_count_over_several_batches(trained: Path, tmp_path: Path) -> None:
    texts, labels = make_texts(evaluation.BATCH + 44, seed=5)  # two batches
    texts[0], labels[0] = "Poor film", "rotten"  # an out-of-vocabulary cue
    path = write_csv(tmp_path / "test.csv", list(zip(texts, labels, strict=True)))
    result = run_evaluate(trained, str(path), tmp_path)
    saved = json.loads((tmp_path / "metrics" / "metrics.json").read_text())

    # Reference predictions from the Keras model and the training tokeniser.
    model = keras.models.load_model(trained / "training" / "model.keras")
    ids = make_vectorizer(MAX_LENGTH, vocabulary=VOCABULARY)(tf.constant(texts))
    predicted = [CLASSES[i] for i in model(ids, training=False).numpy().argmax(axis=1)]
    truth = np.array(labels)
    hits = np.array(predicted) == truth
    assert saved["num_examples"] == len(texts)
    assert result["accuracy"] == saved["accuracy"] == pytest.approx(hits.mean())
    assert saved["accuracy"] > 0.8  # learnt, yet not perfect: precision and recall differ
    f1s = []
    for name in CLASSES:
        tp = int(np.sum(hits & (truth == name)))
        n_pred, n_true = predicted.count(name), int(np.sum(truth == name))
        p, r = tp / n_pred, tp / n_true
        f1s.append(2 * p * r / (p + r))
        assert saved["per_class"][name] == pytest.approx(
            {"precision": p, "recall": r, "f1": f1s[-1], "support": n_true}
        )
    assert result["macro_f1"] == saved["macro_f1"] == pytest.approx(np.mean(f1s))
    matrix = [
        [
            sum(1 for t, q in zip(labels, predicted, strict=True) if t == a and q == b)
            for b in CLASSES
        ]
        for a in CLASSES
    ]
    assert saved["confusion_matrix"] == {"labels": CLASSES, "matrix": matrix}


def test_class_missing_from_the_test_set_still_counts_in_macro_f1(
    trained: Path, tmp_path: Path
) -> None:
    rows = [("A great movie", "fresh"), ("Superb", "fresh"), ("Lovely story", "fresh")]
    path = write_csv(tmp_path / "t.csv", rows, header=("review", "verdict"))
    result = run_evaluate(
        trained, str(path), tmp_path, text_column="review", label_column="verdict"
    )
    saved = json.loads((tmp_path / "metrics" / "metrics.json").read_text())
    assert saved["per_class"]["rotten"]["support"] == 0
    per_class_f1 = [saved["per_class"][c]["f1"] for c in CLASSES]
    assert result["macro_f1"] == pytest.approx(np.mean(per_class_f1))


def test_unseen_test_labels_are_an_input_error(trained: Path, tmp_path: Path) -> None:
    rows = [("good film", "fresh"), ("meh", "mixed"), ("bad", "rotten"), ("so so", "meh")]
    path = write_csv(tmp_path / "test.csv", rows)
    with pytest.raises(InputError) as e:
        run_evaluate(trained, str(path), tmp_path)
    message = str(e.value)
    assert str(path) in message and "['meh', 'mixed']" in message and "rows 3, 5" in message
    assert not (tmp_path / "metrics").exists()


def test_test_csv_on_gcs(trained: Path, tmp_path: Path, gcs_root: str) -> None:
    rows = [("a good film", "fresh"), ("a dull film", "rotten")]
    uri = f"{gcs_root}/test.csv"
    storage.write_bytes(uri, write_csv(tmp_path / "t.csv", rows).read_bytes())
    result = run_evaluate(trained, uri, tmp_path)
    assert json.loads((tmp_path / "metrics" / "metrics.json").read_text())["num_examples"] == 2
    assert 0.0 <= result["accuracy"] <= 1.0


def test_missing_model_is_an_input_error(trained: Path, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "test.csv", [("good film", "fresh")])
    with pytest.raises(InputError, match="no SavedModel version folder.*run the train step"):
        evaluate.run(
            model_dir=str(tmp_path / "nothing"),
            prepared_dir=str(trained / "prepared"),
            test_path=str(path),
            text_column="text",
            label_column="label",
            metrics_dir=str(tmp_path / "metrics"),
        )


def test_latest_version_is_the_highest_number(tmp_path: Path) -> None:
    for name in ("1", "2", "10", "latest"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "saved_model.pb").touch()
    (tmp_path / "11").mkdir()  # no saved_model.pb: not a version
    assert evaluation.latest_version(str(tmp_path)) == tmp_path / "10"
