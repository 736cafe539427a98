"""model-metadata: fix the model spec from the prepared data and the hyperparameters.

A spec that cannot be built (too short a max_length for the filters, a dimension
mismatch) fails here, before any training pod starts. Its layer table and parameter count
(`textcnn.model.layers`, the network described without building it, so this step needs
no TensorFlow) go to spec/ and to ML Metadata as a ModelSpec.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from textcnn import metadata, storage
from textcnn.errors import InputError
from textcnn.model import CHAR_NGRAM_ORDER, CONFIG_FILE, ModelConfig, layers, read_json

SUMMARY_FILE = "summary.txt"


def model_summary(config: ModelConfig) -> tuple[str, int]:
    """The layer table, as Keras' model.summary() lists it, and the parameter count."""
    described = layers(config)
    rows = [
        (f"{layer.name} ({layer.kind})", str((None, *layer.shape)), f"{layer.params:,}")
        for layer in described
    ]
    total = sum(layer.params for layer in described)
    frozen = 0 if config.trainable_embeddings else config.vocab_size * config.embedding_dim
    width = max(len(r[0]) for r in rows) + 2
    lines = [
        'Model: "textcnn"',
        f"{'Layer (type)':<{width}}{'Output Shape':<20}{'Param #':>12}",
        *(f"{name:<{width}}{shape:<20}{params:>12}" for name, shape, params in rows),
        f"Total params: {total:,}",
        f"Trainable params: {total - frozen:,}",
        f"Non-trainable params: {frozen:,}",
    ]
    return "\n".join(lines) + "\n", total


MLMD_FILE = "mlmd.json"  # the ModelSpec's id in ML Metadata


def run(
    prepared_dir: str,
    embeddings_dir: str,
    filter_sizes: list[int],
    num_filters: int,
    num_conv_layers: int,
    maxpool_strides: int,
    dropout: float,
    embedding_dim: int,
    learning_rate: float,
    output_dir: str,
    metadata_store: str,
    run_name: str,
    artifact_root: str = "",
    spec_key: str = "",
    static_embeddings: bool = False,
    architecture: str = "cnn_ngrams",
    ngram_order: int = 2,
    ngram_features: int = 300_000,
) -> dict[str, str | int]:
    """Write spec/ (model_config.json, summary.txt) and record a ModelSpec artifact.

    With `artifact_root` the artifact is recorded where the workflow stores it
    (`<root>/<spec_key>`, by default `<root>/<run_name>/spec`), not at the pod path it was
    written to. Its id is also written to spec/mlmd.json, for a run that reuses the spec."""
    vocab = read_json(
        Path(prepared_dir) / "vocab.json", ("vocabulary", "max_length"), "prepare-data"
    )
    labels = read_json(Path(prepared_dir) / "labels.json", ("classes",), "prepare-data")
    emb = read_json(Path(embeddings_dir) / "embeddings.json", ("dim",), "embeddings")
    if emb["dim"] != embedding_dim:
        raise InputError(
            f"--embedding_dim={embedding_dim} but the word vectors in "
            f"{Path(embeddings_dir) / 'embeddings.json'} have {emb['dim']} dimensions; set "
            f"--embedding_dim={emb['dim']} (or use vectors of the dimension you want)"
        )
    config = ModelConfig(
        vocab_size=len(vocab["vocabulary"]),
        max_length=vocab["max_length"],
        num_classes=len(labels["classes"]),
        classes=list(labels["classes"]),
        embedding_dim=embedding_dim,
        filter_sizes=list(filter_sizes),
        num_filters=num_filters,
        num_conv_layers=num_conv_layers,
        maxpool_strides=maxpool_strides,
        dropout=dropout,
        learning_rate=learning_rate,
        trainable_embeddings=not static_embeddings,
        architecture=architecture,
        ngram_order=ngram_order,
        ngram_features=ngram_features,
    )
    summary, params = model_summary(config)
    if config.ngrams:  # fitted after the CNN, so its size is known only then
        summary += (
            f"Wide n-gram branch: word 1-{ngram_order}-gram and character "
            f"2-{CHAR_NGRAM_ORDER}-gram presence, at most {ngram_features:,} n-grams of each x "
            f"{config.num_classes} classes, an NB-weighted logistic regression per family "
            "fitted on the training split after the CNN; the served scores average the CNN "
            "with the families' mean.\n"
        )

    storage.write_text(storage.join(output_dir, SUMMARY_FILE), summary)
    storage.write_text(storage.join(output_dir, CONFIG_FILE), config.to_json())
    if artifact_root:
        uri = storage.join(artifact_root, spec_key or f"{run_name}/spec")
    else:
        uri = output_dir if storage.is_gcs(output_dir) else os.path.abspath(output_dir)
    properties: dict[str, int | float | str] = {
        "vocab_size": config.vocab_size,
        "max_length": config.max_length,
        "num_classes": config.num_classes,
        "classes": json.dumps(config.classes),
        "embedding_dim": embedding_dim,
        "filter_sizes": ",".join(str(k) for k in config.filter_sizes),
        "num_filters": num_filters,
        "num_conv_layers": num_conv_layers,
        "maxpool_strides": maxpool_strides,
        "dropout": dropout,
        "learning_rate": learning_rate,
        "trainable_embeddings": int(config.trainable_embeddings),
        "architecture": architecture,
        "ngram_order": ngram_order,
        "ngram_features": ngram_features,
        "params": params,
        "summary": summary,
    }
    spec_id = metadata.record_artifact(
        metadata_store,
        run_name=run_name,
        type_name="ModelSpec",
        uri=uri,
        properties=properties,
    )
    storage.write_text(storage.join(output_dir, MLMD_FILE), json.dumps({"model_spec_id": spec_id}))
    print(summary, end="")
    return {"model_spec_id": str(spec_id), "params": params}
