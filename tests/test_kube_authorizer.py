"""RBAC as the local API server enforces it (workflows.kube.authorizer): a rule matches
as Kubernetes' `RuleAllows` matches, and manifests/rbac.yaml's Role binds the workflow's
service account in the namespace the file is placed in, and nowhere else."""

from __future__ import annotations

import pytest
from helpers import REPO

from workflows.kube import authorizer
from workflows.kube.authorizer import Rule, service_account_user

RBAC_FILE = REPO / "manifests" / "rbac.yaml"


@pytest.mark.parametrize(
    ("rule", "resource", "name", "allowed"),
    [
        (Rule(("get",), ("kubeflow.org",), ("tfjobs",)), "tfjobs", "", True),
        (Rule(("get",), ("kubeflow.org",), ("tfjobs",)), "tfjobs/status", "", False),
        (Rule(("get",), ("kubeflow.org",), ("*/status",)), "tfjobs/status", "", True),
        (Rule(("get",), ("kubeflow.org",), ("*/status",)), "tfjobs", "", False),
        (Rule(("*",), ("*",), ("*",)), "tfjobs/status", "", True),
        (Rule(("get",), ("kubeflow.org",), ("tfjobs",), ("a",)), "tfjobs", "a", True),
        (Rule(("get",), ("kubeflow.org",), ("tfjobs",), ("a",)), "tfjobs", "b", False),
        (Rule(("get",), ("kubeflow.org",), ("tfjobs",), ("a",)), "tfjobs", "", False),
        (Rule(("get",), ("apps",), ("tfjobs",)), "tfjobs", "", False),
        (Rule(("list",), ("kubeflow.org",), ("tfjobs",)), "tfjobs", "", False),
    ],
)
def test_a_rule_matches_as_rbac_matches(
    rule: Rule, resource: str, name: str, allowed: bool
) -> None:
    assert rule.allows("get", "kubeflow.org", resource, name) is allowed


def test_the_file_is_placed_in_the_namespace_given() -> None:
    rbac = authorizer.load(RBAC_FILE, "default")
    here = service_account_user("default", "textcnn-workflow")
    there = service_account_user("textcnn", "textcnn-workflow")
    isvc = ("serving.kserve.io", "inferenceservices")
    assert rbac.authorize(here, "patch", *isvc, "default", "textcnn")
    assert not rbac.authorize(here, "patch", *isvc, "textcnn", "textcnn")
    assert not rbac.authorize(there, "patch", *isvc, "default", "textcnn")
    assert not rbac.authorize(
        service_account_user("default", "textcnn-serving"), "get", *isvc, "default"
    )
    # The Argo executor's rights, as the file gives them.
    assert rbac.authorize(here, "create", "argoproj.io", "workflowtaskresults", "default")
    assert not rbac.authorize(here, "get", "argoproj.io", "workflowtaskresults", "default")


def test_masters_may_do_anything() -> None:
    rbac = authorizer.load(RBAC_FILE, "default", masters=["kubernetes-admin"])
    assert rbac.authorize("kubernetes-admin", "delete", "apps", "deployments", "kube-system")
    assert not rbac.authorize("someone", "get", "apps", "deployments", "default")
