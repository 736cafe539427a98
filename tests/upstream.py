"""Kubernetes objects at the moments that matter to the deploy steps, written as the
upstream controllers write them, for tests that drive the step code through the
kubernetes client. Each builder names the upstream file and function it follows:
KServe v0.15.2, Knative Serving knative-v1.17.0 (v0.44.0) with knative.dev/pkg, and the
Kubernetes Deployment controller (pkg/controller/deployment). The InferenceService's spec
is the recorded fixtures/isvc/ready.json's (the project's custom predictor).

The story in each: model OLD serves the InferenceService `textcnn` in namespace `textcnn`,
and the pipeline applies model NEW.
"""

from __future__ import annotations

import copy
from typing import Any

from helpers import recorded

from textcnn.cluster import rollout

NAMESPACE = NAME = "textcnn"
PREDICTOR = f"{NAME}-predictor"  # pkg/constants/constants.go, PredictorServiceName
OLD = "gs://textcnn-artifacts/wf-1/model"
NEW = "gs://textcnn-artifacts/wf-2/model"
ISVC_PATH = f"/apis/serving.kserve.io/v1beta1/namespaces/{NAMESPACE}/inferenceservices/{NAME}"
DEPLOYMENT_PATH = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{PREDICTOR}"
KSVC_PATH = f"/apis/serving.knative.dev/v1/namespaces/{NAMESPACE}/services/{PREDICTOR}"
# The older names KServe looks for first (components/predictor.go, getPredictorName).
OLD_NAME_PATHS = (
    f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{PREDICTOR}-default",
    f"/apis/serving.knative.dev/v1/namespaces/{NAMESPACE}/services/{PREDICTOR}-default",
)


def _condition(kind: str, status: str, reason: str = "", message: str = "") -> dict[str, Any]:
    found = {"type": kind, "status": status, "lastTransitionTime": "2026-12-07T09:00:00Z"}
    return (
        found | ({"reason": reason} if reason else {}) | ({"message": message} if message else {})
    )


def inference_service(
    uri: str, generation: int, mode: str, status: dict[str, Any], canary: int | None = None
) -> dict[str, Any]:
    """The InferenceService as applied (ready.json's spec on `uri`, the DAG's annotations)
    with `status`."""
    obj = copy.deepcopy(recorded("isvc", "ready"))
    obj["metadata"]["generation"] = generation
    obj["metadata"]["annotations"] = {
        rollout.DEPLOYMENT_MODE: mode,
        rollout.TAG_ROUTING: "true",
    }
    predictor = obj["spec"]["predictor"]
    predictor["containers"][0]["env"] = [{"name": rollout.STORAGE_URI, "value": uri}]
    if canary is not None:
        predictor["canaryTrafficPercent"] = canary
    obj["status"] = status
    return obj


# --- RawDeployment -----------------------------------------------------------------------


def deployment(
    uri: str,
    generation: int,
    observed: int,
    replicas: int,
    updated: int,
    available: int,
    deadline_exceeded: bool = False,
) -> dict[str, Any]:
    """The predictor's Deployment, one replica, as KServe creates it and the Deployment
    controller reports it.

    - KServe: reconcilers/deployment/deployment_reconciler.go `createRawDeployment` and
      `setDefaultDeploymentSpec` (RollingUpdate 25%/25%, progressDeadlineSeconds 600);
      components/predictor.go `addStorageInitializerAnnotations` (the model URI on the pod
      template).
    - Kubernetes: pkg/controller/deployment/sync.go `calculateStatus` (replicas counts the
      pods of every ReplicaSet, updatedReplicas the new one's, availableReplicas the
      available ones; Available when at least replicas - maxUnavailable are), progress.go
      `syncRolloutStatus` (Progressing False with ProgressDeadlineExceeded once
      progressDeadlineSeconds pass without progress).
    """
    progressing = (
        _condition(
            "Progressing",
            "False",
            "ProgressDeadlineExceeded",
            f'ReplicaSet "{PREDICTOR}-7d9f" has timed out progressing.',
        )
        if deadline_exceeded
        else _condition("Progressing", "True", "ReplicaSetUpdated")
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": PREDICTOR, "namespace": NAMESPACE, "generation": generation},
        "spec": {
            "replicas": 1,
            "progressDeadlineSeconds": 600,
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
            },
            "template": {
                "metadata": {
                    "annotations": {rollout.SOURCE_URI: uri},
                    "labels": {"app": f"isvc.{PREDICTOR}"},
                },
                "spec": {
                    "containers": [
                        {"name": "kserve-container", "env": [{"name": "STORAGE_URI", "value": uri}]}
                    ]
                },
            },
        },
        "status": {
            "observedGeneration": observed,
            "replicas": replicas,
            "updatedReplicas": updated,
            "readyReplicas": available,
            "availableReplicas": available,
            "conditions": [
                _condition(
                    "Available",
                    "True" if available >= 1 else "False",
                    "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
                ),
                progressing,
            ],
        },
    }


