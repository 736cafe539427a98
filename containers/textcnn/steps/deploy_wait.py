"""deploy-wait: wait until the InferenceService serves the new model, smoke-test it and
record the endpoint (the readiness rules are textcnn.cluster.inference_service's)."""

from __future__ import annotations

from textcnn.cluster import inference_service as isvc
from textcnn.cluster.kube import custom_object_getter, custom_object_patcher


def run(
    name: str,
    namespace: str,
    model_name: str,
    metadata_store: str,
    run_name: str,
    model_id: int,
    model_uri: str,
    generation: int = 0,
    timeout_s: int = 900,
    poll_s: float = 10.0,
    canary_traffic_percent: int = 100,
) -> dict[str, str]:
    """Wait for InferenceService NAME in NAMESPACE to serve spec GENERATION, send one
    prediction to MODEL_NAME (the InferenceService name for KServe's runtimes), record the
    endpoint in ML Metadata linked to the model (MODEL_ID, at MODEL_URI) as what the
    endpoint serves now, and output the `endpoint` URL.

    GENERATION 0 means the generation the service has when the wait starts: the DAG runs
    this step right after applying the service, so that is the applied spec."""
    # Not visible yet (just applied): keep waiting.
    get = custom_object_getter(
        isvc.GROUP,
        isvc.VERSION,
        isvc.PLURAL,
        namespace,
        name,
        missing={"metadata": {"name": name, "namespace": namespace}},
    )
    return isvc.finish(
        get,
        name=name,
        namespace=namespace,
        model_name=model_name,
        metadata_store=metadata_store,
        run_name=run_name,
        model_id=model_id,
        model_uri=model_uri,
        generation=generation,
        timeout_s=timeout_s,
        poll_s=poll_s,
        canary_traffic_percent=canary_traffic_percent,
        patch=custom_object_patcher(isvc.GROUP, isvc.VERSION, isvc.PLURAL, namespace, name),
    )
