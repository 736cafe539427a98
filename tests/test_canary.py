"""The canary check (textcnn.cluster.canary): the cluster path over InferenceService
objects in KServe's shape, and the local stand-in serving two revisions for real.

fixtures/isvc/canary-*.json and rolled-back.json follow KServe 0.15's status in Serverless
mode with tag routing (`traffic` entries tagged `prev` and `latest`, each with its URL);
they are the recorded `ready.json` with the traffic of each stage written in, not
recordings of their own.
"""

from __future__ import annotations

import copy
import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import recorded, save_toy
from helpers import stand_in_context as context

from textcnn import metadata, registry
from textcnn.cluster import canary
from textcnn.errors import FinalError
from textcnn.evaluation import predict_labels
from textcnn.serving import LocalServer, build_app, load_model
from workflows.dag import inference_service as dag_isvc
from workflows.dag import templates
from workflows.dag.inference_service import build_inference_service, inference_service_yaml
from workflows.local.stand_ins import LocalKServe

pytestmark = [
    pytest.mark.filterwarnings("ignore::fastapi.exceptions.FastAPIDeprecationWarning"),
    pytest.mark.usefixtures("no_orphans"),
]

OLD_CUES = {"neg": ["bad", "awful"], "pos": ["good", "great"]}
NEW_CUES = {"neg": ["bad", "awful", "dull"], "pos": ["good", "great", "moving"]}
TEXTS = ["a good film", "an awful film", "a dull film", "a moving film", "good but dull"]
KEY = "default/textcnn"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("canary")
    for name, cues in (("old", OLD_CUES), ("new", NEW_CUES)):
        save_toy(root / name / "1", cues)
    with (root / "test.csv").open("w", newline="") as f:
        csv.writer(f).writerows([("text", "label"), *((t, "pos") for t in TEXTS)])
    return {"old": root / "old", "new": root / "new", "test": root / "test.csv"}


def test_the_dag_asks_for_tag_routing() -> None:
    assert dag_isvc.TAG_ROUTING == canary.TAG_ROUTING
    doc = build_inference_service(
        name="textcnn", namespace="ns", storage_uri="gs://b/m", service_account="sa"
    )
    assert doc["metadata"]["annotations"][canary.TAG_ROUTING] == "true"


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
    latest, previous = canary.revisions(recorded("isvc", fixture))
    assert latest is not None and latest.name == "textcnn-predictor-00003"
    assert latest.url == "http://latest-textcnn-predictor-textcnn.example.com"
    assert latest.percent == canary_percent
    assert (previous.percent if previous else None) == previous_percent


def test_without_tag_routing_there_is_no_canary_to_probe() -> None:
    assert canary.revisions(recorded("isvc", "ready")) == (None, None)


def test_judge() -> None:
    good = canary.Probes(["pos", "neg"], [3.0, 4.0], [])
    assert canary.judge(good, ["pos", "neg"], 50)[0]
    passed, reason = canary.judge(good, ["pos", "pos"], 50)
    assert not passed and "1 answers differ" in reason
    passed, reason = canary.judge(good, ["pos", "neg"], 3.5)
    assert not passed and "p99 latency 4.0 ms > 3.5 ms" in reason
    broken = canary.Probes([None, "neg"], [4.0], ["ConnectionError: refused"])
    passed, reason = canary.judge(broken, ["pos", "neg"], 50)
    assert not passed and "1 of 2 probes failed (first: ConnectionError" in reason


class ApiStandIn:
    """The Kubernetes API over a recorded object whose revision URLs are local servers:
    `get` returns it, `patch` records the body and moves to the next stage's object."""

    def __init__(self, urls: dict[str, str]) -> None:
        self.urls, self.patches = urls, []
        self.stage = "canary-in-progress"

    def get(self) -> dict[str, Any]:
        obj = copy.deepcopy(recorded("isvc", self.stage))
        for target in obj["status"]["components"]["predictor"]["traffic"]:
            target["url"] = self.urls[target["tag"]]
        return obj

    def patch(self, body: dict[str, Any]) -> None:
        self.patches.append(body)
        percent = body["spec"]["predictor"]["canaryTrafficPercent"]
        self.stage = {100: "canary-promoted", 0: "rolled-back"}[percent]


@pytest.fixture
def servers(models: dict[str, Path]) -> Iterator[dict[str, str]]:
    with (
        LocalServer(build_app(load_model(models["old"], "textcnn"))) as old,
        LocalServer(build_app(load_model(models["new"], "textcnn"))) as new,
    ):
        yield {"prev": old.url, "latest": new.url}


def _check(
    api: ApiStandIn, models: dict[str, Path], store: str, model: str, max_ms: float
) -> dict[str, str]:
    return canary.check(
        api.get,
        api.patch,
        lambda texts: predict_labels(str(models[model]), texts),
        namespace="default",
        name="textcnn",
        texts=TEXTS,
        max_latency_ms=max_ms,
        metadata_store=store,
        run_name="wf-2",
        model_id=2,
        model_uri=str(models["new"]),
        timeout_s=5,
    )


def _serving_old(store: str, models: dict[str, Path]) -> int:
    old_id = metadata.record_artifact(
        store, run_name="wf-1", type_name="Model", uri=str(models["old"]), properties={}
    )
    registry.record_serving(
        store, run_name="wf-1", key=KEY, model_id=old_id, model_uri=str(models["old"]), url="x"
    )
    return old_id


