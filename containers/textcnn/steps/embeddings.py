"""embeddings: the vocabulary's word vectors as a float32 matrix whose row i is vocab id i.

The vectors come from a pretrained file in any gensim format (local or gs://) or, without
one, from a skip-gram Word2Vec trained on the prepared training texts. Row 0 (padding) is
zero; [UNK] and words without a vector get U(-0.25, 0.25) draws, as in Kim (2014), from a
generator seeded by `seed`: the draw for row i depends only on the seed and i.

Gensim's native format is a pickle, and loading a pickle runs code: only point
`--w2v_model_path` at model files you trust.
"""

from __future__ import annotations

import json
import re
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np

with warnings.catch_warnings():
    # gensim's smart_open imports google.api_core, whose Python-version FutureWarning
    # would otherwise open every log of this step.
    warnings.filterwarnings("ignore", category=FutureWarning, module="google.api_core")
    import gensim.utils
    from gensim.models import KeyedVectors, Word2Vec
    from gensim.models.callbacks import CallbackAny2Vec

from textcnn import cpus, progress, storage
from textcnn.errors import InputError
from textcnn.rules import OOV, PAD

TRAINED = "word2vec-trained"
FORMATS: dict[str, str] = {
    "gensim-native": "gensim native (KeyedVectors.save or Word2Vec.save, with any side files "
    "such as NAME.vectors.npy next to it)",
    "word2vec-text": "word2vec text (save_word2vec_format(binary=False): a 'count dim' header, "
    "then one 'word v1 ... vdim' line per word)",
    "word2vec-binary": "word2vec binary (save_word2vec_format(binary=True))",
    "glove-text": "GloVe-style text without a header (one 'word v1 ... vdim' line per word)",
}
_HEAD_BYTES = 1 << 16  # enough for a header and a first vector line of any sensible dimension
_W2V_HEADER = re.compile(rb"\s*(\d+)\s+(\d+)\s*")
# Skip-gram beat CBOW by 6 points (mean-vector logistic regression on Rotten Tomatoes,
# 10 epochs). It runs a worker per CPU the step has (textcnn.cpus); the vectors are
# reproducible for a seed only with one, since gensim's threads interleave their updates.
_WORD2VEC = {"window": 5, "min_count": 1, "sg": 1, "epochs": 10}


def read_vocabulary(prepared_dir: Path) -> list[str]:
    """The vocabulary of prepared_dir/vocab.json, index = id, padding and [UNK] first."""
    path = prepared_dir / "vocab.json"
    try:
        vocabulary = json.loads(path.read_text(encoding="utf-8"))["vocabulary"]
    except FileNotFoundError:
        raise InputError(
            f"{path}: not found: point --prepared_dir at the output of prepare-data"
        ) from None
    except (ValueError, KeyError, TypeError) as e:
        raise InputError(
            f"{path}: expected JSON with a 'vocabulary' list ({e}): rerun prepare-data"
        ) from None
    if not isinstance(vocabulary, list) or vocabulary[:2] != [PAD, OOV]:
        raise InputError(
            f"{path}: 'vocabulary' must be a list starting with {PAD!r} (padding) and {OOV!r}: "
            "rerun prepare-data"
        )
    return vocabulary


class _EpochProgress(CallbackAny2Vec):
    """A progress line per Word2Vec epoch; the step's last unit is the matrix."""

    def __init__(self) -> None:
        self.epochs, self.done = _WORD2VEC["epochs"], 0

    def on_epoch_end(self, model: Word2Vec) -> None:
        self.done += 1
        progress.report(self.done, self.epochs + 1, f"word2vec epoch {self.done}/{self.epochs}")


def train_word2vec(tokens_file: Path, dim: int, seed: int, vocabulary: list[str]) -> KeyedVectors:
    """Skip-gram Word2Vec on one space-separated text per line, for the words of
    `vocabulary` that occur in it.

    gensim's file mode streams the corpus from the file, and the other words are dropped
    from it as rare words are (trim_rule), so the model's memory follows the vocabulary
    the embedding matrix needs, not every word the data holds."""
    if not tokens_file.is_file():
        raise InputError(
            f"{tokens_file}: not found: point --prepared_dir at the output of prepare-data"
        )
    with tokens_file.open("rb") as f:
        if not any(line.strip() for line in f):
            raise InputError(f"{tokens_file}: no tokens to train Word2Vec on: rerun prepare-data")
    keep = frozenset(vocabulary)

    def trim(word: str, count: int, min_count: int) -> int:
        return gensim.utils.RULE_KEEP if word in keep else gensim.utils.RULE_DISCARD

    model = Word2Vec(vector_size=dim, seed=seed, workers=cpus.available(), **_WORD2VEC)
    model.build_vocab(corpus_file=str(tokens_file), trim_rule=trim)
    if len(model.wv):  # else no vocabulary word occurs in the texts: no vector to learn
        model.train(
            corpus_file=str(tokens_file),
            total_examples=model.corpus_count,
            total_words=model.corpus_total_words,
            epochs=model.epochs,
            callbacks=[_EpochProgress()],
        )
    return model.wv


