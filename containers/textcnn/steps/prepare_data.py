"""prepare-data: training CSV -> the prepared/ folder (ids in shards, vocabulary, labels,
tokens, stats; textcnn.prepared).

The vocabulary is fitted on the training split only, so validation scores measure what a
served model meets: words it has never seen. Texts, vocabulary and ids follow the rules
of `textcnn.tokens`, which the serving model's vectorizer applies in TF ops, so training
and serving tokenise alike (tests/test_tokens.py, tests/test_prepare_data.py) and this
step starts without TensorFlow.

It streams, so its memory does not hold the texts: the CSV is read in chunks and the
standardised texts go to a scratch file (TMPDIR); each row keeps a 64-bit hash of its
text, its class and its place (about 30 bytes); then each shard is gathered in a scratch
file of its own and put in order there. The rows land where an in-memory split would put
them: in the order of the seeded stratified split, which shuffles them, so a shard holds
all classes however the CSV is sorted.
"""

from __future__ import annotations

import contextlib
import json
import math
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from textcnn import progress, storage
from textcnn.data import (
    LoadReport,
    check_trainable,
    cut_texts,
    iter_csv,
    text_hashes,
)
from textcnn.errors import InputError
from textcnn.prepared import shard_bounds, write_shard
from textcnn.tokens import standardize_texts, to_ids, vocabulary_of

_MAX_LISTED = 10
STAGES = 4  # read, split, gather, write: progress N/4
# Distinct training tokens counted: beyond twice this, the rarest are dropped, which
# bounds the memory on any corpus. Below that the vocabulary is exact (as Keras adapts
# it); above it, a token dropped and seen again restarts from 0, which can only swap
# tokens near the `num_words` cut.
TRACKED_TOKENS = 1_000_000


@dataclass
class Scan:
    """What the first pass over the training CSV keeps of each text with tokens, in file
    order (their standardised texts are in the scratch file, one a line)."""

    load: LoadReport
    hashes: np.ndarray  # uint64, of the standardised text
    labels: np.ndarray  # int32, an index into `names`
    names: list[str] = field(default_factory=list)
    empty: int = 0
    empty_rows: list[int] = field(default_factory=list)
    cut: int = 0


def scan(
    train_path: str, text_column: str, label_column: str, max_text_chars: int, texts: Path
) -> Scan:
    """Read the CSV a chunk at a time; write the standardised texts with tokens to `texts`."""
    load = LoadReport(train_path)
    codes: dict[str, int] = {}
    hashes, labels = [], []
    found = Scan(load, np.empty(0, np.uint64), np.empty(0, np.int32))
    with texts.open("w", encoding="utf-8", newline="\n") as out:
        for chunk in iter_csv(train_path, text_column, label_column, report=load):
            cut, longer = cut_texts(chunk["text"], max_text_chars)
            found.cut += longer
            std = standardize_texts(cut)
            empty = np.array([not t for t in std], dtype=bool)
            found.empty += int(empty.sum())
            found.empty_rows += chunk.index[empty][: _MAX_LISTED - len(found.empty_rows)].tolist()
            kept = [t for t in std if t]
            out.writelines(t + "\n" for t in kept)
            hashes.append(text_hashes(kept))
            names = chunk["label"].to_numpy()[~empty]
            labels.append(np.array([codes.setdefault(n, len(codes)) for n in names], np.int32))
    found.hashes, found.labels = np.concatenate(hashes), np.concatenate(labels)
    found.names = list(codes)
    return found


