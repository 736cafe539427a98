"""train-distributed: the Kim CNN on several workers (a TFJob), with MultiWorkerMirroredStrategy.

Keras 3 `model.fit` fails under MultiWorkerMirroredStrategy (keras-team/keras#20585), so
this is a custom loop: `strategy.run` of a `GradientTape` step whose loss is
`tf.nn.compute_average_loss` over the global batch (the optimiser sums the replicas'
gradients, so the sum of per-replica losses divided by the global batch is the mean).
Everything else is the single-pod trainer's (`textcnn.training`): inputs, model, optimiser,
seeded shuffling, the Keras EarlyStopping callback and the outputs. Like it, the replicas
train the CNN only: the wide n-gram branch is fitted once, by fit-ngrams beside the TFJob,
not again in every replica.

`TF_CONFIG` (set by the training operator on a TFJob's `tensorflow` container, or built
here from a TrainJob node's JobSet names: `textcnn.tf_config.jobset_tf_config`) is parsed before
the strategy is created, which must happen before TensorFlow starts its runtime. Each
worker reads the same staged data and shuffles it with the same seed into the very
batches of `--batch_size` that one pod trains on; `tf.distribute` gives each replica its
slice of every batch (`per_replica_batches`), and the loss is the mean over the whole
batch, so the optimiser takes the steps one pod takes. Loss and accuracy are summed over
all workers, so every worker sees the same validation loss and early stopping ends them
all at the same epoch. The chief (or worker 0 when there is no
chief) writes the CNN; the others write theirs to a temporary folder and delete it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime

import keras
import numpy as np
import tensorflow as tf

from textcnn import cpus
from textcnn.model import ModelConfig, build_model
from textcnn.prepared import Split
from textcnn.tf_config import JOBSET_NAME, TF_CONFIG, jobset_tf_config, parse_tf_config
from textcnn.training import (
    Splits,
    TrainingRun,
    early_stopping,
    finish,
    load_inputs,
    make_dataset,
    make_optimizer,
    report_epoch,
    require_gpu,
)

METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")


def per_replica_batches(batch_size: int, replicas: int) -> list[int]:
    """How `tf.distribute` splits one global batch: as evenly as it can, the first
    replicas taking one more example when it does not divide."""
    return [batch_size // replicas + (r < batch_size % replicas) for r in range(replicas)]


def distributed_dataset(
    strategy: tf.distribute.Strategy,
    split: Split,
    max_length: int,
    batch_size: int,
    shuffle_seed: int | None,
) -> tf.distribute.DistributedDataset:
    """The single-pod trainer's global batches, each split across the replicas: every
    worker streams the same shards through the same seeded pipeline and keeps its
    replicas' slices (DATA sharding), so the optimiser takes one pod's steps."""
    ds = make_dataset(split, max_length, batch_size, shuffle_seed=shuffle_seed)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return strategy.experimental_distribute_dataset(ds.with_options(options))


def _sums(y: tf.Tensor, scores: tf.Tensor, per_example_loss: tf.Tensor) -> tf.Tensor:
    """[loss sum, correct predictions, examples] of one replica's batch."""
    correct = tf.equal(tf.argmax(scores, axis=1, output_type=tf.int32), y)
    return tf.stack(
        [
            tf.reduce_sum(per_example_loss),
            tf.reduce_sum(tf.cast(correct, tf.float32)),
            tf.cast(tf.size(y), tf.float32),
        ]
    )


