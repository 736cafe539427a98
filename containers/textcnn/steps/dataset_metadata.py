"""dataset-metadata: check a CSV early, describe it in report.json, log it as an MLMD Dataset.

The training file's runs beside prepare-data; the test file's runs after it, and checks
the test labels against the training classes, so a bad test file stops the workflow
before anything trains (and a changed test file leaves prepare-data's cache entry alone).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from textcnn import metadata, storage
from textcnn.data import LoadReport, check_known_labels, iter_csv, text_hashes
from textcnn.drift import length_histogram
from textcnn.model import read_json
from textcnn.tokens import standardize_texts, token_counts

PERCENTILES = (50, 90, 95, 99)


def build_report(
    chunks: Iterable[pd.DataFrame],
    load: LoadReport,
    *,
    uri: str,
    split: str,
    text_column: str,
    label_column: str,
) -> dict[str, Any]:
    """What a person checks before training: size, classes, empty/duplicate texts, lengths,
    from the CSV's `chunks` (`iter_csv`, which fills in `load`).

    Empty texts are those with no tokens once standardised (prepare-data drops them);
    duplicates are non-empty texts equal to an earlier one after stripping spaces.
    Token lengths are over the non-empty texts. What is kept per row is two numbers (its
    token count and a 64-bit hash of its text), never the text.
    """
    classes: Counter[str] = Counter()
    lengths, hashes, rows = [], [], 0
    for chunk in chunks:
        counts = token_counts(standardize_texts(chunk["text"]))
        kept = counts > 0
        lengths.append(counts[kept].astype(np.int32))
        # Python's strip: pandas' .str.strip() leaves the process larger after each chunk.
        stripped = [t.strip() for t, k in zip(chunk["text"], kept, strict=True) if k]
        hashes.append(text_hashes(stripped))
        classes.update(chunk["label"])
        rows += len(chunk)
    nonempty = np.concatenate(lengths)
    duplicates = nonempty.size - np.unique(np.concatenate(hashes)).size
    token_length: dict[str, float] = {
        f"p{p}": float(np.percentile(nonempty, p)) if nonempty.size else 0.0 for p in PERCENTILES
    }
    token_length["max"] = int(nonempty.max()) if nonempty.size else 0
    return {
        "file": uri,
        "split": split,
        "columns": {"required": [text_column, label_column], "found": load.columns},
        "rows": rows,
        "empty_texts": rows - nonempty.size,
        "duplicate_texts": duplicates,
        "classes": {str(k): int(v) for k, v in sorted(classes.items())},
        "token_length": token_length,
        # The profile drift checks compare (textcnn.drift): texts per length bin.
        "token_length_histogram": length_histogram(nonempty),
        "fixed_on_load": {
            "blank_rows_skipped": load.blank_rows_skipped,
            "utf8_bom_removed": load.utf8_bom_removed,
            "labels_stripped": load.labels_stripped,
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
    prepared_dir: str | None = None,
) -> dict[str, Any]:
    """Validate a text/label CSV, write report_dir/report.json and record an MLMD Dataset.
    With `prepared_dir` (prepare-data's output), its labels must be training classes."""
    if prepared_dir:
        labels = read_json(Path(prepared_dir) / "labels.json", ("classes",), "prepare-data")
        check_known_labels(
            iter_csv(data_path, text_column, label_column),
            labels["classes"],
            data_path,
            label_column,
        )
    load = LoadReport(data_path)
    report = build_report(
        iter_csv(data_path, text_column, label_column, report=load),
        load,
        uri=data_path,
        split=split,
        text_column=text_column,
        label_column=label_column,
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
        "token_length_histogram": json.dumps(report["token_length_histogram"]),
    }
    dataset_id = metadata.record_artifact(
        metadata_store, run_name=run_name, type_name="Dataset", uri=uri, properties=properties
    )
    report["dataset_id"] = dataset_id
    storage.write_text(storage.join(report_dir, "report.json"), json.dumps(report, indent=2))
    print(json.dumps(report))
    return {"dataset_id": str(dataset_id), "rows": report["rows"]}
