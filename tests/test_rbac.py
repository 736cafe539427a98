"""workflows/rbac.py: the rights derived from resource templates and the step code."""

from __future__ import annotations

from typing import Any

import yaml

from workflows.checks import rbac
from workflows.dag import pipeline


def resource(
    action: str, kind: str = "TFJob", api: str = "kubeflow.org/v1", **extra: Any
) -> dict[str, Any]:
    manifest = yaml.safe_dump(
        {"apiVersion": api, "kind": kind, "metadata": {"generateName": "{{workflow.name}}-"}}
    )
    return {"name": "r", "resource": {"action": action, "manifest": manifest, **extra}}


def test_each_action_needs_what_kubectl_calls() -> None:
    assert rbac.template_rules([resource("create")]) == {("kubeflow.org", "tfjobs", "create")}
    assert rbac.template_rules(
        [resource("apply", "InferenceService", "serving.kserve.io/v1beta1")]
    ) == {("serving.kserve.io", "inferenceservices", v) for v in ("get", "create", "patch")}
    assert rbac.template_rules([resource("delete", "PersistentVolumeClaim", "v1")]) == {
        ("", "persistentvolumeclaims", "delete")
    }


def test_reading_outputs_or_conditions_needs_get() -> None:
    by_path = resource("create")
    by_path["outputs"] = {"parameters": [{"name": "n", "valueFrom": {"jsonPath": "{.a}"}}]}
    by_condition = resource("create", successCondition="status.succeeded > 0")
    for template in (by_path, by_condition):
        assert rbac.template_rules([template]) == {
            ("kubeflow.org", "tfjobs", "create"),
            ("kubeflow.org", "tfjobs", "get"),
        }


def test_an_owner_reference_needs_the_workflow_finalizers() -> None:
    assert rbac.OWNER_REFERENCE in rbac.template_rules([resource("create", setOwnerReference=True)])
    assert rbac.OWNER_REFERENCE not in rbac.template_rules([resource("create")])


def test_the_step_code_reads_the_jobs_and_what_serves_and_patches_the_inference_service() -> None:
    assert rbac.code_rules() == {
        ("kubeflow.org", "tfjobs", "get"),
        ("trainer.kubeflow.org", "trainjobs", "get"),
        ("serving.kserve.io", "inferenceservices", "get"),
        ("serving.kserve.io", "inferenceservices", "patch"),  # restore, promote, roll back
        ("apps", "deployments", "get"),  # the rollout, RawDeployment
        ("serving.knative.dev", "services", "get"),  # the rollout and tag addresses, Serverless
    }


def test_a_dropped_or_an_extra_rule_shows_as_a_difference() -> None:
    required = rbac.required_rules(pipeline.render()[0])
    role = {
        "rules": [
            {"apiGroups": [g], "resources": [r], "verbs": [v]}
            for g, r, v in sorted(required)
            if r != "tfjobs"
        ]
    }
    role["rules"].append({"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]})
    granted = rbac.granted_rules(role)
    assert required - granted == {
        ("kubeflow.org", "tfjobs", "create"),
        ("kubeflow.org", "tfjobs", "get"),
    }
    assert granted - required == {("", "pods", "get")}
