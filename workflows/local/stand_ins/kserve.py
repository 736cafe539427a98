"""The KServe stand-in: `LocalKServe` serves each applied InferenceService's revisions with
the project's KServe model server, one free 127.0.0.1 port per revision."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

from textcnn import cli, storage
from textcnn.cluster import canary, inference_service
from workflows.checks.admission import validate_inference_service
from workflows.dag.inference_service import DEPLOYMENT_MODE, RUNTIMES
from workflows.dag.lightweight import step_arguments
from workflows.errors import WorkflowError
from workflows.local.plan import InMemory, StandIn, StandInContext
from workflows.local.stand_ins.objects import NAMESPACE, free_ports


@dataclass
class Revision:
    name: str  # <service>-predictor-0000N, as Knative names them
    model_uri: str
    url: str
    log: Path
    proc: subprocess.Popen[bytes]


@dataclass
class Service:
    doc: dict[str, Any]  # as applied, with metadata.generation
    revisions: dict[str, Revision] = field(default_factory=dict)  # the running ones
    traffic: list[tuple[str, int, str]] = field(default_factory=list)  # revision, %, tag
    rolled_out: str | None = None  # latestRolledoutRevision
    previous_rolled_out: str | None = None
    made: int = 0  # revisions made so far


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    """RFC 7386: objects merge, anything else (lists too) replaces; null deletes."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


def _storage_uri(doc: dict[str, Any]) -> str:
    predictor = doc["spec"]["predictor"]
    if "model" in predictor:
        return str(predictor["model"]["storageUri"])
    container = predictor["containers"][0]
    return str(next(e["value"] for e in container["env"] if e["name"] == "STORAGE_URI"))


