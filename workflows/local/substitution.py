"""Argo's `{{...}}` and Kubernetes' `$(VAR)` substitution, and where a pod's paths, artifact
keys and volume claims land on this machine."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workflows.errors import WorkflowError


def substitute(value: Any, scope: Mapping[str, str], where: str) -> Any:
    """Replace every `{{name}}` in strings inside `value`; unknown names raise WorkflowError."""
    if isinstance(value, dict):
        return {k: substitute(v, scope, where) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, scope, where) for v in value]
    if not isinstance(value, str):
        return value
    out, pos = [], 0
    while (start := value.find("{{", pos)) >= 0:
        end = value.find("}}", start)
        if end < 0:
            break
        name = value[start + 2 : end].strip()
        if name not in scope:
            raise WorkflowError(f"{where}: cannot resolve {{{{{name}}}}} in {value!r}")
        out += [value[pos:start], scope[name]]
        pos = end + 2
    return "".join(out) + value[pos:]


_ENV_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand_env_refs(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion in command and args: only variables the container
    declares are expanded, `$$` escapes, and an unknown reference stays as written."""

    def repl(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _ENV_REF.sub(repl, text)


def artifact_key(artifact: Mapping[str, Any]) -> str | None:
    """The key of a key-only artifact (`gcs: {key}`, `s3: {key}`, ...), if it has one."""
    for spec in artifact.values():
        if isinstance(spec, dict) and "key" in spec:
            return str(spec["key"])
    return None


def check_key(key: str, where: str) -> str:
    if not key or key.startswith("/") or ".." in key.split("/"):
        raise WorkflowError(f"{where}: artifact key {key!r} must be a relative path without '..'")
    return key


def pod_roots(template: Mapping[str, Any]) -> set[str]:
    """The pod's private folders: the first two levels of every declared pod path."""
    paths = [
        a["path"]
        for section in ("inputs", "outputs")
        for a in template.get(section, {}).get("artifacts", [])
        if "path" in a
    ]
    paths += [
        p["valueFrom"]["path"]
        for p in template.get("outputs", {}).get("parameters", [])
        if "path" in p.get("valueFrom", {})
    ]
    return {"/" + "/".join(Path(p).parts[1:3]) for p in paths if p.startswith("/")}


def remap_literal(text: str, roots: set[str], pod_dir: Path) -> str:
    """A literal pod path in an argument (`/p`, or `--opt=/p`) becomes its local path.

    Templates pass folders such as `--outputs /tmp/outputs/params` literally, so those
    must move under the task's pod folder just like `{{outputs.parameters.x.path}}` does.
    """
    prefix, eq, path = text.partition("=") if text.startswith("-") else ("", "", text)
    if any(path == r or path.startswith(r + "/") for r in roots):
        return f"{prefix}{eq}{pod_dir / path.lstrip('/')}"
    return text


def claim_dir(output_dir: Path, claim_name: str) -> Path:
    """The shared folder of a persistent volume claim in a run folder."""
    if not claim_name or "/" in claim_name or claim_name in (".", ".."):
        raise WorkflowError(f"persistent volume claim name {claim_name!r} is not a valid name")
    return output_dir / "volumes" / claim_name


def remap_path(text: str, mounts: Mapping[str, Path]) -> str:
    """A pod path in an argument (`/p`, or `--opt=/p`) under a mount path becomes the same
    path under the mount's local folder; other text is returned as it is."""
    prefix, eq, path = text.partition("=") if text.startswith("-") else ("", "", text)
    for mount in sorted(mounts, key=len, reverse=True):
        base = mount.rstrip("/")
        if path == base or path.startswith(base + "/"):
            return f"{prefix}{eq}{mounts[mount]}{path[len(base) :]}"
    return text
