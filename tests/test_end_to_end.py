"""The whole pipeline, run locally through the CLI exactly as `make run` does, on a slice."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from helpers import SMALL, run_pipeline

from textcnn.export import load_serving_model
from textcnn.metadata import lineage


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """The run folder: the local ML Metadata store is beside it, so each test has its own."""
    return tmp_path / "run"


@pytest.mark.slow
def test_local_run_trains_evaluates_and_records_lineage(
    data_slice: tuple[Path, Path],
    out: Path,
) -> None:
    train, test = data_slice
    proc = run_pipeline(out, "--train_data_path", str(train), "--test_data_path", str(test), *SMALL)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "test accuracy" in proc.stdout

    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "Succeeded"
    statuses = {name: step["status"] for name, step in run["steps"].items()}
    # Single-pod CPU training: the GPU and TFJob branches do not run.
    assert {n for n, s in statuses.items() if s == "Skipped"} == {
        "train-gpu",
        "workdir-claim",
        "stage-data",
        "tfjob",
        "tfjob-gpu",
        "trainjob",
        "trainjob-gpu",
        "deploy-custom",
        "canary-check",  # a full rollout (canary_traffic_percent 100)
    }
    assert {n for n, s in statuses.items() if s == "Omitted"} == {
        "wait-tfjob",
        "wait-tfjob-gpu",
        "wait-trainjob",
        "wait-trainjob-gpu",
        "collect-model",
    }
    assert statuses["train"] == statuses["evaluate"] == "Succeeded"
    for step in run["steps"].values():
        assert step["log"] is None or Path(step["log"]).is_file()
    # One line per settled step.
    for name in run["steps"]:
        assert any(line.split()[:1] == [name] for line in proc.stdout.splitlines()), name
    # Live progress, as plain lines (stdout is no terminal): each epoch with its figures,
    # then Word2Vec's epochs and prepare-data's stages; and each step's last N/M in
    # run.json, as Argo keeps a node's progress.
    epochs = int(SMALL[SMALL.index("--epochs") + 1])
    assert re.search(
        rf"^train +1/{epochs + 1} epoch 1/{epochs}: loss [\d.]+, val_accuracy [\d.]+  \(\d+ s\)$",
        proc.stdout,
        re.M,
    ), proc.stdout
    assert re.search(r"^embeddings +\d+/11 word2vec epoch \d+/10 ", proc.stdout, re.M)
    assert run["steps"]["train"]["progress"] == f"{epochs + 1}/{epochs + 1}"
    assert run["steps"]["prepare-data"]["progress"] == "4/4"
    # The workflow's Prometheus metrics, as Argo's controller would emit them at each end.
    emitted = {m["name"]: m for m in run["steps"]["log-training-metadata"]["metrics"]}
    assert emitted["textcnn_test_accuracy"]["gauge"] == pytest.approx(run["metrics"]["accuracy"])
    assert emitted["textcnn_test_accuracy"]["labels"] == {"isvc": "textcnn"}
    duration = emitted["textcnn_step_duration_seconds"]
    assert duration["labels"] == {"step": "log-training-metadata"} and duration["gauge"] > 0
    [gate] = [m for m in run["steps"]["gate"]["metrics"] if "counter" in m]
    assert gate["labels"]["decision"] == "deploy" and gate["counter"] == 1

    metrics = run["metrics"]
    assert 0.5 < metrics["accuracy"] <= 1 and 0 < metrics["macro_f1"] <= 1
    # Each stage's artifacts at its cache key (textcnn.cache).
    written = json.loads(
        next(out.parent.glob("artifacts/cache/*/metrics/metrics.json")).read_text()
    )
    assert written["accuracy"] == pytest.approx(metrics["accuracy"])
    report = next(out.parent.glob("artifacts/cache/*/metrics/report.html")).read_text()
    assert f"{metrics['accuracy']:.4f}" in report and "<polyline" in report

    # Deployed through the local Kubernetes API on a model server that gave the candidate's
    # answers, then stopped. The endpoint is the cluster's name; locally, a loopback port.
    assert statuses["deploy-tensorflow"] == statuses["deploy-wait"] == "Succeeded"
    assert run["endpoint"] == "http://textcnn-predictor.default.svc.cluster.local"
    assert run["local_endpoint"].startswith("http://127.0.0.1:")
    assert (
        "serves the new model: the smoke texts got its answers"
        in Path(run["steps"]["deploy-wait"]["log"]).read_text()
    )
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{run['local_endpoint']}/v1/models/textcnn", timeout=2)

    # The model artifact is the TF Serving base folder and answers raw text.
    model = Path(run["artifacts"]["model"])
    assert (model / "1" / "saved_model.pb").is_file()
    predict = load_serving_model(model / "1")
    answer = predict(["a moving, beautifully acted film", "a dull, lifeless mess"])
    assert set(answer["label"]) <= {"fresh", "rotten"}

    # Lineage: datasets -> prepared data -> embeddings -> model -> metrics, in this run.
    assert run["metadata"] == f"sqlite:{out.parent / 'metadata.sqlite'}"
    graph = lineage(run["metadata"], run["workflow_name"])
    by_id = {a["id"]: a for a in graph["artifacts"]}
    types = {a["type"] for a in graph["artifacts"]}
    assert {
        "Dataset",
        "PreparedData",
        "Embeddings",
        "ModelSpec",
        "Model",
        "Metrics",
        "Endpoint",
    } <= types
    assert graph["run_properties"]["status"] == "Succeeded"  # from the exit handler
    assert {a["uri"] for a in graph["artifacts"] if a["type"] == "Dataset"} == {
        str(train),
        str(test),
    }
    assert {a["uri"] for a in graph["artifacts"] if a["type"] == "Model"} == {str(model)}

    def producers(artifact_id: int) -> set[int]:
        return {
            e["execution_id"]
            for e in graph["events"]
            if e["artifact_id"] == artifact_id and e["type"] == "OUTPUT"
        }

    def inputs(execution_id: int) -> set[int]:
        return {
            e["artifact_id"]
            for e in graph["events"]
            if e["execution_id"] == execution_id and e["type"] == "INPUT"
        }

    def ancestors(artifact_id: int) -> set[int]:
        seen, todo = set(), [artifact_id]
        while todo:
            for ex in producers(todo.pop()):
                for a in inputs(ex) - seen:
                    seen.add(a)
                    todo.append(a)
        return seen

    (metrics_artifact,) = [a for a in graph["artifacts"] if a["type"] == "Metrics"]
    upstream = {by_id[a]["type"] for a in ancestors(metrics_artifact["id"])}
    assert {"Model", "Embeddings", "PreparedData", "ModelSpec", "Dataset"} <= upstream
    datasets = {
        by_id[a]["uri"] for a in ancestors(metrics_artifact["id"]) if by_id[a]["type"] == "Dataset"
    }
    assert datasets == {str(train), str(test)}
    (endpoint,) = [a for a in graph["artifacts"] if a["type"] == "Endpoint"]
    assert endpoint["uri"] == run["endpoint"]
    assert {by_id[a]["type"] for a in ancestors(endpoint["id"])} >= {"Model", "Dataset"}


def test_a_failing_step_stops_the_run_and_names_its_log(
    data_slice: tuple[Path, Path],
    out: Path,
) -> None:
    train, test = data_slice
    proc = run_pipeline(
        out,
        "--train_data_path",
        str(train),
        "--test_data_path",
        str(test),
        "--column_text_value",
        "review",
    )
    assert proc.returncode == 1
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "Failed"
    failed = [name for name, step in run["steps"].items() if step["status"] == "Failed"]
    assert failed and all(name in proc.stdout for name in failed)
    log = Path(run["steps"][failed[0]]["log"])
    assert str(log) in proc.stdout
    assert "review" in log.read_text()  # the step's own error names the missing column
    # ... and the runner's failure line repeats it, above the log's library noise.
    assert any(
        line.startswith(f"task '{failed[0]}' failed") and "no column 'review'" in line
        for line in proc.stdout.splitlines()
    )
    assert run["steps"]["evaluate"]["status"] == "Omitted"
    # The exit handler still ran and recorded the failure.
    assert run["steps"]["record-status"]["status"] == "Succeeded"
    status = lineage(run["metadata"], run["workflow_name"])["run_properties"]
    assert status["status"] == "Failed" and "dataset-metadata" in status["message"]
    assert not list(out.parent.glob("artifacts/**/model"))


@pytest.mark.slow
def test_a_test_set_with_an_unseen_label_fails_before_training(
    make_csv: Callable[..., Path], tmp_path: Path
) -> None:
    train = make_csv(rows=90, classes=2, name="train.csv")
    test = make_csv(rows=30, classes=2, name="test.csv", extra=[("A new kind of film.", "meh")])
    out = tmp_path / "run"
    proc = run_pipeline(out, "--train_data_path", str(train), "--test_data_path", str(test))
    assert proc.returncode == 1
    run = json.loads((out / "run.json").read_text())
    # The test file's check, against the classes prepare-data kept.
    checked = run["steps"]["dataset-metadata-test"]
    assert checked["status"] == "Failed"
    assert "labels ['meh'] in column 'label' (rows 32" in checked["message"]
    assert str(test) in checked["message"]
    assert run["steps"]["train"]["status"] == "Omitted"
    # Nothing trained (a warm start may have readied train's process, never its command).
    assert not list(out.parent.glob("artifacts/**/cnn")) and run["steps"]["train"]["log"] is None


def test_invalid_options_are_rejected_before_anything_runs(tmp_path: Path) -> None:
    proc = run_pipeline(tmp_path, "--dropout", "1.5", "--filter_sizes", "3,x")
    assert proc.returncode == 2
    assert "--dropout" in proc.stderr and "--filter_sizes" in proc.stderr
    assert not (tmp_path / "run.json").exists()


@pytest.mark.slow
def test_artifacts_and_data_through_gcs(
    data_slice: tuple[Path, Path],
    gcs_root: str,
    out: Path,
) -> None:
    """Input CSVs on gs:// and every artifact moved through the bucket, as on Argo."""
    from textcnn import storage

    train, test = data_slice
    for path in (train, test):
        storage.write_bytes(f"{gcs_root}/data/{path.name}", path.read_bytes())
    artifact_root = f"{gcs_root}/artifacts"
    proc = run_pipeline(
        out,
        "--artifact_root",
        artifact_root,
        "--train_data_path",
        f"{gcs_root}/data/train.csv",
        "--test_data_path",
        f"{gcs_root}/data/test.csv",
        *SMALL,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = json.loads((out / "run.json").read_text())
    wf = run["workflow_name"]
    model = run["artifacts"]["model"]
    assert re.fullmatch(rf"{artifact_root}/cache/[0-9a-f]{{32}}/model", model)
    assert storage.exists(f"{model}/1/saved_model.pb")
    # The stage's entry, written last, lists what it wrote (and the run that wrote it).
    entry = json.loads(storage.read_text(model.removesuffix("model") + "entry"))
    assert entry["run"] == wf and "model/1/saved_model.pb" in entry["files"]
    metrics = json.loads(storage.read_text(f"{run['artifacts']['metrics']}/metrics.json"))
    assert metrics["accuracy"] == pytest.approx(run["metrics"]["accuracy"])
    assert not (out.parent / "artifacts").exists()  # nothing went to the local store

    graph = lineage(run["metadata"], wf)
    uris = {a["type"]: a["uri"] for a in graph["artifacts"] if a["type"] != "Dataset"}
    assert uris["Model"] == model and uris["ModelSpec"] == run["artifacts"]["spec"]
    assert {a["uri"] for a in graph["artifacts"] if a["type"] == "Dataset"} == {
        f"{gcs_root}/data/train.csv",
        f"{gcs_root}/data/test.csv",
    }


STAGE_TASKS = (
    "prepare-data",
    "dataset-metadata-train",
    "dataset-metadata-test",
    "embeddings",
    "model-metadata",
    "train",
    "fit-ngrams",
    "export",
    "evaluate",
)


@pytest.mark.slow
@pytest.mark.slow
def test_a_trainjob_trains_across_its_nodes_with_the_tf_config_they_build(
    data_slice: tuple[Path, Path], out: Path
) -> None:
    """`--dist_backend trainjob`: the TrainJob on our ClusterTrainingRuntime becomes two
    processes, the JobSet's nodes, which build TF_CONFIG from their names and train the
    CNN together; the rest of the pipeline takes the chief's model as any other."""
    train, test = data_slice
    data = ["--train_data_path", str(train), "--test_data_path", str(test)]
    options = ["--dist_training", "yes", "--dist_backend", "trainjob", "--workers", "2"]
    proc = run_pipeline(out, *data, *SMALL, *options)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = json.loads((out / "run.json").read_text())
    statuses = {name: step["status"] for name, step in run["steps"].items()}
    assert [t for t in statuses if statuses[t] == "Succeeded" and "job" in t] == [
        "trainjob",
        "wait-trainjob",
    ]
    assert {statuses[t] for t in ("tfjob", "tfjob-gpu", "trainjob-gpu", "train")} == {"Skipped"}
    name = run["steps"]["trainjob"]["outputs"]["name"]
    for i in range(2):
        log = (out / "logs" / f"{name}-node-0-{i}.log").read_text()
        assert f"worker {i} of 2 workers, 2 replicas in sync" in log, log[-2000:]
    wait = (out / "logs" / "wait-trainjob.log").read_text()
    assert "jobset completed successfully (AllJobsCompleted)" in wait
    assert 0.5 < run["metrics"]["accuracy"] <= 1


def test_a_rerun_reuses_every_stage_whose_inputs_did_not_change(
    data_slice: tuple[Path, Path], tmp_path: Path
) -> None:
    """Runs side by side (one artifact store, one ML Metadata store) reuse the stages whose
    data, options and code did not change, and say so on each step's line."""
    train, test = data_slice

    def run(name: str, *options: str, test_path: Path = test) -> tuple[dict, str]:
        data = ["--train_data_path", str(train), "--test_data_path", str(test_path)]
        proc = run_pipeline(tmp_path / name, *data, *SMALL, *options)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return json.loads((tmp_path / name / "run.json").read_text()), proc.stdout

    def reused(found: dict, stdout: str, origin: str) -> set[str]:
        """The stage tasks the run reused from run `origin`; each line says so."""
        names = set()
        for task in STAGE_TASKS:
            step = found["steps"][task]
            if step["status"] == "Skipped" and f"cached from {origin}" in step["message"]:
                assert re.search(rf"^{task} +Skipped .*'cached from {origin}'", stdout, re.M)
                names.add(task)
            else:
                assert step["status"] == "Succeeded", (task, step)
        return names

    first, _ = run("first")
    origin = first["workflow_name"]
    assert all(first["steps"][t]["status"] == "Succeeded" for t in STAGE_TASKS)
    assert first["outputs"]["gate_decision"] == "deploy"

    # Only the epochs changed: everything before training is reused (a margin keeps the
    # gate from deploying the new model, so the first one still serves).
    second, stdout = run("second", "--epochs", "1", "--min_improvement", "0.5")
    before_train = set(STAGE_TASKS[:5]) | {"fit-ngrams"}
    assert reused(second, stdout, origin) == before_train
    assert second["steps"]["validate-params"]["status"] == "Succeeded"  # it decides

    # The test file lost a row: only its check and the evaluation run again.
    changed = tmp_path / "test-changed.csv"
    changed.write_text("".join(test.read_text().splitlines(True)[:-1]))
    third, stdout = run("third", test_path=changed)
    assert reused(third, stdout, origin) == set(STAGE_TASKS) - {"dataset-metadata-test", "evaluate"}

    def examples(found: dict) -> int:
        return json.loads((Path(found["artifacts"]["metrics"]) / "metrics.json").read_text())[
            "num_examples"
        ]

    assert examples(third) == examples(first) - 1

    # Nothing changed: every stage is reused, and the gate sees the model that serves.
    fourth, stdout = run("fourth")
    assert reused(fourth, stdout, origin) == set(STAGE_TASKS)
    assert fourth["outputs"]["model_uri"] == first["outputs"]["model_uri"]
    assert fourth["metrics"] == first["metrics"]
    assert fourth["outputs"]["gate_decision"] == "skip"
    assert "is the model that serves" in fourth["outputs"]["gate_reason"]
    # Its lineage is whole: the reused stages are CACHED executions of this run, from the
    # first, linked to the first run's artifacts.
    graph = lineage(fourth["metadata"], fourth["workflow_name"])
    executions = {e["type"]: e for e in graph["executions"]}
    for kind in ("PrepareData", "BuildEmbeddings", "Train", "Evaluate"):
        assert executions[kind]["state"] == "CACHED", executions[kind]
        assert executions[kind]["properties"]["cached_from"] == origin
    models = [a for a in graph["artifacts"] if a["type"] == "Model"]
    assert [m["uri"] for m in models] == [first["outputs"]["model_uri"]]
