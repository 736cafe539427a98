"""The Kubernetes Pod Security Standard "restricted" (v1.30), on any pod spec: workflow
step pods, TFJob replicas, a ClusterTrainingRuntime's nodes, InferenceService predictors,
Deployments and StatefulSets.

Each container must resolve (its own securityContext over the pod's) to runAsNonRoot true
and a non-zero runAsUser, allowPrivilegeEscalation false, capabilities that drop ALL (and
add at most NET_BIND_SERVICE), a RuntimeDefault or Localhost seccomp profile, and not run
privileged; the pod uses no host namespaces and no hostPath volume.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from workflows.checks import trainer
from workflows.checks.paths import as_map, as_maps

WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job")


def problems(
    pod: Mapping[str, Any], containers: Iterable[tuple[str, Mapping[str, Any]]], path: str
) -> list[str]:
    """What keeps a pod off a namespace that enforces "restricted": `pod` is the pod spec
    (its securityContext, host settings, volumes) at `path`, `containers` each container
    with the path to name it by."""
    out = []
    pod_context = as_map(pod.get("securityContext"))
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            out.append(f"{path}.{key}: must not be true (restricted)")
    out += [
        f"{path}.volumes[{v.get('name')}]: hostPath volumes are not allowed (restricted)"
        for v in as_maps(pod.get("volumes"))
        if "hostPath" in v
    ]
    for where, container in containers:
        context = {**pod_context, **as_map(container.get("securityContext"))}
        at = f"{where}.securityContext"
        if context.get("runAsNonRoot") is not True:
            out.append(f"{at}.runAsNonRoot: must be true (restricted)")
        if context.get("runAsUser") == 0:
            out.append(f"{at}.runAsUser: must not be 0 (restricted)")
        if as_map(container.get("securityContext")).get("allowPrivilegeEscalation") is not False:
            out.append(f"{at}.allowPrivilegeEscalation: must be false (restricted)")
        if as_map(container.get("securityContext")).get("privileged"):
            out.append(f"{at}.privileged: must not be true (restricted)")
        capabilities = as_map(as_map(container.get("securityContext")).get("capabilities"))
        if "ALL" not in (capabilities.get("drop") or []):
            out.append(f"{at}.capabilities.drop: must include ALL (restricted)")
        if set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}:
            out.append(f"{at}.capabilities.add: only NET_BIND_SERVICE (restricted)")
        seccomp = as_map(context.get("seccompProfile")).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            out.append(
                f"{at}.seccompProfile.type: must be RuntimeDefault or Localhost (restricted)"
            )
    return out


def _weakened(pod: Mapping[str, Any], path: str) -> list[str]:
    """What a pod spec patch sets that "restricted" forbids (unset fields are the base's)."""
    out = []
    contexts = [(f"{path}.securityContext", as_map(pod.get("securityContext")))] + [
        (f"{path}.{section}[{c.get('name')}].securityContext", as_map(c.get("securityContext")))
        for section in ("initContainers", "containers")
        for c in as_maps(pod.get(section))
    ]
    for at, context in contexts:
        if context.get("runAsNonRoot") is False or context.get("runAsUser") == 0:
            out.append(f"{at}: must not run as root (restricted)")
        if context.get("privileged") or context.get("allowPrivilegeEscalation") is True:
            out.append(f"{at}: must not be privileged or escalate (restricted)")
        if set(as_map(context.get("capabilities")).get("add") or []) - {"NET_BIND_SERVICE"}:
            out.append(f"{at}.capabilities.add: only NET_BIND_SERVICE (restricted)")
    return out


def pod_problems(pod: Any, path: str) -> list[str]:
    """`problems` of a plain PodSpec, with all its containers."""
    pod = as_map(pod)
    named = [
        (f"{path}.{section}[{c.get('name')}]", c)
        for section in ("initContainers", "containers")
        for c in as_maps(pod.get(section))
    ]
    return problems(pod, named, path)


def document_problems(doc: Mapping[str, Any]) -> list[str]:
    """`problems` of every pod spec in a Kubernetes object, a TFJob or an InferenceService."""
    kind, spec = doc.get("kind"), as_map(doc.get("spec"))
    if kind == "Pod":
        return pod_problems(spec, "spec")
    if kind in WORKLOADS:
        return pod_problems(as_map(spec.get("template")).get("spec"), "spec.template.spec")
    if kind == "CronJob":
        job = as_map(as_map(spec.get("jobTemplate")).get("spec"))
        return pod_problems(
            as_map(job.get("template")).get("spec"), "spec.jobTemplate.spec.template.spec"
        )
    if kind == "TFJob":
        return [
            line
            for rtype, replica in as_map(spec.get("tfReplicaSpecs")).items()
            for line in pod_problems(
                as_map(as_map(replica).get("template")).get("spec"),
                f"spec.tfReplicaSpecs.{rtype}.template.spec",
            )
        ]
    if kind == trainer.RUNTIME_KIND:
        return [line for path, pod in trainer.pod_specs(doc) for line in pod_problems(pod, path)]
    if kind == trainer.TRAINJOB_KIND:
        # A runtime patch is merged into the runtime's pods, checked with the runtime: what
        # it must not add is a host namespace, a hostPath volume, or a weaker context.
        return [
            line
            for path, pod in trainer.pod_specs(doc)
            for line in problems(pod, [], path) + _weakened(pod, path)
        ]
    if kind == "InferenceService":
        predictor, path = as_map(spec.get("predictor")), "spec.predictor"
        named = [
            (f"{path}.containers[{c.get('name')}]", c) for c in as_maps(predictor.get("containers"))
        ]
        if "model" in predictor:
            named.append((f"{path}.model", as_map(predictor["model"])))
        return problems(predictor, named, path)
    return []
