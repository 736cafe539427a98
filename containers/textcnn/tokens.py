"""The tokenisation rules (textcnn.rules) in pure Python, for the steps that run no TF
graph: `standardize` applies them with Python's `re`, so dataset-metadata and
prepare-data start without TensorFlow (about 2.5 s and 600 MiB a process).
tests/test_tokens.py checks that this form and `textcnn.text.standardize` give the same
text on every Unicode code point and on the bundled data.
"""

from __future__ import annotations

import heapq
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from textcnn.rules import OOV, PAD, RULES

_COMPILED = [(re.compile(r.python, r.flags), r.replacement) for r in RULES]

# Where the two forms part (tests/test_tokens.py finds them on every code point): TF ends a
# text at NUL; its RE2 knows letters that Python 3.11's Unicode 14.0 leaves unassigned; its
# ICU does not lower-case these capitals new in Unicode 14.0.
_UNICODE_14_CAPITALS = frozenset(
    [0x2C2F, 0xA7C0, 0xA7D0, 0xA7D6, 0xA7D8]
    + [c for c in range(0x10570, 0x10596) if c not in (0x1057B, 0x1058B, 0x10593)]
)


def _python_agrees(text: str) -> bool:
    if text.isascii():
        return "\0" not in text
    return not any(
        c == "\0" or ord(c) in _UNICODE_14_CAPITALS or unicodedata.category(c) == "Cn" for c in text
    )


def standardize(text: str) -> str:
    """One text as the rules clean it, in Python (see `standardize_texts` for the few
    characters where TF's form differs)."""
    t = text.lower()
    for pattern, replacement in _COMPILED:
        t = pattern.sub(replacement, t)
    return t.strip(" ")


def standardize_texts(texts: Iterable[str]) -> list[str]:
    """Each text as `textcnn.text.standardize` cleans it in the served model. The rare
    text with a character on which the two forms differ goes through TF itself."""
    texts = list(texts)
    out = [standardize(t) for t in texts]
    odd = [i for i, t in enumerate(texts) if not _python_agrees(t)]
    if odd:
        import tensorflow as tf  # only for such texts: most steps never load it

        from textcnn.text import standardize as tf_standardize

        clean = tf_standardize(tf.constant([texts[i] for i in odd], dtype=tf.string)).numpy()
        for i, b in zip(odd, clean, strict=True):
            out[i] = b.decode("utf-8")
    return out


def token_counts(standardized: Iterable[str]) -> np.ndarray:
    """Tokens per standardised text, split on whitespace as the vectorizer does."""
    return np.array([len(t.split()) for t in standardized], dtype=np.int64)


def fit_vocabulary(standardized: Iterable[str], num_words: int) -> list[str]:
    """The vocabulary of these texts (`vocabulary_of` their token counts)."""
    return vocabulary_of(
        Counter(token for text in standardized for token in text.split()), num_words
    )


def vocabulary_of(counts: Mapping[str, int], num_words: int) -> list[str]:
    """The vocabulary as Keras' TextVectorization adapts it from token counts: padding,
    OOV, then the `num_words - 2` most frequent tokens, ties broken by the tokens' UTF-8
    bytes, larger first (Keras sorts with numpy's lexsort, reversed)."""
    ranked = heapq.nlargest(
        max(0, num_words - 2), counts.items(), key=lambda tc: (tc[1], tc[0].encode())
    )  # as sorted(..., reverse=True)[:k], holding k of them: the keys are distinct
    return [PAD, OOV, *(token for token, _ in ranked)]


def to_ids(standardized: Sequence[str], vocabulary: Sequence[str], max_length: int) -> np.ndarray:
    """int32 [n, max_length]: each token's index in `vocabulary` (OOV for the others),
    truncated and padded at the end, as the served model's vectorizer maps them."""
    index = {token: i for i, token in enumerate(vocabulary) if i > 1}
    out = np.zeros((len(standardized), max_length), dtype=np.int32)
    for row, text in enumerate(standardized):
        ids = [index.get(token, 1) for token in text.split()[:max_length]]
        out[row, : len(ids)] = ids
    return out
