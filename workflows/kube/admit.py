"""What the local API server refuses to store, by kind: the checks the lint makes, which
are what the real API server's schemas and the operators' webhooks refuse.

Kinds with no schema here (Knative's Service, Argo's WorkflowTaskResult) are admitted
unchecked: their controllers and Argo write them, not our code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workflows.checks.admission import validate_inference_service, validate_tfjob
from workflows.checks.kubernetes import kubernetes_problems
from workflows.checks.trainer import validate_trainjob
from workflows.kube.objects import Kind

# Built-in kinds: their strict Kubernetes schemas (kubernetes-validate's).
BUILT_IN_GROUPS = ("", "apps")


def admit(
    kind: Kind, doc: dict[str, Any], runtimes: Mapping[str, Mapping[str, Any]] | None = None
) -> list[str]:
    """The problems of `doc` as the API server would store it (`path: message` each);
    none: admitted. `runtimes`: the cluster's ClusterTrainingRuntimes by name, which a
    TrainJob's must be among (none installed when not given)."""
    if (kind.group, kind.kind) == ("kubeflow.org", "TFJob"):
        return validate_tfjob(doc)
    if (kind.group, kind.kind) == ("trainer.kubeflow.org", "TrainJob"):
        return validate_trainjob(doc, runtimes or {})
    if (kind.group, kind.kind) == ("serving.kserve.io", "InferenceService"):
        return validate_inference_service(doc)
    if kind.group in BUILT_IN_GROUPS:
        return kubernetes_problems(doc)
    return []
