"""The gateway (workflows.kube.gateway): a step's request for a cluster name, through it
as HTTP_PROXY, reaches the loopback server its routes name; here the local API server,
a real server that shows what arrived (method, path, query, headers, body)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from workflows.kube.api import KubeApi
from workflows.kube.authorizer import Rbac
from workflows.kube.gateway import Gateway
from workflows.kube.objects import Objects

HOST = "kubernetes.default.svc"
CLAIMS = f"http://{HOST}/api/v1/namespaces/default/persistentvolumeclaims"
AUTH = {"Authorization": "Bearer t0ken"}
CLAIM = {
    "apiVersion": "v1",
    "kind": "PersistentVolumeClaim",
    "metadata": {"generateName": "work-"},
    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
}


@pytest.fixture
def api() -> Iterator[KubeApi]:
    with KubeApi(Objects(), {"t0ken": "admin"}, Rbac(masters=frozenset({"admin"})).authorize) as a:
        yield a


def test_a_post_and_a_query_reach_the_routed_server(api: KubeApi) -> None:
    with Gateway(lambda: {HOST: api.url}) as gateway:
        through = {"http": gateway.url}
        made = requests.post(CLAIMS, json=CLAIM, headers=AUTH, proxies=through, timeout=10)
        assert made.status_code == 201 and made.headers["Content-Type"] == "application/json"
        name = made.json()["metadata"]["name"]
        assert name.startswith("work-")
        selected = requests.get(
            CLAIMS,
            params={"fieldSelector": f"metadata.name={name}"},
            headers=AUTH,
            proxies=through,
            timeout=10,
        )
        assert [c["metadata"]["name"] for c in selected.json()["items"]] == [name]
        refused = requests.get(CLAIMS, proxies=through, timeout=10)  # no token: its 401 passes
        assert (refused.status_code, refused.json()["reason"]) == (401, "Unauthorized")
        assert gateway.hosts == [HOST, HOST, HOST]


def test_an_unknown_host_is_a_bad_gateway_until_it_is_routed(api: KubeApi) -> None:
    routes: dict[str, str] = {}
    with Gateway(lambda: routes) as gateway:
        through = {"http": gateway.url}
        unknown = requests.get(CLAIMS, headers=AUTH, proxies=through, timeout=10)
        assert unknown.status_code == 502
        assert (unknown.text, unknown.headers["Content-Type"]) == (
            f"no route to host {HOST}\n",
            "text/plain",
        )
        routes[HOST] = api.url  # read at each request
        assert requests.get(CLAIMS, headers=AUTH, proxies=through, timeout=10).status_code == 200
