"""The lightweight variant: the same DAG with every step on a stock TensorFlow image that
installs this checkout's wheel and the step's pins at start; the wheel, keyed by content;
the bootstrap that installs the pins; and a local run of it end to end."""

from __future__ import annotations

import io
import json
import re
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import SMALL, run_pipeline

from textcnn import bootstrap, storage
from textcnn.params import PipelineParams
from workflows import packaging, wheel
from workflows.checks import lint
from workflows.dag import lightweight, pipeline
from workflows.hooks import images

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = wheel.package()
LIGHT = pipeline.Rendering(package=PACKAGE)


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    return pipeline.render(rendering=LIGHT)


def _templates(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in doc["spec"]["templates"]}


def _defaults(doc: dict[str, Any]) -> dict[str, str]:
    return {p["name"]: p["value"] for p in doc["spec"]["arguments"]["parameters"]}


def _job_containers(doc: dict[str, Any], template: str = "tfjob") -> list[dict[str, Any]]:
    """The containers a distributed job's pods run: a TFJob's replicas', or a TrainJob's
    trainer (what its runtime's `node` container takes)."""
    # Placeholders as a number: Argo substitutes them before it decodes the manifest.
    job = yaml.safe_load(
        re.sub(r"\{\{[^{}]+\}\}", "0", _templates(doc)[template]["resource"]["manifest"])
    )
    if job["kind"] == "TrainJob":
        return [job["spec"]["trainer"]]
    return [
        c
        for spec in job["spec"]["tfReplicaSpecs"].values()
        for c in spec["template"]["spec"]["containers"]
    ]


def test_the_lightweight_yaml_passes_every_strict_check(docs: list[dict[str, Any]]) -> None:
    # Schemas, Argo's full CRDs, the embedded TFJob and InferenceService, restricted pods.
    assert lint.lint_documents(docs, "lightweight") == []


def test_it_is_the_same_dag(docs: list[dict[str, Any]]) -> None:
    ours = pipeline.render()
    for light, image in zip(docs, ours, strict=True):
        # Beside ours on a cluster: trying it replaces neither template nor retrain.
        assert light["kind"] == image["kind"]
        assert light["metadata"]["name"] == f"{image['metadata']['name']}-lightweight"
    ref = docs[1]["spec"]["workflowSpec"]["workflowTemplateRef"]["name"]
    assert ref == docs[0]["metadata"]["name"]
    assert _defaults(docs[0]) == {
        p["name"]: p["value"] for p in docs[1]["spec"]["workflowSpec"]["arguments"]["parameters"]
    }
    dag = {k: v for k, v in _templates(docs[0]).items() if "dag" in v}
    assert dag == {k: v for k, v in _templates(ours[0]).items() if "dag" in v}
    assert _templates(docs[0]).keys() == _templates(ours[0]).keys()


def test_every_step_starts_on_a_stock_image_and_installs_the_wheel(
    docs: list[dict[str, Any]],
) -> None:
    wt = docs[0]
    defaults = _defaults(wt)
    assert defaults["image"] == lightweight.IMAGE and defaults["gpu_image"] == lightweight.GPU_IMAGE
    assert defaults["serving_runtime"] == "tensorflow"  # TF Serving: no image of ours either
    steps = {n: t for n, t in _templates(wt).items() if "container" in t}
    assert len(steps) >= 15
    for name, t in steps.items():
        c = t["container"]
        assert c["image"] in ("{{workflow.parameters.image}}", "{{workflow.parameters.gpu_image}}")
        assert c["command"] == ["sh", "-c", lightweight.SCRIPT, "textcnn"], name
        assert c["args"][0] in packaging.STEPS, name
        [package] = [a for a in t["inputs"]["artifacts"] if a["name"] == "package"]
        assert package["gcs"]["key"] == PACKAGE.key and package["path"] == PACKAGE.path
        env = {e["name"]: e["value"] for e in c["env"] if "value" in e}
        assert env[lightweight.WHEEL_ENV] == PACKAGE.path
        assert env["PIP_INDEX_URL"] == "{{workflow.parameters.pip_index_url}}"
    # The TFJob's replicas and the TrainJob's nodes are no Argo pods: they install the copy
    # stage-data makes.
    for c in _job_containers(wt, "tfjob") + _job_containers(wt, "trainjob"):
        assert c["command"][:2] == ["sh", "-c"] and c["args"][0] == "train-distributed"
        env = {e["name"]: e["value"] for e in c["env"] if "value" in e}
        assert env[lightweight.WHEEL_ENV].endswith(f"/data/package/{PACKAGE.filename}")
    stage = steps["stage-data"]["container"]["args"]
    assert f"--package={PACKAGE.path}" in stage


