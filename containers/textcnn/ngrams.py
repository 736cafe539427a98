"""The wide n-gram branch: linear models over n-gram presence, in TF ops.

One model per family of n-grams: the word 1..order-grams of the standardised text, and
the character 2..5-grams inside each word padded with a space at both ends (sklearn's
`char_wb`; they catch what whole words miss: inflections, stems and rare words). Features
are which n-grams occur (binary, as in Wang & Manning 2012), looked up in a vocabulary of
the training split's most frequent n-grams of that family. Each family's layer is fitted
one class against the rest by logistic regression on features scaled by each class's
naive-Bayes log-count ratio (NB-LR, Mesnil et al. 2014); the scaling folds into the
kernel, so the graph computes `presence @ kernel + bias` and normalises the classes'
sigmoids. Training and serving run the same `presence` function,
which is why the features the regression saw are the features the served graph sees.

Nothing here holds a split whole: the vocabulary is counted a chunk of texts at a time,
and the regression (scikit-learn's objective, minimised by L-BFGS as scikit-learn does)
streams the features from chunk files, one pass per evaluation, so a million texts fit
in the memory of a few thousand.
"""

from __future__ import annotations

import heapq
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import scipy.optimize
import scipy.sparse as sp
import scipy.special
import tensorflow as tf

from textcnn.errors import InputError
from textcnn.prepared import chunks

# Regularisation strengths tried; the one with the lowest validation log loss is kept.
C_GRID = (0.1, 0.3, 1.0, 3.0)
_NB_ALPHA = 1.0  # Laplace smoothing of the naive-Bayes counts
# Texts per batch of n-gram extraction: the memory of counting follows this, not the data.
CHUNK_TEXTS = 4096


WORD, CHAR = "word", "char"  # the families; the longest n-gram of each is in ModelConfig


def ngram_strings(std_texts: tf.Tensor, order: int, family: str = WORD) -> tf.RaggedTensor:
    """[texts, n-grams]: word 1..order-grams joined by single spaces, or the character
    2..order-grams of each word padded with spaces (none wider than the padded word)."""
    tokens = tf.strings.split(std_texts)
    if family == WORD:
        return tf.strings.ngrams(tokens, ngram_width=tuple(range(1, order + 1)), separator=" ")
    padded = tf.ragged.map_flat_values(lambda t: tf.strings.join([" ", t, " "]), tokens)
    chars = tf.strings.unicode_split(padded, "UTF-8")
    grams = tf.strings.ngrams(chars, ngram_width=tuple(range(2, order + 1)), separator="")
    return grams.merge_dims(1, 2)


def document_frequencies(
    std_texts: Iterable[str], order: int, family: str = WORD, tracked: int = 2_000_000
) -> dict[bytes, int]:
    """How many texts each n-gram occurs in, counted a chunk of texts at a time.

    Memory follows the chunk and `tracked`, not the data: when more than twice `tracked`
    distinct n-grams are held, those at or below the `tracked`-th count are dropped (an
    n-gram seen again later starts over). Until then the counts are exact; a vocabulary of a
    fraction of `tracked` n-grams loses only n-grams too rare to be chosen."""
    df: dict[bytes, int] = {}
    for chunk in chunks(std_texts, CHUNK_TEXTS):
        grams = ngram_strings(tf.constant(chunk), order, family)
        distinct, index = tf.unique(grams.flat_values)
        rows = tf.cast(grams.value_rowids(), tf.int64)
        width = tf.cast(tf.size(distinct), tf.int64)
        # Each (text, n-gram) pair once: presence, not counts.
        pairs = tf.unique(rows * width + tf.cast(index, tf.int64)).y
        counts = tf.math.bincount(tf.cast(pairs % width, tf.int32), minlength=tf.size(distinct))
        get = df.get
        for gram, n in zip(distinct.numpy().tolist(), counts.numpy().tolist(), strict=True):
            df[gram] = get(gram, 0) + n
        if len(df) > 2 * tracked:
            floor = np.partition(np.fromiter(df.values(), np.int64), -tracked)[-tracked]
            df = {g: n for g, n in df.items() if n > floor}
    return df


def build_vocabulary(
    std_texts: Iterable[str], order: int, max_features: int, family: str = WORD
) -> list[str]:
    """The `max_features` n-grams found in the most texts (ties in string order: UTF-8
    bytes sort as their characters do)."""
    df = document_frequencies(std_texts, order, family, tracked=max(4 * max_features, 100_000))
    ranked = heapq.nsmallest(max_features, df.items(), key=lambda kv: (-kv[1], kv[0]))
    return [g.decode("utf-8") for g, _ in ranked]


