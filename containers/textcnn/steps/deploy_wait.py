"""deploy-wait: wait until the new model serves, smoke-test it against the candidate's own
answers and record the endpoint (the rules are textcnn.cluster.inference_service's)."""

from __future__ import annotations

from textcnn.cluster import answers, kube
from textcnn.cluster import inference_service as isvc


def run(
    name: str,
    namespace: str,
    model_name: str,
    metadata_store: str,
    run_name: str,
    model_id: int,
    model_uri: str,
    model_dir: str,
    timeout_s: int = 900,
    poll_s: float = 10.0,
    canary_traffic_percent: int = 100,
) -> dict[str, str]:
    """Wait until InferenceService NAME in NAMESPACE has rolled out the model at MODEL_URI
    (the candidate, also in MODEL_DIR), check that MODEL_NAME (the InferenceService name
    for KServe's runtimes) answers as the candidate does, record the endpoint in ML
    Metadata linked to the model (MODEL_ID) as what the endpoint serves now, and output the
    `endpoint` URL. A new model that does not serve is replaced by the previous one."""
    return isvc.finish(
        kube.endpoint(namespace, name),
        lambda texts: answers.offline(model_dir, texts),
        name=name,
        namespace=namespace,
        model_name=model_name,
        metadata_store=metadata_store,
        run_name=run_name,
        model_id=model_id,
        model_uri=model_uri,
        timeout_s=timeout_s,
        poll_s=poll_s,
        canary_traffic_percent=canary_traffic_percent,
    )
