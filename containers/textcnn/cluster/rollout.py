"""Has the new model rolled out? Judged from the object that serves it, as its own
controller reports it, never from the InferenceService's copy of that status.

Why not the InferenceService (KServe v0.15.2): in RawDeployment mode `PropagateRawStatus`
(pkg/apis/serving/v1beta1/inference_service_status.go) copies the Deployment's
`observedGeneration`, another object's counter, and its `Available` condition, which a
RollingUpdate (25%/25%, `setDefaultDeploymentSpec` in
pkg/controller/v1beta1/inferenceservice/reconcilers/deployment/deployment_reconciler.go)
keeps True from the old pods for the whole rollout; `PropagateModelStatus` says Loaded
while the service counts as ready, and otherwise reads one pod, the first listed. So
`Ready=True` there does not mean the new model serves.

KServe names the object the predictor runs as `<isvc>-predictor`
(pkg/constants/constants.go `PredictorServiceName`), or `<isvc>-predictor-default` when an
object of that older name exists (pkg/controller/v1beta1/inferenceservice/components/
predictor.go `getPredictorName`):

- RawDeployment: an `apps/v1` Deployment, judged as `kubectl rollout status` does
  (kubectl pkg/polymorphichelpers/rollout_status.go, `DeploymentStatusViewer.Status`);
- Serverless: a Knative Service (`serving.knative.dev/v1`), whose latest created
  revision must be ready (knative/serving pkg/apis/serving/v1/service_lifecycle.go,
  `PropagateConfigurationStatus`; pkg/reconciler/service/service.go, `ReconcileKind`).

Either way the object's pod template must be for the new model: KServe writes the
storage URI into it as the annotation `internal.serving.kserve.io/storage-initializer-
sourceuri` (`addStorageInitializerAnnotations`), and a custom container keeps its
`STORAGE_URI` env there (the pod webhook rewrites it in the Pod only).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

RAW, SERVERLESS = "RawDeployment", "Serverless"
MODES = (RAW, SERVERLESS)
DEPLOYMENT_MODE = "serving.kserve.io/deploymentMode"
SOURCE_URI = "internal.serving.kserve.io/storage-initializer-sourceuri"
STORAGE_URI = "STORAGE_URI"
# Tag routing gives each revision of a canary split its own address (Serverless only):
# `latest` is the newest revision, `prev` the one rolled out before it
# (ksvc_reconciler.go, `createKnativeService`).
TAG_ROUTING = "serving.kserve.io/enable-tag-routing"
CANARY_TAG, PREVIOUS_TAG = "latest", "prev"
# Knative: the Configuration's latest created revision failed (configuration_lifecycle.go
# `MarkLatestCreatedFailed`), propagated to the Service's ConfigurationsReady.
REVISION_FAILED = "RevisionFailed"

State = tuple[str, str]  # ("rolled-out" | "waiting" | "failed", what was seen)


def deployment_mode(isvc: Mapping[str, Any]) -> str:
    """The InferenceService's deployment mode: its annotation (the DAG always sets one),
    else what KServe reports, else KServe's default, Serverless."""
    annotations = (isvc.get("metadata") or {}).get("annotations") or {}
    mode = annotations.get(DEPLOYMENT_MODE) or (isvc.get("status") or {}).get("deploymentMode")
    return str(mode) if mode in MODES else SERVERLESS


def predictor_names(isvc_name: str) -> tuple[str, str]:
    """The names KServe may give the predictor's object, in the order it looks for them:
    the older `-predictor-default` wins where it exists (`getPredictorName`)."""
    return f"{isvc_name}-predictor-default", f"{isvc_name}-predictor"


def _same(a: object, b: str) -> bool:
    return isinstance(a, str) and a.rstrip("/") == b.rstrip("/")


def template_uri(template: Mapping[str, Any]) -> str | None:
    """The model URI a pod template is for: KServe's annotation, else a container's
    STORAGE_URI (a custom predictor)."""
    annotations = (template.get("metadata") or {}).get("annotations") or {}
    if annotations.get(SOURCE_URI):
        return str(annotations[SOURCE_URI])
    for container in (template.get("spec") or {}).get("containers") or []:
        for env in container.get("env") or []:
            if env.get("name") == STORAGE_URI and env.get("value"):
                return str(env["value"])
    return None


def spec_uri(isvc: Mapping[str, Any]) -> str | None:
    """The model URI an InferenceService's spec names: the model's `storageUri` (KServe's
    runtimes), else the `kserve-container`'s STORAGE_URI (a custom predictor; KServe reads
    that container's only, predictor_custom.go `GetStorageUri`)."""
    predictor = (isvc.get("spec") or {}).get("predictor") or {}
    if "model" in predictor:
        return predictor["model"].get("storageUri")
    containers = [
        c for c in predictor.get("containers") or [] if c.get("name") == "kserve-container"
    ]
    return template_uri({"spec": {"containers": containers}})