class NgramLinear(keras.layers.Layer):
    """Standardised texts -> class logits of the linear model over n-gram presence."""

    def __init__(
        self,
        vocabulary: Sequence[str],
        order: int,
        num_classes: int,
        family: str = WORD,
        **kwargs: object,
    ):
        super().__init__(**kwargs)
        if family not in (WORD, CHAR):
            raise ValueError(f"n-gram family {family!r}: expected {WORD!r} or {CHAR!r}")
        self.order = order
        self.family = family
        self.vocabulary = list(vocabulary)
        self.size = len(vocabulary)
        # Index 0 is every n-gram outside the vocabulary; it carries no weight.
        self.lookup = keras.layers.StringLookup(vocabulary=list(vocabulary), num_oov_indices=1)
        self.kernel = self.add_weight(
            shape=(self.size, num_classes), initializer="zeros", name="kernel", trainable=False
        )
        self.bias = self.add_weight(
            shape=(num_classes,), initializer="zeros", name="bias", trainable=False
        )
        self.built = True  # its weights exist already; the export refuses an unbuilt layer

    def presence(self, std_texts: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """(row, column) of every n-gram present in a text, each pair once."""
        ids = self.lookup(ngram_strings(std_texts, self.order, self.family))
        rows = tf.cast(ids.value_rowids(), tf.int64)
        cols = tf.cast(ids.flat_values, tf.int64) - 1
        known = cols >= 0
        pairs = tf.unique(rows[known] * self.size + cols[known]).y
        return pairs // self.size, pairs % self.size

    def call(self, std_texts: tf.Tensor) -> tf.Tensor:
        rows, cols = self.presence(std_texts)
        weights = tf.gather(tf.convert_to_tensor(self.kernel), cols)
        sums = tf.math.unsorted_segment_sum(weights, rows, num_segments=tf.size(std_texts))
        return sums + self.bias

    def features(self, std_texts: Sequence[str]) -> sp.csr_matrix:
        """The binary presence matrix [texts, vocabulary] that the regression is fitted on,
        extracted a chunk of texts at a time."""
        parts = [sp.csr_matrix((0, self.size))]
        for chunk in chunks(std_texts, CHUNK_TEXTS):
            rows, cols = (t.numpy() for t in self.presence(tf.constant(chunk)))
            ones = np.ones(len(rows), dtype=np.float64)
            parts.append(sp.csr_matrix((ones, (rows, cols)), shape=(len(chunk), self.size)))
        return sp.vstack(parts, format="csr")


def probabilities(logits: tf.Tensor) -> tf.Tensor:
    """One-against-rest sigmoids, normalised over the classes."""
    p = tf.sigmoid(logits)
    return p / tf.reduce_sum(p, axis=1, keepdims=True)


class Features:
    """One family's presence features of a split, cached as CSR chunk files in `folder`:
    every pass of the fit reads one chunk at a time, so its memory follows the chunk size
    and the vocabulary, not the data (the features of a million texts are gigabytes)."""

    def __init__(self, layer: NgramLinear, std_texts: Iterable[str], folder: Path) -> None:
        folder.mkdir(parents=True)
        self.size, self.files, self.rows = layer.size, [], 0
        for i, chunk in enumerate(chunks(std_texts, CHUNK_TEXTS)):
            x = layer.features(chunk)
            path = folder / f"{i:06d}.npz"
            np.savez(path, indices=x.indices.astype(np.int32), indptr=x.indptr.astype(np.int64))
            self.files.append((path, self.rows, self.rows + len(chunk)))
            self.rows += len(chunk)

    def __iter__(self) -> Iterator[tuple[slice, sp.csr_matrix]]:
        for path, start, stop in self.files:
            with np.load(path) as f:
                indices, indptr = f["indices"], f["indptr"]
            ones = np.ones(len(indices))
            yield (
                slice(start, stop),
                sp.csr_matrix((ones, indices, indptr), (stop - start, self.size)),
            )


def nb_ratios(x: Features, targets: np.ndarray) -> np.ndarray:
    """[vocabulary, targets]: each target class's naive-Bayes log-count ratio of presence
    in its texts against the others' (Laplace-smoothed)."""
    positive = np.zeros((x.size, targets.shape[1]))
    total = np.zeros(x.size)
    for rows, chunk in x:
        positive += chunk.T @ targets[rows]
        total += np.asarray(chunk.sum(axis=0)).ravel()
    p = positive + _NB_ALPHA
    q = total[:, None] - positive + _NB_ALPHA
    return np.log((p / p.sum(axis=0)) / (q / q.sum(axis=0)))


def _logistic(
    x: Features, targets: np.ndarray, ratio: np.ndarray, c: float, start: np.ndarray
) -> np.ndarray:
    """L2 logistic regression of each target column on the ratio-scaled features, as
    scikit-learn's `LogisticRegression(C=c)` (lbfgs) minimises it: the mean log loss plus
    |w|^2 / (2 C n), the intercept unpenalised. Each evaluation is one pass over the
    chunks. Returns [w (vocabulary x targets, flattened), bias]."""
    n, (size, k) = x.rows, ratio.shape

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[: size * k].reshape(size, k), theta[size * k :]
        kernel = ratio * w
        loss, grad_kernel, grad_b = 0.0, np.zeros((size, k)), np.zeros(k)
        for rows, chunk in x:
            z = chunk @ kernel + b
            y = targets[rows]
            loss += float(np.logaddexp(0.0, z).sum() - (y * z).sum())
            g = scipy.special.expit(z) - y
            grad_kernel += chunk.T @ g
            grad_b += g.sum(axis=0)
        loss = loss / n + float((w * w).sum()) / (2 * c * n)
        grad_w = ratio * grad_kernel / n + w / (c * n)
        return loss, np.concatenate([grad_w.ravel(), grad_b / n])

    result = scipy.optimize.minimize(
        objective,
        start,
        jac=True,
        method="L-BFGS-B",
        # scikit-learn's lbfgs settings (tol=1e-4, max_iter=1000)
        options={"maxiter": 1000, "maxls": 50, "gtol": 1e-4, "ftol": 64 * np.finfo(float).eps},
    )
    return np.asarray(result.x)


def _kernel(
    theta: np.ndarray, ratio: np.ndarray, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """kernel [vocabulary, classes] and bias [classes] of the fitted targets. With two
    classes, class 0 against the rest is class 1's model mirrored, so one was fitted."""
    size, k = ratio.shape
    kernel, bias = ratio * theta[: size * k].reshape(size, k), theta[size * k :]
    if num_classes == 2:
        return np.hstack([-kernel, kernel]), np.concatenate([-bias, bias])
    return kernel, bias


def _probabilities(x: Features, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    out = np.zeros((x.rows, kernel.shape[1]), dtype=np.float32)
    for rows, chunk in x:
        out[rows] = probabilities(tf.constant(chunk @ kernel + bias)).numpy()
    return out


@dataclass(frozen=True)
class Fit:
    """The fitted branch and how it was chosen."""

    layer: NgramLinear
    c: float
    val_probabilities: np.ndarray


def fit(
    layer: NgramLinear,
    train_texts: Iterable[str],
    y_train: np.ndarray,
    val_texts: Iterable[str],
    y_val: np.ndarray,
) -> Fit:
    """Fit `layer`'s kernel, one class against the rest by NB-LR, for each C of C_GRID
    (each starting from the last one's solution); keep the lowest validation log loss.

    The features are extracted once, into chunk files in a temporary folder, and every
    pass streams them."""
    num_classes = layer.kernel.shape[1]
    classes = np.array([1]) if num_classes == 2 else np.arange(num_classes)
    targets = (np.asarray(y_train)[:, None] == classes).astype(np.float64)
    best: tuple[float, float, np.ndarray, np.ndarray, np.ndarray] | None = None
    with tempfile.TemporaryDirectory(prefix="ngrams-") as scratch:
        x_train = Features(layer, train_texts, Path(scratch) / "train")
        x_val = Features(layer, val_texts, Path(scratch) / "val")
        ratio = nb_ratios(x_train, targets)
        theta = np.zeros(ratio.size + ratio.shape[1])
        for c in C_GRID:
            theta = _logistic(x_train, targets, ratio, c, theta)
            kernel, bias = _kernel(theta, ratio, num_classes)
            p = _probabilities(x_val, kernel, bias)
            loss = log_loss(y_val, p)
            if best is None or loss < best[0]:
                best = (loss, c, kernel, bias, p)
    assert best is not None
    _, c, kernel, bias, p = best
    layer.kernel.assign(kernel.astype("float32"))
    layer.bias.assign(bias.astype("float32"))
    return Fit(layer, c, p)


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    """Mean negative log probability of the true classes."""
    return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1.0)).mean())


