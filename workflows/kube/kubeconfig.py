"""How a local process finds the local API server: a kubeconfig file (the server, a
bearer token, a context with the namespace), and the environment that points at it.

The file is JSON, which is YAML, so `kubernetes.config.load_kube_config` and kubectl both
read it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

CONTEXT = "local"
LOOPBACK = "127.0.0.1,localhost"


def write_kubeconfig(path: Path, server: str, token: str, namespace: str, user: str) -> Path:
    """Write a kubeconfig whose current context is `user` (by `token`) on `server` in
    `namespace`. It holds a secret: only its owner may read it."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": {"server": server}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [
            {"name": CONTEXT, "context": {"cluster": CONTEXT, "user": user, "namespace": namespace}}
        ],
        "current-context": CONTEXT,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(json.dumps(config, indent=2) + "\n")
    return path


def step_environment(kubeconfig: Path, proxy: str | None = None) -> dict[str, str]:
    """The variables a step process needs to reach the API server outside a pod: its
    kubeconfig; with `proxy` (the gateway's URL), cluster names through the gateway. The
    API server and other loopback addresses never go through a proxy, whichever HTTP_PROXY
    the process inherits."""
    env = {"KUBECONFIG": str(kubeconfig)}
    if proxy:
        # gRPC (ML Metadata's client) would take http_proxy too, and the gateway tunnels
        # nothing: grpc_proxy, which gRPC reads first, keeps what it would have used
        # before (grpc `http_proxy_mapper.cc` GetHttpProxyServer: "" means no proxy).
        grpc = os.environ.get("grpc_proxy", os.environ.get("https_proxy", ""))  # noqa: SIM112
        env |= {"HTTP_PROXY": proxy, "http_proxy": proxy, "grpc_proxy": grpc}
    return env | _no_proxy(os.environ)


def _no_proxy(inherited: Mapping[str, str]) -> dict[str, str]:
    # Keep what the environment already excludes, and add loopback; both spellings, as
    # `requests` reads either, and urllib3 reads the lower-case one first.
    existing = inherited.get("no_proxy") or inherited.get("NO_PROXY") or ""
    value = ",".join(x for x in (existing, LOOPBACK) if x)
    return {"NO_PROXY": value, "no_proxy": value}
