"""deploy-wait: readiness decisions over recorded InferenceService objects, the smoke test
against a real local model server, and the whole step through the kubernetes client.

The objects in fixtures/isvc/ are KServe 0.15 InferenceServices (Serverless mode, the
project's custom predictor) at the moments that matter when generation 2 replaces a
serving generation 1: no status yet, the old generation still Ready, the new revision
rolling out, ready, and the new model failing to load; plus one ready TF Serving
predictor in RawDeployment mode.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Iterator
from pathlib import Path

import helpers
import pytest
from helpers import FakeApiServer

from textcnn import metadata, registry
from textcnn.cluster import inference_service as deploy
from textcnn.cluster.inference_service import check_predictions, isvc_status, smoke_test, wait_ready
from textcnn.errors import InputError
from textcnn.export import export_serving_model
from textcnn.model import ModelConfig, build_model
from textcnn.serving import LocalServer, build_app, load_model
from textcnn.steps import deploy_wait
from workflows.checks.admission import validate_inference_service

pytestmark = pytest.mark.filterwarnings("ignore::fastapi.exceptions.FastAPIDeprecationWarning")

FIXTURES = Path(__file__).parent / "fixtures" / "isvc"
CLUSTER_URL = "http://textcnn.textcnn.svc.cluster.local"
CLASSES = ["negative", "positive"]


recorded = functools.partial(helpers.recorded, "isvc")
replay = functools.partial(helpers.replay, "isvc")


@pytest.mark.parametrize("fixture", sorted(p.stem for p in FIXTURES.glob("*.json")))
def test_recorded_objects_are_valid_inference_services(fixture: str) -> None:
    assert validate_inference_service(recorded(fixture)) == []


@pytest.mark.parametrize(
    ("fixture", "generation", "state", "words"),
    [
        ("no-status", 1, "waiting", "no status yet"),
        ("stale-ready", 2, "waiting", "status is for generation 1"),
        ("stale-ready", 1, "ready", CLUSTER_URL),  # the same object, judged for its own spec
        ("rolling-out", 2, "waiting", "RevisionMissing"),
        ("failed-to-load", 2, "failed", "no saved_model.pb"),
        ("ready", 2, "ready", CLUSTER_URL),
        ("ready", 3, "waiting", "not yet for generation 3"),
        # RawDeployment, KServe's TF Serving runtime: no Knative revisions.
        ("ready-raw-tensorflow", 1, "ready", "http://textcnn-predictor.textcnn.svc.cluster.local"),
    ],
)
def test_isvc_status_of_recorded_objects(
    fixture: str, generation: int, state: str, words: str
) -> None:
    got_state, detail = isvc_status(recorded(fixture), generation)
    assert got_state == state
    assert words in detail


def test_failure_names_reason_and_exit_code() -> None:
    _, detail = isvc_status(recorded("failed-to-load"), 2)
    assert "ModelLoadFailed" in detail and "exitCode 2" in detail


def test_failed_revision_without_model_status_is_a_failure() -> None:
    obj = recorded("failed-to-load")
    del obj["status"]["modelStatus"]
    state, detail = isvc_status(obj, 2)
    assert state == "failed" and detail.startswith("RevisionFailed: Revision")


def test_ready_with_a_newer_revision_not_ready_is_still_waiting() -> None:
    obj = recorded("ready")
    obj["status"]["components"]["predictor"]["latestCreatedRevision"] = "textcnn-predictor-00003"
    state, detail = isvc_status(obj, 2)
    assert state == "waiting" and "textcnn-predictor-00003" in detail


def test_external_url_is_used_without_a_cluster_address() -> None:
    obj = recorded("ready")
    del obj["status"]["address"]
    assert isvc_status(obj, 2) == ("ready", "http://textcnn-textcnn.example.com")


def test_wait_ready_skips_the_stale_ready_and_returns_the_new_url() -> None:
    get, seen = replay("stale-ready", "rolling-out", "rolling-out", "ready")
    assert wait_ready(get, 2, timeout_s=10, poll_s=0) == CLUSTER_URL
    assert seen == ["stale-ready", "rolling-out", "rolling-out", "ready"]


def test_wait_ready_raises_on_a_visible_failure() -> None:
    get, seen = replay("stale-ready", "rolling-out", "failed-to-load", "ready")
    with pytest.raises(
        RuntimeError,
        match=r"textcnn/textcnn \(generation 2\) failed: "
        r"model failed to load .*no saved_model\.pb",
    ):
        wait_ready(get, 2, timeout_s=10, poll_s=0)
    assert seen[-1] == "failed-to-load"


def test_wait_ready_times_out_naming_the_last_state() -> None:
    get, seen = replay("no-status", "stale-ready", "rolling-out")
    with pytest.raises(
        TimeoutError,
        match=r"textcnn/textcnn not ready for generation 2 after "
        r"0\.2 s; last seen: Ready is Unknown "
        r"\(RevisionMissing: Configuration",
    ):
        wait_ready(get, 2, timeout_s=0.2, poll_s=0.01)
    assert len(seen) > 3


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (
            {"predictions": [{"label": "positive", "scores": {"negative": 0.2, "positive": 0.8}}]},
            None,
        ),
        # TF Serving's row format for a signature with several outputs.
        (
            {
                "predictions": [
                    {"label": "positive", "scores": [0.2, 0.8], "classes": ["negative", "positive"]}
                ]
            },
            None,
        ),
        ({"predictions": []}, "expected 1 predictions"),
        ({"outputs": [0.2, 0.8]}, "expected 1 predictions"),
        ({"predictions": [{"scores": {"a": 1.0}}]}, "no string label"),
        ({"predictions": [{"label": "a", "scores": [1.0]}]}, "no class scores"),
        (
            {"predictions": [{"label": "a", "scores": [0.5, 0.5], "classes": ["a"]}]},
            "2 scores for 1 classes",
        ),
        ({"predictions": [{"label": "a", "scores": {"a": 3.0}}]}, "not probabilities"),
        ({"predictions": [{"label": "c", "scores": {"a": 0.5, "b": 0.5}}]}, "not one of"),
    ],
)
def test_check_predictions(body: dict, words: str | None) -> None:
    if words is None:
        check_predictions(body, 1)
    else:
        with pytest.raises(RuntimeError, match=words):
            check_predictions(body, 1)


@pytest.fixture(scope="module")
def model_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A local model server over a small (untrained) exported Kim CNN, named `textcnn`."""
    base = tmp_path_factory.mktemp("model")
    vocabulary = ["", "[UNK]", "dull", "film", "funny", "long", "moving"]
    config = ModelConfig(
        vocab_size=len(vocabulary),
        max_length=10,
        num_classes=2,
        classes=CLASSES,
        embedding_dim=4,
        filter_sizes=[2],
        num_filters=2,
        num_conv_layers=1,
        maxpool_strides=2,
        dropout=0.5,
        learning_rate=1e-3,
    )
    export_serving_model(build_model(config), vocabulary, 10, CLASSES, base)
    with LocalServer(build_app(load_model(base, "textcnn"))) as server:
        yield server.url


