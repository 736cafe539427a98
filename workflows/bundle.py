"""What `make images` builds and `make install` applies: the project's three images under
one registry and tag, and the manifests with templates that name them, for a namespace.

`python -m workflows images --registry R --tag T` prints the image references, checked
(the Makefile runs it first, so a value that is no reference stops before any build);
`python -m workflows bundle ... --output_dir DIR` writes `DIR/`, a copy of manifests/
whose kustomization sets the namespace and whose WorkflowTemplate and CronWorkflow are
compiled with those images as defaults, for `kubectl apply -k DIR`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from textcnn.params import ParamsError, PipelineParams
from workflows.dag import pipeline

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = ROOT / "manifests"
# Image name -> its Dockerfile, and the pipeline option that names it.
IMAGES = {
    "steps": ("containers/Dockerfile.steps", "image"),
    "trainer-gpu": ("containers/Dockerfile.gpu", "gpu_image"),
    "serving": ("containers/Dockerfile.serving", "serving_image"),
}


def image_refs(registry: str, tag: str) -> dict[str, str]:
    """Image name -> `registry/name:tag`; ParamsError (naming the option) when one is not
    an image reference."""
    refs = {name: f"{registry}/{name}:{tag}" for name in IMAGES}
    try:
        PipelineParams.parse({option: refs[name] for name, (_, option) in IMAGES.items()})
    except ParamsError:
        raise ParamsError(
            f"REGISTRY={registry!r} and TAG={tag!r} do not make an image reference such as "
            f"{refs['steps']!r}: give a registry host and path in lower case (e.g. "
            "ghcr.io/you) and a tag of letters, digits, '.', '_' or '-'"
        ) from None
    return refs


def bundle(output_dir: Path, registry: str, tag: str, namespace: str) -> Path:
    """Write the manifests for `kubectl apply -k output_dir`; return the kustomization."""
    refs = image_refs(registry, tag)
    params = PipelineParams.parse(
        {
            **{option: refs[name] for name, (_, option) in IMAGES.items()},
            "namespace": namespace,
            "metadata_store": f"grpc:metadata-grpc-service.{namespace}:8080",
        }
    )
    shutil.rmtree(output_dir, ignore_errors=True)
    output_dir.mkdir(parents=True)
    for path in MANIFESTS.glob("*.yaml"):
        shutil.copy(path, output_dir / path.name)
    pipeline.write_manifests(output_dir / "workflows", params)
    # kustomize moves every object into the namespace, but renames no Namespace object.
    namespace_file = output_dir / "namespace.yaml"
    doc = yaml.safe_load(namespace_file.read_text())
    doc["metadata"]["name"] = namespace
    namespace_file.write_text(yaml.safe_dump(doc, sort_keys=False))
    kustomization = output_dir / "kustomization.yaml"
    spec = yaml.safe_load(kustomization.read_text())
    spec["namespace"] = namespace
    kustomization.write_text(yaml.safe_dump(spec, sort_keys=False))
    return kustomization
