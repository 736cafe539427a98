"""Reading the prepared/ folder that prepare-data writes, checked against the model spec.

`train.npz` and `val.npz` hold the token ids `x` and class ids `y`; `train_tokens.txt` and
`val_tokens.txt` the standardised texts, one per line, row for row with the ids (the wide
n-gram branch's input and Word2Vec's corpus). Every reader names the file and the step to
rerun when something does not fit.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from textcnn.errors import InputError
from textcnn.model import ModelConfig, read_json
from textcnn.rules import OOV, PAD


def _array(path: Path, name: str) -> np.ndarray:
    try:
        with np.load(path) as data:
            return data[name]
    except FileNotFoundError:
        raise InputError(f"{path}: not found; run the prepare-data step first") from None
    except KeyError as e:
        raise InputError(f"{path}: no array {e}; rerun the prepare-data step") from None


def load_labels(prepared_dir: str | Path, split: str, config: ModelConfig) -> np.ndarray:
    """The class ids of `split` (train or val), without reading its token ids."""
    path = Path(prepared_dir) / f"{split}.npz"
    y = _array(path, "y")
    if y.ndim != 1 or not len(y) or y.min() < 0 or y.max() >= config.num_classes:
        raise InputError(
            f"{path}: class ids {y.shape} outside the model spec's num_classes="
            f"{config.num_classes}; rerun prepare-data and model-metadata together"
        )
    return y.astype("int32")


def load_split(
    prepared_dir: str | Path, split: str, config: ModelConfig
) -> tuple[np.ndarray, np.ndarray]:
    """(token ids [n, max_length], class ids [n]) of `split`."""
    path = Path(prepared_dir) / f"{split}.npz"
    x, y = _array(path, "x"), load_labels(prepared_dir, split, config)
    if x.ndim != 2 or x.shape[1] != config.max_length or len(x) != len(y):
        raise InputError(
            f"{path}: x {x.shape} and y {y.shape} do not fit the model spec (expected "
            f"[n > 0, {config.max_length}] and [n]); rerun prepare-data and model-metadata "
            "together"
        )
    if x.min() < 0 or x.max() >= config.vocab_size:
        raise InputError(
            f"{path}: token ids outside the model spec's vocab_size={config.vocab_size}; "
            "rerun prepare-data and model-metadata together"
        )
    return x.astype("int32"), y


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
    vocab = read_json(path, ("vocabulary", "max_text_chars"), "prepare-data")
    vocabulary = vocab["vocabulary"]
    if len(vocabulary) != config.vocab_size or vocabulary[:2] != [PAD, OOV]:
        raise InputError(
            f"{path}: {len(vocabulary)} words starting {vocabulary[:2]}, but the model "
            f"spec has vocab_size={config.vocab_size} and ids 0, 1 are {[PAD, OOV]}; rerun "
            "prepare-data and model-metadata together"
        )
    return vocab