def _floats(parts: list[bytes]) -> bool:
    try:
        for p in parts:
            float(p)
    except ValueError:
        return False
    return True


def detect_format(path: Path) -> tuple[str | None, int | None]:
    """(format, dim) read from the file's first bytes; dim is None for the native format.

    gensim's opener decompresses .gz/.bz2 files, which every loader here accepts too.
    Returns (None, None) for a file in none of the FORMATS.
    """
    with gensim.utils.open(str(path), "rb") as f:
        head = f.read(_HEAD_BYTES)
    if head.startswith(b"\x80"):  # a pickle (protocol 2 or newer): gensim's SaveLoad
        return "gensim-native", None
    first, _, rest = head.partition(b"\n")
    header = _W2V_HEADER.fullmatch(first)
    if header:
        dim = int(header.group(2))
        line = rest.split(b"\n", 1)[0].split()
        if len(line) > 1 and _floats(line[1:]):  # the loader reports a count off the header
            return "word2vec-text", dim
        if rest.find(b" ") > 0 and dim > 0:  # binary records: "word " then dim raw float32s
            return "word2vec-binary", dim
        return None, None
    parts = first.split()
    if len(parts) > 1 and _floats(parts[1:]):
        return "glove-text", len(parts) - 1
    return None, None


def _load_native(uri: str, path: Path) -> KeyedVectors:
    """A KeyedVectors, or the `.wv` of a saved model, fetching gs:// side files as needed."""
    while True:
        try:
            obj = gensim.utils.SaveLoad.load(str(path))
            break
        except FileNotFoundError as e:
            # gensim keeps large arrays in side files named <file>.<attribute>.npy and names
            # the one it misses: fetch it from next to the gs:// object, then load again.
            missing = Path(e.filename or "")
            suffix = missing.name[len(path.name) :]
            if (
                not storage.is_gcs(uri)
                or missing.parent != path.parent
                or not missing.name.startswith(path.name + ".")
                or missing.exists()
            ):
                raise InputError(
                    f"--w2v_model_path {uri}: side file {missing.name} is missing: copy every "
                    "file gensim saved next to it (NAME.*.npy) to the same folder"
                ) from None
            try:
                with storage.local_copy(uri + suffix) as side:
                    shutil.move(side, missing)
            except FileNotFoundError:
                raise InputError(
                    f"--w2v_model_path {uri}: side file {uri + suffix} is missing: upload "
                    "every file gensim saved next to it (NAME.*.npy) to the same prefix"
                ) from None
    vectors = obj if isinstance(obj, KeyedVectors) else getattr(obj, "wv", None)
    if not isinstance(vectors, KeyedVectors):
        raise InputError(
            f"--w2v_model_path {uri}: the gensim file holds a {type(obj).__name__}, which has "
            "no word vectors: give a KeyedVectors or Word2Vec file"
        )
    return vectors


def load_vectors(uri: str, embedding_dim: int) -> tuple[KeyedVectors, str]:
    """The pretrained vectors at `uri` (local path or gs://) and their detected format."""
    accepted = "; ".join(FORMATS.values())
    try:
        with storage.local_copy(uri) as path:
            try:
                fmt, dim = detect_format(path)
            except (OSError, EOFError) as e:  # e.g. a .gz name on a file that is not gzip
                raise InputError(
                    f"--w2v_model_path {uri}: cannot be read ({e}); accepted formats: {accepted}"
                ) from None
            if fmt is None:
                raise InputError(
                    f"--w2v_model_path {uri}: not a word-vector file gensim can read; "
                    f"accepted formats: {accepted}"
                )
            if dim is not None:  # text and binary headers tell the size before a long load
                _check_dim(uri, dim, embedding_dim)
            try:
                if fmt == "gensim-native":
                    vectors = _load_native(uri, path)
                else:
                    vectors = KeyedVectors.load_word2vec_format(
                        str(path),
                        binary=fmt == "word2vec-binary",
                        no_header=fmt == "glove-text",
                        unicode_errors="ignore",
                    )
            except InputError:
                raise
            except Exception as e:  # any parse failure of a user file is the user's to fix
                raise InputError(
                    f"--w2v_model_path {uri}: looks like {FORMATS[fmt]} but cannot be read "
                    f"({type(e).__name__}: {e}); accepted formats: {accepted}"
                ) from None
    except FileNotFoundError:
        raise InputError(
            f"--w2v_model_path {uri}: no such file: give a local path or gs:// URI of "
            "pretrained vectors, or leave it empty to train Word2Vec"
        ) from None
    _check_dim(uri, vectors.vector_size, embedding_dim)
    return vectors, fmt


