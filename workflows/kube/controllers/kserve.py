"""What KServe (v0.15.2) writes for an InferenceService: the predictor's Deployment or
Knative Service spec, and the InferenceService's status from theirs. Pure functions of
the objects; the controller (inference_services.py) stores what they return.

Specs:
- RawDeployment (reconcilers/deployment/deployment_reconciler.go `createRawDeployment`,
  `setDefaultDeploymentSpec`): one replica (minReplicas), RollingUpdate 25%/25%,
  progressDeadlineSeconds 600 (a local run may ask for less: a model that cannot load
  fails only that long after the rollout's last progress).
- Serverless (reconcilers/knative/ksvc_reconciler.go `createKnativeService`): all traffic
  to the latest revision, or with canaryTrafficPercent and a revision rolled out before,
  that share to the latest (tag `latest` with tag routing) and the rest to the rolled-out
  one (tag `prev`).
- The pod template carries the InferenceService's annotations, the model's URI
  (components/predictor.go `addStorageInitializerAnnotations`) and the batcher's limits
  (component.go `addBatcherAnnotations`).

Status (pkg/apis/serving/v1beta1/inference_service_status.go; Ready depends on
PredictorReady and IngressReady, conditions.py):
- `PropagateRawStatus`: PredictorReady from the Deployment's Available, the Deployment's
  observedGeneration; the ingress (kube_ingress_reconciler.go, httproute_reconciler.go
  `createRawURL`, `getRawServiceHost`) sets the external url and the predictor Service's
  cluster-local address at once.
- `PropagateStatus`: the Knative Service's revisions, traffic and conditions, the rolled
  out revision tracked; the ingress (ingress_reconciler.go) sets the url (the
  predictor's without `-predictor`) and the address `<isvc>.<ns>.svc.cluster.local` once
  the predictor has a url; RoutesReady and LatestDeploymentReady across components
  (`PropagateCrossComponentStatus`).
- `PropagateModelStatus`: Loaded while the service is ready, else the newest pod's state.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import workflows.kube.controllers.addresses as addresses
from workflows.kube.controllers.conditions import READY, ConditionSet, get
from workflows.kube.controllers.pods import BATCHER, BATCHER_LIMITS, SOURCE_URI, Pod, template_uri

RAW, SERVERLESS = "RawDeployment", "Serverless"
DEPLOYMENT_MODE = "serving.kserve.io/deploymentMode"
TAG_ROUTING = "serving.kserve.io/enable-tag-routing"
CANARY_TAG, PREVIOUS_TAG = "latest", "prev"
ISVC_CONDITIONS = ConditionSet("PredictorReady", "IngressReady")

Status = dict[str, Any]


def deployment_mode(isvc: Mapping[str, Any]) -> str:
    """`GetDeploymentMode`: the mode in status once set, else the annotation, else the
    install's default, Serverless."""
    status = isvc.get("status") or {}
    annotations = (isvc.get("metadata") or {}).get("annotations") or {}
    mode = status.get("deploymentMode") or annotations.get(DEPLOYMENT_MODE)
    return mode if mode in (RAW, SERVERLESS) else SERVERLESS


def predictor_name(isvc: Mapping[str, Any]) -> str:
    return f"{isvc['metadata']['name']}-predictor"  # constants.PredictorServiceName


def storage_uri(isvc: Mapping[str, Any]) -> str | None:
    """The model's `storageUri`, else the `kserve-container`'s STORAGE_URI (a custom
    predictor: predictor_custom.go `GetStorageUri`)."""
    predictor = (isvc.get("spec") or {}).get("predictor") or {}
    if "model" in predictor:
        return predictor["model"].get("storageUri")
    containers = [
        c for c in predictor.get("containers") or [] if c.get("name") == "kserve-container"
    ]
    return template_uri({"spec": {"containers": containers}})


def pod_template(isvc: Mapping[str, Any]) -> dict[str, Any]:
    predictor = (isvc.get("spec") or {}).get("predictor") or {}
    annotations = dict((isvc.get("metadata") or {}).get("annotations") or {})
    uri = storage_uri(isvc)
    if uri:
        annotations[SOURCE_URI] = uri
    batcher = predictor.get("batcher")
    if batcher is not None:
        annotations[BATCHER] = "true"
        annotations.update({a: str(batcher[k]) for k, a in BATCHER_LIMITS.items() if k in batcher})
    containers = predictor.get("containers") or [{"name": "kserve-container"}]
    return {"metadata": {"annotations": annotations}, "spec": {"containers": containers}}


