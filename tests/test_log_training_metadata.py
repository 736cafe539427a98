"""log-training-metadata on a real SQLite MLMD store: the lineage from the Metrics back to
both Datasets, through the Python function and through `python -m textcnn`."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as mlmd

from textcnn import metadata
from textcnn.errors import InputError
from textcnn.steps import log_training_metadata as lineage

RUN = "textcnn-abc12"
ROOT = "gs://bucket"
TRAINING = {
    "start": "2025-03-01T10:00:00.250000+00:00",
    "end": "2025-03-01T10:02:05.750000+00:00",
    "duration_seconds": 125.5,
    "epochs_run": 4,
    "best_epoch": 2,
    "examples_per_second": 812.4,
    "strategy": "MirroredStrategy",
    "replicas": 1,
}
METRICS = {
    "accuracy": 0.75,
    "macro_f1": 0.7333,
    "per_class": {
        "neg": {"precision": 0.8, "recall": 0.667, "f1": 0.727, "support": 6},
        "pos": {"precision": 0.714, "recall": 0.833, "f1": 0.769, "support": 6},
    },
    "confusion_matrix": {"labels": ["neg", "pos"], "matrix": [[4, 2], [1, 5]]},
    "num_examples": 12,
}
CHECKS = {
    "test_rows": 12,
    "test_rows_kept": 11,
    "overlap": {"rows": 1, "share": 1 / 12, "dropped": 1, "max_test_overlap": 0.1},
    "test_oov_rate": 0.125,
}
HYPERPARAMETERS = {"epochs": 4, "batch_size": 50, "filter_sizes": [3, 4, 5], "dropout": 0.5}


@dataclass
class Setup:
    store: str
    kwargs: dict[str, Any]  # run()'s arguments
    train_id: int
    test_id: int
    spec_id: int


def _write_json(folder: Path, name: str, data: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(data))
    return folder


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    store = f"sqlite:{tmp_path / 'metadata.sqlite'}"

    def record(type_name: str, uri: str, **props: int | float | str) -> int:
        return metadata.record_artifact(
            store, run_name=RUN, type_name=type_name, uri=uri, properties=props
        )

    train_id = record("Dataset", "/data/train.csv", split="train", rows=120)
    test_id = record("Dataset", "/data/test.csv", split="test", rows=12)
    spec_id = record("ModelSpec", f"{ROOT}/{RUN}/spec", vocab_size=50)
    kwargs = {
        "metadata_store": store,
        "run_name": RUN,
        "artifact_root": ROOT + "/",
        "train_report_dir": str(
            _write_json(tmp_path / "train", "report.json", {"dataset_id": train_id})
        ),
        "test_report_dir": str(
            _write_json(tmp_path / "test", "report.json", {"dataset_id": test_id})
        ),
        "model_spec_dir": str(
            _write_json(tmp_path / "spec", "mlmd.json", {"model_spec_id": spec_id})
        ),
        "training_dir": str(_write_json(tmp_path / "training", "training.json", TRAINING)),
        "metrics_dir": str(_write_json(tmp_path / "metrics", "metrics.json", METRICS)),
        "data_checks_dir": str(_write_json(tmp_path / "checks", "checks.json", CHECKS)),
        "hyperparameters": json.dumps(HYPERPARAMETERS),
    }
    return Setup(store, kwargs, train_id, test_id, spec_id)


def _producer(
    s: metadata_store.MetadataStore, artifact_id: int
) -> tuple[mlmd.Execution, str, dict[str, mlmd.Artifact]]:
    """The execution that output `artifact_id`, its type name and its inputs by type."""
    [event] = [
        e for e in s.get_events_by_artifact_ids([artifact_id]) if e.type == mlmd.Event.OUTPUT
    ]
    [execution] = s.get_executions_by_id([event.execution_id])
    [execution_type] = s.get_execution_types_by_id([execution.type_id])
    input_ids = [
        e.artifact_id
        for e in s.get_events_by_execution_ids([execution.id])
        if e.type == mlmd.Event.INPUT
    ]
    inputs = s.get_artifacts_by_id(input_ids)
    types = {t.id: t.name for t in s.get_artifact_types_by_id([a.type_id for a in inputs])}
    by_type: dict[str, mlmd.Artifact] = {}
    for a in inputs:
        assert types[a.type_id] not in by_type, f"two {types[a.type_id]} inputs"
        by_type[types[a.type_id]] = a
    return execution, execution_type.name, by_type


def _assert_lineage(setup: Setup, outputs: dict[str, str]) -> None:
    s = metadata.open_store(setup.store)
    [metrics] = s.get_artifacts_by_type("Metrics")
    assert metrics.uri == f"{ROOT}/{RUN}/metrics"
    assert metrics.properties["accuracy"].double_value == METRICS["accuracy"]
    assert metrics.properties["macro_f1"].double_value == METRICS["macro_f1"]
    assert metrics.properties["num_examples"].int_value == METRICS["num_examples"]
    assert json.loads(metrics.properties["metrics"].string_value) == METRICS

    # Walk back: Metrics <- Evaluate <- Model + test Dataset + DataChecks (its test rows).
    evaluate, kind, inputs = _producer(s, metrics.id)
    assert kind == "Evaluate" and set(inputs) == {"Model", "Dataset", "DataChecks"}
    assert inputs["Dataset"].id == setup.test_id
    checks = inputs["DataChecks"]
    assert checks.uri == f"{ROOT}/{RUN}/data-checks"
    assert json.loads(checks.properties["checks"].string_value) == CHECKS
    assert checks.properties["test_overlap_rows"].int_value == 1
    assert checks.properties["test_rows_kept"].int_value == 11
    # DataChecks <- CheckData <- both Datasets + PreparedData.
    [event] = [e for e in s.get_events_by_artifact_ids([checks.id]) if e.type == mlmd.Event.OUTPUT]
    read = {
        e.artifact_id
        for e in s.get_events_by_execution_ids([event.execution_id])
        if e.type == mlmd.Event.INPUT
    }
    model = inputs["Model"]
    assert (str(model.id), model.uri) == (outputs["model_id"], f"{ROOT}/{RUN}/model")

    # Model <- Train <- PreparedData + Embeddings + ModelSpec.
    train, kind, inputs = _producer(s, model.id)
    assert kind == "Train" and str(train.id) == outputs["execution_id"]
    assert set(inputs) == {"PreparedData", "Embeddings", "ModelSpec"}
    assert inputs["ModelSpec"].id == setup.spec_id
    assert inputs["Embeddings"].uri == f"{ROOT}/{RUN}/embeddings"
    p = train.properties
    assert (p["start"].string_value, p["end"].string_value) == (TRAINING["start"], TRAINING["end"])
    assert p["duration_seconds"].double_value == TRAINING["duration_seconds"]
    assert (p["epochs_run"].int_value, p["best_epoch"].int_value) == (4, 2)
    assert p["examples_per_second"].double_value == TRAINING["examples_per_second"]
    assert (p["strategy"].string_value, p["replicas"].int_value) == ("MirroredStrategy", 1)
    assert json.loads(p["hyperparameters"].string_value) == HYPERPARAMETERS
    assert p["accuracy"].double_value == METRICS["accuracy"]
    assert p["macro_f1"].double_value == METRICS["macro_f1"]

    # Embeddings <- BuildEmbeddings <- PreparedData <- PrepareData <- train Dataset.
    _, kind, emb_inputs = _producer(s, inputs["Embeddings"].id)
    assert kind == "BuildEmbeddings" and set(emb_inputs) == {"PreparedData"}
    prepared = emb_inputs["PreparedData"]
    assert prepared.id == inputs["PreparedData"].id  # one PreparedData feeds both
    assert prepared.uri == f"{ROOT}/{RUN}/prepared"
    _, kind, prep_inputs = _producer(s, prepared.id)
    assert kind == "PrepareData" and set(prep_inputs) == {"Dataset"}
    assert prep_inputs["Dataset"].id == setup.train_id
    assert read == {setup.train_id, setup.test_id, prepared.id}

    # Every execution and artifact belongs to this run and to the pipeline.
    run = s.get_context_by_type_and_name("PipelineRun", RUN)
    pipeline = s.get_context_by_type_and_name("Pipeline", "textcnn")
    for context in (run, pipeline):
        assert {e.id for e in s.get_executions_by_context(context.id)} == {
            e.id for e in s.get_executions()
        }
        assert {a.id for a in s.get_artifacts_by_context(context.id)} == {
            a.id for a in s.get_artifacts()
        }
    assert len(s.get_executions()) == 5
    assert all(e.last_known_state == mlmd.Execution.COMPLETE for e in s.get_executions())


def test_run_records_the_chain_from_datasets_to_metrics(setup: Setup) -> None:
    outputs = lineage.run(**setup.kwargs)
    _assert_lineage(setup, outputs)


def test_cli_step_records_the_chain_and_writes_output_parameters(
    setup: Setup, tmp_path: Path
) -> None:
    out = tmp_path / "params"
    args = [f"--{k}={v}" for k, v in setup.kwargs.items()]
    proc = subprocess.run(
        [sys.executable, "-m", "textcnn", "log-training-metadata", *args, f"--outputs={out}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    outputs = {k: (out / k).read_text() for k in ("execution_id", "model_id")}
    _assert_lineage(setup, outputs)
    # The README's query helper sees the same run.
    summary = metadata.lineage(setup.store, RUN)
    assert [e["type"] for e in summary["executions"]] == [
        "PrepareData",
        "BuildEmbeddings",
        "CheckData",
        "Train",
        "Evaluate",
    ]


def test_cli_reports_a_missing_file_and_exits_2(setup: Setup, tmp_path: Path) -> None:
    (Path(setup.kwargs["metrics_dir"]) / "metrics.json").unlink()
    args = [f"--{k}={v}" for k, v in setup.kwargs.items()]
    proc = subprocess.run(
        [sys.executable, "-m", "textcnn", "log-training-metadata", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "error: log-training-metadata:" in proc.stderr
    assert "metrics.json: not found" in proc.stderr


def _training(**changes: object) -> dict[str, object]:
    return {**TRAINING, **changes}


def _without(data: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != key}


@pytest.mark.parametrize(
    ("file", "content", "message"),
    [
        ("training.json", "{not json", "not valid JSON"),
        ("training.json", "[1, 2]", "expected a JSON object"),
        ("training.json", json.dumps(_without(TRAINING, "end")), "missing 'end'"),
        ("training.json", json.dumps(_training(epochs_run=True)), "'epochs_run' is True"),
        ("training.json", json.dumps(_training(start="yesterday")), "ISO-8601"),
        ("training.json", json.dumps(_training(start="2025-03-01T10:00:00")), "UTC offset"),
        ("training.json", json.dumps(_training(end="2025-03-01T09:00:00+00:00")), "before start"),
        ("metrics.json", json.dumps(_without(METRICS, "macro_f1")), "missing 'macro_f1'"),
        ("metrics.json", json.dumps({**METRICS, "accuracy": "0.75"}), "'accuracy' is '0.75'"),
        ("metrics.json", json.dumps({**METRICS, "per_class": []}), "'per_class' is"),
    ],
)
def test_malformed_input_file_is_named_and_nothing_is_recorded(
    setup: Setup, file: str, content: str, message: str
) -> None:
    folder = setup.kwargs["training_dir" if file == "training.json" else "metrics_dir"]
    path = Path(folder) / file
    path.write_text(content)
    with pytest.raises(InputError, match=message) as err:
        lineage.run(**setup.kwargs)
    assert str(err.value).startswith(str(path))
    assert metadata.open_store(setup.store).get_executions() == []


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"hyperparameters": "epochs=4"}, "--hyperparameters: not valid JSON"),
        ({"hyperparameters": "[4]"}, "--hyperparameters: expected a JSON object"),
        ({"artifact_root": ""}, "--artifact_root"),
        ({"run_name": ""}, "--run_name"),
    ],
)
def test_bad_option_is_named_and_nothing_is_recorded(
    setup: Setup, changes: dict[str, str], message: str
) -> None:
    with pytest.raises(InputError, match=message):
        lineage.run(**{**setup.kwargs, **changes})
    assert metadata.open_store(setup.store).get_executions() == []


def test_swapped_or_unknown_ids_are_named_and_nothing_is_recorded(setup: Setup) -> None:
    def write(option: str, name: str, data: dict[str, int]) -> Path:
        return _write_json(Path(setup.kwargs[option]), name, data) / name

    write("model_spec_dir", "mlmd.json", {"model_spec_id": setup.test_id})
    test = write("test_report_dir", "report.json", {"dataset_id": setup.spec_id})
    with pytest.raises(InputError, match=f"{test} dataset_id: artifact .* is a ModelSpec"):
        lineage.run(**setup.kwargs)
    write("train_report_dir", "report.json", {"dataset_id": 999})
    with pytest.raises(InputError, match=r"no artifact with id \[999\]"):
        lineage.run(**setup.kwargs)
    spec = write("model_spec_dir", "mlmd.json", {"model_spec_id": True})
    with pytest.raises(InputError, match=f"{spec}: 'model_spec_id' is True"):
        lineage.run(**setup.kwargs)
    assert metadata.open_store(setup.store).get_executions() == []


def test_a_run_that_reused_stages_links_their_artifacts_and_says_so(setup: Setup) -> None:
    # The first run computed every stage, at keyed places (validate-params' `cache`).
    artifacts = ("prepared", "embeddings", "data-checks", "model", "metrics")
    keys = {a: f"cache/k-{a}/{a}" for a in artifacts}
    first = lineage.run(**setup.kwargs, cache=json.dumps({"keys": keys, "hits": {}}))
    assert first["model_uri"] == f"{ROOT}/cache/k-model/model"
    # The next reused all but evaluate (its model files were lost, say).
    hits = {"prepare-data": RUN, "embeddings": RUN, "check-data": RUN, "export": RUN}
    keys["metrics"] = "cache/k2-metrics/metrics"
    second = lineage.run(
        **{**setup.kwargs, "run_name": "textcnn-next"},
        cache=json.dumps({"keys": keys, "hits": hits}),
    )
    assert second["model_id"] == first["model_id"]  # the very artifact, linked
    s = metadata.open_store(setup.store)
    run = s.get_context_by_type_and_name("PipelineRun", "textcnn-next")
    executions = {
        s.get_execution_types_by_id([e.type_id])[0].name: e
        for e in s.get_executions_by_context(run.id)
    }
    for name, execution in executions.items():
        cached = name != "Evaluate"
        assert execution.last_known_state == (
            mlmd.Execution.CACHED if cached else mlmd.Execution.COMPLETE
        ), name
        assert execution.properties["cached_from"].string_value == (RUN if cached else ""), name
    linked = {a.uri for a in s.get_artifacts_by_context(run.id)}
    assert {f"{ROOT}/{k}" for k in keys.values()} <= linked
    assert len(s.get_artifacts_by_uri(f"{ROOT}/cache/k-model/model")) == 1


def test_exit_handler_records_the_final_status_even_for_an_empty_run(tmp_path: Path) -> None:
    store = f"sqlite:{tmp_path / 'mlmd.sqlite'}"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "textcnn",
            "record-status",
            f"--metadata_store={store}",
            "--run_name=wf-9",
            "--status=Failed",
            '--failures=[{"displayName":"train"}]',
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    props = metadata.lineage(store, "wf-9")["run_properties"]
    assert (props["status"], props["message"]) == ("Failed", '[{"displayName":"train"}]')
    assert props["attempts"] == 1
    # A retried run ends again in the same context: the last status, and every end.
    metadata.record_run_status(store, run_name="wf-9", status="Succeeded")
    props = metadata.lineage(store, "wf-9")["run_properties"]
    assert (props["status"], props["attempts"]) == ("Succeeded", 2)
    assert [h["status"] for h in json.loads(props["history"])] == ["Failed", "Succeeded"]
