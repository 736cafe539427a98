"""deploy-wait: the rollout judged from what serves the predictor, the smoke test against
the candidate's own answers, and the whole step through the kubernetes client.

The step tests replay object sequences written as KServe, Knative and the Deployment
controller write them (tests/upstream.py names the upstream code of each), against a
FakeApiServer, and reach the cluster-local addresses through `ClusterNetwork`, which routes
cluster host names to local model servers of two toy models: OLD (serving before) and NEW
(the candidate), which answer differently.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helpers
import pytest
import upstream
from helpers import ClusterNetwork, FakeApiServer
from upstream import DEPLOYMENT_PATH, ISVC_PATH, KSVC_PATH, NEW, OLD

from textcnn import metadata, registry
from textcnn.cluster import answers, rollout
from textcnn.cluster import inference_service as deploy
from textcnn.errors import FinalError
from textcnn.steps import deploy_wait
from workflows.checks.admission import validate_inference_service

pytestmark = pytest.mark.filterwarnings("ignore::fastapi.exceptions.FastAPIDeprecationWarning")

FIXTURES = Path(__file__).parent / "fixtures" / "isvc"
KEY = f"{upstream.NAMESPACE}/{upstream.NAME}"
RAW_HOST = f"{upstream.PREDICTOR}.{upstream.NAMESPACE}.svc.cluster.local"
SERVERLESS_HOST = f"{upstream.NAME}.{upstream.NAMESPACE}.svc.cluster.local"
LATEST_HOST = f"latest-{upstream.PREDICTOR}.{upstream.NAMESPACE}.svc.cluster.local"

recorded = functools.partial(helpers.recorded, "isvc")


@pytest.mark.parametrize("fixture", sorted(p.stem for p in FIXTURES.glob("*.json")))
def test_recorded_objects_are_valid_inference_services(fixture: str) -> None:
    assert validate_inference_service(recorded(fixture)) == []


def test_upstream_sequences_are_valid_inference_services() -> None:
    objects = [
        *(i for i, _ in upstream.rolling_update()),
        *(i for i, _ in upstream.serverless_rollout()),
        upstream.canary_split()[0],
        upstream.first_canary()[0],
    ]
    assert all(validate_inference_service(o) == [] for o in objects)


# --- the rollout, judged as the controllers report it ---------------------------------


def test_a_rolling_update_is_rolled_out_only_when_the_old_pod_is_gone() -> None:
    """The InferenceService says Ready at the Deployment's generation all along; the
    Deployment, read as `kubectl rollout status` reads it, does not."""
    frames = upstream.rolling_update()
    assert all(i["status"]["conditions"][-1]["status"] == "True" for i, _ in frames)
    states = [rollout.deployment_state(d, NEW) for _, d in frames]
    assert [s for s, _ in states] == ["waiting"] * 5 + ["rolled-out"]
    assert f"still for {OLD}, not yet for {NEW}" in states[0][1]
    assert "waiting for its controller to observe generation 4" in states[1][1]
    assert all("1 old replicas are pending termination" in d for _, d in states[2:5])


def test_a_deployment_past_its_progress_deadline_has_failed() -> None:
    _, dep = upstream.never_loads()[-1]
    state, detail = rollout.deployment_state(dep, NEW)
    assert state == "failed" and "exceeded its progress deadline" in detail


def test_a_knative_service_is_rolled_out_when_its_latest_revision_is_ready() -> None:
    states = [rollout.knative_state(k, NEW) for _, k in upstream.serverless_rollout()]
    assert [s for s, _ in states] == ["waiting", "waiting", "rolled-out"]
    assert "OutOfDate" in states[0][1]
    assert "revision textcnn-predictor-00002 is not ready yet" in states[1][1]
    state, detail = rollout.knative_state(upstream.revision_failed()[1], NEW)
    assert state == "failed" and "RevisionFailed" in detail and "no saved_model.pb" in detail


def test_the_storage_uri_is_read_from_kserves_annotation_or_the_containers_env() -> None:
    _, dep = upstream.rolling_update()[-1]
    assert rollout.template_uri(dep["spec"]["template"]) == NEW
    del dep["spec"]["template"]["metadata"]["annotations"]
    assert rollout.template_uri(dep["spec"]["template"]) == NEW  # STORAGE_URI


def test_tag_addresses_are_cluster_local_whatever_the_traffic_urls_say() -> None:
    _, ksvc = upstream.canary_split()
    assert ksvc["status"]["traffic"][0]["url"].endswith(".example.com")
    assert rollout.tag_address(ksvc, "latest") == f"http://{LATEST_HOST}"


# --- answers ------------------------------------------------------------------------------


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
def test_parse_answers(body: dict, words: str | None) -> None:
    if words is None:
        (answer,) = answers.parse(body, 1)
        assert answer == answers.Answer("positive", {"negative": 0.2, "positive": 0.8})
    else:
        with pytest.raises(RuntimeError, match=words):
            answers.parse(body, 1)


def test_an_answer_is_the_candidates_only_with_its_label_and_scores() -> None:
    want = answers.Answer("pos", {"neg": 0.3, "pos": 0.7})
    assert answers.same(answers.Answer("pos", {"neg": 0.3004, "pos": 0.6996}), want)
    assert not answers.same(answers.Answer("pos", {"neg": 0.35, "pos": 0.65}), want)
    assert not answers.same(answers.Answer("neg", {"neg": 0.3, "pos": 0.7}), want)
    assert answers.differing([None, want, answers.Answer("neg", want.scores)], [want] * 3) == [2]


# --- the step through the kubernetes client -------------------------------------------


@dataclass
class Scene:
    """A cluster for the step: the API server's objects, the network's routes, the
    registry, and the step's call."""

    models: dict[str, Path]
    servers: dict[str, str]
    tmp_path: Path
    kube_api: Callable[..., FakeApiServer]
    network: Callable[[dict[str, str]], ClusterNetwork]

    def store(self, serving_old: bool) -> tuple[str, int]:
        """An ML Metadata store with the candidate NEW recorded (its id returned) and, if
        `serving_old`, OLD recorded as what the endpoint serves."""
        store = f"sqlite:{self.tmp_path / 'mlmd.sqlite'}"
        if serving_old:
            old_id = metadata.record_artifact(
                store, run_name="wf-1", type_name="Model", uri=OLD, properties={}
            )
            registry.record_serving(
                store, run_name="wf-1", key=KEY, model_id=old_id, model_uri=OLD, url="x"
            )
        new_id = metadata.record_artifact(
            store, run_name="wf-2", type_name="Model", uri=NEW, properties={}
        )
        return store, new_id

    def run(self, store: str, model_id: int, **extra: Any) -> dict[str, str]:
        return deploy_wait.run(
            name=upstream.NAME,
            namespace=upstream.NAMESPACE,
            model_name=upstream.NAME,
            metadata_store=store,
            run_name="wf-2",
            model_id=model_id,
            model_uri=NEW,
            model_dir=str(self.models["new"]),
            poll_s=0.01,
            **({"timeout_s": 30} | extra),
        )


