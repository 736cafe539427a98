"""train: the single-pod training step (MirroredStrategy: every local GPU, or the CPU)."""

from __future__ import annotations

import keras

from textcnn.training import finish, fit_mirrored, load_inputs, require_gpu


def run(
    prepared_dir: str,
    embeddings_dir: str,
    model_spec_dir: str,
    epochs: int,
    batch_size: int,
    patience: int,
    seed: int,
    model_dir: str,
    training_dir: str,
    gpu_support: bool = False,
) -> dict[str, float | int]:
    """Train on prepared/ with the model spec; write training/ and the serving model/. With
    GPU_SUPPORT, fail unless TensorFlow sees a GPU."""
    if gpu_support:
        require_gpu()
    keras.utils.set_random_seed(seed)
    inputs = load_inputs(prepared_dir, embeddings_dir, model_spec_dir)
    result = fit_mirrored(
        inputs.config, inputs.embeddings, inputs.splits, epochs, batch_size, patience, seed
    )
    return finish(result, inputs, model_dir, training_dir)