def fit_multi_worker(
    strategy: tf.distribute.Strategy,
    config: ModelConfig,
    embeddings: np.ndarray,
    splits: Splits,
    epochs: int,
    batch_size: int,
    patience: int,
    seed: int,
) -> TrainingRun:
    """Train under `strategy` in a custom loop; the returned model is a plain (undistributed)
    copy holding the best epoch's weights, exported exactly like the single-pod model."""
    replicas = strategy.num_replicas_in_sync
    loss_fn = keras.losses.SparseCategoricalCrossentropy(reduction=None)
    start = datetime.now(UTC)
    with strategy.scope():
        model = build_model(config, embeddings)
        optimizer = make_optimizer(config)
    length = config.max_length
    train_data = distributed_dataset(strategy, splits.train, length, batch_size, seed)
    val_data = distributed_dataset(strategy, splits.val, length, batch_size, None)

    def train_replica(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            scores = model(x, training=True)
            per_example = loss_fn(y, scores)
            # Without global_batch_size, the sum over the replicas' batch sizes: the mean over
            # this step's whole batch, the last (shorter) one included, as Keras takes it.
            loss = tf.nn.compute_average_loss(per_example)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return _sums(y, scores, per_example)

    def eval_replica(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        scores = model(x, training=False)
        return _sums(y, scores, loss_fn(y, scores))

    @tf.function
    def train_step(batch: tuple[tf.Tensor, tf.Tensor]) -> tf.Tensor:
        return strategy.reduce("SUM", strategy.run(train_replica, args=batch), axis=None)

    @tf.function
    def eval_step(batch: tuple[tf.Tensor, tf.Tensor]) -> tf.Tensor:
        return strategy.reduce("SUM", strategy.run(eval_replica, args=batch), axis=None)

    def epoch_means(
        step: Callable[..., tf.Tensor], data: tf.distribute.DistributedDataset
    ) -> tuple[float, float]:
        total = np.zeros(3)
        for batch in data:
            total += step(batch).numpy()
        return float(total[0] / total[2]), float(total[1] / total[2])

    history: dict[str, list[float]] = {k: [] for k in METRICS}
    stopper = early_stopping(patience)  # the very callback model.fit gets, driven by hand
    stopper.set_model(model)
    model.stop_training = False
    stopper.on_train_begin()
    for epoch in range(epochs):
        logs = dict(
            zip(
                METRICS,
                (*epoch_means(train_step, train_data), *epoch_means(eval_step, val_data)),
                strict=True,
            )
        )
        for key, value in logs.items():
            history[key].append(value)
        print(
            f"Epoch {epoch + 1}/{epochs} - " + " - ".join(f"{k}: {v:.4f}" for k, v in logs.items()),
            flush=True,
        )
        report_epoch(epoch, epochs, logs)
        stopper.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    stopper.on_train_end()  # restores the best epoch's weights
    end = datetime.now(UTC)
    plain = build_model(config)
    plain.set_weights(model.get_weights())
    return TrainingRun(
        model=plain,
        history=history,
        start=start,
        end=end,
        strategy="MultiWorkerMirroredStrategy",
        replicas=replicas,
        train_examples=splits.train.rows,
        epochs=epochs,
    )


def run(
    prepared_dir: str,
    embeddings_dir: str,
    model_spec_dir: str,
    epochs: int,
    batch_size: int,
    patience: int,
    seed: int,
    cnn_dir: str,
    gpu_support: bool = False,
) -> dict[str, float | int]:
    """Train the CNN on prepared/ with the model spec as one worker of TF_CONFIG's cluster;
    the chief writes it to CNN_DIR (the train step's output). With GPU_SUPPORT, fail
    unless TensorFlow sees a GPU."""
    if JOBSET_NAME in os.environ and TF_CONFIG not in os.environ:
        # A TrainJob node: TensorFlow's cluster resolver reads the variable itself.
        os.environ[TF_CONFIG] = jobset_tf_config(os.environ)
    role = parse_tf_config(os.environ.get(TF_CONFIG))
    if gpu_support:  # listing devices starts no runtime: the strategy may still come after
        require_gpu()
    inputs = load_inputs(prepared_dir, embeddings_dir, model_spec_dir)  # numpy only
    # Before any other TensorFlow op: the threads, then the strategy, which configures
    # the collective runtime.
    cpus.limit_tensorflow()
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    keras.utils.set_random_seed(seed)
    print(
        f"{role.task_type} {role.index} of {role.num_workers or 1} workers, "
        f"{strategy.num_replicas_in_sync} replicas in sync",
        flush=True,
    )
    result = fit_multi_worker(
        strategy,
        inputs.config,
        inputs.embeddings,
        inputs.splits,
        epochs,
        batch_size,
        patience,
        seed,
    )
    if role.is_chief:
        return finish(result, inputs, cnn_dir)
    # Every worker saves, as TensorFlow's multi-worker guide asks; only the chief's stays.
    scratch = tempfile.mkdtemp(prefix=f"textcnn-{role.task_type}-{role.index}-")
    try:
        return finish(result, inputs, f"{scratch}/cnn")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