@pytest.fixture
def scene(
    toy_models: dict[str, Path],
    toy_servers: dict[str, str],
    tmp_path: Path,
    kube_api: Callable[..., FakeApiServer],
    network: Callable[[dict[str, str]], ClusterNetwork],
) -> Scene:
    return Scene(toy_models, toy_servers, tmp_path, kube_api, network)


def _sequences(frames: list[tuple[dict, dict]], path: str) -> dict[str, list[dict]]:
    return {ISVC_PATH: [i for i, _ in frames], path: [o for _, o in frames]}


def test_a_rolling_update_is_waited_for_until_the_old_pod_is_gone(
    scene: Scene,
) -> None:
    """Finding 1: the InferenceService is Ready at "its" observed generation from the first
    read, because the old pod keeps the Deployment Available; the step waits for the
    Deployment's rollout, then the new model answers and is recorded."""
    frames = upstream.rolling_update()
    api = scene.kube_api(_sequences(frames, DEPLOYMENT_PATH))
    proxy = scene.network({RAW_HOST: scene.servers["new"]})
    store, new_id = scene.store(serving_old=True)
    outputs = scene.run(store, new_id)
    assert outputs == {"endpoint": f"http://{RAW_HOST}"}
    assert api.gets(DEPLOYMENT_PATH) == len(frames)  # not done before the last frame
    assert api.requests[0] == (ISVC_PATH, "Bearer t0ken")
    assert proxy.hosts == [RAW_HOST]
    now = registry.serving(store, KEY)
    assert now is not None and (now.model_id, now.model_uri, now.event) == (new_id, NEW, "deployed")
    assert now.url == f"http://{RAW_HOST}"  # the InferenceService's address
    (endpoint,) = [
        a for a in metadata.lineage(store, "wf-2")["artifacts"] if a["type"] == "Endpoint"
    ]
    assert endpoint["uri"] == f"http://{RAW_HOST}"