def _unseen(obj: Mapping[str, Any], kind: str, storage_uri: str) -> State | None:
    """Waiting while the object is missing, its pod template is not for the model at
    `storage_uri`, or its controller has not observed its latest spec."""
    if not obj:
        return "waiting", f"no {kind} yet (KServe has not created it)"
    meta, status = obj.get("metadata") or {}, obj.get("status") or {}
    name = f"{kind} {meta.get('name', '?')}"
    uri = template_uri((obj.get("spec") or {}).get("template") or {})
    if not _same(uri, storage_uri):
        return "waiting", (
            f"{name} is still for {uri or 'no model'}, not yet for {storage_uri} "
            "(KServe has not reconciled the new spec)"
        )
    generation = int(meta.get("generation", 0))
    if generation > int(status.get("observedGeneration", 0)):
        return "waiting", f"{name}: waiting for its controller to observe generation {generation}"
    return None


def _condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    return next((c for c in status.get("conditions") or [] if c.get("type") == kind), {})


def deployment_state(deployment: Mapping[str, Any], storage_uri: str) -> State:
    """A Deployment's rollout of the model at `storage_uri`, as `kubectl rollout status`
    judges it (`DeploymentStatusViewer.Status`): the controller has seen the spec, every
    replica is updated, no old one is left, and the updated ones are available."""
    unseen = _unseen(deployment, "Deployment", storage_uri)
    if unseen:
        return unseen
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    name = f"Deployment {(deployment.get('metadata') or {}).get('name', '?')}"
    progressing = _condition(status, "Progressing")
    if progressing.get("reason") == "ProgressDeadlineExceeded":
        return "failed", f"{name} exceeded its progress deadline: {progressing.get('message', '')}"
    want = int(spec.get("replicas", 1))
    updated = int(status.get("updatedReplicas", 0))
    replicas, available = int(status.get("replicas", 0)), int(status.get("availableReplicas", 0))
    if updated < want:
        return "waiting", f"{name}: {updated} of {want} new replicas have been updated"
    if replicas > updated:
        return "waiting", f"{name}: {replicas - updated} old replicas are pending termination"
    if available < updated:
        return "waiting", f"{name}: {available} of {updated} updated replicas are available"
    return "rolled-out", f"{name}: {updated} replicas of the new model available"


def knative_state(service: Mapping[str, Any], storage_uri: str) -> State:
    """A Knative Service's rollout of the model at `storage_uri`: it has reconciled its
    spec (`observedGeneration`, set by knative.dev/pkg's `PostProcessReconcile` whatever the
    outcome), its latest created revision is the latest ready one, and it is Ready (the
    route serves the traffic the spec asks for: `checkRoutesNotReady`). A failed latest
    revision is a failure."""
    unseen = _unseen(service, "Knative Service", storage_uri)
    if unseen:
        return unseen
    status = service.get("status") or {}
    name = f"Knative Service {(service.get('metadata') or {}).get('name', '?')}"
    configured = _condition(status, "ConfigurationsReady")
    if configured.get("status") == "False" and configured.get("reason") == REVISION_FAILED:
        return "failed", f"{name}: {REVISION_FAILED}: {configured.get('message', 'no message')}"
    created, ready = status.get("latestCreatedRevisionName"), status.get("latestReadyRevisionName")
    if not created or created != ready:
        return "waiting", f"{name}: revision {created or '(none yet)'} is not ready yet"
    condition = _condition(status, "Ready")
    if condition.get("status") != "True":
        why = ": ".join(str(condition[k]) for k in ("reason", "message") if condition.get(k))
        return "waiting", f"{name}: Ready is {condition.get('status', 'unset')}" + (
            f" ({why})" if why else ""
        )
    return "rolled-out", f"{name}: revision {created} of the new model ready"


def state(mode: str, predictor: Mapping[str, Any], storage_uri: str) -> State:
    """The rollout of the model at `storage_uri` by the predictor's object of `mode`."""
    judge = deployment_state if mode == RAW else knative_state
    return judge(predictor, storage_uri)


def tag_address(service: Mapping[str, Any], tag: str) -> str | None:
    """The cluster-local address of a Knative Service's revision tagged `tag`.

    Knative names the tag's own Kubernetes Service `{tag}-{route}` (config-network
    `tag-template`; pkg/reconciler/route/resources/service.go) beside the route, whose
    address is `http://{route}.{namespace}.svc.{cluster domain}`. The tag URLs in
    `status.traffic` use the external domain unless the route is cluster-local
    (pkg/reconciler/route/traffic/traffic.go, `GetRevisionTrafficTargets`), which KServe
    never asks for, so a pod often cannot reach them."""
    url = ((service.get("status") or {}).get("address") or {}).get("url")
    if not url or "://" not in url:
        return None
    scheme, _, host = str(url).partition("://")
    return f"{scheme}://{tag}-{host}"
