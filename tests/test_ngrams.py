"""The wide n-gram branch: its features in TF ops against scikit-learn's n-gram counting,
the vocabulary, the NB-LR fit and the choice of C."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import tensorflow as tf
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression

from textcnn import ngrams

TEXTS = [
    "a great great film",
    "a dull film , is n't it ?",
    "",
    "great",
    "never seen words here",
    "a great film a great film",
]


def counter(order: int, vocabulary: list[str] | None = None) -> CountVectorizer:
    return CountVectorizer(
        ngram_range=(1, order),
        token_pattern=r"\S+",
        lowercase=False,
        binary=True,
        vocabulary=vocabulary,
    )


@pytest.mark.parametrize("order", [1, 2, 3])
def test_graph_features_are_sklearn_binary_ngram_counts(order: int) -> None:
    vocabulary = ngrams.build_vocabulary(TEXTS[:2], order, max_features=1000)
    layer = ngrams.NgramLinear(vocabulary, order, num_classes=2)
    expected = counter(order, vocabulary).transform(TEXTS).toarray()
    got = layer.features(TEXTS).toarray()
    np.testing.assert_array_equal(got, expected)
    assert got.max() == 1  # presence, not counts: "great great" counts once


@pytest.mark.parametrize("order", [2, 3, 5])
def test_graph_char_features_are_sklearn_char_wb_counts(order: int) -> None:
    texts = [*TEXTS, "héllo wörld", "a b"]  # code points, not bytes; words shorter than 5
    vocabulary = ngrams.build_vocabulary(texts, order, 10_000, ngrams.CHAR)
    layer = ngrams.NgramLinear(vocabulary, order, num_classes=2, family=ngrams.CHAR)
    reference = CountVectorizer(
        analyzer="char_wb", ngram_range=(2, order), lowercase=False, binary=True
    ).fit(texts)
    assert sorted(vocabulary) == sorted(reference.vocabulary_)
    expected = CountVectorizer(
        analyzer="char_wb",
        ngram_range=(2, order),
        lowercase=False,
        binary=True,
        vocabulary=vocabulary,
    ).transform(texts)
    np.testing.assert_array_equal(layer.features(texts).toarray(), expected.toarray())


def test_unknown_family_is_refused() -> None:
    with pytest.raises(ValueError, match="n-gram family 'bytes'"):
        ngrams.NgramLinear(["a"], 2, num_classes=2, family="bytes")


def test_vocabulary_keeps_the_ngrams_found_in_most_texts() -> None:
    vocabulary = ngrams.build_vocabulary(TEXTS, 2, max_features=4)
    # document frequencies: "a" 3, "film" 3, "great" 3, "a great" 2, "great film" 2, ...
    assert vocabulary == ["a", "film", "great", "a great"]
    everything = ngrams.build_vocabulary(TEXTS, 2, max_features=10_000)
    assert sorted(everything) == sorted(counter(2).fit(TEXTS).vocabulary_)


def test_layer_logits_are_features_times_kernel() -> None:
    vocabulary = ngrams.build_vocabulary(TEXTS, 2, max_features=1000)
    layer = ngrams.NgramLinear(vocabulary, 2, num_classes=3)
    kernel = np.random.default_rng(0).normal(size=(len(vocabulary), 3)).astype("float32")
    layer.kernel.assign(kernel)
    layer.bias.assign(np.array([0.5, -1.0, 0.0], dtype="float32"))
    logits = layer(tf.constant(TEXTS)).numpy()
    expected = counter(2, vocabulary).transform(TEXTS) @ kernel + [0.5, -1.0, 0.0]
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)
    # A text with no known n-gram gets the bias alone.
    np.testing.assert_allclose(logits[2], [0.5, -1.0, 0.0])


def cue_texts(n: int, classes: int, seed: int) -> tuple[list[str], np.ndarray]:
    """Each text holds its class's cue word among noise words."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    noise = [f"w{i}" for i in range(30)]
    texts = [" ".join([*rng.choice(noise, 5), f"cue{c}", *rng.choice(noise, 3)]) for c in y]
    return texts, y


def reference_kernel(
    x: sp.csr_matrix, y: np.ndarray, num_classes: int, c: float
) -> tuple[np.ndarray, np.ndarray]:
    """NB-LR by scikit-learn on features held whole: per class, LogisticRegression(C) on
    the presence scaled by the class's naive-Bayes log-count ratio (class 1's alone, then
    mirrored, with two classes)."""
    kernel, bias = np.zeros((x.shape[1], num_classes)), np.zeros(num_classes)
    for target in [1] if num_classes == 2 else range(num_classes):
        positive = y == target
        p = np.asarray(x[positive].sum(axis=0)).ravel() + 1
        q = np.asarray(x[~positive].sum(axis=0)).ravel() + 1
        ratio = np.log((p / p.sum()) / (q / q.sum()))
        lr = LogisticRegression(C=c, max_iter=1000).fit(x.multiply(ratio).tocsr(), positive)
        kernel[:, target], bias[target] = ratio * lr.coef_[0], lr.intercept_[0]
    if num_classes == 2:
        kernel[:, 0], bias[0] = -kernel[:, 1], -bias[1]
    return kernel, bias


