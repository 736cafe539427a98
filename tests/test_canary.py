"""The canary check (textcnn.cluster.canary): the step through the kubernetes client over
object sequences written as KServe and Knative write them (tests/upstream.py), its probes
reaching cluster-local names through `ClusterNetwork`. The local cluster's controller
serving the revisions for real is tests/test_inference_services.py's.

fixtures/isvc/canary-*.json and rolled-back.json are the recorded `ready.json` with the
traffic of each stage written in, as KServe 0.15 reports it in Serverless mode with tag
routing (`traffic` entries tagged `prev` and `latest`).
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import pytest
import upstream
from helpers import ClusterNetwork, FakeApiServer, recorded
from upstream import ISVC_PATH, KSVC_PATH, NEW, OLD

from textcnn import data, metadata, registry
from textcnn.cluster import answers, canary, rollout
from textcnn.errors import FinalError
from textcnn.steps import canary_check
from workflows.dag.inference_service import build_inference_service

pytestmark = [
    pytest.mark.filterwarnings("ignore::fastapi.exceptions.FastAPIDeprecationWarning"),
    pytest.mark.usefixtures("no_orphans"),
]

TEXTS = ["a good film", "an awful film", "a dull film", "a moving film", "good but dull"]
KEY = "textcnn/textcnn"
MAIN = f"http://{upstream.NAME}.{upstream.NAMESPACE}.svc.cluster.local"
LATEST_HOST = f"latest-{upstream.PREDICTOR}.{upstream.NAMESPACE}.svc.cluster.local"
PREV_HOST = f"prev-{upstream.PREDICTOR}.{upstream.NAMESPACE}.svc.cluster.local"


@pytest.fixture(scope="module")
def models(
    toy_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """OLD, NEW and a test CSV of TEXTS (the probe texts)."""
    test = tmp_path_factory.mktemp("canary") / "test.csv"
    with test.open("w", newline="") as f:
        csv.writer(f).writerows([("text", "label"), *((t, "pos") for t in TEXTS)])
    return {**toy_models, "test": test}


def test_the_dag_asks_for_tag_routing() -> None:
    doc = build_inference_service(
        name="textcnn", namespace="ns", storage_uri="gs://b/m", service_account="sa"
    )
    assert doc["metadata"]["annotations"][rollout.TAG_ROUTING] == "true"


@pytest.mark.parametrize(
    ("fixture", "canary_percent", "previous_percent"),
    [
        ("canary-in-progress", 10, 90),
        ("canary-failed", 0, 100),
        ("canary-promoted", 100, None),
        ("rolled-back", 0, 100),
    ],
)
def test_revisions_are_read_from_the_tagged_traffic(
    fixture: str, canary_percent: int, previous_percent: int | None
) -> None:
    # The InferenceService's copy of the Knative Service's traffic.
    traffic = recorded("isvc", fixture)["status"]["components"]["predictor"]["traffic"]
    latest, previous = canary.revisions(traffic)
    assert latest == canary.Revision("textcnn-predictor-00003", canary_percent)
    assert (previous.percent if previous else None) == previous_percent


def test_without_tag_routing_there_is_no_canary_to_probe() -> None:
    traffic = recorded("isvc", "ready")["status"]["components"]["predictor"]["traffic"]
    assert canary.revisions(traffic) == (None, None)


def test_judge() -> None:
    pos, neg = (
        answers.Answer("pos", {"neg": 0.2, "pos": 0.8}),
        answers.Answer("neg", {"neg": 0.8, "pos": 0.2}),
    )
    good = canary.Probes([pos, neg], [3.0, 4.0], [])
    assert canary.judge(good, [pos, neg], 50)[0]
    passed, reason = canary.judge(good, [pos, pos], 50)
    assert not passed and "1 answers differ" in reason
    passed, reason = canary.judge(good, [pos, neg], 3.5)
    assert not passed and "p99 latency 4.0 ms > 3.5 ms" in reason
    broken = canary.Probes([None, neg], [4.0], ["ConnectionError: refused"])
    passed, reason = canary.judge(broken, [pos, neg], 50)
    assert not passed and "1 of 2 probes failed (first: ConnectionError" in reason


# --- the step through the kubernetes client -------------------------------------------


def _serving_old(store: str) -> int:
    old_id = metadata.record_artifact(
        store, run_name="wf-1", type_name="Model", uri=OLD, properties={}
    )
    registry.record_serving(
        store, run_name="wf-1", key=KEY, model_id=old_id, model_uri=OLD, url=MAIN
    )
    return old_id


def _run(
    models: dict[str, Path], store: str, max_ms: float, candidate: str = "new"
) -> dict[str, str]:
    return canary_check.run(
        name=upstream.NAME,
        namespace=upstream.NAMESPACE,
        metadata_store=store,
        run_name="wf-2",
        model_id=2,
        model_uri=NEW,
        model_dir=str(models[candidate]),
        test_path=str(models["test"]),
        text_column="text",
        label_column="label",
        canary_probes=len(TEXTS),
        canary_max_latency_ms=max_ms,
        timeout_s=5,
    )


def _objects(*stages: tuple[dict, dict]) -> list[dict[str, list[dict]]]:
    return [{ISVC_PATH: [isvc], KSVC_PATH: [ksvc]} for isvc, ksvc in stages]


def test_a_canary_is_probed_at_its_cluster_local_addresses_and_promoted(
    models: dict[str, Path],
    toy_servers: dict[str, str],
    network: Callable[[dict[str, str]], ClusterNetwork],
    kube_api: Callable[..., FakeApiServer],
    tmp_path: Path,
) -> None:
    """Finding 2: the traffic's tag URLs are on the external domain (example.com), which a
    pod cannot resolve here; the probes go to the tags' cluster-local Services."""
    first, *after = _objects(upstream.canary_split(), upstream.promoted())
    api = kube_api(first, after)
    proxy = network({LATEST_HOST: toy_servers["new"], PREV_HOST: toy_servers["old"]})
    store = f"sqlite:{tmp_path / 'md.sqlite'}"
    _serving_old(store)
    out = _run(models, store, 60_000)
    assert out["verdict"] == "promoted" and "5 probes answered as the candidate" in out["reason"]
    assert set(proxy.hosts) == {LATEST_HOST, PREV_HOST}
    assert [(p, b) for p, b, _ in api.patches] == [
        (ISVC_PATH, {"spec": {"predictor": {"canaryTrafficPercent": 100}}})
    ]
    now = registry.serving(store, KEY)
    assert now is not None and (now.model_uri, now.event, now.url) == (NEW, "deployed", MAIN)


