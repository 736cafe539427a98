"""dataset-metadata: the report's figures, report.json, and the MLMD Dataset artifact."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from textcnn import data, metadata, storage
from textcnn.data import LoadReport, iter_csv, load_csv
from textcnn.errors import InputError
from textcnn.steps import dataset_metadata
from textcnn.tokens import standardize_texts

EXTRA = [
    ("", "positive"),  # empty
    ("  ---  ", "negative"),  # no tokens once standardised: empty too
    ("A repeated text.", "positive"),
    ("  A repeated text.", "negative"),  # duplicate after strip, whatever its label
    ("a REPEATED text.", "positive"),  # differs before standardising: not exact
    ("A repeated text.", "positive"),  # duplicate
]


def _run(path: Path, tmp_path: Path, split: str = "train", run_name: str = "wf-1") -> dict:
    return dataset_metadata.run(
        data_path=str(path),
        split=split,
        text_column="text",
        label_column="label",
        report_dir=str(tmp_path / f"report-{split}"),
        metadata_store=f"sqlite:{tmp_path / 'md.sqlite'}",
        run_name=run_name,
    )


def _report(path: Path) -> dict:
    load = LoadReport(str(path))
    return dataset_metadata.build_report(
        iter_csv(str(path), "text", "label", report=load),
        load,
        uri=str(path),
        split="train",
        text_column="text",
        label_column="label",
    )


def test_report_figures(make_csv: Callable[..., Path]) -> None:
    path = make_csv(rows=90, classes=2, extra=EXTRA)
    df = load_csv(str(path), "text", "label")
    report = _report(path)
    assert report["rows"] == 96
    assert report["empty_texts"] == 2 and report["duplicate_texts"] == 2
    assert report["classes"] == {"negative": 45 + 2, "positive": 45 + 4}
    assert report["columns"] == {"required": ["text", "label"], "found": ["text", "label"]}
    lengths = np.array([len(s.split()) for s in standardize_texts(df["text"]) if s])
    assert report["token_length"] == {
        "p50": np.percentile(lengths, 50),
        "p90": np.percentile(lengths, 90),
        "p95": np.percentile(lengths, 95),
        "p99": np.percentile(lengths, 99),
        "max": lengths.max(),
    }


def test_report_is_the_same_read_in_small_chunks(
    make_csv: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The figures do not depend on where the chunks end: duplicates across chunks are
    found, and percentiles are over every row (the step streams a file of any size)."""
    path = make_csv(rows=90, classes=2, extra=EXTRA + EXTRA)
    whole = _report(path)
    monkeypatch.setattr(data, "CHUNK_ROWS", 7)
    monkeypatch.setattr(data, "BLOCK_BYTES", 64)
    assert _report(path) == whole
    assert whole["duplicate_texts"] == 6 and whole["empty_texts"] == 4


def test_run_writes_report_and_records_datasets(
    make_csv: Callable[..., Path], tmp_path: Path
) -> None:
    train = make_csv(rows=60, name="train.csv", extra=EXTRA)
    test = make_csv(rows=30, name="test.csv", seed=1)
    out_train = _run(train, tmp_path, "train")
    out_test = _run(test, tmp_path, "test")
    assert out_train["rows"] == 66 and out_test["rows"] == 30
    assert out_train["dataset_id"] != out_test["dataset_id"]

    report = json.loads((tmp_path / "report-train" / "report.json").read_text())
    assert report["dataset_id"] == int(out_train["dataset_id"])
    assert report["rows"] == 66 and report["empty_texts"] == 2
    assert os.listdir(tmp_path / "report-train") == ["report.json"]  # no temporary left

    recorded = metadata.lineage(f"sqlite:{tmp_path / 'md.sqlite'}", "wf-1")["artifacts"]
    by_id = {str(a["id"]): a for a in recorded}
    art = by_id[out_train["dataset_id"]]
    assert art["type"] == "Dataset" and art["uri"] == str(train.resolve())
    props = art["properties"]
    assert props["split"] == "train" and props["rows"] == 66
    assert json.loads(props["classes"]) == report["classes"]
    assert props["empty_texts"] == 2 and props["duplicate_texts"] == report["duplicate_texts"]
    assert props["token_length_p95"] == report["token_length"]["p95"]
    assert props["token_length_max"] == report["token_length"]["max"]
    assert by_id[out_test["dataset_id"]]["properties"]["split"] == "test"


def test_gcs_data_is_recorded_by_its_uri(
    make_csv: Callable[..., Path], tmp_path: Path, gcs_root: str
) -> None:
    uri = storage.join(gcs_root, "test.csv")
    storage.write_bytes(uri, make_csv(rows=20).read_bytes())
    out = dataset_metadata.run(
        data_path=uri,
        split="test",
        text_column="text",
        label_column="label",
        report_dir=storage.join(gcs_root, "report"),
        metadata_store=f"sqlite:{tmp_path / 'md.sqlite'}",
        run_name="wf-gcs",
    )
    [art] = metadata.lineage(f"sqlite:{tmp_path / 'md.sqlite'}", "wf-gcs")["artifacts"]
    assert art["uri"] == uri and str(art["id"]) == out["dataset_id"]
    assert json.loads(storage.read_text(storage.join(gcs_root, "report/report.json")))["rows"] == 20


def test_bad_file_records_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("review,label\ngood,pos\n")
    with pytest.raises(InputError, match="no column 'text'"):
        _run(path, tmp_path)
    assert not (tmp_path / "report-train").exists()
    assert not (tmp_path / "md.sqlite").exists()


def test_a_damaged_store_is_a_user_error_that_writes_nothing(
    make_csv: Callable[..., Path], tmp_path: Path
) -> None:
    """Exit code 2, which the templates' retryStrategy and the local runner never retry.
    Before: ML Metadata's RuntimeError (exit 1), retried three times as bad luck."""
    store = tmp_path / "md.sqlite"
    metadata.record_artifact(
        f"sqlite:{store}", run_name="r", type_name="D", uri="/d", properties={}
    )
    store.write_bytes(store.read_bytes()[:20000])  # as `head -c 20000` leaves it
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "textcnn",
            "dataset-metadata",
            f"--data_path={make_csv(rows=30)}",
            "--split=train",
            "--text_column=text",
            "--label_column=label",
            f"--report_dir={tmp_path / 'report'}",
            f"--metadata_store=sqlite:{store}",
            "--run_name=wf-cli",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[-1] == (
        f"error: dataset-metadata: {store}: not an ML Metadata store (SQLite: database disk "
        "image is malformed); move it aside (a fresh store is created where there is none) "
        "or pass --metadata_store sqlite:ANOTHER_PATH"
    )
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "report").exists()


def test_cli_writes_output_parameters(make_csv: Callable[..., Path], tmp_path: Path) -> None:
    path = make_csv(rows=30)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "textcnn",
            "dataset-metadata",
            "--data_path",
            str(path),
            "--split",
            "train",
            "--text_column",
            "text",
            "--label_column",
            "label",
            "--report_dir",
            str(tmp_path / "report"),
            "--metadata_store",
            f"sqlite:{tmp_path / 'md.sqlite'}",
            "--run_name",
            "wf-cli",
            "--outputs",
            str(tmp_path / "params"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "params" / "rows").read_text() == "30"
    [art] = metadata.lineage(f"sqlite:{tmp_path / 'md.sqlite'}", "wf-cli")["artifacts"]
    assert (tmp_path / "params" / "dataset_id").read_text() == str(art["id"])
