"""check-data: can this run's data be trusted? Statistics only, streamed, no model.

After prepare-data and both dataset-metadata steps, before training, it finds the test
rows whose text also occurs in the training data (leakage: they would inflate the test
figures the gate decides on), among the texts of at least MIN_WORDS words, fails when
their share of the test rows passes `--max_test_overlap`, and with `--drop_test_overlap`
removes them. It writes the test set the later steps score (`test.csv`: the test CSV's rows, less
those dropped) and `checks.json`: the overlap, the class shares and lengths of both sets,
what prepare-data dropped, the scored test words' rate outside the vocabulary, and both
sets' profiles (textcnn.drift).

A drift never fails this step: the gate, which always runs, weighs it against the data
the serving model learned from (which this cached step cannot know) and withholds the
deploy beyond a threshold.

Memory holds a 64-bit hash per training text and one chunk of the test CSV.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from textcnn import storage
from textcnn.data import ROW_NUMBERS, LoadReport, cut_texts, iter_csv, text_hashes
from textcnn.drift import Profile, known_words, shares, unknown_words
from textcnn.errors import InputError
from textcnn.model import read_json
from textcnn.prepared import chunks, training_texts
from textcnn.tokens import standardize_texts

EXAMPLES = 5  # overlapping rows shown with their text
# Shorter texts recur by chance, not by a leak: of the bundled test reviews cut to their
# first 3 words 17% occur among the training reviews so cut, at 5 words 1.3%, at 8 0.15%.
MIN_WORDS = 5
LISTED = 10  # row numbers named in an error
BATCH = 50_000  # training texts hashed at a time
_WORD = re.compile(r"\w+")
CHECKS_FILE, TEST_FILE = "checks.json", "test.csv"


def overlap_key(standardized: str) -> str:
    """What two texts share when one leaks the other: their words in order, whatever the
    case, spacing and punctuation (a review quoted in '...' is the same review). Only
    texts of at least MIN_WORDS words are compared."""
    return " ".join(_WORD.findall(standardized))


def training_keys(prepared: Path) -> np.ndarray:
    """The sorted hashes of the overlap keys of every text prepare-data kept (both the
    training and the validation split: the model saw both)."""
    hashes = [
        text_hashes([overlap_key(t) for t in batch])
        for batch in chunks(training_texts(prepared), BATCH)
    ]
    return np.unique(np.concatenate(hashes)) if hashes else np.empty(0, np.uint64)


def _report(report_dir: str, split: str) -> dict[str, Any]:
    return read_json(
        Path(report_dir) / "report.json",
        ("rows", "classes", "token_length", "token_length_histogram", "dataset_id"),
        f"dataset-metadata-{split}",
    )


def run(
    prepared_dir: str,
    train_report_dir: str,
    test_report_dir: str,
    test_path: str,
    text_column: str,
    label_column: str,
    max_text_chars: int,
    output_dir: str,
    max_test_overlap: float = 0.05,
    drop_test_overlap: bool = False,
) -> dict[str, Any]:
    """Check the test CSV against the prepared training data; write OUTPUT_DIR/test.csv
    (the rows later steps score) and OUTPUT_DIR/checks.json. Outputs `test_overlap` (the
    share of test rows found in the training data) and `test_rows` (those kept)."""
    prepared = Path(prepared_dir)
    vocab = read_json(prepared / "vocab.json", ("vocabulary",), "prepare-data")
    stats = read_json(
        prepared / "stats.json",
        ("file", "rows_read", "empty_texts_dropped", "duplicates_dropped"),
        "prepare-data",
    )
    train_report, test_report = _report(train_report_dir, "train"), _report(test_report_dir, "test")
    train_keys = training_keys(prepared)
    known = known_words(vocab["vocabulary"])

    load = LoadReport(test_path)
    rows = overlapping = tokens = unknown = short = kept = 0
    listed: list[int] = []
    examples: list[dict[str, Any]] = []
    with storage.atomic_dir(output_dir) as out:
        with (out / TEST_FILE).open("w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow([text_column, label_column])
            for chunk in iter_csv(test_path, text_column, label_column, report=load):
                texts = chunk["text"].tolist()
                std = standardize_texts(cut_texts(texts, max_text_chars)[0])
                keys = [overlap_key(s) for s in std]
                long = np.array([len(k.split()) >= MIN_WORDS for k in keys], dtype=bool)
                short += int((~long).sum())
                found = np.isin(text_hashes(keys), train_keys) & long
                for row, text, hit in zip(chunk.index, texts, found.tolist(), strict=True):
                    if hit and len(listed) < LISTED:
                        listed.append(int(row))
                    if hit and len(examples) < EXAMPLES:
                        examples.append({"row": int(row), "text": text[:200]})
                overlapping += int(found.sum())
                rows += len(chunk)
                keep = ~found if drop_test_overlap else np.ones(len(chunk), bool)
                kept += int(keep.sum())
                # The unknown words of the rows later steps score.
                missing, total = unknown_words(
                    (t for t, k in zip(std, keep.tolist(), strict=True) if k), known
                )
                unknown, tokens = unknown + missing, tokens + total
                writer.writerows(
                    (t, label)
                    for t, label, k in zip(texts, chunk["label"], keep.tolist(), strict=True)
                    if k
                )
        if not rows:
            raise InputError(f"{test_path}: no test rows: give a test CSV with rows")
        compared = rows - short
        # Of every row: a share of the few long texts of a mostly short set would be noise
        # (bundled reviews cut to 3 words: 10 of the 73 still of 5 words, 13.7%).
        share = overlapping / rows
        where = f"{test_path}: {overlapping:,} of {rows:,} test rows ({share:.2%})"
        rows_named = ", ".join(map(str, listed)) + (" ..." if overlapping > len(listed) else "")
        if share > max_test_overlap:
            raise InputError(
                f"{where} also occur in the training data {stats['file']} (rows "
                f"{rows_named}; {ROW_NUMBERS}; {short:,} rows of fewer than {MIN_WORDS} words "
                f"not compared), more than --max_test_overlap "
                f"{max_test_overlap:g}: the test figures would measure memory, not the "
                "model. Check how the files were split; --drop_test_overlap true removes "
                "the overlap once it is below the threshold"
            )
        if not kept:
            raise InputError(
                f"{where} occur in the training data, and --drop_test_overlap leaves no "
                "test row: give a test CSV of other texts"
            )
        train, test = Profile.from_report(train_report), Profile.from_report(test_report)
        test_oov = unknown / tokens if tokens else 0.0
        checks = {
            "test_file": test_path,
            "test_rows": rows,
            "overlap": {
                "rows": overlapping,
                "share": share,
                "listed_rows": listed,
                "examples": examples,
                "dropped": overlapping if drop_test_overlap else 0,
                "max_test_overlap": max_test_overlap,
                # Not compared: fewer than MIN_WORDS words.
                "short_texts": short,
                "compared": compared,
                "min_words": MIN_WORDS,
            },
            "test_rows_kept": kept,
            "classes": {
                "train": shares(train.classes),
                "test": shares(test.classes),
            },
            "token_length": {
                "train": train_report["token_length"],
                "test": test_report["token_length"],
            },
            "dropped_by_prepare_data": {
                "empty_texts": stats["empty_texts_dropped"],
                "duplicate_texts": stats["duplicates_dropped"],
                "rows_read": stats["rows_read"],
            },
            "test_oov_rate": test_oov,
            "profiles": {"train": asdict(train), "test": asdict(test)},
            "dataset_ids": {
                "train": int(train_report["dataset_id"]),
                "test": int(test_report["dataset_id"]),
            },
        }
        (out / CHECKS_FILE).write_text(json.dumps(checks, indent=2), encoding="utf-8")
    summary = f"{overlapping:,} of {rows:,} test rows ({share:.2%}) also in the training data"
    if overlapping:
        summary += f" (rows {rows_named})"
        summary += f"; {overlapping:,} dropped" if drop_test_overlap else "; kept"
    print(f"check-data: {summary}; test OOV rate {test_oov:.4f}")
    return {"test_overlap": share, "test_rows": kept}
