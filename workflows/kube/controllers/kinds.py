"""The resources the controllers read and write, by kind."""

from __future__ import annotations

from workflows.kube.objects import Kind, kind_of


def _kind(api_version: str, kind: str) -> Kind:
    found = kind_of(api_version, kind)
    if found is None:  # a typo here, or a kind the store no longer serves
        raise LookupError(f"the local API serves no {api_version} {kind}")
    return found


PVC = _kind("v1", "PersistentVolumeClaim")
TFJOB = _kind("kubeflow.org/v1", "TFJob")
TRAINJOB = _kind("trainer.kubeflow.org/v1alpha1", "TrainJob")
INFERENCE_SERVICE = _kind("serving.kserve.io/v1beta1", "InferenceService")
DEPLOYMENT = _kind("apps/v1", "Deployment")
KNATIVE_SERVICE = _kind("serving.knative.dev/v1", "Service")
