"""Built-in Kubernetes objects against the strict schemas that kubernetes-validate bundles,
and a Kustomization's `resources`."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from kubernetes_validate import utils as k8s_utils
from referencing import Registry, Resource

from workflows.checks.paths import pretty, schema_message, shorten, shown

K8S_VERSION = "1.30.0"  # the oldest Kubernetes the manifests are written for (README)


def kubernetes_problems(doc: Mapping[str, Any]) -> list[str]:
    """Errors of a built-in Kubernetes object against its strict schema."""
    api_version, kind = str(doc.get("apiVersion")), str(doc.get("kind"))
    validator = _k8s_validator(api_version, kind)
    if validator is None:
        return [f"(root): no schema for apiVersion {shorten(api_version)}, kind {shorten(kind)}"]
    return sorted(
        f"{pretty(doc, list(e.absolute_path))}: {schema_message(e)}"
        for e in validator.iter_errors(doc)
    )


@functools.cache
def _k8s_definitions() -> Resource:
    return Resource.from_contents(
        k8s_utils.schema_contents(
            f"kubernetes-json-schema/v{K8S_VERSION}-local-strict/_definitions.json", K8S_VERSION
        )
    )


@functools.cache
def _k8s_validator(api_version: str, kind: str) -> Draft202012Validator | None:
    """The strict Kubernetes schema of a built-in kind, as kubernetes-validate lays its
    files out (`<kind>-<group prefix>-<version>.json`); None when it has none."""
    if not re.fullmatch(r"[A-Za-z0-9]+", kind) or not re.fullmatch(
        r"[a-z0-9.-]*/?[a-z0-9]+", api_version
    ):
        return None
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    name = f"kubernetes-json-schema/v{K8S_VERSION}-local-strict/{kind.lower()}-{group_version}.json"
    try:
        contents = k8s_utils.schema_contents(name, K8S_VERSION)
    except FileNotFoundError:
        return None
    registry = _k8s_definitions() @ (Resource.from_contents(contents) @ Registry())
    return Draft202012Validator(contents, registry=registry)


def kustomization_problems(doc: Mapping[str, Any], folder: Path | None) -> list[str]:
    """Kustomize has no schema to check against; check that what it lists exists."""
    if folder is None:
        return []
    out = []
    for i, entry in enumerate(doc.get("resources") or []):
        if not isinstance(entry, str) or "://" in entry:
            continue  # remote bases cannot be checked offline
        target = folder / entry
        if not (target.is_file() or (target / "kustomization.yaml").is_file()):
            out.append(f"resources[{i}]: {shown(entry)} does not exist (relative to {folder})")
    return out
