"""The KServe stand-in: `LocalKServe` plays the KServe controller and what runs under it,
the Deployment controller (RawDeployment) or Knative (Serverless), serving each pod or
revision with the project's model server on a free 127.0.0.1 port.

The objects it reports are written as upstream computes them (KServe v0.15.2, Knative
Serving v1.17, Kubernetes' Deployment controller), so the real step code judges them as it
would on a cluster, the InferenceService's misleading copies included:

- RawDeployment: one replica rolled as `setDefaultDeploymentSpec` sets it (RollingUpdate
  25%/25%: one new pod beside the old, which goes once the new one is available); the
  Deployment's `Available` condition, and so the InferenceService's `PredictorReady` and
  `Ready`, stay True from the old pod (`PropagateRawStatus` copies them and the
  Deployment's `observedGeneration`, inference_service_status.go); `modelStatus` is the
  newest pod's (`PropagateModelStatus`). A server that exits never comes back, so its
  Deployment reports `ProgressDeadlineExceeded` at once instead of after 600 s.
- Serverless: a Knative Service whose revisions are servers; its traffic is what KServe's
  `createKnativeService` (ksvc_reconciler.go) asks for: all to the newest revision, or,
  with `canaryTrafficPercent` below 100 and a revision rolled out before, a split between
  the newest (`latest`) and that one (`prev`). The rolled-out revision moves as
  `PropagateStatus` moves it (when the newest ready revision has 100%), so a first deploy
  with a canary is split with itself on the next read, as on a cluster. Tag addresses are
  cluster-local names (`{tag}-{service}.{namespace}.svc.cluster.local`) that `reach`
  maps to the revision's port, as the cluster's DNS and gateway would.

The one difference: no DNS resolves cluster names here, so the InferenceService's
`status.address.url` is the loopback address of the server that takes the traffic.

With a `state_dir`, what serves is saved there, so the next run's apply finds the endpoint
as a cluster keeps it, its serving revision started again. Servers stop with `stop()`,
unless the caller keeps serving.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
import yaml

from textcnn import cli, storage
from textcnn.cluster import answers, canary, inference_service, kube, rollout
from workflows.checks.admission import validate_inference_service
from workflows.dag.inference_service import RUNTIMES
from workflows.dag.lightweight import step_arguments
from workflows.errors import WorkflowError
from workflows.local.plan import InMemory, StandIn, StandInContext
from workflows.local.stand_ins.objects import NAMESPACE, free_ports


@dataclass
class Revision:
    """A pod of the Deployment (RawDeployment) or a Knative revision (Serverless)."""

    name: str
    model_uri: str
    url: str
    log: Path
    proc: subprocess.Popen[bytes]

    @property
    def exited(self) -> bool:
        return self.proc.poll() is not None


@dataclass
class Service:
    doc: dict[str, Any]  # the InferenceService as applied, with metadata.generation
    revisions: dict[str, Revision] = field(default_factory=dict)  # running, oldest first
    latest: str = ""  # the revision of the pod template now
    made: int = 0  # revisions made so far
    generation: int = 0  # the Deployment's or Knative Service's metadata.generation
    latest_ready: str | None = None  # Knative's latestReadyRevisionName
    rolled_out: str | None = None  # KServe's latestRolledoutRevision (Serverless)
    previous_rolled_out: str | None = None

    @property
    def name(self) -> str:
        return str(self.doc["metadata"]["name"])

    @property
    def namespace(self) -> str:
        return str(self.doc["metadata"].get("namespace", NAMESPACE))

    @property
    def mode(self) -> str:
        return rollout.deployment_mode(self.doc)

    @property
    def predictor_name(self) -> str:
        return f"{self.name}-predictor"


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    """RFC 7386: objects merge, anything else (lists too) replaces; null deletes."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


def _condition(kind: str, ok: bool | None, reason: str = "", message: str = "") -> dict[str, Any]:
    status = "Unknown" if ok is None else str(ok)
    return {
        "type": kind,
        "status": status,
        **({"reason": reason} if reason else {}),
        **({"message": message} if message else {}),
    }


