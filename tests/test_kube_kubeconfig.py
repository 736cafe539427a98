"""A step's way to the local API server (workflows.kube.kubeconfig): the kubeconfig the
kubernetes client loads, and an environment in which the API is reached directly even
with a proxy set for cluster names."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import REPO

from textcnn.cluster import kube, rollout
from textcnn.errors import FinalError
from workflows.dag.inference_service import build_inference_service
from workflows.kube import authorizer
from workflows.kube.api import KubeApi
from workflows.kube.gateway import Gateway
from workflows.kube.kubeconfig import step_environment, write_kubeconfig
from workflows.kube.objects import Objects, kind_at

NS = "default"


def test_a_step_reaches_the_api_directly_whatever_its_proxy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = Objects()
    kind = kind_at("serving.kserve.io", "inferenceservices")
    assert kind is not None
    objects.create(
        kind,
        NS,
        build_inference_service(
            name="textcnn", namespace=NS, storage_uri="gs://b/m", service_account="sa"
        ),
    )
    rbac = authorizer.load(REPO / "manifests" / "rbac.yaml", NS)
    workflow = authorizer.service_account_user(NS, "textcnn-workflow")
    monkeypatch.setenv("NO_PROXY", "example.com")
    with (
        KubeApi(objects, {"t0ken": workflow}, rbac.authorize) as api,
        Gateway(lambda: {}) as gateway,
    ):
        kubeconfig = write_kubeconfig(tmp_path / "config", api.url, "t0ken", NS, "step")
        assert kubeconfig.stat().st_mode & 0o777 == 0o600  # it holds a token
        env = step_environment(kubeconfig, proxy=gateway.url)
        assert env["NO_PROXY"] == env["no_proxy"] == "example.com,127.0.0.1,localhost"
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        # The deploy steps' calls, as the workflow's service account.
        endpoint = kube.endpoint(NS, "textcnn")
        assert endpoint.get()["metadata"]["name"] == "textcnn"
        assert endpoint.predictor(rollout.RAW) == {}
        assert gateway.hosts == []  # the API server was never asked through the gateway
        assert env["grpc_proxy"] == ""  # ML Metadata's gRPC never goes to the gateway

        # A right the Role lacks: the step fails once, with the API's own message (exit 2,
        # which the steps' retryStrategy does not retry), not a traceback.
        role = rbac.roles[(NS, "textcnn-workflow")]
        rbac.roles[(NS, "textcnn-workflow")] = tuple(
            r for r in role if r.resources != ("deployments",)
        )
        with pytest.raises(FinalError, match="the Kubernetes API refused: ") as refused:
            endpoint.predictor(rollout.RAW)
        assert (
            'deployments.apps "textcnn-predictor-default" is forbidden: User '
            '"system:serviceaccount:default:textcnn-workflow" cannot get resource '
            '"deployments" in API group "apps" in the namespace "default"'
        ) in str(refused.value)
