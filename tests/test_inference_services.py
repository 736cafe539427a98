"""The InferenceService controller (workflows.kube.controllers.inference_services): KServe
with the Deployment controller or Knative under it, over the store, serving the toy
models with the project's server (workflows.hooks.serving).

The deploy steps' own code judges what it writes, as it would on a cluster: deploy-wait's
`finish` and the canary check, reading and patching the objects in the store and
reaching the models through an HTTP proxy that routes the cluster's host names as
`routes()` says (the gateway the steps will use; here tests/helpers.py ClusterNetwork).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from helpers import NEW_CUES, OLD_CUES, ClusterNetwork, save_toy

from textcnn import metadata, registry
from textcnn import serving as textcnn_serving
from textcnn.cluster import answers, canary, inference_service, kube, rollout
from textcnn.errors import FinalError
from workflows.dag import templates
from workflows.dag.inference_service import build_inference_service
from workflows.hooks import serving
from workflows.kube.controllers import InferenceServices, Manager, wait_for
from workflows.kube.controllers.kinds import DEPLOYMENT, INFERENCE_SERVICE, KNATIVE_SERVICE
from workflows.kube.objects import NotFound, Objects

pytestmark = [
    pytest.mark.usefixtures("no_orphans"),
    pytest.mark.filterwarnings("ignore::fastapi.exceptions.FastAPIDeprecationWarning"),
]

NS, NAME = "default", "textcnn"
ADDRESS = f"http://{NAME}-predictor.{NS}.svc.cluster.local"  # RawDeployment's


class Cluster:
    """A store, the controller running over it, and the steps' view of the service."""

    def __init__(
        self, tmp_path: Path, network: Callable[[Any], ClusterNetwork], deadline_s: int
    ) -> None:
        self.objects = Objects()
        self.served: list[tuple[str, dict[str, int]]] = []  # (model URI, batcher) per pod

        def serve(uri: str, name: str, port: int, batcher: Any, workdir: Path) -> Any:
            self.served.append((uri, dict(batcher)))
            return serving.serve(uri, name, port, batcher, workdir)

        self.isvcs = InferenceServices(
            self.objects,
            serve,
            logs_dir=tmp_path / "logs",
            work_dir=tmp_path / "pods",
            state_dir=tmp_path / "state",
            progress_deadline_s=deadline_s,
        )
        self.errors: list[str] = []  # what the manager logged
        self.manager = Manager(self.objects, [self.isvcs], self.errors.append).start()
        self.proxy = network(self.isvcs.routes)  # read at each request

    def apply(self, uri: Path | str, **options: Any) -> int:
        """Create the InferenceService, or patch its spec (as `kubectl apply` would);
        returns its generation."""
        doc = build_inference_service(
            name=NAME,
            namespace=NS,
            storage_uri=str(uri),
            service_account=templates.SERVING_ACCOUNT,
            **options,
        )
        try:
            self.objects.get(INFERENCE_SERVICE, NS, NAME)
        except NotFound:
            return int(self.objects.create(INFERENCE_SERVICE, NS, doc)["metadata"]["generation"])
        patched = self.objects.patch(INFERENCE_SERVICE, NS, NAME, {"spec": doc["spec"]})
        return int(patched["metadata"]["generation"])

    def endpoint(self) -> kube.Endpoint:
        """What kube.endpoint gives the steps, over the store."""

        def predictor(mode: str) -> dict[str, Any]:
            kind = DEPLOYMENT if mode == rollout.RAW else KNATIVE_SERVICE
            try:
                return self.objects.get(kind, NS, f"{NAME}-predictor")
            except NotFound:
                return {}

        return kube.Endpoint(
            get=lambda: self.objects.get(INFERENCE_SERVICE, NS, NAME),
            patch=lambda body: self.objects.patch(INFERENCE_SERVICE, NS, NAME, body),
            predictor=predictor,
        )

    def wait(self, predicate: Callable[[Objects], Any], what: str, timeout_s: float = 60) -> Any:
        return wait_for(self.objects, predicate, timeout_s, what)

    def close(self) -> None:
        self.manager.stop()