def _check_dim(uri: str, dim: int, embedding_dim: int) -> None:
    if dim != embedding_dim:
        raise InputError(
            f"--w2v_model_path {uri}: the vectors have dimension {dim} but --embbeding_dim is "
            f"{embedding_dim}: set --embbeding_dim {dim} to use these vectors"
        )


def build_matrix(vocabulary: list[str], vectors: KeyedVectors, seed: int) -> tuple[np.ndarray, int]:
    """(matrix, number of vocabulary words without a vector), padding and [UNK] excluded.

    A word is looked up as is, then case-insensitively (the most frequent spelling wins),
    so lower-cased vocabularies still find vectors keyed "Paris" or "NASA".
    """
    rng = np.random.default_rng(seed)
    matrix = rng.random((len(vocabulary), vectors.vector_size), dtype=np.float32) * 0.5 - 0.25
    matrix[0] = 0.0
    words = vocabulary[2:]
    index = vectors.key_to_index
    rows = np.array([index.get(w, -1) for w in words], dtype=np.int64)
    missing = np.flatnonzero(rows < 0)
    if missing.size:
        # One pass over the keys (most frequent first), keeping only the missing words' hits;
        # reversed, the most frequent spelling is set last and wins.
        wanted = {words[m].lower() for m in missing}
        keys = enumerate(map(str.lower, vectors.index_to_key))
        lowered = dict(reversed([(key, i) for i, key in keys if key in wanted]))
        rows[missing] = [lowered.get(words[m].lower(), -1) for m in missing]
    found = np.flatnonzero(rows >= 0)
    matrix[found + 2] = vectors.vectors[rows[found]]
    return matrix, len(words) - found.size


def run(
    prepared_dir: str, w2v_model_path: str | None, embedding_dim: int, seed: int, output_dir: str
) -> dict[str, Any]:
    """Embedding matrix for the prepared vocabulary: pretrained vectors or trained Word2Vec."""
    if embedding_dim < 1:
        raise InputError(f"--embedding_dim {embedding_dim}: must be a positive integer")
    prepared = Path(prepared_dir)
    vocabulary = read_vocabulary(prepared)
    if w2v_model_path:
        total = 2
        progress.report(0, total, f"loading the vectors of {w2v_model_path}")
        vectors, fmt = load_vectors(w2v_model_path, embedding_dim)
        source = w2v_model_path
    else:
        total = _WORD2VEC["epochs"] + 1
        progress.report(0, total, "training word2vec on the training texts")
        vectors = train_word2vec(prepared / "train_tokens.txt", embedding_dim, seed, vocabulary)
        source = fmt = TRAINED
    progress.report(total - 1, total, f"building the {len(vocabulary):,}-word matrix")
    matrix, oov_count = build_matrix(vocabulary, vectors, seed)
    words = len(vocabulary) - 2
    oov_rate = oov_count / words if words else 0.0
    info = {
        "dim": embedding_dim,
        "source": source,
        "format": fmt,
        "oov_rate": oov_rate,
        "oov_count": oov_count,
        "vocab_size": len(vocabulary),
    }
    with storage.atomic_dir(output_dir) as tmp:
        np.save(tmp / "embeddings.npy", matrix)
        (tmp / "embeddings.json").write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    progress.report(total, total, "matrix written")
    print(
        f"embeddings: {len(vocabulary)} x {embedding_dim} from {source} ({fmt}); "
        f"{oov_count} of {words} words without a vector ({oov_rate:.1%})"
    )
    return {"oov_rate": oov_rate, "dim": embedding_dim}
