"""Training the Kim CNN: loading the step inputs, the datasets, compilation, early
stopping, `fit_mirrored` (one pod: every GPU it sees, or the CPU), the wide n-gram branch
and the outputs.

`--batch_size` is the global batch: each optimiser step sees that many examples however
many replicas share them, so one pod and a TFJob take the same steps at the same learning
rate (`tf.distribute` splits each batch across the replicas).

The pieces are separate functions so that the multi-worker trainer
(`textcnn.steps.train_distributed`, a custom loop, since Keras 3 `model.fit` fails under
MultiWorkerMirroredStrategy) reuses them unchanged; only `fit_mirrored` is specific to
`MirroredStrategy` + `model.fit`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from textcnn import ngrams, progress, storage
from textcnn.errors import FinalError, InputError
from textcnn.export import export_serving_model
from textcnn.model import CHAR_NGRAM_ORDER, ModelConfig, build_model, read_json
from textcnn.rules import OOV, PAD


@dataclass(frozen=True)
class Splits:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray


@dataclass(frozen=True)
class TrainingRun:
    """What a trainer hands to `finish`; the model holds the best epoch's weights."""

    model: keras.Model
    history: dict[str, list[float]]
    start: datetime
    end: datetime
    strategy: str
    replicas: int
    train_examples: int
    epochs: int  # the most it could run (--epochs)

    @property
    def epochs_run(self) -> int:
        return len(self.history["val_loss"])

    @property
    def best_epoch(self) -> int:
        """1-based epoch of the lowest val_loss: the weights EarlyStopping restores."""
        return int(np.argmin(self.history["val_loss"])) + 1

    @property
    def val_accuracy(self) -> float:
        return self.history["val_accuracy"][self.best_epoch - 1]

    @property
    def duration_seconds(self) -> float:
        return (self.end - self.start).total_seconds()


def _load_split(path: Path, config: ModelConfig) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path) as data:
            x, y = data["x"], data["y"]
    except FileNotFoundError:
        raise InputError(f"{path}: not found; run the prepare-data step first") from None
    except KeyError as e:
        raise InputError(f"{path}: no array {e}; rerun the prepare-data step") from None
    if x.ndim != 2 or x.shape[1] != config.max_length or y.shape != (len(x),) or not len(x):
        raise InputError(
            f"{path}: x {x.shape} and y {y.shape} do not fit the model spec (expected "
            f"[n > 0, {config.max_length}] and [n]); rerun prepare-data and model-metadata "
            "together"
        )
    if x.min() < 0 or x.max() >= config.vocab_size or y.min() < 0 or y.max() >= config.num_classes:
        raise InputError(
            f"{path}: token ids or class ids outside the model spec's vocab_size="
            f"{config.vocab_size} / num_classes={config.num_classes}; rerun prepare-data and "
            "model-metadata together"
        )
    return x.astype("int32"), y.astype("int32")


def load_splits(prepared_dir: str, config: ModelConfig) -> Splits:
    """prepared/train.npz and val.npz, checked against the model spec."""
    x_train, y_train = _load_split(Path(prepared_dir) / "train.npz", config)
    x_val, y_val = _load_split(Path(prepared_dir) / "val.npz", config)
    return Splits(x_train, y_train, x_val, y_val)


def load_embeddings(embeddings_dir: str) -> np.ndarray:
    path = Path(embeddings_dir) / "embeddings.npy"
    try:
        return np.load(path).astype("float32")
    except FileNotFoundError:
        raise InputError(f"{path}: not found; run the embeddings step first") from None


