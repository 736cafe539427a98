"""Reading the prepared/ folder that prepare-data writes, checked against the model spec.

Each split is a series of shard files, `train-00000.bin`, ... and `val-00000.bin`, ...,
each holding at most SHARD_ROWS rows, in row order, as fixed-length int32 records (a row's
token ids, then its class id);
`train_tokens.txt` and `val_tokens.txt` hold the standardised texts, one per line, row for
row with the ids (the wide n-gram branch's input and Word2Vec's corpus). Readers hold one
shard at a time, and name the file and the step to rerun when something does not fit.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from textcnn.errors import InputError
from textcnn.model import ModelConfig, read_json
from textcnn.rules import OOV, PAD

# Rows per shard file: a reader holds one shard at a time, so this bounds its memory.
SHARD_ROWS = 65_536
RECORD = np.dtype("<i4")  # each row: max_length token ids, then the class id


def shard_bounds(rows: int) -> np.ndarray:
    """Where each shard of a split of `rows` starts, and the end: as few shards of at most
    SHARD_ROWS rows as can be, as even as can be."""
    count = max(1, -(-rows // SHARD_ROWS))
    return np.linspace(0, rows, count + 1).astype(np.int64)


def write_shard(folder: Path, split: str, index: int, x: np.ndarray, y: np.ndarray) -> None:
    """`split`-`index`.bin: fixed-length records of little-endian int32, each a row's
    `max_length` ids (`x` [n, max_length]) and its class id (`y` [n]), in order.
    TensorFlow reads them as they are (FixedLengthRecordDataset), and so does numpy."""
    records = np.concatenate([x, np.asarray(y)[:, None]], axis=1).astype(RECORD)
    records.tofile(folder / f"{split}-{index:05d}.bin")


def write_shards(folder: Path, split: str, x: np.ndarray, y: np.ndarray) -> int:
    """The whole split `x`, `y` as shards (`shard_bounds`); returns how many."""
    bounds = shard_bounds(len(x))
    for i, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        write_shard(folder, split, i, x[start:stop], np.asarray(y)[start:stop])
    return len(bounds) - 1


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


def checked_shards(
    prepared_dir: str | Path, split: str, config: ModelConfig
) -> Iterator[tuple[Path, np.ndarray, np.ndarray]]:
    """Each shard of `split` as (path, ids, class ids), in row order, one at a time, once
    its ids and class ids are checked against the model spec."""
    for path in shard_files(prepared_dir, split):
        x, y = read_shard(path, config.max_length)
        if len(x) and (x.min() < 0 or x.max() >= config.vocab_size):
            raise InputError(
                f"{path}: token ids outside the model spec's vocab_size={config.vocab_size}; "
                "rerun prepare-data and model-metadata together"
            )
        if len(y) and (y.min() < 0 or y.max() >= config.num_classes):
            raise InputError(
                f"{path}: class ids outside the model spec's num_classes="
                f"{config.num_classes}; rerun prepare-data and model-metadata together"
            )
        yield path, x, y


@dataclass(frozen=True)
class Split:
    """A split's shard files, in row order, and its rows."""

    files: tuple[Path, ...]
    rows: int


def check_split(prepared_dir: str | Path, split: str, config: ModelConfig) -> Split:
    """The shard files of `split` and their rows, every shard checked (a trainer fails on
    a bad shard before it trains)."""
    files, rows = [], 0
    for path, _, y in checked_shards(prepared_dir, split, config):
        files.append(path)
        rows += len(y)
    if not rows:
        raise InputError(f"{files[0]}: the {split} split has no rows; rerun prepare-data")
    return Split(tuple(files), rows)


def load_labels(prepared_dir: str | Path, split: str, config: ModelConfig) -> np.ndarray:
    """The class ids of `split`, in row order."""
    return np.concatenate(
        [y.astype(np.int32) for _, _, y in checked_shards(prepared_dir, split, config)]
    )


def load_split(
    prepared_dir: str | Path, split: str, config: ModelConfig
) -> tuple[np.ndarray, np.ndarray]:
    """(token ids [n, max_length], class ids [n]) of `split`, whole: for what is small
    (a benchmark, a test); trainers stream the shards."""
    shards = list(checked_shards(prepared_dir, split, config))
    return (
        np.concatenate([x.astype(np.int32) for _, x, _ in shards]),
        np.concatenate([y.astype(np.int32) for _, _, y in shards]),
    )


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


def training_texts(prepared_dir: str | Path) -> Iterator[str]:
    """The standardised texts of both splits (all the model learned from), streamed, each
    split's count checked against stats.json."""
    stats = read_json(Path(prepared_dir) / "stats.json", ("train_rows", "val_rows"), "prepare-data")
    for split in ("train", "val"):
        yield from iter_texts(prepared_dir, split, stats[f"{split}_rows"])


def chunks(items: Iterable[str], size: int) -> Iterator[list[str]]:
    """`items` in lists of `size` (the last one shorter)."""
    it = iter(items)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


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
