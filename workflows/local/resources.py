"""Resource templates, carried out as Argo's executor does in the task's pod
(argo-workflows `workflow/executor/resource.go`): the manifest goes to the Kubernetes API
with the workflow's service account, as `kubectl ACTION -f manifest -o json` sends it;
each output parameter's `jsonPath` is read from the object as `kubectl get SELFLINK -o
jsonpath=...` reads it (`SaveResourceParameters`). The controller adds the workflow as the
controller owner when `setOwnerReference` is set (`workflow/controller/operator.go`
`executeResource`).

Actions: `create`; `apply` (client-side, as kubectl: get, then create, or a JSON merge
patch of the manifest); `delete`; `get`. Conditions (`successCondition`,
`failureCondition`) are not run here: a template with one fails the plan."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests
import yaml

from workflows.errors import WorkflowError

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
ACTIONS = ("create", "apply", "delete", "get")


@dataclass(frozen=True)
class ClusterAccess:
    """The Kubernetes API a run's pods reach: its URL, the workflow service account's
    token, and the environment a container gets to reach it the same way (KUBECONFIG)."""

    url: str
    token: str
    env: Mapping[str, str]


class ApiError(Exception):
    """The API refused: its Status message, as kubectl prints it."""


def plural(kind: str) -> str:
    """The resource of a kind, as Argo's `inferObjectSelfLink` guesses it (gengo's
    `NewAllLowercasePluralNamer`): lower case, then English plural endings."""
    name = kind.lower()
    if name.endswith(("s", "x", "z", "ch", "sh")):
        return name + "es"
    if name.endswith("y") and name[-2:-1] not in "aeiou":
        return name[:-1] + "ies"
    return name + "s"


def self_link(doc: Mapping[str, Any], namespace: str, name: str = "") -> str:
    api_version = str(doc.get("apiVersion", ""))
    prefix = "apis" if "/" in api_version else "api"
    path = f"/{prefix}/{api_version}/namespaces/{namespace}/{plural(str(doc.get('kind', '')))}"
    return f"{path}/{name}" if name else path


class Client:
    def __init__(self, cluster: ClusterAccess) -> None:
        self.cluster = cluster

    def call(self, method: str, path: str, body: Any = None, patch: bool = False) -> Any:
        headers = {"Authorization": f"Bearer {self.cluster.token}", "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = (
                "application/merge-patch+json" if patch else "application/json"
            )
        answer = requests.request(
            method,
            f"{self.cluster.url}{path}",
            data=None if body is None else json.dumps(body),
            headers=headers,
            timeout=30,
        )
        if answer.status_code == 404 and method == "GET":
            return None
        if not answer.ok:
            try:
                message = answer.json().get("message") or answer.text
            except ValueError:
                message = answer.text
            raise ApiError(f"Error from server ({answer.reason}): {message}")
        return answer.json()


def check(template: Mapping[str, Any], where: str) -> None:
    resource = template["resource"]
    if resource.get("action") not in ACTIONS:
        raise WorkflowError(
            f"{where}: resource action {resource.get('action')!r}: the local runner runs "
            f"{', '.join(ACTIONS)}"
        )
    for condition in ("successCondition", "failureCondition"):
        if condition in resource:
            raise WorkflowError(f"{where}: the local runner does not evaluate {condition}")


def carry_out(
    client: Client, resource: Mapping[str, Any], owner: Mapping[str, Any], namespace: str
) -> dict[str, Any] | None:
    """Send the manifest; return the object as the API answered (None for delete)."""
    doc = yaml.safe_load(str(resource.get("manifest", "")))
    if not isinstance(doc, dict):
        raise WorkflowError("the resource manifest is not one object")
    meta = doc.setdefault("metadata", {})
    namespace = str(meta.get("namespace") or namespace)
    if resource.get("setOwnerReference"):
        meta["ownerReferences"] = [*meta.get("ownerReferences", []), dict(owner)]
    action, name = resource["action"], str(meta.get("name", ""))
    if action == "create":
        return client.call("POST", self_link(doc, namespace), doc)
    if action == "get":
        return client.call("GET", self_link(doc, namespace, name))
    if action == "delete":
        client.call("DELETE", self_link(doc, namespace, name))
        return None
    applied = {
        **doc,
        "metadata": {
            **meta,
            "annotations": {
                **meta.get("annotations", {}),
                LAST_APPLIED: json.dumps(doc, sort_keys=True),
            },
        },
    }
    if client.call("GET", self_link(doc, namespace, name)) is None:
        return client.call("POST", self_link(doc, namespace), applied)
    return client.call("PATCH", self_link(doc, namespace, name), applied, patch=True)


def json_path(doc: Mapping[str, Any], path: str) -> str:
    """kubectl's `-o jsonpath` for the simple form `{.a.b.c}`."""
    inner = path.strip()
    if not (inner.startswith("{.") and inner.endswith("}")):
        raise WorkflowError(f"jsonPath {path!r}: the local runner reads {{.a.b}} paths only")
    value: Any = doc
    for part in inner[2:-1].split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise WorkflowError(f"jsonPath {path!r}: no such field in the object")
        value = value[part]
    return value if isinstance(value, str) else json.dumps(value)