def make_dataset(
    x: np.ndarray, y: np.ndarray, batch_size: int, shuffle_seed: int | None = None
) -> tf.data.Dataset:
    """Global batches of (ids, class ids); shuffled each epoch when a seed is given (the same
    permutations in every process that uses the seed)."""
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle_seed is not None:
        ds = ds.shuffle(len(x), seed=shuffle_seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def make_optimizer(config: ModelConfig) -> keras.optimizers.Optimizer:
    return keras.optimizers.Adam(learning_rate=config.learning_rate)


def compile_model(config: ModelConfig, embeddings: np.ndarray) -> keras.Model:
    """The Kim CNN with its optimiser, loss and metric; call inside `strategy.scope()`."""
    model = build_model(config, embeddings)
    model.compile(
        optimizer=make_optimizer(config),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def report_epoch(epoch: int, epochs: int, logs: dict[str, float]) -> None:
    """A progress line for a finished epoch (0-based `epoch`). The step's last unit of
    progress is `finish`: the wide branch and the export."""
    figures = ", ".join(f"{k} {logs[k]:.4f}" for k in ("loss", "val_accuracy") if k in logs)
    progress.report(epoch + 1, epochs + 1, f"epoch {epoch + 1}/{epochs}: {figures}")


def early_stopping(patience: int) -> keras.callbacks.EarlyStopping:
    """Stop after `patience` epochs without a lower val_loss; keep the best weights."""
    return keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=patience, restore_best_weights=True, verbose=1
    )


@dataclass(frozen=True)
class Inputs:
    """Everything a trainer reads, checked against each other."""

    config: ModelConfig
    vocabulary: list[str]
    splits: Splits
    embeddings: np.ndarray
    # The standardised texts of the splits, row for row (the wide branch's input).
    train_texts: list[str]
    val_texts: list[str]
    max_text_chars: int  # prepare-data cut the texts to this; so does the served model


def _load_texts(path: Path, rows: int) -> list[str]:
    try:
        texts = path.read_text(encoding="utf-8").split("\n")[:-1]
    except FileNotFoundError:
        raise InputError(f"{path}: not found; rerun the prepare-data step") from None
    if len(texts) != rows:
        raise InputError(
            f"{path}: {len(texts)} texts for {rows} rows of ids; rerun the prepare-data step"
        )
    return texts


def load_inputs(prepared_dir: str, embeddings_dir: str, model_spec_dir: str) -> Inputs:
    """The model spec, vocabulary, splits and embedding matrix (numpy only: a multi-worker
    trainer reads them before it starts TensorFlow's collective runtime)."""
    config = ModelConfig.load(model_spec_dir)
    vocab_path = Path(prepared_dir) / "vocab.json"
    vocab = read_json(vocab_path, ("vocabulary", "max_text_chars"), "prepare-data")
    vocabulary = vocab["vocabulary"]
    if len(vocabulary) != config.vocab_size or vocabulary[:2] != [PAD, OOV]:
        raise InputError(
            f"{vocab_path}: {len(vocabulary)} words starting {vocabulary[:2]}, but the model "
            f"spec has vocab_size={config.vocab_size} and ids 0, 1 are {[PAD, OOV]}; rerun "
            "prepare-data and model-metadata together"
        )
    splits = load_splits(prepared_dir, config)
    train_texts: list[str] = []
    val_texts: list[str] = []
    if config.ngrams:
        train_texts = _load_texts(Path(prepared_dir) / "train_tokens.txt", len(splits.x_train))
        val_texts = _load_texts(Path(prepared_dir) / "val_tokens.txt", len(splits.x_val))
    return Inputs(
        config,
        vocabulary,
        splits,
        load_embeddings(embeddings_dir),
        train_texts,
        val_texts,
        int(vocab["max_text_chars"]),
    )


def require_gpu() -> None:
    """FinalError unless TensorFlow sees a GPU. Asked for one (--gpu_support), a pod that
    cannot load CUDA trains on its CPU, many times slower, and TensorFlow only logs it."""
    if tf.config.list_physical_devices("GPU"):
        return
    build = tf.sysconfig.get_build_info()
    cuda = f"CUDA {build.get('cuda_version', '?')}, cuDNN {build.get('cudnn_version', '?')}"
    raise FinalError(
        f"--gpu_support is on, but TensorFlow {tf.__version__} (built for {cuda}) sees no "
        f"GPU (CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}): "
        "check that the pod got an nvidia.com/gpu, that the node's NVIDIA driver is mounted "
        "and that the image has TensorFlow's CUDA libraries (TensorFlow's log above names "
        "any it could not load); or train on the CPU with --gpu_support no"
    )


def fit_mirrored(
    config: ModelConfig,
    embeddings: np.ndarray,
    splits: Splits,
    epochs: int,
    batch_size: int,
    patience: int,
    seed: int,
) -> TrainingRun:
    """`model.fit` under MirroredStrategy: every local GPU, or the CPU.

    The dataset is shuffled by `make_dataset` (seeded), hence `shuffle=False` here.
    """
    strategy = tf.distribute.MirroredStrategy()
    replicas = strategy.num_replicas_in_sync
    start = datetime.now(UTC)
    with strategy.scope():
        model = compile_model(config, embeddings)
    history = model.fit(
        make_dataset(splits.x_train, splits.y_train, batch_size, shuffle_seed=seed),
        validation_data=make_dataset(splits.x_val, splits.y_val, batch_size),
        epochs=epochs,
        callbacks=[
            early_stopping(patience),
            keras.callbacks.LambdaCallback(
                on_epoch_end=lambda epoch, logs: report_epoch(epoch, epochs, logs or {})
            ),
        ],
        shuffle=False,
        verbose=2,
    )
    end = datetime.now(UTC)
    return TrainingRun(
        model=model,
        history={k: [float(v) for v in vs] for k, vs in history.history.items()},
        start=start,
        end=end,
        strategy=type(strategy).__name__,
        replicas=replicas,
        train_examples=len(splits.x_train),
        epochs=epochs,
    )


@dataclass(frozen=True)
class Wide:
    """The fitted n-gram branch: a layer per family."""

    layers: tuple[ngrams.NgramLinear, ...]
    cs: tuple[float, ...]
    val_accuracy: dict[str, float]


def fit_wide(result: TrainingRun, inputs: Inputs) -> Wide:
    """Each n-gram family's model on the training split, with the C of lowest validation
    log loss (`ngrams.fit`). The served scores are the plain mean of the CNN's and the
    families' probabilities: a CNN weight chosen on the validation split, which also
    chose the CNN's epoch, did no better on the bundled test set (3 seeds: 79.3% mean
    against 79.4%)."""
    config, splits = inputs.config, inputs.splits
    fits = []
    for family, order in ((ngrams.WORD, config.ngram_order), (ngrams.CHAR, CHAR_NGRAM_ORDER)):
        layer = ngrams.NgramLinear(
            ngrams.build_vocabulary(inputs.train_texts, order, config.ngram_features, family),
            order,
            config.num_classes,
            family,
        )
        fits.append(
            ngrams.fit(layer, inputs.train_texts, splits.y_train, inputs.val_texts, splits.y_val)
        )
    cnn = result.model.predict(splits.x_val, batch_size=1024, verbose=0)
    combined = np.mean([cnn, *(f.val_probabilities for f in fits)], axis=0)

    def accuracy(p: np.ndarray) -> float:
        return float((p.argmax(axis=1) == splits.y_val).mean())

    return Wide(
        tuple(f.layer for f in fits),
        tuple(f.c for f in fits),
        {
            "cnn": accuracy(cnn),
            **{f.layer.family: accuracy(f.val_probabilities) for f in fits},
            "combined": accuracy(combined),
        },
    )


def finish(
    result: TrainingRun, inputs: Inputs, model_dir: str, training_dir: str
) -> dict[str, float | int]:
    """Fit the wide branch if the architecture has one; write training/ (model.keras,
    history.json, training.json, ngrams.npz) and the serving model/; return the step's
    outputs, whose val_accuracy is the served model's."""
    config = inputs.config
    total = result.epochs + 1
    if config.ngrams:
        progress.report(result.epochs_run, total, "fitting the n-gram branch")
    wide = fit_wide(result, inputs) if config.ngrams else None
    seconds = result.duration_seconds
    training: dict[str, object] = {
        "start": result.start.isoformat(),
        "end": result.end.isoformat(),
        "duration_seconds": seconds,
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch,
        "examples_per_second": result.train_examples * result.epochs_run / seconds,
        "strategy": result.strategy,
        "replicas": result.replicas,
        "architecture": config.architecture,
    }
    val_accuracy = result.val_accuracy
    if wide is not None:
        training["ngrams"] = {
            "features": sum(layer.size for layer in wide.layers),
            "families": {
                layer.family: {"features": layer.size, "order": layer.order, "C": c}
                for layer, c in zip(wide.layers, wide.cs, strict=True)
            },
            "val_accuracy": wide.val_accuracy,
        }
        val_accuracy = wide.val_accuracy["combined"]
    # Both folders are filled before either is renamed into place: a failure leaves neither.
    with storage.atomic_dir(model_dir) as served, storage.atomic_dir(training_dir) as tmp:
        export_serving_model(
            result.model,
            inputs.vocabulary,
            config.max_length,
            config.classes,
            served,
            wide=() if wide is None else wide.layers,
            max_chars=inputs.max_text_chars,
        )
        result.model.save(tmp / "model.keras")
        (tmp / "history.json").write_text(json.dumps(result.history, indent=2) + "\n")
        (tmp / "training.json").write_text(json.dumps(training, indent=2) + "\n")
        if wide is not None:  # the branch as arrays, for inspection and the tests
            np.savez_compressed(
                tmp / "ngrams.npz",
                **{
                    f"{layer.family}_{name}": array
                    for layer in wide.layers
                    for name, array in (
                        ("vocabulary", np.array(layer.vocabulary)),
                        ("kernel", layer.kernel.numpy()),
                        ("bias", layer.bias.numpy()),
                    )
                },
            )
    progress.report(total, total, f"exported; validation accuracy {val_accuracy:.4f}")
    return {
        "val_accuracy": val_accuracy,
        "epochs_run": result.epochs_run,
        "duration_seconds": round(result.duration_seconds, 3),
    }