class LocalKServe:
    """Stands in for the KServe controller, the Deployment controller and Knative.

    `apply` checks the InferenceService as the API server and webhook would and starts a
    pod or revision of the new model; `object`, `deployment` and `knative_service` give the
    objects with the status their controllers would write, reconciling on each read (a
    ready new pod replaces the old; KServe's traffic follows the rolled-out revision).
    `wait` and `canary_check` run the real step code (`textcnn.cluster.inference_service
    .finish`, `textcnn.cluster.canary.check`) against them through an `Endpoint`.
    """

    def __init__(self, state_dir: Path | None = None) -> None:
        self.services: dict[str, Service] = {}
        self.state_dir = state_dir

    # -- the API: apply, patch, get

    def apply(self, ctx: StandInContext) -> dict[str, str]:
        self._apply(yaml.safe_load(ctx.manifest or ""), ctx)
        return {}

    def _apply(self, doc: dict[str, Any], ctx: StandInContext) -> None:
        problems = validate_inference_service(doc)
        if problems:
            raise WorkflowError("InferenceService rejected: " + "; ".join(problems))
        name = doc["metadata"]["name"]
        doc["metadata"].setdefault("namespace", NAMESPACE)
        service = self.services.get(name) or self._restore(name, ctx)
        if service is None:
            service = self.services[name] = Service(doc)
        doc["metadata"]["generation"] = int(service.doc["metadata"].get("generation", 0)) + 1
        service.doc, service.generation = doc, service.generation + 1
        uri = str(rollout.spec_uri(doc))
        current = service.revisions.get(service.latest)
        if current is None or current.model_uri != uri:
            self._new_template(service, uri, ctx)
        self._save(service)
        with ctx.log_path.open("a") as out:
            out.write(
                f"InferenceService {name} (generation {doc['metadata']['generation']}, "
                f"{service.mode}): revision {service.latest} for {uri}\n"
            )

    def _new_template(self, service: Service, uri: str, ctx: StandInContext) -> None:
        """A pod template for `uri`: a new revision (Knative), or a new ReplicaSet's pod
        unless an old ReplicaSet's pod still runs it (the Deployment scales that back up)."""
        if service.mode == rollout.RAW:
            old = next((r for r in service.revisions.values() if r.model_uri == uri), None)
            if old is not None and not old.exited:
                service.latest = old.name
                return
        service.latest = self._start(service, uri, ctx).name

    def patch(self, name: str, body: dict[str, Any], ctx: StandInContext) -> dict[str, Any]:
        """A JSON merge patch of the InferenceService's spec, applied as a new spec."""
        service = self._service(name)
        if set(body) != {"spec"}:
            raise WorkflowError(f"the local KServe patches the spec only: {body}")
        doc = json.loads(json.dumps(service.doc))
        _merge(doc["spec"], body["spec"])
        self._apply(doc, ctx)
        return self.object(name)

    def object(self, name: str) -> dict[str, Any]:
        """The InferenceService with the status KServe would write."""
        service = self._service(name)
        answering = self._reconcile(service)
        if service.mode == rollout.RAW:
            status = self._raw_status(service, answering)
        else:
            status = self._serverless_status(service, self._knative_service(service, answering))
        status["deploymentMode"] = service.mode
        self._propagate(service)
        return {**service.doc, "status": status}

    def predictor(self, name: str, mode: str) -> dict[str, Any]:
        """The object that runs the predictor in `mode` ({} in the other mode)."""
        service = self._service(name)
        if mode != service.mode:
            return {}
        answering = self._reconcile(service)
        found = (self._deployment if mode == rollout.RAW else self._knative_service)(
            service, answering
        )
        self._propagate(service)
        return found

    def reach(self, url: str) -> str:
        """A cluster-local tag address as the cluster's DNS and gateway would route it: to
        the revision's loopback port; other addresses as they are."""
        host = urlsplit(url).hostname or ""
        for service in self.services.values():
            for target in self._traffic(service):
                tag, revision = target.get("tag"), target.get("revisionName")
                local = f"{tag}-{urlsplit(self._route_address(service)).hostname}"
                if tag and host == local and revision in service.revisions:
                    return service.revisions[revision].url
        return url

    @staticmethod
    def _route_address(service: Service) -> str:
        """The Knative route's cluster-local address (pkg/reconciler/route/route.go)."""
        return f"http://{service.predictor_name}.{service.namespace}.svc.cluster.local"

    # -- the controllers

    def _reconcile(self, service: Service) -> set[str]:
        """What the controllers do before a read; returns the revisions that answer.

        RawDeployment: once the new pod is available the old ones go (maxUnavailable 0;
        Kubernetes pkg/controller/deployment/rolling.go `reconcileOldReplicaSets`), and what
        serves is saved. Serverless: the latest created revision becomes Knative's latest
        ready one (configuration_lifecycle.go `SetLatestReadyRevisionName`)."""
        answering = {n for n, r in service.revisions.items() if self._answers(r, service.name)}
        if service.mode == rollout.RAW:
            old = set(service.revisions) - {service.latest} if service.latest in answering else ()
            for name in old:
                self._stop_revision(service, name)
            if old:
                self._save(service)
        elif service.latest in answering:
            service.latest_ready = service.latest
        return answering & set(service.revisions)

    def _propagate(self, service: Service) -> None:
        """What KServe does after it reported (Serverless): `PropagateStatus` records the
        latest ready revision as rolled out once it has all the traffic, which the next
        reconcile's traffic follows; revisions the traffic no longer names go."""
        if service.mode != rollout.SERVERLESS:
            return
        for target in self._traffic(service):
            if (
                target["revisionName"] == service.latest_ready
                and target["latestRevision"]
                and target["percent"] == 100
                and service.rolled_out != service.latest_ready
            ):
                service.previous_rolled_out = service.rolled_out
                service.rolled_out = service.latest_ready
                self._save(service)
        named = {t["revisionName"] for t in self._traffic(service)}
        for old in set(service.revisions) - named - {service.latest}:
            self._stop_revision(service, old)

    def _traffic(self, service: Service) -> list[dict[str, Any]]:
        """Knative's status.traffic for KServe's spec.traffic (`createKnativeService`): the
        `latestRevision` target resolved to the latest ready revision."""
        spec = service.doc["spec"]["predictor"]
        percent = spec.get("canaryTrafficPercent")
        tagged = service.doc["metadata"].get("annotations", {}).get(rollout.TAG_ROUTING) == "true"
        latest: dict[str, Any] = {
            "latestRevision": True,
            "revisionName": service.latest_ready,
            **({"tag": rollout.CANARY_TAG} if tagged else {}),
        }
        if percent is not None and service.rolled_out and int(percent) < 100:
            targets: list[dict[str, Any]] = [
                {**latest, "percent": int(percent)},
                {
                    "latestRevision": False,
                    "revisionName": service.rolled_out,
                    "percent": 100 - int(percent),
                    "tag": rollout.PREVIOUS_TAG,
                },
            ]
        else:
            targets = [{**latest, "percent": 100}]
        return [t for t in targets if t["revisionName"]]

    def _deployment(self, service: Service, answering: set[str]) -> dict[str, Any]:
        """The apps/v1 Deployment `<isvc>-predictor`, one replica, as KServe writes its spec
        (deployment_reconciler.go `setDefaultDeploymentSpec`; predictor.go
        `addStorageInitializerAnnotations`) and the Deployment controller its status
        (pkg/controller/deployment/sync.go `calculateStatus`, progress.go
        `syncRolloutStatus`)."""
        new = service.revisions[service.latest]
        available = len(answering)
        rolled = service.latest in answering and len(service.revisions) == 1
        if new.exited:
            progressing = _condition(
                "Progressing",
                False,
                "ProgressDeadlineExceeded",
                f'ReplicaSet "{new.name}" has timed out progressing.',
            )
        elif rolled:
            progressing = _condition("Progressing", True, "NewReplicaSetAvailable")
        else:
            progressing = _condition("Progressing", True, "ReplicaSetUpdated")
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": service.predictor_name,
                "namespace": service.namespace,
                "generation": service.generation,
            },
            "spec": {
                "replicas": 1,
                "progressDeadlineSeconds": 600,
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
                },
                "template": {
                    "metadata": {"annotations": {rollout.SOURCE_URI: new.model_uri}},
                    "spec": {"containers": [{"name": "kserve-container"}]},
                },
            },
            "status": {
                "observedGeneration": service.generation,
                "replicas": len(service.revisions),
                "updatedReplicas": 1,
                "readyReplicas": available,
                "availableReplicas": available,
                "conditions": [
                    _condition(
                        "Available",
                        available >= 1,
                        "MinimumReplicasAvailable"
                        if available >= 1
                        else "MinimumReplicasUnavailable",
                    ),
                    progressing,
                ],
            },
        }

    def _knative_service(self, service: Service, answering: set[str]) -> dict[str, Any]:
        """The serving.knative.dev/v1 Service `<isvc>-predictor`: its status as Knative
        writes it (service_lifecycle.go `PropagateConfigurationStatus`,
        configuration_lifecycle.go `MarkLatestCreatedFailed`, traffic.go
        `GetRevisionTrafficTargets` for the external tag URLs, knative.dev/pkg
        `PostProcessReconcile` for observedGeneration)."""
        new = service.revisions[service.latest]
        # KServe's install: domain template {{.Name}}-{{.Namespace}}.{{.Domain}}, example.com.
        external = f"{service.predictor_name}-{service.namespace}.example.com"
        if new.exited:
            configured = _condition(
                "ConfigurationsReady",
                False,
                rollout.REVISION_FAILED,
                f'Revision "{new.name}" failed with message: {self._tail(new)}.',
            )
        else:
            configured = _condition("ConfigurationsReady", service.latest in answering or None)
        traffic = [
            {**t, **({"url": f"http://{t['tag']}-{external}"} if "tag" in t else {})}
            for t in self._traffic(service)
        ]
        routed = bool(traffic) and all(t["revisionName"] in answering for t in traffic)
        routes = _condition("RoutesReady", routed or None)
        ready = configured["status"] == "True" and routed
        # A failed latest revision fails the Service (the living condition set's Ready).
        top = {**configured, "type": "Ready"} if configured["status"] == "False" else None
        return {
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Service",
            "metadata": {
                "name": service.predictor_name,
                "namespace": service.namespace,
                "generation": service.generation,
            },
            "spec": {
                "template": {"metadata": {"annotations": {rollout.SOURCE_URI: new.model_uri}}},
            },
            "status": {
                "observedGeneration": service.generation,
                "latestCreatedRevisionName": new.name,
                **(
                    {"latestReadyRevisionName": service.latest_ready}
                    if service.latest_ready
                    else {}
                ),
                "url": f"http://{external}",
                "address": {"url": self._route_address(service)},
                "traffic": traffic,
                "conditions": [
                    configured,
                    routes,
                    top or _condition("Ready", ready or None),
                ],
            },
        }

    def _raw_status(self, service: Service, answering: set[str]) -> dict[str, Any]:
        """KServe's `PropagateRawStatus` and `PropagateModelStatus` over the Deployment."""
        status = self._deployment(service, answering)["status"]
        available = status["conditions"][0]
        # The predictor's Service routes to the available pods; here, to the newest.
        serving = [r for r in reversed(service.revisions.values()) if r.name in answering]
        out: dict[str, Any] = {
            "observedGeneration": status["observedGeneration"],
            "conditions": [
                {**available, "type": "PredictorReady"},
                {**available, "type": "Ready"},
            ],
            "modelStatus": self._model_status(
                service.revisions[service.latest], available["status"] == "True"
            ),
        }
        if available["status"] == "True" and serving:
            out.update(url=serving[0].url, address={"url": serving[0].url})
        return out

    def _serverless_status(self, service: Service, ksvc: dict[str, Any]) -> dict[str, Any]:
        """KServe's `PropagateStatus` over the Knative Service."""
        status = ksvc["status"]
        conditions = {c["type"]: c for c in status["conditions"]}
        ready = conditions["Ready"]["status"] == "True"
        predictor: dict[str, Any] = {
            "latestCreatedRevision": status["latestCreatedRevisionName"],
            "traffic": status["traffic"],
        }
        for key, value in (
            ("latestReadyRevision", service.latest_ready),
            ("latestRolledoutRevision", service.rolled_out),
            ("previousRolledoutRevision", service.previous_rolled_out),
        ):
            if value:
                predictor[key] = value
        out: dict[str, Any] = {
            "observedGeneration": status["observedGeneration"],
            "conditions": [
                {**conditions["ConfigurationsReady"], "type": "PredictorConfigurationReady"},
                {**conditions["RoutesReady"], "type": "PredictorRouteReady"},
                {**conditions["Ready"], "type": "PredictorReady"},
                {**conditions["Ready"], "type": "Ready"},
            ],
            "components": {"predictor": predictor},
            "modelStatus": self._model_status(
                service.revisions[service.latest], service.latest == service.latest_ready
            ),
        }
        if ready:
            predictor.update(url=status["url"], address=status["address"])
            main = max(status["traffic"], key=lambda t: (t["percent"], t["latestRevision"]))
            url = service.revisions[main["revisionName"]].url
            out.update(url=url, address={"url": url})
        return out

    def _model_status(self, newest: Revision, ready: bool) -> dict[str, Any]:
        """`PropagateModelStatus`: Loaded while the service counts as ready (RawDeployment:
        the Deployment is Available, old pods included; Serverless: the latest created
        revision is the ready one), else the newest pod's state."""
        if ready or not newest.exited:
            return {"states": {"targetModelState": "Loaded"}, "transitionStatus": "UpToDate"}
        return {
            "states": {"targetModelState": "FailedToLoad"},
            "transitionStatus": "BlockedByFailedLoad",
            "lastFailureInfo": {
                "reason": "ModelLoadFailed",
                "exitCode": newest.proc.returncode,
                "message": f"{self._tail(newest)} (log: {newest.log})",
            },
        }

    # -- the steps that run against it

    def endpoint(self, name: str, ctx: StandInContext) -> kube.Endpoint:
        """The step code's view of the service: this stand-in instead of the API server;
        every read ends the task on an interrupt."""

        def get() -> dict[str, Any]:
            ctx.check_stopping()
            return self.object(name) if name in self.services else {}

        return kube.Endpoint(
            get=get,
            patch=lambda body: self.patch(name, body, ctx),
            predictor=lambda mode: self.predictor(name, mode),
            reach=self.reach,
        )

    def wait(self, ctx: StandInContext) -> dict[str, str]:
        args = self._step_args("deploy-wait", ctx)
        model_dir = args.pop("model_dir")
        outputs = inference_service.finish(
            self.endpoint(args["name"], ctx),
            lambda texts: answers.offline(model_dir, texts),
            **{k: v for k, v in args.items() if k != "poll_s"},
            poll_s=0.5,
        )
        with ctx.log_path.open("a") as out:
            out.write(
                f"endpoint {outputs['endpoint']} serves the new model: the smoke texts got "
                "its answers\n"
            )
        return outputs

    def canary_check(self, ctx: StandInContext) -> dict[str, str]:
        args = self._step_args("canary-check", ctx)
        outputs = canary.check(
            self.endpoint(args["name"], ctx),
            lambda texts: answers.offline(args["model_dir"], texts),
            namespace=args["namespace"],
            name=args["name"],
            texts=canary.probe_texts(
                args["test_path"], args["text_column"], args["label_column"], args["canary_probes"]
            ),
            max_latency_ms=args["canary_max_latency_ms"],
            metadata_store=args["metadata_store"],
            run_name=args["run_name"],
            model_id=args["model_id"],
            model_uri=args["model_uri"],
            timeout_s=args["timeout_s"],
        )
        with ctx.log_path.open("a") as out:
            out.write(f"{outputs['reason']}\n")
        return outputs

    def stand_ins(self) -> dict[str, StandIn]:
        found: dict[str, StandIn] = {
            f"deploy-{runtime}": InMemory(self.apply) for runtime in RUNTIMES
        }
        return found | {"deploy-wait": self.wait, "canary-check": self.canary_check}

    # -- serving

    @property
    def servers(self) -> list[Revision]:
        return [r for s in self.services.values() for r in s.revisions.values()]

    def serve_forever(self) -> None:
        """Block while the servers run (until a signal: see workflows.local.signals)."""
        for revision in self.servers:
            revision.proc.wait()

    def stop(self, name: str | None = None) -> int:
        """Stop the servers of one service, or all; return how many were running."""
        running = 0
        for key in [name] if name else list(self.services):
            service = self.services.pop(key)
            for revision in list(service.revisions):
                running += self._stop_revision(service, revision)
        return running

    # -- helpers

    def _service(self, name: str) -> Service:
        if name not in self.services:
            raise RuntimeError(f"inferenceservices.serving.kserve.io {name!r} not found")
        return self.services[name]

    @staticmethod
    def _step_args(step: str, ctx: StandInContext) -> dict[str, Any]:
        """The pod's arguments, parsed by the step's own parser."""
        parser = cli.build_parser(step, cli.load_step(step))
        args = vars(parser.parse_args(step_arguments(ctx.template["container"])))
        args.pop("outputs")
        return args

    @staticmethod
    def _answers(revision: Revision, model: str) -> bool:
        if revision.exited:
            return False
        try:
            return requests.get(f"{revision.url}/v1/models/{model}", timeout=2).ok
        except requests.RequestException:
            return False

    @staticmethod
    def _tail(revision: Revision) -> str:
        return " | ".join(revision.log.read_text(errors="replace").splitlines()[-3:])

    def _start(
        self, service: Service, uri: str, ctx: StandInContext, revision: str | None = None
    ) -> Revision:
        """A new revision (or, restoring, the named one): the model server over the model
        at `uri`, downloaded as KServe's storage initializer would."""
        if revision is None:
            service.made += 1
            revision = f"{service.predictor_name}-{service.made:05d}"
        model_dir = ctx.pod_dir / "mnt" / revision
        storage.download_dir(uri, model_dir)
        (port,) = free_ports(1)
        log = ctx.output_dir / "logs" / f"{revision}-server.log"
        # KServe's batcher sidecar gathers requests in front of either runtime; here the
        # server's own batching does that work, with the same limits.
        batcher = service.doc["spec"]["predictor"].get("batcher", {})
        command = [
            sys.executable,
            "-m",
            "textcnn.serving",
            f"--model_dir={model_dir}",
            f"--model_name={service.name}",
            f"--port={port}",
            "--host=127.0.0.1",
            *(
                f"--{option}={batcher[key]}"
                for key, option in (
                    ("maxBatchSize", "max_batch_size"),
                    ("maxLatency", "max_latency_ms"),
                )
                if key in batcher
            ),
        ]
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("w") as out:
            out.write(f"$ {shlex.join(command)}\n")
            out.flush()
            proc = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=ctx.env,
                start_new_session=True,
            )
        found = Revision(revision, uri, f"http://127.0.0.1:{port}", log, proc)
        service.revisions[revision] = found
        return found

    @staticmethod
    def _stop_revision(service: Service, name: str) -> int:
        proc = service.revisions.pop(name).proc
        if proc.poll() is not None:
            return 0
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        return 1

    def _state(self, name: str) -> Path | None:
        return None if self.state_dir is None else self.state_dir / f"{name}.json"

    def _serving(self, service: Service) -> Revision | None:
        """The revision that serves for good: the rolled-out one (Serverless) or the only
        pod left after a rollout (RawDeployment)."""
        if service.mode == rollout.SERVERLESS:
            return service.revisions.get(service.rolled_out or "")
        if len(service.revisions) == 1 and service.latest in service.revisions:
            return service.revisions[service.latest]
        return None

    def _save(self, service: Service) -> None:
        """What a cluster would keep of the endpoint: the object and the model it serves."""
        path, serving = self._state(service.name), self._serving(service)
        if path is None or serving is None or serving.exited:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {"doc": service.doc, "revision": serving.name, "model_uri": serving.model_uri}
        path.write_text(json.dumps({**state, "made": service.made}, indent=1))

    def _restore(self, name: str, ctx: StandInContext) -> Service | None:
        """The endpoint an earlier run left (state_dir), its serving revision started
        again: it keeps serving while the next one rolls out."""
        path = self._state(name)
        if path is None or not path.is_file():
            return None
        state = json.loads(path.read_text())
        doc = state["doc"]
        service = self.services[name] = Service(
            doc, made=state["made"], generation=int(doc["metadata"].get("generation", 1))
        )
        try:
            revision = self._start(service, state["model_uri"], ctx, state["revision"])
        except FileNotFoundError:  # its model is gone: nothing to keep serving
            del self.services[name]
            return None
        service.latest = service.latest_ready = service.rolled_out = revision.name
        return service
