"""textcnn.tokens, the pure-Python form of the tokenisation, against the TF form that the
served model runs (textcnn.text): the same texts, vocabulary and ids."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf

from textcnn import tokens
from textcnn.text import make_vectorizer
from textcnn.text import standardize as tf_standardize

DATA = Path(__file__).resolve().parents[1] / "data" / "rt"


def _tf(texts: list[str]) -> list[str]:
    return [b.decode("utf-8") for b in tf_standardize(tf.constant(texts)).numpy()]


def _real_texts() -> list[str]:
    return [
        t
        for name in ("train.csv", "test.csv")
        for t in pd.read_csv(DATA / name, dtype=str, keep_default_na=False)["text"]
    ]


def test_every_code_point_cleans_as_in_the_served_model() -> None:
    """Each code point inside a word, at a word's start and after a clitic (where RE2's
    ASCII `\\b` and Python's Unicode one could part), including the few that the Python
    rules leave to TF."""
    points = [c for c in range(0x110000) if not 0xD800 <= c < 0xE000]
    texts = [f"a{chr(c)}b {chr(c)}X's{chr(c)} N'T{chr(c)}" for c in points]
    python = tokens.standardize_texts(texts)
    served = _tf(texts)
    differ = [hex(points[i]) for i in range(len(texts)) if python[i] != served[i]]
    assert differ == []
    # The plain rules alone differ on those few, or this test would prove nothing for them.
    assert tokens.standardize("x\0y") != _tf(["x\0y"])[0]
    assert tokens.standardize("\u2c2f") != _tf(["\u2c2f"])[0]


def test_real_reviews_clean_as_in_the_served_model() -> None:
    texts = _real_texts()
    assert tokens.standardize_texts(texts) == _tf(texts)
    assert tokens.standardize_texts(["Isn't it GOOD, (really)?", "   "]) == [
        "is n't it good , ( really ) ?",
        "",
    ]


def test_vocabulary_and_ids_are_those_of_text_vectorization() -> None:
    clean = tokens.standardize_texts(_real_texts())
    for num_words in (50, 5000, 10**6):  # ties at the cut, and the whole vocabulary
        layer = make_vectorizer(20, num_words=num_words, standardized=True)
        layer.adapt(np.array(clean, dtype=object))
        vocabulary = tokens.fit_vocabulary(clean, num_words)
        assert vocabulary == [str(w) for w in layer.get_vocabulary()]
        served = make_vectorizer(20, vocabulary=vocabulary)
        np.testing.assert_array_equal(
            tokens.to_ids(clean, vocabulary, 20), served(np.array(clean, dtype=object)).numpy()
        )
    assert tokens.token_counts(["a b  c", ""]).tolist() == [3, 0]


def test_steps_that_run_no_graph_do_not_load_tensorflow() -> None:
    """Importing these steps, and cleaning real text, leaves TensorFlow unloaded: each of
    their pods starts without it."""
    light = (
        "validate_params",
        "dataset_metadata",
        "prepare_data",
        "embeddings",
        "model_metadata",
        "log_training_metadata",
        "gate",
        "deploy_wait",
        "record_status",
    )
    code = (
        "import sys\n"
        f"for step in {light!r}:\n"
        "    __import__(f'textcnn.steps.{step}')\n"
        "    assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, step\n"
        "from textcnn import tokens\n"
        f"tokens.standardize_texts(open({str(DATA / 'train.csv')!r}).read().splitlines())\n"
        "assert 'tensorflow' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