def test_gpu_pods_install_tensorflow_with_its_cuda_libraries(docs: list[dict[str, Any]]) -> None:
    """Only the GPU templates ask the bootstrap for TensorFlow's `and-cuda` extra, and the
    training steps they run are told to fail without a GPU."""
    templates = _templates(docs[0])
    for name, t in templates.items():
        if "container" not in t:
            continue
        env = {e["name"]: e["value"] for e in t["container"]["env"] if "value" in e}
        assert (env.get(bootstrap.CUDA_ENV) == "true") is (name == "train-gpu"), name
    assert (
        "--gpu_support={{workflow.parameters.gpu_support}}"
        in (templates["train-gpu"]["container"]["args"])
    )
    for gpu in (False, True):
        doc = pipeline.render(PipelineParams(gpu_support=gpu, dist_training=True), LIGHT)[0]
        for backend in ("tfjob", "trainjob"):
            for c in _job_containers(doc, f"{backend}-gpu" if gpu else backend):
                env = {e["name"]: e["value"] for e in c["env"] if "value" in e}
                assert (env.get(bootstrap.CUDA_ENV) == "true") is gpu


def test_the_cuda_extra_replaces_only_the_tensorflow_pin() -> None:
    pins = ["keras==3.15.1", "tensorflow==2.19.1", "tensorflow-io-gcs-filesystem==0.37.1"]
    assert bootstrap.with_cuda(pins) == [
        "keras==3.15.1",
        "tensorflow[and-cuda]==2.19.1",
        "tensorflow-io-gcs-filesystem==0.37.1",
    ]


def test_cuda_wheels_of_another_site_folder_are_linked_beside_tensorflow(tmp_path: Path) -> None:
    """TensorFlow in the user site, cuDNN there too, cuBLAS only in the image's folder:
    cuBLAS gets a link where TensorFlow's RUNPATH ($ORIGIN/../nvidia/cublas/lib) looks."""
    user, image = tmp_path / "user", tmp_path / "image"
    for folder in (user / "tensorflow", image / "tensorflow"):
        folder.mkdir(parents=True)
        (folder / "__init__.py").touch()
    for folder, library in ((user, "cudnn"), (image, "cudnn"), (image, "cublas")):
        (folder / "nvidia" / library / "lib").mkdir(parents=True)
    (image / "nvidia" / "cublas" / "lib" / "libcublas.so.12").touch()
    assert bootstrap.link_cuda_libraries([user, image], user) == [user / "nvidia" / "cublas"]
    assert (user / "tensorflow" / ".." / "nvidia" / "cublas" / "lib" / "libcublas.so.12").exists()
    assert not (user / "nvidia" / "cudnn").is_symlink()  # its own stays
    assert bootstrap.link_cuda_libraries([user, image], user) == []  # once


def test_an_images_own_tensorflow_gets_no_links(tmp_path: Path) -> None:
    """TensorFlow imported from the image's (read-only) folder: nothing is written there."""
    user, image = tmp_path / "user", tmp_path / "image"
    (image / "tensorflow").mkdir(parents=True)
    (image / "tensorflow" / "__init__.py").touch()
    (user / "nvidia" / "cudnn" / "lib").mkdir(parents=True)
    assert bootstrap.link_cuda_libraries([user, image], user) == []
    assert not (image / "nvidia").exists()