def test_a_model_that_never_loads_gives_way_to_the_previous_one(
    scene: Scene,
) -> None:
    """Finding 1: NEW never becomes available while OLD keeps everything Ready; the
    Deployment's progress deadline passes, the step puts OLD back, waits for it and fails."""
    api = scene.kube_api(
        _sequences(upstream.never_loads(), DEPLOYMENT_PATH),
        [_sequences(upstream.restored(), DEPLOYMENT_PATH)],
    )
    scene.network({RAW_HOST: scene.servers["old"]})
    store, new_id = scene.store(serving_old=True)
    with pytest.raises(
        FinalError,
        match=rf"exceeded its progress deadline.*the previous model {OLD} \(id \d+\) was "
        "applied again and serves",
    ):
        scene.run(store, new_id)
    ((path, body, content_type),) = api.patches
    assert path == ISVC_PATH and content_type == "application/merge-patch+json"
    (container,) = body["spec"]["predictor"]["containers"]
    assert container["env"] == [{"name": "STORAGE_URI", "value": OLD}]
    now = registry.serving(store, KEY)
    assert now is not None and (now.model_uri, now.event) == (OLD, "rolled back")
    # The restore saw NEW's stale deadline first, then the rollback complete.
    assert api.gets(DEPLOYMENT_PATH) == len(upstream.never_loads()) + len(upstream.restored())


def test_a_stale_gate_decision_is_not_deployed(scene: Scene) -> None:
    """Issue 29: the gate blessed NEW against an earlier model; OLD was deployed since (a
    retried workflow whose gate Argo kept). The step puts OLD back at once and fails."""
    api = scene.kube_api(
        _sequences(upstream.never_loads(), DEPLOYMENT_PATH),
        [_sequences(upstream.restored(), DEPLOYMENT_PATH)],
    )
    scene.network({RAW_HOST: scene.servers["old"]})
    store, new_id = scene.store(serving_old=True)
    earlier = metadata.record_artifact(
        store, run_name="wf-0", type_name="Model", uri="gs://b/wf-0/model", properties={}
    )
    blessing = {"decision": "deploy", "serving_model_id": earlier, "forced": False}
    metadata.record_execution(
        store,
        run_name="wf-2",
        type_name="Gate",
        properties={},
        inputs=[new_id, earlier],
        outputs=[(registry.BLESSING, NEW, blessing)],
    )
    with pytest.raises(FinalError, match=rf"compared the candidate with model id {earlier}, but"):
        scene.run(store, new_id)
    ((_, body, _),) = api.patches
    (container,) = body["spec"]["predictor"]["containers"]
    assert container["env"] == [{"name": "STORAGE_URI", "value": OLD}]
    now = registry.serving(store, KEY)
    assert now is not None and (now.model_uri, now.event) == (OLD, "rolled back")


def test_edits_that_reach_only_the_autoscaler_do_not_stall_the_wait(
    scene: Scene,
) -> None:
    """Finding 1: the InferenceService's generation (7) runs ahead of the Deployment's
    counter that KServe copies into its observedGeneration (4); the wait does not compare
    them, so it ends when the Deployment has rolled out."""
    frames = upstream.hpa_edits()
    assert frames[-1][0]["metadata"]["generation"] > frames[-1][0]["status"]["observedGeneration"]
    scene.kube_api(_sequences(frames, DEPLOYMENT_PATH))
    scene.network({RAW_HOST: scene.servers["new"]})
    store, new_id = scene.store(serving_old=True)
    assert scene.run(store, new_id, timeout_s=10) == {"endpoint": f"http://{RAW_HOST}"}