def deployment_spec(isvc: Mapping[str, Any], progress_deadline_s: int = 600) -> dict[str, Any]:
    """`setDefaultDeploymentSpec`'s Deployment; KServe's progressDeadlineSeconds is 600."""
    predictor = (isvc.get("spec") or {}).get("predictor") or {}
    return {
        "replicas": int(predictor.get("minReplicas", 1) or 1),
        "progressDeadlineSeconds": progress_deadline_s,
        "revisionHistoryLimit": 10,
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
        },
        "template": pod_template(isvc),
    }


def knative_spec(isvc: Mapping[str, Any]) -> dict[str, Any]:
    """`createKnativeService`: the template and the traffic, from the canary percentage
    and the revision rolled out before (the InferenceService's own status)."""
    spec = (isvc.get("spec") or {}).get("predictor") or {}
    annotations = (isvc.get("metadata") or {}).get("annotations") or {}
    predictor = ((isvc.get("status") or {}).get("components") or {}).get("predictor") or {}
    rolled_out = predictor.get("latestRolledoutRevision")
    percent = spec.get("canaryTrafficPercent")
    latest: dict[str, Any] = {"latestRevision": True, "percent": 100}
    if annotations.get(TAG_ROUTING) == "true":
        latest["tag"] = CANARY_TAG
    traffic = [latest]
    if percent is not None and rolled_out:
        latest["percent"] = int(percent)
        if int(percent) < 100:
            previous = {"revisionName": rolled_out, "latestRevision": False, "tag": PREVIOUS_TAG}
            traffic.append({**previous, "percent": 100 - int(percent)})
    return {"template": pod_template(isvc), "traffic": traffic}


def _mark(conditions: list[dict[str, Any]], kind: str, found: Mapping[str, Any]) -> list:
    """`SetCondition(kind, found)`: MarkTrue drops reason and message; nothing if unset."""
    if not found:
        return conditions
    status = str(found.get("status", "Unknown"))
    if status == "True":
        return ISVC_CONDITIONS.mark(conditions, kind, "True")
    return ISVC_CONDITIONS.mark(
        conditions, kind, status, found.get("reason", ""), found.get("message", "")
    )


def raw_status(
    isvc: Mapping[str, Any], deployment: Mapping[str, Any], pods: Sequence[Pod]
) -> Status:
    """The InferenceService's status over its Deployment; `pods` newest first."""
    status = copy.deepcopy(dict(isvc.get("status") or {}))
    meta, dep_status = isvc["metadata"], deployment.get("status") or {}
    available = get(dep_status.get("conditions") or [], "Available")
    conditions = _mark(status.get("conditions") or [], "PredictorReady", available)
    predictor = status.setdefault("components", {}).setdefault("predictor", {})
    if available.get("status") == "True":
        predictor["url"] = addresses.url(
            addresses.external(predictor_name(isvc), meta["namespace"])
        )
    status["observedGeneration"] = dep_status.get("observedGeneration", 0)
    conditions = ISVC_CONDITIONS.mark(conditions, "Stopped", "False")
    status["conditions"] = conditions
    status["modelStatus"] = model_status(status, pods, ready=_ready(conditions), loaded=True)
    status["url"] = addresses.url(addresses.external(meta["name"], meta["namespace"]))
    host = addresses.cluster_local(predictor_name(isvc), meta["namespace"])
    status["address"] = {"url": addresses.url(host)}
    status["conditions"] = ISVC_CONDITIONS.mark(status["conditions"], "IngressReady", "True")
    status["deploymentMode"] = RAW
    return status


