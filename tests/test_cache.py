"""Step caching (textcnn.cache, workflows/dag/caching.py): keys from the compiled plan,
entries in the artifact repository (a folder, or GCS through its emulator)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from textcnn import cache, storage
from textcnn.entry import Entry, write_entry
from textcnn.params import PipelineParams
from textcnn.steps import validate_params
from workflows.dag import caching, pipeline

RUN = "textcnn-pipeline-abc12"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def plan() -> dict[str, Any]:
    (validate,) = [
        t for t in pipeline.render()[0]["spec"]["templates"] if t["name"] == "validate-params"
    ]
    (text,) = [a for a in validate["container"]["args"] if a.startswith("--cache_plan=")]
    return json.loads(text.partition("=")[2])


def keys(plan: dict[str, Any], digests: dict[str, str] | None = None, **options: Any) -> dict:
    values = PipelineParams(**options).to_strings()
    return cache.stage_keys(
        plan, values, digests or {"train_data_path": "a", "test_data_path": "b"}
    )


def changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {stage for stage in before if before[stage] != after[stage]}


def test_the_plan_keys_what_each_stage_reads_and_not_where_the_run_is(plan: dict) -> None:
    assert list(plan) == list(caching.STAGES)
    prepare = plan["prepare-data"]["args"]
    assert "--train_path=${train_data_path}" in prepare
    assert "--output_dir=<outputs:prepared>" in prepare  # a pod path, the same every run
    for spec in plan.values():  # no run name, artifact root, claim or key of its own
        assert not any("{{" in a or "$(" in a or "cache_" in a for a in spec["args"]), spec
    # evaluate scores the test rows check-data kept.
    assert plan["evaluate"]["inputs"] == ["prepare-data", "check-data", "export"]
    assert plan["check-data"]["inputs"] == [
        "prepare-data",
        "dataset-metadata-train",
        "dataset-metadata-test",
    ]
    assert plan["dataset-metadata-test"]["inputs"] == ["prepare-data"]
    # The images (their libraries), and for training the TFJob branch's own options.
    assert plan["prepare-data"]["args"][-1] == "--image=${image}"
    extra = ["--image=${image}", "--gpu_image=${gpu_image}"]
    dist = ["--dist_training=${dist_training}", "--workers=${workers}"]
    assert plan["train"]["args"][-4:] == extra + dist


def test_a_changed_option_changes_the_keys_of_its_stages_and_those_after(plan: dict) -> None:
    base = keys(plan)
    assert keys(plan) == base  # the same inputs, the same keys
    assert changed(base, keys(plan, epochs=3)) == {"train", "export", "evaluate"}
    assert changed(base, keys(plan, num_filters=50)) == {
        "model-metadata",
        "train",
        "fit-ngrams",
        "export",
        "evaluate",
    }
    # The test labels are checked against prepare-data's classes: its stage follows.
    assert changed(base, keys(plan, seed=7)) == set(caching.STAGES) - {"dataset-metadata-train"}
    # Options no stage reads change nothing: the gate's (the drift thresholds included:
    # the gate weighs check-data's figures), the deploy's.
    assert keys(plan, min_improvement=0.1, deploy=False, isvc_name="other") == base
    assert keys(plan, max_label_drift=0.5, max_length_drift=0.5, max_oov_rate=0.5) == base
    # Leakage decides which test rows are scored.
    assert changed(base, keys(plan, drop_test_overlap=True)) == {"check-data", "evaluate"}
    assert changed(base, keys(plan, dist_training=True)) == {"train", "export", "evaluate"}


def test_a_changed_data_file_changes_the_stages_that_read_it(plan: dict) -> None:
    base = keys(plan)
    test = keys(plan, {"train_data_path": "a", "test_data_path": "b2"})
    assert changed(base, test) == {"dataset-metadata-test", "check-data", "evaluate"}
    train = keys(plan, {"train_data_path": "a2", "test_data_path": "b"})
    assert changed(base, train) == set(caching.STAGES)


def test_new_code_changes_every_key(plan: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    base = keys(plan)
    monkeypatch.setattr(cache, "code_version", lambda: "0.1.0+other")
    assert changed(base, keys(plan)) == set(caching.STAGES)


def test_an_entry_counts_only_when_every_file_it_lists_is_there(tmp_path: Path) -> None:
    out = tmp_path / "pod" / "out"
    (out / "prepared").mkdir(parents=True)
    (out / "prepared" / "data.bin").write_bytes(b"12345")
    write_entry(out / "entry", RUN)
    written = json.loads((out / "entry").read_text())
    md5 = "gnzLDuqKcGxMNKFokfhOew=="  # of b"12345", base64, as GCS gives an object's
    assert written == {"run": RUN, "files": {"prepared/data.bin": [5, md5]}}

    root = tmp_path / "repository"
    assert cache.read_entry(str(root), "k1") is None  # nothing there
    (root / "cache").mkdir(parents=True)
    shutil.copytree(out, root / "cache" / "k1")
    assert cache.read_entry(str(root), "k1") == Entry(RUN, {"prepared/data.bin": (5, md5)})
    (root / "cache" / "k1" / "prepared" / "data.bin").write_bytes(b"12")  # cut short
    assert cache.read_entry(str(root), "k1") is None
    (root / "cache" / "k1" / "prepared" / "data.bin").unlink()
    assert cache.read_entry(str(root), "k1") is None
    (root / "cache" / "k1" / "entry").write_text("{not json")
    assert cache.read_entry(str(root), "k1") is None
    # Its run goes into the DAG's `when` text: a workflow name, or no entry.
    (root / "cache" / "k1" / "entry").write_text(json.dumps({"run": "x' == 'x", "files": {}}))
    assert cache.read_entry(str(root), "k1") is None


def test_validate_params_decides_from_the_entries_and_the_cache_option(
    plan: dict, tmp_path: Path
) -> None:
    data = {"train_data_path": "data/rt/train.csv", "test_data_path": "data/rt/test.csv"}
    options = {**PipelineParams(**data).to_strings()}

    def decide(**changes: str) -> dict[str, str]:
        return validate_params.run(
            cache_plan=json.dumps(plan),
            artifact_root=str(tmp_path),
            run_name=RUN,
            **{**options, **changes},
        )

    cold = decide()
    assert all(cold[stage] == cache.RUN for stage in caching.STAGES)
    found = json.loads(cold["cache"])
    assert found["hits"] == {}
    key = cold["key-prepared"].split("/")[1]
    assert cold["key-prepared"] == f"cache/{key}/prepared" == found["keys"]["prepared"]
    assert cold["entry-prepare-data"] == f"cache/{key}/entry"
    # prepare-data's entry is there: it is reused, and said to be.
    folder = tmp_path / "cache" / key
    (folder / "prepared").mkdir(parents=True)
    (folder / "prepared" / "x").write_text("x")
    (folder / "entry").write_text(json.dumps({"run": "earlier", "files": {"prepared/x": [1, ""]}}))
    warm = decide()
    assert warm["prepare-data"] == "cached from earlier"
    assert json.loads(warm["cache"])["hits"] == {"prepare-data": "earlier"}
    assert all(warm[s] == cache.RUN for s in caching.STAGES if s != "prepare-data")
    # --cache no: every stage runs, its artifacts where a run's always went.
    off = decide(cache="no")
    assert all(off[stage] == cache.RUN for stage in caching.STAGES)
    assert off["key-prepared"] == f"{RUN}/prepared"
    assert off["entry-prepare-data"] == f"{RUN}/entries/prepare-data"
    # The test file's digest is of its bytes: one byte more, another key for its stages.
    copy = tmp_path / "test.csv"
    copy.write_bytes((REPO / "data/rt/test.csv").read_bytes() + b"\n")
    other = decide(test_data_path=str(copy))
    assert {s for s in caching.STAGES if other[f"entry-{s}"] != cold[f"entry-{s}"]} == {
        "dataset-metadata-test",
        "check-data",
        "evaluate",
    }


def test_a_gcs_object_is_known_by_its_stored_hash_without_reading_it(gcs_root: str) -> None:
    uri = f"{gcs_root}/data/train.csv"
    storage.write_bytes(uri, b"text,label\na,b\n")
    first = storage.fingerprint(uri)
    assert first.startswith(("crc32c:", "md5:"))
    assert storage.fingerprint(uri) == first
    storage.write_bytes(uri, b"text,label\na,c\n")
    assert storage.fingerprint(uri) != first
    with pytest.raises(FileNotFoundError):
        storage.fingerprint(f"{gcs_root}/data/missing.csv")


def test_entries_in_a_gcs_repository(gcs_root: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "model").mkdir(parents=True)
    (out / "model" / "saved.pb").write_bytes(b"abc")
    write_entry(out / "entry", RUN)
    storage.upload_dir(out, f"{gcs_root}/cache/k9")
    found = cache.read_entry(gcs_root, "k9")
    assert found is not None and found.files["model/saved.pb"][0] == 3
    # Another attempt's object of the same size is no part of the entry (its MD5 differs).
    storage.write_bytes(f"{gcs_root}/cache/k9/model/saved.pb", b"abd")
    assert cache.read_entry(gcs_root, "k9") is None
    storage.write_bytes(f"{gcs_root}/cache/k9/model/saved.pb", b"ab")
    assert cache.read_entry(gcs_root, "k9") is None


def test_a_gensim_model_is_known_with_the_arrays_saved_beside_it(tmp_path: Path) -> None:
    model = tmp_path / "w2v.model"
    model.write_bytes(b"pickled")
    (tmp_path / "w2v.model.wv.vectors.npy").write_bytes(b"arrays")
    (tmp_path / "w2v.modelx").write_bytes(b"another file")
    params = PipelineParams(w2v_model_path=str(model))
    before = validate_params.data_digests(params)["w2v_model_path"]
    assert len(before.split()) == 2  # the model and its one array file
    (tmp_path / "w2v.model.wv.vectors.npy").write_bytes(b"arrayz")
    assert validate_params.data_digests(params)["w2v_model_path"] != before