def test_the_old_model_answering_after_the_rollout_fails_the_step_and_restores(
    scene: Scene,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Item 2: the smoke test's answers must be the candidate's; OLD answering means NEW
    does not serve: OLD is put back and the step fails with both answers."""
    monkeypatch.setattr(deploy, "SETTLE_S", 0.5)
    api = scene.kube_api(
        _sequences(upstream.rolling_update()[-1:], DEPLOYMENT_PATH),
        [_sequences(upstream.restored()[-1:], DEPLOYMENT_PATH)],
    )
    scene.network({RAW_HOST: scene.servers["old"]})
    store, new_id = scene.store(serving_old=True)
    with pytest.raises(FinalError) as failed:
        scene.run(store, new_id)
    message = str(failed.value)
    assert "does not answer as the new model" in message
    # The same label from both models: only the scores tell that OLD answered.
    assert "it answered pos (neg 0.2689, pos 0.7311)" in message  # OLD: "funny"
    assert "the new model answers pos (neg 0.1192, pos 0.8808)" in message  # + "beautifully"
    assert f"the previous model {OLD}" in message and "applied again and serves" in message
    assert len(api.patches) == 1
    assert not [a for a in metadata.lineage(store, "wf-2")["artifacts"] if a["type"] == "Endpoint"]


def test_a_serverless_rollout_is_waited_for_until_the_new_revision_is_ready(
    scene: Scene,
) -> None:
    frames = upstream.serverless_rollout()
    api = scene.kube_api(_sequences(frames, KSVC_PATH))
    scene.network({SERVERLESS_HOST: scene.servers["new"]})
    store, new_id = scene.store(serving_old=False)
    assert scene.run(store, new_id) == {"endpoint": f"http://{SERVERLESS_HOST}"}
    assert api.gets(KSVC_PATH) == len(frames)
    assert api.gets(DEPLOYMENT_PATH) == 0


def test_a_canarys_smoke_test_goes_to_the_new_revisions_own_address(
    scene: Scene,
) -> None:
    """With a split, the main address mostly answers with OLD; the tag `latest` reaches
    NEW alone at its cluster-local name. The registry waits for the canary check."""
    isvc, ksvc = upstream.canary_split()
    scene.kube_api({ISVC_PATH: [isvc], KSVC_PATH: [ksvc]})
    proxy = scene.network(
        {SERVERLESS_HOST: scene.servers["old"], LATEST_HOST: scene.servers["new"]}
    )
    store, new_id = scene.store(serving_old=True)
    assert scene.run(store, new_id, canary_traffic_percent=10) == {
        "endpoint": f"http://{SERVERLESS_HOST}"
    }
    assert proxy.hosts == [LATEST_HOST]
    now = registry.serving(store, KEY)
    assert now is not None and now.model_uri == OLD


def test_a_failed_revision_fails_at_once_and_the_previous_model_is_put_back(
    scene: Scene,
) -> None:
    isvc, ksvc = upstream.revision_failed()
    back = copy.deepcopy(upstream.serverless_rollout()[-1])
    back[1]["spec"]["template"]["metadata"]["annotations"][rollout.SOURCE_URI] = OLD
    api = scene.kube_api(
        {ISVC_PATH: [isvc], KSVC_PATH: [ksvc]}, [{ISVC_PATH: [back[0]], KSVC_PATH: [back[1]]}]
    )
    scene.network({SERVERLESS_HOST: scene.servers["old"]})
    store, new_id = scene.store(serving_old=True)
    with pytest.raises(FinalError, match=r"RevisionFailed: .*no saved_model\.pb.*applied again"):
        scene.run(store, new_id)
    assert len(api.patches) == 1
    now = registry.serving(store, KEY)
    assert now is not None and (now.model_uri, now.event) == (OLD, "rolled back")


def test_a_first_deploy_with_a_canary_is_smoke_tested_at_its_own_address(
    scene: Scene,
) -> None:
    """KServe splits a first rollout with itself: the `latest` tag is NEW either way."""
    isvc, ksvc = upstream.first_canary()
    scene.kube_api({ISVC_PATH: [isvc], KSVC_PATH: [ksvc]})
    proxy = scene.network({LATEST_HOST: scene.servers["new"]})
    store, new_id = scene.store(serving_old=False)
    assert scene.run(store, new_id, canary_traffic_percent=10)["endpoint"] == (
        f"http://{SERVERLESS_HOST}"
    )
    assert proxy.hosts == [LATEST_HOST]
    assert registry.serving(store, KEY) is None  # the canary check records it


def test_a_predictor_under_kserves_older_name_is_found_first(
    scene: Scene,
) -> None:
    """`getPredictorName` keeps `<isvc>-predictor-default` where it exists; the object
    under the newer name (an unrelated leftover here) is not read."""
    frames = upstream.rolling_update()
    stale = upstream.deployment(OLD, 1, 1, 1, 1, 1)
    api = scene.kube_api(
        {
            ISVC_PATH: [i for i, _ in frames],
            upstream.OLD_NAME_PATHS[0]: [d for _, d in frames],
            DEPLOYMENT_PATH: [stale],
        }
    )
    scene.network({RAW_HOST: scene.servers["new"]})
    store, new_id = scene.store(serving_old=False)
    assert scene.run(store, new_id)["endpoint"] == f"http://{RAW_HOST}"
    assert api.gets(upstream.OLD_NAME_PATHS[0]) == len(frames)
    assert api.gets(DEPLOYMENT_PATH) == 0


def test_ask_reports_an_error_answer(toy_servers: dict[str, str]) -> None:
    with pytest.raises(RuntimeError, match=r"textcnn-v2:predict answered 404: .*does not exist"):
        deploy.ask(toy_servers["new"], "textcnn-v2", ["a film"], deadline=0)


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
