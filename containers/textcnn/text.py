"""Tokenisation in TF ops, shared by the training code and the exported serving model.

`standardize` applies the rules of `textcnn.tokens` (the table, and its pure-Python form
for the steps that run no TF graph). Because it is made of TF ops, the served model
tokenises exactly as training did.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf

from textcnn.rules import OOV, PAD, RULES


@keras.saving.register_keras_serializable(package="textcnn")
def standardize(text: tf.Tensor) -> tf.Tensor:
    t = tf.strings.lower(text, encoding="utf-8")
    for rule in RULES:
        t = tf.strings.regex_replace(t, rule.re2, rule.replacement)
    return tf.strings.strip(t)


def make_vectorizer(
    max_length: int,
    vocabulary: Sequence[str] | None = None,
    num_words: int | None = None,
    *,
    standardized: bool = False,
) -> keras.layers.TextVectorization:
    """Texts -> int ids padded/truncated to max_length; id 0 pads, id 1 is out of vocabulary.

    Give `vocabulary` (as written in vocab.json, padding and OOV first) to rebuild a fitted
    vectorizer, or `num_words` to get one ready for `adapt`. With `standardized` the input
    has been through `standardize` already (which is idempotent), so it is not run again:
    the ids are the same as from raw text through the default vectorizer.
    """
    layer = keras.layers.TextVectorization(
        max_tokens=num_words,
        standardize=None if standardized else standardize,
        split="whitespace",
        output_mode="int",
        output_sequence_length=max_length,
        name="vectorize",
    )
    if vocabulary is not None:
        words = list(vocabulary)
        if words[:2] != [PAD, OOV]:
            raise ValueError("vocabulary must start with the padding and OOV tokens")
        layer.set_vocabulary(words[2:])
    return layer
