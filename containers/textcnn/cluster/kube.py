"""The Kubernetes API calls of the steps: reading an object of a group's API, patching one,
and the set of calls the deploy steps make on one InferenceService (`Endpoint`)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from textcnn.cluster import rollout
from textcnn.errors import FinalError

Getter = Callable[[], dict[str, Any]]
# The API's answers that running again cannot change: no credentials, or no right (the
# Role lacks the verb): the step fails once, with the API's own message.
REFUSED = (401, 403)


def _refused(e: Any) -> FinalError:
    try:
        message = json.loads(e.body)["message"]
    except (TypeError, ValueError, KeyError):
        message = f"{e.status} {e.reason}"
    return FinalError(f"the Kubernetes API refused: {message}")


Patcher = Callable[[dict[str, Any]], Any]


def _api() -> Any:
    """A client of the API server: the pod's service account, else the kubeconfig (read at
    each call, so a test may point KUBECONFIG elsewhere)."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        # Outside a pod: the current kubeconfig context (KUBECONFIG read now, not at import).
        config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))
    return client.CustomObjectsApi()


def custom_object_getter(
    group: str,
    version: str,
    plural: str,
    namespace: str,
    name: str,
    *,
    missing: dict[str, Any] | None = None,
    api: Any = None,
) -> Getter:
    """A function returning the object's current state; with `missing`, that is returned
    while the object does not exist (yet), instead of raising. Any namespaced object of a
    named API group reads this way (`apps/v1` Deployments too). `api`: a client to share."""
    from kubernetes.client.rest import ApiException

    api = api or _api()

    def get() -> dict[str, Any]:
        try:
            # The client types its answer as `object`; it is the object's JSON as a dict.
            return cast(
                dict[str, Any],
                api.get_namespaced_custom_object(group, version, namespace, plural, name),
            )
        except ApiException as e:
            if e.status == 404 and missing is not None:
                return missing
            if e.status in REFUSED:
                raise _refused(e) from None
            raise

    return get


def custom_object_patcher(
    group: str, version: str, plural: str, namespace: str, name: str, *, api: Any = None
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A function applying a JSON merge patch to the object; returns the patched object."""
    from kubernetes.client.rest import ApiException

    api = api or _api()

    def patch(body: dict[str, Any]) -> dict[str, Any]:
        try:
            return cast(
                dict[str, Any],
                api.patch_namespaced_custom_object(group, version, namespace, plural, name, body),
            )
        except ApiException as e:
            if e.status in REFUSED:
                raise _refused(e) from None
            raise

    return patch


@dataclass(frozen=True)
class Endpoint:
    """What the deploy steps call on the cluster for one InferenceService.

    `get` reads it ({} while it does not exist), `patch` merge-patches it, `predictor(mode)`
    reads the object that runs its predictor in that deployment mode (the Deployment or
    the Knative Service; {} while there is none)."""

    get: Getter
    patch: Patcher
    predictor: Callable[[str], Mapping[str, Any]]


def endpoint(namespace: str, name: str) -> Endpoint:
    """The InferenceService NAME in NAMESPACE through the API server.

    Each call names its resource literally: workflows.checks.rbac derives the Role from
    them."""
    api, names = _api(), rollout.predictor_names(name)
    by_mode = {
        rollout.RAW: [
            custom_object_getter("apps", "v1", "deployments", namespace, n, missing={}, api=api)
            for n in names
        ],
        rollout.SERVERLESS: [
            custom_object_getter(
                "serving.knative.dev", "v1", "services", namespace, n, missing={}, api=api
            )
            for n in names
        ],
    }

    def predictor(mode: str) -> dict[str, Any]:
        # The first name that exists, in getPredictorName's order.
        return next((obj for obj in (get() for get in by_mode[mode]) if obj), {})

    return Endpoint(
        get=custom_object_getter(
            "serving.kserve.io",
            "v1beta1",
            "inferenceservices",
            namespace,
            name,
            missing={},
            api=api,
        ),
        patch=custom_object_patcher(
            "serving.kserve.io", "v1beta1", "inferenceservices", namespace, name, api=api
        ),
        predictor=predictor,
    )
