"""When an InferenceService serves the new model: the rollout, the smoke test, the record.

`KServeClient.wait_isvc_ready` is not enough, and neither is the InferenceService's own
`Ready` condition: in RawDeployment mode KServe copies it from the Deployment's
`Available`, which the old pods keep True for the whole rollout (textcnn.cluster.rollout
says where upstream does this). So `finish`:

1. waits until the object that runs the predictor (Deployment or Knative Service) has
   rolled out a pod template for the new model URI, as its own controller reports it;
2. sends the smoke texts to the endpoint (to the canary's own cluster-local address when
   a canary takes part of the traffic) and requires the candidate's own answers
   (textcnn.cluster.answers): an old model answering means the new one does not serve;
3. records the InferenceService's `status.address.url` in the registry, never a
   revision's tag URL.

A new model that fails (its rollout fails or times out, or another model answers) is
replaced by the registry's previous model, so the endpoint keeps serving what it served,
and the step fails saying both.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import requests

from textcnn import metadata, registry
from textcnn.cluster import answers, rollout
from textcnn.cluster.answers import Answer
from textcnn.cluster.kube import Endpoint
from textcnn.errors import FinalError

SMOKE_TEXTS = ["a moving, funny and beautifully acted film", "dull, predictable and far too long"]
RETRY_STATUSES = frozenset({502, 503, 504})  # the route may lag a moment behind the rollout
# How long the smoke test waits for the candidate's answers once the rollout is done: a
# Service's endpoints and a gateway's routes follow the pods within seconds.
SETTLE_S = 60.0

Offline = Callable[[Sequence[str]], list[Answer]]


def address(isvc: Mapping[str, Any]) -> str | None:
    """The InferenceService's address: `status.address.url` (cluster-local, what pods
    reach), else its external `status.url`."""
    status = isvc.get("status") or {}
    return (status.get("address") or {}).get("url") or status.get("url") or None


def _model_status_hint(isvc: Mapping[str, Any]) -> str:
    """KServe's model status, as a hint only: `PropagateModelStatus` says Loaded while the
    old pods keep the service ready, else reads the first pod listed (`ListPodsByLabel`
    lists the newest first), the new model's."""
    model = (isvc.get("status") or {}).get("modelStatus") or {}
    info = model.get("lastFailureInfo") or {}
    if not info:
        return ""
    detail = ", ".join(f"{k} {info[k]}" for k in ("reason", "exitCode") if info.get(k))
    return f"; KServe's model status: {detail}: {info.get('message', 'no message')}"


