"""gate: the candidate against the model that serves now, both scored on this test set,
with the verdict recorded in ML Metadata (real models, a real SQLite store)."""

from __future__ import annotations

import csv
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import (
    SMALL,
    FakeApiServer,
    check_data,
    make_texts,
    record_trained_on,
    recorded,
    run_pipeline,
    run_train,
    write_inputs,
)

from textcnn import metadata, registry
from textcnn.errors import InputError
from textcnn.steps import evaluate, gate
from workflows.dag import templates

KEY = "default/textcnn"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A good model, and a bad one (a plain CNN with a learning rate too small to learn)."""
    root = tmp_path_factory.mktemp("gate")
    good, bad = root / "good", root / "bad"
    run_train(write_inputs(good), good, epochs=3)
    run_train(write_inputs(bad, learning_rate=1e-7, architecture="cnn"), bad, epochs=1)
    for name, rows, seed in (("test", 200, 11), ("train", 400, 12)):
        write_csv(root / f"{name}.csv", *make_texts(rows, seed=seed))
    for folder in (good, bad):
        evaluate.run(
            model_dir=str(folder / "model"),
            prepared_dir=str(folder / "prepared"),
            test_path=str(root / "test.csv"),
            text_column="text",
            label_column="label",
            metrics_dir=str(folder / "metrics"),
        )
    return {"good": good, "bad": bad, "test": root / "test.csv", "train": root / "train.csv"}


def write_csv(path: Path, texts: list[str], labels: list[str]) -> Path:
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([("text", "label"), *zip(texts, labels, strict=True)])
    return path


def accuracy(folder: Path) -> float:
    return float(json.loads((folder / "metrics" / "metrics.json").read_text())["accuracy"])


def model_id(store: str, folder: Path) -> int:
    return metadata.record_artifact(
        store, run_name="wf-old", type_name="Model", uri=str(folder / "model"), properties={}
    )


def serve(store: str, folder: Path) -> int:
    """Record `folder`'s model as what the endpoint serves, as a deploy would."""
    mid = model_id(store, folder)
    registry.record_serving(
        store,
        run_name="wf-old",
        key=KEY,
        model_id=mid,
        model_uri=str(folder / "model"),
        url="http://127.0.0.1:1",
    )
    return mid


def run_gate(
    store: str,
    models: dict[str, Path],
    candidate: str,
    checks: Path | None = None,
    **options: object,
) -> dict:
    """The gate on `candidate`, with `checks` (check-data's folder; by default of the
    module's training and test CSVs, their Datasets recorded in `store`)."""
    folder = models[candidate]
    root = Path(store.removeprefix("sqlite:")).parent
    if checks is None:
        checks = check_data(store, root / "this-run", models["train"], models["test"])
    return gate.run(
        metadata_store=store,
        run_name="wf-new",
        namespace="default",
        isvc_name="textcnn",
        model_id=model_id(store, folder),
        model_uri=str(folder / "model"),
        # This run's prepared data, as check-data read it.
        prepared_dir=str(checks.parent / "prepared"),
        metrics_dir=str(folder / "metrics"),
        report_dir=str(store.removeprefix("sqlite:") + ".gate"),
        test_path=str(checks / "test.csv"),
        text_column="text",
        label_column="label",
        data_checks_dir=str(checks),
        report_uri=str(store.removeprefix("sqlite:") + ".gate/report.html"),
        **options,  # type: ignore[arg-type]
    )


def blessing(store: str) -> dict:
    (found,) = [
        a for a in metadata.lineage(store, "wf-new")["artifacts"] if a["type"] == "Blessing"
    ]
    return found


def test_the_fixture_models_differ(models: dict[str, Path]) -> None:
    assert accuracy(models["good"]) > 0.9 and accuracy(models["bad"]) < 0.75


def test_nothing_serving_yet_deploys(models: dict[str, Path], tmp_path: Path) -> None:
    store = f"sqlite:{tmp_path / 'md.sqlite'}"
    out = run_gate(store, models, "good")
    assert out["decision"] == "deploy" == templates.DEPLOY == gate.DEPLOY
    expected = rf"nothing serves {KEY} yet; candidate accuracy [01]\.\d{{4}}"
    assert re.fullmatch(expected, out["reason"])


