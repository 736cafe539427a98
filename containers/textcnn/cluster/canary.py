"""A canary on KServe (Serverless mode): probe it, then promote it or roll it back.

With `canaryTrafficPercent` below 100, KServe keeps the previous rolled-out revision
serving the rest of the traffic. With tag routing (the annotation
`serving.kserve.io/enable-tag-routing: "true"`, which the DAG sets), each revision has
its own URL in `status.components.predictor.traffic`: tag `latest` is the canary, tag
`prev` the previous revision.

`check` sends a bounded number of probe predictions to both, one text per request, and
passes when the canary answered every probe, its p99 latency is within the bound, and
its labels equal the candidate model's offline labels for the same texts (proof that the
canary serves the new model). It then promotes the canary (`canaryTrafficPercent: 100`)
or rolls it back (`0`: all traffic to the previous revision), waits until the traffic
shows it, and records what the endpoint serves in the registry. A rollback fails the
step with the reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import requests

from textcnn import registry
from textcnn.errors import FinalError

TAG_ROUTING = "serving.kserve.io/enable-tag-routing"
CANARY_TAG, PREVIOUS_TAG = "latest", "prev"
PROBE_TIMEOUT_S = 10.0

Getter = Callable[[], Mapping[str, Any]]
Patcher = Callable[[dict[str, Any]], Any]


@dataclass(frozen=True)
class Revision:
    name: str
    url: str
    percent: int


def revisions(obj: Mapping[str, Any]) -> tuple[Revision | None, Revision | None]:
    """(canary, previous) from the predictor's traffic: the revisions tagged `latest` and
    `prev`. No previous: nothing served before, so the canary took all the traffic."""
    predictor = ((obj.get("status") or {}).get("components") or {}).get("predictor") or {}
    found: dict[str, Revision] = {}
    for target in predictor.get("traffic") or []:
        tag = target.get("tag")
        if tag in (CANARY_TAG, PREVIOUS_TAG) and target.get("url"):
            found[tag] = Revision(
                str(target.get("revisionName", "?")), str(target["url"]), int(target["percent"])
            )
    return found.get(CANARY_TAG), found.get(PREVIOUS_TAG)


def probe_texts(test_path: str, text_column: str, label_column: str, count: int) -> list[str]:
    """The first `count` texts of the test CSV: real inputs, the same on every run."""
    from textcnn.data import load_csv  # pandas and TensorFlow: only when it runs

    return load_csv(test_path, text_column, label_column)["text"].tolist()[:count]


@dataclass
class Probes:
    labels: list[str | None]  # None: no answer
    latencies_ms: list[float]
    errors: list[str]

    @property
    def p99_ms(self) -> float:
        return float(np.percentile(self.latencies_ms, 99)) if self.latencies_ms else float("inf")


def probe(url: str, model_name: str, texts: list[str]) -> Probes:
    """One V1 prediction per text, timed; failures are counted, not raised."""
    endpoint = f"{url.rstrip('/')}/v1/models/{model_name}:predict"
    result = Probes([], [], [])
    with requests.Session() as session:
        for text in texts:
            start = time.perf_counter()
            try:
                response = session.post(
                    endpoint, json={"instances": [text]}, timeout=PROBE_TIMEOUT_S
                )
                response.raise_for_status()
                label = response.json()["predictions"][0]["label"]
            except (requests.RequestException, ValueError, KeyError, IndexError) as e:
                result.labels.append(None)
                result.errors.append(f"{type(e).__name__}: {e}")
                continue
            result.latencies_ms.append((time.perf_counter() - start) * 1000)
            result.labels.append(str(label))
    return result


def judge(canary: Probes, expected: list[str], max_latency_ms: float) -> tuple[bool, str]:
    """(passed, reason) of the canary's probes against the candidate's offline labels."""
    problems = []
    if canary.errors:
        problems.append(
            f"{len(canary.errors)} of {len(expected)} probes failed (first: {canary.errors[0]})"
        )
    if canary.p99_ms > max_latency_ms:
        problems.append(f"p99 latency {canary.p99_ms:.1f} ms > {max_latency_ms:g} ms")
    differ = [
        i
        for i, (got, want) in enumerate(zip(canary.labels, expected, strict=True))
        if got is not None and got != want
    ]
    if differ:
        problems.append(
            f"{len(differ)} answers differ from the candidate model's offline labels "
            f"(first: probe {differ[0]}), so the canary does not serve the new model"
        )
    if problems:
        return False, "; ".join(problems)
    return True, (
        f"{len(expected)} probes answered as the candidate does offline, "
        f"p99 {canary.p99_ms:.1f} ms <= {max_latency_ms:g} ms"
    )


def _wait_traffic(get: Getter, want: Callable[[Revision | None], bool], timeout_s: float) -> None:
    """Until the canary's traffic is as `want`ed (it has gone after a rollback)."""
    deadline = time.monotonic() + timeout_s
    while not want(revisions(get())[0]):
        if time.monotonic() > deadline:
            raise TimeoutError(f"traffic not switched after {timeout_s:g} s")
        time.sleep(1.0)


def check(
    get: Getter,
    patch: Patcher,
    offline_labels: Callable[[list[str]], list[str]],
    *,
    namespace: str,
    name: str,
    texts: list[str],
    max_latency_ms: float,
    metadata_store: str,
    run_name: str,
    model_id: int,
    model_uri: str,
    timeout_s: float = 300.0,
) -> dict[str, str]:
    """Probe the canary of InferenceService NAME (the model name too) and promote it or
    roll it back; the registry follows. FinalError on a rollback."""
    canary, previous = revisions(get())
    key = registry.endpoint_key(namespace, name)
    if canary is None:
        raise FinalError(
            f"InferenceService {key}: no revision tagged {CANARY_TAG!r} in its traffic; "
            f"is it in Serverless mode with the {TAG_ROUTING} annotation?"
        )
    expected = offline_labels(texts)
    tried = probe(canary.url, name, texts)
    passed, reason = judge(tried, expected, max_latency_ms)
    if previous is not None:
        before = probe(previous.url, name, texts)
        reason += f"; previous revision {previous.name}: p99 {before.p99_ms:.1f} ms"
    if passed:
        patch({"spec": {"predictor": {"canaryTrafficPercent": 100}}})
        _wait_traffic(get, lambda c: c is not None and c.percent == 100, timeout_s)
        registry.record_serving(
            metadata_store,
            run_name=run_name,
            key=key,
            model_id=model_id,
            model_uri=model_uri,
            url=canary.url,
        )
        return {"verdict": "promoted", "reason": f"canary {canary.name} promoted: {reason}"}
    if previous is None:  # a first revision has nothing to roll back to
        raise FinalError(f"revision {canary.name} failed its probes: {reason}")
    patch({"spec": {"predictor": {"canaryTrafficPercent": 0}}})
    _wait_traffic(get, lambda c: c is None or c.percent == 0, timeout_s)
    serving = registry.serving(metadata_store, key)
    if serving is not None:  # the previous model serves again
        registry.record_rollback(
            metadata_store, run_name=run_name, serving=serving, url=previous.url
        )
    raise FinalError(f"canary {canary.name} rolled back: {reason}")