@pytest.fixture
def cluster(
    tmp_path: Path, network: Callable[[Any], ClusterNetwork]
) -> Iterator[Callable[..., Cluster]]:
    """Starts a Cluster; `deadline_s`: its Deployments' progressDeadlineSeconds, short
    enough for a test to see a model that never loads fail, long enough for a toy model's
    server to come up (seconds)."""
    started: list[Cluster] = []

    def start(deadline_s: int = 20) -> Cluster:
        started.append(Cluster(tmp_path, network, deadline_s))
        return started[-1]

    yield start
    for c in started:
        c.close()
    assert [e for c in started for e in c.errors] == []


def _deployment(objects: Objects) -> dict[str, Any]:
    try:
        return objects.get(DEPLOYMENT, NS, f"{NAME}-predictor")
    except NotFound:
        return {}


def _condition(doc: dict[str, Any], kind: str) -> dict[str, Any]:
    conditions = (doc.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == kind), {})


def _answer(url: str, text: str) -> str:
    """The label the model at `url` (a cluster address, through the gateway) gives."""
    body = requests.post(f"{url}/v1/models/{NAME}:predict", json={"instances": [text]}, timeout=30)
    body.raise_for_status()
    return str(body.json()["predictions"][0]["label"])


def _model(tmp_path: Path, store: str, folder: str, cues: dict | None = None) -> tuple[str, int]:
    """A model folder (a toy SavedModel, or an empty folder that cannot load) and its id."""
    path = tmp_path / folder
    if cues is None:
        path.mkdir()
    else:
        save_toy(path / "1", cues)
    model_id = metadata.record_artifact(
        store, run_name="wf-1", type_name="Model", uri=str(path), properties={}
    )
    return str(path), model_id


def _finish(c: Cluster, store: str, model: tuple[str, int], candidate: str) -> dict[str, str]:
    """deploy-wait over the store: the real step code."""
    return inference_service.finish(
        c.endpoint(),
        lambda texts: answers.offline(candidate, texts),
        name=NAME,
        namespace=NS,
        model_name=NAME,
        metadata_store=store,
        run_name="wf-1",
        model_id=model[1],
        model_uri=model[0],
        timeout_s=60,
        poll_s=0.2,
    )


@pytest.mark.parametrize(
    ("folder", "deadline_s", "why"),
    [("missing", 2, "FileNotFoundError"), ("empty", 15, r"\(log: \S+-server\.log\)")],
    ids=["not-fetched", "not-loaded"],
)
def test_a_model_that_never_serves_fails_the_wait_with_kserves_reason(
    cluster: Callable[..., Cluster], tmp_path: Path, folder: str, deadline_s: int, why: str
) -> None:
    """The storage initializer fails (no server starts), or the server exits (well within
    the deadline): the Deployment times out, and KServe's model status says why (the
    server log's tail)."""
    store = f"sqlite:{tmp_path / 'mlmd.sqlite'}"
    candidate = _model(tmp_path, store, "candidate", OLD_CUES)
    model = str(tmp_path / folder)
    if folder == "empty":
        Path(model).mkdir()
    model_id = metadata.record_artifact(
        store, run_name="wf-1", type_name="Model", uri=model, properties={}
    )
    c = cluster(deadline_s=deadline_s)
    c.apply(model)
    with pytest.raises(FinalError, match=f"progress deadline.*ModelLoadFailed.*{why}"):
        _finish(c, store, (model, model_id), candidate[0])
    isvc = c.objects.get(INFERENCE_SERVICE, NS, NAME)
    assert isvc["status"]["modelStatus"]["states"]["targetModelState"] == "FailedToLoad"
    assert _condition(isvc, "Ready")["status"] == "False"
    assert _condition(isvc, "Ready")["reason"] == "MinimumReplicasUnavailable"
    assert isvc["status"]["address"] == {"url": ADDRESS}  # KServe's ingress writes it anyway
    assert c.isvcs.servers == [] and c.isvcs.routes() == {}
    assert not [a for a in metadata.lineage(store, "wf-1")["artifacts"] if a["type"] == "Endpoint"]


def test_a_deleted_inference_service_takes_its_deployment_and_kept_state_along(
    cluster: Callable[..., Cluster], tmp_path: Path
) -> None:
    """Its Deployment is owned by it (garbage-collected with it); nothing of it is kept
    for the next run."""
    kept = tmp_path / "state" / f"{NAME}.json"
    kept.parent.mkdir()
    kept.write_text('{"doc": {}}')  # the stand-in's format: not put back, no failure
    c = cluster(deadline_s=1)
    assert c.objects.list_of(INFERENCE_SERVICE) == []
    c.apply(tmp_path / "missing")  # nothing to serve: no server needed
    c.wait(_deployment, "the Deployment")
    c.objects.delete(INFERENCE_SERVICE, NS, NAME)
    c.wait(lambda o: not _deployment(o), "the Deployment deleted")
    assert not kept.exists()