def test_a_worse_model_is_skipped_with_both_figures(
    models: dict[str, Path], tmp_path: Path
) -> None:
    store = f"sqlite:{tmp_path / 'md.sqlite'}"
    serving_id = serve(store, models["good"])
    out = run_gate(store, models, "bad")
    good, bad = accuracy(models["good"]), accuracy(models["bad"])
    assert out["decision"] == "skip"
    written = json.loads((tmp_path / "md.sqlite.gate" / "gate.json").read_text())
    assert written["figures"] == {"candidate accuracy": bad, "serving accuracy": good}
    assert f"candidate accuracy {bad:.4f}, serving {good:.4f}" in out["reason"]
    # The blessing links both models, with the figures.
    found = blessing(store)
    props = found["properties"]
    assert (props["decision"], props["serving_model_id"]) == ("skip", serving_id)
    assert props["serving_model_uri"] == str(models["good"] / "model")
    assert props["candidate"] == pytest.approx(bad) and props["serving"] == pytest.approx(good)
    graph = metadata.lineage(store, "wf-new")
    (execution,) = [e for e in graph["executions"] if e["type"] == "Gate"]
    inputs = {
        e["artifact_id"]
        for e in graph["events"]
        if e["execution_id"] == execution["id"] and e["type"] == "INPUT"
    }
    # ... and the data weighed: this run's training Dataset (nothing recorded what the
    # serving model learned from, so its test data was compared with its training data).
    data = json.loads((tmp_path / "this-run" / "data-checks" / "checks.json").read_text())
    types = metadata.artifact_types(store, sorted(inputs))
    assert serving_id in inputs and data["dataset_ids"]["train"] in inputs
    assert sorted(types.values()) == ["Dataset", "Model", "Model"]
    # The endpoint still serves the good model.
    now = registry.serving(store, KEY)
    assert now is not None and now.model_id == serving_id


def test_force_deploy_and_margins(models: dict[str, Path], tmp_path: Path) -> None:
    store = f"sqlite:{tmp_path / 'md.sqlite'}"
    serve(store, models["good"])
    forced = run_gate(store, models, "bad", force_deploy=True)
    assert forced["decision"] == "deploy" and forced["reason"].startswith("forced")
    # The serving model itself (a run that reused every stage) is not deployed again.
    again = run_gate(store, models, "good")
    assert again["decision"] == "skip" and "is the model that serves" in again["reason"]
    # Forced, it is deployed again (with the run's serving options, say).
    assert run_gate(store, models, "good", force_deploy=True)["decision"] == "deploy"
    # A model as good is at least as good; with a margin it is not enough.
    twin = {**models, "good": Path(shutil.copytree(models["good"], tmp_path / "twin"))}
    assert run_gate(store, twin, "good")["decision"] == "deploy"
    strict = run_gate(store, twin, "good", min_improvement=0.01)
    assert strict["decision"] == "skip" and "needed" in strict["reason"]
    by_f1 = run_gate(store, models, "bad", gate_metric="macro_f1")
    assert by_f1["decision"] == "skip" and "candidate macro_f1" in by_f1["reason"]


def test_a_serving_model_that_cannot_be_loaded_counts_as_nothing(
    models: dict[str, Path], tmp_path: Path
) -> None:
    store = f"sqlite:{tmp_path / 'md.sqlite'}"
    broken = tmp_path / "broken"
    shutil.copytree(models["good"], broken)
    serve(store, broken)
    (broken / "model" / "1" / "saved_model.pb").write_text("not a SavedModel")
    out = run_gate(store, models, "bad")
    assert out["decision"] == "deploy"
    assert "cannot be evaluated, so nothing usable serves: cannot load it" in out["reason"]
    shutil.rmtree(broken)  # a deleted folder, as a deleted bucket
    out = run_gate(store, models, "bad")
    assert out["decision"] == "deploy" and "cannot be evaluated" in out["reason"]


