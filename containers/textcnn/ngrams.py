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
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import keras
import numpy as np
import scipy.sparse as sp
import tensorflow as tf
from sklearn.linear_model import LogisticRegression

# Regularisation strengths tried; the one with the lowest validation log loss is kept.
C_GRID = (0.1, 0.3, 1.0, 3.0)
_NB_ALPHA = 1.0  # Laplace smoothing of the naive-Bayes counts


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


def build_vocabulary(
    std_texts: Sequence[str], order: int, max_features: int, family: str = WORD
) -> list[str]:
    """The `max_features` n-grams found in the most texts (ties in string order)."""
    grams = ngram_strings(tf.constant(list(std_texts)), order, family).to_list()
    df = Counter(g for row in grams for g in set(row))
    ranked = sorted(df.items(), key=lambda kv: (-kv[1], kv[0]))[:max_features]
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
        """The binary presence matrix [texts, vocabulary] that the regression is fitted on."""
        rows, cols = (t.numpy() for t in self.presence(tf.constant(list(std_texts))))
        ones = np.ones(len(rows), dtype=np.float64)
        return sp.csr_matrix((ones, (rows, cols)), shape=(len(std_texts), self.size))


def probabilities(logits: tf.Tensor) -> tf.Tensor:
    """One-against-rest sigmoids, normalised over the classes."""
    p = tf.sigmoid(logits)
    return p / tf.reduce_sum(p, axis=1, keepdims=True)


def _one_vs_rest(x: sp.csr_matrix, positive: np.ndarray, c: float) -> tuple[np.ndarray, float]:
    """NB-LR for one class: the kernel column (ratio folded in) and the bias."""
    p = np.asarray(x[positive].sum(axis=0)).ravel() + _NB_ALPHA
    q = np.asarray(x[~positive].sum(axis=0)).ravel() + _NB_ALPHA
    ratio = np.log((p / p.sum()) / (q / q.sum()))
    lr = LogisticRegression(C=c, max_iter=1000).fit(x.multiply(ratio).tocsr(), positive)
    return ratio * lr.coef_[0], float(lr.intercept_[0])


def fit_kernel(
    x: sp.csr_matrix, y: np.ndarray, num_classes: int, c: float
) -> tuple[np.ndarray, np.ndarray]:
    """kernel [vocabulary, classes] and bias [classes], one NB-LR per class.

    With two classes, class 0 against the rest is class 1's model mirrored, so it is
    fitted once and the normalised sigmoids are that model's probability."""
    kernel = np.zeros((x.shape[1], num_classes))
    bias = np.zeros(num_classes)
    for k in range(1 if num_classes == 2 else num_classes):
        target = 1 if num_classes == 2 else k
        kernel[:, target], bias[target] = _one_vs_rest(x, y == target, c)
    if num_classes == 2:
        kernel[:, 0], bias[0] = -kernel[:, 1], -bias[1]
    return kernel, bias


@dataclass(frozen=True)
class Fit:
    """The fitted branch and how it was chosen."""

    layer: NgramLinear
    c: float
    val_probabilities: np.ndarray


def fit(
    layer: NgramLinear,
    train_texts: Sequence[str],
    y_train: np.ndarray,
    val_texts: Sequence[str],
    y_val: np.ndarray,
) -> Fit:
    """Fit `layer`'s kernel for each C of C_GRID; keep the lowest validation log loss."""
    x_train, x_val = layer.features(train_texts), layer.features(val_texts)
    num_classes = layer.kernel.shape[1]
    best: tuple[float, float, np.ndarray, np.ndarray, np.ndarray] | None = None
    for c in C_GRID:
        kernel, bias = fit_kernel(x_train, y_train, num_classes, c)
        p = probabilities(tf.constant(x_val @ kernel + bias)).numpy()
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