def test_a_rolling_update_keeps_the_old_pod_until_the_new_one_serves(
    cluster: Callable[..., Cluster], tmp_path: Path
) -> None:
    """RawDeployment, through deploy-wait's own code: a first model, a second rolled out
    beside it, a third that never loads (the second keeps serving, deploy-wait puts it
    back), and the endpoint found again by the next run's controller."""
    store = f"sqlite:{tmp_path / 'mlmd.sqlite'}"
    first = _model(tmp_path, store, "first", OLD_CUES)
    second = _model(tmp_path, store, "second", NEW_CUES)
    broken = _model(tmp_path, store, "broken")
    c = cluster()
    assert c.apply(first[0]) == 1
    assert _finish(c, store, first, first[0]) == {"endpoint": ADDRESS}
    assert c.served == [(first[0], {"maxBatchSize": 32, "maxLatency": 1})]
    (old,) = c.isvcs.servers  # KServe's batcher limits reach the server's own batching
    command = [str(a) for a in old.proc.args]  # type: ignore[union-attr]
    assert command[1:3] == ["-m", "textcnn.serving"]
    args = textcnn_serving.build_parser().parse_args(command[3:])
    assert (args.max_batch_size, args.max_latency_ms) == (32, 1.0)

    c.apply(second[0])
    during = c.wait(
        lambda o: _deployment(o)["status"].get("replicas") == 2 and _deployment(o),
        "the new pod beside the old one",
    )
    assert rollout.deployment_state(during, second[0])[0] == "waiting"
    assert _answer(ADDRESS, "a moving film") == "neg"  # the old model knows no "moving"
    assert _finish(c, store, second, second[0]) == {"endpoint": ADDRESS}
    (new,) = c.isvcs.servers
    assert old.proc.poll() is not None and _answer(ADDRESS, "a moving film") == "pos"  # type: ignore[union-attr]

    c.apply(broken[0])
    with pytest.raises(FinalError, match=f"progress deadline.*the previous model {second[0]} "):
        _finish(c, store, broken, second[0])
    isvc = c.objects.get(INFERENCE_SERVICE, NS, NAME)
    assert isvc["metadata"]["generation"] == 4  # first, second, broken, second again
    assert c.isvcs.servers == [new]  # the old ReplicaSet's pod, never stopped
    # KServe's misleading copy: ready and Loaded all along, from the old pod.
    assert isvc["status"]["modelStatus"]["states"]["targetModelState"] == "Loaded"
    now = registry.serving(store, f"{NS}/{NAME}")
    assert now is not None and (now.model_id, now.event) == (second[1], "rolled back")
    c.close()
    assert c.isvcs.servers == []

    # The next run: a fresh store finds the InferenceService as it was left.
    again = cluster()
    isvc = again.objects.get(INFERENCE_SERVICE, NS, NAME)
    assert isvc["metadata"]["generation"] == 4
    assert rollout.spec_uri(isvc) == second[0]
    again.wait(lambda o: again.isvcs.routes(), "the kept pod serving again")
    assert _answer(ADDRESS, "a moving film") == "pos"
    assert again.served[-1][0] == second[0] and len(again.isvcs.servers) == 1


def _traffic(c: Cluster, want: list[tuple[str, int, int]]) -> None:
    """Wait until the Knative Service is Ready with traffic `want` (tag, percent, revision
    number)."""

    def seen(o: Objects) -> list[tuple[str, int, int]] | None:
        try:
            ksvc = o.get(KNATIVE_SERVICE, NS, f"{NAME}-predictor")
        except NotFound:
            return None
        if _condition(ksvc, "Ready").get("status") != "True":
            return None
        return [
            (t["tag"], t["percent"], int(t["revisionName"][-5:])) for t in ksvc["status"]["traffic"]
        ]

    c.wait(lambda o: seen(o) == want, f"traffic {want}")