def raw_status(dep: dict[str, Any]) -> dict[str, Any]:
    """The InferenceService's status over `dep`, as KServe writes it
    (pkg/apis/serving/v1beta1/inference_service_status.go): `PropagateRawStatus` copies the
    Deployment's `observedGeneration` and its Available condition as PredictorReady (so
    Ready); the address is the predictor's Service (kube_ingress_reconciler.go,
    `getRawServiceHost`); `PropagateModelStatus` says Loaded while the service is ready,
    whichever pod it reads."""
    available = next(c for c in dep["status"]["conditions"] if c["type"] == "Available")
    ready = available["status"]
    status: dict[str, Any] = {
        "observedGeneration": dep["status"]["observedGeneration"],
        "deploymentMode": rollout.RAW,
        "conditions": [
            {**available, "type": "PredictorReady"},
            _condition("IngressReady", "True"),
            {**available, "type": "Ready"},
        ],
        "modelStatus": {
            "states": {"activeModelState": "Loaded", "targetModelState": "Loaded"},
            "transitionStatus": "UpToDate",
        },
    }
    if ready == "True":
        url = f"http://{PREDICTOR}.{NAMESPACE}.svc.cluster.local"
        status.update(url=url, address={"url": url})
    return status


def rolling_update(isvc_generation: int = 2) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(InferenceService, Deployment) while one replica rolls from OLD to NEW.

    Kubernetes pkg/controller/deployment/rolling.go `rolloutRolling`: maxSurge 25% of 1
    rounds up to 1 and maxUnavailable 25% rounds down to 0 (`ResolveFenceposts`), so
    `reconcileNewReplicaSet` adds the new pod beside the old and
    `reconcileOldReplicaSets` removes the old one only once the new one is available. The
    old pod keeps the Deployment Available the whole time, and so the InferenceService
    Ready at the Deployment's observed generation."""
    steps = [
        deployment(OLD, 3, 3, 1, 1, 1),  # KServe has not updated the Deployment yet
        deployment(NEW, 4, 3, 1, 0, 1),  # updated; its controller has not seen it yet
        deployment(NEW, 4, 4, 2, 1, 1),  # the new pod starts beside the old one
        deployment(NEW, 4, 4, 2, 1, 1),
        deployment(NEW, 4, 4, 2, 1, 2),  # the new pod is available
        deployment(NEW, 4, 4, 1, 1, 1),  # the old one is gone: rolled out
    ]
    return [(inference_service(NEW, isvc_generation, rollout.RAW, raw_status(d)), d) for d in steps]


def never_loads() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(InferenceService, Deployment) when NEW's server never starts (CrashLoopBackOff):
    the old pod serves and keeps everything Available and Ready (`PropagateModelStatus`
    says Loaded, the service being ready) until the Deployment controller gives up after
    progressDeadlineSeconds (progress.go `syncRolloutStatus`, ProgressDeadlineExceeded)."""
    steps = [
        deployment(NEW, 4, 4, 2, 1, 1),
        deployment(NEW, 4, 4, 2, 1, 1),
        deployment(NEW, 4, 4, 2, 1, 1, deadline_exceeded=True),
    ]
    return [(inference_service(NEW, 2, rollout.RAW, raw_status(d)), d) for d in steps]


def restored() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(InferenceService, Deployment) after the InferenceService is patched back to OLD
    when NEW never loaded: the Deployment's template is the old ReplicaSet's again, which
    still has its available pod (sync.go `getNewReplicaSet` finds it, and sets no condition
    for an existing ReplicaSet), so the ProgressDeadlineExceeded of NEW's rollout stays
    (progress.go `syncRolloutStatus`: `DeploymentTimedOut` holds once set) until NEW's pod
    is gone and the rollout is complete (`DeploymentComplete`: NewReplicaSetAvailable)."""
    steps = [
        deployment(OLD, 5, 5, 2, 1, 1, deadline_exceeded=True),
        deployment(OLD, 5, 5, 1, 1, 1),
    ]
    return [(inference_service(OLD, 3, rollout.RAW, raw_status(d)), d) for d in steps]