@pytest.mark.parametrize("classes", [2, 4])
def test_the_streamed_fit_is_scikit_learns_logistic_regression(
    classes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fitted a chunk at a time from files, each family's model is the one scikit-learn
    fits on the whole matrix in memory: the same objective, minimised alike."""
    monkeypatch.setattr(ngrams, "CHUNK_TEXTS", 37)  # several chunks, the last one short
    monkeypatch.setattr(ngrams, "C_GRID", (0.3,))
    texts, y = cue_texts(300, classes, seed=5)
    val_texts, y_val = cue_texts(50, classes, seed=6)
    layer = ngrams.NgramLinear(ngrams.build_vocabulary(texts, 2, 10_000), 2, classes)
    ngrams.fit(layer, texts, y, val_texts, y_val)
    kernel, bias = reference_kernel(layer.features(texts), y, classes, 0.3)
    np.testing.assert_allclose(layer.kernel.numpy(), kernel, atol=2e-3 * np.abs(kernel).max())
    np.testing.assert_allclose(layer.bias.numpy(), bias, atol=2e-3 * np.abs(kernel).max())


def test_binary_fit_is_one_model_mirrored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ngrams, "C_GRID", (1.0,))
    texts, y = cue_texts(200, 2, seed=1)
    layer = ngrams.NgramLinear(ngrams.build_vocabulary(texts, 2, 10_000), 2, num_classes=2)
    fitted = ngrams.fit(layer, texts, y, texts, y)
    kernel, bias = layer.kernel.numpy(), layer.bias.numpy()
    np.testing.assert_array_equal(kernel[:, 0], -kernel[:, 1])
    assert bias[0] == -bias[1]
    # The normalised sigmoids of a mirrored pair are the one model's sigmoid.
    z = layer.features(texts) @ kernel + bias
    np.testing.assert_allclose(
        fitted.val_probabilities[:, 1], 1 / (1 + np.exp(-z[:, 1])), rtol=1e-5
    )


def test_multiclass_fit_learns_and_picks_c_by_validation_log_loss() -> None:
    texts, y = cue_texts(300, 4, seed=2)
    val_texts, y_val = cue_texts(100, 4, seed=3)
    layer = ngrams.NgramLinear(ngrams.build_vocabulary(texts, 2, 10_000), 2, num_classes=4)
    fitted = ngrams.fit(layer, texts, y, val_texts, y_val)
    p = ngrams.probabilities(layer(tf.constant(val_texts))).numpy()
    np.testing.assert_allclose(p, fitted.val_probabilities, rtol=1e-5, atol=1e-6)
    assert (p.argmax(axis=1) == y_val).mean() > 0.95
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-6)
    x_train, x_val = layer.features(texts), layer.features(val_texts)

    def val_loss(c: float) -> float:
        kernel, bias = reference_kernel(x_train, y, 4, c)
        p = ngrams.probabilities(tf.constant(x_val @ kernel + bias)).numpy()
        return ngrams.log_loss(y_val, p)

    losses = {c: val_loss(c) for c in ngrams.C_GRID}
    assert fitted.c == min(losses, key=losses.__getitem__)


def test_counting_in_chunks_gives_the_counts_of_the_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = [f"{t} extra{i % 3}" for i, t in enumerate(TEXTS * 7)]
    whole = ngrams.document_frequencies(texts, 2)
    monkeypatch.setattr(ngrams, "CHUNK_TEXTS", 4)
    assert ngrams.document_frequencies(texts, 2) == whole
    assert whole[b"great"] == sum("great" in t.split() for t in texts)  # texts, not times
    assert whole[b"extra0"] == 14


def test_counting_holds_a_bounded_number_of_ngrams(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each text brings a word of its own: the distinct n-grams grow with the data, the
    counts held do not, and the frequent n-grams keep their exact counts."""
    monkeypatch.setattr(ngrams, "CHUNK_TEXTS", 10)
    texts = [f"a great film rare{i}" for i in range(400)]
    df = ngrams.document_frequencies(texts, 1, tracked=25)
    assert len(df) <= 50
    assert {g: df[g] for g in (b"a", b"great", b"film")} == dict.fromkeys(
        (b"a", b"great", b"film"), 400
    )
    assert ngrams.build_vocabulary(texts, 1, max_features=3) == ["a", "film", "great"]
