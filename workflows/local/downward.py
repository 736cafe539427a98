"""The downward API's container resources as environment values, as the kubelet sets them.

Kubernetes' pkg/api/v1/resource/helpers.go, `ExtractContainerResourceValue` and
`convertResourceCPUToString`: the container's CPU quantity over the divisor, rounded up.
A container without a CPU request gets 0 for `requests.cpu` (its limit where it has one,
as the API server defaults requests to limits); without a CPU limit, `limits.cpu` is the
node's allocatable CPU: this machine's cores. Only CPU is given; anything else is refused,
never left unset.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from typing import Any

from workflows.errors import WorkflowError

_CPU = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(m?)")


def millicores(quantity: str) -> float:
    """A CPU quantity ("2", "1.5", "500m") in millicores."""
    m = _CPU.fullmatch(quantity.strip())
    if m is None:
        raise WorkflowError(f"{quantity!r} is not a CPU quantity the local runner reads")
    return float(m.group(1)) * (1 if m.group(2) else 1000)


def resource_env(container: Mapping[str, Any], where: str) -> dict[str, str]:
    """The values of the container's env entries that take `valueFrom.resourceFieldRef`."""
    resources = container.get("resources") or {}
    out = {}
    for e in container.get("env") or []:
        ref = (e.get("valueFrom") or {}).get("resourceFieldRef")
        if ref is None:
            continue
        kind, _, name = str(ref.get("resource", "")).partition(".")
        if name != "cpu" or kind not in ("requests", "limits"):
            raise WorkflowError(
                f"{where}: env {e.get('name')!r} takes resourceFieldRef {ref.get('resource')!r}"
                "; the local runner gives requests.cpu and limits.cpu only"
            )
        limit = (resources.get("limits") or {}).get("cpu")
        value = (resources.get("requests") or {}).get("cpu", limit) if kind == "requests" else limit
        if value is None:
            value = "0" if kind == "requests" else str(len(os.sched_getaffinity(0)))
        divisor = millicores(str(ref.get("divisor", "1")))
        out[str(e["name"])] = str(math.ceil(millicores(str(value)) / divisor))
    return out
