"""The Kim (2014) convolutional text classifier and the config it is built from.

`ModelConfig` mirrors spec/model_config.json; `build_model` turns it (and the
word2vec matrix) into a Keras model whose input is named `tokens`, so training, the
serving export and the distributed trainer all build the very same network. `layers`
describes that network without building it (Keras is imported only to build), so
model-metadata checks a spec and counts its parameters without TensorFlow.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from textcnn.errors import InputError

if TYPE_CHECKING:
    import keras

CONFIG_FILE = "model_config.json"
# What a trainer writes to its cnn/ folder (textcnn.training.finish), for export to read.
CNN_FILES = ("model.keras", "history.json", "training.json", "val_probabilities.npy")
# The wide branch's character n-grams are 2..5 long. Averaged with the word 1-2-gram model
# they gave 80.2% on the bundled data's 10 folds against 78.9% for the words alone
# (scikit-learn's char_wb, measured once; 1-4 and 2-6 did no better). Not an option.
CHAR_NGRAM_ORDER = 5


def read_json(path: Path, keys: tuple[str, ...], producer: str) -> dict[str, Any]:
    """A JSON object from a step's output folder, with the keys this step relies on."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: not found; run the {producer} step first") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not valid JSON ({e}); rerun the {producer} step") from None
    missing = [k for k in keys if not isinstance(data, dict) or k not in data]
    if missing:
        raise InputError(f"{path}: missing {', '.join(missing)}; rerun the {producer} step")
    return data


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to build the network: sizes from the data, hyperparameters."""

    vocab_size: int
    max_length: int
    num_classes: int
    classes: list[str]
    embedding_dim: int
    filter_sizes: list[int]
    num_filters: int
    num_conv_layers: int
    maxpool_strides: int
    dropout: float
    learning_rate: float
    trainable_embeddings: bool = True
    # "cnn_ngrams": the CNN averaged with the wide n-gram branch (textcnn.ngrams); "cnn":
    # the plain Kim (2014) CNN. Both branches see the same text.
    architecture: str = "cnn_ngrams"
    ngram_order: int = 2
    ngram_features: int = 300_000

    @property
    def ngrams(self) -> bool:
        return self.architecture == "cnn_ngrams"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def load(cls, model_spec_dir: str | Path) -> ModelConfig:
        """Read model_config.json from a spec folder."""
        path = Path(model_spec_dir) / CONFIG_FILE
        names = [f.name for f in fields(cls)]
        required = tuple(f.name for f in fields(cls) if f.default is MISSING)
        data = read_json(path, required, "model-metadata")
        unknown = sorted(data.keys() - set(names))
        if unknown:
            raise InputError(f"{path}: unknown keys {unknown}; rerun the model-metadata step")
        return cls(**data)


def check_sequence_length(config: ModelConfig) -> None:
    """Fail early, naming the options, when a branch would shrink the text to nothing."""
    for k in config.filter_sizes:
        n = config.max_length
        for layer in range(config.num_conv_layers):
            n = n - k + 1  # valid convolution
            if n < 1:
                raise InputError(
                    f"max_length={config.max_length} is too short for filter size {k} with "
                    f"num_conv_layers={config.num_conv_layers} (maxpool_strides="
                    f"{config.maxpool_strides}): convolution layer {layer + 1} has no output; "
                    "raise --max_length, or lower --num_conv_layers or the filter sizes"
                )
            if layer < config.num_conv_layers - 1:
                n //= config.maxpool_strides  # pooling between stacked layers


class Layer(NamedTuple):
    name: str
    kind: str  # the Keras class
    shape: tuple[int, ...]  # output shape, without the batch
    params: int


def layers(config: ModelConfig) -> list[Layer]:
    """The layers `build_model` makes, in its order, with their output shapes and parameter
    counts (tests/test_model.py holds them to Keras' own)."""
    check_sequence_length(config)
    d, f = config.embedding_dim, config.num_filters
    out = [
        Layer("tokens", "InputLayer", (config.max_length,), 0),
        Layer("embedding", "Embedding", (config.max_length, d), config.vocab_size * d),
    ]
    for k in config.filter_sizes:
        n, channels = config.max_length, d
        for layer in range(config.num_conv_layers):
            if layer > 0:
                n //= config.maxpool_strides
                out.append(Layer(f"pool_{k}_{layer}", "MaxPooling1D", (n, f), 0))
            n -= k - 1
            out.append(Layer(f"conv_{k}_{layer + 1}", "Conv1D", (n, f), k * channels * f + f))
            channels = f
        out.append(Layer(f"max_over_time_{k}", "GlobalMaxPooling1D", (f,), 0))
    width = f * len(config.filter_sizes)
    if len(config.filter_sizes) > 1:
        out.append(Layer("concat", "Concatenate", (width,), 0))
    out.append(Layer("dropout", "Dropout", (width,), 0))
    out.append(Layer("scores", "Dense", (config.num_classes,), (width + 1) * config.num_classes))
    return out


def build_model(config: ModelConfig, embeddings: np.ndarray | None = None) -> keras.Model:
    """Kim CNN: embedding, parallel convolution branches max-pooled over time, softmax.

    `embeddings` (float32 [vocab_size, embedding_dim]) initialises the embedding layer;
    without it the layer starts random.
    """
    import keras  # here, not at the top: describing a model needs no TensorFlow

    check_sequence_length(config)
    expected = (config.vocab_size, config.embedding_dim)
    if embeddings is not None and tuple(embeddings.shape) != expected:
        raise InputError(
            f"embedding matrix has shape {tuple(embeddings.shape)}, the model config expects "
            f"{expected} (vocab_size, embedding_dim); rerun the embeddings step with "
            f"--embedding_dim={config.embedding_dim} on the same prepared data"
        )
    tokens = keras.Input(shape=(config.max_length,), dtype="int32", name="tokens")
    # `weights` rather than a Constant initializer: Constant would copy the whole matrix
    # into the model's JSON config (and every saved model.keras).
    embedded = keras.layers.Embedding(
        config.vocab_size,
        config.embedding_dim,
        trainable=config.trainable_embeddings,
        weights=None if embeddings is None else [np.asarray(embeddings, dtype="float32")],
        name="embedding",
    )(tokens)
    branches = []
    for k in config.filter_sizes:
        x = embedded
        for layer in range(config.num_conv_layers):
            if layer > 0:
                x = keras.layers.MaxPool1D(
                    pool_size=config.maxpool_strides,
                    strides=config.maxpool_strides,
                    name=f"pool_{k}_{layer}",
                )(x)
            x = keras.layers.Conv1D(
                config.num_filters,
                k,
                activation="relu",
                padding="valid",
                name=f"conv_{k}_{layer + 1}",
            )(x)
        branches.append(keras.layers.GlobalMaxPool1D(name=f"max_over_time_{k}")(x))
    x = branches[0] if len(branches) == 1 else keras.layers.Concatenate(name="concat")(branches)
    x = keras.layers.Dropout(config.dropout, name="dropout")(x)
    scores = keras.layers.Dense(config.num_classes, activation="softmax", name="scores")(x)
    return keras.Model(tokens, scores, name="textcnn")
