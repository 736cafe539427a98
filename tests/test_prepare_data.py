"""prepare-data: cleaning, stratified split, training-only vocabulary, serving parity, files."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from textcnn import data, prepared, storage
from textcnn.errors import InputError
from textcnn.prepared import read_shard, shard_files
from textcnn.rules import OOV, PAD
from textcnn.steps import prepare_data as prepare
from textcnn.text import make_vectorizer
from textcnn.tokens import standardize_texts

FILES = {
    "train-00000.bin",
    "val-00000.bin",
    "vocab.json",
    "labels.json",
    "train_tokens.txt",
    "val_tokens.txt",
    "stats.json",
}


def _prepare(csv_path: Path, out: Path, **overrides: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "train_path": str(csv_path),
        "text_column": "text",
        "label_column": "label",
        "val_data_pct": 0.2,
        "num_words": 1000,
        "max_length": 0,
        "length_percentile": 95.0,
        "seed": 7,
        "max_text_chars": 10_000,
        "output_dir": str(out),
    }
    return prepare.run(**{**kwargs, **overrides})


def _prepare_and_read(csv_path: Path, out: Path, **overrides: Any) -> dict[str, Any]:
    _prepare(csv_path, out, **overrides)
    return _read(out)


def _split(out: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """A split's ids and class ids, its shards joined in order."""
    length = json.loads((out / "vocab.json").read_text())["max_length"]
    parts = [read_shard(path, length) for path in shard_files(out, split)]
    return np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts])


def _read(out: Path) -> dict[str, Any]:
    (x_train, y_train), (x_val, y_val) = _split(out, "train"), _split(out, "val")
    return {
        "x_train": x_train,
        "y_train": y_train,
        "x_val": x_val,
        "y_val": y_val,
        "vocab": json.loads((out / "vocab.json").read_text()),
        "classes": json.loads((out / "labels.json").read_text())["classes"],
        "tokens": (out / "train_tokens.txt").read_text().splitlines(),
        "stats": json.loads((out / "stats.json").read_text()),
    }


def _rows(path: Path) -> list[tuple[str, str]]:
    with path.open(newline="") as f:
        return [(r["text"], r["label"]) for r in csv.DictReader(f)]


def test_writes_the_prepared_folder(make_csv: Callable[..., Path], tmp_path: Path) -> None:
    out = tmp_path / "prepared"
    result = _prepare(make_csv(rows=300, classes=3), out)
    assert set(os.listdir(out)) == FILES
    assert sorted(os.listdir(tmp_path)) == ["data.csv", "prepared"]  # no temporary sibling left
    p = _read(out)
    n, m, length = result["train_rows"], result["val_rows"], result["max_length"]
    assert (n, m) == (240, 60)
    assert p["x_train"].dtype == np.int32 and p["x_train"].shape == (n, length)
    assert p["x_val"].dtype == np.int32 and p["x_val"].shape == (m, length)
    assert p["y_train"].dtype == np.int32 and p["y_val"].shape == (m,)
    assert p["vocab"]["vocabulary"][:2] == [PAD, OOV]
    assert p["vocab"]["max_length"] == length and p["vocab"]["num_words"] == 1000
    assert result["vocab_size"] == len(p["vocab"]["vocabulary"])
    assert p["classes"] == ["negative", "neutral", "positive"] and result["num_classes"] == 3
    assert len(p["tokens"]) == n and all(t == " ".join(t.split()) for t in p["tokens"])
    assert p["stats"]["train_rows"] == n and p["stats"]["rows_read"] == 300


