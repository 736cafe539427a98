"""The one parameter model: parsing from strings, ranges, cross-field rules, Argo rendering."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pytest

from textcnn.params import ParamsError, PipelineParams, parse_bool, parse_int_list
from workflows import submit
from workflows.dag.parameters import workflow_parameters


def parse(**values: str) -> PipelineParams:
    return PipelineParams.parse(values)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("yes", True),
        ("no", False),
        ("true", True),
        ("False", False),
        ("1", True),
        ("0", False),
    ],
)
def test_booleans_accept_the_original_spellings(text: str, expected: bool) -> None:
    assert parse(gpu_support=text).gpu_support is expected
    assert parse(dist_training=text).dist_training is expected


@pytest.mark.parametrize("text", ["3,4,5", "3, 4, 5", "[3,4,5]", "3 4 5"])
def test_filter_sizes_from_strings(text: str) -> None:
    assert parse(filter_sizes=text).filter_sizes == [3, 4, 5]


def test_embedding_dim_alias_and_original_spelling() -> None:
    assert parse(embedding_dim="64").embbeding_dim == 64
    assert parse(embbeding_dim="32").embbeding_dim == 32


@pytest.mark.parametrize(
    ("values", "option"),
    [
        ({"val_data_pct": "0"}, "--val_data_pct"),
        ({"val_data_pct": "0.9"}, "--val_data_pct"),
        ({"dropout": "1"}, "--dropout"),
        ({"num_words": "abc"}, "--num_words"),
        ({"epochs": "0"}, "--epochs"),
        ({"gpu_support": "maybe"}, "--gpu_support"),
        ({"filter_sizes": "3,x"}, "--filter_sizes"),
        ({"filter_sizes": "3,3"}, "--filter_sizes"),
        ({"gcp_bucket": "Bad_Bucket!"}, "--gcp_bucket"),
        ({"namespace": "Not A Namespace"}, "--namespace"),
        ({"metadata_store": "mysql://x"}, "--metadata_store"),
        ({"host": "argo.example.com"}, "--host"),
        ({"no_such_option": "1"}, "--no_such_option"),
    ],
)
def test_bad_values_name_the_option(values: dict[str, str], option: str) -> None:
    with pytest.raises(ParamsError, match=option):
        PipelineParams.parse(values)


FLOAT_OPTIONS = [n for n, f in PipelineParams.model_fields.items() if f.annotation is float]


@pytest.mark.parametrize("option", FLOAT_OPTIONS)
@pytest.mark.parametrize(
    ("text", "words"),
    [
        # Before: NaN fails every comparison, so --dropout nan read "should be less than 1".
        ("nan", "'nan' is not a number"),
        ("-NaN", "'-NaN' is not a number"),
        # Before: --canary_max_latency_ms inf was taken (and dumped to JSON as null).
        ("inf", "'inf' is not a finite number"),
        ("1e400", "'1e400' is not a finite number"),
    ],
)
def test_a_float_option_is_a_finite_number(option: str, text: str, words: str) -> None:
    with pytest.raises(ParamsError) as e:
        parse(**{option: text})
    [line] = str(e.value).splitlines()[1:]
    assert line.strip().startswith(f"--{option}: {words}; give a number such as ")


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ParamsError) as e:
        parse(dropout="2", epochs="-1")
    assert "--dropout" in str(e.value) and "--epochs" in str(e.value)


def test_sequence_too_short_for_the_layer_stack() -> None:
    ok = parse(max_length="20", filter_sizes="3,5", num_conv_layers="2", maxpool_strides="2")
    assert ok.max_length == 20
    with pytest.raises(ParamsError, match="max_length=8 is too short for filter size 5"):
        parse(max_length="8", filter_sizes="3,5", num_conv_layers="2", maxpool_strides="2")


def test_argo_round_trip() -> None:
    params = parse(filter_sizes="2,3", gpu_support="yes", dropout="0.25", embedding_dim="64")
    again = PipelineParams.parse(params.to_strings())
    assert again == params
    assert params.to_strings()["gpu_support"] == "true"
    assert params.to_strings()["filter_sizes"] == "2,3"


@pytest.mark.parametrize("name", ["host", "client_id", "other_client_id", "other_client_secret"])
def test_login_options_are_the_clients_not_the_pipelines(name: str) -> None:
    assert name not in PipelineParams.model_fields
    with pytest.raises(ParamsError, match=f"--{name}"):
        parse(**{name: "x"})


@pytest.mark.parametrize(
    ("option", "step_option", "text", "words"),
    [
        (
            "static_embeddings",
            "static_embeddings",
            "ture",
            "expected yes/no/true/false, got 'ture'",
        ),
        ("filter_sizes", "filter_sizes", "2;3", "expected integers such as 3,4,5, got '2;3'"),
        # Before: an empty item was skipped, and "3,,4" read as [3, 4].
        ("filter_sizes", "filter_sizes", "3,,4", "'3,,4' has an empty item"),
        ("filter_sizes", "filter_sizes", "3,4,", "'3,4,' has an empty item"),
        # Before: Python's int() read "3_4" as 34.
        ("filter_sizes", "filter_sizes", "3_4", "expected integers such as 3,4,5, got '3_4'"),
    ],
)
def test_one_parser_per_option_for_the_cli_and_the_steps(
    option: str, step_option: str, text: str, words: str
) -> None:
    """A typo fails the same way as a pipeline option and as a step's option."""
    with pytest.raises(ParamsError, match=re.escape(words)):
        parse(**{option: text})
    converter = parse_bool if option == "static_embeddings" else parse_int_list
    with pytest.raises(ValueError, match=re.escape(words)):
        converter(text)
    step = subprocess.run(
        [sys.executable, "-m", "textcnn", "model-metadata", f"--{step_option}={text}"],
        capture_output=True,
        text=True,
    )
    assert step.returncode == 2
    assert f"argument --{step_option}: invalid {converter.__name__} value" in step.stderr