def test_a_canary_that_serves_the_candidate_is_promoted(
    models: dict[str, Path], servers: dict[str, str], tmp_path: Path
) -> None:
    store = f"sqlite:{tmp_path / 'md.sqlite'}"
    _serving_old(store, models)
    api = ApiStandIn(servers)
    out = _check(api, models, store, "new", 1000)
    assert out["verdict"] == "promoted" and "5 probes answered as the candidate" in out["reason"]
    assert api.patches == [{"spec": {"predictor": {"canaryTrafficPercent": 100}}}]
    now = registry.serving(store, KEY)
    assert now is not None and (now.model_uri, now.event) == (str(models["new"]), "deployed")


@pytest.mark.parametrize(
    ("candidate", "max_ms", "why"),
    [
        ("old", 1000, "answers differ from the candidate model's offline labels"),
        ("new", 0.001, "p99 latency"),
    ],
)
def test_a_canary_that_fails_its_probes_is_rolled_back(
    models: dict[str, Path],
    servers: dict[str, str],
    tmp_path: Path,
    candidate: str,
    max_ms: float,
    why: str,
) -> None:
    store = f"sqlite:{tmp_path / 'md.sqlite'}"
    old_id = _serving_old(store, models)
    api = ApiStandIn(servers)
    with pytest.raises(FinalError, match=f"canary textcnn-predictor-00003 rolled back: .*{why}"):
        _check(api, models, store, candidate, max_ms)
    assert api.patches == [{"spec": {"predictor": {"canaryTrafficPercent": 0}}}]
    now = registry.serving(store, KEY)
    assert now is not None and (now.model_id, now.event) == (old_id, "rolled back")
    assert now.url == servers["prev"]


def _manifest(uri: Path, percent: int) -> str:
    doc = build_inference_service(
        name="textcnn",
        namespace="default",
        storage_uri=str(uri),
        service_account=templates.SERVING_ACCOUNT,
        deployment_mode="Serverless",
        canary_traffic_percent=percent,
    )
    return inference_service_yaml(doc)


def _answer(kserve: LocalKServe, text: str) -> str:
    import requests

    url = kserve.object("textcnn")["status"]["url"]
    body = requests.post(f"{url}/v1/models/textcnn:predict", json={"instances": [text]}, timeout=10)
    return str(body.json()["predictions"][0]["label"])


def _ready(kserve: LocalKServe) -> None:
    import time

    deadline = time.monotonic() + 60
    while kserve.object("textcnn")["status"]["conditions"][0]["status"] != "True":
        assert time.monotonic() < deadline, "the local revisions did not come up"
        time.sleep(0.2)


def test_the_local_stand_in_serves_two_revisions_promotes_and_rolls_back(
    models: dict[str, Path], tmp_path: Path
) -> None:
    store = f"sqlite:{tmp_path / 'md.sqlite'}"
    kserve = LocalKServe(state_dir=tmp_path / "state")
    try:
        kserve.apply(context(tmp_path, _manifest(models["old"], 10)))  # nothing before: 100%
        _ready(kserve)
        first = kserve.object("textcnn")["status"]["components"]["predictor"]
        assert [(t["tag"], t["percent"]) for t in first["traffic"]] == [("latest", 100)]
        old_id = _serving_old(store, models)

        kserve.apply(context(tmp_path, _manifest(models["new"], 10)))
        _ready(kserve)
        traffic = kserve.object("textcnn")["status"]["components"]["predictor"]["traffic"]
        assert [(t["tag"], t["percent"]) for t in traffic] == [("prev", 90), ("latest", 10)]
        assert len({t["url"] for t in traffic}) == 2  # two loopback ports
        assert len(kserve.servers) == 2

        def check(candidate: str, max_ms: float) -> dict[str, str]:
            return canary.check(
                lambda: kserve.object("textcnn"),
                lambda body: kserve.patch("textcnn", body),
                lambda texts: predict_labels(str(models[candidate]), texts),
                namespace="default",
                name="textcnn",
                texts=TEXTS,
                max_latency_ms=max_ms,
                metadata_store=store,
                run_name="wf-2",
                model_id=old_id + 1,
                model_uri=str(models[candidate]),
                timeout_s=10,
            )

        assert check("new", 1000)["verdict"] == "promoted"
        assert len(kserve.servers) == 1 and _answer(kserve, "a moving film") == "pos"

        # A third revision, the old model again, whose probes are too slow: rolled back,
        # and the promoted model still answers.
        kserve.apply(context(tmp_path, _manifest(models["old"], 10)))
        _ready(kserve)
        with pytest.raises(FinalError, match="rolled back: .*p99 latency"):
            check("old", 0.001)
        traffic = kserve.object("textcnn")["status"]["components"]["predictor"]["traffic"]
        assert [(t["tag"], t["percent"]) for t in traffic] == [("prev", 100)]
        assert _answer(kserve, "a moving film") == "pos"  # NEW_CUES: still the new model
        now = registry.serving(store, KEY)
        assert now is not None and (now.model_uri, now.event) == (str(models["new"]), "rolled back")
    finally:
        kserve.stop()
    assert kserve.servers == []

    # The next run's stand-in finds the endpoint as it was left: the promoted revision.
    again = LocalKServe(state_dir=tmp_path / "state")
    try:
        again.apply(context(tmp_path, _manifest(models["old"], 10)))
        _ready(again)
        traffic = again.object("textcnn")["status"]["components"]["predictor"]["traffic"]
        assert [(t["tag"], t["percent"]) for t in traffic] == [("prev", 90), ("latest", 10)]
        assert traffic[0]["revisionName"] == "textcnn-predictor-00002"
    finally:
        again.stop()
