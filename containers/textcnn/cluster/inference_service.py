"""When an InferenceService serves the new model: readiness, the smoke test, the endpoint record.

`KServeClient.wait_isvc_ready` is not enough: it never reports failure (only a timeout),
and it accepts a Ready condition left over from the previous spec, so right after an
update it returns while the old model still answers. Here readiness needs Ready=True for
the generation we created (`status.observedGeneration`), a visible failure (a failed
revision, a model that failed to load) ends the wait at once, and one real V1 prediction
must succeed before the step does.

KServe 0.15 copies `observedGeneration` from the Knative Service (Serverless) or the
Deployment (RawDeployment) it manages; both advance with each change of the
InferenceService spec.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests

from textcnn import metadata, registry
from textcnn.errors import FinalError, InputError

GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
# Ready=False reasons that do not heal by waiting (Knative: the latest revision failed).
FAILED_REASONS = frozenset({"RevisionFailed"})
FAILED_TRANSITIONS = frozenset({"BlockedByFailedLoad", "InvalidSpec"})
SMOKE_TEXTS = ["a moving, funny and beautifully acted film", "dull, predictable and far too long"]
RETRY_STATUSES = frozenset({502, 503, 504})  # the route may lag a moment behind Ready


def _conditions(status: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {c.get("type", ""): c for c in status.get("conditions") or []}


def _failure(status: Mapping[str, Any]) -> str | None:
    model = status.get("modelStatus") or {}
    info = model.get("lastFailureInfo") or {}
    target = (model.get("states") or {}).get("targetModelState")
    ready = _conditions(status).get("Ready", {})
    if target == "FailedToLoad" or model.get("transitionStatus") in FAILED_TRANSITIONS:
        detail = ", ".join(f"{k} {info[k]}" for k in ("reason", "exitCode") if info.get(k))
        message = info.get("message") or ready.get("message") or "no message"
        return f"model failed to load ({detail or model.get('transitionStatus')}): {message}"
    if ready.get("status") == "False" and ready.get("reason") in FAILED_REASONS:
        return f"{ready['reason']}: {ready.get('message', 'no message')}"
    return None


def isvc_status(obj: Mapping[str, Any], generation: int) -> tuple[str, str]:
    """("ready", url), ("failed", message) or ("waiting", reason) for an InferenceService
    object, judged for spec `generation` (its metadata.generation when we applied it).

    The URL is the cluster-local address (reachable from the workflow's pods), else the
    external one.
    """
    status = obj.get("status") or {}
    if not status:
        return "waiting", "no status yet (the KServe controller has not reconciled it)"
    observed = status.get("observedGeneration", 0)
    if observed < generation:
        return "waiting", (
            f"status is for generation {observed}, not yet for generation "
            f"{generation} (the previous model may still be serving)"
        )
    failure = _failure(status)
    if failure:
        return "failed", failure
    conditions = _conditions(status)
    predictor = (status.get("components") or {}).get("predictor") or {}
    created, ready_rev = (
        predictor.get("latestCreatedRevision"),
        predictor.get("latestReadyRevision"),
    )
    if conditions.get("Ready", {}).get("status") == "True":
        url = (status.get("address") or {}).get("url") or status.get("url")
        if created and created != ready_rev:
            return "waiting", f"revision {created} is not ready yet ({ready_rev} is)"
        if url:
            return "ready", url
        return "waiting", "Ready but no URL yet"
    pending = [c for c in conditions.values() if c.get("status") != "True"]
    if not pending:
        return "waiting", "no Ready condition yet"
    # Ready usually carries the reason; else the first condition that explains itself.
    ready = conditions.get("Ready", {})
    shown = (
        ready
        if ready.get("reason") or ready.get("message")
        else next((c for c in pending if c.get("reason") or c.get("message")), pending[0])
    )
    why = ": ".join(str(shown[k]) for k in ("reason", "message") if shown.get(k))
    return "waiting", f"{shown.get('type')} is {shown.get('status')}" + (f" ({why})" if why else "")


def wait_ready(
    get: Callable[[], Mapping[str, Any]], generation: int, timeout_s: float, poll_s: float
) -> str:
    """Poll `get()` (the InferenceService object) until it is ready for `generation`.

    Returns the URL; RuntimeError when a failure shows, TimeoutError after `timeout_s`,
    each naming the InferenceService and the last state seen.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        obj = get()
        meta = obj.get("metadata") or {}
        name = f"{meta.get('namespace', '?')}/{meta.get('name', '?')}"
        state, detail = isvc_status(obj, generation)
        if state == "ready":
            return detail
        if state == "failed":
            raise FinalError(f"InferenceService {name} (generation {generation}) failed: {detail}")
        if time.monotonic() + poll_s > deadline:
            raise TimeoutError(
                f"InferenceService {name} not ready for generation {generation} after "
                f"{timeout_s:g} s; last seen: {detail}"
            )
        time.sleep(poll_s)


def _post_with_retries(
    url: str, body: dict[str, Any], attempts: int = 5, wait_s: float = 2.0
) -> requests.Response:
    for _ in range(attempts - 1):
        try:
            response = requests.post(url, json=body, timeout=60)
            if response.status_code not in RETRY_STATUSES:
                return response
        except requests.ConnectionError:
            pass
        time.sleep(wait_s)
    return requests.post(url, json=body, timeout=60)


def check_predictions(body: Any, count: int) -> None:
    """RuntimeError unless `body` is a V1 response with `count` predictions, each either
    this project's server's {"label", "scores": {class: p}} or TF Serving's row
    {"label", "scores": [p, ...], "classes": [class, ...]}."""
    predictions = body.get("predictions") if isinstance(body, Mapping) else None
    if not isinstance(predictions, list) or len(predictions) != count:
        raise RuntimeError(f"expected {count} predictions, got {str(body)[:500]}")
    for i, prediction in enumerate(predictions):
        _check_prediction(i, prediction)


def _check_prediction(i: int, prediction: Any) -> None:
    if not isinstance(prediction, Mapping) or not isinstance(prediction.get("label"), str):
        raise RuntimeError(f"prediction {i} has no string label: {prediction!r}")
    scores = prediction.get("scores")
    if isinstance(scores, Mapping):
        classes, values = list(scores), list(scores.values())
    elif isinstance(scores, list) and isinstance(prediction.get("classes"), list):
        classes, values = prediction["classes"], scores
    else:
        raise RuntimeError(f"prediction {i} has no class scores: {prediction!r}")
    if len(classes) != len(values) or not values:
        raise RuntimeError(f"prediction {i}: {len(values)} scores for {len(classes)} classes")
    if not all(isinstance(v, (int, float)) and math.isfinite(v) and 0 <= v <= 1 for v in values):
        raise RuntimeError(f"prediction {i}: scores are not probabilities: {values}")
    if prediction["label"] not in classes:
        raise RuntimeError(
            f"prediction {i}: label {prediction['label']!r} is not one of the classes {classes}"
        )


def smoke_test(url: str, model_name: str, texts: list[str]) -> dict[str, Any]:
    """One real V1 prediction of `texts`; RuntimeError unless the response has the
    expected shape. Returns the response body."""
    endpoint = f"{url.rstrip('/')}/v1/models/{model_name}:predict"
    try:
        response = _post_with_retries(endpoint, {"instances": texts})
    except requests.ConnectionError as e:
        raise RuntimeError(f"smoke test: cannot reach {endpoint}: {e}") from None
    if response.status_code != 200:
        raise RuntimeError(
            f"smoke test: POST {endpoint} answered {response.status_code}: {response.text[:500]}"
        )
    try:
        body = response.json()
    except ValueError:
        raise RuntimeError(
            f"smoke test: {endpoint} did not answer JSON: {response.text[:500]}"
        ) from None
    try:
        check_predictions(body, len(texts))
    except RuntimeError as e:
        raise RuntimeError(f"smoke test: {endpoint}: {e}") from None
    return body


def restore_patch(obj: Mapping[str, Any], storage_uri: str) -> dict[str, Any]:
    """The merge patch that points the service's predictor at `storage_uri` again (the
    tensorflow runtime's `model.storageUri`, or the custom container's STORAGE_URI; a
    merge patch replaces lists whole, so the containers go in whole)."""
    predictor = json.loads(json.dumps(obj["spec"]["predictor"]))
    if "model" in predictor:
        return {"spec": {"predictor": {"model": {"storageUri": storage_uri}}}}
    for container in predictor.get("containers", []):
        for env in container.get("env", []):
            if env.get("name") == "STORAGE_URI":
                env["value"] = storage_uri
    return {"spec": {"predictor": {"containers": predictor["containers"]}}}


def record_endpoint(
    metadata_store: str,
    run_name: str,
    model_id: int,
    url: str,
    properties: Mapping[str, int | float | str],
) -> int:
    """Record the serving endpoint in ML Metadata: a `Deploy` execution from the Model
    artifact to an `Endpoint` artifact whose URI is the URL. Returns the endpoint's id."""
    _, (endpoint_id,) = metadata.record_execution(
        metadata_store,
        run_name=run_name,
        type_name="Deploy",
        properties=properties,
        inputs=[model_id],
        outputs=[("Endpoint", url, properties)],
    )
    return endpoint_id


def finish(
    get: Callable[[], Mapping[str, Any]],
    *,
    name: str,
    namespace: str,
    model_name: str,
    metadata_store: str,
    run_name: str,
    model_id: int,
    model_uri: str,
    generation: int,
    timeout_s: float,
    poll_s: float,
    canary_traffic_percent: int = 100,
    patch: Callable[[dict[str, Any]], Any] | None = None,
) -> dict[str, str]:
    """The deploy-wait step over any source of the InferenceService object (the API
    server, or the local runner's stand-in): once it serves and answers, the endpoint and
    (unless it is a canary, which the canary check promotes) the registry's serving
    record name the new model.

    A full rollout (no canary) that never serves: with `patch`, the model that served
    before (the registry's) is applied again, so the endpoint keeps serving, and the step
    fails saying so."""
    if generation < 0:
        raise InputError(
            f"--generation {generation}: give the InferenceService's "
            "metadata.generation after it was applied, or 0 for the current one"
        )
    generation = generation or int(get()["metadata"].get("generation", 1))
    key = registry.endpoint_key(namespace, name)
    try:
        url = wait_ready(get, generation, timeout_s, poll_s)
        smoke_test(url, model_name, SMOKE_TEXTS)
    except (TimeoutError, RuntimeError) as e:  # FinalError is a RuntimeError too
        previous = registry.serving(metadata_store, key)
        if patch is None or canary_traffic_percent < 100 or previous is None:
            raise
        if previous.model_uri.rstrip("/") == model_uri.rstrip("/"):
            raise
        patch(restore_patch(get(), previous.model_uri))
        restored = int(get()["metadata"].get("generation", generation + 1))
        try:
            wait_ready(get, restored, timeout_s, poll_s)
        except (TimeoutError, RuntimeError) as again:
            raise FinalError(
                f"{e}; the previous model {previous.model_uri} was applied again but does "
                f"not serve either: {again}"
            ) from None
        registry.record_rollback(
            metadata_store, run_name=run_name, serving=previous, url=previous.url
        )
        raise FinalError(
            f"{e}; the previous model {previous.model_uri} (id {previous.model_id}) was "
            "applied again and serves"
        ) from None
    record_endpoint(
        metadata_store,
        run_name,
        model_id,
        url,
        {
            "inference_service": f"{namespace}/{name}",
            "generation": generation,
            "model_name": model_name,
        },
    )
    if canary_traffic_percent >= 100:
        registry.record_serving(
            metadata_store,
            run_name=run_name,
            key=registry.endpoint_key(namespace, name),
            model_id=model_id,
            model_uri=model_uri,
            url=url,
        )
    return {"endpoint": url}
