"""The serving export: a TF SavedModel that takes raw texts, for TF Serving and KServe.

The tokenisation (`textcnn.text.make_vectorizer`) is inside the graph, so a client sends
strings and gets scores, the class names and the predicted label, tokenised exactly as
in training. With a wide n-gram branch (`textcnn.ngrams`) the scores are the weighted
average of both branches' probabilities, computed in the same graph. TF Serving loads
`<base>/<version>/saved_model.pb`, hence the numeric folder.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from textcnn import storage
from textcnn.ngrams import NgramLinear, probabilities
from textcnn.text import make_vectorizer, standardize

SIGNATURE = "serving_default"


def export_serving_model(
    model: keras.Model,
    vocabulary: list[str],
    max_length: int,
    classes: list[str],
    base_dir: str | Path,
    version: int = 1,
    wide: Sequence[NgramLinear] = (),
    max_chars: int | None = None,
) -> Path:
    """Write `base_dir/<version>/`: signature `serving_default(text) -> scores, classes, label`.

    The scores are the mean of the CNN's probabilities and those of each layer of `wide`
    (the n-gram families), if any. With `max_chars`, each text is first cut to that many
    characters, as prepare-data cut the training texts (textcnn.data.cut_texts)."""
    vectorizer = make_vectorizer(max_length, vocabulary=vocabulary, standardized=True)
    vectorizer.build((None,))
    names = tf.constant(classes)

    def serve(text: tf.Tensor) -> dict[str, tf.Tensor]:
        if max_chars is not None:
            text = tf.strings.substr(text, 0, max_chars, unit="UTF8_CHAR")
        std = standardize(text)
        # A direct call in a tf.function: model.predict is ~60x slower per request.
        scores = model(vectorizer(std), training=False)
        if wide:
            branches = [scores, *(probabilities(layer(std)) for layer in wide)]
            scores = tf.add_n(branches) / len(branches)
        rows = tf.shape(text)[0]
        return {
            "scores": scores,
            "classes": tf.tile(names[tf.newaxis, :], [rows, 1]),
            "label": tf.gather(names, tf.argmax(scores, axis=1)),
        }

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(vectorizer)  # its lookup table must be saved with the graph
    for layer in wide:
        archive.track(layer)
    archive.add_endpoint(
        SIGNATURE, serve, input_signature=[tf.TensorSpec([None], tf.string, name="text")]
    )
    target = Path(base_dir) / str(version)
    with storage.atomic_dir(target) as tmp:
        archive.write_out(str(tmp), verbose=False)
    return target


def _decode(strings: tf.Tensor) -> np.ndarray:
    return np.char.decode(strings.numpy().astype(np.bytes_), "utf-8")


def load_serving_model(path: str | Path) -> Callable[[Sequence[str]], dict[str, np.ndarray]]:
    """The `serving_default` signature of a SavedModel version folder, as TF Serving runs it.

    The returned function maps a batch of raw texts to numpy `scores`, `classes`, `label`
    (strings decoded).
    """
    loaded = tf.saved_model.load(str(path))
    signature = loaded.signatures[SIGNATURE]

    def predict(texts: Sequence[str]) -> dict[str, np.ndarray]:
        _ = loaded  # the signature only weakly references its SavedModel: keep it alive
        out = signature(text=tf.constant(list(texts), dtype=tf.string))
        return {
            "scores": out["scores"].numpy(),
            "classes": _decode(out["classes"]),
            "label": _decode(out["label"]),
        }

    return predict
