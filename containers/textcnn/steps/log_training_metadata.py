"""log-training-metadata: record the run's lineage in ML Metadata once the model is evaluated.

The chain reads from the data to the numbers, one execution per pipeline stage:

    Dataset(train) -> PrepareData -> PreparedData -> BuildEmbeddings -> Embeddings
    Dataset(train) + Dataset(test) + PreparedData -> CheckData -> DataChecks
    PreparedData + Embeddings + ModelSpec -> Train -> Model
    Model + Dataset(test) + DataChecks (the test rows scored) -> Evaluate -> Metrics

The Datasets and the ModelSpec were recorded by the dataset-metadata and model-metadata
steps (their ids are in their artifacts: report.json, spec/mlmd.json); everything else is
recorded here, with URIs where the artifact repository holds the artifacts:
`<artifact_root>/<key>`, the keys validate-params gave (textcnn.cache), by default
`<run_name>/<artifact>`. An artifact already recorded at its URI (a stage this run reused
from an earlier one) is linked, not recorded again, and the execution of a reused stage
is CACHED, with the run it came from as `cached_from`.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from textcnn import metadata
from textcnn.errors import InputError

# Keys each file must hold, with the JSON types accepted (bool is never a number here).
TRAINING_FIELDS: dict[str, tuple[type, ...]] = {
    "start": (str,),
    "end": (str,),
    "duration_seconds": (int, float),
    "epochs_run": (int,),
    "best_epoch": (int,),
    "examples_per_second": (int, float),
    "strategy": (str,),
    "replicas": (int,),
}
CHECKS_FIELDS: dict[str, tuple[type, ...]] = {
    "test_rows": (int,),
    "test_rows_kept": (int,),
    "overlap": (dict,),
    "test_oov_rate": (int, float),
}
METRICS_FIELDS: dict[str, tuple[type, ...]] = {
    "accuracy": (int, float),
    "macro_f1": (int, float),
    "per_class": (dict,),
    "confusion_matrix": (dict,),
    "num_examples": (int,),
}


def _read(path: Path, fields: dict[str, tuple[type, ...]], producer: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: not found; the {producer} step writes it") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: not valid JSON ({e}); rerun the {producer} step") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object; rerun the {producer} step")
    for key, types in fields.items():
        if key not in data:
            raise InputError(f"{path}: missing {key!r}; rerun the {producer} step")
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, types):
            expected = " or ".join(t.__name__ for t in types)
            raise InputError(f"{path}: {key!r} is {value!r}, expected {expected}")
    return data


def _check_times(training: dict[str, Any], path: Path) -> None:
    try:
        start, end = (datetime.fromisoformat(training[k]) for k in ("start", "end"))
    except ValueError as e:
        raise InputError(f"{path}: start/end must be ISO-8601 times ({e})") from None
    if start.tzinfo is None or end.tzinfo is None:
        raise InputError(f"{path}: start/end need a UTC offset (e.g. 2025-01-01T10:00:00+00:00)")
    if end < start:
        raise InputError(f"{path}: end {training['end']} is before start {training['start']}")


def _hyperparameters(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(
            f"--hyperparameters: not valid JSON ({e}); pass the validate-params "
            "step's params output"
        ) from None
    if not isinstance(value, dict):
        raise InputError("--hyperparameters: expected a JSON object of the pipeline options")
    return value


def _check_inputs(store: str, expected: dict[str, tuple[int, str]]) -> None:
    """Fail before writing anything if an id is unknown or of the wrong type (swapped ids)."""
    found = metadata.artifact_types(store, [i for i, _ in expected.values()])
    for where, (artifact_id, type_name) in expected.items():
        if found[artifact_id] != type_name:
            raise InputError(
                f"{where}: artifact {artifact_id} is a {found[artifact_id]}, expected a {type_name}"
            )


def _id(path: Path, key: str, producer: str) -> int:
    value = _read(path, {key: (int,)}, producer)[key]
    return int(value)


def _cache(text: str) -> tuple[dict[str, str], dict[str, str]]:
    """validate-params' `cache` output: the artifacts' keys and the stages reused."""
    try:
        value = json.loads(text or "{}")
        keys, hits = dict(value.get("keys", {})), dict(value.get("hits", {}))
    except (json.JSONDecodeError, AttributeError, TypeError, ValueError):
        raise InputError("--cache: pass the validate-params step's cache output") from None
    return {str(k): str(v) for k, v in keys.items()}, {str(k): str(v) for k, v in hits.items()}


# The execution recorded for each stage of textcnn.cache, by the stage whose reuse it shows.
STAGES = {
    "PrepareData": "prepare-data",
    "CheckData": "check-data",
    "BuildEmbeddings": "embeddings",
    "Train": "export",
    "Evaluate": "evaluate",
}


def run(
    metadata_store: str,
    run_name: str,
    artifact_root: str,
    train_report_dir: str,
    test_report_dir: str,
    model_spec_dir: str,
    training_dir: str,
    metrics_dir: str,
    data_checks_dir: str,
    hyperparameters: str,
    cache: str = "",
) -> dict[str, str]:
    """Record data -> prepared data -> embeddings -> model -> metrics in ML Metadata."""
    sources = {
        "train": (Path(train_report_dir) / "report.json", "dataset_id", "dataset-metadata"),
        "test": (Path(test_report_dir) / "report.json", "dataset_id", "dataset-metadata"),
        "spec": (Path(model_spec_dir) / "mlmd.json", "model_spec_id", "model-metadata"),
    }
    train_dataset_id, test_dataset_id, model_spec_id = (_id(*source) for source in sources.values())
    keys, hits = _cache(cache)
    training_path = Path(training_dir) / "training.json"
    training = _read(training_path, TRAINING_FIELDS, "train")
    _check_times(training, training_path)
    metrics = _read(Path(metrics_dir) / "metrics.json", METRICS_FIELDS, "evaluate")
    checks = _read(Path(data_checks_dir) / "checks.json", CHECKS_FIELDS, "check-data")
    options = _hyperparameters(hyperparameters)
    if not artifact_root.strip():
        raise InputError("--artifact_root: empty; give the artifact repository root")
    if not run_name:
        raise InputError("--run_name: empty; give the workflow name ({{workflow.name}})")
    _check_inputs(
        metadata_store,
        {
            f"{sources['train'][0]} dataset_id": (train_dataset_id, "Dataset"),
            f"{sources['test'][0]} dataset_id": (test_dataset_id, "Dataset"),
            f"{sources['spec'][0]} model_spec_id": (model_spec_id, "ModelSpec"),
        },
    )

    def uri(artifact: str) -> str:
        return f"{artifact_root.rstrip('/')}/{keys.get(artifact, f'{run_name}/{artifact}')}"

    def record(
        type_name: str,
        properties: metadata.Properties,
        inputs: list[int],
        output: tuple[str, str, metadata.Properties],
    ) -> tuple[int, int]:
        origin = hits.get(STAGES[type_name], "")
        execution_id, [artifact_id] = metadata.record_execution(
            metadata_store,
            run_name=run_name,
            type_name=type_name,
            properties={**properties, "cached_from": origin},
            inputs=inputs,
            outputs=[output],
            cached=bool(origin),
        )
        return execution_id, artifact_id

    # Numbers are stored as floats whatever JSON made of them: a property keeps one type.
    scores = {"accuracy": float(metrics["accuracy"]), "macro_f1": float(metrics["macro_f1"])}
    _, prepared = record(
        "PrepareData", {}, [train_dataset_id], ("PreparedData", uri("prepared"), {})
    )
    _, embeddings = record("BuildEmbeddings", {}, [prepared], ("Embeddings", uri("embeddings"), {}))
    overlap = checks["overlap"]
    _, data_checks = record(
        "CheckData",
        {"max_test_overlap": float(overlap["max_test_overlap"])},
        [train_dataset_id, test_dataset_id, prepared],
        (
            "DataChecks",
            uri("data-checks"),
            {
                "test_rows": checks["test_rows"],
                "test_rows_kept": checks["test_rows_kept"],
                "test_overlap_rows": overlap["rows"],
                "test_overlap_share": float(overlap["share"]),
                "test_overlap_dropped": overlap["dropped"],
                "test_oov_rate": float(checks["test_oov_rate"]),
                "checks": checks,
            },
        ),
    )
    train_id, model = record(
        "Train",
        {
            "start": training["start"],
            "end": training["end"],
            "duration_seconds": float(training["duration_seconds"]),
            "epochs_run": training["epochs_run"],
            "best_epoch": training["best_epoch"],
            "examples_per_second": float(training["examples_per_second"]),
            "strategy": training["strategy"],
            "replicas": training["replicas"],
            "hyperparameters": options,
            **scores,
        },
        [prepared, embeddings, model_spec_id],
        ("Model", uri("model"), {}),
    )
    evaluate_id, metrics_id = record(
        "Evaluate",
        {"num_examples": metrics["num_examples"]},
        [model, test_dataset_id, data_checks],
        (
            "Metrics",
            uri("metrics"),
            {**scores, "num_examples": metrics["num_examples"], "metrics": metrics},
        ),
    )
    print(
        json.dumps(
            {
                "train_execution_id": train_id,
                "model_id": model,
                "evaluate_execution_id": evaluate_id,
                "metrics_id": metrics_id,
                **scores,
            }
        )
    )
    # The model's URI as recorded here is the one the DAG reports and deploys.
    return {
        "execution_id": str(train_id),
        "model_id": str(model),
        "model_uri": uri("model"),
        **{k: str(v) for k, v in scores.items()},
    }
