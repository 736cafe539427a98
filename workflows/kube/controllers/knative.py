"""Knative Serving (knative-v1.17.0) for a predictor's Knative Service: its Configuration's
revisions as pods (pods.py) and its Route's traffic, with the status Knative writes.

- A revision per template change, named `<service>-<configuration generation, 5 digits>`
  (pkg/reconciler/configuration/resources/revision.go); the latest created becomes the
  latest ready once its pod is ready (configuration_lifecycle.go
  `SetLatestCreatedRevisionName`, `SetLatestReadyRevisionName`), a failed one fails the
  Configuration (`MarkLatestCreatedFailed`: RevisionFailed, 'Revision "X" failed with
  message: ...').
- The Route's traffic: the spec's targets, a `latestRevision` one resolved to the latest
  ready revision; tagged targets get their URL on the external domain
  (route/traffic/traffic.go `GetRevisionTrafficTargets`). A revision no target names and
  not the latest is scaled to zero: its server stops.
- Conditions (service_lifecycle.go `PropagateConfigurationStatus`, the Route's
  readiness): ConfigurationsReady, RoutesReady (every target's revision ready) and
  Ready; observedGeneration after each reconcile (knative.dev/pkg `PostProcessReconcile`).
"""

from __future__ import annotations

from typing import Any

import workflows.kube.controllers.addresses as addresses
from workflows.kube.controllers.conditions import READY, ConditionSet, status_of
from workflows.kube.controllers.pods import Pod, Servers

SERVICE_CONDITIONS = ConditionSet("ConfigurationsReady", "RoutesReady")
REVISION_FAILED = "RevisionFailed"


class Revisions:
    """The revisions of one Knative Service, oldest first; `sync` returns its status."""

    def __init__(self, servers: Servers, model_name: str, made: int = 0) -> None:
        self.servers, self.model_name = servers, model_name
        self.revisions: dict[str, Pod] = {}
        self.made = made  # the Configuration's generation: revisions made so far
        self.latest = ""  # latestCreatedRevisionName
        self.latest_ready = ""
        self.template: dict[str, Any] | None = None  # the latest revision's
        self.last_traffic: list[dict[str, Any]] = []  # status.traffic, as last synced

    def adopt(self, pod: Pod) -> None:
        """A revision that already exists (restored): latest created and ready."""
        self.revisions[pod.name] = pod
        self.latest = self.latest_ready = pod.name
        self.template = pod.template

    def sync(self, service: dict[str, Any]) -> dict[str, Any]:
        meta, spec = service["metadata"], service["spec"]
        name, namespace = meta["name"], meta["namespace"]
        template = spec["template"]
        if template != self.template:
            self.made += 1
            self.latest, self.template = f"{name}-{self.made:05d}", template
            self.revisions[self.latest] = self.servers.start(self.latest, template, self.model_name)
        for pod in self.revisions.values():
            self.servers.probe(pod, self.model_name)
        if self.revisions[self.latest].ready:
            self.latest_ready = self.latest
        traffic = self.last_traffic = self.traffic(spec, name, namespace)
        named = {t["revisionName"] for t in traffic}
        for old in set(self.revisions) - named - {self.latest}:
            self.revisions.pop(old).stop()
        return {
            "observedGeneration": meta.get("generation", 1),
            "latestCreatedRevisionName": self.latest,
            **({"latestReadyRevisionName": self.latest_ready} if self.latest_ready else {}),
            "url": addresses.url(addresses.external(name, namespace)),
            "address": {"url": addresses.url(addresses.cluster_local(name, namespace))},
            "traffic": traffic,
            "conditions": self._conditions(service, traffic),
        }

    def traffic(self, spec: dict[str, Any], name: str, namespace: str) -> list[dict[str, Any]]:
        """status.traffic for the spec's targets; a latestRevision target with no ready
        revision yet is left out."""
        out = []
        for target in spec.get("traffic") or [{"latestRevision": True, "percent": 100}]:
            revision = (
                self.latest_ready if target.get("latestRevision") else target.get("revisionName")
            )
            if not revision:
                continue
            found = {**target, "revisionName": revision}
            if target.get("tag"):
                host = addresses.external(addresses.tagged(target["tag"], name), namespace)
                found["url"] = addresses.url(host)
            out.append(found)
        return out

    def _conditions(
        self, service: dict[str, Any], traffic: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        conditions = list((service.get("status") or {}).get("conditions") or [])
        latest = self.revisions[self.latest]
        if latest.exited:
            message = f'Revision "{latest.name}" failed with message: {latest.failure()}.'
            conditions = SERVICE_CONDITIONS.mark(
                conditions, "ConfigurationsReady", "False", REVISION_FAILED, message
            )
        else:
            ok = True if self.latest == self.latest_ready else None
            conditions = SERVICE_CONDITIONS.mark(conditions, "ConfigurationsReady", status_of(ok))
        routed = bool(traffic) and all(
            t["revisionName"] in self.revisions and self.revisions[t["revisionName"]].ready
            for t in traffic
        )
        conditions = SERVICE_CONDITIONS.mark(
            conditions, "RoutesReady", status_of(True if routed else None)
        )
        return [c for c in conditions if c["type"] in ("ConfigurationsReady", "RoutesReady", READY)]
