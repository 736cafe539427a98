"""train: the single-pod training step (MirroredStrategy: every local GPU, or the CPU).

It trains the CNN only; fit-ngrams fits the wide branch beside it and export assembles
the serving model."""

from __future__ import annotations

import keras

from textcnn import cpus
from textcnn.training import finish, fit_mirrored, load_inputs, require_gpu


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
    """Train the CNN on prepared/ with the model spec; write it to CNN_DIR. With
    GPU_SUPPORT, fail unless TensorFlow sees a GPU."""
    if gpu_support:
        require_gpu()
    cpus.limit_tensorflow()
    keras.utils.set_random_seed(seed)
    inputs = load_inputs(prepared_dir, embeddings_dir, model_spec_dir)
    result = fit_mirrored(
        inputs.config, inputs.embeddings, inputs.splits, epochs, batch_size, patience, seed
    )
    return finish(result, inputs, cnn_dir)
