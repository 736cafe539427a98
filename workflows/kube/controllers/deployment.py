"""The Deployment controller (Kubernetes pkg/controller/deployment) for a predictor's
Deployment of one replica, its ReplicaSets' pods being model servers (pods.py).

- A ReplicaSet per pod template, named `<deployment>-<hash of the template>`
  (sync.go `getNewReplicaSet`, `ComputeHash`): a template seen before finds its old
  ReplicaSet again, whose pod, if still running, serves at once (a rollback).
- Rolling update as KServe sets it, 25%/25% of one replica (`ResolveFenceposts`: surge 1,
  unavailable 0; rolling.go `rolloutRolling`): the new pod starts beside the old one,
  and the old ones go once it is available (`reconcileOldReplicaSets`); an old pod that
  is not available goes at once (`cleanupUnhealthyReplicas`).
- Status (sync.go `calculateStatus`): replicas counts every pod, updatedReplicas the new
  ReplicaSet's, ready and available the ready ones; Available when at least one is
  (replicas - maxUnavailable). Progressing (progress.go `syncRolloutStatus`):
  NewReplicaSetAvailable once complete, ReplicaSetUpdated while progressing, and
  ProgressDeadlineExceeded once `progressDeadlineSeconds` passed without progress,
  which holds until the rollout completes or a new template comes (`DeploymentTimedOut`).

A server that exits is not restarted here (the kubelet would, in CrashLoopBackOff); either
way its pod never becomes ready, and the Deployment times out progressDeadlineSeconds
after its last progress, not before: deploy-wait takes a timeout it sees at its first read
for an earlier rollout's (textcnn.cluster.inference_service `wait_rolled_out`).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from workflows.kube import objects
from workflows.kube.controllers.pods import Pod, Servers
from workflows.kube.objects import age_seconds

SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # apimachinery's SafeEncodeString
COMPLETE, UPDATED, TIMED_OUT = (
    "NewReplicaSetAvailable",
    "ReplicaSetUpdated",
    "ProgressDeadlineExceeded",
)


def replica_set(deployment: str, template: dict[str, Any]) -> str:
    """The ReplicaSet's name for a pod template (a stable hash, 10 safe characters)."""
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    return f"{deployment}-" + "".join(SAFE_ALPHABET[b % len(SAFE_ALPHABET)] for b in digest[:10])


class DeploymentPods:
    """The pods of one Deployment, oldest first; `sync` rolls them and returns its status."""

    def __init__(self, servers: Servers, model_name: str) -> None:
        self.servers, self.model_name = servers, model_name
        self.pods: dict[str, Pod] = {}  # by ReplicaSet
        self.new = ""  # the ReplicaSet of the current template

    @property
    def serving(self) -> Pod | None:
        """The newest ready pod: where the predictor's Service sends requests."""
        return next((p for p in reversed(self.pods.values()) if p.ready), None)

    def sync(self, deployment: dict[str, Any]) -> dict[str, Any]:
        """Roll the pods towards the Deployment's template; its new status."""
        template = deployment["spec"]["template"]
        rs = replica_set(deployment["metadata"]["name"], template)
        changed = rs != self.new
        if changed:
            self._new_replica_set(rs, template)
        for pod in self.pods.values():
            self.servers.probe(pod, self.model_name)
        new = self.pods[self.new]
        for name, pod in list(self.pods.items()):
            if name != self.new and (new.ready or not pod.ready):
                self.pods.pop(name).stop()
        return self._status(deployment, changed)

    def _new_replica_set(self, rs: str, template: dict[str, Any]) -> None:
        self.new = rs
        old = self.pods.get(rs)
        if old is not None and not old.exited:
            self.pods[rs] = self.pods.pop(rs)  # scaled up again: the newest now
            return
        if old is not None:
            self.pods.pop(rs)  # a new rollout to it: a fresh pod
        self.pods[rs] = self.servers.start(rs, template, self.model_name)

    def _status(self, deployment: dict[str, Any], changed: bool) -> dict[str, Any]:
        previous = deployment.get("status") or {}
        available = sum(p.ready for p in self.pods.values())
        counts = {
            "replicas": len(self.pods),
            "updatedReplicas": 1,
            "readyReplicas": available,
            "availableReplicas": available,
        }
        counts["unavailableReplicas"] = max(0, len(self.pods) - available)
        progressed = changed or any(counts[k] != previous.get(k, 0) for k in counts)
        return {
            "observedGeneration": deployment["metadata"].get("generation", 1),
            **{k: v for k, v in counts.items() if v},
            "conditions": [
                self._available(previous, available >= 1),
                self._progressing(deployment, previous, counts, changed, progressed),
            ],
        }

    @staticmethod
    def _available(previous: dict[str, Any], ok: bool) -> dict[str, Any]:
        reason, message = (
            ("MinimumReplicasAvailable", "Deployment has minimum availability.")
            if ok
            else ("MinimumReplicasUnavailable", "Deployment does not have minimum availability.")
        )
        return _condition(previous, "Available", str(ok), reason, message, refresh=False)

    def _progressing(
        self,
        deployment: dict[str, Any],
        previous: dict[str, Any],
        counts: dict[str, int],
        changed: bool,
        progressed: bool,
    ) -> dict[str, Any]:
        rs = self.new
        before = _get(previous, "Progressing")
        if counts["replicas"] == counts["availableReplicas"] == 1 and self.pods[rs].ready:
            message = f'ReplicaSet "{rs}" has successfully progressed.'
            return _condition(previous, "Progressing", "True", COMPLETE, message, refresh=False)
        deadline = int(deployment["spec"].get("progressDeadlineSeconds", 600))
        since = before.get("lastUpdateTime")
        waited = since is not None and not progressed and age_seconds(since) > deadline
        held = before.get("reason") == TIMED_OUT and not changed
        if held or (waited and before.get("reason") != COMPLETE):
            message = f'ReplicaSet "{rs}" has timed out progressing.'
            return _condition(previous, "Progressing", "False", TIMED_OUT, message, refresh=False)
        message = f'ReplicaSet "{rs}" is progressing.'
        return _condition(previous, "Progressing", "True", UPDATED, message, refresh=progressed)


def _get(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c.get("type") == kind), {})


def _condition(
    previous: dict[str, Any], kind: str, status: str, reason: str, message: str, refresh: bool
) -> dict[str, Any]:
    """A Deployment condition (`NewDeploymentCondition`, `SetDeploymentCondition`): its
    times kept while it stays the same; `refresh` renews lastUpdateTime (progress)."""
    before = _get(previous, kind)
    same = (before.get("status"), before.get("reason"), before.get("message")) == (
        status,
        reason,
        message,
    )
    now = objects.now()
    return {
        "type": kind,
        "status": status,
        "lastUpdateTime": now if refresh or not same else before["lastUpdateTime"],
        "lastTransitionTime": before["lastTransitionTime"]
        if before.get("status") == status
        else now,
        "reason": reason,
        "message": message,
    }