def test_argo_parameters_have_descriptions_and_boolean_enums() -> None:
    specs = {p["name"]: p for p in workflow_parameters()}
    assert list(specs) == list(PipelineParams.model_fields)
    assert all(p["description"] for p in specs.values())
    assert specs["gpu_support"]["enum"] == ["true", "false"]
    assert specs["dist_training"]["value"] == "false"
    # Every default is itself valid.
    PipelineParams.parse({name: p["value"] for name, p in specs.items()})


def test_original_cli_options_are_all_there() -> None:
    original = (
        "train_data_path test_data_path column_target_value column_text_value val_data_pct "
        "num_words gcp_bucket json_tokenizer_path w2v_model_path embbeding_dim dropout "
        "filter_sizes num_filters num_conv_layers maxpool_strides epochs batch_size host "
        "client_id other_client_id other_client_secret namespace workdir dist_training "
        "gpu_support"
    ).split()
    parser = argparse.ArgumentParser()
    submit.add_submit_arguments(parser)  # the pipeline options and the client's login
    ns = parser.parse_args([f"--{name}=x" for name in original] + ["--embedding_dim=7"])
    assert set(original) <= set(vars(ns))
    assert ns.embbeding_dim == "7"


def test_validate_step_in_a_pod_uses_the_same_model() -> None:
    bad = subprocess.run(
        [sys.executable, "-m", "textcnn", "validate-params", "--epochs=0", "--dropout=0.3"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2
    assert "--epochs" in bad.stderr and bad.stderr.startswith("error: validate-params")
    good = subprocess.run(
        [sys.executable, "-m", "textcnn", "validate-params", "--epochs=3", "--gpu_support=no"],
        capture_output=True,
        text=True,
    )
    assert good.returncode == 0, good.stderr
    assert '"epochs":3' in good.stdout


@pytest.mark.parametrize(
    ("values", "option"),
    [
        ({"canary_traffic_percent": "20"}, "--canary_traffic_percent=20"),
        ({"serving_min_replicas": "0"}, "--serving_min_replicas=0"),
    ],
)
def test_knative_features_need_serverless_mode(values: dict[str, str], option: str) -> None:
    with pytest.raises(
        ParamsError,
        match=re.escape(
            f"{option} needs --serving_deployment_mode=Serverless (Knative); KServe ignores it "
            "in RawDeployment mode"
        ),
    ):
        PipelineParams.parse(values)
    serverless = PipelineParams.parse({**values, "serving_deployment_mode": "Serverless"})
    assert serverless.serving_deployment_mode == "Serverless"


def test_the_deployment_mode_is_an_enum_for_the_argo_ui() -> None:
    (spec,) = [p for p in workflow_parameters() if p["name"] == "serving_deployment_mode"]
    assert (spec["value"], spec["enum"]) == ("RawDeployment", ["RawDeployment", "Serverless"])


@pytest.mark.parametrize(
    "command",
    [
        ["-m", "workflows", "run", "--output_dir", "{tmp}/run"],
        ["-m", "workflows", "compile", "--output_dir", "{tmp}/compiled"],
        ["-m", "workflows", "submit", "--dry_run"],
        ["-m", "textcnn", "validate-params"],
    ],
)
def test_a_newline_in_workdir_is_refused_by_every_entry_point(
    command: list[str], tmp_path: Path
) -> None:
    argv = [a.replace("{tmp}", str(tmp_path)) for a in command]
    result = subprocess.run(
        [sys.executable, *argv, "--workdir=/mnt/w\n    command: [sh]"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "--workdir: holds a control character" in result.stderr
    assert "Traceback" not in result.stderr and not list(tmp_path.iterdir())