class LocalKServe:
    """Stands in for the KServe controller and Knative.

    `apply` checks the InferenceService as the API server and webhook would and starts a
    revision: the project's KServe model server on a free 127.0.0.1 port over the model
    at its storageUri (TF Serving and this server answer the same V1 REST route). In
    Serverless mode with `canaryTrafficPercent` below 100, the rolled-out revision keeps
    serving next to the canary, and the status reports both in `traffic` with their own
    URLs (tags `prev` and `latest`), as KServe's tag routing does; the main URL is the
    canary's (the split is reported, not enforced). A patch of `canaryTrafficPercent`
    promotes (100) or rolls back (0) the canary. Otherwise a new revision replaces the old.

    The step code runs against it: `wait` is the real deploy-wait
    (`textcnn.cluster.inference_service.finish`) and `canary_check` the real canary check
    (`textcnn.cluster.canary.check`), over `object()`, the service with the status the
    controller would write.

    With a `state_dir`, what is rolled out is saved there, so the next run's apply finds
    the endpoint as a cluster keeps it: its rolled-out revision is started again. Servers
    stop with `stop()`, unless the caller keeps serving.
    """

    def __init__(self, state_dir: Path | None = None) -> None:
        self.services: dict[str, Service] = {}
        self.state_dir = state_dir

    # -- the controller

    def apply(self, ctx: StandInContext) -> dict[str, str]:
        self._apply(yaml.safe_load(ctx.manifest or ""), ctx)
        return {}

    def _apply(self, doc: dict[str, Any], ctx: StandInContext) -> None:
        problems = validate_inference_service(doc)
        if problems:
            raise WorkflowError("InferenceService rejected: " + "; ".join(problems))
        name = doc["metadata"]["name"]
        doc["metadata"].setdefault("namespace", NAMESPACE)
        percent = int(doc["spec"]["predictor"].get("canaryTrafficPercent", 100))
        serverless = doc["metadata"]["annotations"].get(DEPLOYMENT_MODE) == "Serverless"
        canary_wanted = serverless and percent < 100
        service = self.services.get(name) or self._restore(name, ctx, serve=canary_wanted)
        doc["metadata"]["generation"] = service.doc["metadata"]["generation"] + 1 if service else 1
        if service is None:
            service = self.services[name] = Service(doc)
        service.doc = doc
        new = self._start(service, _storage_uri(doc), ctx.pod_dir / "mnt" / "models", ctx)
        if canary_wanted and service.rolled_out in service.revisions:
            service.traffic = [
                (service.rolled_out, 100 - percent, canary.PREVIOUS_TAG),
                (new.name, percent, canary.CANARY_TAG),
            ]
            for old in set(service.revisions) - {service.rolled_out, new.name}:
                self._stop_revision(service, old)
        else:  # a full rollout: the new revision replaces the others
            for old in set(service.revisions) - {new.name}:
                self._stop_revision(service, old)
            service.traffic = [(new.name, 100, canary.CANARY_TAG)]
            service.previous_rolled_out, service.rolled_out = service.rolled_out, new.name
        self._save(name)
        with ctx.log_path.open("a") as out:
            out.write(
                f"InferenceService {name} (generation {doc['metadata']['generation']}): "
                f"revision {new.name} at {new.url}; traffic {service.traffic}\n"
            )

    def patch(
        self, name: str, body: dict[str, Any], ctx: StandInContext | None = None
    ) -> dict[str, Any]:
        """A JSON merge patch of `spec.predictor`. `canaryTrafficPercent` alone: 100
        promotes the canary, 0 rolls it back to the rolled-out revision. Anything else (the
        model's URI, with `ctx`): a new spec, so a new revision, as KServe makes one."""
        service = self._service(name)
        if set(body) != {"spec"} or set(body["spec"]) != {"predictor"}:
            raise WorkflowError(f"the local KServe patches spec.predictor only: {body}")
        changes = body["spec"]["predictor"]
        if set(changes) != {"canaryTrafficPercent"}:
            if ctx is None:
                raise WorkflowError("a new predictor spec needs the task's context")
            doc = json.loads(json.dumps(service.doc))
            _merge(doc["spec"]["predictor"], changes)
            self._apply(doc, ctx)
            return self.object(name)
        percent = changes["canaryTrafficPercent"]
        if percent not in (0, 100):
            raise WorkflowError(f"canaryTrafficPercent {percent}: the local KServe takes 0 or 100")
        service.doc["spec"]["predictor"]["canaryTrafficPercent"] = percent
        service.doc["metadata"]["generation"] += 1
        latest = next(r for r, _, tag in service.traffic if tag == canary.CANARY_TAG)
        previous = next((r for r, _, tag in service.traffic if tag == canary.PREVIOUS_TAG), None)
        if percent == 100:
            if previous is not None:
                self._stop_revision(service, previous)
            service.traffic = [(latest, 100, canary.CANARY_TAG)]
            service.previous_rolled_out, service.rolled_out = service.rolled_out, latest
        elif previous is not None:
            self._stop_revision(service, latest)
            service.traffic = [(previous, 100, canary.PREVIOUS_TAG)]
        self._save(name)
        return self.object(name)

    def object(self, name: str) -> dict[str, Any]:
        """The service object with the status the controller would write."""
        service = self._service(name)
        doc, generation = service.doc, service.doc["metadata"]["generation"]
        status: dict[str, Any] = {"observedGeneration": generation}
        serving = [service.revisions[r] for r, _, _ in service.traffic if r in service.revisions]
        newest = max(service.revisions.values(), key=lambda r: r.name, default=None)
        failed = next((r for r in serving if r.proc.poll() is not None), None)
        if failed is not None:
            tail = " | ".join(failed.log.read_text(errors="replace").splitlines()[-3:])
            status["modelStatus"] = {
                "states": {"targetModelState": "FailedToLoad"},
                "lastFailureInfo": {
                    "reason": "ModelLoadFailed",
                    "exitCode": failed.proc.returncode,
                    "message": f"{tail} (log: {failed.log})",
                },
            }
            return {**doc, "status": status}
        ready = all(self._answers(r, doc["metadata"]["name"]) for r in serving)
        main = serving[-1].url if serving else ""
        status["conditions"] = [
            {
                "type": "Ready",
                "status": "True" if ready else "False",
                **({} if ready else {"reason": "ModelLoading"}),
            }
        ]
        predictor: dict[str, Any] = {
            "latestCreatedRevision": newest.name if newest else None,
            "traffic": [
                {
                    "revisionName": r,
                    "percent": percent,
                    "tag": tag,
                    "latestRevision": newest is not None and r == newest.name,
                    "url": service.revisions[r].url,
                }
                for r, percent, tag in service.traffic
                if r in service.revisions
            ],
        }
        if ready:
            predictor["latestReadyRevision"] = predictor["latestCreatedRevision"]
            status.update(url=main, address={"url": main})
        for key, value in (
            ("latestRolledoutRevision", service.rolled_out),
            ("previousRolledoutRevision", service.previous_rolled_out),
        ):
            if value:
                predictor[key] = value
        status["components"] = {"predictor": predictor}
        return {**doc, "status": status}

    # -- the steps that run against it

    def wait(self, ctx: StandInContext) -> dict[str, str]:
        args = self._step_args("deploy-wait", ctx)
        outputs = inference_service.finish(
            self._getter(args["name"], ctx),
            **{k: v for k, v in args.items() if k != "poll_s"},
            poll_s=0.5,
            patch=lambda body: self.patch(args["name"], body, ctx),
        )
        with ctx.log_path.open("a") as out:
            out.write(f"endpoint {outputs['endpoint']} ready; smoke prediction answered\n")
        return outputs

    def canary_check(self, ctx: StandInContext) -> dict[str, str]:
        from textcnn.evaluation import predict_labels  # TensorFlow: only when it runs

        args = self._step_args("canary-check", ctx)
        name = args["name"]
        outputs = canary.check(
            self._getter(name, ctx),
            lambda body: self.patch(name, body),
            lambda texts: predict_labels(args["model_dir"], texts),
            namespace=args["namespace"],
            name=name,
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

    def _getter(self, name: str, ctx: StandInContext) -> Callable[[], dict[str, Any]]:
        """The API's get of the service, for step code; it ends the task on an interrupt."""

        def get() -> dict[str, Any]:
            ctx.check_stopping()
            return self.object(name)

        return get

    @staticmethod
    def _step_args(step: str, ctx: StandInContext) -> dict[str, Any]:
        """The pod's arguments, parsed by the step's own parser."""
        parser = cli.build_parser(step, cli.load_step(step))
        args = vars(parser.parse_args(step_arguments(ctx.template["container"])))
        args.pop("outputs")
        return args

    @staticmethod
    def _answers(revision: Revision, model: str) -> bool:
        try:
            return requests.get(f"{revision.url}/v1/models/{model}", timeout=2).ok
        except requests.RequestException:
            return False

    def _start(
        self,
        service: Service,
        uri: str,
        model_dir: Path,
        ctx: StandInContext,
        revision: str | None = None,
    ) -> Revision:
        """A new revision (or, restoring, the named one): the model server over the model
        at `uri`."""
        storage.download_dir(uri, model_dir)  # the storage initializer's download
        name = service.doc["metadata"]["name"]
        if revision is None:
            service.made += 1
            revision = f"{name}-predictor-{service.made:05d}"
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
            f"--model_name={name}",
            f"--port={port}",
            "--host=127.0.0.1",
            *(
                f"--{option}={batcher[field]}"
                for field, option in (
                    ("maxBatchSize", "max_batch_size"),
                    ("maxLatency", "max_latency_ms"),
                )
                if field in batcher
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

    def _save(self, name: str) -> None:
        """What a cluster would keep of the endpoint: the object and its rolled-out model."""
        path, service = self._state(name), self.services[name]
        if path is None or service.rolled_out not in service.revisions:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        rolled_out = service.revisions[service.rolled_out]
        state = {"doc": service.doc, "revision": rolled_out.name, "model_uri": rolled_out.model_uri}
        path.write_text(json.dumps({**state, "made": service.made}, indent=1))

    def _restore(self, name: str, ctx: StandInContext, serve: bool) -> Service | None:
        """The endpoint an earlier run left (state_dir); with `serve` (a canary needs it
        beside), its rolled-out revision is started again."""
        path = self._state(name)
        if path is None or not path.is_file():
            return None
        state = json.loads(path.read_text())
        service = self.services[name] = Service(state["doc"], made=state["made"])
        if not serve:
            return service
        try:
            revision = self._start(
                service,
                state["model_uri"],
                ctx.pod_dir / "mnt" / "previous",
                ctx,
                state["revision"],
            )
        except FileNotFoundError:  # its model is gone: nothing to keep serving
            del self.services[name]
            return None
        service.rolled_out = revision.name
        service.traffic = [(revision.name, 100, canary.CANARY_TAG)]
        return service
