"""embeddings: every gensim format, row alignment, OOV draws and rate, errors, training, CLI."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from gensim.models import KeyedVectors, Word2Vec

from textcnn import cpus, storage
from textcnn.errors import InputError
from textcnn.steps.embeddings import FORMATS, TRAINED, run, train_word2vec

DIM = 6
# In the pretrained vectors: most of the vocabulary, plus words the vocabulary lacks.
KNOWN = ["movie", "great", "boring", "plot", "actor", "scene", "music", "ending"]
UNSEEN = ["zebra", "quantum", "tundra"]  # in the vocabulary, not in the vectors
VOCAB = [
    "",
    "[UNK]",
    "scene",
    "zebra",
    "great",
    "movie",
    "quantum",
    "ending",
    "plot",
    "tundra",
    "music",
    "boring",
    "actor",
]  # an order unlike the vectors' order


def make_prepared(root: Path, vocabulary: list[str], lines: list[str] | None = None) -> Path:
    prepared = root / "prepared"
    prepared.mkdir(parents=True, exist_ok=True)
    (prepared / "vocab.json").write_text(
        json.dumps({"vocabulary": vocabulary, "max_length": 8, "num_words": len(vocabulary)})
    )
    if lines is not None:
        (prepared / "train_tokens.txt").write_text("".join(f"{line}\n" for line in lines))
    return prepared


def source_vectors() -> KeyedVectors:
    kv = KeyedVectors(DIM)
    words = [*KNOWN, "film", "dull"]
    kv.add_vectors(words, np.random.default_rng(7).normal(size=(len(words), DIM)))
    return kv


def load(out: Path) -> tuple[np.ndarray, dict]:
    return np.load(out / "embeddings.npy"), json.loads((out / "embeddings.json").read_text())


def _tiny_word2vec() -> Word2Vec:
    sentences = [["good", "movie", "fun"], ["bad", "film", "boring"], ["great", "plot"]] * 20
    return Word2Vec(sentences, vector_size=DIM, min_count=1, workers=1, seed=3, epochs=2)


def save_kv_native(kv: KeyedVectors, path: Path) -> None:
    kv.save(str(path))


def save_kv_native_side_files(kv: KeyedVectors, path: Path) -> None:
    kv.save(str(path), sep_limit=0)  # arrays in NAME.vectors.npy, as big models are saved


def save_text(kv: KeyedVectors, path: Path) -> None:
    kv.save_word2vec_format(str(path), binary=False)


def save_binary(kv: KeyedVectors, path: Path) -> None:
    kv.save_word2vec_format(str(path), binary=True)


def save_glove(kv: KeyedVectors, path: Path) -> None:
    kv.save_word2vec_format(str(path), binary=False, write_header=False)


KV_SAVERS: dict[str, tuple[Callable[[KeyedVectors, Path], None], str, str]] = {
    "native": (save_kv_native, "vectors.kv", "gensim-native"),
    "native-side-files": (save_kv_native_side_files, "vectors.kv", "gensim-native"),
    "text": (save_text, "vectors.txt", "word2vec-text"),
    "text-gz": (save_text, "vectors.txt.gz", "word2vec-text"),  # gensim gzips by extension
    "binary": (save_binary, "vectors.bin", "word2vec-binary"),
    "glove": (save_glove, "glove.txt", "glove-text"),
}


@pytest.mark.parametrize("kind", KV_SAVERS)
def test_each_format_gives_the_source_vectors_in_vocabulary_order(
    tmp_path: Path, kind: str
) -> None:
    save, name, fmt = KV_SAVERS[kind]
    kv = source_vectors()
    save(kv, tmp_path / name)
    uri = str(tmp_path / name)
    prepared = make_prepared(tmp_path, VOCAB)

    result = run(str(prepared), uri, DIM, 1, str(tmp_path / "out"))

    matrix, info = load(tmp_path / "out")
    assert matrix.dtype == np.float32 and matrix.shape == (len(VOCAB), DIM)
    for i, word in enumerate(VOCAB):
        if word in KNOWN:
            np.testing.assert_allclose(matrix[i], kv[word], rtol=1e-6, err_msg=word)
    assert not matrix[0].any()
    assert info == {
        "dim": DIM,
        "source": uri,
        "format": fmt,
        "oov_rate": result["oov_rate"],
        "oov_count": len(UNSEEN),
        "vocab_size": len(VOCAB),
    }
    assert result == {"oov_rate": len(UNSEEN) / (len(VOCAB) - 2), "dim": DIM}


def test_full_word2vec_save_with_side_files(tmp_path: Path) -> None:
    model = _tiny_word2vec()
    model.save(str(tmp_path / "w2v.model"), sep_limit=0)
    assert list(tmp_path.glob("w2v.model.*.npy"))  # the case this test is about
    vocabulary = ["", "[UNK]", "plot", "movie", "boring", "absent"]
    prepared = make_prepared(tmp_path, vocabulary)

    run(str(prepared), str(tmp_path / "w2v.model"), DIM, 0, str(tmp_path / "out"))

    matrix, info = load(tmp_path / "out")
    for i, word in enumerate(vocabulary[2:5], start=2):
        np.testing.assert_array_equal(matrix[i], model.wv[word])
    assert (info["format"], info["oov_count"]) == ("gensim-native", 1)


def test_unknown_and_oov_rows_are_seeded_uniform_draws(tmp_path: Path) -> None:
    save_text(source_vectors(), tmp_path / "v.txt")
    prepared = make_prepared(tmp_path, VOCAB)
    for out, seed in (("a", 5), ("b", 5), ("c", 6)):
        run(str(prepared), str(tmp_path / "v.txt"), DIM, seed, str(tmp_path / out))
    a, b, c = (load(tmp_path / out)[0] for out in "abc")

    random_rows = [1] + [VOCAB.index(w) for w in UNSEEN]
    drawn = a[random_rows]
    assert drawn.min() >= -0.25 and drawn.max() <= 0.25
    assert np.all(np.abs(drawn).max(axis=1) > 0)  # drawn, not left at zero
    assert np.unique(drawn.round(6), axis=0).shape[0] == len(random_rows)  # distinct rows
    np.testing.assert_array_equal(a, b)  # same seed, same matrix
    assert not np.array_equal(a[random_rows], c[random_rows])  # another seed, other draws
    known_rows = [VOCAB.index(w) for w in KNOWN]
    np.testing.assert_array_equal(a[known_rows], c[known_rows])  # vectors do not move


def test_oov_rate_and_case_insensitive_lookup(tmp_path: Path) -> None:
    kv = KeyedVectors(3)
    kv.add_vectors(
        ["NASA", "paris", "Paris", "Nasa", "Berlin", "x"],
        np.arange(18, dtype=np.float32).reshape(6, 3),
    )
    save_kv_native(kv, tmp_path / "v.kv")
    vocabulary = ["", "[UNK]", "nasa", "paris", "berlin", "rome", "oslo"]
    prepared = make_prepared(tmp_path, vocabulary)

    result = run(str(prepared), str(tmp_path / "v.kv"), 3, 0, str(tmp_path / "out"))

    matrix, info = load(tmp_path / "out")
    np.testing.assert_array_equal(matrix[2], kv["NASA"])  # the first (most frequent) spelling
    np.testing.assert_array_equal(matrix[3], kv["paris"])  # the exact key before any other
    np.testing.assert_array_equal(matrix[4], kv["Berlin"])
    assert (info["oov_count"], result["oov_rate"]) == (2, 2 / 5)  # rome, oslo


@pytest.mark.parametrize("kind", ["native", "text", "binary"])
def test_dimension_mismatch_names_both_numbers(tmp_path: Path, kind: str) -> None:
    save, name, _ = KV_SAVERS[kind]
    save(source_vectors(), tmp_path / name)
    prepared = make_prepared(tmp_path, VOCAB)
    with pytest.raises(InputError) as e:
        run(str(prepared), str(tmp_path / name), 128, 0, str(tmp_path / "out"))
    message = str(e.value)
    assert f"dimension {DIM}" in message and "is 128" in message
    assert f"--embbeding_dim {DIM}" in message and name in message
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "content",
    [b"text,label\nnice film,positive\n", bytes(range(256)) * 4, b"", pickle.dumps({"a": 1})],
    ids=["csv", "binary-noise", "empty", "foreign-pickle"],
)
def test_unreadable_file_is_an_input_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(content)
    prepared = make_prepared(tmp_path, VOCAB)
    with pytest.raises(InputError) as e:
        run(str(prepared), str(path), DIM, 0, str(tmp_path / "out"))
    message = str(e.value)
    assert str(path) in message
    if content[:1] != b"\x80":  # a pickle is gensim's format: the error says what it holds
        assert all(description in message for description in FORMATS.values())
    assert not (tmp_path / "out").exists()


def test_compressed_name_on_plain_file_is_an_input_error(tmp_path: Path) -> None:
    save_text(source_vectors(), tmp_path / "v.txt")
    (tmp_path / "v.txt").rename(tmp_path / "v.txt.gz")  # gensim would gunzip it by the name
    prepared = make_prepared(tmp_path, VOCAB)
    with pytest.raises(InputError, match=r"v\.txt\.gz: cannot be read .*accepted formats"):
        run(str(prepared), str(tmp_path / "v.txt.gz"), DIM, 0, str(tmp_path / "out"))


def test_missing_side_file_is_named(tmp_path: Path) -> None:
    save_kv_native_side_files(source_vectors(), tmp_path / "v.kv")
    (tmp_path / "v.kv.vectors.npy").unlink()
    prepared = make_prepared(tmp_path, VOCAB)
    with pytest.raises(InputError, match=r"side file v\.kv\.vectors\.npy is missing"):
        run(str(prepared), str(tmp_path / "v.kv"), DIM, 0, str(tmp_path / "out"))


def test_gcs_model_with_side_files(gcs_root: str, tmp_path: Path) -> None:
    model = _tiny_word2vec()
    saved = tmp_path / "saved"
    saved.mkdir()
    model.save(str(saved / "w2v.model"), sep_limit=0)
    for file in saved.iterdir():  # the model and its side files, under one prefix
        storage.write_bytes(f"{gcs_root}/models/{file.name}", file.read_bytes())
    vocabulary = ["", "[UNK]", "movie", "boring", "fun"]
    prepared = make_prepared(tmp_path, vocabulary)

    run(str(prepared), f"{gcs_root}/models/w2v.model", DIM, 0, str(tmp_path / "out"))

    matrix, info = load(tmp_path / "out")
    for i, word in enumerate(vocabulary[2:], start=2):
        np.testing.assert_array_equal(matrix[i], model.wv[word])
    assert info["source"] == f"{gcs_root}/models/w2v.model"


def test_gcs_missing_side_file_and_missing_model(gcs_root: str, tmp_path: Path) -> None:
    save_kv_native_side_files(source_vectors(), tmp_path / "v.kv")
    storage.write_bytes(f"{gcs_root}/v.kv", (tmp_path / "v.kv").read_bytes())  # no .npy
    prepared = make_prepared(tmp_path, VOCAB)
    with pytest.raises(InputError, match=r"side file gs://.*/v\.kv\.vectors\.npy is missing"):
        run(str(prepared), f"{gcs_root}/v.kv", DIM, 0, str(tmp_path / "out"))
    with pytest.raises(InputError, match="no such file"):
        run(str(prepared), f"{gcs_root}/absent.kv", DIM, 0, str(tmp_path / "out"))


# Two topics that never share a sentence: Word2Vec must pull each topic's words together.
PETS = ["cat", "dog", "kitten", "puppy", "fur", "paw"]
CARS = ["car", "engine", "wheel", "road", "fuel", "brake"]


def _topic_lines(n: int = 1000) -> list[str]:
    rng = np.random.default_rng(0)
    return [" ".join(rng.choice(PETS if i % 2 else CARS, size=8)) for i in range(n)]


def test_training_pulls_related_words_together_reproducibly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vocabulary = ["", "[UNK]", *PETS, *CARS, "never"]  # "never" is not in the texts
    prepared = make_prepared(tmp_path, vocabulary, _topic_lines())
    # Word2Vec runs a worker per CPU; with one, the vectors are the seed's alone.
    monkeypatch.setenv(cpus.REQUEST_ENV, "1")

    result = run(str(prepared), None, 16, 3, str(tmp_path / "a"))
    run(str(prepared), None, 16, 3, str(tmp_path / "b"))

    matrix, info = load(tmp_path / "a")
    assert matrix.shape == (len(vocabulary), 16) and np.isfinite(matrix).all()
    assert (info["source"], info["format"], info["oov_count"]) == (TRAINED, TRAINED, 1)
    assert result == {"oov_rate": 1 / 13, "dim": 16}
    unit = matrix[2:14] / np.linalg.norm(matrix[2:14], axis=1, keepdims=True)
    cosine = unit @ unit.T
    same = np.kron(np.eye(2), np.ones((6, 6))).astype(bool) & ~np.eye(12, dtype=bool)
    across = ~np.kron(np.eye(2), np.ones((6, 6))).astype(bool)
    # Every word is closer to its least similar topic mate than to any word of the other topic.
    assert min(cosine[i][same[i]].min() - cosine[i][across[i]].max() for i in range(12)) > 0
    np.testing.assert_array_equal(matrix, load(tmp_path / "b")[0])  # one worker: reproducible


def test_training_needs_tokens(tmp_path: Path) -> None:
    prepared = make_prepared(tmp_path, VOCAB, ["", "  "])
    with pytest.raises(InputError, match="train_tokens.txt: no tokens"):
        run(str(prepared), None, DIM, 0, str(tmp_path / "out"))
    (prepared / "train_tokens.txt").unlink()
    with pytest.raises(InputError, match="train_tokens.txt: not found"):
        run(str(prepared), None, DIM, 0, str(tmp_path / "out"))


def test_bad_vocabulary_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="vocab.json: not found"):
        run(str(tmp_path), None, DIM, 0, str(tmp_path / "out"))
    prepared = make_prepared(tmp_path, ["movie", "great"])
    with pytest.raises(InputError, match="must be a list starting with"):
        run(str(prepared), None, DIM, 0, str(tmp_path / "out"))


def test_existing_output_folder_is_replaced(tmp_path: Path) -> None:
    prepared = make_prepared(tmp_path, VOCAB, _topic_lines(20))
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.txt").write_text("old run")
    run(str(prepared), None, DIM, 0, str(out))
    assert sorted(p.name for p in out.iterdir()) == ["embeddings.json", "embeddings.npy"]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "textcnn", "embeddings", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli(tmp_path: Path) -> None:
    prepared = make_prepared(tmp_path, VOCAB, _topic_lines(20))
    common = ["--prepared_dir", str(prepared), "--embedding_dim", "8", "--seed", "42"]

    ok = _cli(
        *common,
        "--w2v_model_path",
        "",
        "--output_dir",
        str(tmp_path / "out"),
        "--outputs",
        str(tmp_path / "params"),
    )
    assert ok.returncode == 0, ok.stderr
    assert np.load(tmp_path / "out" / "embeddings.npy").shape == (len(VOCAB), 8)
    assert (tmp_path / "params" / "dim").read_text() == "8"
    oov = float((tmp_path / "params" / "oov_rate").read_text())
    assert oov == json.loads((tmp_path / "out" / "embeddings.json").read_text())["oov_rate"]

    missing = tmp_path / "nowhere.kv"
    bad = _cli(*common, "--w2v_model_path", str(missing), "--output_dir", str(tmp_path / "bad"))
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: embeddings: --w2v_model_path ")
    assert f"{missing}: no such file" in bad.stderr
    assert not (tmp_path / "bad").exists()


def test_word2vec_learns_only_the_vocabularys_words(tmp_path: Path) -> None:
    """Words outside the prepared vocabulary get no vector, so its memory follows the
    vocabulary; a corpus without any vocabulary word leaves every row drawn at random."""
    vocabulary = ["", "[UNK]", *PETS]
    prepared = make_prepared(tmp_path, vocabulary, _topic_lines())
    vectors = train_word2vec(prepared / "train_tokens.txt", 8, 1, vocabulary)
    assert sorted(vectors.index_to_key) == sorted(PETS)
    none = make_prepared(tmp_path / "none", ["", "[UNK]", "never"], _topic_lines())
    assert len(train_word2vec(none / "train_tokens.txt", 8, 1, ["", "[UNK]", "never"])) == 0
