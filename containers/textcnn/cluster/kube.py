"""The Kubernetes API calls of the steps: reading a custom resource, and patching one."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, cast


def custom_object_getter(
    group: str,
    version: str,
    plural: str,
    namespace: str,
    name: str,
    *,
    missing: dict[str, Any] | None = None,
) -> Callable[[], dict[str, Any]]:
    """A function returning the object's current state; with `missing`, that is returned
    while the object does not exist (yet), instead of raising."""
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException

    try:
        config.load_incluster_config()
    except config.ConfigException:
        # Outside a pod: the current kubeconfig context (KUBECONFIG read now, not at import).
        config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))
    api = client.CustomObjectsApi()

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
            raise

    return get


def custom_object_patcher(
    group: str, version: str, plural: str, namespace: str, name: str
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A function applying a JSON merge patch to the object; returns the patched object."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))
    api = client.CustomObjectsApi()

    def patch(body: dict[str, Any]) -> dict[str, Any]:
        return cast(
            dict[str, Any],
            api.patch_namespaced_custom_object(group, version, namespace, plural, name, body),
        )

    return patch