def hpa_edits() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(InferenceService, Deployment) after the InferenceService was edited several times
    in fields that reach only its HorizontalPodAutoscaler (maxReplicas: KServe's
    reconcilers/hpa/hpa_reconciler.go updates the HPA, not the Deployment), then given
    NEW: its metadata.generation (7) is far ahead of the Deployment's, whose counter
    `PropagateRawStatus` copies into the InferenceService's observedGeneration (4)."""
    steps = [deployment(NEW, 4, 4, 2, 1, 1), deployment(NEW, 4, 4, 1, 1, 1)]
    return [(inference_service(NEW, 7, rollout.RAW, raw_status(d)), d) for d in steps]


# --- Serverless ---------------------------------------------------------------------------


def knative_service(
    uri: str,
    generation: int,
    created: str,
    ready: str | None,
    traffic: list[dict[str, Any]],
    configured: str = "True",
    reason: str = "",
    message: str = "",
) -> dict[str, Any]:
    """The predictor's Knative Service as KServe writes its spec
    (reconcilers/knative/ksvc_reconciler.go `createKnativeService`: the pod template's
    annotations, the storage URI among them; the traffic) and Knative its status: the
    Configuration's latest created and ready revisions and its Ready condition as
    ConfigurationsReady (pkg/apis/serving/v1/service_lifecycle.go
    `PropagateConfigurationStatus`; a failed latest revision is False RevisionFailed,
    configuration_lifecycle.go `MarkLatestCreatedFailed`), Ready taking a dependent's
    Unknown or False with its reason (knative.dev/pkg apis/condition_set.go `MarkUnknown`,
    `MarkFalse`), observedGeneration set after every reconcile (knative.dev/pkg reconciler
    `PostProcessReconcile`), the route's cluster-local address (pkg/reconciler/route/
    route.go) and tag URLs on the external domain, the route not being cluster-local
    (pkg/reconciler/route/traffic/traffic.go `GetRevisionTrafficTargets`; KServe's quick
    install's domain template `{{.Name}}-{{.Namespace}}.{{.Domain}}` on example.com)."""
    route = f"{PREDICTOR}.{NAMESPACE}"
    config = _condition("ConfigurationsReady", configured, reason, message)
    status_traffic = [
        {
            **t,
            **(
                {"url": f"http://{t['tag']}-{PREDICTOR}-{NAMESPACE}.example.com"}
                if "tag" in t
                else {}
            ),
        }
        for t in traffic
    ]
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": PREDICTOR, "namespace": NAMESPACE, "generation": generation},
        "spec": {"template": {"metadata": {"annotations": {rollout.SOURCE_URI: uri}}}},
        "status": {
            "observedGeneration": generation,
            "latestCreatedRevisionName": created,
            **({"latestReadyRevisionName": ready} if ready else {}),
            "url": f"http://{PREDICTOR}-{NAMESPACE}.example.com",
            "address": {"url": f"http://{route}.svc.cluster.local"},
            "traffic": status_traffic,
            "conditions": [config, _condition("RoutesReady", "True"), {**config, "type": "Ready"}],
        },
    }