def deduplicate(hashes: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """The positions of the first of each text (by its hash), in file order, the label
    each keeps, and how many texts had conflicting labels.

    A text seen with different labels keeps its most frequent label (the first seen on a
    tie), so the model is not trained on contradictions. Two different texts share a
    64-bit hash with a chance of about n²/2⁶⁵ (3e-8 for a million rows).
    """
    _, first, text = np.unique(hashes, return_index=True, return_inverse=True)
    # Each (text, label) pair: where it first occurs and how often.
    _, pair_first, pair_count = np.unique(
        text.astype(np.int64) * (int(labels.max(initial=0)) + 1) + labels,
        return_index=True,
        return_counts=True,
    )
    pair_text = text[pair_first]
    best = np.lexsort((pair_first, -pair_count, pair_text))  # per text: most, then earliest
    starts = np.ones(len(best), dtype=bool)
    starts[1:] = pair_text[best][1:] != pair_text[best][:-1]
    chosen = best[starts]
    kept_label = np.empty(len(first), dtype=labels.dtype)
    kept_label[pair_text[chosen]] = labels[pair_first[chosen]]
    conflicting = int((np.bincount(pair_text, minlength=len(first)) > 1).sum())
    in_file_order = np.argsort(first, kind="stable")
    return first[in_file_order], kept_label[in_file_order], conflicting


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


@dataclass(frozen=True)
class Layout:
    """Where each scanned text goes: its place in train then val (-1: dropped), and the
    shard that holds it, numbered over train's shards and then val's."""

    place: np.ndarray
    shard: np.ndarray
    shards: dict[str, range]  # the numbers of each split's shards


def layout(texts: int, placed: np.ndarray, train_rows: int) -> Layout:
    """The layout of `texts` scanned texts, of which `placed` (positions among them) are
    kept, in place order: the first `train_rows` are the training split, the rest val."""
    place = np.full(texts, -1, dtype=np.int64)
    place[placed] = np.arange(len(placed))
    shard = np.full(texts, -1, dtype=np.int64)
    shards, start, number = {}, 0, 0
    for name, rows in (("train", train_rows), ("val", len(placed) - train_rows)):
        bounds = shard_bounds(rows)
        inside = (place >= start) & (place < start + rows)
        shard[inside] = number + np.searchsorted(bounds, place[inside] - start, side="right") - 1
        shards[name] = range(number, number + len(bounds) - 1)
        start, number = start + rows, shards[name].stop
    return Layout(place, shard, shards)


def _gather(texts: Path, at: Layout, scratch: Path) -> tuple[Counter[str], dict[str, np.ndarray]]:
    """Copy each text to its shard's scratch file; return the training texts' token counts
    and each split's texts' lengths in tokens."""
    counts: Counter[str] = Counter()
    lengths: dict[str, list[int]] = {"train": [], "val": []}
    with contextlib.ExitStack() as files:
        outs = [
            files.enter_context((scratch / f"{b}.txt").open("w", encoding="utf-8", newline="\n"))
            for b in range(int(at.shard.max()) + 1)
        ]
        lines = files.enter_context(texts.open(encoding="utf-8", newline="\n"))
        for line, b in zip(lines, at.shard.tolist(), strict=True):
            if b < 0:
                continue
            outs[b].write(line)
            tokens = line.split()
            if b not in at.shards["train"]:
                lengths["val"].append(len(tokens))
                continue
            lengths["train"].append(len(tokens))
            counts.update(tokens)
            if len(counts) > 2 * TRACKED_TOKENS:
                counts = Counter(dict(counts.most_common(TRACKED_TOKENS)))
    return counts, {name: np.array(n, dtype=np.int64) for name, n in lengths.items()}


def _write_split(
    out: Path,
    scratch: Path,
    name: str,
    at: Layout,
    labels: np.ndarray,
    vocabulary: list[str],
    length: int,
) -> dict[str, int]:
    """Shards and tokens file of split `name`, each shard put in order from its scratch
    file (`labels`: the class id at each place); counts of its kept token ids and of the
    unknown ones among them."""
    counts = {"ids": 0, "unknown": 0}
    with (out / f"{name}_tokens.txt").open("w", encoding="utf-8", newline="\n") as tokens:
        for i, b in enumerate(at.shards[name]):
            path = scratch / f"{b}.txt"
            places = at.place[at.shard == b]  # in file order, as the lines
            lines = path.read_text(encoding="utf-8").split("\n")[:-1]
            in_order = np.argsort(places, kind="stable")
            texts = [lines[j] for j in in_order]
            x = to_ids(texts, vocabulary, length)
            write_shard(out, name, i, x, labels[places[in_order]])
            tokens.writelines(t + "\n" for t in texts)
            path.unlink()
            counts["ids"] += int((x > 0).sum())
            counts["unknown"] += int((x == 1).sum())
    return counts


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
) -> dict[str, Any]:
    """Clean, split and vectorise the training CSV into output_dir (see ARCHITECTURE.md).
    The test CSV's labels are checked against these classes by dataset-metadata."""
    with tempfile.TemporaryDirectory(prefix="prepare-data-") as tmp:
        scratch = Path(tmp)
        progress.report(0, STAGES, f"reading {train_path}")
        found = scan(train_path, text_column, label_column, max_text_chars, scratch / "std.txt")
        if found.cut:
            print(
                f"prepare-data: {found.cut:,} texts longer than --max_text_chars "
                f"{max_text_chars:,} cut"
            )
        first, kept_codes, conflicting = deduplicate(found.hashes, found.labels)
        classes = sorted({found.names[c] for c in np.unique(kept_codes)})
        class_id = np.array([classes.index(n) if n in classes else -1 for n in found.names], int)
        y_kept = class_id[kept_codes]
        names = pd.Series(np.asarray(classes, dtype=object)[y_kept])
        check_trainable(names, train_path)

        progress.report(1, STAGES, f"splitting {len(first):,} texts")
        train_pos, val_pos = split(names, val_data_pct, seed, train_path)
        n_train, n_val = len(train_pos), len(val_pos)
        order = np.concatenate([train_pos, val_pos])  # the kept text at each place
        labels = y_kept[order]
        at = layout(len(found.hashes), first[order], n_train)

        progress.report(2, STAGES, f"gathering {n_train:,} training and {n_val:,} validation texts")
        counts, lengths = _gather(scratch / "std.txt", at, scratch)
        if max_length:
            length, length_from = max_length, "--max_length"
        else:
            length = max(1, math.ceil(np.percentile(lengths["train"], length_percentile)))
            length_from = f"p{length_percentile:g} of training token counts"
        vocabulary = vocabulary_of(counts, num_words)
        del counts

        progress.report(3, STAGES, f"writing {output_dir}")
        vocab_json = json.dumps(
            {
                "vocabulary": vocabulary,
                "max_length": length,
                "num_words": num_words,
                "max_text_chars": max_text_chars,
            }
        )
        with storage.atomic_dir(output_dir) as out:
            written = {
                name: _write_split(out, scratch, name, at, labels, vocabulary, length)
                for name in ("train", "val")
            }
            per_class = {
                name: np.bincount(part, minlength=len(classes)).tolist()
                for name, part in (("train", labels[:n_train]), ("val", labels[n_train:]))
            }
            stats = {
                "file": train_path,
                "rows_read": found.load.rows_read,
                "blank_rows_skipped": found.load.blank_rows_skipped,
                "texts_cut": found.cut,
                "max_text_chars": max_text_chars,
                "empty_texts_dropped": found.empty,
                "empty_text_rows": found.empty_rows,
                "duplicates_dropped": len(found.hashes) - len(first),
                "conflicting_label_texts": conflicting,
                "rows_used": len(first),
                "train_rows": n_train,
                "val_rows": n_val,
                "val_data_pct": val_data_pct,
                "seed": seed,
                "class_counts": {
                    name: dict(zip(classes, n, strict=True)) for name, n in per_class.items()
                },
                "max_length": length,
                "max_length_from": length_from,
                "truncated_share": {
                    name: float((n > length).mean()) for name, n in lengths.items()
                },
                "vocab_size": len(vocabulary),
                "num_words": num_words,
                # Unknown words among the validation tokens kept (a text's first max_length).
                "val_oov_share": (
                    written["val"]["unknown"] / written["val"]["ids"]
                    if written["val"]["ids"]
                    else 0.0
                ),
            }
            (out / "vocab.json").write_text(vocab_json, encoding="utf-8")
            (out / "labels.json").write_text(json.dumps({"classes": classes}), encoding="utf-8")
            (out / "stats.json").write_text(json.dumps(stats, indent=2), encoding="utf-8")
            if json_tokenizer_path:
                storage.write_text(json_tokenizer_path, vocab_json)
    progress.report(STAGES, STAGES, f"{n_train:,} training and {n_val:,} validation rows")
    print(json.dumps(stats))
    return {
        "max_length": length,
        "vocab_size": len(vocabulary),
        "num_classes": len(classes),
        "train_rows": n_train,
        "val_rows": n_val,
    }
