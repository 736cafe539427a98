"""The KServe stand-in: `LocalKServe` serves each applied InferenceService's model with the
project's KServe model server on a free 127.0.0.1 port."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import requests
import yaml

from textcnn import cli, storage
from textcnn.cluster import inference_service
from workflows.checks.admission import validate_inference_service
from workflows.dag.inference_service import RUNTIMES
from workflows.errors import WorkflowError
from workflows.local.plan import InMemory, StandIn, StandInContext
from workflows.local.stand_ins.objects import NAMESPACE, free_ports


class LocalKServe:
    """Stands in for the KServe controller: `apply` checks the InferenceService as the API
    server and webhook would and starts the project's KServe model server on a free
    127.0.0.1 port over the model at its storageUri (for both runtimes: TF Serving and this
    server answer the same V1 REST route); `wait` runs the real deploy-wait step
    (`textcnn.cluster.inference_service.finish`: readiness judged on the service object,
    smoke prediction, endpoint recorded in ML Metadata) over an object whose status
    reflects that server.
    Servers stop with `stop()`, unless the caller keeps serving."""

    def __init__(self) -> None:
        self.servers: dict[str, tuple[subprocess.Popen[bytes], dict[str, Any], Path]] = {}

    def apply(self, ctx: StandInContext) -> dict[str, str]:
        doc = yaml.safe_load(ctx.manifest or "")
        problems = validate_inference_service(doc)
        if problems:
            raise WorkflowError("InferenceService rejected: " + "; ".join(problems))
        name = doc["metadata"]["name"]
        predictor = doc["spec"]["predictor"]
        uri = (
            predictor["model"]["storageUri"]
            if "model" in predictor
            else next(
                e["value"] for e in predictor["containers"][0]["env"] if e["name"] == "STORAGE_URI"
            )
        )
        model_dir = ctx.pod_dir / "mnt" / "models"  # the storage initializer's download
        storage.download_dir(uri, model_dir)
        generation = 1
        if name in self.servers:  # a re-apply makes a new generation, served anew
            generation = self.servers[name][1]["metadata"]["generation"] + 1
            self.stop(name)
        (port,) = free_ports(1)
        log = ctx.output_dir / "logs" / f"{ctx.task}-server.log"
        command = [
            sys.executable,
            "-m",
            "textcnn.serving",
            f"--model_dir={model_dir}",
            f"--model_name={name}",
            f"--port={port}",
            "--host=127.0.0.1",
        ]
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
        doc["metadata"].update(
            namespace=doc["metadata"].get("namespace", NAMESPACE), generation=generation
        )
        doc["status"] = {"url": f"http://127.0.0.1:{port}"}
        self.servers[name] = (proc, doc, log)
        with ctx.log_path.open("a") as out:
            out.write(
                f"InferenceService {name} (generation {generation}) served by "
                f"{shlex.join(command)}; log: {log}\n"
            )
        return {}

    def _object(self, name: str) -> dict[str, Any]:
        """The service object with the status the controller would write for the server."""
        if name not in self.servers:
            raise RuntimeError(f"inferenceservices.serving.kserve.io {name!r} not found")
        proc, doc, log = self.servers[name]
        url, generation = doc["status"]["url"], doc["metadata"]["generation"]
        status: dict[str, Any] = {"observedGeneration": generation}
        if proc.poll() is not None:
            tail = " | ".join(log.read_text(errors="replace").splitlines()[-3:])
            status["modelStatus"] = {
                "states": {"targetModelState": "FailedToLoad"},
                "lastFailureInfo": {
                    "reason": "ModelLoadFailed",
                    "exitCode": proc.returncode,
                    "message": f"{tail} (log: {log})",
                },
            }
        else:
            try:
                ready = requests.get(f"{url}/v1/models/{name}", timeout=2).ok
            except requests.RequestException:
                ready = False
            status["conditions"] = [
                {
                    "type": "Ready",
                    "status": "True" if ready else "False",
                    **({} if ready else {"reason": "ModelLoading"}),
                }
            ]
            if ready:
                status.update(url=url, address={"url": url})
        return {**doc, "status": status}

    def wait(self, ctx: StandInContext) -> dict[str, str]:
        parser = cli.build_parser("deploy-wait", cli.load_step("deploy-wait"))
        args = vars(parser.parse_args(ctx.template["container"].get("args", [])))
        args.pop("outputs")

        def get() -> dict[str, Any]:
            ctx.check_stopping()
            return self._object(args["name"])

        outputs = inference_service.finish(
            get,
            **{k: v for k, v in args.items() if k != "poll_s"},
            poll_s=0.5,
        )
        with ctx.log_path.open("a") as out:
            out.write(f"endpoint {outputs['endpoint']} ready; smoke prediction answered\n")
        return outputs

    def stand_ins(self) -> dict[str, StandIn]:
        found: dict[str, StandIn] = {
            f"deploy-{runtime}": InMemory(self.apply) for runtime in RUNTIMES
        }
        return found | {"deploy-wait": self.wait}

    def serve_forever(self) -> None:
        """Block while the servers run (until a signal: see workflows.local.signals)."""
        for proc, _, _ in list(self.servers.values()):
            proc.wait()

    def stop(self, name: str | None = None) -> int:
        """Stop one server, or all; return how many were running."""
        running = 0
        for key in [name] if name else list(self.servers):
            proc = self.servers.pop(key)[0]
            if proc.poll() is None:
                running += 1
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        return running