def serverless_status(
    ksvc: dict[str, Any], rolled_out: str | None, previous: str | None = None
) -> dict[str, Any]:
    """The InferenceService's status over `ksvc`, as KServe's `PropagateStatus` writes it
    (inference_service_status.go): revisions, the traffic copied as it is, the component's
    address only while the Knative Service is Ready; the InferenceService's address from
    its ingress (ingress_reconciler.go: `http://<isvc>.<ns>.svc.cluster.local`)."""
    status = ksvc["status"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    predictor: dict[str, Any] = {
        "latestCreatedRevision": status["latestCreatedRevisionName"],
        "traffic": status["traffic"],
    }
    for key, value in (
        ("latestReadyRevision", status.get("latestReadyRevisionName")),
        ("latestRolledoutRevision", rolled_out),
        ("previousRolledoutRevision", previous),
    ):
        if value:
            predictor[key] = value
    out: dict[str, Any] = {
        "observedGeneration": status["observedGeneration"],
        "deploymentMode": rollout.SERVERLESS,
        "conditions": [{**ready, "type": "PredictorReady"}, {**ready, "type": "Ready"}],
        "components": {"predictor": predictor},
    }
    if ready["status"] == "True":
        predictor.update(address=status["address"], url=status["url"])
        url = f"http://{NAME}.{NAMESPACE}.svc.cluster.local"
        out.update(address={"url": url}, url=f"http://{NAME}-{NAMESPACE}.example.com")
    return out


def latest(revision: str, percent: int) -> dict[str, Any]:
    """A `latestRevision` target as Knative reports it: resolved to the latest ready
    revision, tagged `latest` by KServe when tag routing is on."""
    return {"tag": "latest", "revisionName": revision, "latestRevision": True, "percent": percent}


def prev(revision: str, percent: int) -> dict[str, Any]:
    return {"tag": "prev", "revisionName": revision, "latestRevision": False, "percent": percent}


def canary_split() -> tuple[dict[str, Any], dict[str, Any]]:
    """(InferenceService, Knative Service) of a canary: NEW (revision 2) takes 10%, OLD
    (revision 1, rolled out before) 90% (`createKnativeService` with a
    LatestRolledoutRevision and canaryTrafficPercent 10)."""
    ksvc = knative_service(
        NEW, 2, f"{PREDICTOR}-00002", f"{PREDICTOR}-00002",
        [latest(f"{PREDICTOR}-00002", 10), prev(f"{PREDICTOR}-00001", 90)],
    )  # fmt: skip
    status = serverless_status(ksvc, f"{PREDICTOR}-00001")
    return inference_service(NEW, 2, rollout.SERVERLESS, status, canary=10), ksvc


def promoted() -> tuple[dict[str, Any], dict[str, Any]]:
    """After canaryTrafficPercent 100: one target, the newest revision at 100%
    (`createKnativeService`'s blue-green branch), which `PropagateStatus` then records as
    rolled out."""
    revision = f"{PREDICTOR}-00002"
    ksvc = knative_service(NEW, 3, revision, revision, [latest(revision, 100)])
    status = serverless_status(ksvc, revision, f"{PREDICTOR}-00001")
    return inference_service(NEW, 3, rollout.SERVERLESS, status, canary=100), ksvc


def first_canary() -> tuple[dict[str, Any], dict[str, Any]]:
    """(InferenceService, Knative Service) of a first deploy with canaryTrafficPercent 10.
    The first reconcile has no LatestRolledoutRevision, so no split: the revision takes
    100% (`createKnativeService`); `PropagateStatus` then records it as rolled out, and the
    next reconcile splits the traffic between `latest` and `prev`, the same revision."""
    revision = f"{PREDICTOR}-00001"
    ksvc = knative_service(NEW, 2, revision, revision, [latest(revision, 10), prev(revision, 90)])
    status = serverless_status(ksvc, revision)
    return inference_service(NEW, 1, rollout.SERVERLESS, status, canary=10), ksvc


def first_promoted() -> tuple[dict[str, Any], dict[str, Any]]:
    """The first deploy after canaryTrafficPercent 100: the blue-green branch again."""
    revision = f"{PREDICTOR}-00001"
    ksvc = knative_service(NEW, 3, revision, revision, [latest(revision, 100)])
    status = serverless_status(ksvc, revision)
    return inference_service(NEW, 2, rollout.SERVERLESS, status, canary=100), ksvc


def serverless_rollout() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(InferenceService, Knative Service) while NEW replaces OLD at 100% (no canary):
    Knative's Service first reports its new generation before the Configuration has a
    revision for it (service.go `ReconcileKind`: ConfigurationsReady Unknown OutOfDate),
    then the new revision created but not ready while traffic stays on the old one, then
    ready and routed."""
    old, new = f"{PREDICTOR}-00001", f"{PREDICTOR}-00002"
    out_of_date = "The Configuration is still working to reflect the latest desired specification."
    steps = [
        knative_service(NEW, 2, old, old, [latest(old, 100)], "Unknown", "OutOfDate", out_of_date),
        knative_service(NEW, 2, new, old, [latest(old, 100)], configured="Unknown"),
        knative_service(NEW, 2, new, new, [latest(new, 100)]),
    ]
    return [
        (inference_service(NEW, 2, rollout.SERVERLESS, serverless_status(k, old)), k) for k in steps
    ]


def revision_failed() -> tuple[dict[str, Any], dict[str, Any]]:
    """The new revision fails (its container exits): the Configuration marks it
    (`MarkLatestCreatedFailed`) and traffic stays on the last ready revision."""
    old, new = f"{PREDICTOR}-00001", f"{PREDICTOR}-00002"
    failure = f'Revision "{new}" failed with message: Container failed with: no saved_model.pb.'
    ksvc = knative_service(NEW, 2, new, old, [latest(old, 100)], "False", "RevisionFailed", failure)
    return inference_service(NEW, 2, rollout.SERVERLESS, serverless_status(ksvc, old)), ksvc


def rolled_back() -> tuple[dict[str, Any], dict[str, Any]]:
    """After canaryTrafficPercent 0: the newest revision keeps its tag at 0%, the one
    rolled out before takes all the traffic (`createKnativeService`'s split with 0)."""
    new, old = f"{PREDICTOR}-00002", f"{PREDICTOR}-00001"
    ksvc = knative_service(NEW, 3, new, new, [latest(new, 0), prev(old, 100)])
    status = serverless_status(ksvc, old)
    return inference_service(NEW, 3, rollout.SERVERLESS, status, canary=0), ksvc
