"""The InferenceService controller: KServe, with the Deployment controller (RawDeployment)
or Knative Serving (Serverless) under it, over the store.

Each reconcile of an InferenceService, in one pass: KServe writes the predictor's
Deployment or Knative Service spec (`<name>-predictor`; its generation grows when the
spec changes), the controller under it rolls its pods or revisions (deployment.py,
knative.py) and writes its status, and KServe propagates that into the InferenceService's
status (kserve.py). The spec comes from the store, so a merge patch of the
InferenceService is just a store patch: its generation grows and the next reconcile
follows it.

No DNS resolves the cluster's names here: `routes()` maps every host a process may ask
for (the InferenceService's and the predictor's, cluster-local and external, and each
traffic tag's) to the loopback URL of the server that takes that traffic, for the proxy
gateway the steps reach models through.

With a `state_dir`, what serves for good is kept there (endpoints.py); a new controller
puts those InferenceServices back in its store, as a cluster keeps them, and starts their
serving pod again at its first reconcile.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import workflows.kube.controllers.addresses as addresses
import workflows.kube.controllers.kserve as kserve
from workflows.kube.controllers.deployment import DeploymentPods
from workflows.kube.controllers.endpoints import Endpoint, Endpoints
from workflows.kube.controllers.kinds import DEPLOYMENT, INFERENCE_SERVICE, KNATIVE_SERVICE
from workflows.kube.controllers.knative import Revisions
from workflows.kube.controllers.pods import Pod, Serve, Servers
from workflows.kube.objects import Kind, NotFound, Objects

Key = tuple[str, str]  # namespace, name


@dataclass
class Predictor:
    mode: str
    pods: DeploymentPods | Revisions

    @property
    def kind(self) -> Kind:
        return DEPLOYMENT if self.mode == kserve.RAW else KNATIVE_SERVICE

    def all_pods(self) -> list[Pod]:
        found = self.pods.pods if isinstance(self.pods, DeploymentPods) else self.pods.revisions
        return list(found.values())


class InferenceServices:
    """Serves the InferenceServices of `objects`. `serve` is the model server hook
    (pods.py); server logs go to `<logs_dir>/<pod>-server.log`, each pod's folder is
    `<work_dir>/<pod>`, `env` is every server's base environment (default: this
    process's), `state_dir` keeps the endpoints between runs, and `progress_deadline_s` is
    the Deployments' progressDeadlineSeconds (KServe's 600, unless a run asks for less)."""

    def __init__(
        self,
        objects: Objects,
        serve: Serve,
        *,
        logs_dir: Path,
        work_dir: Path,
        state_dir: Path | None = None,
        env: Mapping[str, str] | None = None,
        progress_deadline_s: int = 600,
    ) -> None:
        self.objects = objects
        self.progress_deadline_s = progress_deadline_s
        self._servers = Servers(serve, logs_dir, work_dir, os.environ if env is None else env)
        self._endpoints = Endpoints(state_dir)
        self._predictors: dict[Key, Predictor] = {}
        self._restoring: dict[Key, Endpoint] = {}  # put back, their pod not started yet
        self._routes: dict[str, str] = {}  # published whole: the proxy reads it any time
        self._routes_by_key: dict[Key, dict[str, str]] = {}
        self._lock = threading.Lock()  # a reconcile against stop()
        self._closed = False
        for kept in self._endpoints.kept():
            self._put_back(kept)

    # -- what the runner and the proxy call

    def routes(self) -> dict[str, str]:
        """Host -> loopback URL of the server that takes its traffic (as of the last
        reconcile)."""
        return dict(self._routes)

    @property
    def servers(self) -> list[Pod]:
        """The model servers running now."""
        return [p for pr in list(self._predictors.values()) for p in pr.all_pods() if p.running]

    def serve_forever(self) -> None:
        """Block while the servers run (until a signal: see workflows.local.signals)."""
        for pod in self.servers:
            assert pod.proc is not None
            pod.proc.wait()

    def stop(self) -> int:
        """Stop every server, for good; return how many were running."""
        with self._lock:
            self._closed = True
            return sum(p.stop() for pr in self._predictors.values() for p in pr.all_pods())

    def close(self) -> None:
        self.stop()

    # -- the controller

    def reconcile(self) -> None:
        with self._lock:
            if self._closed:
                return
            seen, errors = set(), []
            for isvc in self.objects.list_of(INFERENCE_SERVICE):
                key = (isvc["metadata"]["namespace"], isvc["metadata"]["name"])
                seen.add(key)
                try:
                    self._sync(key, isvc)
                except NotFound:  # deleted meanwhile: gone below, next time
                    continue
                except Exception as e:  # one service's trouble must not stall the others
                    errors.append(e)
            for key in set(self._predictors) - seen:
                self._delete(key)
            for key in set(self._restoring) - seen:  # deleted before it served again
                self._endpoints.forget(self._restoring.pop(key).isvc["metadata"]["name"])
        if errors:
            raise errors[0]

    def _sync(self, key: Key, isvc: dict[str, Any]) -> None:
        predictor = self._predictor(key, isvc)
        if predictor.mode == kserve.RAW:
            spec = kserve.deployment_spec(isvc, self.progress_deadline_s)
        else:
            spec = kserve.knative_spec(isvc)
        obj = self._predictor_object(predictor.kind, isvc, spec)
        obj["status"] = predictor.pods.sync(obj)
        # The routes follow the pods before any status says so: a step that reads a
        # rolled-out status finds the gateway routing to the new pod already.
        self._publish_routes(key, self._routes_of(key))
        if obj != self._get(predictor.kind, key[0], obj["metadata"]["name"]):
            obj = self.objects.put(predictor.kind, key[0], obj)
        if predictor.mode == kserve.RAW:
            status = kserve.raw_status(isvc, obj, list(reversed(predictor.all_pods())))
        else:
            assert isinstance(predictor.pods, Revisions)
            latest = predictor.pods.revisions.get(predictor.pods.latest)
            status = kserve.serverless_status(isvc, obj, [latest] if latest else [])
        if status != isvc.get("status"):
            isvc = self.objects.write_status(INFERENCE_SERVICE, key[0], key[1], status)
        self._keep(isvc, obj, predictor)

    def _predictor(self, key: Key, isvc: dict[str, Any]) -> Predictor:
        """The predictor's pods: as they are, restored, or made anew (the mode changed)."""
        mode = kserve.deployment_mode(isvc)
        found = self._predictors.get(key)
        if found is not None and found.mode == mode:
            return found
        for pod in found.all_pods() if found else []:
            pod.stop()
        kept, model = self._restoring.pop(key, None), isvc["metadata"]["name"]
        pods: DeploymentPods | Revisions = (
            DeploymentPods(self._servers, model)
            if mode == kserve.RAW
            else Revisions(self._servers, model, made=kept.made if kept else 0)
        )
        predictor = self._predictors[key] = Predictor(mode, pods)
        if kept is not None:
            self._restart(predictor, kept, model)
        return predictor

    def _restart(self, predictor: Predictor, kept: Endpoint, model: str) -> None:
        """The kept serving pod, started again under its old name."""
        pod = self._servers.start(kept.pod, kept.template, model)
        if isinstance(predictor.pods, DeploymentPods):
            predictor.pods.pods[kept.pod] = pod
            predictor.pods.new = kept.pod
        else:
            predictor.pods.adopt(pod)

    def _predictor_object(
        self, kind: Kind, isvc: dict[str, Any], spec: dict[str, Any]
    ) -> dict[str, Any]:
        """The Deployment or Knative Service as KServe writes it (its generation grows
        with each new spec), with the status it has now."""
        meta = isvc["metadata"]
        name, namespace = kserve.predictor_name(isvc), meta["namespace"]
        existing = self._get(kind, namespace, name) or {}
        generation = int((existing.get("metadata") or {}).get("generation", 0))
        if existing.get("spec") != spec:
            generation += 1
        owner = {
            "apiVersion": INFERENCE_SERVICE.api_version,
            "kind": INFERENCE_SERVICE.kind,
            "name": meta["name"],
            "uid": meta.get("uid", ""),
            "controller": True,
            "blockOwnerDeletion": True,
        }
        return {
            "apiVersion": kind.api_version,
            "kind": kind.kind,
            "metadata": {
                **(existing.get("metadata") or {}),
                "name": name,
                "namespace": namespace,
                "generation": generation,
                "ownerReferences": [owner],
            },
            "spec": spec,
            "status": existing.get("status") or {},
        }

    def _get(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.objects.get(kind, namespace, name)
        except NotFound:
            return None

    def _delete(self, key: Key) -> None:
        """The InferenceService is gone: its pods, its predictor object (owned by it) and
        what was kept of it go too."""
        predictor = self._predictors.pop(key)
        self._publish_routes(key, {})
        for pod in predictor.all_pods():
            pod.stop()
        self._endpoints.forget(key[1])
        name = f"{key[1]}-predictor"  # deleted last: its event says all of it is gone
        if self._get(predictor.kind, key[0], name) is not None:
            self.objects.delete(predictor.kind, key[0], name)

    # -- what outlives the run

    def _keep(self, isvc: dict[str, Any], obj: dict[str, Any], predictor: Predictor) -> None:
        """Keep the endpoint once a pod serves for good: the rolled-out revision
        (Serverless), or the only pod left once rolled out (RawDeployment)."""
        if isinstance(predictor.pods, DeploymentPods):
            pods = predictor.pods.pods
            pod = pods.get(predictor.pods.new) if len(pods) == 1 else None
            made = 0
        else:
            components = (isvc.get("status") or {}).get("components") or {}
            rolled = (components.get("predictor") or {}).get("latestRolledoutRevision", "")
            pod, made = predictor.pods.revisions.get(rolled), predictor.pods.made
        if pod is not None and pod.ready:
            kept = Endpoint(isvc, obj, pod.name, pod.template, made)
            self._endpoints.save(isvc["metadata"]["name"], kept)

    def _put_back(self, kept: Endpoint) -> None:
        """A kept endpoint, back in the store (unless already there); its pod starts at
        the first reconcile."""
        meta = kept.isvc["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        if self._get(INFERENCE_SERVICE, namespace, name) is not None:
            return
        mode = kserve.deployment_mode(kept.isvc)
        kind = DEPLOYMENT if mode == kserve.RAW else KNATIVE_SERVICE
        self.objects.put(INFERENCE_SERVICE, namespace, kept.isvc)
        self.objects.put(kind, namespace, kept.predictor)
        self._restoring[(namespace, name)] = kept

    # -- the gateway's routes

    def _publish_routes(self, key: Key, routes: dict[str, str]) -> None:
        self._routes_by_key[key] = routes
        self._routes = {h: u for found in self._routes_by_key.values() for h, u in found.items()}

    def _routes_of(self, key: Key) -> dict[str, str]:
        predictor = self._predictors.get(key)
        if predictor is None:
            return {}
        namespace, name = key
        predictor_host = f"{name}-predictor"
        main_hosts = [
            addresses.external(name, namespace),
            addresses.cluster_local(predictor_host, namespace),
            addresses.external(predictor_host, namespace),
        ]
        if isinstance(predictor.pods, DeploymentPods):
            serving = predictor.pods.serving  # the predictor Service's newest ready pod
            return {h: serving.url for h in main_hosts} if serving else {}
        return _knative_routes(predictor.pods, namespace, name, main_hosts)


def _knative_routes(
    revisions: Revisions, namespace: str, name: str, main_hosts: list[str]
) -> dict[str, str]:
    """The main hosts go to the ready revision with the most traffic (the newest on a
    tie); each tag's hosts to its revision."""
    ready = {n: p for n, p in revisions.revisions.items() if p.ready}
    targets = [t for t in revisions.last_traffic if t["revisionName"] in ready]
    found: dict[str, str] = {}
    if targets:
        main = max(targets, key=lambda t: (t.get("percent", 0), bool(t.get("latestRevision"))))
        url = ready[main["revisionName"]].url
        found.update({h: url for h in [addresses.cluster_local(name, namespace), *main_hosts]})
    predictor = f"{name}-predictor"
    for t in targets:
        if t.get("tag"):
            route = addresses.tagged(t["tag"], predictor)
            for host in (
                addresses.cluster_local(route, namespace),
                addresses.external(route, namespace),
            ):
                found[host] = ready[t["revisionName"]].url
    return found
