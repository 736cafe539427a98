"""Training the Kim CNN: loading the step inputs, the datasets, compilation, early
stopping, `fit_mirrored` (one pod: every GPU it sees, or the CPU) and the outputs. The
trainers train the CNN only: the wide n-gram branch is fitted once, beside them
(`textcnn.steps.fit_ngrams`), and `textcnn.steps.export` assembles the serving model.

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

from textcnn import progress, storage
from textcnn.errors import FinalError, InputError
from textcnn.model import ModelConfig, build_model
from textcnn.prepared import RECORD, Split, check_split, check_vocabulary

# Rows the training input mixes: prepare-data's split is a random permutation, so each
# shard is a random sample; the shards' order is shuffled each epoch, and rows mix within
# this window, which bounds the input pipeline's memory (a full shuffle below it).
SHUFFLE_ROWS = 100_000


@dataclass(frozen=True)
class Splits:
    train: Split
    val: Split


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


def load_splits(prepared_dir: str, config: ModelConfig) -> Splits:
    """The train and val shards, each checked against the model spec, one at a time."""
    return Splits(
        check_split(prepared_dir, "train", config), check_split(prepared_dir, "val", config)
    )


def load_embeddings(embeddings_dir: str) -> np.ndarray:
    path = Path(embeddings_dir) / "embeddings.npy"
    try:
        return np.load(path).astype("float32")
    except FileNotFoundError:
        raise InputError(f"{path}: not found; run the embeddings step first") from None


def make_dataset(
    split: Split, max_length: int, batch_size: int, shuffle_seed: int | None = None
) -> tf.data.Dataset:
    """Global batches of (ids, class ids), streamed from the split's shards one at a time
    (their fixed-length records, read by TensorFlow itself); shuffled each epoch when a
    seed is given (the shards' order, then the rows within SHUFFLE_ROWS), alike in every
    process that uses the seed."""

    def decode(record: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        row = tf.io.decode_raw(record, tf.int32, little_endian=True)
        return row[:max_length], row[max_length]

    ds = tf.data.Dataset.from_tensor_slices([str(f) for f in split.files])
    if shuffle_seed is not None:
        ds = ds.shuffle(len(split.files), seed=shuffle_seed, reshuffle_each_iteration=True)
    record_bytes = RECORD.itemsize * (max_length + 1)
    ds = ds.flat_map(lambda path: tf.data.FixedLengthRecordDataset(path, record_bytes))
    if shuffle_seed is not None:
        window = min(split.rows, SHUFFLE_ROWS)
        ds = ds.shuffle(window, seed=shuffle_seed, reshuffle_each_iteration=True)
    # The batches it yields, known: Keras counts its steps instead of running out of data.
    batches = tf.data.experimental.assert_cardinality(-(-split.rows // batch_size))
    ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size).apply(batches).prefetch(tf.data.AUTOTUNE)


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
    progress is `finish`: writing the model."""
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
    splits: Splits
    embeddings: np.ndarray


def load_inputs(prepared_dir: str, embeddings_dir: str, model_spec_dir: str) -> Inputs:
    """The model spec, splits and embedding matrix, the vocabulary checked (numpy only: a
    multi-worker trainer reads them before it starts TensorFlow's collective runtime)."""
    config = ModelConfig.load(model_spec_dir)
    check_vocabulary(prepared_dir, config)
    return Inputs(config, load_splits(prepared_dir, config), load_embeddings(embeddings_dir))


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
        make_dataset(splits.train, config.max_length, batch_size, shuffle_seed=seed),
        validation_data=make_dataset(splits.val, config.max_length, batch_size),
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
        train_examples=splits.train.rows,
        epochs=epochs,
    )


def finish(result: TrainingRun, inputs: Inputs, cnn_dir: str) -> dict[str, float | int]:
    """Write the trained CNN to CNN_DIR: model.keras (the best epoch's weights),
    history.json, training.json and its validation probabilities, which `export` averages
    with the wide branch's; return the step's outputs."""
    total = result.epochs + 1
    progress.report(result.epochs_run, total, "writing the model")
    seconds = result.duration_seconds
    training = {
        "start": result.start.isoformat(),
        "end": result.end.isoformat(),
        "duration_seconds": seconds,
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch,
        "examples_per_second": result.train_examples * result.epochs_run / seconds,
        "strategy": result.strategy,
        "replicas": result.replicas,
        "architecture": inputs.config.architecture,
        "val_accuracy": result.val_accuracy,
    }
    val_data = make_dataset(inputs.splits.val, inputs.config.max_length, 1024)
    val = result.model.predict(val_data, verbose=0)
    with storage.atomic_dir(cnn_dir) as tmp:
        result.model.save(tmp / "model.keras")
        (tmp / "history.json").write_text(json.dumps(result.history, indent=2) + "\n")
        (tmp / "training.json").write_text(json.dumps(training, indent=2) + "\n")
        np.save(tmp / "val_probabilities.npy", val)
    progress.report(total, total, f"written; validation accuracy {result.val_accuracy:.4f}")
    return {
        "val_accuracy": result.val_accuracy,
        "epochs_run": result.epochs_run,
        "duration_seconds": round(result.duration_seconds, 3),
    }
