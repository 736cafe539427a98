"""A canary on KServe (Serverless mode): probe it, then promote it or roll it back.

With `canaryTrafficPercent` below 100 and a revision rolled out before, KServe splits the
Knative traffic: the newest revision (tag `latest`, the canary) takes that share and the
previously rolled-out one (tag `prev`) the rest (ksvc_reconciler.go,
`createKnativeService`). The split is read from the Knative Service's own
`status.traffic` (which the InferenceService's `status.components.predictor.traffic`
copies, maybe late). With tag routing on (the DAG sets `serving.kserve.io/enable-tag-routing`)
each tagged revision has its own cluster-local address (textcnn.cluster.rollout
`tag_address`), which is where the probes go: the tag URLs in the traffic list use the
external domain and a pod often cannot reach them.

`check` sends a bounded number of probe predictions to both, one text per request, and
passes when the canary answered every probe, its p99 latency is within the bound, and its
answers are the candidate model's offline answers for the same texts (proof that the
canary serves the new model). It then promotes the canary (`canaryTrafficPercent: 100`)
or rolls it back (`0`: all traffic to the previous revision), waits until the traffic
shows it, and records what the endpoint serves in the registry, at the InferenceService's
own address. A rollback fails the step with the reason.

No canary without a previous model: on the first rollout KServe does not split (the split
needs a `LatestRolledoutRevision`), and once that revision has all the traffic the next
reconcile splits it with itself (`prev` is `latest`). Patching that to 0 would leave the
new model at 100% and call it a rollback; so when nothing else serves, the new model is
put at 100% and the step says so.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import requests

from textcnn import registry
from textcnn.cluster import answers, rollout
from textcnn.cluster.answers import Answer
from textcnn.cluster.inference_service import Offline, address
from textcnn.cluster.kube import Endpoint
from textcnn.errors import FinalError

PROBE_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Revision:
    name: str
    percent: int


def revisions(traffic: Sequence[Mapping[str, Any]]) -> tuple[Revision | None, Revision | None]:
    """(canary, previous) from Knative's traffic targets: the revisions tagged `latest` and
    `prev`. No previous: nothing is split, the canary takes all the traffic."""
    found: dict[str, Revision] = {}
    for target in traffic:
        tag = target.get("tag")
        if tag in (rollout.CANARY_TAG, rollout.PREVIOUS_TAG) and target.get("revisionName"):
            found[tag] = Revision(str(target["revisionName"]), int(target.get("percent", 0)))
    return found.get(rollout.CANARY_TAG), found.get(rollout.PREVIOUS_TAG)


def probe_texts(test_path: str, text_column: str, label_column: str, count: int) -> list[str]:
    """The first `count` texts of the test CSV: real inputs, the same on every run. Only
    the rows up to them are read (evaluate has checked the whole file)."""
    from textcnn.data import iter_csv  # pandas: only when it runs

    texts: list[str] = []
    with contextlib.closing(iter_csv(test_path, text_column, label_column)) as chunks:
        for chunk in chunks:
            texts += chunk["text"].tolist()[: count - len(texts)]
            if len(texts) == count:
                break
    return texts


@dataclass
class Probes:
    answers: list[Answer | None]  # None: no answer
    latencies_ms: list[float]
    errors: list[str]

    @property
    def p99_ms(self) -> float:
        return float(np.percentile(self.latencies_ms, 99)) if self.latencies_ms else float("inf")


def probe(url: str, model_name: str, texts: Sequence[str]) -> Probes:
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
                (answer,) = answers.parse(response.json(), 1)
            except (requests.RequestException, ValueError, RuntimeError) as e:
                result.answers.append(None)
                result.errors.append(f"{type(e).__name__}: {e}")
                continue
            result.latencies_ms.append((time.perf_counter() - start) * 1000)
            result.answers.append(answer)
    return result


def judge(canary: Probes, expected: Sequence[Answer], max_latency_ms: float) -> tuple[bool, str]:
    """(passed, reason) of the canary's probes against the candidate's offline answers."""
    problems = []
    if canary.errors:
        problems.append(
            f"{len(canary.errors)} of {len(expected)} probes failed (first: {canary.errors[0]})"
        )
    if canary.p99_ms > max_latency_ms:
        problems.append(f"p99 latency {canary.p99_ms:.1f} ms > {max_latency_ms:g} ms")
    differ = answers.differing(canary.answers, expected)
    if differ:
        i = differ[0]
        problems.append(
            f"{len(differ)} answers differ from the candidate model's offline answers (first: "
            f"probe {i}, {canary.answers[i]} against {expected[i]}), so the canary does not "
            "serve the new model"
        )
    if problems:
        return False, "; ".join(problems)
    return True, (
        f"{len(expected)} probes answered as the candidate does offline, "
        f"p99 {canary.p99_ms:.1f} ms <= {max_latency_ms:g} ms"
    )


def _split(service: Mapping[str, Any]) -> tuple[Revision | None, Revision | None]:
    """(canary, previous) of a Knative Service's own `status.traffic`."""
    return revisions((service.get("status") or {}).get("traffic") or [])