def serverless_status(
    isvc: Mapping[str, Any], ksvc: Mapping[str, Any], pods: Sequence[Pod]
) -> Status:
    """The InferenceService's status over its Knative Service; `pods`: the latest created
    revision's."""
    status = copy.deepcopy(dict(isvc.get("status") or {}))
    meta, ks = isvc["metadata"], ksvc.get("status") or {}
    predictor = status.setdefault("components", {}).setdefault("predictor", {})
    _track_rollout(predictor, ks)
    kconditions = ks.get("conditions") or []
    if get(kconditions, READY).get("status") == "True":
        predictor.update(url=ks["url"], address=ks["address"])
    conditions = status.get("conditions") or []
    for kind, theirs in (
        ("PredictorReady", READY),
        ("PredictorRouteReady", "RoutesReady"),
        ("PredictorConfigurationReady", "ConfigurationsReady"),
    ):
        conditions = _mark(conditions, kind, get(kconditions, theirs))
    predictor["traffic"] = ks.get("traffic") or []
    status["observedGeneration"] = ks.get("observedGeneration", 0)
    conditions = ISVC_CONDITIONS.mark(conditions, "Stopped", "False")
    for total, one in (
        ("RoutesReady", "PredictorRouteReady"),
        ("LatestDeploymentReady", "PredictorConfigurationReady"),
    ):
        conditions = _cross(conditions, total, one)
    failed = any(c.get("status") == "False" for c in kconditions)
    loaded = predictor.get("latestCreatedRevision") == predictor.get("latestReadyRevision")
    status["modelStatus"] = model_status(
        {**status, "conditions": conditions},
        pods,
        ready=_ready(conditions),
        loaded=loaded,
        failed=failed,
    )
    if predictor.get("url"):  # the ingress, once the predictor has a url
        host = str(predictor["url"]).removeprefix("http://").replace("-predictor", "", 1)
        status["url"] = addresses.url(host)
        status["address"] = {
            "url": addresses.url(addresses.cluster_local(meta["name"], meta["namespace"]))
        }
        conditions = ISVC_CONDITIONS.mark(conditions, "IngressReady", "True")
    status["conditions"] = conditions
    status["deploymentMode"] = SERVERLESS
    return status


def _track_rollout(predictor: dict[str, Any], ks: Mapping[str, Any]) -> None:
    """`PropagateStatus`'s revisions: the latest ready one becomes the rolled-out one when
    it takes 100% as the latest revision; one split with itself is rolled back to the
    previous rolled-out revision."""
    ready, created = ks.get("latestReadyRevisionName", ""), ks.get("latestCreatedRevisionName")
    predictor["latestCreatedRevision"] = created
    traffic = ks.get("traffic") or []
    per_revision: dict[str, int] = {}
    for t in traffic:
        per_revision[t["revisionName"]] = per_revision.get(t["revisionName"], 0) + t.get(
            "percent", 0
        )
    for t in traffic:
        if t["revisionName"] != ready or not t.get("latestRevision"):
            continue
        if predictor.get("latestRolledoutRevision") != ready:
            if t.get("percent") == 100:
                previous = predictor.get("latestRolledoutRevision")
                predictor.pop("previousRolledoutRevision", None)
                if previous:
                    predictor["previousRolledoutRevision"] = previous
                predictor["latestRolledoutRevision"] = ready
        elif (
            ready == created
            and t.get("percent", 0) < 100
            and per_revision.get(t["revisionName"]) == 100
            and predictor.get("previousRolledoutRevision")
        ):
            predictor["latestRolledoutRevision"] = predictor["previousRolledoutRevision"]
    if ready:
        predictor["latestReadyRevision"] = ready


def _cross(conditions: list[dict[str, Any]], total: str, one: str) -> list[dict[str, Any]]:
    """`PropagateCrossComponentStatus` with the predictor alone."""
    status = get(conditions, one).get("status") or "Unknown"
    if status == "True":
        return ISVC_CONDITIONS.mark(conditions, total, "True")
    return ISVC_CONDITIONS.mark(conditions, total, status, f"{one} not ready")


def _ready(conditions: Sequence[Mapping[str, Any]]) -> bool:
    return get(conditions, READY).get("status") == "True"


def model_status(
    status: Mapping[str, Any], pods: Sequence[Pod], ready: bool, loaded: bool, failed: bool = False
) -> dict[str, Any]:
    """`PropagateModelStatus` then `UpdateModelRevisionStates`: `pods` newest first;
    `loaded`: Serverless's latest created revision is the ready one (always, Raw);
    `failed`: a Knative condition is False."""
    info = None
    if not pods:
        state = "FailedToLoad" if failed else "Pending"
    elif pods[0].error:  # the storage initializer terminated with an error
        state = "FailedToLoad"
        info = {"reason": "ModelLoadFailed", "message": pods[0].error, "exitCode": 1}
    elif ready and loaded:
        state = "Loaded"
    elif pods[0].exited:
        state = "FailedToLoad"
        info = {
            "reason": "ModelLoadFailed",
            "message": pods[0].failure(),
            "exitCode": pods[0].exit_code(),
        }
    else:
        state = "Pending"
    out = copy.deepcopy(dict(status.get("modelStatus") or {}))
    out.setdefault("states", {})["targetModelState"] = state
    out["transitionStatus"] = {"Pending": "InProgress", "Loaded": "UpToDate"}.get(
        state, "BlockedByFailedLoad"
    )
    if state == "Loaded":
        out["copies"] = {"failedCopies": 0, "totalCopies": len(pods)}
        out["states"]["activeModelState"] = "Loaded"
    if info is not None:
        out["lastFailureInfo"] = info
    return out