def test_split_is_stratified_and_reproducible(
    make_csv: Callable[..., Path], tmp_path: Path
) -> None:
    rows = _rows(make_csv(rows=300, classes=2))
    unbalanced = [r for r in rows if r[1] == "negative"] + [r for r in rows if r[1] != "negative"]
    path = tmp_path / "unbalanced.csv"
    pd.DataFrame(unbalanced[:200], columns=["text", "label"]).to_csv(path, index=False)
    a = _prepare_and_read(path, tmp_path / "a")
    b = _prepare_and_read(path, tmp_path / "b")
    c = _prepare_and_read(path, tmp_path / "c", seed=8)
    val = Counter(np.array(a["classes"])[a["y_val"]].tolist())
    assert val == {"negative": 30, "positive": 10}  # 20% of each of 150 and 50
    assert a["stats"]["class_counts"]["val"] == val
    for key in ("x_train", "y_train", "x_val", "y_val"):
        np.testing.assert_array_equal(a[key], b[key])
    assert a["tokens"] == b["tokens"] and a["vocab"] == b["vocab"]
    assert set(a["tokens"]) != set(c["tokens"])  # another seed, another split


def test_vocabulary_comes_from_training_split_only(
    make_csv: Callable[..., Path], tmp_path: Path
) -> None:
    # Every row gets a word of its own, so each validation row has a word training never saw.
    rows = [(f"{text} uniq{i}", label) for i, (text, label) in enumerate(_rows(make_csv()))]
    path = tmp_path / "tagged.csv"
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(path, index=False)
    p = _prepare_and_read(path, tmp_path / "out", max_length=50)
    vocab = set(p["vocab"]["vocabulary"])
    train_tags = {w for t in p["tokens"] for w in t.split() if w.startswith("uniq")}
    val_tags = {f"uniq{i}" for i in range(len(rows))} - train_tags
    assert len(train_tags) == len(p["tokens"]) and len(val_tags) == len(p["y_val"])
    assert train_tags <= vocab
    assert not val_tags & vocab
    assert (p["x_val"] == 1).any(axis=1).all()  # each validation row has an OOV id
    assert not (p["x_train"] == 1).any()
    assert p["stats"]["val_oov_share"] > 0


def test_serving_vectorizer_reproduces_saved_ids(
    make_csv: Callable[..., Path], tmp_path: Path
) -> None:
    path = make_csv(rows=200, classes=3)
    p = _prepare_and_read(path, tmp_path / "out")
    raw = _rows(path)
    by_std = dict(zip(standardize_texts([t for t, _ in raw]), raw, strict=True))
    # What the serving model does: raw text through make_vectorizer(vocabulary=...).
    served = make_vectorizer(p["vocab"]["max_length"], vocabulary=p["vocab"]["vocabulary"])
    train = [by_std[t] for t in p["tokens"]]
    np.testing.assert_array_equal(served(np.array([t for t, _ in train])).numpy(), p["x_train"])
    assert [p["classes"][i] for i in p["y_train"]] == [label for _, label in train]
    in_train = set(p["tokens"])
    val = [r for s, r in by_std.items() if s not in in_train]
    val_ids = served(np.array([t for t, _ in val])).numpy()
    assert sorted(map(tuple, val_ids.tolist())) == sorted(map(tuple, p["x_val"].tolist()))


def test_serving_parity_on_real_review_text(tmp_path: Path) -> None:
    """prepare-data standardises once and vectorises the clean text; the served model runs
    the same standardisation on raw text in its graph. Real snippets (punctuation, clitics,
    accents, HTML remnants) must give identical ids both ways."""
    real = Path(__file__).resolve().parents[1] / "data" / "rt" / "train.csv"
    path = tmp_path / "real.csv"
    pd.read_csv(real).head(1500).to_csv(path, index=False)
    p = _prepare_and_read(path, tmp_path / "out")
    raw = {
        s: t
        for t, s in zip(
            (t for t, _ in _rows(path)), standardize_texts([t for t, _ in _rows(path)]), strict=True
        )
    }
    served = make_vectorizer(p["vocab"]["max_length"], vocabulary=p["vocab"]["vocabulary"])
    ids = served(np.array([raw[t] for t in p["tokens"]])).numpy()
    np.testing.assert_array_equal(ids, p["x_train"])