def test_a_canary_is_split_promoted_and_rolled_back_as_kserve_does(
    cluster: Callable[..., Cluster], toy_models: dict[str, Path], tmp_path: Path
) -> None:
    """Serverless with tag routing, through the canary check's own code: its probes reach
    each revision at its tag's cluster-local name."""
    store = f"sqlite:{tmp_path / 'md.sqlite'}"
    texts = ["a good film", "an awful film", "a dull film", "a moving film", "good but dull"]

    def check(c: Cluster, candidate: str, max_ms: float) -> dict[str, str]:
        return canary.check(
            c.endpoint(),
            lambda t: answers.offline(str(toy_models[candidate]), t),
            namespace=NS,
            name=NAME,
            texts=texts,
            max_latency_ms=max_ms,
            metadata_store=store,
            run_name="wf-2",
            model_id=1,
            model_uri=str(toy_models[candidate]),
            timeout_s=30,
        )

    def apply(c: Cluster, candidate: str) -> None:
        c.apply(toy_models[candidate], deployment_mode="Serverless", canary_traffic_percent=10)

    c = cluster()
    # A first deploy with a canary: once rolled out, KServe splits it with itself, and
    # the check sees that nothing else serves.
    apply(c, "old")
    _traffic(c, [("latest", 10, 1), ("prev", 90, 1)])
    assert check(c, "old", 0.001)["reason"].startswith("no canary: nothing else serves")
    _traffic(c, [("latest", 100, 1)])

    apply(c, "new")
    _traffic(c, [("latest", 10, 2), ("prev", 90, 1)])
    urls = {int(p.name[-5:]): p.url for p in c.isvcs.servers}
    assert sorted(urls) == [1, 2]
    # The gateway's routes: the main names to the revision with most of the traffic, each
    # tag's names (cluster-local and external) to its own revision.
    assert c.isvcs.routes() == {
        f"{NAME}.{NS}.svc.cluster.local": urls[1],
        f"{NAME}-{NS}.example.com": urls[1],
        f"{NAME}-predictor.{NS}.svc.cluster.local": urls[1],
        f"{NAME}-predictor-{NS}.example.com": urls[1],
        f"latest-{NAME}-predictor.{NS}.svc.cluster.local": urls[2],
        f"latest-{NAME}-predictor-{NS}.example.com": urls[2],
        f"prev-{NAME}-predictor.{NS}.svc.cluster.local": urls[1],
        f"prev-{NAME}-predictor-{NS}.example.com": urls[1],
    }
    assert check(c, "new", 60_000)["verdict"] == "promoted"
    _traffic(c, [("latest", 100, 2)])
    predictor = f"{NAME}-predictor.{NS}.svc.cluster.local"
    assert {f"latest-{predictor}", f"prev-{predictor}"} <= set(c.proxy.hosts)
    c.wait(lambda o: len(c.isvcs.servers) == 1, "revision 1 scaled to zero")
    isvc = c.objects.get(INFERENCE_SERVICE, NS, NAME)
    assert isvc["status"]["address"]["url"] == f"http://{NAME}.{NS}.svc.cluster.local"
    assert isvc["status"]["url"] == f"http://{NAME}-{NS}.example.com"
    c.close()

    # The next run finds the promoted revision; a third, too slow, is rolled back.
    again = cluster()
    apply(again, "old")
    _traffic(again, [("latest", 10, 3), ("prev", 90, 2)])
    with pytest.raises(FinalError, match="rolled back: .*p99 latency"):
        check(again, "old", 0.001)
    _traffic(again, [("latest", 0, 3), ("prev", 100, 2)])
    assert _answer(f"http://{NAME}.{NS}.svc.cluster.local", "a moving film") == "pos"


def test_the_controllers_write_the_names_the_steps_read() -> None:
    """The controllers name KServe's and Knative's annotations, tags and reasons without
    importing the pod package; the steps' copies (textcnn.cluster.rollout) must agree."""
    from workflows.kube.controllers import knative, kserve, pods

    assert (pods.SOURCE_URI, pods.STORAGE_URI) == (rollout.SOURCE_URI, rollout.STORAGE_URI)
    assert (kserve.RAW, kserve.SERVERLESS) == (rollout.RAW, rollout.SERVERLESS)
    assert (kserve.DEPLOYMENT_MODE, kserve.TAG_ROUTING) == (
        rollout.DEPLOYMENT_MODE,
        rollout.TAG_ROUTING,
    )
    assert (kserve.CANARY_TAG, kserve.PREVIOUS_TAG) == (rollout.CANARY_TAG, rollout.PREVIOUS_TAG)
    assert knative.REVISION_FAILED == rollout.REVISION_FAILED
