"""What the API server does to every object a stand-in creates (a generated name, the
run's namespace), and free loopback ports for what a stand-in serves."""

from __future__ import annotations

import secrets
import socket
from typing import Any

from workflows.checks.admission import GENERATED_SUFFIX

NAMESPACE = "default"  # the local runner's {{workflow.namespace}}
# Kubernetes' alphabet for generated name suffixes (no vowels, no look-alikes).
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def created(doc: dict[str, Any]) -> tuple[str, str]:
    """Name and namespace of an object as the API server creates it: a name made from
    `generateName` and 5 random characters, the default namespace."""
    meta = doc.setdefault("metadata", {})
    if "name" not in meta:
        suffix = "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(GENERATED_SUFFIX))
        meta["name"] = f"{meta.pop('generateName', '')}{suffix}"
    meta.setdefault("namespace", NAMESPACE)
    return meta["name"], meta["namespace"]


def free_ports(count: int) -> list[int]:
    """`count` distinct free loopback ports (all held open at once while choosing)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()