def test_max_length_from_option_or_percentile(
    make_csv: Callable[..., Path], tmp_path: Path
) -> None:
    path = make_csv(rows=200)
    fixed = _prepare(path, tmp_path / "fixed", max_length=5)
    assert fixed["max_length"] == 5 and _read(tmp_path / "fixed")["x_train"].shape[1] == 5
    stats = _read(tmp_path / "fixed")["stats"]
    assert stats["truncated_share"]["train"] > 0.5  # most synthetic texts exceed 5 tokens

    picked = _prepare(path, tmp_path / "p50", length_percentile=50.0)
    counts = [len(t.split()) for t in _read(tmp_path / "p50")["tokens"]]
    assert picked["max_length"] == math.ceil(np.percentile(counts, 50))


def test_empties_and_duplicates_dropped_and_counted(
    make_csv: Callable[..., Path], tmp_path: Path
) -> None:
    extra = [
        ("", "positive"),
        ("  <br /> -- ", "negative"),  # empty once standardised
        ("Great FUN film.", "positive"),
        ("great fun film", "positive"),  # same standardised
        ("Dull, dull film!", "negative"),
        ("dull , dull film !", "positive"),
        ("DULL, DULL FILM!", "negative"),  # conflict: negative wins
    ]
    path = make_csv(rows=120, classes=2, extra=extra)
    result = _prepare(path, tmp_path / "out")
    stats = _read(tmp_path / "out")["stats"]
    assert stats["empty_texts_dropped"] == 2 and stats["empty_text_rows"] == [122, 123]
    assert stats["duplicates_dropped"] == 3 and stats["conflicting_label_texts"] == 1
    assert stats["rows_used"] == result["train_rows"] + result["val_rows"] == 120 + 2


