"""train step and serving export, on a tiny learnable data set written as prepare-data
would (tests/helpers.py: `write_inputs`)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import (
    CLASSES,
    MAX_LENGTH,
    MAX_TEXT_CHARS,
    VOCABULARY,
    Inputs,
    make_texts,
    run_train,
    write_inputs,
)
from sklearn.feature_extraction.text import CountVectorizer

from textcnn import cli, ngrams
from textcnn.errors import InputError
from textcnn.export import export_serving_model, load_serving_model
from textcnn.model import CHAR_NGRAM_ORDER, build_model
from textcnn.prepared import load_split
from textcnn.text import make_vectorizer, standardize


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Inputs, Path, dict]:
    root = tmp_path_factory.mktemp("train")
    inputs = write_inputs(root)
    return inputs, root, run_train(inputs, root)


def test_train_learns_and_writes_every_output(trained: tuple[Inputs, Path, dict]) -> None:
    inputs, root, result = trained
    history = json.loads((root / "training" / "history.json").read_text())
    info = json.loads((root / "training" / "training.json").read_text())

    assert set(history) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert result["epochs_run"] == info["epochs_run"] == len(history["val_loss"]) == 3
    # The reported accuracy is that of the epoch whose weights were kept (lowest val_loss).
    assert info["best_epoch"] == int(np.argmin(history["val_loss"])) + 1
    branches = info["ngrams"]["val_accuracy"]
    assert branches["cnn"] == pytest.approx(history["val_accuracy"][info["best_epoch"] - 1])
    # The reported accuracy is the served model's: both branches averaged.
    assert result["val_accuracy"] == branches["combined"]
    assert min(branches.values()) > 0.9  # one cue word decides the class: learnable
    families = info["ngrams"]["families"]
    assert set(families) == {ngrams.WORD, ngrams.CHAR} <= set(branches)
    assert all(f["C"] in ngrams.C_GRID for f in families.values())
    assert info["ngrams"]["features"] == sum(f["features"] for f in families.values())
    assert info["strategy"] == "MirroredStrategy" and info["replicas"] >= 1
    assert result["duration_seconds"] == pytest.approx(info["duration_seconds"], abs=1e-3)
    assert info["examples_per_second"] == pytest.approx(
        400 * info["epochs_run"] / info["duration_seconds"]
    )
    assert info["start"] < info["end"] and info["start"].endswith("+00:00")
    assert (root / "model" / "1" / "saved_model.pb").is_file()
    # No staging folders left beside the outputs.
    assert sorted(p.name for p in root.iterdir()) == [
        "cnn",
        "embeddings",
        "model",
        "ngrams",
        "prepared",
        "spec",
        "training",
    ]


def test_saved_keras_model_holds_the_best_weights(trained: tuple[Inputs, Path, dict]) -> None:
    inputs, root, _ = trained
    info = json.loads((root / "training" / "training.json").read_text())
    model = keras.models.load_model(root / "training" / "model.keras")
    x_val, y_val = load_split(inputs.prepared, "val", inputs.config)
    _, accuracy = model.evaluate(x_val, y_val, verbose=0, return_dict=False)
    assert accuracy == pytest.approx(info["ngrams"]["val_accuracy"]["cnn"], abs=1e-6)


def wide_reference(branch: np.lib.npyio.NpzFile, texts: list[str]) -> list[np.ndarray]:
    """The wide branch's probabilities from scikit-learn's own n-gram counting: those of
    its word 1-2-gram and of its character (`char_wb`) 2-5-gram model."""
    std = [t.decode() for t in standardize(tf.constant(texts)).numpy()]
    analyzers = {
        ngrams.WORD: {"ngram_range": (1, 2), "token_pattern": r"\S+"},
        ngrams.CHAR: {"ngram_range": (2, CHAR_NGRAM_ORDER), "analyzer": "char_wb"},
    }
    ps = []
    for family, options in analyzers.items():
        vocabulary = [str(g) for g in branch[f"{family}_vocabulary"]]
        counter = CountVectorizer(lowercase=False, binary=True, vocabulary=vocabulary, **options)
        logits = counter.transform(std) @ branch[f"{family}_kernel"] + branch[f"{family}_bias"]
        p = 1 / (1 + np.exp(-logits))
        ps.append(p / p.sum(axis=1, keepdims=True))
    return ps


def test_the_assembled_model_scores_as_the_separately_fitted_branches(
    trained: tuple[Inputs, Path, dict],
) -> None:
    """export puts train's CNN (cnn/) and fit-ngrams' families (ngrams/) in one graph: it
    scores raw texts as the branches do, each computed on its own."""
    _, root, _ = trained
    model = keras.models.load_model(root / "cnn" / "model.keras")
    texts, _ = make_texts(20, seed=3)
    texts += ["", "Poor, POOR film... <br /> isn't it?"]  # empty, OOV, markup, clitic
    served = load_serving_model(root / "model" / "1")(texts)
    ids = make_vectorizer(MAX_LENGTH, vocabulary=VOCABULARY)(tf.constant(texts))
    with np.load(root / "ngrams" / "ngrams.npz") as branch:
        wide = wide_reference(branch, texts)
    cnn = model(ids, training=False).numpy()
    assert all(np.abs(p - 0.5).max() > 0.1 for p in wide)  # each family does take part
    expected = np.mean([cnn, *wide], axis=0)
    np.testing.assert_allclose(served["scores"], expected, rtol=1e-5, atol=1e-6)
    assert served["label"].tolist() == [CLASSES[i] for i in expected.argmax(axis=1)]
    assert served["classes"].tolist() == [CLASSES] * len(texts)


def test_plain_cnn_serves_the_keras_model_alone(tmp_path: Path) -> None:
    inputs = write_inputs(tmp_path, n_train=64, n_val=32, architecture="cnn")
    result = run_train(inputs, tmp_path, epochs=1)
    info = json.loads((tmp_path / "training" / "training.json").read_text())
    history = json.loads((tmp_path / "training" / "history.json").read_text())
    assert info["architecture"] == "cnn" and "ngrams" not in info
    assert result["val_accuracy"] == history["val_accuracy"][0]
    assert not (tmp_path / "training" / "ngrams.npz").exists()
    texts, _ = make_texts(10, seed=4)
    model = keras.models.load_model(tmp_path / "training" / "model.keras")
    ids = make_vectorizer(MAX_LENGTH, vocabulary=VOCABULARY)(tf.constant(texts))
    np.testing.assert_allclose(
        load_serving_model(tmp_path / "model" / "1")(texts)["scores"],
        model(ids, training=False).numpy(),
        rtol=1e-5,
        atol=1e-6,
    )


def test_early_stopping_ends_training_and_restores_the_best_epoch(tmp_path: Path) -> None:
    # A learning rate this large makes val_loss climb after the first epochs.
    inputs = write_inputs(tmp_path, learning_rate=0.5, architecture="cnn")
    result = run_train(inputs, tmp_path, epochs=30, patience=1)
    history = json.loads((tmp_path / "training" / "history.json").read_text())
    best = int(np.argmin(history["val_loss"]))
    assert result["epochs_run"] == len(history["val_loss"]) == best + 2 < 30
    assert result["val_accuracy"] == history["val_accuracy"][best]
    # The saved model is the best epoch's, not the last one's.
    assert history["val_loss"][-1] > history["val_loss"][best]
    model = keras.models.load_model(tmp_path / "training" / "model.keras")
    x_val, y_val = load_split(inputs.prepared, "val", inputs.config)
    loss, _ = model.evaluate(x_val, y_val, verbose=0, return_dict=False)
    assert loss == pytest.approx(history["val_loss"][best], rel=1e-5)


def test_same_seed_same_training(tmp_path: Path) -> None:
    inputs = write_inputs(tmp_path)
    runs = [run_train(inputs, tmp_path / name, epochs=1) for name in ("a", "b")]
    losses = [
        json.loads((tmp_path / n / "training" / "history.json").read_text())["loss"]
        for n in ("a", "b")
    ]
    assert losses[0] == losses[1]
    assert runs[0]["val_accuracy"] == runs[1]["val_accuracy"]


def test_rerun_replaces_earlier_outputs(tmp_path: Path) -> None:
    inputs = write_inputs(tmp_path, n_train=64, n_val=32)
    (tmp_path / "model" / "7").mkdir(parents=True)  # stale version from an older run
    (tmp_path / "training").mkdir()
    (tmp_path / "training" / "stale.txt").write_text("old")
    run_train(inputs, tmp_path, epochs=1)
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["1"]
    assert sorted(p.name for p in (tmp_path / "training").iterdir()) == [
        "history.json",
        "model.keras",
        "ngrams.npz",
        "training.json",
    ]


def test_spec_that_does_not_fit_the_data_is_an_input_error(tmp_path: Path) -> None:
    inputs = write_inputs(tmp_path, n_train=64, n_val=32)
    wrong = replace(inputs.config, max_length=MAX_LENGTH + 1)
    (inputs.model_spec / "model_config.json").write_text(wrong.to_json())
    with pytest.raises(InputError, match=rf"vocab\.json: the ids are {MAX_LENGTH} long, but"):
        run_train(inputs, tmp_path, epochs=1)
    assert not (tmp_path / "cnn").exists() and not (tmp_path / "model").exists()


def test_a_shard_cut_short_is_an_input_error_naming_it(tmp_path: Path) -> None:
    inputs = write_inputs(tmp_path, n_train=64, n_val=32)
    shard = inputs.prepared / "train-00000.bin"
    shard.write_bytes(shard.read_bytes()[:-4])
    with pytest.raises(InputError, match=r"train-00000\.bin: .* no whole number of rows"):
        run_train(inputs, tmp_path, epochs=1)
    assert not (tmp_path / "cnn").exists()


def test_vocabulary_that_does_not_fit_the_spec_fails_before_training(tmp_path: Path) -> None:
    inputs = write_inputs(tmp_path, n_train=64, n_val=32)
    vocab = inputs.prepared / "vocab.json"
    data = json.loads(vocab.read_text())
    vocab.write_text(json.dumps(data | {"vocabulary": data["vocabulary"][::-1]}))
    with pytest.raises(InputError, match=r"vocab\.json: .* ids 0, 1 are \['', '\[UNK\]'\]"):
        run_train(inputs, tmp_path, epochs=1)
    vocab.write_text(json.dumps(data | {"vocabulary": data["vocabulary"][:-1]}))
    with pytest.raises(InputError, match=rf"vocab_size={len(VOCABULARY)}"):
        run_train(inputs, tmp_path, epochs=1)
    assert not (tmp_path / "cnn").exists() and not (tmp_path / "model").exists()


def test_missing_inputs_name_the_file_and_the_step(tmp_path: Path) -> None:
    inputs = write_inputs(tmp_path, n_train=64, n_val=32)
    (inputs.embeddings / "embeddings.npy").unlink()
    with pytest.raises(InputError, match=r"embeddings\.npy: not found; run the embeddings"):
        run_train(inputs, tmp_path, epochs=1)
    (inputs.model_spec / "model_config.json").unlink()
    with pytest.raises(InputError, match=r"model_config\.json: not found; run the model-meta"):
        run_train(inputs, tmp_path, epochs=1)


def test_export_signature_and_layout(tmp_path: Path) -> None:
    config = write_inputs(tmp_path, n_train=8, n_val=8).config
    path = export_serving_model(
        build_model(config), VOCABULARY, MAX_LENGTH, CLASSES, tmp_path / "model", version=3
    )
    assert path == tmp_path / "model" / "3"
    assert (path / "saved_model.pb").is_file() and (path / "variables").is_dir()
    signature = tf.saved_model.load(str(path)).signatures["serving_default"]
    _, inputs = signature.structured_input_signature
    assert {k: (v.dtype, v.shape.as_list()) for k, v in inputs.items()} == {
        "text": (tf.string, [None])
    }
    outputs = signature.structured_outputs
    assert {k: (v.dtype, v.shape.as_list()) for k, v in outputs.items()} == {
        "scores": (tf.float32, [None, 2]),
        "classes": (tf.string, [None, 2]),
        "label": (tf.string, [None]),
    }
    assert load_serving_model(path)([])["scores"].shape == (0, 2)


def test_the_served_model_reads_the_first_max_text_chars_only(
    trained: tuple[Inputs, Path, dict],
) -> None:
    # Issue 29, finding 4: a text's characters past --max_text_chars reach no branch, as
    # prepare-data cut them from the training texts. Before, the n-gram branch read all.
    _, root, _ = trained
    head = ("a great film " * 20)[:MAX_TEXT_CHARS]
    scores = load_serving_model(root / "model" / "1")([head, head + " awful dull" * 500])
    np.testing.assert_array_equal(scores["scores"][0], scores["scores"][1])


def test_command_line_reports_bad_input_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs = write_inputs(tmp_path, n_train=8, n_val=8)
    (inputs.prepared / "val-00000.bin").unlink()
    argv = [
        "train",
        "--prepared_dir",
        str(inputs.prepared),
        "--embeddings_dir",
        str(inputs.embeddings),
        "--model_spec_dir",
        str(inputs.model_spec),
        "--epochs",
        "1",
        "--batch_size",
        "4",
        "--patience",
        "1",
        "--seed",
        "1",
        "--cnn_dir",
        str(tmp_path / "cnn"),
    ]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "error: train: " in err and "val-*.bin: not found; run the prepare-data step" in err


@pytest.mark.skipif(
    bool(tf.config.list_physical_devices("GPU")), reason="this machine has a GPU to train on"
)
def test_gpu_support_without_a_gpu_fails_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """GPU means GPU: a GPU pod whose TensorFlow cannot load CUDA says so and stops, instead
    of training on its CPU. This machine has no GPU, as such a pod would see it."""
    inputs = write_inputs(tmp_path, n_train=8, n_val=8)
    argv = [
        "train",
        f"--prepared_dir={inputs.prepared}",
        f"--embeddings_dir={inputs.embeddings}",
        f"--model_spec_dir={inputs.model_spec}",
        "--epochs=1",
        "--batch_size=4",
        "--patience=1",
        "--seed=1",
        f"--cnn_dir={tmp_path / 'cnn'}",
        "--gpu_support=true",
    ]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert f"error: train: --gpu_support is on, but TensorFlow {tf.__version__}" in err
    assert "sees no GPU" in err and "--gpu_support no" in err
    assert not (tmp_path / "cnn").exists()
    # The same run without the option trains on the CPU.
    assert cli.main(argv[:-1]) == 0
