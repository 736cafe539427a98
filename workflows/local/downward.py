"""The downward API as environment values, as the kubelet sets them: the container's
resources (`resource_env`) and the pod's own fields (`field_env`).

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


_FIELD = re.compile(r"metadata\.(labels|annotations)\['([^']+)'\]")


def field_env(
    container: Mapping[str, Any], metadata: Mapping[str, Any], where: str
) -> dict[str, str]:
    """The values of the container's env entries that take `valueFrom.fieldRef`, from the
    pod's `metadata` (pkg/fieldpath `ExtractFieldPathAsString`: metadata.name,
    metadata.namespace, metadata.labels['KEY'], metadata.annotations['KEY'], a missing
    key giving ""). Other fields (the node's, the pod's IP) are refused."""
    out = {}
    for e in container.get("env") or []:
        ref = (e.get("valueFrom") or {}).get("fieldRef")
        if ref is None:
            continue
        path = str(ref.get("fieldPath", ""))
        if path in ("metadata.name", "metadata.namespace"):
            out[str(e["name"])] = str(metadata.get(path.partition(".")[2], ""))
        elif m := _FIELD.fullmatch(path):
            out[str(e["name"])] = str((metadata.get(m.group(1)) or {}).get(m.group(2), ""))
        else:
            raise WorkflowError(
                f"{where}: env {e.get('name')!r} takes fieldRef {path!r}; the local runner "
                "gives metadata.name, metadata.namespace, labels and annotations only"
            )
    return out
