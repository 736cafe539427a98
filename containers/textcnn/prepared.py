"""Reading the prepared/ folder that prepare-data writes, checked against the model spec.

Each split is a series of shard files, `train-00000.bin`, ... and `val-00000.bin`, ...,
each holding at most SHARD_ROWS rows, in row order, as fixed-length int32 records (a row's
token ids, then its class id);
`train_tokens.txt` and `val_tokens.txt` hold the standardised texts, one per line, row for
row with the ids (the wide n-gram branch's input and Word2Vec's corpus). Readers hold one
shard at a time, and name the file and the step to rerun when something does not fit.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from textcnn.errors import InputError
from textcnn.model import ModelConfig, read_json
from textcnn.rules import OOV, PAD

# Rows per shard file: a reader holds one shard at a time, so this bounds its memory.
SHARD_ROWS = 65_536
RECORD = np.dtype("<i4")  # each row: max_length token ids, then the class id


def write_shards(folder: Path, split: str, x: np.ndarray, y: np.ndarray) -> int:
    """`split`-00000.bin, ...: fixed-length records of little-endian int32, each a row's
    `max_length` ids (`x` [n, max_length]) and its class id (`y` [n]), at most SHARD_ROWS
    rows a shard, in order. TensorFlow reads them as they are (FixedLengthRecordDataset),
    and so does numpy. Returns how many shards were written."""
    records = np.concatenate([x, np.asarray(y)[:, None]], axis=1).astype(RECORD)
    count = max(1, -(-len(records) // SHARD_ROWS))
    bounds = np.linspace(0, len(records), count + 1).astype(int)
    for i, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        records[start:stop].tofile(folder / f"{split}-{i:05d}.bin")
    return count


def shard_files(prepared_dir: str | Path, split: str) -> list[Path]:
    """The shard files of `split` (train or val), in row order."""
    files = sorted(Path(prepared_dir).glob(f"{split}-[0-9][0-9][0-9][0-9][0-9].bin"))
    if not files:
        raise InputError(
            f"{Path(prepared_dir) / split}-*.bin: not found; run the prepare-data step first"
        )
    return files


def read_shard(path: Path, max_length: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids [n, max_length], class ids [n]) of one shard."""
    try:
        records = np.fromfile(path, dtype=RECORD)
    except FileNotFoundError:
        raise InputError(f"{path}: not found; run the prepare-data step first") from None
    if records.size % (max_length + 1):
        raise InputError(
            f"{path}: {records.size} int32 values are no whole number of rows of "
            f"max_length={max_length} ids and a class id; rerun prepare-data and "
            "model-metadata together"
        )
    records = records.reshape(-1, max_length + 1)
    return records[:, :max_length], records[:, max_length]


def _checked(path: Path, x: np.ndarray, y: np.ndarray, config: ModelConfig) -> None:
    if len(x) and (x.min() < 0 or x.max() >= config.vocab_size):
        raise InputError(
            f"{path}: token ids outside the model spec's vocab_size={config.vocab_size}; "
            "rerun prepare-data and model-metadata together"
        )
    if len(y) and (y.min() < 0 or y.max() >= config.num_classes):
        raise InputError(
            f"{path}: class ids outside the model spec's num_classes={config.num_classes}; "
            "rerun prepare-data and model-metadata together"
        )


def check_split(
    prepared_dir: str | Path, split: str, config: ModelConfig
) -> tuple[list[Path], int]:
    """The shard files of `split` and their rows, each shard checked against the model
    spec, one at a time (a trainer fails on a bad shard before it trains)."""
    files, rows = shard_files(prepared_dir, split), 0
    for path in files:
        x, y = read_shard(path, config.max_length)
        _checked(path, x, y, config)
        rows += len(y)
    if not rows:
        raise InputError(f"{files[0]}: the {split} split has no rows; rerun prepare-data")
    return files, rows


def load_labels(prepared_dir: str | Path, split: str, config: ModelConfig) -> np.ndarray:
    """The class ids of `split`, in row order (checked, shard by shard)."""
    parts = []
    for path in shard_files(prepared_dir, split):
        x, y = read_shard(path, config.max_length)
        _checked(path, x, y, config)
        parts.append(y.astype(np.int32))
    return np.concatenate(parts)


def load_split(
    prepared_dir: str | Path, split: str, config: ModelConfig
) -> tuple[np.ndarray, np.ndarray]:
    """(token ids [n, max_length], class ids [n]) of `split`, whole: for what is small
    (a benchmark, a test); trainers stream the shards."""
    xs, ys = [], []
    for path in shard_files(prepared_dir, split):
        x, y = read_shard(path, config.max_length)
        _checked(path, x, y, config)
        xs.append(x.astype(np.int32))
        ys.append(y.astype(np.int32))
    return np.concatenate(xs), np.concatenate(ys)


def iter_texts(prepared_dir: str | Path, split: str, rows: int) -> Iterator[str]:
    """The standardised texts of `split`, streamed from its file, which must hold `rows`."""
    path = Path(prepared_dir) / f"{split}_tokens.txt"
    try:
        f = path.open(encoding="utf-8", newline="\n")
    except FileNotFoundError:
        raise InputError(f"{path}: not found; rerun the prepare-data step") from None
    count = 0
    with f:
        for count, line in enumerate(f, start=1):  # noqa: B007 (counted after the loop)
            yield line.removesuffix("\n")
    if count != rows:
        raise InputError(
            f"{path}: {count} texts for {rows} rows of ids; rerun the prepare-data step"
        )


def check_vocabulary(prepared_dir: str, config: ModelConfig) -> dict[str, Any]:
    """prepared/vocab.json, if it fits the model spec (ids 0 and 1 padding and [UNK])."""
    path = Path(prepared_dir) / "vocab.json"
    vocab = read_json(path, ("vocabulary", "max_length", "max_text_chars"), "prepare-data")
    vocabulary = vocab["vocabulary"]
    if vocab["max_length"] != config.max_length:
        raise InputError(
            f"{path}: the ids are {vocab['max_length']} long, but the model spec has "
            f"max_length={config.max_length}; rerun prepare-data and model-metadata together"
        )
    if len(vocabulary) != config.vocab_size or vocabulary[:2] != [PAD, OOV]:
        raise InputError(
            f"{path}: {len(vocabulary)} words starting {vocabulary[:2]}, but the model "
            f"spec has vocab_size={config.vocab_size} and ids 0, 1 are {[PAD, OOV]}; rerun "
            "prepare-data and model-metadata together"
        )
    return vocab