def test_smoke_test_against_the_local_server(model_url: str) -> None:
    body = smoke_test(model_url + "/", "textcnn", deploy.SMOKE_TEXTS)
    assert [set(p["scores"]) for p in body["predictions"]] == [set(CLASSES)] * 2


def test_smoke_test_reports_an_error_answer(model_url: str) -> None:
    with pytest.raises(RuntimeError, match=r"textcnn-v2:predict answered 404: .*does not exist"):
        smoke_test(model_url, "textcnn-v2", ["a film"])


def test_run_waits_through_the_kubernetes_client_and_smoke_tests(
    model_url: str,
    tmp_path: Path,
    kube_api: Callable[[list[dict]], FakeApiServer],
) -> None:
    ready = recorded("ready")
    ready["status"]["address"]["url"] = model_url  # the recorded object, served locally
    api = kube_api([recorded("stale-ready"), recorded("rolling-out"), copy.deepcopy(ready)])
    store = f"sqlite:{tmp_path / 'mlmd.sqlite'}"
    model_id = metadata.record_artifact(
        store, run_name="wf-1", type_name="Model", uri="gs://b/wf-1/model", properties={}
    )
    outputs = deploy_wait.run(
        name="textcnn",
        namespace="textcnn",
        generation=2,
        model_name="textcnn",
        metadata_store=store,
        run_name="wf-1",
        model_id=model_id,
        model_uri="gs://b/wf-1/model",
        timeout_s=30,
        poll_s=0.01,
    )
    assert outputs == {"endpoint": model_url}
    # ... and the registry now says what serves textcnn in namespace textcnn.
    now = registry.serving(store, "textcnn/textcnn")
    assert now is not None and (now.model_id, now.model_uri) == (model_id, "gs://b/wf-1/model")
    assert (now.url, now.run_name, now.event) == (model_url, "wf-1", "deployed")
    path = "/apis/serving.kserve.io/v1beta1/namespaces/textcnn/inferenceservices/textcnn"
    assert api.requests == [(path, "Bearer t0ken")] * 3
    # The endpoint is recorded in ML Metadata, produced from the model.
    graph = metadata.lineage(store, "wf-1")
    (endpoint,) = [a for a in graph["artifacts"] if a["type"] == "Endpoint"]
    assert endpoint["uri"] == model_url
    (deploy_ex,) = [e for e in graph["executions"] if e["type"] == "Deploy"]
    assert {
        (e["artifact_id"], e["type"])
        for e in graph["events"]
        if e["execution_id"] == deploy_ex["id"]
    } == {(model_id, "INPUT"), (endpoint["id"], "OUTPUT")}


def test_run_rejects_a_negative_generation() -> None:
    def never() -> dict:
        raise AssertionError("the service must not be read")

    with pytest.raises(InputError, match="--generation -1"):
        deploy.finish(
            never,
            name="textcnn",
            namespace="textcnn",
            generation=-1,
            model_name="textcnn",
            metadata_store="sqlite:/nonexistent/x.sqlite",
            run_name="wf",
            model_id=1,
            model_uri="gs://b/wf/model",
            timeout_s=1,
            poll_s=1,
        )


@pytest.mark.parametrize("fixture", ["ready", "ready-raw-tensorflow"])
def test_the_restore_patch_points_either_runtime_at_the_previous_model(fixture: str) -> None:
    obj = recorded(fixture)
    patch = deploy.restore_patch(obj, "gs://b/old/model")
    predictor = copy.deepcopy(obj["spec"]["predictor"])
    for key, value in patch["spec"]["predictor"].items():  # RFC 7386, one level deep here
        predictor[key] = {**predictor[key], **value} if isinstance(value, dict) else value
    if "model" in predictor:
        assert predictor["model"]["storageUri"] == "gs://b/old/model"
        assert predictor["model"]["modelFormat"] == obj["spec"]["predictor"]["model"]["modelFormat"]
    else:
        (env,) = [e for e in predictor["containers"][0]["env"] if e["name"] == "STORAGE_URI"]
        assert env["value"] == "gs://b/old/model"
        assert (
            predictor["containers"][0]["image"]
            == obj["spec"]["predictor"]["containers"][0]["image"]
        )
    assert obj["spec"]["predictor"] != predictor  # the object itself is left alone
