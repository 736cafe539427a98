"""The model registry is ML Metadata: which model each endpoint serves, and the gate's
verdicts (blessings).

Each endpoint (`<namespace>/<InferenceService>`) has one `ServingRecord` artifact, named
after it and updated in place whenever a deploy succeeds or is rolled back, so "what
serves `textcnn` in namespace N now" is one lookup: `serving(store, key)`, with the
model's id, URI and test metrics. Every record is also attributed to the run that made
it, so a run's lineage shows what it deployed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from textcnn import metadata

SERVING_RECORD = "ServingRecord"
BLESSING = "Blessing"


def endpoint_key(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


@dataclass(frozen=True)
class Serving:
    """What an endpoint serves now."""

    key: str
    model_id: int
    model_uri: str
    url: str
    run_name: str  # the run that deployed (or restored) it
    event: str  # "deployed" or "rolled back"
    metrics: dict[str, Any]  # the model's test metrics when it was evaluated


def record_serving(
    store: str,
    *,
    run_name: str,
    key: str,
    model_id: int,
    model_uri: str,
    url: str,
    event: str = "deployed",
) -> None:
    metadata.record_artifact(
        store,
        run_name=run_name,
        type_name=SERVING_RECORD,
        uri=url,
        name=key,
        properties={
            "model_id": model_id,
            "model_uri": model_uri,
            "run_name": run_name,
            "event": event,
            "at": time.time(),
        },
    )


def record_rollback(store: str, *, run_name: str, serving: Serving, url: str) -> None:
    """Record that `serving` (the model that served before) serves again, at `url`."""
    record_serving(
        store,
        run_name=run_name,
        key=serving.key,
        model_id=serving.model_id,
        model_uri=serving.model_uri,
        url=url,
        event="rolled back",
    )


def model_metrics(store: str, model_id: int) -> dict[str, Any]:
    """The test metrics of the last Evaluate of the model (accuracy, macro_f1, ...)."""
    found = metadata.produced_by(store, model_id, "Evaluate", "Metrics")
    if not found:
        return {}
    props = metadata.artifact_properties(store, max(found))
    return {k: v for k, v in props.items() if k != "metrics"}


@dataclass(frozen=True)
class TrainingData:
    """The data a registered model learned from: its training `Dataset` (id and
    properties, as dataset-metadata recorded them) and the prepared data's URI (whose
    vocab.json holds the model's vocabulary)."""

    dataset_id: int
    properties: dict[str, Any]
    prepared_uri: str


def training_data(store: str, model_id: int) -> TrainingData | None:
    """Model <- Train <- PreparedData <- PrepareData <- Dataset, as log-training-metadata
    records the chain (a reused stage links the same artifacts again: the newest is
    taken); None when a link is missing."""
    prepared = metadata.made_from(store, model_id, "Train", "PreparedData")
    if not prepared:
        return None
    datasets = metadata.made_from(store, prepared[-1], "PrepareData", "Dataset")
    if not datasets:
        return None
    return TrainingData(
        datasets[-1],
        metadata.artifact_properties(store, datasets[-1]),
        metadata.artifact_uri(store, prepared[-1]),
    )


def serving(store: str, key: str) -> Serving | None:
    """What endpoint `key` serves now, per the registry; None before its first deploy."""
    record = metadata.named_artifact(store, SERVING_RECORD, key)
    if record is None:
        return None
    props = record["properties"]
    return Serving(
        key,
        int(props["model_id"]),
        str(props["model_uri"]),
        record["uri"],
        str(props["run_name"]),
        str(props["event"]),
        model_metrics(store, int(props["model_id"])),
    )


def compared_with(store: str, run_name: str, model_uri: str) -> int | None:
    """The id of the model that served when run `run_name`'s gate last blessed the model
    at `model_uri` for deploy (-1: nothing served); None when it did not (no Blessing to
    deploy, or one forced with --force_deploy, which holds whatever serves)."""
    blessings = [
        a
        for a in metadata.lineage(store, run_name)["artifacts"]
        if a["type"] == BLESSING and a["uri"] == model_uri
    ]
    if not blessings:
        return None
    latest = max(blessings, key=lambda a: a["id"])["properties"]
    if latest.get("decision") != "deploy" or latest.get("forced"):
        return None
    return int(latest["serving_model_id"])
