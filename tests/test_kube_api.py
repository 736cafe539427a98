"""The local Kubernetes API server (workflows.kube), spoken to with the official kubernetes
client as the steps speak to it: through a kubeconfig, as the workflow's service account
bound by manifests/rbac.yaml, or as an administrator. Errors are compared with Kubernetes'
own wording."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from helpers import REPO, recorded
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from workflows.checks.admission import validate_tfjob
from workflows.dag.inference_service import build_inference_service
from workflows.kube import authorizer
from workflows.kube.api import KubeApi
from workflows.kube.authorizer import service_account_user
from workflows.kube.kubeconfig import write_kubeconfig
from workflows.kube.objects import GENERATED_SUFFIX, KINDS, SUFFIX_ALPHABET, Objects, kind_at

NS = "default"
ADMIN = "kubernetes-admin"  # kubeadm's administrator, in system:masters
WORKFLOW = service_account_user(NS, "textcnn-workflow")
TOKENS = {"admin-t0ken": ADMIN, "workflow-t0ken": WORKFLOW}
ISVC = ("serving.kserve.io", "v1beta1", NS, "inferenceservices")
TFJOB = ("kubeflow.org", "v1", NS, "tfjobs")
ROLE = (NS, "textcnn-workflow")
DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "textcnn-predictor"},
    "spec": {
        "selector": {"matchLabels": {"app": "textcnn"}},
        "template": {
            "metadata": {"labels": {"app": "textcnn"}},
            "spec": {"containers": [{"name": "kserve-container", "image": "tf-serving"}]},
        },
    },
}


def isvc(name: str = "textcnn") -> dict[str, Any]:
    return build_inference_service(
        name=name, namespace=NS, storage_uri="gs://b/m", service_account="textcnn-serving"
    )


def tfjob() -> dict[str, Any]:
    """A TFJob as the DAG writes it (a recorded one, before the API server named it)."""
    doc = recorded("tfjob", "running")
    del doc["status"]
    doc["metadata"] = {"generateName": "train-", "labels": doc["metadata"].get("labels", {})}
    return doc


@pytest.fixture
def rbac() -> authorizer.Rbac:
    return authorizer.load(REPO / "manifests" / "rbac.yaml", NS, masters=[ADMIN])


@pytest.fixture
def api(rbac: authorizer.Rbac) -> Iterator[KubeApi]:
    with KubeApi(Objects(), TOKENS, rbac.authorize) as server:
        yield server


@pytest.fixture
def connect(api: KubeApi, tmp_path: Path) -> Iterator[Callable[[str], client.ApiClient]]:
    """A client of `api` from a kubeconfig holding the given token."""
    opened: list[client.ApiClient] = []

    def open_with(token: str) -> client.ApiClient:
        path = write_kubeconfig(tmp_path / f"{token}.kubeconfig", api.url, token, NS, "step")
        opened.append(config.new_client_from_config(config_file=str(path)))
        return opened[-1]

    yield open_with
    for opened_client in opened:
        opened_client.close()


@pytest.fixture
def admin(connect: Callable[[str], client.ApiClient]) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(connect("admin-t0ken"))


@pytest.fixture
def workflow(connect: Callable[[str], client.ApiClient]) -> client.ApiClient:
    return connect("workflow-t0ken")


def refusal(call: Callable[[], Any]) -> tuple[int, dict[str, Any]]:
    """The HTTP status and Status body of a call the server refuses."""
    with pytest.raises(ApiException) as refused:
        call()
    return refused.value.status, json.loads(refused.value.body)


# --- objects through the client -------------------------------------------------------


def test_create_with_generate_name_then_get_and_list(admin: client.CustomObjectsApi) -> None:
    made = admin.create_namespaced_custom_object(*TFJOB, tfjob())
    name = made["metadata"]["name"]
    suffix = name.removeprefix("train-")
    assert name.startswith("train-") and len(suffix) == GENERATED_SUFFIX
    assert set(suffix) <= set(SUFFIX_ALPHABET)
    assert made["metadata"]["namespace"] == NS and made["metadata"]["generation"] == 1
    assert admin.get_namespaced_custom_object(*TFJOB, name) == made
    listed = admin.list_namespaced_custom_object(*TFJOB)
    assert listed["kind"] == "TFJobList" and listed["items"] == [made]
    assert listed["metadata"]["resourceVersion"] == made["metadata"]["resourceVersion"]


def test_merge_patch_changes_the_spec_and_the_generation(admin: client.CustomObjectsApi) -> None:
    admin.create_namespaced_custom_object(*ISVC, isvc())
    labelled = admin.patch_namespaced_custom_object(
        *ISVC, "textcnn", {"metadata": {"labels": {"stage": "canary"}}}
    )
    assert labelled["metadata"]["labels"]["stage"] == "canary"
    assert labelled["metadata"]["generation"] == 1  # metadata is not the spec
    patched = admin.patch_namespaced_custom_object(
        *ISVC,
        "textcnn",
        {"spec": {"predictor": {"canaryTrafficPercent": 10}}, "metadata": {"labels": None}},
    )
    assert patched["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert patched["spec"]["predictor"]["model"] == isvc()["spec"]["predictor"]["model"]
    assert "labels" not in patched["metadata"] and patched["metadata"]["generation"] == 2


def test_only_merge_patches_are_understood(admin: client.CustomObjectsApi) -> None:
    admin.create_namespaced_custom_object(*ISVC, isvc())
    code, body = refusal(
        lambda: admin.patch_namespaced_custom_object(
            *ISVC,
            "textcnn",
            [{"op": "remove", "path": "/spec"}],
            _content_type="application/json-patch+json",
        )
    )
    assert (code, body["reason"]) == (415, "UnsupportedMediaType")
    assert body["message"] == (
        "the body of the request was in an unknown format - accepted media types include: "
        "application/merge-patch+json"
    )


def test_a_missing_object_is_not_found(admin: client.CustomObjectsApi) -> None:
    code, body = refusal(lambda: admin.get_namespaced_custom_object(*TFJOB, "absent"))
    assert (code, body["reason"]) == (404, "NotFound")
    assert body["message"] == 'tfjobs.kubeflow.org "absent" not found'
    assert body["details"] == {"name": "absent", "group": "kubeflow.org", "kind": "tfjobs"}
    code, body = refusal(lambda: admin.patch_namespaced_custom_object(*TFJOB, "absent", {}))
    assert (code, body["reason"]) == (404, "NotFound")


def test_create_refuses_another_namespace_and_put_refuses_a_stale_version(
    admin: client.CustomObjectsApi,
) -> None:
    elsewhere = isvc() | {"metadata": {"name": "textcnn", "namespace": "textcnn"}}
    code, body = refusal(lambda: admin.create_namespaced_custom_object(*ISVC, elsewhere))
    assert (code, body["reason"]) == (400, "BadRequest")
    assert body["message"] == (
        "the namespace of the provided object does not match the namespace sent on the request"
    )
    made = admin.create_namespaced_custom_object(*ISVC, isvc())
    newer = copy.deepcopy(made)
    newer["spec"]["predictor"]["maxReplicas"] = 3
    replaced = admin.replace_namespaced_custom_object(*ISVC, "textcnn", newer)
    assert replaced["spec"]["predictor"]["maxReplicas"] == 3
    assert replaced["metadata"]["generation"] == 2
    code, body = refusal(lambda: admin.replace_namespaced_custom_object(*ISVC, "textcnn", newer))
    assert (code, body["reason"]) == (409, "Conflict")
    assert body["message"] == (
        'Operation cannot be fulfilled on inferenceservices.serving.kserve.io "textcnn": the '
        "object has been modified; please apply your changes to the latest version and try again"
    )


def test_status_is_read_through_its_subresource_and_kept_by_a_put(
    admin: client.CustomObjectsApi, api: KubeApi
) -> None:
    made = admin.create_namespaced_custom_object(*ISVC, isvc())
    kind = kind_at("serving.kserve.io", "inferenceservices")
    assert kind is not None
    api.objects.write_status(kind, NS, "textcnn", {"url": "http://textcnn.default"})
    read = admin.get_namespaced_custom_object_status(*ISVC, "textcnn")
    assert read["status"] == {"url": "http://textcnn.default"}
    made["status"] = {"url": "http://elsewhere"}  # a client's status is not written
    del made["metadata"]["resourceVersion"]  # (then no precondition: the status moved it)
    admin.replace_namespaced_custom_object(*ISVC, "textcnn", made)
    assert admin.get_namespaced_custom_object(*ISVC, "textcnn")["status"] == read["status"]


def test_delete_answers_the_object_or_for_a_deployment_a_status(
    admin: client.CustomObjectsApi,
) -> None:
    made = admin.create_namespaced_custom_object(*ISVC, isvc())
    code, body = refusal(lambda: admin.create_namespaced_custom_object(*ISVC, isvc()))
    assert (code, body["reason"]) == (409, "AlreadyExists")
    assert body["message"] == 'inferenceservices.serving.kserve.io "textcnn" already exists'
    gone = admin.delete_namespaced_custom_object(*ISVC, "textcnn")
    assert gone["metadata"]["uid"] == made["metadata"]["uid"]
    assert refusal(lambda: admin.get_namespaced_custom_object(*ISVC, "textcnn"))[0] == 404
    apps = client.AppsV1Api(admin.api_client)
    apps.create_namespaced_deployment(NS, DEPLOYMENT)
    # Typed `object` by the client: the Status, as a dict.
    status = apps.delete_namespaced_deployment("textcnn-predictor", NS)
    assert (status["status"], status["details"]["kind"]) == ("Success", "deployments")


# --- watch ----------------------------------------------------------------------------


def test_a_watch_from_a_version_sees_added_then_modified(admin: client.CustomObjectsApi) -> None:
    start = admin.list_namespaced_custom_object(*ISVC)["metadata"]["resourceVersion"]
    admin.create_namespaced_custom_object(*ISVC, isvc())
    admin.create_namespaced_custom_object(*ISVC, isvc("other"))
    admin.patch_namespaced_custom_object(*ISVC, "textcnn", {"metadata": {"labels": {"a": "b"}}})
    seen = []
    stream = watch.Watch()
    for event in stream.stream(
        admin.list_namespaced_custom_object,
        *ISVC,
        resource_version=start,
        field_selector="metadata.name=textcnn",
        timeout_seconds=30,
    ):
        seen.append((event["type"], event["object"]["metadata"].get("labels", {}).get("a")))
        if len(seen) == 2:
            stream.stop()
    assert seen == [("ADDED", None), ("MODIFIED", "b")]  # "other" is not selected


def test_a_watch_starts_from_what_is_there_then_delivers_a_change_made_while_it_waits(
    admin: client.CustomObjectsApi,
) -> None:
    admin.create_namespaced_custom_object(*ISVC, isvc())
    admin.patch_namespaced_custom_object(*ISVC, "textcnn", {"metadata": {"labels": {"a": "b"}}})
    seen = []
    stream = watch.Watch()
    # No resourceVersion: each object as it is now, as ADDED (not its history), then changes.
    for event in stream.stream(admin.list_namespaced_custom_object, *ISVC, timeout_seconds=30):
        meta = event["object"]["metadata"]
        seen.append((event["type"], meta.get("labels", {}).get("a"), meta["generation"]))
        if event["type"] == "ADDED":
            admin.patch_namespaced_custom_object(
                *ISVC, "textcnn", {"spec": {"predictor": {"canaryTrafficPercent": 50}}}
            )
        else:
            stream.stop()
    assert seen == [("ADDED", "b", 1), ("MODIFIED", "b", 2)]


def test_a_watch_ends_at_its_timeout(admin: client.CustomObjectsApi) -> None:
    version = admin.list_namespaced_custom_object(*ISVC)["metadata"]["resourceVersion"]
    events = watch.Watch().stream(
        admin.list_namespaced_custom_object, *ISVC, resource_version=version, timeout_seconds=1
    )
    assert list(events) == []


# --- admission, authentication ----------------------------------------------------------


def test_admission_refuses_an_invalid_tfjob_and_an_invalid_patch(
    admin: client.CustomObjectsApi,
) -> None:
    job = tfjob()
    job["metadata"] = {"name": "train-bad"}
    job["spec"]["tfReplicaSpecs"]["Launcher"] = job["spec"]["tfReplicaSpecs"]["Worker"]
    job["spec"]["bogus"] = True
    problems = validate_tfjob(job)
    assert len(problems) == 2
    code, body = refusal(lambda: admin.create_namespaced_custom_object(*TFJOB, job))
    assert (code, body["reason"]) == (422, "Invalid")
    assert body["message"] == f'TFJob.kubeflow.org "train-bad" is invalid: [{", ".join(problems)}]'
    assert [c["field"] for c in body["details"]["causes"]] == [p.split(": ")[0] for p in problems]
    assert admin.list_namespaced_custom_object(*TFJOB)["items"] == []
    admin.create_namespaced_custom_object(*ISVC, isvc())
    code, body = refusal(
        lambda: admin.patch_namespaced_custom_object(
            *ISVC, "textcnn", {"spec": {"predictor": {"canaryTrafficPercent": 150}}}
        )
    )
    assert (code, body["reason"]) == (422, "Invalid")
    assert "canaryTrafficPercent: 150 is not in 0..100" in body["message"]
    stored = admin.get_namespaced_custom_object(*ISVC, "textcnn")
    assert "canaryTrafficPercent" not in stored["spec"]["predictor"]


def test_a_request_without_a_known_token_is_unauthorized(
    api: KubeApi, connect: Callable[[str], client.ApiClient]
) -> None:
    stranger = client.CustomObjectsApi(connect("guessed"))
    code, body = refusal(lambda: stranger.list_namespaced_custom_object(*ISVC))
    assert (code, body["reason"], body["message"]) == (401, "Unauthorized", "Unauthorized")
    no_token = requests.get(f"{api.url}/apis/kubeflow.org/v1/namespaces/{NS}/tfjobs")
    assert (no_token.status_code, no_token.json()["reason"]) == (401, "Unauthorized")


# --- RBAC: manifests/rbac.yaml's Role, bound in `default` ------------------------------


def forbidden(verb: str, resource: str, group: str, name: str = "") -> str:
    """Kubernetes' message for the workflow's service account."""
    qualified = f"{resource.split('/')[0]}.{group}" if group else resource.split("/")[0]
    subject = f'{qualified} "{name}"' if name else qualified
    return (
        f'{subject} is forbidden: User "{WORKFLOW}" cannot {verb} resource "{resource}" in API '
        f'group "{group}" in the namespace "{NS}"'
    )


def test_the_workflow_may_do_what_its_role_says(
    admin: client.CustomObjectsApi, workflow: client.ApiClient
) -> None:
    client.AppsV1Api(admin.api_client).create_namespaced_deployment(NS, DEPLOYMENT)
    custom, apps = client.CustomObjectsApi(workflow), client.AppsV1Api(workflow)
    custom.create_namespaced_custom_object(*ISVC, isvc())
    custom.get_namespaced_custom_object(*ISVC, "textcnn")
    custom.patch_namespaced_custom_object(*ISVC, "textcnn", {"metadata": {"labels": {"a": "b"}}})
    assert apps.read_namespaced_deployment("textcnn-predictor", NS).metadata.name == (
        "textcnn-predictor"
    )


def test_the_workflow_may_not_do_more(
    admin: client.CustomObjectsApi, workflow: client.ApiClient
) -> None:
    admin.create_namespaced_custom_object(*ISVC, isvc())
    custom, apps = client.CustomObjectsApi(workflow), client.AppsV1Api(workflow)
    cases = [
        (
            lambda: custom.delete_namespaced_custom_object(*ISVC, "textcnn"),
            forbidden("delete", "inferenceservices", "serving.kserve.io", "textcnn"),
        ),
        (
            lambda: apps.patch_namespaced_deployment("textcnn-predictor", NS, {"spec": {}}),
            forbidden("patch", "deployments", "apps", "textcnn-predictor"),
        ),
        (
            lambda: custom.list_namespaced_custom_object(*ISVC),
            forbidden("list", "inferenceservices", "serving.kserve.io"),
        ),
        (
            lambda: custom.get_namespaced_custom_object_status(*TFJOB, "train-x"),
            forbidden("get", "tfjobs/status", "kubeflow.org", "train-x"),
        ),
    ]
    for call, message in cases:
        code, body = refusal(call)
        assert (code, body["reason"], body["message"]) == (403, "Forbidden", message)
    # The binding is in `default`: the same account may do nothing in `textcnn`.
    code, body = refusal(
        lambda: custom.get_namespaced_custom_object(*ISVC[:2], "textcnn", ISVC[3], "textcnn")
    )
    assert code == 403 and body["message"].endswith('in the namespace "textcnn"')


def test_taking_a_rule_from_the_role_forbids_its_call(
    admin: client.CustomObjectsApi, workflow: client.ApiClient, rbac: authorizer.Rbac
) -> None:
    client.AppsV1Api(admin.api_client).create_namespaced_deployment(NS, DEPLOYMENT)
    apps = client.AppsV1Api(workflow)
    apps.read_namespaced_deployment("textcnn-predictor", NS)
    rbac.roles[ROLE] = tuple(r for r in rbac.roles[ROLE] if "deployments" not in r.resources)
    code, body = refusal(lambda: apps.read_namespaced_deployment("textcnn-predictor", NS))
    assert code == 403
    assert body["message"] == forbidden("get", "deployments", "apps", "textcnn-predictor")


def test_every_kind_is_served_and_nothing_else(api: KubeApi) -> None:
    auth = {"Authorization": "Bearer admin-t0ken"}
    for kind in KINDS:
        root = f"/apis/{kind.group}/{kind.version}" if kind.group else "/api/v1"
        listed = requests.get(f"{api.url}{root}/namespaces/{NS}/{kind.plural}", headers=auth)
        assert (listed.status_code, listed.json()["kind"]) == (200, f"{kind.kind}List")
    unknown = requests.get(
        f"{api.url}/apis/kubeflow.org/v1/namespaces/{NS}/pytorchjobs", headers=auth
    )
    assert unknown.status_code == 404
    assert unknown.json()["message"] == "the server could not find the requested resource"
    named = f"{api.url}/apis/kubeflow.org/v1/namespaces/{NS}/tfjobs/train-x"
    posted = requests.post(named, json=tfjob(), headers=auth)
    assert (posted.status_code, posted.json()["message"]) == (
        405,
        'create is not supported on resources of kind "tfjobs.kubeflow.org"',
    )
