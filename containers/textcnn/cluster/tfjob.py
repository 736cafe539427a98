"""Whether a TFJob (kubeflow.org/v1) has succeeded, failed (and why), or is on its way.

Argo's `successCondition` is a label selector over dotted status paths and cannot pick an
element of `status.conditions`, where the Training Operator (1.9) records the outcome.
`judge` is the decision, a pure function of the TFJob object, mirroring the operator's
conditions (`pkg/controller.v1/tensorflow`, `pkg/controller.v1/common/job.go`):

- `Succeeded=True`: with a Chief replica, set when the chief completed.
- `Failed=True` is final, and its message says why: "TFJob NS/NAME has failed because
  N Worker replica(s) failed.", "Job NAME has failed because it has reached the
  specified backoff limit", "... it was active longer than specified deadline".
- Otherwise the job is still on its way: `Created` (pods not running yet, e.g. not
  schedulable), `Running`, `Restarting`, `Suspended`.

`textcnn.cluster.jobs.wait_for` polls it until the verdict is final or the timeout
passes; a TFJob that never gets a pod scheduled stays `Created` and ends in that timeout
(or in the operator's own activeDeadlineSeconds failure, whichever comes first).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from textcnn.cluster.jobs import Verdict, observed, tally

GROUP, VERSION, PLURAL = "kubeflow.org", "v1", "tfjobs"
REPLICA_COUNTS = ("active", "succeeded", "failed")


def _replicas(status: Mapping[str, Any]) -> str:
    replicas = dict(sorted((status.get("replicaStatuses") or {}).items()))
    return tally(replicas, REPLICA_COUNTS, "none started")


def judge(tfjob: Mapping[str, Any]) -> Verdict:
    """The verdict on a TFJob object (as the API server returns it)."""
    name, status, true = observed(tfjob)
    replicas = _replicas(status)
    detail = f" [replicas: {replicas}]" if replicas else ""
    if "Failed" in true:  # the operator's messages name the job
        condition = true["Failed"]
        why = condition.get("message") or (
            f"TFJob {name} failed ({condition.get('reason') or 'no reason given'})"
        )
        return Verdict("failed", f"{why}{detail}")
    if "Succeeded" in true:
        return Verdict("succeeded", true["Succeeded"].get("message") or f"TFJob {name} succeeded")
    if not status.get("conditions"):
        return Verdict(
            "waiting",
            f"TFJob {name} has no status yet (is the training operator "
            "running and watching this namespace?)",
        )
    # The operator appends each new condition: the last true one is the current phase.
    latest = [c for c in status["conditions"] if c.get("status") == "True"]
    phase = latest[-1] if latest else status["conditions"][-1]
    if phase.get("type") == "Created":
        return Verdict(
            "waiting",
            f"TFJob {name} is created but no replica is running yet "
            f"(pods pending: not schedulable, or pulling images){detail}",
        )
    why = phase.get("message") or f"TFJob {name} is {phase.get('type')}"
    return Verdict("waiting", f"{why}{detail}")