def test_the_candidate_is_the_model_ml_metadata_registered(
    models: dict[str, Path], tmp_path: Path
) -> None:
    # A kept output of a resumed run (run.json is data) naming another model: refused.
    store = f"sqlite:{tmp_path / 'md.sqlite'}"
    with pytest.raises(InputError, match=r"--model_id \d+ is .*/bad/model in ML Metadata, not"):
        gate.run(
            metadata_store=store,
            run_name="wf-new",
            namespace="default",
            isvc_name="textcnn",
            model_id=model_id(store, models["bad"]),
            model_uri=str(models["good"] / "model"),
            prepared_dir=str(models["good"] / "prepared"),
            metrics_dir=str(models["good"] / "metrics"),
            report_dir=str(tmp_path / "gate"),
            test_path=str(models["test"]),
            text_column="text",
            label_column="label",
            data_checks_dir=str(tmp_path / "data-checks"),
            report_uri=str(tmp_path / "gate" / "report.html"),
        )


def test_deploy_off_skips_without_scoring(models: dict[str, Path], tmp_path: Path) -> None:
    store = f"sqlite:{tmp_path / 'md.sqlite'}"
    out = run_gate(store, models, "good", deploy=False)
    assert (out["decision"], out["reason"]) == ("skip", "deploy is off (--deploy no)")
    # The data's figures are still given (and gauged).
    assert out["data_checks"].startswith(
        "this run's test data (nothing serves) against this run's training data: label drift"
    )
    verdict = json.loads((tmp_path / "md.sqlite.gate" / "gate.json").read_text())["data"]
    for figure in ("label_drift", "length_drift", "oov_rate"):
        assert float(out[figure]) == verdict[figure], figure


@pytest.mark.parametrize(
    ("candidate", "serving", "margin", "force", "decision"),
    [
        (0.8, None, 0.0, False, "deploy"),
        (0.8, 0.8, 0.0, False, "deploy"),
        (0.79, 0.8, 0.0, False, "skip"),
        (0.79, 0.8, -0.02, False, "deploy"),  # a tolerated loss
        (0.81, 0.8, 0.02, False, "skip"),
        (0.5, 0.8, 0.0, True, "deploy"),
    ],
)
def test_decision_table(
    candidate: float, serving: float | None, margin: float, force: bool, decision: str
) -> None:
    assert gate.decide("accuracy", candidate, serving, margin, force)[0] == decision


def test_an_improvement_of_exactly_the_margin_deploys_and_is_called_better() -> None:
    # Row: before, 0.30 against 0.20 with a 0.1 margin was skipped as "worse than the
    # serving model ... needed 0.3000" (0.3 - 0.2 < 0.1 in floating point).
    decision, reason = gate.decide("accuracy", 0.30, 0.20, 0.1, False)
    assert decision == "deploy"
    assert reason == (
        "better by at least the required +0.1: candidate accuracy 0.3000, serving 0.2000 (+0.1)"
    )
    decision, reason = gate.decide("accuracy", 0.25, 0.20, 0.1, False)
    assert decision == "skip" and reason.startswith("not better by the required +0.1:")
    assert "worse" not in reason
    # 2,499 more right of 25,000: just short, and the figure says so.
    decision, reason = gate.decide("accuracy", 0.6, 0.6 - 2499 / 25000, 0.1, False)
    assert decision == "skip" and "(+0.09996)" in reason


def test_a_negative_margin_is_described_as_a_tolerated_loss() -> None:
    # Row: before, 0.59 against 0.60 with -0.05 was "at least as good ... (needed +-0.05)".
    decision, reason = gate.decide("accuracy", 0.59, 0.60, -0.05, False)
    assert decision == "deploy"
    assert reason == (
        "worse, but within the tolerated 0.05: candidate accuracy 0.5900, serving 0.6000 (-0.01)"
    )
    decision, reason = gate.decide("accuracy", 0.50, 0.60, -0.05, False)
    assert decision == "skip"
    assert reason.startswith("worse than the serving model by more than the tolerated 0.05:")
    assert reason.endswith("needed 0.5500")