def test_no_value_reaches_the_script_text(docs: list[dict[str, Any]]) -> None:
    # Values are the script's positional parameters and environment, never its text.
    assert "{{" not in lightweight.SCRIPT and "$(" not in lightweight.SCRIPT
    for t in _templates(docs[0]).values():
        if "container" in t:
            assert t["container"]["command"][2] == lightweight.SCRIPT
    for c in _job_containers(docs[0], "tfjob") + _job_containers(docs[0], "trainjob"):
        assert c["command"] == ["sh", "-c", lightweight.SCRIPT, "textcnn"]


def test_the_stock_image_is_of_the_pinned_tensorflow_release() -> None:
    pin = packaging.pins()["tensorflow"].split("==")[1]
    for image in (lightweight.IMAGE, lightweight.GPU_IMAGE):
        tag = image.partition(":")[2]
        assert images.is_stock(image)
        assert tag.split("-")[0].rsplit(".", 1)[0] == pin.rsplit(".", 1)[0], image
    # The TF steps install the exact pin on top of the image's own release.
    table = json.loads(packaging.TABLE.read_text())
    for step in ("train", "train-distributed", "evaluate"):
        assert f"tensorflow=={pin}" in table["steps"][step]


def test_an_explicit_image_is_kept() -> None:
    params = PipelineParams.parse({"image": "registry.example/tf:2.19.1"})
    chosen = LIGHT.parameters(params)
    assert chosen.image == "registry.example/tf:2.19.1"
    assert chosen.gpu_image == lightweight.GPU_IMAGE
    assert pipeline.Rendering().parameters(params) == params


@pytest.mark.parametrize(
    "url",
    [
        "https://pypi.example/simple; curl evil",
        "https://pypi.example/simple $(id)",
        "file:///etc/passwd",
        "https://pypi.example/simple\n- name: x",
        "https://",
        "http://mirror.internal/simple",  # pip would refuse it in every pod
    ],
)
def test_a_pip_index_url_that_is_no_plain_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="pip_index_url"):
        PipelineParams.parse({"pip_index_url": url})


# --- the wheel ---------------------------------------------------------------------------


