"""The Kim CNN builder, its config, and the model-metadata step (real Keras, real MLMD)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import pytest
from helpers import write_inputs

from textcnn import cli, metadata
from textcnn.errors import InputError
from textcnn.model import ModelConfig, build_model, layers
from textcnn.steps import model_metadata

DEFAULT = ModelConfig(
    vocab_size=50,
    max_length=20,
    num_classes=3,
    classes=["a", "b", "c"],
    embedding_dim=8,
    filter_sizes=[3, 4, 5],
    num_filters=6,
    num_conv_layers=1,
    maxpool_strides=2,
    dropout=0.5,
    learning_rate=1e-3,
)


def expected_params(c: ModelConfig) -> int:
    """Kim CNN parameter count, derived by hand from the architecture."""
    conv = sum(
        k * c.embedding_dim * c.num_filters
        + c.num_filters
        + (c.num_conv_layers - 1) * (k * c.num_filters * c.num_filters + c.num_filters)
        for k in c.filter_sizes
    )
    dense = len(c.filter_sizes) * c.num_filters * c.num_classes + c.num_classes
    return c.vocab_size * c.embedding_dim + conv + dense


def layer_configs(model: keras.Model, kind: type) -> list[dict]:
    return [layer.get_config() for layer in model.layers if isinstance(layer, kind)]


@pytest.mark.parametrize(
    "config",
    [
        DEFAULT,
        replace(DEFAULT, filter_sizes=[2], num_conv_layers=3, maxpool_strides=2),
        replace(DEFAULT, max_length=41, filter_sizes=[3, 5], num_conv_layers=2, maxpool_strides=3),
    ],
)
def test_layers_describe_the_built_model(config: ModelConfig) -> None:
    """What model-metadata reports without Keras is what Keras builds, layer by layer."""
    built = {
        layer.name: (type(layer).__name__, tuple(layer.output.shape)[1:], layer.count_params())
        for layer in build_model(config).layers
    }
    described = {layer.name: (layer.kind, layer.shape, layer.params) for layer in layers(config)}
    assert described == built
    assert sum(layer.params for layer in layers(config)) == expected_params(config)


def test_default_model_shape_and_embedding_initialisation() -> None:
    matrix = np.random.default_rng(0).normal(size=(50, 8)).astype("float32")
    model = build_model(DEFAULT, matrix)
    assert model.input.name == "tokens" and model.input.dtype == "int32"
    assert tuple(model.input.shape) == (None, 20)
    assert tuple(model.output.shape) == (None, 3)
    np.testing.assert_array_equal(model.get_layer("embedding").get_weights()[0], matrix)
    assert model.get_layer("embedding").trainable
    assert model.count_params() == expected_params(DEFAULT)
    scores = model(np.zeros((2, 20), dtype="int32"), training=False).numpy()
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-6)  # softmax
    # The matrix is set as weights, not kept in the (JSON) config.
    assert len(json.dumps(model.get_config())) < 20_000


@pytest.mark.parametrize(
    "field, value",
    [
        ("filter_sizes", [2, 3]),
        ("num_filters", 9),
        ("num_conv_layers", 2),
        ("embedding_dim", 5),
        ("vocab_size", 40),
        ("num_classes", 2),
    ],
)
def test_size_hyperparameters_change_the_parameter_count(field: str, value: object) -> None:
    config = replace(DEFAULT, **{field: value})
    model = build_model(config)
    assert model.count_params() == expected_params(config) != expected_params(DEFAULT)
    assert model.count_params() != build_model(DEFAULT).count_params()


def test_maxpool_strides_change_the_pooling_between_stacked_layers() -> None:
    stacked = replace(DEFAULT, num_conv_layers=2)
    wide = replace(stacked, maxpool_strides=3)
    a, b = build_model(stacked), build_model(wide)
    assert a.get_config() != b.get_config()
    for config, model in ((stacked, a), (wide, b)):
        pools = layer_configs(model, keras.layers.MaxPool1D)
        assert len(pools) == len(config.filter_sizes)
        s = config.maxpool_strides
        assert all(p["pool_size"] == (s,) and p["strides"] == (s,) for p in pools)
        for k in config.filter_sizes:  # valid conv, pool, valid conv
            length = (config.max_length - k + 1) // s - k + 1
            assert model.get_layer(f"conv_{k}_2").output.shape[1] == length


def test_single_layer_branches_have_no_intermediate_pooling() -> None:
    assert layer_configs(build_model(DEFAULT), keras.layers.MaxPool1D) == []


def test_dropout_rate_is_the_configured_one() -> None:
    rates = {
        d: layer_configs(build_model(replace(DEFAULT, dropout=d)), keras.layers.Dropout)
        for d in (0.5, 0.1)
    }
    assert rates[0.5][0]["rate"] == 0.5 and rates[0.1][0]["rate"] == 0.1


def test_frozen_embeddings_are_not_trained() -> None:
    model = build_model(replace(DEFAULT, trainable_embeddings=False))
    assert not model.get_layer("embedding").trainable
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == expected_params(DEFAULT) - 50 * 8


@pytest.mark.parametrize(
    "max_length, k, layers, strides",
    [
        (4, 5, 1, 2),  # one layer: the window is longer than the text
        (10, 3, 2, 4),  # 10 -> 8 -> pooled 2 -> window 3 does not fit
        (7, 3, 2, 2),  # 7 -> 5 -> pooled 2: one short of (8, 3, 2, 2) below
        (6, 3, 3, 1),  # 6 -> 4 -> 2 -> 0
    ],
)
def test_too_short_sequence_is_an_input_error(
    max_length: int, k: int, layers: int, strides: int
) -> None:
    config = replace(
        DEFAULT,
        max_length=max_length,
        filter_sizes=[2, k],
        num_conv_layers=layers,
        maxpool_strides=strides,
    )
    with pytest.raises(InputError) as e:
        build_model(config)
    message = str(e.value)
    assert f"max_length={max_length}" in message and f"filter size {k}" in message
    assert f"num_conv_layers={layers}" in message


@pytest.mark.parametrize(
    "max_length, k, layers, strides",
    [
        (5, 5, 1, 2),
        (8, 3, 2, 2),
        (7, 3, 3, 1),  # each exactly one time step at the end
    ],
)
def test_shortest_buildable_sequences_build_and_run(
    max_length: int, k: int, layers: int, strides: int
) -> None:
    config = replace(
        DEFAULT,
        max_length=max_length,
        filter_sizes=[k],
        num_conv_layers=layers,
        maxpool_strides=strides,
    )
    model = build_model(config)
    assert model.get_layer(f"conv_{k}_{layers}").output.shape[1] == 1
    assert model(np.ones((1, max_length), dtype="int32")).shape == (1, 3)


def test_embedding_matrix_of_the_wrong_shape_is_an_input_error() -> None:
    with pytest.raises(InputError, match=r"shape \(50, 7\).*\(50, 8\)"):
        build_model(DEFAULT, np.zeros((50, 7), dtype="float32"))


def test_config_round_trip_and_bad_files(tmp_path: Path) -> None:
    (tmp_path / "model_config.json").write_text(DEFAULT.to_json())
    assert ModelConfig.load(tmp_path) == DEFAULT
    data = json.loads(DEFAULT.to_json())
    del data["num_filters"]
    (tmp_path / "model_config.json").write_text(json.dumps(data | {"colour": 1}))
    with pytest.raises(InputError, match=r"model_config\.json: missing num_filters"):
        ModelConfig.load(tmp_path)
    (tmp_path / "model_config.json").write_text(
        json.dumps(json.loads(DEFAULT.to_json()) | {"colour": 1})
    )
    with pytest.raises(InputError, match=r"unknown keys \['colour'\]"):
        ModelConfig.load(tmp_path)


# --- model-metadata step -----------------------------------------------------------------


def metadata_args(root: Path, **overrides: object) -> dict:
    return (
        dict(
            prepared_dir=str(root / "prepared"),
            embeddings_dir=str(root / "embeddings"),
            filter_sizes=[2, 3],
            num_filters=4,
            num_conv_layers=1,
            maxpool_strides=2,
            dropout=0.3,
            embedding_dim=8,
            learning_rate=0.002,
            output_dir=str(root / "spec-out"),
            metadata_store=f"sqlite:{root / 'md.sqlite'}",
            run_name="wf-1",
        )
        | overrides
    )


def test_model_metadata_writes_the_spec_and_records_it(tmp_path: Path) -> None:
    inputs = write_inputs(tmp_path, n_train=8, n_val=8, dim=8)
    args = metadata_args(tmp_path)
    result = model_metadata.run(**args)

    config = ModelConfig.load(tmp_path / "spec-out")
    assert config == replace(
        inputs.config, filter_sizes=[2, 3], num_filters=4, dropout=0.3, learning_rate=0.002
    )
    assert result["params"] == expected_params(config) == build_model(config).count_params()
    summary = (tmp_path / "spec-out" / "summary.txt").read_text()
    assert "tokens" in summary and "conv_3_1" in summary and f"{result['params']:,}" in summary

    [spec] = [
        a
        for a in metadata.lineage(args["metadata_store"], "wf-1")["artifacts"]
        if a["type"] == "ModelSpec"
    ]
    assert str(spec["id"]) == result["model_spec_id"]
    assert spec["uri"] == str(tmp_path / "spec-out")
    props = spec["properties"]
    assert props["params"] == result["params"] and props["summary"] == summary
    assert props["filter_sizes"] == "2,3" and props["dropout"] == 0.3
    assert json.loads(props["classes"]) == config.classes
    assert (props["architecture"], props["ngram_order"]) == ("cnn_ngrams", 2)
    assert "Wide n-gram branch: word 1-2-gram and character 2-5-gram presence" in summary


def test_model_metadata_of_the_plain_cnn(tmp_path: Path) -> None:
    write_inputs(tmp_path, n_train=8, n_val=8, dim=8)
    model_metadata.run(**metadata_args(tmp_path), architecture="cnn")
    config = ModelConfig.load(tmp_path / "spec-out")
    assert config.architecture == "cnn" and not config.ngrams
    assert "n-gram" not in (tmp_path / "spec-out" / "summary.txt").read_text()


def test_model_metadata_from_the_command_line(tmp_path: Path) -> None:
    write_inputs(tmp_path, n_train=8, n_val=8, dim=8)
    argv = ["model-metadata", "--outputs", str(tmp_path / "out")]
    for key, value in metadata_args(tmp_path).items():
        argv += [f"--{key}", ",".join(map(str, value)) if isinstance(value, list) else str(value)]
    assert cli.main(argv) == 0
    assert json.loads((tmp_path / "spec-out" / "model_config.json").read_text())[
        "filter_sizes"
    ] == [2, 3]
    assert int((tmp_path / "out" / "params").read_text()) == expected_params(
        ModelConfig.load(tmp_path / "spec-out")
    )


def test_model_metadata_dimension_mismatch_names_the_option(tmp_path: Path) -> None:
    write_inputs(tmp_path, n_train=8, n_val=8, dim=8)
    with pytest.raises(InputError, match=r"--embedding_dim=16 .*embeddings\.json have 8"):
        model_metadata.run(**metadata_args(tmp_path, embedding_dim=16))
    assert not (tmp_path / "spec-out").exists()


def test_model_metadata_rejects_filters_longer_than_the_texts(tmp_path: Path) -> None:
    write_inputs(tmp_path, n_train=8, n_val=8, dim=8)  # max_length 12
    with pytest.raises(InputError, match=r"max_length=12 is too short for filter size 13"):
        model_metadata.run(**metadata_args(tmp_path, filter_sizes=[3, 13]))
    assert not (tmp_path / "spec-out").exists()
    assert not (tmp_path / "md.sqlite").exists()  # nothing recorded either


def test_model_metadata_missing_prepared_data_names_the_step(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"vocab\.json: not found; run the prepare-data"):
        model_metadata.run(**metadata_args(tmp_path))