def wait_rolled_out(
    cluster: Endpoint, name: str, storage_uri: str, timeout_s: float, poll_s: float
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Poll until the predictor's object has rolled out the model at `storage_uri` and the
    InferenceService has an address. Returns (InferenceService, predictor object);
    FinalError on a visible failure, TimeoutError after `timeout_s`, each naming what was
    seen last.

    A Deployment's failure already reported at the first read is an earlier rollout's: one
    rolled back to an old ReplicaSet keeps its ProgressDeadlineExceeded until the rollback
    completes (Kubernetes pkg/controller/deployment/progress.go `syncRolloutStatus`:
    `DeploymentTimedOut` holds once set; sync.go `getNewReplicaSet` sets no condition for an
    existing ReplicaSet), and one of this rollout's comes only after progressDeadlineSeconds.
    (A Knative Service's failure is judged on the revision of this spec, so it counts.)"""
    deadline = time.monotonic() + timeout_s
    earlier: str | None = None  # a Deployment's failure seen at the first read
    reads = 0
    while True:
        isvc = cluster.get()
        reads += 1
        hint = ""
        if not isvc:
            state, detail = "waiting", "the InferenceService does not exist yet"
        else:
            mode = rollout.deployment_mode(isvc)
            predictor = dict(cluster.predictor(mode))
            state, detail = rollout.state(mode, predictor, storage_uri)
            if state == "rolled-out" and address(isvc):
                return dict(isvc), predictor
            if state == "rolled-out":
                state, detail = "waiting", f"{detail}; the InferenceService has no address yet"
            if state == "failed" and mode == rollout.RAW and reads == 1:
                earlier = detail
            if state == "failed" and detail == earlier:
                state, detail = "waiting", f"{detail} (an earlier rollout's, seen before this one)"
            hint = _model_status_hint(isvc)
        if state == "failed":
            raise FinalError(
                f"InferenceService {name}: the model {storage_uri} failed: {detail}{hint}"
            )
        if time.monotonic() + poll_s > deadline:
            raise TimeoutError(
                f"InferenceService {name}: the model {storage_uri} has not rolled out after "
                f"{timeout_s:g} s; last seen: {detail}{hint}"
            )
        time.sleep(poll_s)


def _post(url: str, body: dict[str, Any], deadline: float, wait_s: float) -> requests.Response:
    """POST, retrying refused connections and gateway errors until `deadline`."""
    while True:
        try:
            response = requests.post(url, json=body, timeout=60)
            if response.status_code not in RETRY_STATUSES or time.monotonic() > deadline:
                return response
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
        time.sleep(wait_s)


def ask(url: str, model_name: str, texts: Sequence[str], deadline: float) -> list[Answer]:
    """One V1 prediction of `texts`; RuntimeError unless it answers well-formed."""
    endpoint = f"{url.rstrip('/')}/v1/models/{model_name}:predict"
    try:
        response = _post(endpoint, {"instances": list(texts)}, deadline, wait_s=2.0)
    except requests.RequestException as e:  # refused, timed out, ...
        raise RuntimeError(f"smoke test: cannot reach {endpoint}: {e}") from None
    if response.status_code != 200:
        raise RuntimeError(
            f"smoke test: POST {endpoint} answered {response.status_code}: {response.text[:500]}"
        )
    try:
        return answers.parse(response.json(), len(texts))
    except ValueError:
        raise RuntimeError(
            f"smoke test: {endpoint} did not answer JSON: {response.text[:500]}"
        ) from None
    except RuntimeError as e:
        raise RuntimeError(f"smoke test: {endpoint}: {e}") from None


def smoke_test(
    url: str,
    model_name: str,
    texts: Sequence[str],
    expected: Sequence[Answer],
    settle_s: float,
    poll_s: float = 2.0,
) -> list[Answer]:
    """Ask `url` until it gives the candidate's answers `expected`, for up to `settle_s`
    (old pods may linger in a Service's endpoints for a moment); RuntimeError with both
    answers if another model keeps answering."""
    deadline = time.monotonic() + settle_s
    while True:
        served = ask(url, model_name, texts, deadline)
        differ = answers.differing(served, expected)
        if not differ:
            return served
        if time.monotonic() + poll_s > deadline:
            i = differ[0]
            raise RuntimeError(
                f"smoke test: {url} does not answer as the new model: for {texts[i]!r} it "
                f"answered {served[i]}, the new model answers {expected[i]} ({len(differ)} of "
                f"{len(texts)} answers differ after {settle_s:g} s), so another model serves"
            )
        time.sleep(poll_s)


def smoke_address(isvc: Mapping[str, Any], predictor: Mapping[str, Any]) -> str:
    """Where the smoke test goes: with a canary split (Serverless, tag routing), the newest
    revision's own address, since the main one serves both; else the main address."""
    spec = (isvc.get("spec") or {}).get("predictor") or {}
    annotations = (isvc.get("metadata") or {}).get("annotations") or {}
    canary = (
        rollout.deployment_mode(isvc) == rollout.SERVERLESS
        and annotations.get(rollout.TAG_ROUTING) == "true"
        and int(spec.get("canaryTrafficPercent", 100)) < 100
    )
    url = rollout.tag_address(predictor, rollout.CANARY_TAG) if canary else None
    return url or str(address(isvc))


def restore_patch(obj: Mapping[str, Any], storage_uri: str) -> dict[str, Any]:
    """The merge patch that points the service's predictor at `storage_uri` again (the
    tensorflow runtime's `model.storageUri`, or the custom container's STORAGE_URI; a
    merge patch replaces lists whole, so the containers go in whole)."""
    predictor = json.loads(json.dumps(obj["spec"]["predictor"]))
    if "model" in predictor:
        return {"spec": {"predictor": {"model": {"storageUri": storage_uri}}}}
    for container in predictor.get("containers", []):
        for env in container.get("env", []):
            if env.get("name") == rollout.STORAGE_URI:
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


def _restore(
    cluster: Endpoint,
    name: str,
    previous: registry.Serving,
    metadata_store: str,
    run_name: str,
    why: Exception,
    timeout_s: float,
    poll_s: float,
) -> FinalError:
    """Apply the registry's previous model again and wait for it; the error to raise."""
    isvc = cluster.get()
    if not isvc:
        return FinalError(f"{why}; the InferenceService is gone, so nothing was put back")
    cluster.patch(restore_patch(isvc, previous.model_uri))
    try:
        isvc, _ = wait_rolled_out(cluster, name, previous.model_uri, timeout_s, poll_s)
    except (TimeoutError, RuntimeError) as again:
        return FinalError(
            f"{why}; the previous model {previous.model_uri} was applied again but does not "
            f"serve either: {again}"
        )
    registry.record_rollback(
        metadata_store, run_name=run_name, serving=previous, url=str(address(isvc))
    )
    return FinalError(
        f"{why}; the previous model {previous.model_uri} (id {previous.model_id}) was "
        "applied again and serves"
    )


def _check_fresh(
    cluster: Endpoint,
    key: str,
    metadata_store: str,
    run_name: str,
    model_uri: str,
    timeout_s: float,
    poll_s: float,
) -> None:
    """The gate's decision must still hold: what serves is what it compared with. Else
    another deploy came between them (only outside the endpoint's mutex: a retried
    workflow whose gate Argo kept), so what serves now is applied again and the step
    fails; the next run gates against it."""
    compared = registry.compared_with(metadata_store, run_name, model_uri)
    previous = registry.serving(metadata_store, key)
    now = -1 if previous is None else previous.model_id
    if compared is None or compared == now or previous is None:
        return
    stale = FinalError(
        f"the gate compared the candidate with model id {compared}, but {key} has served "
        f"model id {now} since: the decision is stale, so it was not deployed; run the "
        "pipeline again to gate against what serves"
    )
    raise _restore(cluster, key, previous, metadata_store, run_name, stale, timeout_s, poll_s)


def finish(
    cluster: Endpoint,
    offline: Offline,
    *,
    name: str,
    namespace: str,
    model_name: str,
    metadata_store: str,
    run_name: str,
    model_id: int,
    model_uri: str,
    timeout_s: float,
    poll_s: float,
    canary_traffic_percent: int = 100,
) -> dict[str, str]:
    """The deploy-wait step over `cluster` (the InferenceService through the API
    server): once the new model has rolled out and gives the candidate's answers
    (`offline`), the endpoint and (unless it is a canary, which the canary check promotes)
    the registry's serving record name it.

    A new model that does not serve: the model that served before (the registry's) is
    applied again, so the endpoint keeps serving it, and the step fails saying so."""
    key = registry.endpoint_key(namespace, name)
    _check_fresh(cluster, key, metadata_store, run_name, model_uri, timeout_s, poll_s)
    expected = offline(SMOKE_TEXTS)  # the candidate's own answers, before any waiting
    try:
        isvc, predictor = wait_rolled_out(cluster, key, model_uri, timeout_s, poll_s)
        url = smoke_address(isvc, predictor)
        smoke_test(url, model_name, SMOKE_TEXTS, expected, settle_s=SETTLE_S)
        print(f"{url} serves the new model: the smoke texts got its answers", flush=True)
    except (TimeoutError, RuntimeError) as e:  # FinalError is a RuntimeError too
        previous = registry.serving(metadata_store, key)
        if previous is None or previous.model_uri.rstrip("/") == model_uri.rstrip("/"):
            raise
        raise _restore(
            cluster, key, previous, metadata_store, run_name, e, timeout_s, poll_s
        ) from None
    url = str(address(isvc))
    record_endpoint(
        metadata_store,
        run_name,
        model_id,
        url,
        {
            "inference_service": key,
            "generation": int((isvc.get("metadata") or {}).get("generation", 0)),
            "model_name": model_name,
        },
    )
    if canary_traffic_percent >= 100:
        registry.record_serving(
            metadata_store,
            run_name=run_name,
            key=key,
            model_id=model_id,
            model_uri=model_uri,
            url=url,
        )
    return {"endpoint": url}
