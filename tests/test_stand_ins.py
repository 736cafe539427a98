"""The local KServe stand-in: admission checks, the batcher, and a model that fails to load."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from helpers import save_toy
from helpers import stand_in_context as context

from textcnn import metadata, registry, serving
from textcnn.errors import FinalError
from workflows.dag import templates
from workflows.dag.inference_service import build_inference_service, inference_service_yaml
from workflows.errors import WorkflowError
from workflows.local.stand_ins import LocalKServe


def manifest(storage_uri: str, **overrides: object) -> str:
    doc = build_inference_service(
        name="textcnn",
        namespace="default",
        storage_uri=storage_uri,
        service_account=templates.SERVING_ACCOUNT,
    )
    doc["spec"]["predictor"].update(overrides)
    return inference_service_yaml(doc)


def test_an_invalid_service_is_rejected_and_nothing_is_served(tmp_path: Path) -> None:
    kserve = LocalKServe()
    with pytest.raises(WorkflowError, match="canaryTrafficPercent"):
        kserve.apply(context(tmp_path, manifest(str(tmp_path), canaryTrafficPercent=150)))
    assert kserve.servers == []


@pytest.mark.usefixtures("no_orphans")
def test_the_services_batcher_limits_reach_its_model_server(tmp_path: Path) -> None:
    """KServe's batcher sidecar is played by the server's own batching, with its limits."""
    model = save_toy(tmp_path / "model" / "1").parent
    kserve = LocalKServe()
    try:
        kserve.apply(
            context(tmp_path, manifest(str(model), batcher={"maxBatchSize": 3, "maxLatency": 7}))
        )
        (server,) = kserve.servers
        command = [str(a) for a in server.proc.args]  # type: ignore[union-attr]
        assert command[1:3] == ["-m", "textcnn.serving"]
        args = serving.build_parser().parse_args(command[3:])
        assert (args.max_batch_size, args.max_latency_ms) == (3, 7.0)
    finally:
        kserve.stop()
    assert kserve.servers == []


def _wait_args(store: str, model: Path, model_id: int, candidate: Path) -> list[str]:
    """deploy-wait's arguments: the model at MODEL is served, CANDIDATE answers offline."""
    return [
        "--name=textcnn",
        "--namespace=default",
        "--model_name=textcnn",
        f"--metadata_store={store}",
        "--run_name=wf-1",
        f"--model_id={model_id}",
        f"--model_uri={model}",
        f"--model_dir={candidate}",
        "--timeout_s=120",
    ]


def test_a_model_that_fails_to_load_fails_the_wait_with_the_server_log(tmp_path: Path) -> None:
    """Its server exits, so its Deployment cannot progress; the newest pod's log shows why."""
    candidate = save_toy(tmp_path / "candidate" / "1").parent
    empty = tmp_path / "no-model"
    empty.mkdir()
    store = f"sqlite:{tmp_path / 'mlmd.sqlite'}"
    model_id = metadata.record_artifact(
        store, run_name="wf-1", type_name="Model", uri=str(empty), properties={}
    )
    kserve = LocalKServe()
    try:
        kserve.apply(context(tmp_path, manifest(str(empty))))
        with pytest.raises(FinalError, match="progress deadline.*ModelLoadFailed.*log: "):
            kserve.wait(context(tmp_path, None, _wait_args(store, empty, model_id, candidate)))
    finally:
        kserve.stop()
    assert kserve.servers == []
    assert not [a for a in metadata.lineage(store, "wf-1")["artifacts"] if a["type"] == "Endpoint"]


@pytest.mark.usefixtures("no_orphans")
def test_a_new_model_that_never_serves_gives_way_to_the_previous_one(tmp_path: Path) -> None:
    """RawDeployment: the old pod serves while the new one fails; deploy-wait applies the
    previous model again, whose pod still runs, so the endpoint never stops serving it."""
    good = save_toy(tmp_path / "good" / "1").parent
    broken = tmp_path / "broken"
    broken.mkdir()
    store = f"sqlite:{tmp_path / 'mlmd.sqlite'}"
    ids = {
        m: metadata.record_artifact(
            store, run_name="wf-1", type_name="Model", uri=str(m), properties={}
        )
        for m in (good, broken)
    }
    kserve = LocalKServe()
    try:
        kserve.apply(context(tmp_path, manifest(str(good))))
        kserve.wait(context(tmp_path, None, _wait_args(store, good, ids[good], good)))
        (first,) = kserve.servers
        kserve.apply(context(tmp_path, manifest(str(broken))))
        with pytest.raises(
            FinalError, match=f"progress deadline.*the previous model {good} .*applied again"
        ):
            kserve.wait(context(tmp_path, None, _wait_args(store, broken, ids[broken], good)))
        served = kserve.object("textcnn")
        assert served["metadata"]["generation"] == 3  # good, broken, good again
        assert served["spec"]["predictor"]["model"]["storageUri"] == str(good)
        assert kserve.servers == [first]  # the old ReplicaSet's pod, never stopped
        answer = requests.post(
            f"{served['status']['url']}/v1/models/textcnn:predict",
            json={"instances": ["a great film"]},
            timeout=10,
        )
        assert answer.json()["predictions"][0]["label"] == "pos"
        now = registry.serving(store, "default/textcnn")
        assert now is not None and (now.model_id, now.event) == (ids[good], "rolled back")
    finally:
        kserve.stop()
