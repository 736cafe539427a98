"""prepare-data: training CSV -> the prepared/ folder (ids in shards, vocabulary, labels,
tokens, stats; textcnn.prepared).

The vocabulary is fitted on the training split only, so validation scores measure what a
served model meets: words it has never seen. Texts, vocabulary and ids follow the rules
of `textcnn.tokens`, which the serving model's vectorizer applies in TF ops, so training
and serving tokenise alike (tests/test_tokens.py, tests/test_prepare_data.py) and this
step starts without TensorFlow.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from textcnn import progress, storage
from textcnn.data import check_known_labels, check_trainable, cut_texts, load_csv
from textcnn.errors import InputError
from textcnn.prepared import write_shards
from textcnn.tokens import fit_vocabulary, standardize_texts, to_ids, token_counts

_MAX_LISTED = 10
STAGES = 4  # read, clean, split and vectorise, write: progress N/4


def deduplicate(df: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Drop empty texts and repeats of a standardised text (column `std`).

    A text seen with different labels keeps its most frequent label (the first seen on a
    tie), so the model is not trained on contradictions.
    """
    empty = df["std"] == ""
    kept = df[~empty]
    counts = kept.groupby(["std", "label"], sort=False).size().reset_index(name="n")
    majority = counts.loc[counts.groupby("std", sort=False)["n"].idxmax()]
    unique = kept.drop_duplicates("std").copy()
    unique["label"] = unique["std"].map(majority.set_index("std")["label"])
    return unique, {
        "empty_texts_dropped": int(empty.sum()),
        "empty_text_rows": df.index[empty].tolist()[:_MAX_LISTED],
        "duplicates_dropped": len(kept) - len(unique),
        "conflicting_label_texts": int((counts.groupby("std").size() > 1).sum()),
    }


def split(
    labels: pd.Series, val_data_pct: float, seed: int, uri: str
) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the training and validation rows: stratified, reproducible for a seed."""
    counts = labels.value_counts()
    for name, n in counts.items():
        if n < 2:
            raise InputError(
                f"{uri}: class {name!r} has {n} row after dropping empty and duplicate texts; "
                "a stratified split needs at least 2 rows per class: add rows or remove it"
            )
    n_val = math.ceil(val_data_pct * len(labels))  # how sklearn rounds a fractional test_size
    if min(n_val, len(labels) - n_val) < len(counts):
        raise InputError(
            f"{uri}: --val_data_pct={val_data_pct} leaves {n_val} validation and "
            f"{len(labels) - n_val} training rows for {len(counts)} classes; both need a row "
            "of every class: change --val_data_pct or add rows"
        )
    positions = np.arange(len(labels))
    train, val = train_test_split(
        positions, test_size=val_data_pct, stratify=labels.to_numpy(), random_state=seed
    )
    return train, val


def run(
    train_path: str,
    text_column: str,
    label_column: str,
    val_data_pct: float,
    num_words: int,
    max_length: int,
    length_percentile: float,
    seed: int,
    max_text_chars: int,
    output_dir: str,
    json_tokenizer_path: str | None = None,
    test_path: str | None = None,
) -> dict[str, Any]:
    """Clean, split and vectorise the training CSV into output_dir (see ARCHITECTURE.md).

    With `test_path`, the test CSV is checked first against the training classes, so a
    test set that evaluation would refuse fails here, before anything is trained."""
    progress.report(0, STAGES, f"reading {train_path}")
    df = load_csv(train_path, text_column, label_column)
    if test_path:
        test = load_csv(test_path, text_column, label_column)
        check_known_labels(test, sorted(df["label"].unique()), test_path, label_column)
    loaded = df.attrs["load_report"]
    df["text"], cut = cut_texts(df["text"], max_text_chars)
    if cut:
        print(f"prepare-data: {cut:,} texts longer than --max_text_chars {max_text_chars:,} cut")
    progress.report(1, STAGES, f"cleaning and deduplicating {len(df):,} texts")
    df["std"] = standardize_texts(df["text"])
    df, cleaning = deduplicate(df)
    check_trainable(df, train_path)
    progress.report(2, STAGES, f"splitting {len(df):,} texts; vocabulary and ids")
    train_pos, val_pos = split(df["label"], val_data_pct, seed, train_path)
    train, val = df.iloc[train_pos], df.iloc[val_pos]

    train_lengths = token_counts(train["std"])
    if max_length:
        length, length_from = max_length, "--max_length"
    else:
        length = max(1, math.ceil(np.percentile(train_lengths, length_percentile)))
        length_from = f"p{length_percentile:g} of training token counts"

    vocabulary = fit_vocabulary(train["std"], num_words)
    classes = sorted(df["label"].unique())
    class_id = {name: i for i, name in enumerate(classes)}
    x_train = to_ids(train["std"].tolist(), vocabulary, length)
    x_val = to_ids(val["std"].tolist(), vocabulary, length)
    val_ids = x_val[x_val > 0]

    stats = {
        "file": train_path,
        **{k: loaded[k] for k in ("rows_read", "blank_rows_skipped")},
        "texts_cut": cut,
        "max_text_chars": max_text_chars,
        **cleaning,
        "rows_used": len(df),
        "train_rows": len(train),
        "val_rows": len(val),
        "val_data_pct": val_data_pct,
        "seed": seed,
        "class_counts": {
            "train": {c: int((train["label"] == c).sum()) for c in classes},
            "val": {c: int((val["label"] == c).sum()) for c in classes},
        },
        "max_length": length,
        "max_length_from": length_from,
        "truncated_share": {
            "train": float((train_lengths > length).mean()),
            "val": float((token_counts(val["std"]) > length).mean()),
        },
        "vocab_size": len(vocabulary),
        "num_words": num_words,
        # Unknown words among the validation tokens kept (the first max_length of each text).
        "val_oov_share": float((val_ids == 1).mean()) if val_ids.size else 0.0,
    }
    vocab_json = json.dumps(
        {
            "vocabulary": vocabulary,
            "max_length": length,
            "num_words": num_words,
            "max_text_chars": max_text_chars,
        }
    )
    progress.report(3, STAGES, f"writing {output_dir}")
    with storage.atomic_dir(output_dir) as out:
        write_shards(out, "train", x_train, train["label"].map(class_id).to_numpy())
        write_shards(out, "val", x_val, val["label"].map(class_id).to_numpy())
        (out / "vocab.json").write_text(vocab_json, encoding="utf-8")
        (out / "labels.json").write_text(json.dumps({"classes": classes}), encoding="utf-8")
        # The standardised texts, row for row with the ids: Word2Vec's corpus and the wide
        # n-gram branch's input.
        for name, part in (("train", train), ("val", val)):
            tokens = "".join(t + "\n" for t in part["std"])
            (out / f"{name}_tokens.txt").write_text(tokens, encoding="utf-8")
        (out / "stats.json").write_text(json.dumps(stats, indent=2), encoding="utf-8")
        if json_tokenizer_path:
            storage.write_text(json_tokenizer_path, vocab_json)
    progress.report(STAGES, STAGES, f"{len(train):,} training and {len(val):,} validation rows")
    print(json.dumps(stats))
    return {
        "max_length": length,
        "vocab_size": len(vocabulary),
        "num_classes": len(classes),
        "train_rows": len(train),
        "val_rows": len(val),
    }