def test_long_texts_are_cut_to_max_text_chars_and_counted(
    make_csv: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Issue 29, finding 4: one row of "great " * 870000 (5 MB). Before, its whole text
    # reached train_tokens.txt, and the n-gram branch took 9x the memory of the rest.
    path = make_csv(rows=60, extra=[("great " * 870_000, "positive"), ("é" * 150, "negative")])
    out = _prepare_and_read(path, tmp_path / "out", max_text_chars=100)
    assert out["stats"]["texts_cut"] == 2 and out["stats"]["max_text_chars"] == 100
    assert out["vocab"]["max_text_chars"] == 100
    lines = (tmp_path / "out" / "train_tokens.txt").read_text().splitlines()
    lines += (tmp_path / "out" / "val_tokens.txt").read_text().splitlines()
    assert max(len(line) for line in lines) <= 100
    assert "é" * 100 in lines  # characters, not bytes
    assert "2 texts longer than --max_text_chars 100 cut" in capsys.readouterr().out


def test_deduplicate_keeps_majority_label_and_first_text() -> None:
    std = ["b", "a", "b", "b !", "c", "b", "c"]
    labels = np.array([0, 1, 2, 0, 1, 2, 3], dtype=np.int32)  # neg, x, pos, neg, x, pos, y
    hashes = pd.util.hash_pandas_object(pd.Series(std), index=False).to_numpy()
    first, kept, conflicting = prepare.deduplicate(hashes, labels)
    assert first.tolist() == [0, 1, 3, 4]  # the first occurrence of each, in file order
    # "b": neg, pos, pos -> pos (the majority, not the first seen); "c": a tie -> first seen.
    assert kept.tolist() == [2, 1, 0, 1]
    assert conflicting == 2


def test_the_prepared_rows_do_not_depend_on_chunks(
    make_csv: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Streamed in chunks of 7 rows and shards of 50, the output is the same as in one
    piece: the same rows in the same shuffled order, the same vocabulary and stats."""
    path = make_csv(rows=300, classes=3, extra=[("Same, text.", "negative")] * 3)
    whole = _prepare_and_read(path, tmp_path / "whole")
    monkeypatch.setattr(data, "CHUNK_ROWS", 7)
    monkeypatch.setattr(prepared, "SHARD_ROWS", 50)
    chunked = _prepare_and_read(path, tmp_path / "chunked")
    length = chunked["x_train"].shape[1]
    sizes = [len(read_shard(f, length)[1]) for f in shard_files(tmp_path / "chunked", "train")]
    assert sizes == [48] * 5  # 240 rows in shards of at most 50, as even as can be
    assert chunked["stats"] == whole["stats"] and chunked["vocab"] == whole["vocab"]
    for key in ("x_train", "y_train", "x_val", "y_val"):
        np.testing.assert_array_equal(chunked[key], whole[key])
    for split in ("train", "val"):
        name = f"{split}_tokens.txt"
        assert (tmp_path / "chunked" / name).read_text() == (tmp_path / "whole" / name).read_text()


def test_json_tokenizer_path_local_and_gcs(
    make_csv: Callable[..., Path], tmp_path: Path, gcs_root: str
) -> None:
    path = make_csv(rows=60)
    _prepare(path, tmp_path / "a", json_tokenizer_path=str(tmp_path / "tok" / "vocab.json"))
    saved = (tmp_path / "a" / "vocab.json").read_text()
    assert (tmp_path / "tok" / "vocab.json").read_text() == saved
    uri = storage.join(gcs_root, "tokenizer.json")
    _prepare(path, tmp_path / "b", json_tokenizer_path=uri)
    assert storage.read_text(uri) == (tmp_path / "b" / "vocab.json").read_text() == saved


def test_failure_while_writing_leaves_no_folder(
    make_csv: Callable[..., Path], tmp_path: Path
) -> None:
    (tmp_path / "blocker").write_text("a file, not a folder")
    with pytest.raises(OSError):
        _prepare(
            make_csv(rows=60),
            tmp_path / "out",
            json_tokenizer_path=str(tmp_path / "blocker" / "vocab.json"),
        )
    assert sorted(os.listdir(tmp_path)) == ["blocker", "data.csv"]


@pytest.mark.parametrize(
    ("extra", "overrides", "message"),
    [
        ([], {"label_column": "target"}, "no column 'target'"),
        ([], {"val_data_pct": 0.01}, "--val_data_pct=0.01 leaves 1 validation"),
        ([("one of a kind", "rare")], {}, "class 'rare' has 1 row"),
        ([("!!", "rare"), ("", "rare"), ("!!", "rare")], {}, "class 'rare' has 1 row"),
    ],
)
def test_bad_input_names_the_file(
    make_csv: Callable[..., Path],
    tmp_path: Path,
    extra: list[tuple[str, str]],
    overrides: dict[str, Any],
    message: str,
) -> None:
    path = make_csv(rows=60, classes=2, extra=extra)
    with pytest.raises(InputError, match=message) as e:
        _prepare(path, tmp_path / "out", **overrides)
    assert str(path) in str(e.value)
    assert not (tmp_path / "out").exists()


def test_single_class_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "one.csv"
    path.write_text("text,label\n" + "".join(f"text {i},pos\n" for i in range(20)))
    with pytest.raises(InputError, match="single class 'pos'"):
        _prepare(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_only_empty_texts_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text('text,label\n"",pos\n  ,neg\n<br />,neg\n')
    with pytest.raises(InputError, match="no training rows are left once empty texts"):
        _prepare(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli_missing_column_exits_2_with_one_error_line(
    make_csv: Callable[..., Path], tmp_path: Path
) -> None:
    path = make_csv(rows=30)
    out = tmp_path / "runs" / "prepared"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "textcnn",
            "prepare-data",
            "--train_path",
            str(path),
            "--text_column",
            "review",
            "--label_column",
            "label",
            "--val_data_pct",
            "0.1",
            "--num_words",
            "100",
            "--max_length",
            "0",
            "--length_percentile",
            "95",
            "--seed",
            "1",
            "--max_text_chars",
            "10000",
            "--output_dir",
            str(out),
            "--json_tokenizer_path",
            "",
            "--outputs",
            str(tmp_path / "params"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr
    assert errors[0].startswith(f"error: prepare-data: {path}: no column 'review'")
    assert "--column_text_value" in errors[0]
    assert not out.exists() and not (tmp_path / "params").exists()
    assert not (tmp_path / "runs").exists() or os.listdir(tmp_path / "runs") == []