@pytest.mark.slow
def test_runs_sharing_a_store_deploy_only_what_is_no_worse(
    data_slice: tuple[Path, Path], tmp_path: Path
) -> None:
    """Three `python -m workflows run`s beside each other (one runs/metadata.sqlite), on
    KServe's Serverless mode; the forced one rolls out as a canary."""
    train, test = data_slice
    data = ["--train_data_path", str(train), "--test_data_path", str(test), *SMALL]
    data += ["--serving_deployment_mode", "Serverless"]
    store = f"sqlite:{tmp_path / 'metadata.sqlite'}"

    def run(name: str, *options: str) -> dict:
        proc = run_pipeline(tmp_path / name, *data, *options)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        found = json.loads((tmp_path / name / "run.json").read_text())
        assert f"gate: {found['outputs']['gate_decision']} (" in proc.stdout
        # The last lines: the data's figures, and where the report is.
        *_, data_line, report_line = proc.stdout.splitlines()
        assert data_line == f"data: {found['outputs']['data_checks']}"
        assert report_line == f"report: {found['outputs']['report']}"
        assert "<h2>Data checks: passed</h2>" in Path(found["outputs"]["report"]).read_text()
        return found

    first = run("first", "--epochs", "4")
    assert first["metadata"] == store
    assert first["outputs"]["gate_decision"] == "deploy"
    assert first["outputs"]["gate_reason"].startswith("nothing serves default/textcnn yet")
    deployed = registry.serving(store, KEY)
    assert deployed is not None and deployed.model_uri == first["artifacts"]["model"]
    assert deployed.metrics["accuracy"] == pytest.approx(first["metrics"]["accuracy"])

    assert first["outputs"]["data_checks"].startswith(
        "this run's test data (nothing serves) against this run's training data"
    )
    # A plain CNN on 50 words: the wide branch has a vocabulary of its own.
    small = ("--architecture", "cnn", "--num_words", "50", "--epochs", "1")
    worse = run("worse", *small)
    assert worse["status"] == "Succeeded"  # a skipped deploy is no failure
    assert worse["outputs"]["gate_decision"] == "skip"
    reason = worse["outputs"]["gate_reason"]
    assert f"candidate accuracy {worse['metrics']['accuracy']:.4f}, serving" in reason
    # The same data as the serving model's: nothing drifted.
    assert worse["outputs"]["data_checks"].startswith(
        "this run's training data against the serving model's training data "
        f"({first['workflow_name']}, model {deployed.model_id})"
    )
    assert float(worse["steps"]["gate"]["outputs"]["label_drift"]) == 0.0
    assert worse["steps"]["deploy-tensorflow"]["status"] == "Skipped"
    assert worse["steps"]["deploy-wait"]["status"] == "Omitted"
    now = registry.serving(store, KEY)
    assert now is not None and now.model_id == deployed.model_id  # still the first model
    # The verdict is in the run's report (the gate artifact), beside the metrics.
    report = (Path(worse["artifacts"]["gate"]) / "report.html").read_text()
    assert "<h2>Deploy gate: skip</h2>" in report and "worse than the serving model" in report

    forced = run(
        "forced",
        *small,
        *("--force_deploy", "yes"),
        *("--canary_traffic_percent", "10"),
    )
    assert forced["outputs"]["gate_decision"] == "deploy"
    assert forced["outputs"]["gate_reason"].startswith("forced (--force_deploy)")
    # The canary answered its probes as the model does offline, and was promoted.
    assert forced["steps"]["canary-check"]["outputs"]["verdict"] == "promoted"
    # The deploy steps ran as processes against the local Kubernetes API, like any step.
    for step in ("deploy-wait", "canary-check"):
        ran = forced["steps"][step]
        assert (ran["exit_code"], Path(ran["log"]).is_file()) == (0, True)
        assert f"-m textcnn {step}" in Path(ran["log"]).read_text()
    now = registry.serving(store, KEY)
    # It reused the stages of `worse` (only gate options changed): its model is that one.
    assert forced["steps"]["export"]["status"] == "Skipped"
    assert now is not None and now.model_uri == forced["outputs"]["model_uri"]
    print(
        first["outputs"]["gate_reason"],
        reason,
        forced["outputs"]["gate_reason"],
        forced["steps"]["canary-check"]["outputs"]["reason"],
        sep="\n",
    )


