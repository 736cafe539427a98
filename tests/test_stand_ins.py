"""The local KServe stand-in: admission checks, and a model that fails to load."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import stand_in_context as context

from textcnn import metadata
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


def test_a_model_that_fails_to_load_fails_the_wait_with_the_server_log(tmp_path: Path) -> None:
    empty = tmp_path / "no-model"
    empty.mkdir()
    store = f"sqlite:{tmp_path / 'mlmd.sqlite'}"
    model_id = metadata.record_artifact(
        store, run_name="wf-1", type_name="Model", uri=str(empty), properties={}
    )
    kserve = LocalKServe()
    try:
        kserve.apply(context(tmp_path, manifest(str(empty))))
        args = [
            "--name=textcnn",
            "--namespace=default",
            "--model_name=textcnn",
            f"--metadata_store={store}",
            "--run_name=wf-1",
            f"--model_id={model_id}",
            f"--model_uri={empty}",
            "--timeout_s=120",
        ]
        with pytest.raises(RuntimeError, match="failed to load.*log: "):
            kserve.wait(context(tmp_path, None, args))
    finally:
        kserve.stop()
    assert kserve.servers == []
    assert not [a for a in metadata.lineage(store, "wf-1")["artifacts"] if a["type"] == "Endpoint"]