@pytest.mark.parametrize(
    ("candidate", "max_ms", "why"),
    [
        ("old", 60_000, "answers differ from the candidate model's offline answers"),
        ("new", 0.001, "p99 latency"),
    ],
)
def test_a_canary_that_fails_its_probes_is_rolled_back(
    models: dict[str, Path],
    toy_servers: dict[str, str],
    network: Callable[[dict[str, str]], ClusterNetwork],
    kube_api: Callable[..., FakeApiServer],
    tmp_path: Path,
    candidate: str,
    max_ms: float,
    why: str,
) -> None:
    first, *after = _objects(upstream.canary_split(), upstream.rolled_back())
    api = kube_api(first, after)
    network({LATEST_HOST: toy_servers["new"], PREV_HOST: toy_servers["old"]})
    store = f"sqlite:{tmp_path / 'md.sqlite'}"
    old_id = _serving_old(store)
    with pytest.raises(FinalError, match=f"canary textcnn-predictor-00002 rolled back: .*{why}"):
        _run(models, store, max_ms, candidate)
    assert [b for _, b, _ in api.patches] == [{"spec": {"predictor": {"canaryTrafficPercent": 0}}}]
    now = registry.serving(store, KEY)
    assert now is not None and (now.model_id, now.event, now.url) == (old_id, "rolled back", MAIN)


def test_a_first_deploy_has_no_canary_and_takes_all_the_traffic(
    models: dict[str, Path],
    network: Callable[[dict[str, str]], ClusterNetwork],
    kube_api: Callable[..., FakeApiServer],
    tmp_path: Path,
) -> None:
    """Finding 3: KServe splits a first rollout with itself (`prev` is `latest`); rolling
    that back would leave it at 100% and call it a rollback. Nothing else serves, so the
    new model takes all the traffic, unprobed (deploy-wait has checked its answers), even
    with a latency bound no probe could meet."""
    first, *after = _objects(upstream.first_canary(), upstream.first_promoted())
    latest, previous = canary.revisions(first[KSVC_PATH][0]["status"]["traffic"])
    assert latest is not None and previous is not None and latest.name == previous.name
    api = kube_api(first, after)
    proxy = network({})
    store = f"sqlite:{tmp_path / 'md.sqlite'}"
    out = _run(models, store, 0.001)
    assert out["verdict"] == "promoted"
    assert out["reason"] == (
        f"no canary: nothing else serves {KEY}, so revision textcnn-predictor-00001 takes "
        "all the traffic"
    )
    assert proxy.hosts == []
    assert [b for _, b, _ in api.patches] == [
        {"spec": {"predictor": {"canaryTrafficPercent": 100}}}
    ]
    now = registry.serving(store, KEY)
    assert now is not None and (now.model_uri, now.url) == (NEW, MAIN)


def test_probe_texts_are_the_first_of_the_test_set(
    make_csv: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = make_csv(rows=30)
    with path.open(newline="") as f:
        texts = [row["text"] for row in csv.DictReader(f)]
    monkeypatch.setattr(data, "CHUNK_ROWS", 7)  # the probes span chunks
    assert canary.probe_texts(str(path), "text", "label", 10) == texts[:10]
    assert canary.probe_texts(str(path), "text", "label", 100) == texts