def test_on_a_cluster_a_live_service_that_disagrees_with_the_registry_is_reported(
    models: dict[str, Path],
    tmp_path: Path,
    kube_api: Callable[[list[dict]], FakeApiServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = f"sqlite:{tmp_path / 'md.sqlite'}"
    serve(store, models["good"])
    api = kube_api([recorded("isvc", "ready")])  # serves gs://textcnn-artifacts/.../model
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")  # in a pod (kubeconfig here)
    out = run_gate(store, models, "bad")
    assert out["decision"] == "skip"  # compared with ML Metadata's serving model
    assert (
        "the live InferenceService serves gs://textcnn-artifacts/textcnn-q7m4d/model, "
        f"ML Metadata says {models['good'] / 'model'}"
    ) in out["reason"]
    path = "/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices/textcnn"
    assert api.requests == [(path, "Bearer t0ken")]


# --- the data: this run's against what the serving model learned from ------------------


def serve_trained_on(
    store: str, models: dict[str, Path], root: Path, train: Path, serving: str = "bad"
) -> int:
    """Record the `serving` model as serving, trained on `train` (tested on the module's
    test CSV), with the lineage log-training-metadata records; its id."""
    old = check_data(store, root, train, models["test"], run_name="wf-old")
    mid = record_trained_on(store, old, str(models[serving] / "model"))
    registry.record_serving(
        store,
        run_name="wf-old",
        key=KEY,
        model_id=mid,
        model_uri=str(models[serving] / "model"),
        url="http://127.0.0.1:1",
    )
    return mid


def test_a_vanished_class_withholds_a_better_model(models: dict[str, Path], tmp_path: Path) -> None:
    store = f"sqlite:{tmp_path / 'md.sqlite'}"
    texts, labels = make_texts(400, seed=12)
    with_meh = write_csv(
        tmp_path / "old-train.csv",
        texts + [f"meh {t}" for t in texts[:30]],
        labels + ["meh"] * 30,
    )
    serving_id = serve_trained_on(store, models, tmp_path / "old", with_meh)
    out = run_gate(store, models, "good")
    # A vanished class blocks on its own: the label drift is within its threshold.
    assert out["decision"] == "skip"
    assert out["reason"].startswith(
        "data drift (class ['meh'] vanished; this run's training data against the serving "
        f"model's training data (wf-old, model {serving_id})); "
    )
    assert "candidate accuracy" in out["reason"]  # the scores are still given
    assert float(out["label_drift"]) == pytest.approx(30 / 430)
    # Recorded: the figures on the blessing, both training Datasets as the Gate's inputs.
    props = blessing(store)["properties"]
    assert json.loads(props["data_blocks"]) == ["class ['meh'] vanished"]
    assert props["label_drift"] == pytest.approx(30 / 430, rel=1e-5)  # as MLMD keeps it
    graph = metadata.lineage(store, "wf-new")
    (execution,) = [e for e in graph["executions"] if e["type"] == "Gate"]
    inputs = [
        e["artifact_id"]
        for e in graph["events"]
        if e["execution_id"] == execution["id"] and e["type"] == "INPUT"
    ]
    old = json.loads((tmp_path / "old" / "data-checks" / "checks.json").read_text())
    new = json.loads((tmp_path / "this-run" / "data-checks" / "checks.json").read_text())
    assert {old["dataset_ids"]["train"], new["dataset_ids"]["train"], serving_id} < set(inputs)
    assert out["report"] == str(tmp_path / "md.sqlite.gate" / "report.html")
    verdict = json.loads((tmp_path / "md.sqlite.gate" / "gate.json").read_text())
    assert verdict["data"]["vanished"] == ["meh"]
    # --force_deploy overrides, and says so.
    forced = run_gate(store, models, "good", force_deploy=True)
    assert forced["decision"] == "deploy"
    assert "overridden by --force_deploy" in forced["reason"]


def test_texts_cut_to_three_words_withhold_the_deploy_with_the_length_drift(
    models: dict[str, Path], tmp_path: Path
) -> None:
    store = f"sqlite:{tmp_path / 'md.sqlite'}"
    serve_trained_on(store, models, tmp_path / "old", models["train"])
    cut = {}
    for name in ("train", "test"):
        rows = list(csv.reader(models[name].open(newline="")))[1:]
        cut[name] = write_csv(
            tmp_path / f"cut-{name}.csv",
            [" ".join(text.split()[:3]) for text, _ in rows],
            [label for _, label in rows],
        )
    checks = check_data(store, tmp_path / "cut", cut["train"], cut["test"])
    out = run_gate(store, models, "good", checks=checks)
    assert out["decision"] == "skip"
    drift = float(out["length_drift"])
    assert drift > 0.9
    assert f"length drift {drift:.4f} > --max_length_drift 0.25" in out["reason"]
    assert float(out["label_drift"]) == 0.0
    assert out["data_checks"].startswith(
        "this run's training data against the serving model's training data"
    )
    # The same data as the serving model's: nothing drifts, and the better model deploys.
    same = run_gate(store, models, "good")
    assert same["decision"] == "deploy"
    assert (float(same["label_drift"]), float(same["length_drift"])) == (0.0, 0.0)
    # A worse candidate on drifted data: the reason gives both.
    other = f"sqlite:{tmp_path / 'other.sqlite'}"
    serve_trained_on(other, models, tmp_path / "old-good", models["train"], serving="good")
    worse = run_gate(
        other, models, "bad", checks=check_data(other, tmp_path / "cut", *cut.values())
    )
    assert worse["decision"] == "skip"
    assert worse["reason"].startswith("data drift (length drift")
    assert "; worse than the serving model: candidate accuracy" in worse["reason"]
    # Within a threshold raised to allow it, the cut data deploys too.
    assert run_gate(store, models, "good", checks=checks, max_length_drift=1.0)["decision"] == (
        "deploy"
    )


def test_words_the_serving_model_never_saw_withhold_the_deploy(
    models: dict[str, Path], tmp_path: Path
) -> None:
    store = f"sqlite:{tmp_path / 'md.sqlite'}"
    serve_trained_on(store, models, tmp_path / "old", models["train"])
    rows = list(csv.reader(models["train"].open(newline="")))[1:]
    # Every text gets as many new words as it has: half its words are unknown.
    renamed = write_csv(
        tmp_path / "renamed.csv",
        [" ".join([*t.split(), *(f"novel{i}" for i in range(len(t.split())))]) for t, _ in rows],
        [label for _, label in rows],
    )
    checks = check_data(store, tmp_path / "new", renamed, models["test"])
    out = run_gate(store, models, "good", checks=checks, max_length_drift=1.0)
    assert out["decision"] == "skip"
    assert float(out["oov_rate"]) == pytest.approx(0.5, abs=0.05)
    assert "OOV rate" in out["reason"] and "--max_oov_rate 0.3" in out["reason"]
    assert "against the serving model's vocabulary" in out["data_checks"]


def test_without_the_serving_model_s_data_the_gate_says_what_it_compared(
    models: dict[str, Path], tmp_path: Path
) -> None:
    store = f"sqlite:{tmp_path / 'md.sqlite'}"
    serve(store, models["bad"])  # no lineage: nothing says what it learned from
    out = run_gate(store, models, "good")
    assert out["data_checks"].startswith(
        "this run's test data (the serving model's data is unrecorded) against this run's "
        "training data"
    )
    # Its lineage recorded, but its vocabulary gone from the artifact repository.
    other = f"sqlite:{tmp_path / 'other.sqlite'}"
    serve_trained_on(other, models, tmp_path / "old", models["train"])
    (tmp_path / "old" / "prepared" / "vocab.json").unlink()
    out = run_gate(other, models, "good")
    assert out["decision"] == "deploy"
    assert (
        f"against this run's vocabulary ({tmp_path / 'old' / 'prepared'}/vocab.json is "
        in (out["data_checks"])
    )
