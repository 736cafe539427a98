"""Resource templates, carried out as Argo's executor does in the task's pod
(argo-workflows `workflow/executor/resource.go`): the manifest goes to the Kubernetes API
with the workflow's service account, as `kubectl ACTION -f manifest -o json` sends it;
each output parameter's `jsonPath` is read from the object as `kubectl get SELFLINK -o
jsonpath=...` reads it (`SaveResourceParameters`). The controller adds the workflow as the
controller owner when `setOwnerReference` is set (`workflow/controller/operator.go`
`executeResource`).

Actions: `create`; `apply` (client-side, as kubectl: get, then create, or a JSON merge
patch: `merge_patch_of`); `delete`; `get`. Conditions, flags, a merge strategy and
`manifestFrom` are not run here: a template with one fails the plan."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import requests
import yaml

from workflows.errors import WorkflowError

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
ACTIONS = ("create", "apply", "delete", "get")
# Resource fields whose meaning the local runner does not reproduce; ignoring them misleads.
UNSUPPORTED = ("successCondition", "failureCondition", "flags", "mergeStrategy", "manifestFrom")


@dataclass(frozen=True)
class ClusterAccess:
    """The Kubernetes API a run's pods reach: its URL, the workflow service account's
    token, and the environment a container gets to reach it the same way (KUBECONFIG)."""

    url: str
    token: str = field(repr=False)
    env: Mapping[str, str] = field(repr=False)


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
    """The object's path (its collection's, without `name`), each part quoted: a name
    with a `/` or `?` is a name, never more of the path."""
    api_version = str(doc.get("apiVersion", ""))
    group, _, version = api_version.rpartition("/")
    parts = ["apis", group, version] if group else ["api", version]
    parts += ["namespaces", namespace, plural(str(doc.get("kind", "")))]
    return "/" + "/".join(quote(p, safe="") for p in [*parts, *([name] if name else [])])


class Client:
    def __init__(self, cluster: ClusterAccess) -> None:
        self.cluster = cluster
        self.session = requests.Session()
        self.session.trust_env = False  # the API is on loopback: never through a proxy

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        patch: bool = False,
        missing_ok: bool = False,
    ) -> Any:
        headers = {"Authorization": f"Bearer {self.cluster.token}", "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = (
                "application/merge-patch+json" if patch else "application/json"
            )
        answer = self.session.request(
            method,
            f"{self.cluster.url}{path}",
            data=None if body is None else json.dumps(body),
            headers=headers,
            timeout=30,
        )
        if answer.status_code == 404 and missing_ok:
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
    for field_name in UNSUPPORTED:
        if field_name in resource:
            raise WorkflowError(f"{where}: resource {field_name}: not run by the local runner")


def carry_out(
    client: Client, resource: Mapping[str, Any], owner: Mapping[str, Any], namespace: str
) -> dict[str, Any] | None:
    """Send the manifest; return the object as the API answered (None for delete)."""
    try:
        doc = yaml.safe_load(str(resource.get("manifest", "")))
    except yaml.YAMLError as e:
        raise WorkflowError(f"the resource manifest is no YAML: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("metadata", {}), dict):
        raise WorkflowError("the resource manifest is not one object")
    meta = doc.setdefault("metadata", {})
    namespace = str(meta.get("namespace") or namespace)
    if resource.get("setOwnerReference"):
        meta["ownerReferences"] = [*meta.get("ownerReferences", []), dict(owner)]
    action, name = resource["action"], str(meta.get("name", ""))
    one = self_link(doc, namespace, name)
    if action == "create":
        return client.call("POST", self_link(doc, namespace), doc)
    if action == "delete":  # Argo's executor passes --ignore-not-found
        client.call("DELETE", one, missing_ok=True)
        return None
    current = client.call("GET", one, missing_ok=action == "apply")
    if action == "get":
        return current
    applied = merge_patch_of(doc, current)
    if current is None:
        return client.call("POST", self_link(doc, namespace), applied)
    return client.call("PATCH", one, applied, patch=True)


def merge_patch_of(doc: dict[str, Any], current: Mapping[str, Any] | None) -> dict[str, Any]:
    """What `kubectl apply` sends for a custom resource (client-side apply,
    `k8s.io/kubectl/pkg/cmd/apply/patcher.go`, a JSON merge patch for types without a
    strategic schema): the manifest, its last-applied annotation, and a null for each
    field the last apply set that the manifest no longer has, so it goes."""
    last: Any = {}
    annotations = ((current or {}).get("metadata") or {}).get("annotations") or {}
    with contextlib.suppress(ValueError, TypeError):
        last = json.loads(annotations.get(LAST_APPLIED, "{}"))
    meta = doc.get("metadata", {})
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
    return _deletions(last, applied) if isinstance(last, dict) else applied


def _deletions(last: Mapping[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    out = dict(new)
    for key, old in last.items():
        if key not in new:
            out[key] = None
        elif isinstance(old, dict) and isinstance(new[key], dict):
            out[key] = _deletions(old, new[key])
    return out


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
