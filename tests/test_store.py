"""The local runner's artifact stores load input keys as Argo's GCS driver does: the object
named by the key alone, else every object whose name starts with the key (no `/` added)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from workflows.dag import pipeline
from workflows.local.store import ArtifactStore, open_store


def _fill(store: ArtifactStore, tmp: Path) -> None:
    folder = tmp / "src" / "model"
    (folder / "1").mkdir(parents=True)
    (folder / "1" / "saved_model.pb").write_text("graph")
    store.upload(folder, "wf/model")
    spec = tmp / "src" / "model-spec"
    spec.mkdir()
    (spec / "model_config.json").write_text("{}")
    store.upload(spec, "wf/model-spec")
    (tmp / "src" / "metrics.json").write_text("{}")
    store.upload(tmp / "src" / "metrics.json", "wf/metrics.json")


@pytest.fixture(params=["local", "gcs"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    if request.param == "local":
        return open_store(str(tmp_path / "artifacts"))
    return open_store(request.getfixturevalue("gcs_root"))


def files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def test_a_key_that_prefixes_another_brings_both_as_argo_does(
    store: ArtifactStore, tmp_path: Path
) -> None:
    _fill(store, tmp_path)
    store.download("wf/model", tmp_path / "in" / "model")
    # What a pod on Argo gets for key `wf/model`: `wf/model-spec/...` lands in `-spec/`.
    assert files(tmp_path / "in" / "model") == {"1/saved_model.pb", "-spec/model_config.json"}


def test_an_exact_object_is_one_file_and_a_missing_key_is_an_error(
    store: ArtifactStore, tmp_path: Path
) -> None:
    _fill(store, tmp_path)
    store.download("wf/metrics.json", tmp_path / "in" / "metrics.json")
    assert (tmp_path / "in" / "metrics.json").read_text() == "{}"
    with pytest.raises(FileNotFoundError):
        store.download("wf/nothing", tmp_path / "in" / "nothing")


def test_no_artifact_key_of_the_dag_is_a_prefix_of_another() -> None:
    template = pipeline.render()[0]
    keys = {
        a["gcs"]["key"]
        for t in template["spec"]["templates"]
        for side in ("inputs", "outputs")
        for a in t.get(side, {}).get("artifacts", [])
    }
    assert len(keys) > 5
    assert [(a, b) for a, b in itertools.permutations(keys, 2) if b.startswith(a)] == []
