"""`make images` and `make install` (no container engine, no cluster here): the commands
`make -n` prints, and the manifests `workflows bundle` writes for `kubectl apply -k`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from textcnn.params import ParamsError
from workflows.bundle import IMAGES, bundle, image_refs
from workflows.checks import lint

ROOT = Path(__file__).resolve().parents[1]


def make_n(*args: str) -> list[str]:
    out = subprocess.run(
        ["make", "-n", *args], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    return [line for line in out.splitlines() if line and not line.startswith("make")]


def test_make_images_checks_then_builds_and_pushes_each_image() -> None:
    lines = make_n("images", "REGISTRY=r", "TAG=t")
    assert lines[0].endswith('-m workflows images --registry "$REGISTRY" --tag "$TAG"')
    for name, (dockerfile, _) in IMAGES.items():
        assert any(line.endswith(f" build -f {dockerfile} -t r/{name}:t .") for line in lines)
        assert any(line.endswith(f" push r/{name}:t") for line in lines)
    engine = lines[1].split()[0]
    assert Path(engine).name in ("docker", "podman")


def test_the_default_tag_is_the_version_and_the_commit() -> None:
    commit = subprocess.run(
        ["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    assert make_n("images", "REGISTRY=r")[-1].endswith(f" push r/serving:0.1.0-{commit}")


def test_make_install_bundles_then_applies_with_kustomize() -> None:
    lines = make_n("install", "REGISTRY=r", "NAMESPACE=n", "TAG=t")
    assert lines == [
        '.venv/bin/python -m workflows bundle --registry "$REGISTRY" --tag "$TAG" '
        '--namespace "$NAMESPACE" --output_dir build/manifests',
        "kubectl apply -k build/manifests",
    ]


def test_the_bundle_names_the_registry_s_images_in_the_namespace(tmp_path: Path) -> None:
    kustomization = bundle(tmp_path / "manifests", "r.example/team", "t1", "ml-prod")
    folder = kustomization.parent
    spec = yaml.safe_load(kustomization.read_text())
    assert spec["namespace"] == "ml-prod"
    assert all((folder / resource).is_file() for resource in spec["resources"])
    assert yaml.safe_load((folder / "namespace.yaml").read_text())["metadata"]["name"] == "ml-prod"
    template = yaml.safe_load((folder / "workflows" / "textcnn-pipeline.yaml").read_text())
    defaults = {p["name"]: p.get("value") for p in template["spec"]["arguments"]["parameters"]}
    assert (defaults["image"], defaults["gpu_image"], defaults["serving_image"]) == (
        "r.example/team/steps:t1",
        "r.example/team/trainer-gpu:t1",
        "r.example/team/serving:t1",
    )
    assert defaults["metadata_store"] == "grpc:metadata-grpc-service.ml-prod:8080"
    assert template["metadata"]["namespace"] == "ml-prod"
    assert lint.lint_paths([folder]) == []


@pytest.mark.parametrize(
    ("registry", "tag"),
    [("", "t"), ("r;touch x", "t"), ("R/Upper", "t"), ("r", "t t"), ("r", "$(id)")],
)
def test_a_registry_or_tag_that_is_no_image_reference_is_refused(registry: str, tag: str) -> None:
    with pytest.raises(ParamsError, match="do not make an image reference"):
        image_refs(registry, tag)