def _wait_traffic(
    cluster: Endpoint, want: Callable[[Revision | None, Revision | None], bool], timeout_s: float
) -> str:
    """Until the traffic is as `want`ed of (canary, previous); returns the
    InferenceService's address."""
    deadline = time.monotonic() + timeout_s
    while not want(*_split(cluster.predictor(rollout.SERVERLESS))):
        if time.monotonic() > deadline:
            raise TimeoutError(f"traffic not switched after {timeout_s:g} s")
        time.sleep(1.0)
    return str(address(cluster.get()))


def _promote(cluster: Endpoint, timeout_s: float) -> str:
    """All traffic to the newest revision; returns the InferenceService's address."""
    cluster.patch({"spec": {"predictor": {"canaryTrafficPercent": 100}}})
    return _wait_traffic(
        cluster, lambda c, p: c is not None and c.percent == 100 and p is None, timeout_s
    )


def check(
    cluster: Endpoint,
    offline: Offline,
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
    key = registry.endpoint_key(namespace, name)
    service = cluster.predictor(rollout.SERVERLESS)
    canary, previous = _split(service)
    if canary is None:
        raise FinalError(
            f"InferenceService {key}: no revision tagged {rollout.CANARY_TAG!r} in its "
            f"Knative Service's traffic; is it in Serverless mode with the "
            f"{rollout.TAG_ROUTING} annotation?"
        )

    def record(url: str) -> None:
        registry.record_serving(
            metadata_store,
            run_name=run_name,
            key=key,
            model_id=model_id,
            model_uri=model_uri,
            url=url,
        )

    if previous is None or previous.name == canary.name:
        # deploy-wait has already seen this revision give the candidate's answers.
        record(_promote(cluster, timeout_s))
        return {
            "verdict": "promoted",
            "reason": f"no canary: nothing else serves {key}, so revision {canary.name} "
            "takes all the traffic",
        }

    def url(tag: str) -> str:
        found = rollout.tag_address(service, tag)
        if found is None:
            raise FinalError(f"Knative Service of {key}: no address in its status yet")
        return found

    expected = offline(texts)
    tried = probe(url(rollout.CANARY_TAG), name, texts)
    passed, reason = judge(tried, expected, max_latency_ms)
    before = probe(url(rollout.PREVIOUS_TAG), name, texts)
    reason += f"; previous revision {previous.name}: p99 {before.p99_ms:.1f} ms"
    if passed:
        record(_promote(cluster, timeout_s))
        return {"verdict": "promoted", "reason": f"canary {canary.name} promoted: {reason}"}
    cluster.patch({"spec": {"predictor": {"canaryTrafficPercent": 0}}})
    url_now = _wait_traffic(cluster, lambda c, _: c is None or c.percent == 0, timeout_s)
    serving = registry.serving(metadata_store, key)
    if serving is not None:  # the previous model serves again
        registry.record_rollback(metadata_store, run_name=run_name, serving=serving, url=url_now)
    raise FinalError(f"canary {canary.name} rolled back: {reason}")
