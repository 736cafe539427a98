"""dataset-metadata: check a CSV early, describe it in report.json, log it as an MLMD Dataset.

It runs on the training and the test file in parallel with prepare-data, so a bad test file
stops the workflow before anything trains.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import pandas as pd

from textcnn import metadata, storage
from textcnn.data import load_csv
from textcnn.tokens import standardize_texts, token_counts

PERCENTILES = (50, 90, 95, 99)


def build_report(
    df: pd.DataFrame, *, uri: str, split: str, text_column: str, label_column: str
) -> dict[str, Any]:
    """What a person checks before training: size, classes, empty/duplicate texts, lengths.

    Empty texts are those with no tokens once standardised (prepare-data drops them);
    duplicates are non-empty texts equal to an earlier one after stripping spaces.
    Token lengths are over the non-empty texts.
    """
    lengths = token_counts(standardize_texts(df["text"]))
    empty = lengths == 0
    duplicate = df["text"].str.strip().duplicated().to_numpy() & ~empty
    nonempty = lengths[~empty]
    token_length: dict[str, float] = {
        f"p{p}": float(np.percentile(nonempty, p)) if nonempty.size else 0.0 for p in PERCENTILES
    }
    token_length["max"] = int(nonempty.max()) if nonempty.size else 0
    load = df.attrs["load_report"]
    return {
        "file": uri,
        "split": split,
        "columns": {"required": [text_column, label_column], "found": load["columns"]},
        "rows": len(df),
        "empty_texts": int(empty.sum()),
        "duplicate_texts": int(duplicate.sum()),
        "classes": {str(k): int(v) for k, v in sorted(df["label"].value_counts().items())},
        "token_length": token_length,
        "fixed_on_load": {
            k: load[k] for k in ("blank_rows_skipped", "utf8_bom_removed", "labels_stripped")
        },
    }


def run(
    data_path: str,
    split: str,
    text_column: str,
    label_column: str,
    report_dir: str,
    metadata_store: str,
    run_name: str,
) -> dict[str, Any]:
    """Validate a text/label CSV, write report_dir/report.json and record an MLMD Dataset."""
    df = load_csv(data_path, text_column, label_column)
    report = build_report(
        df, uri=data_path, split=split, text_column=text_column, label_column=label_column
    )
    uri = data_path if storage.is_gcs(data_path) else os.path.abspath(data_path)
    properties: dict[str, int | float | str] = {
        "split": split,
        "rows": report["rows"],
        "classes": json.dumps(report["classes"]),
        "num_classes": len(report["classes"]),
        "empty_texts": report["empty_texts"],
        "duplicate_texts": report["duplicate_texts"],
        "text_column": text_column,
        "label_column": label_column,
        **{f"token_length_{k}": v for k, v in report["token_length"].items()},
    }
    dataset_id = metadata.record_artifact(
        metadata_store, run_name=run_name, type_name="Dataset", uri=uri, properties=properties
    )
    report["dataset_id"] = dataset_id
    storage.write_text(storage.join(report_dir, "report.json"), json.dumps(report, indent=2))
    print(json.dumps(report))
    return {"dataset_id": str(dataset_id), "rows": report["rows"]}