def test_the_wheel_carries_every_module_and_data_file(tmp_path: Path) -> None:
    built = wheel.build(wheel.snapshot(tmp_path / "src"), tmp_path)
    assert built.name == PACKAGE.filename
    names = set(zipfile.ZipFile(built).namelist())
    package = ROOT / "containers" / "textcnn"
    shipped = {
        f"textcnn/{p.relative_to(package).as_posix()}"
        for p in package.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert shipped <= names, sorted(shipped - names)
    assert "textcnn/step_requirements.json" in names


def test_the_key_changes_with_the_content_and_only_with_it(tmp_path: Path) -> None:
    wheel.snapshot(tmp_path)
    assert wheel.content_hash(tmp_path) == wheel.content_hash()
    module = tmp_path / "containers" / "textcnn" / "tokens.py"
    module.touch()  # a new time is no new content
    assert wheel.content_hash(tmp_path) == wheel.content_hash()
    module.write_text(module.read_text() + "\n# changed\n")
    assert wheel.content_hash(tmp_path) != wheel.content_hash()
    assert PACKAGE.key == f"packages/textcnn-0.1.0-{wheel.content_hash()}.whl"


def test_publish_uploads_once_per_content(gcs_root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    uri = wheel.publish(PACKAGE, gcs_root)
    assert uri == f"{gcs_root}/{PACKAGE.key}"
    with zipfile.ZipFile(io.BytesIO(storage.read_bytes(uri))) as z:
        assert "textcnn/bootstrap.py" in z.namelist()

    def no_build(src: Path, folder: Path) -> Path:
        raise AssertionError("rebuilt a wheel the repository has")

    monkeypatch.setattr(wheel, "build", no_build)
    assert wheel.publish(PACKAGE, gcs_root) == uri
    # A key rendered before the sources changed is never filled with other content.
    stale = lightweight.Package("packages/textcnn-0.1.0-0000000000000000.whl", PACKAGE.filename)
    with pytest.raises(wheel.WheelError, match="changed"):
        wheel.publish(stale, gcs_root)
    assert not storage.exists(f"{gcs_root}/{stale.key}")


# --- the bootstrap -----------------------------------------------------------------------


def test_a_failed_install_names_the_step_and_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    table = tmp_path / "step_requirements.json"
    table.write_text(
        json.dumps({"steps": {"train": ["no-such-package-textcnn==1.0"]}, "constraints": []})
    )
    monkeypatch.setattr(bootstrap, "TABLE", table)
    # No index reachable and none on disk: pip cannot find the package.
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    assert bootstrap.main(["train"]) == 1  # not NOT_RETRIED: the step's retries cover it
    err = capsys.readouterr().err
    assert "error: train: installing its 1 pinned packages failed" in err
    assert "--pip_index_url" in err
    assert bootstrap.main(["no-such-step"]) == 2


@pytest.fixture
def pip_calls(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The commands the bootstrap runs, none run: each succeeds."""
    ran: list[list[str]] = []

    def pip(command: list[str]) -> subprocess.CompletedProcess[str]:
        ran.append(command)
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(bootstrap.subprocess, "run", pip)
    return ran


def test_a_gpu_pod_asks_pip_for_tensorflow_with_cuda(
    pip_calls: list[list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(bootstrap.CUDA_ENV, "true")
    assert bootstrap.main(["train"]) == 0
    [command] = pip_calls
    assert "tensorflow[and-cuda]==2.19.1" in command and "tensorflow==2.19.1" not in command


def test_in_a_pod_the_pins_go_to_the_user_site(
    pip_calls: list[list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stock image's Python is no virtual environment: pip --user, into PYTHONUSERBASE.
    monkeypatch.setattr(bootstrap.sys, "prefix", bootstrap.sys.base_prefix)
    assert bootstrap.main(["validate-params"]) == 0
    [command] = pip_calls
    assert command[1:4] == ["-m", "pip", "install"] and "--user" in command
    table = json.loads(packaging.TABLE.read_text())
    assert command[-len(table["steps"]["validate-params"]) :] == table["steps"]["validate-params"]


# --- end to end --------------------------------------------------------------------------


@pytest.mark.slow
def test_a_local_lightweight_run_imports_textcnn_from_the_installed_wheel(
    data_slice: tuple[Path, Path], tmp_path: Path
) -> None:
    train, test = data_slice
    out = tmp_path / "run"
    proc = run_pipeline(
        out,
        "--lightweight",
        "--dist_training",
        "true",  # the TFJob's replicas install it too
        "--train_data_path",
        str(train),
        "--test_data_path",
        str(test),
        "--quiet",
        *SMALL,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "Succeeded"
    template = json.loads((out / "workflow.json").read_text())
    assert _defaults(template)["image"] == lightweight.IMAGE
    # The wheel went to the artifact repository under its content key.
    assert (tmp_path / "artifacts" / PACKAGE.key).is_file()
    # Every step the runner started as a process (the deploy steps and wait-tfjob too), and
    # the TFJob's replicas.
    logs = [
        p
        for p in (out / "logs").glob("*.log")
        if p.read_text().startswith(("$ sh -c", "TF_CONFIG"))
    ]
    started = {p.stem for p in logs}
    assert {"validate-params", "prepare-data", "stage-data", "evaluate", "gate"} <= started
    job = run["steps"]["tfjob"]["outputs"]["name"]
    assert {f"{job}-chief-0", f"{job}-worker-0", f"{job}-worker-1", "wait-tfjob"} <= started
    for log in logs:
        [line] = [x for x in log.read_text().splitlines() if x.startswith("bootstrap: ")]
        where = Path(line.rpartition(" textcnn from ")[2])
        # Installed in the pod's scratch from the wheel, not the checkout's package.
        assert where.is_relative_to(out / "pods") and where.name == "textcnn", (log, line)
        assert (where.parent / "textcnn_argo-0.1.0.dist-info").is_dir()