BRANCH_FILE = "ngrams.npz"


def save_branch(folder: Path, fits: Sequence[Fit]) -> None:
    """FOLDER/ngrams.npz: each family's vocabulary, order, kernel, bias and validation
    probabilities, as `export` assembles them and the tests inspect them."""
    np.savez_compressed(
        folder / BRANCH_FILE,
        **{
            f"{f.layer.family}_{name}": array
            for f in fits
            for name, array in (
                ("vocabulary", np.array(f.layer.vocabulary, dtype=str)),
                ("order", np.array(f.layer.order)),
                ("kernel", f.layer.kernel.numpy()),
                ("bias", f.layer.bias.numpy()),
                ("val_probabilities", f.val_probabilities),
            )
        },
    )


def load_branch(folder: Path, num_classes: int) -> list[tuple[NgramLinear, np.ndarray]]:
    """The fitted families of FOLDER/ngrams.npz with their validation probabilities."""
    path = folder / BRANCH_FILE
    try:
        data = dict(np.load(path))
    except FileNotFoundError:
        raise InputError(f"{path}: not found; run the fit-ngrams step first") from None
    out = []
    for family in (WORD, CHAR):
        if f"{family}_kernel" not in data:
            raise InputError(f"{path}: no {family} n-gram model; rerun the fit-ngrams step")
        kernel = data[f"{family}_kernel"]
        if kernel.shape[1:] != (num_classes,):
            raise InputError(
                f"{path}: a {family} kernel {kernel.shape} for {num_classes} classes; rerun "
                "fit-ngrams with the same prepared data and model spec"
            )
        layer = NgramLinear(
            [str(g) for g in data[f"{family}_vocabulary"]],
            int(data[f"{family}_order"]),
            num_classes,
            family,
        )
        layer.kernel.assign(kernel)
        layer.bias.assign(data[f"{family}_bias"])
        out.append((layer, data[f"{family}_val_probabilities"]))
    return out
