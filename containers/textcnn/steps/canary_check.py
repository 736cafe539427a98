"""canary-check: probe the canary revision, then promote it or roll it back
(textcnn.cluster.canary); the DAG runs it when canary_traffic_percent is below 100."""

from __future__ import annotations

from textcnn.cluster import answers, canary, kube


def run(
    name: str,
    namespace: str,
    metadata_store: str,
    run_name: str,
    model_id: int,
    model_uri: str,
    model_dir: str,
    test_path: str,
    text_column: str,
    label_column: str,
    canary_probes: int = 50,
    canary_max_latency_ms: float = 500.0,
    timeout_s: int = 900,
) -> dict[str, str]:
    """Probe the canary of InferenceService NAME in NAMESPACE with CANARY_PROBES texts of
    the test CSV, against the candidate in MODEL_DIR offline; promote or roll back."""
    return canary.check(
        kube.endpoint(namespace, name),
        lambda texts: answers.offline(model_dir, texts),
        namespace=namespace,
        name=name,
        texts=canary.probe_texts(test_path, text_column, label_column, canary_probes),
        max_latency_ms=canary_max_latency_ms,
        metadata_store=metadata_store,
        run_name=run_name,
        model_id=model_id,
        model_uri=model_uri,
        timeout_s=timeout_s,
    )
